# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The ``file`` memory source and how NUMACellFitFilter uses live data."""

import gc
import os
import signal
import time
import weakref

import fixtures
from nova import objects

from nova_numa_guard import inputs
from nova_numa_guard import live
from nova_numa_guard.live import accounted
from nova_numa_guard.live import payload
from nova_numa_guard.live import source as live_source
from tests.unit.live import base


class _Hosts(list):
    """A request's host list that a weak reference can follow."""


def code(reason):
    """The reason code of a ``LiveData.missing`` reason."""
    return reason.split(':')[0]


class FileSourceTestCase(base.LiveSourceTestCase):

    def setUp(self):
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.flags(memory_source='file', live_data_path=self.path)

    def write(self, host, data=None, raw=None, name=None):
        if raw is None:
            raw = payload.encode(data or base.two_node_payload(host))
        with open(os.path.join(self.path, (name or host) + '.json'),
                  'wb') as handle:
            handle.write(raw)


class FileSourceTest(FileSourceTestCase):

    def test_reads_payloads_afresh_at_every_request(self):
        """Ensures a changed file is seen by the next request."""
        source = live.load('file')
        self.write('compute1')
        self.assertEqual({0: 10501, 1: 2769}, source.live_data(
            ['compute1']).hosts['compute1'].free_mb)
        self.write('compute1', base.two_node_payload(
            'compute1', free={0: 30000, 1: 20000}))
        self.assertEqual({0: 30000, 1: 20000}, source.live_data(
            ['compute1']).hosts['compute1'].free_mb)
        os.unlink(os.path.join(self.path, 'compute1.json'))
        data = source.live_data(['compute1'])
        self.assertEqual({}, data.hosts)
        self.assertIn('no live data', data.missing['compute1'])

    def test_reads_full_payloads_and_memory_records(self):
        """Ensures a file may hold the full payload or its memory record."""
        self.write('compute1')
        self.write('compute2', raw=base.record('compute2'))
        data = live.load('file').live_data(['compute1', 'compute2'])
        self.assertEqual(['compute1', 'compute2'], sorted(data.hosts))
        self.assertEqual({0: 14286, 1: 7854},
                         data.hosts['compute2'].available_mb)

    def test_untrusted_files_are_missing_with_reasons(self):
        """Ensures every bad payload is ignored with its reason."""
        old = time.time() - 3600
        self.write('stale', base.two_node_payload('stale', timestamp=old))
        self.write('future', base.two_node_payload(
            'future', timestamp=time.time() + 3600))
        self.write('other', base.two_node_payload('compute9'))
        self.write('big', raw=b' ' * (payload.MAX_BYTES + 1))
        self.write('junk', raw=b'\x89PNG\r\n')
        data = live.load('file').live_data(
            ['stale', 'future', 'other', 'big', 'junk', '../etc/passwd'])
        self.assertEqual({}, data.hosts)
        self.assertEqual(
            {'stale': payload.STALE, 'future': payload.FUTURE,
             'other': payload.WRONG_HOST, 'big': payload.TOO_LARGE,
             'junk': payload.NOT_JSON,
             '../etc/passwd': payload.BAD_SCHEMA},
            {h: code(r) for h, r in data.missing.items()})

    def test_files_are_read_within_the_byte_budget(self):
        """Ensures a request reads no more than its budget over its files.

        A file over the size limit is refused unread (too large); the hosts
        whose files the budget cannot afford are judged on accounted data
        (neither trusted nor missing). Budget: 1 KiB a host, 2 KiB at least.
        """
        source = live.load('file')
        self.useFixture(fixtures.MockPatchObject(source, 'max_bytes', 2048))
        self.useFixture(fixtures.MockPatchObject(source, 'bytes_per_host',
                                                 1024))
        read = []
        real = inputs.read_bytes

        def counting(path, limit, **kwargs):
            data = real(path, limit, **kwargs)
            read.append(len(data))
            return data
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.inputs.read_bytes', counting))
        # Two payloads fit in 1 KiB, three do not.
        size = len(payload.encode(base.two_node_payload('compute1')))
        self.assertTrue(1024 // 3 < size <= 1024 // 2, size)
        pad = b' ' * 2048
        cases = [
            # (files before the four payloads, hosts' fate)
            ({}, {}),
            ({'big': pad + b' '}, {'big': payload.TOO_LARGE}),
            # 7 KiB for 7 hosts: 1 KiB left after the pads.
            ({'pad1': pad, 'pad2': pad, 'pad3': pad},
             {'pad1': payload.NOT_JSON, 'pad2': payload.NOT_JSON,
              'pad3': payload.NOT_JSON, 'compute3': 'gap',
              'compute4': 'gap'}),
        ]
        hosts = ['compute%d' % i for i in range(1, 5)]
        for host in hosts:
            self.write(host)
        for extra, fates in cases:
            for host, raw in extra.items():
                self.write(host, raw=raw)
            del read[:]
            data = source.live_data(list(extra) + hosts)
            self.assertLessEqual(sum(read),
                                 source.byte_budget(len(extra) + 4))
            got = {host: code(reason) for host, reason in
                   data.missing.items()}
            got.update({host: 'gap' for host in list(extra) + hosts
                        if host not in data.hosts and host not in got})
            self.assertEqual(fates, got, extra)
            self.assertEqual(set(hosts) - set(fates), set(data.hosts))

    def test_host_names_that_are_no_file_names_are_refused(self):
        """Ensures a host name is a plain file name or not read at all.

        A trailing newline, a path separator, a leading dot or ``..`` never
        make a path, even when a file of that name exists.
        """
        hosts = ['compute1\n', 'compute1/x', '.compute1', 'a..b',
                 'compute 1', '']
        for host in hosts[:4]:
            os.makedirs(os.path.dirname(os.path.join(self.path, host)),
                        exist_ok=True)
            self.write(host)
        data = live.load('file').live_data(hosts)
        self.assertEqual({}, data.hosts)
        self.assertEqual({host: payload.BAD_SCHEMA for host in hosts},
                         {h: code(r) for h, r in data.missing.items()})
        self.assertIn("host name 'compute1\\n' cannot be a file name",
                      data.missing['compute1\n'])

    def test_fifo_does_not_block(self):
        """Ensures a FIFO in place of a payload is refused at once.

        Opening a FIFO for reading blocks until a writer comes: an alarm
        breaks such a wait (in any thread model) and fails the test.
        """
        os.mkfifo(os.path.join(self.path, 'compute1.json'))
        self.write('compute2')
        source = live.load('file')
        blocked = []

        def alarm(signum, frame):
            blocked.append(True)
            raise InterruptedError('blocked')
        self.addCleanup(signal.signal, signal.SIGALRM,
                        signal.signal(signal.SIGALRM, alarm))
        signal.setitimer(signal.ITIMER_REAL, 10)
        try:
            data = source.live_data(['compute1', 'compute2'])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.assertEqual([], blocked, 'live_data blocked on a FIFO')
        self.assertEqual(['compute2'], list(data.hosts))
        self.assertEqual(live_source.MISSING, code(data.missing['compute1']))
        self.assertIn('not a regular file', data.missing['compute1'])

    def test_devices_and_directories_are_refused(self):
        """Ensures a device or a directory in place of a payload is refused.

        /dev/zero would never end; a directory cannot be read.
        """
        os.symlink('/dev/zero', os.path.join(self.path, 'compute1.json'))
        os.mkdir(os.path.join(self.path, 'compute2.json'))
        data = live.load('file').live_data(['compute1', 'compute2'])
        self.assertEqual({}, data.hosts)
        for host in ('compute1', 'compute2'):
            self.assertIn('not a regular file', data.missing[host])

    def test_missing_directory_is_an_outage(self):
        """Ensures a missing live_data_path means accounted for all."""
        self.flags(live_data_path=os.path.join(self.path, 'nope'))
        data = live.load('file').live_data(['compute1'])
        self.assertIn('is not a directory', data.unavailable)
        self.assertEqual({}, data.missing)
        self.assertEqual({}, data.hosts)

    def test_printed_signed_payload_is_trusted(self):
        """Ensures a signed payload as --print writes it (newline) is used."""
        self.flags(payload_signing_key='k3y')
        data = base.two_node_payload('compute1',
                                     key=payload.host_key('k3y', 'compute1'))
        self.write('compute1', raw=payload.encode(data) + b'\n')
        live_data = live.load('file').live_data(['compute1'])
        self.assertEqual({0: 10501, 1: 2769},
                         live_data.hosts['compute1'].free_mb)

    def test_signed_payloads(self):
        """Ensures with a key only payloads signed with the host's key count.

        A payload signed with the secret itself, or with another host's key,
        is refused.
        """
        self.flags(payload_signing_key='k3y')
        self.write('good', base.two_node_payload(
            'good', key=payload.host_key('k3y', 'good')))
        self.write('unsigned')
        self.write('secret', base.two_node_payload('secret', key='k3y'))
        self.write('other', base.two_node_payload(
            'other', key=payload.host_key('k3y', 'good')))
        data = live.load('file').live_data(
            ['good', 'unsigned', 'secret', 'other'])
        self.assertEqual(['good'], list(data.hosts))
        self.assertEqual(
            {'unsigned': payload.UNSIGNED, 'secret': payload.BAD_SIGNATURE,
             'other': payload.BAD_SIGNATURE},
            {h: code(r) for h, r in data.missing.items()})

    def test_same_bad_bytes_are_checked_once(self):
        """Ensures a refused file is not parsed again while unchanged."""
        source = live.load('file')
        self.write('compute1', raw=b'[1, 2, 3]')
        verify = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.verify',
            side_effect=payload.verify))
        decode = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload._DECODER.decode',
            side_effect=payload._DECODER.decode))
        for _ in range(3):
            data = source.live_data(['compute1'])
            self.assertIn('schema mismatch', data.missing['compute1'])
        self.assertEqual((1, 1), (verify.mock.call_count,
                                  decode.mock.call_count))

    def test_same_large_bad_bytes_are_checked_once(self):
        """Ensures a large refused file is remembered by a digest."""
        source = live.load('file')
        self.write('compute1', raw=b' ' * 100000 + b'x')
        verify = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.verify',
            side_effect=payload.verify))
        for _ in range(3):
            data = source.live_data(['compute1'])
            self.assertIn('not JSON', data.missing['compute1'])
        self.assertEqual(1, verify.mock.call_count)
        self.assertIsInstance(source._hosts['compute1'].mark, tuple)
        self.write('compute1', raw=b' ' * 100000 + b'y')
        source.live_data(['compute1'])
        self.assertEqual(2, verify.mock.call_count)

    def test_refused_payload_does_not_keep_requests_alive(self):
        """Ensures a remembered refusal does not hold on to the requests.

        The refusal is kept while the file is unchanged; raising it at
        every request must not chain each request's frames (and everything
        they hold) to it.
        """
        source = live.load('file')
        self.write('compute1', base.two_node_payload('compute9'))
        refs = []
        for _ in range(3):
            hosts = _Hosts(['compute1'])
            refs.append(weakref.ref(hosts))
            data = source.live_data(hosts)
            self.assertIn('wrong host', data.missing['compute1'])
            del hosts
        gc.collect()
        self.assertEqual([None, None, None], [ref() for ref in refs])

    def test_future_payload_is_trusted_once_its_time_comes(self):
        """Ensures the time rules are checked at every use, not memoised."""
        source = live.load('file')
        self.write('compute1', base.two_node_payload(
            'compute1', timestamp=time.time() + 60))
        self.assertIn('in the future', source.live_data(
            ['compute1']).missing['compute1'])
        self.useFixture(fixtures.MockPatch('time.time',
                                           return_value=time.time() + 60))
        self.assertIn('compute1', source.live_data(['compute1']).hosts)

    def test_unknown_source_fails_at_start(self):
        """Ensures an unknown memory source name stops the scheduler."""
        exc = self.assertRaises(live.MemorySourceError, live.load,
                                'memcache')
        self.assertIn("memory_source = 'memcache' is not installed",
                      str(exc))
        self.assertIn('accounted, cache, file', str(exc))

    def test_source_that_raises_returns_unavailable(self):
        """Ensures a failing fetch is an outage, never an exception."""
        source = live.load('file')
        self.useFixture(fixtures.MockPatchObject(
            source, 'fetch_raw', side_effect=MemoryError('x')))
        data = source.live_data(['compute1'])
        self.assertEqual(({}, {}), (data.hosts, data.missing))
        self.assertIsNotNone(data.unavailable)
        self.assertIn('cannot be read (MemoryError: x)', self.log.output)

    def test_accounted_source_has_no_live_data(self):
        """Ensures the accounted source never supplies live data."""
        self.assertFalse(accounted.AccountedSource.live)
        data = accounted.AccountedSource().live_data(['h'])
        self.assertIsInstance(data, live_source.LiveData)
        self.assertEqual(({}, {}, None),
                         (data.hosts, data.missing, data.unavailable))


