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

"""nova-numa-guard-agent: command line, payload, publishing, outages."""

import io
import json
import logging
import os
import shutil
import sys
import time
from unittest import mock

import fixtures
from oslo_config import cfg

from nova_numa_guard.agent import main
from nova_numa_guard.live import cache
from nova_numa_guard.live import payload
from nova_numa_guard.live import store
from tests import fake_guests
from tests import fake_sysfs
from tests import memcached_fixture
from tests import testcase

GUEST = fake_guests.guest
# Guests on two-node-64g of write_two_node_tree (MemFree 10501 and 2769 MB):
# * 2048 of instance-00000001's 8192 MB are resident on node 1: its other
#   6144 MB are charged there;
# * instance-00000002 has nothing resident: its 4096 MB go to node 0, which
#   has most room left (10501 against 2769 - 6144);
# * instance-00000003 is backed by hugepages: its 16384 MB count in
#   guests_mb (as in nova's accounting), nothing of it is untouched.
RUNNING_GUESTS = [
    GUEST('instance-00000001', 1, 8192, anon_mb={1: 2048}),
    GUEST('instance-00000002', 2, 4096),
    GUEST('instance-00000003', 3, 16384, hugepages=True),
]
UNTOUCHED_MB = {0: 4096, 1: 6144}
GUESTS_MB = 8192 + 4096 + 16384
# A node of 512 PiB: the sysfs reader takes up to 1 EiB, the scheduler no
# more than payload.MAX_NODE_MB (64 TiB) per node.
HUGE_NODE_KB = 512 * 2 ** 40
HUGE_NODE_MB = HUGE_NODE_KB // 1024


class AgentTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.root = fake_sysfs.write_two_node_tree(
            os.path.join(self.tmp, 'sys'))
        # No guest runs unless a test writes some.
        self.libvirt_root = os.path.join(self.tmp, 'run', 'libvirt', 'qemu')
        self.cgroup_root = os.path.join(self.tmp, 'sys', 'fs', 'cgroup')
        fake_guests.write_guests(self.libvirt_root, self.cgroup_root, [])
        # Never this machine's libvirt: tests that want one inject a fake.
        modules = mock.patch.dict(sys.modules, {'libvirt': None})
        modules.start()
        self.addCleanup(modules.stop)
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', self.stdout))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.stderr))
        # oslo.log's setup() would rewire the test runner's logging.
        self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.agent.main.logging.setup', autospec=True))
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_numa_guard', level=logging.DEBUG,
            format='%(levelname)s %(message)s'))

    def write_conf(self, text):
        path = os.path.join(self.tmp, 'nova.conf')
        with open(path, 'w') as handle:
            handle.write(text)
        return path

    def write_guests(self, specs=RUNNING_GUESTS):
        fake_guests.write_guests(self.libvirt_root, self.cgroup_root, specs)

    def guest_args(self):
        return ['--libvirt-root', self.libvirt_root, '--cgroup-root',
                self.cgroup_root]

    def guest_opts(self):
        """[numa_guard_agent] options reading the fake guest trees."""
        return ('libvirt_runtime_dir = %s\ncgroup_root = %s\n'
                'libvirt_uri =\n' % (self.libvirt_root, self.cgroup_root))

    def print_once(self, *args):
        return main.main(['--once', '--print', '--sysfs-root', self.root] +
                         self.guest_args() + list(args))

    def printed(self):
        return json.loads(self.stdout.getvalue())

    def warnings(self):
        return [line for line in self.log.output.splitlines()
                if line.startswith('WARNING ')]

    def errors(self):
        return [line for line in self.log.output.splitlines()
                if line.startswith('ERROR ')]

    def set_mem_total(self, node_id, kb):
        """Rewrite a two-node-64g node's meminfo with MemTotal ``kb``."""
        meminfo = dict(fake_sysfs.two_node_nodes()[node_id]['meminfo'],
                       MemTotal=kb)
        path = os.path.join(self.root, 'devices', 'system', 'node',
                            'node%d' % node_id, 'meminfo')
        with open(path, 'w') as handle:
            handle.write(fake_sysfs.meminfo_text(node_id, meminfo))

    def refusal(self, mb=HUGE_NODE_MB):
        """What the scheduler says of a node 0 of ``mb`` MemTotal."""
        return ('implausible numbers: node 0: mem_total_mb %d is negative '
                'or more than %d MB' % (mb, payload.MAX_NODE_MB))