class FilterWithLiveDataTest(FileSourceTestCase):
    """NUMACellFitFilter through nova's handler with the file source."""

    def test_live_data_rejects_what_accounted_data_accepts(self):
        """Ensures the two-node live figures reject a 16 GB guest."""
        hosts = self.host_states(2)
        self.write('compute0')
        self.assertEqual(['compute1'], self.run_filter(hosts))
        self.assertIn('compute0, compute0 fails NUMA cell fit: needs 16384 '
                      'MB free in one cell', self.log.output)
        self.assertIn('free: cell 0 10501 MB, cell 1 2769 MB',
                      self.log.output)

    def test_live_data_minus_the_reserve(self):
        """Ensures the per-node reserve comes off the live figures."""
        hosts = self.host_states(1)
        self.write('compute0', base.two_node_payload(
            'compute0', free={0: 17000, 1: 2769}))
        self.assertEqual(['compute0'], self.run_filter(hosts))
        self.flags(reserved_node_memory_mb='1024')
        self.assertEqual([], self.run_filter(hosts))

    def test_live_data_that_fits(self):
        """Ensures a guest that fits the live free memory passes."""
        hosts = self.host_states(1)
        self.write('compute0')
        self.assertEqual(['compute0'], self.run_filter(hosts, 8192))

    def test_on_missing_live_data_policies(self):
        """Ensures accounted, pass and reject apply to hosts without data."""
        # A host whose accounted data rejects the guest: 60 GB used.
        full = base.fakes.host_state(base.fakes.two_node_cells(),
                                     used_mb=100000, name='full')
        hosts = [full] + self.host_states(1)
        self.write('stale', base.two_node_payload('full', timestamp=1),
                   name='full')
        self.assertEqual(['compute0'], self.run_filter(hosts))
        self.flags(on_missing_live_data='pass')
        self.assertEqual(['full', 'compute0'], self.run_filter(hosts))
        self.flags(on_missing_live_data='reject')
        self.assertEqual([], self.run_filter(hosts))
        self.assertIn('full, full fails NUMA cell fit: no trusted live '
                      'memory data (stale: ', self.log.output)
        self.assertIn('compute0, compute0 fails NUMA cell fit: no trusted '
                      'live memory data (missing: no live data stored)',
                      self.log.output)
        self.assertIn('no host has trusted live memory data', self.log.output)

    def test_reject_policy_ignored_when_the_store_is_down(self):
        """Ensures an outage means accounted mode, whatever the policy.

        The directory goes away after the scheduler started.
        """
        path = os.path.join(self.path, 'live')
        os.mkdir(path)
        self.flags(on_missing_live_data='reject', live_data_path=path)
        filter_obj = base.numa_cell_fit.NUMACellFitFilter()
        os.rmdir(path)
        self.assertEqual(['compute0'], self.run_filter(
            self.host_states(1), filter_obj=filter_obj))
        self.assertIn('is not a directory', self.log.output)

    def test_node_mismatch_is_missing_data(self):
        """Ensures live data for other nodes than nova's is not used."""
        data = base.two_node_payload('compute0')
        data['nodes'] = data['nodes'][:1]
        self.write('compute0', data)
        self.flags(on_missing_live_data='reject')
        self.assertEqual([], self.run_filter(self.host_states(1)))
        self.assertIn('nodes [0]', self.log.output)
        self.assertIn('cells [0, 1] nova has', self.log.output)

    def test_source_that_raises_means_accounted(self):
        """Ensures a broken source never raises into nova."""
        filter_obj = base.numa_cell_fit.NUMACellFitFilter()
        self.useFixture(fixtures.MockPatchObject(
            filter_obj._source, 'fetch_raw', side_effect=MemoryError('x')))
        self.assertEqual(['compute0'], self.run_filter(
            self.host_states(1), filter_obj=filter_obj))

    def test_dry_run_keeps_hosts(self):
        """Ensures dry run logs a live rejection but keeps the host."""
        self.flags(dry_run=True)
        self.write('compute0')
        self.assertEqual(['compute0'], self.run_filter(self.host_states(1)))
        self.assertIn('(dry run, not rejected)', self.log.output)


def numa_request(*cell_mb, pagesize=None):
    cells = [objects.InstanceNUMACell(id=i, cpuset={i}, pcpuset=set(),
                                      memory=mb, pagesize=pagesize)
             for i, mb in enumerate(cell_mb)]
    return objects.InstanceNUMATopology(cells=cells)


class NUMAGuestLiveCheckTest(FileSourceTestCase):
    """NUMA guests on small pages get the live check."""

    def test_small_page_numa_guest_needs_live_memory_per_cell(self):
        """Ensures a 16 GB hw:numa_nodes=1 guest is refused on live data."""
        self.write('compute0')
        hosts = self.host_states(1)
        self.assertEqual([], self.run_filter(
            hosts, numa_topology=numa_request(16384)))
        self.assertIn('NUMA guest needs 16384 MB on 1 distinct cells; live',
                      self.log.output)
        self.assertIn('cell 0 14286 MB, cell 1 7854 MB', self.log.output)
        self.assertIn('removed the only host: the NUMA guest needs 16384 MB',
                      self.log.output)

    def test_guest_cells_need_distinct_host_cells(self):
        """Ensures two 7 GB guest cells fit, two 8 GB ones do not."""
        self.write('compute0')
        hosts = self.host_states(1)
        self.assertEqual(['compute0'], self.run_filter(
            hosts, numa_topology=numa_request(7168, 7168)))
        self.assertEqual([], self.run_filter(
            hosts, numa_topology=numa_request(8192, 8192)))
        self.assertEqual(['compute0'], self.run_filter(
            hosts, numa_topology=numa_request(12288, 4096)))

    def test_hugepage_guest_left_to_nova(self):
        """Ensures hugepage-backed NUMA guests are not checked."""
        self.write('compute0')
        self.assertEqual(['compute0'], self.run_filter(
            self.host_states(1), numa_topology=numa_request(
                16384, pagesize=2048)))

    def test_numa_guest_without_live_data_passes(self):
        """Ensures a NUMA guest passes a host without live data."""
        self.assertEqual(['compute0'], self.run_filter(
            self.host_states(1), numa_topology=numa_request(16384)))

    def test_accounted_source_leaves_numa_guests_alone(self):
        """Ensures the accounted source does not check NUMA guests."""
        self.flags(memory_source='accounted')
        self.write('compute0')
        self.assertEqual(['compute0'], self.run_filter(
            self.host_states(1), numa_topology=numa_request(16384)))