class CommandLineTest(AgentTestCase):

    def test_once_print_prints_the_two_node_payload(self):
        """Ensures --once --print prints one payload of two-node-64g."""
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        data = self.printed()
        trusted = payload.verify(json.dumps(data), 'compute1', None, 30,
                                 time.time(), full=True)
        self.assertEqual(fake_sysfs.TWO_NODE_FREE_MB, trusted.free_mb)
        self.assertEqual(fake_sysfs.TWO_NODE_AVAILABLE_MB,
                         trusted.available_mb)
        # No guest runs: nothing untouched.
        self.assertEqual(({0: 0, 1: 0}, 0),
                         (trusted.untouched_mb, trusted.guests_mb))
        self.assertEqual(1, data['schema'])
        node0 = data['nodes'][0]
        self.assertEqual((64328, [10, 21], {'2048': {'total': 0, 'free': 0},
                                            '1048576': {'total': 0,
                                                        'free': 0}}),
                         (node0['mem_total_mb'], node0['distances'],
                          node0['hugepages']))
        self.assertEqual(
            [('0000:03:00.0', 0, []), ('0000:81:00.0', 1, ['ens1f0']),
             ('0000:81:00.1', 1, ['ens1f1'])],
            [(d['address'], d['numa_node'], d['net'])
             for d in data['devices']])
        self.assertNotIn('signature', data)
        self.assertEqual([], self.warnings())

    def test_once_print_carries_the_guest_fields(self):
        """Ensures --once --print with guests prints their figures."""
        self.write_guests()
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        data = self.printed()
        self.assertEqual(UNTOUCHED_MB,
                         {n['id']: n['guest_untouched_mb']
                          for n in data['nodes']})
        self.assertEqual(GUESTS_MB, data['guests_mb'])
        for raw in (self.stdout.getvalue(), payload.encode_record(data)):
            trusted = payload.verify(raw, 'compute1', full=True)
            self.assertEqual((UNTOUCHED_MB, GUESTS_MB),
                             (trusted.untouched_mb, trusted.guests_mb))

    def test_libvirt_root_flag_skips_the_binding(self):
        """Ensures --libvirt-root reads runtime files, never the binding."""
        self.write_guests()
        libvirt = self.useFixture(fake_guests.FakeLibvirt([
            fake_guests.FakeDomain(fake_guests.domain_xml(
                'instance-00000009', 9, 1024, status=False))]))
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        self.assertEqual(GUESTS_MB, self.printed()['guests_mb'])
        self.assertEqual([], libvirt.opened)

    def test_binding_used_without_libvirt_root_flag(self):
        """Ensures the binding of [numa_guard_agent] libvirt_uri is read."""
        self.write_guests()
        fake_guests.write_scope(self.cgroup_root, 9, 'instance-00000009',
                                anon={0: 256 * fake_guests.MIB})
        libvirt = self.useFixture(fake_guests.FakeLibvirt([
            fake_guests.FakeDomain(fake_guests.domain_xml(
                'instance-00000009', 9, 1024, status=False))]))
        conf = self.write_conf(
            '[numa_guard_agent]\nlibvirt_runtime_dir = %s\ncgroup_root = '
            '%s\nlibvirt_uri = test:///default\n' % (self.libvirt_root,
                                                      self.cgroup_root))
        self.assertEqual(0, main.main(['--once', '--print', '--config-file',
                                       conf, '--sysfs-root', self.root,
                                       '--host', 'compute1']))
        # Only the binding's guest: 1024 MB, 256 resident on node 0, the
        # other 768 follow them.
        data = self.printed()
        self.assertEqual((1024, [768, 0]), (
            data['guests_mb'],
            [n['guest_untouched_mb'] for n in data['nodes']]))
        self.assertEqual(['test:///default'], libvirt.opened)

    def test_guest_roots_from_config(self):
        """Ensures the guest directories of [numa_guard_agent] are read."""
        self.write_guests()
        conf = self.write_conf('[numa_guard_agent]\n' + self.guest_opts())
        self.assertEqual(0, main.main(['--once', '--print', '--config-file',
                                       conf, '--sysfs-root', self.root,
                                       '--host', 'compute1']))
        self.assertEqual(GUESTS_MB, self.printed()['guests_mb'])

    def test_cgroup_root_flag_overrides_config(self):
        """Ensures --cgroup-root wins over [numa_guard_agent] cgroup_root."""
        self.write_guests()
        conf = self.write_conf('[numa_guard_agent]\ncgroup_root = %s\n' %
                               os.path.join(self.tmp, 'nowhere'))
        self.assertEqual(0, self.print_once('--config-file', conf, '--host',
                                            'compute1'))
        self.assertEqual(GUESTS_MB, self.printed()['guests_mb'])
        self.assertEqual([], self.warnings())

    def test_no_cgroup_v2_prints_without_guest_fields(self):
        """Ensures a host without cgroup v2 still prints, without guests."""
        self.write_guests()
        os.unlink(os.path.join(self.cgroup_root, 'cgroup.controllers'))
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        data = self.printed()
        self.assertNotIn('guests_mb', data)
        self.assertEqual([False, False], ['guest_untouched_mb' in n
                                          for n in data['nodes']])
        self.assertIsNone(payload.verify(self.stdout.getvalue(), 'compute1',
                                         full=True).untouched_mb)
        self.assertEqual(1, len(self.warnings()))
        self.assertIn('not a cgroup v2 hierarchy', self.warnings()[0])

    def test_no_machine_slice_no_guests_prints_zeros(self):
        """Ensures a host with no guest since boot prints zero figures."""
        shutil.rmtree(os.path.join(self.cgroup_root, 'machine.slice'))
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        data = self.printed()
        self.assertEqual(({0: 0, 1: 0}, 0),
                         ({n['id']: n['guest_untouched_mb']
                           for n in data['nodes']}, data['guests_mb']))
        self.assertEqual([], self.warnings())

    def test_no_machine_slice_with_guests_prints_without_guest_fields(self):
        """Ensures running guests without any scope drop the guest fields."""
        self.write_guests()
        shutil.rmtree(os.path.join(self.cgroup_root, 'machine.slice'))
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        data = self.printed()
        self.assertNotIn('guests_mb', data)
        self.assertEqual([False, False], ['guest_untouched_mb' in n
                                          for n in data['nodes']])
        self.assertEqual(1, len(self.warnings()))
        # instance-00000003 (hugepages) needs no scope.
        self.assertIn('%s/machine.slice: no scope of any of the 2 running '
                      'guests' % self.cgroup_root, self.warnings()[0])

    def test_scope_without_numa_stat_prints_without_guest_fields(self):
        """Ensures no memory controller for the guests drops their fields."""
        self.write_guests()
        path = os.path.join(self.cgroup_root, 'machine.slice',
                            fake_guests.scope_name(1, 'instance-00000001'),
                            'memory.numa_stat')
        os.unlink(path)
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        data = self.printed()
        self.assertNotIn('guests_mb', data)
        self.assertEqual([False, False], ['guest_untouched_mb' in n
                                          for n in data['nodes']])
        self.assertIsNone(payload.verify(self.stdout.getvalue(), 'compute1',
                                         full=True).guests_mb)
        self.assertEqual(1, len(self.warnings()))
        self.assertIn('%s: missing: the memory controller is not enabled for '
                      'machine.slice' % path, self.warnings()[0])

    def test_payload_the_scheduler_would_refuse_is_not_printed(self):
        """Ensures --once --print refuses a node the scheduler would refuse.

        512 PiB passes the sysfs reader (1 EiB at most) but not the
        scheduler (64 TiB per node at most).
        """
        self.set_mem_total(0, HUGE_NODE_KB)
        self.assertEqual(1, self.print_once('--host', 'compute1'))
        self.assertEqual('', self.stdout.getvalue())
        self.assertEqual('nova-numa-guard-agent: nothing published: the '
                         'scheduler would refuse it: %s\n' % self.refusal(),
                         self.stderr.getvalue())
        self.assertEqual(["ERROR Not publishing: the scheduler would refuse "
                          "this host's payload (%s)" % self.refusal()],
                         self.errors())
        self.assertEqual([], self.warnings())

    def test_memory_record_checked_with_the_record_limit(self):
        """Ensures the memory record must fit payload.MAX_RECORD_BYTES."""
        self.useFixture(fixtures.MockPatchObject(payload, 'MAX_RECORD_BYTES',
                                                 30))
        self.assertEqual(1, self.print_once('--host', 'compute1'))
        self.assertEqual('', self.stdout.getvalue())
        self.assertRegex(self.stderr.getvalue(),
                         r'^nova-numa-guard-agent: nothing published: the '
                         r'scheduler would refuse it: too large: [0-9]+ '
                         r'bytes, more than 30\n$')
        self.assertEqual(1, len(self.errors()))

    def test_help_is_man_style(self):
        """Ensures --help reads like a man page."""
        exc = self.assertRaises(SystemExit, main.main, ['--help'])
        self.assertEqual(0, exc.code)
        text = self.stdout.getvalue()
        for section in ('NAME', 'DESCRIPTION', 'FILES', 'EXIT STATUS',
                        'EXAMPLES', '--sysfs-root PATH', '--config-file PATH',
                        '--libvirt-root PATH', '--cgroup-root PATH',
                        'mem_available_mb', 'guest_untouched_mb',
                        'guests_mb'):
            self.assertIn(section, text)

    def test_host_and_key_from_nova_conf(self):
        """Ensures [DEFAULT] host names the payload and the key signs it."""
        conf = self.write_conf('[DEFAULT]\nhost = cn-17\n[numa_guard]\n'
                               'payload_signing_key = s3cret\n')
        self.assertEqual(0, self.print_once('--config-file', conf))
        data = self.printed()
        self.assertEqual('cn-17', data['host'])
        payload.verify(self.stdout.getvalue(), 'cn-17',
                       payload.host_key('s3cret', 'cn-17'), 30, time.time())

    def test_host_signing_key_signs_for_this_host_only(self):
        """Ensures the host's own key signs; the secret need not be there."""
        host_key = payload.host_key('s3cret', 'cn-17')
        conf = self.write_conf('[DEFAULT]\nhost = cn-17\n'
                               '[numa_guard_agent]\nhost_signing_key = %s\n'
                               % host_key)
        self.assertEqual(0, self.print_once('--config-file', conf))
        printed = self.stdout.getvalue()
        payload.verify(printed, 'cn-17', host_key, 30, time.time())
        exc = self.assertRaises(
            payload.Untrusted, payload.verify,
            printed.replace('"cn-17"', '"cn-18"'), 'cn-18',
            payload.host_key('s3cret', 'cn-18'), 30, time.time())
        self.assertEqual(payload.BAD_SIGNATURE, exc.code)

    def test_print_host_key(self):
        """Ensures --print-host-key prints the derived key of --host."""
        conf = self.write_conf('[numa_guard]\npayload_signing_key = s3cret\n')
        self.assertEqual(0, main.main(['--print-host-key', '--host', 'cn-17',
                                       '--config-file', conf]))
        self.assertEqual(payload.host_key('s3cret', 'cn-17') + '\n',
                         self.stdout.getvalue())
        self.assertEqual(2, main.main(['--print-host-key', '--host', 'x']))
        self.assertIn('needs [numa_guard] payload_signing_key',
                      self.stderr.getvalue())

    def test_host_flag_overrides_nova_conf(self):
        """Ensures --host wins over [DEFAULT] host."""
        conf = self.write_conf('[DEFAULT]\nhost = cn-17\n')
        self.print_once('--config-file', conf, '--host', 'other')
        self.assertEqual('other', self.printed()['host'])

    def test_sysfs_root_from_config(self):
        """Ensures [numa_guard_agent] sysfs_root is where sysfs is read."""
        conf = self.write_conf('[numa_guard_agent]\nsysfs_root = %s\n%s' %
                               (self.root, self.guest_opts()))
        main.main(['--once', '--print', '--config-file', conf, '--host', 'h'])
        self.assertEqual(2, len(self.printed()['nodes']))

    def test_missing_sysfs_fails_with_one_line(self):
        """Ensures a tree without nodes exits 1 with the file named."""
        empty = os.path.join(self.tmp, 'empty')
        self.assertEqual(1, main.main(['--once', '--print', '--sysfs-root',
                                       empty, '--host', 'h'] +
                                      self.guest_args()))
        error = self.stderr.getvalue()
        self.assertEqual(1, len(error.splitlines()))
        self.assertIn('nothing published: %s' % empty, error)
        self.assertIn('cannot list NUMA nodes', error)

    def test_missing_config_file_exits_2(self):
        """Ensures a missing --config-file is a start-up error."""
        self.assertEqual(2, main.main(['--once', '--config-file',
                                       '/nonexistent/nova.conf']))
        self.assertIn('/nonexistent/nova.conf', self.stderr.getvalue())

    def test_bad_config_value_exits_2(self):
        """Ensures a bad option value is a one-line error, exit 2."""
        conf = self.write_conf('[numa_guard_agent]\ninterval = often\n')
        self.assertEqual(2, main.main(['--print', '--config-file', conf]))
        self.assertEqual(1, len(self.stderr.getvalue().splitlines()))
        self.assertIn('interval', self.stderr.getvalue())

    def test_backend_other_than_memcached_exits_2(self):
        """Ensures a cache backend other than memcached is refused at start."""
        for backend in ('dogpile.cache.redis', 'dogpile.cache.memory'):
            self.stderr.seek(0)
            self.stderr.truncate()
            conf = self.write_conf('[cache]\nenabled = True\nbackend = %s\n'
                                   % backend)
            self.assertEqual(2, main.main(['--once', '--config-file', conf] +
                                          self.guest_args()))
            error = self.stderr.getvalue()
            self.assertEqual(1, len(error.splitlines()))
            self.assertIn('[cache] backend = %s: live memory payloads are '
                          'kept in memcached only' % backend, error)

    def test_malformed_memcache_servers_exits_2(self):
        """Ensures a [cache] memcache_servers entry without a port exits 2."""
        conf = self.write_conf('[cache]\nenabled = True\nbackend = '
                               'dogpile.cache.pymemcache\nmemcache_servers = '
                               'cache1\n')
        self.assertEqual(2, main.main(['--once', '--config-file', conf] +
                                      self.guest_args()))
        error = self.stderr.getvalue()
        self.assertEqual(1, len(error.splitlines()))
        self.assertIn("[cache] memcache_servers: 'cache1' is not host:port",
                      error)

    def test_publishing_without_a_cache_exits_2(self):
        """Ensures a memcached [cache] is needed unless --print is given."""
        self.assertEqual(2, main.main(['--once', '--sysfs-root', self.root] +
                                      self.guest_args()))
        self.assertIn('[cache] backend = dogpile.cache.null: live memory '
                      'payloads are kept in memcached only',
                      self.stderr.getvalue())

    def test_partial_sysfs_publishes_the_rest(self):
        """Ensures an unreadable node is left out, the rest published."""
        os.unlink(os.path.join(self.root, 'devices', 'system', 'node',
                               'node1', 'meminfo'))
        self.assertEqual(0, self.print_once('--host', 'h'))
        self.assertEqual([0], [n['id'] for n in self.printed()['nodes']])
        self.assertIn("Cannot read part of this host's state",
                      self.log.output)