class MultiCreateWithLiveDataTest(FileSourceTestCase):
    """The instances of one request placed one after the other."""

    def place(self, host_state, memory_mb, cell_id=None):
        """Account one instance on the host, as nova's consume does."""
        host_state.free_ram_mb -= memory_mb
        if cell_id is not None:
            numa = host_state.numa_topology.obj_clone()
            numa.cells[cell_id].memory_usage += memory_mb
            host_state.numa_topology = numa

    def test_non_numa_instances_fill_the_live_free_memory(self):
        """Ensures earlier instances of the request count against live data.

        Cell 0 has 10501 MB live free: two 5000 MB guests fit, a third does
        not, whatever nova's accounting says.
        """
        self.write('compute0')
        filter_obj = base.numa_cell_fit.NUMACellFitFilter()
        host_state = self.host_states(1)[0]
        spec = base.fakes.request_spec(5000, 2)
        passed = []
        for _ in range(3):
            passed.append(bool(list(filter_obj.filter_all([host_state],
                                                          spec))))
            self.place(host_state, 5000)
        self.assertEqual([True, True, False], passed)
        self.assertIn('after 2 earlier instance(s) of this request; live',
                      self.log.output)
        self.assertIn('free before them: cell 0 10501 MB, cell 1 2769 MB',
                      self.log.output)

    def test_numa_instances_fill_the_live_available_memory(self):
        """Ensures NUMA instances placed earlier count on their cells.

        Live available: cell 0 14286 MB, cell 1 7854 MB. Two 7000 MB
        hw:numa_nodes=1 guests fit on cell 0 and one on cell 1; nova puts
        them on cell 0, then cell 0, then the fourth finds no room.
        """
        self.write('compute0')
        filter_obj = base.numa_cell_fit.NUMACellFitFilter()
        host_state = self.host_states(1)[0]
        spec = base.fakes.request_spec(7000, 2,
                                       numa_topology=numa_request(7000))
        passed = []
        for cell_id in (0, 0, 1, 1):
            passed.append(bool(list(filter_obj.filter_all([host_state],
                                                          spec))))
            self.place(host_state, 7000, cell_id)
        self.assertEqual([True, True, True, False], passed)
        self.assertIn('NUMA guest needs 7000 MB on 1 distinct cells; live',
                      self.log.output)
        self.assertIn('cell 0 286 MB, cell 1 854 MB', self.log.output)


class LiveDataTest(base.LiveSourceTestCase):

    def test_live_data_defaults(self):
        """Ensures LiveData starts empty, with maps of its own."""
        first, second = live_source.LiveData(), live_source.LiveData()
        self.assertEqual(({}, {}, None),
                         (first.hosts, first.missing, first.unavailable))
        first.hosts['h'] = None
        self.assertEqual({}, second.hosts)
        data = live_source.LiveData(missing={'g': 'why'}, unavailable='down')
        self.assertEqual(({}, {'g': 'why'}, 'down'),
                         (data.hosts, data.missing, data.unavailable))