class PhysnetInterfacesTest(AgentTestCase):
    """[numa_guard_agent] physnet_interfaces: the nodes of physnet NICs."""

    def print_with(self, value):
        conf = self.write_conf('[numa_guard_agent]\nphysnet_interfaces = '
                               '%s\n' % value)
        return self.print_once('--host', 'compute1', '--config-file', conf)

    def test_payload_maps_each_physnet_to_its_nics_nodes(self):
        """Ensures that the payload says which nodes a physnet's NICs use."""
        self.assertEqual(0, self.print_with('physnet1:ens1f0,physnet1:ens1f1'))
        data = self.printed()
        self.assertEqual({'physnet1': [1]}, data['physnets'])
        trusted = payload.verify(json.dumps(data), 'compute1', None, 30,
                                 time.time(), full=True)
        self.assertEqual({'physnet1': frozenset([1])}, trusted.physnets)
        self.assertEqual([], self.warnings())

    def test_no_option_no_physnets(self):
        """Ensures that an agent without the option publishes none."""
        self.assertEqual(0, self.print_once('--host', 'compute1'))
        self.assertNotIn('physnets', self.printed())

    def test_missing_interface_is_logged_and_left_out(self):
        """Ensures that an interface that is not there is a warning only."""
        self.assertEqual(0, self.print_with('physnet1:ens1f0,physnet2:ens9f9'))
        self.assertEqual({'physnet1': [1]}, self.printed()['physnets'])
        warnings = self.warnings()
        self.assertEqual(1, len(warnings))
        self.assertIn('class/net/ens9f9: physnet physnet2: no such network '
                      'interface', warnings[0])

    def test_bad_value_is_a_start_up_error_naming_the_option(self):
        """Ensures that a malformed mapping exits 2 with one line."""
        self.assertEqual(2, self.print_with('physnet1=ens1f0'))
        error = self.stderr.getvalue()
        self.assertEqual(1, len(error.splitlines()))
        self.assertIn("[numa_guard_agent] physnet_interfaces: "
                      "'physnet1=ens1f0' is not physnet:interface", error)


class PublishTest(AgentTestCase):
    """Against a real memcached on 127.0.0.1."""

    def setUp(self):
        super().setUp()
        self.memcached = self.useFixture(memcached_fixture.Memcached())
        self.write_guests()
        self.conf_file = self.publish_conf()

    def publish_conf(self, extra=''):
        return self.write_conf(
            '[DEFAULT]\nhost = compute1\n[cache]\nenabled = True\n'
            'backend = dogpile.cache.pymemcache\nmemcache_servers = %s\n'
            '[numa_guard_agent]\nttl = 45\n%s%s' % (
                self.memcached.url, self.guest_opts(), extra))

    def reader(self):
        conf = cfg.ConfigOpts()
        main.guard_conf.register_opts(conf)
        conf(['--config-file', self.conf_file])
        return cache.CacheSource(conf)

    def agent(self):
        conf = main.load_config([self.conf_file])
        return main.Agent(conf, 'compute1', self.root,
                          (self.libvirt_root, self.cgroup_root, None),
                          main.open_store(conf))

    def stored(self):
        """``(full payload, memory record)`` bytes in memcached, or None."""
        keys = [store.key(store.FULL_PREFIX, 'compute1'),
                store.key(store.RECORD_PREFIX, 'compute1')]
        values, _, _ = store.MemcacheStore([self.memcached.url], 5).get_multi(
            keys, payload.MAX_BYTES * 2)
        return tuple(values.get(k) for k in keys)

    def test_agent_stores_payload_and_memory_record(self):
        """Ensures one publish stores both keys, with the TTL, verifying."""
        self.assertEqual(0, main.main(['--once', '--config-file',
                                       self.conf_file, '--sysfs-root',
                                       self.root]))
        full, record = self.stored()
        data = payload.verify(full, 'compute1', full=True)
        self.assertEqual((fake_sysfs.TWO_NODE_FREE_MB, UNTOUCHED_MB,
                          GUESTS_MB),
                         (data.free_mb, data.untouched_mb, data.guests_mb))
        trusted = payload.verify(record, 'compute1', full=True)
        self.assertEqual(data, trusted)
        # The record is the memory part of the very same payload.
        self.assertEqual(payload.encode_record(json.loads(full)), record)
        self.assertNotIn(b'devices', record)
        self.assertNotIn(b'cpus', record)
        # Stored raw, with the TTL of [numa_guard_agent] ttl.
        for prefix in (store.FULL_PREFIX, store.RECORD_PREFIX):
            reply = self.memcached.command(
                b'mg %s t f\r\n' % store.key(prefix, 'compute1').encode())
            self.assertRegex(reply.decode(), r'^HD t4[0-5] f0\r\n$')

    def test_signed_payload_and_record_verify(self):
        """Ensures both stored values carry the host's own signature."""
        self.conf_file = self.publish_conf(
            '[numa_guard]\npayload_signing_key = s3cret\n')
        self.assertEqual(0, main.main(['--once', '--config-file',
                                       self.conf_file, '--sysfs-root',
                                       self.root]))
        key = payload.host_key('s3cret', 'compute1')
        for raw in self.stored():
            self.assertEqual(GUESTS_MB, payload.verify(
                raw, 'compute1', key, full=True).guests_mb)
            exc = self.assertRaises(payload.Untrusted, payload.verify, raw,
                                    'compute1', payload.host_key('s3cret',
                                                                 'other'))
            self.assertEqual(payload.BAD_SIGNATURE, exc.code)

    def test_agent_publishes_what_the_scheduler_reads(self):
        """Ensures the agent's memory record reaches the cache source."""
        self.assertEqual(0, main.main(['--once', '--config-file',
                                       self.conf_file, '--sysfs-root',
                                       self.root]))
        live = self.reader().live_data(['compute1'])
        trusted = live.hosts['compute1']
        self.assertEqual((fake_sysfs.TWO_NODE_FREE_MB, UNTOUCHED_MB,
                          GUESTS_MB),
                         (trusted.free_mb, trusted.untouched_mb,
                          trusted.guests_mb))

    def test_physnets_reach_the_cache_source(self):
        """Ensures that the memory record carries the physnets' nodes."""
        self.conf_file = self.publish_conf(
            'physnet_interfaces = physnet1:ens1f0\n')
        self.assertEqual(0, main.main(['--once', '--config-file',
                                       self.conf_file, '--sysfs-root',
                                       self.root]))
        trusted = self.reader().live_data(['compute1']).hosts['compute1']
        self.assertEqual({'physnet1': frozenset([1])}, trusted.physnets)

    def test_memcache_pool_backend_publishes(self):
        """Ensures [cache] backend oslo_cache.memcache_pool is served too.

        The agent uses its own raw-bytes client on [cache] memcache_servers
        whatever the memcached backend, so nothing is pickled.
        """
        conf = self.write_conf(
            '[cache]\nenabled = True\nbackend = oslo_cache.memcache_pool\n'
            'memcache_servers = %s\n[numa_guard_agent]\n%s' % (
                self.memcached.url, self.guest_opts()))
        self.assertEqual(0, main.main(['--once', '--config-file', conf,
                                       '--sysfs-root', self.root, '--host',
                                       'compute1']))
        full, record = self.stored()
        self.assertTrue(full.startswith(b'{'))
        payload.verify(record, 'compute1', full=True)

    def test_agent_survives_a_cache_outage(self):
        """Ensures failures are logged once and publishing resumes."""
        agent = self.agent()
        self.assertTrue(agent.publish_once())
        self.memcached.stop()
        self.assertFalse(agent.publish_once())
        self.assertFalse(agent.publish_once())
        self.assertEqual(1, self.log.output.count('Cannot publish'))
        self.memcached.start()
        self.assertTrue(agent.publish_once())
        self.assertTrue(agent.publish_once())
        self.assertEqual(1, self.log.output.count('Publishing to the cache '
                                                  'again'))
        self.assertIn('compute1', self.reader().live_data(['compute1']).hosts)

    def test_backoff_doubles_up_to_the_maximum(self):
        """Ensures waits of 1, 2, 4... s after failures, interval after."""
        conf = main.load_config([self.conf_file])
        conf.set_override('max_backoff', 4, group='numa_guard_agent')
        agent = main.Agent(conf, 'compute1', self.root, None)
        results = iter([False, False, False, False, True, False])
        self.useFixture(fixtures.MockPatchObject(
            agent, 'publish_once', side_effect=lambda: next(results)))
        stop = _CountingStop(6)
        agent.run(stop)
        self.assertEqual([1, 2, 4, 4], stop.waits[:4])
        self.assertAlmostEqual(10, stop.waits[4], delta=0.5)
        self.assertEqual(1, stop.waits[5])

    def test_sysfs_problems_logged_once_per_change(self):
        """Ensures sysfs problems are logged once per change of state."""
        agent = self.agent()
        cpulist = os.path.join(self.root, 'devices', 'system', 'node',
                               'node1', 'cpulist')
        os.rename(cpulist, cpulist + '.bak')
        agent.publish_once()
        agent.publish_once()
        self.assertEqual(1, self.log.output.count('Cannot read part'))
        os.rename(cpulist + '.bak', cpulist)
        agent.publish_once()
        self.assertIn('read cleanly again', self.log.output)

    def guest_fields(self):
        """What the stored payload says of the guests, or None."""
        data = json.loads(self.stored()[0])
        if 'guests_mb' not in data:
            for node in data['nodes']:
                self.assertNotIn('guest_untouched_mb', node)
            return None
        return ({n['id']: n['guest_untouched_mb'] for n in data['nodes']},
                data['guests_mb'])

    def test_publishes_without_guest_data_warning_per_change(self):
        """Ensures missing guest data drops the guest fields, warned once.

        One warning per change of state: cgroup v2 gone, then libvirt data
        gone instead, then both back.
        """
        agent = self.agent()
        self.assertTrue(agent.publish_once())
        self.assertEqual((UNTOUCHED_MB, GUESTS_MB),
                         self.guest_fields())
        self.assertEqual([], self.warnings())

        controllers = os.path.join(self.cgroup_root, 'cgroup.controllers')
        os.rename(controllers, controllers + '.bak')
        self.assertTrue(agent.publish_once())
        self.assertTrue(agent.publish_once())
        self.assertIsNone(self.guest_fields())
        self.assertEqual(1, len(self.warnings()))
        self.assertIn('%s: not a cgroup v2 hierarchy' % self.cgroup_root,
                      self.warnings()[0])

        os.rename(controllers + '.bak', controllers)
        libvirt_bak = self.libvirt_root + '.bak'
        os.rename(self.libvirt_root, libvirt_bak)
        self.assertTrue(agent.publish_once())
        self.assertTrue(agent.publish_once())
        self.assertIsNone(self.guest_fields())
        self.assertEqual(2, len(self.warnings()))
        self.assertIn('%s: cannot list libvirt runtime state' %
                      self.libvirt_root, self.warnings()[1])
        self.assertNotIn('cgroup', self.warnings()[1])

        os.rename(libvirt_bak, self.libvirt_root)
        self.assertTrue(agent.publish_once())
        self.assertTrue(agent.publish_once())
        self.assertEqual((UNTOUCHED_MB, GUESTS_MB),
                         self.guest_fields())
        self.assertEqual(2, len(self.warnings()))
        self.assertEqual(1, self.log.output.count('read cleanly again'))

    def test_guest_problem_kept_quiet_while_it_lasts(self):
        """Ensures a lasting bad runtime file is warned about once."""
        agent = self.agent()
        fake_guests.write_runtime_xml(self.libvirt_root, 'broken', '<dom')
        for _ in range(3):
            self.assertTrue(agent.publish_once())
        # The other guests still count.
        self.assertEqual((UNTOUCHED_MB, GUESTS_MB),
                         self.guest_fields())
        self.assertEqual(1, len(self.warnings()))
        self.assertIn('broken.xml: not XML', self.warnings()[0])
        shutil.rmtree(os.path.join(self.cgroup_root, 'machine.slice'))
        self.assertTrue(agent.publish_once())
        self.assertIsNone(self.guest_fields())
        self.assertEqual(2, len(self.warnings()))
        self.assertIn('no scope of any of the 2 running guests',
                      self.warnings()[1])

    # The agent never publishes what the scheduler would refuse.

    def test_refused_once_exits_1_and_publishes_nothing(self):
        """Ensures --once with a 512 PiB node stores nothing and exits 1."""
        self.set_mem_total(0, HUGE_NODE_KB)
        self.assertEqual(1, main.main(['--once', '--config-file',
                                       self.conf_file, '--sysfs-root',
                                       self.root]))
        self.assertEqual((None, None), self.stored())
        self.assertEqual('nova-numa-guard-agent: nothing published: the '
                         'scheduler would refuse it: %s\n' % self.refusal(),
                         self.stderr.getvalue())
        self.assertEqual(1, len(self.errors()))
        self.assertNotIn('Cannot publish', self.log.output)

    def test_refusal_logged_once_per_change_of_state(self):
        """Ensures one ERROR per change, nothing stored while refused."""
        agent = self.agent()
        self.set_mem_total(0, HUGE_NODE_KB)
        self.assertFalse(agent.publish_once())
        self.assertFalse(agent.publish_once())
        self.assertEqual((None, None), self.stored())
        self.assertEqual(["ERROR Not publishing: the scheduler would refuse "
                          "this host's payload (%s)" % self.refusal()],
                         self.errors())
        self.assertEqual('the scheduler would refuse it: %s' %
                         self.refusal(), agent.why_not())

        # Another refusal is another state: logged once more.
        self.set_mem_total(0, HUGE_NODE_KB // 2)
        self.assertFalse(agent.publish_once())
        self.assertFalse(agent.publish_once())
        self.assertEqual(2, len(self.errors()))
        self.assertIn(self.refusal(HUGE_NODE_MB // 2), self.errors()[1])
        self.assertEqual((None, None), self.stored())

        # Sane again: published, and said once.
        self.set_mem_total(0, fake_sysfs.two_node_nodes()[0]['meminfo'][
            'MemTotal'])
        self.assertTrue(agent.publish_once())
        self.assertTrue(agent.publish_once())
        self.assertEqual(1, self.log.output.count(
            "The payload passes the scheduler's checks again"))
        trusted = payload.verify(self.stored()[1], 'compute1', full=True)
        self.assertEqual((fake_sysfs.TWO_NODE_FREE_MB, GUESTS_MB),
                         (trusted.free_mb, trusted.guests_mb))

        # Refused again after that: a new change of state.
        self.set_mem_total(0, HUGE_NODE_KB)
        self.assertFalse(agent.publish_once())
        self.assertEqual(3, len(self.errors()))
        self.assertEqual([], self.warnings())

    def test_refused_payload_backs_off(self):
        """Ensures a refused payload is retried with the failure backoff."""
        self.set_mem_total(0, HUGE_NODE_KB)
        conf = main.load_config([self.conf_file])
        conf.set_override('max_backoff', 4, group='numa_guard_agent')
        agent = main.Agent(conf, 'compute1', self.root,
                           (self.libvirt_root, self.cgroup_root, None),
                           main.open_store(conf))
        stop = _CountingStop(4)
        agent.run(stop)
        self.assertEqual([1, 2, 4, 4], stop.waits)
        self.assertEqual(1, len(self.errors()))
        self.assertEqual((None, None), self.stored())


class _CountingStop:
    """A stop event that records the waits and stops after ``n`` of them."""

    def __init__(self, n):
        self.n = n
        self.waits = []

    def is_set(self):
        return len(self.waits) >= self.n

    def wait(self, timeout):
        self.waits.append(timeout)
