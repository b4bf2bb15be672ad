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

"""The ``cache`` memory source against a real memcached on loopback."""

import gc
import os
import pickle
import signal
import time
import weakref

import fixtures

from nova_numa_guard import live
from nova_numa_guard.live import payload
from nova_numa_guard.live import store
from tests.unit.live import base

SPRUNG = []
MIB = 1024 * 1024


def _spring():
    SPRUNG.append(True)
    return {'schema': 1}


class _Trap:
    """Unpickling this calls _spring(): proof that something unpickled."""

    def __reduce__(self):
        return (_spring, ())


class _Hosts(list):
    """A request's host list that a weak reference can follow."""


def code(reason):
    """The reason code of a ``LiveData.missing`` reason."""
    return reason.split(':')[0]


class CacheSourceTestCase(base.LiveSourceTestCase):
    """The cache source against real memcached servers."""

    def setUp(self):
        super().setUp()
        self.use_memcached()
        # Not about timeouts: a busy test machine never makes a read fail.
        self.flags(cache_timeout=10.0)
        # Count memcached round trips: one pipelined get per server and
        # call.
        self.round_trips = []
        real = store._Connection.get_many

        def counting(connection, keys, *args):
            self.round_trips.append(len(keys))
            return real(connection, keys, *args)
        self.useFixture(fixtures.MockPatchObject(
            store._Connection, 'get_many', counting))

    def publish(self, host, data=None, raw=None, flags=0,
                prefix=store.RECORD_PREFIX):
        """Store a value for ``host`` with a raw memcached ``set``.

        :param data: a payload, stored as its memory record.
        """
        if raw is None:
            raw = payload.encode_record(
                data or base.two_node_payload(host))
        key = store.key(prefix, host).encode()
        reply = self.memcached.command(
            b'set %s %d 600 %d\r\n%s\r\n' % (key, flags, len(raw), raw))
        self.assertEqual(b'STORED\r\n', reply)


class CacheSourceTest(CacheSourceTestCase):

    def setUp(self):
        super().setUp()
        self.source = live.load('cache')

    def test_reads_1000_hosts_in_one_batched_call(self):
        """Ensures one request fetches 1,000 hosts with one round trip."""
        hosts = ['compute%d' % i for i in range(1000)]
        self.publish_records(hosts[:990])

        data = self.source.live_data(hosts)

        self.assertEqual([1000], self.round_trips)
        self.assertEqual(990, len(data.hosts))
        trusted = data.hosts['compute5']
        self.assertIsInstance(trusted, payload.Trusted)
        self.assertEqual({0: 10501, 1: 2769}, trusted.free_mb)
        self.assertEqual({0: 14286, 1: 7854}, trusted.available_mb)
        self.assertEqual(10, len(data.missing))
        self.assertIn('no live data', data.missing['compute999'])
        self.assertIsNone(data.unavailable)

    def test_reads_the_memory_record_key(self):
        """Ensures the source reads each host's memory record, not more.

        The agent stores the full payload and the memory record under two
        keys; only the record is fetched.
        """
        self.publish('compute1', base.two_node_payload('compute1'),
                     prefix=store.FULL_PREFIX)
        self.publish('compute2', base.two_node_payload(
            'compute2', free={0: 100, 1: 200}), prefix=store.FULL_PREFIX)
        self.publish('compute2', base.two_node_payload(
            'compute2', free={0: 30000, 1: 20000}))
        data = self.source.live_data(['compute1', 'compute2'])
        self.assertEqual(['compute2'], list(data.hosts))
        self.assertEqual({0: 30000, 1: 20000},
                         data.hosts['compute2'].free_mb)
        self.assertIn('no live data', data.missing['compute1'])

    def test_host_names_memcached_cannot_take(self):
        """Ensures hosts whose names are not memcached keys are read."""
        hosts = ['compute 1', 'c\u00f6mpute2', 'x' * 300]
        self.publish_records(hosts)
        data = self.source.live_data(hosts)
        self.assertEqual(sorted(hosts), sorted(data.hosts))

    def test_filter_fetches_all_hosts_with_one_get_list(self):
        """Ensures the filter makes one get_list for a whole request."""
        self.flags(memory_source='cache')
        hosts = self.host_states(500)
        self.publish_records([h.host for h in hosts[:250]])
        filter_obj = base.numa_cell_fit.NUMACellFitFilter()
        mstore = filter_obj._source.store
        get_list = self.useFixture(fixtures.MockPatchObject(
            mstore, 'get_list', side_effect=mstore.get_list))
        spec = base.fakes.request_spec(base.SIXTEEN_GB, 4)
        passed = list(filter_obj.filter_all(hosts, spec))
        self.assertEqual(1, get_list.mock.call_count)
        self.assertEqual([500], self.round_trips)
        # The live figures keep 16 GB out; no data: accounted.
        self.assertEqual([h.host for h in hosts[250:]],
                         [h.host for h in passed])

    def test_memo_serves_requests_that_follow_closely(self):
        """Ensures a second request within the memo time costs no trip."""
        self.flags(live_data_memo_seconds=5)
        source = live.load('cache')
        self.publish_records(['compute1'])
        source.live_data(['compute1', 'compute2'])
        data = source.live_data(['compute1', 'compute2'])
        self.assertEqual([2], self.round_trips)
        self.assertEqual({0: 10501, 1: 2769},
                         data.hosts['compute1'].free_mb)
        self.assertIn('no live data', data.missing['compute2'])
        source.live_data(['compute1', 'compute3'])
        self.assertEqual([2, 1], self.round_trips)
        real = time.monotonic
        ahead = [4]
        self.useFixture(fixtures.MockPatch(
            'time.monotonic', new=lambda: real() + ahead[0]))
        source.live_data(['compute1', 'compute3'])
        self.assertEqual([2, 1], self.round_trips)
        ahead[0] = 6
        source.live_data(['compute1', 'compute3'])
        self.assertEqual([2, 1, 2], self.round_trips)

    def test_memo_can_be_turned_off(self):
        """Ensures live_data_memo_seconds = 0 fetches at every request."""
        self.flags(live_data_memo_seconds=0)
        source = live.load('cache')
        self.publish_records(['compute1'])
        for _ in range(3):
            data = source.live_data(['compute1', 'compute2'])
            self.assertEqual({0: 10501, 1: 2769},
                             data.hosts['compute1'].free_mb)
        self.assertEqual([2, 2, 2], self.round_trips)

    def test_same_bad_bytes_are_checked_once(self):
        """Ensures a refused payload is not parsed again while unchanged."""
        self.flags(live_data_memo_seconds=0)
        source = live.load('cache')
        self.publish('compute1', raw=b'{"schema": 1, "host": "x"')
        # A JSON record (an agent of the previous release).
        self.publish('compute2', raw=payload.encode(payload.memory_record(
            base.two_node_payload('other'))))
        verify = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.verify',
            side_effect=payload.verify))
        decode = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload._DECODER.decode',
            side_effect=payload._DECODER.decode))
        for _ in range(3):
            data = source.live_data(['compute1', 'compute2'])
            self.assertIn('not JSON', data.missing['compute1'])
            self.assertIn('wrong host', data.missing['compute2'])
        self.assertEqual([2, 2, 2], self.round_trips)
        self.assertEqual(2, verify.mock.call_count)
        self.assertEqual(2, decode.mock.call_count)
        self.publish('compute1', raw=b'{"schema": 1, "host": "y"')
        source.live_data(['compute1', 'compute2'])
        self.assertEqual(3, verify.mock.call_count)

    def test_unchanged_trusted_payload_is_verified_once(self):
        """Ensures a trusted payload fetched again is not parsed again."""
        self.flags(live_data_memo_seconds=0)
        source = live.load('cache')
        self.publish_records(['compute1'])
        verify = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.verify',
            side_effect=payload.verify))
        for _ in range(3):
            self.assertIn('compute1', source.live_data(['compute1']).hosts)
        self.assertEqual([1, 1, 1], self.round_trips)
        self.assertEqual(1, verify.mock.call_count)

    def test_unchanged_bytes_come_back_as_the_verified_ones(self):
        """Ensures the store hands back the verified bytes while unchanged.

        The source then knows them by identity; a changed record is new
        bytes, verified again.
        """
        self.flags(live_data_memo_seconds=0)
        source = live.load('cache')
        self.publish_records(['compute1', 'compute2'])
        source.live_data(['compute1', 'compute2'])
        entries = source.entries(['compute1', 'compute2'])
        verified = [entry.mark for entry in entries]
        self.publish('compute2', base.two_node_payload(
            'compute2', free={0: 100, 1: 200}))
        data = source.live_data(['compute1', 'compute2'])
        self.assertIs(verified[0], source.fetch_raw(entries[:1])[0])
        self.assertIsNot(verified[1], entries[1].mark)
        self.assertEqual({0: 100, 1: 200}, data.hosts['compute2'].free_mb)

    def test_payload_signed_for_another_host_is_refused(self):
        """Ensures a host's key cannot sign a payload for another host."""
        self.flags(payload_signing_key='k3y')
        source = live.load('cache')
        # compute2 signs a record naming compute1 with its own key.
        self.publish('compute1', raw=base.record(
            'compute1', key=payload.host_key('k3y', 'compute2')))
        data = source.live_data(['compute1'])
        self.assertEqual({}, data.hosts)
        self.assertIn('bad signature', data.missing['compute1'])

    def test_memo_still_checks_age(self):
        """Ensures a memoised payload that turned stale is not used."""
        self.flags(max_data_age=5)
        source = live.load('cache')
        self.publish_records(['compute1'], timestamp=time.time() - 4)
        self.assertIn('compute1', source.live_data(['compute1']).hosts)
        self.useFixture(fixtures.MockPatch('time.time',
                                           return_value=time.time() + 3))
        data = source.live_data(['compute1'])
        self.assertEqual({}, data.hosts)
        self.assertIn('stale', data.missing['compute1'])

    def test_garbage_bytes_ignored_with_a_reason(self):
        """Ensures garbage in one key spoils only that host."""
        self.publish('compute1')
        self.publish('compute2', raw=b'\x00\xff garbage \x80')
        self.publish('compute3', raw=b'x' * (payload.MAX_RECORD_BYTES + 10))
        data = self.source.live_data(['compute1', 'compute2', 'compute3'])
        self.assertEqual(['compute1'], list(data.hosts))
        self.assertIn('not JSON', data.missing['compute2'])
        self.assertIn('too large', data.missing['compute3'])
        self.assertIn('ignoring the live data of 1 of 3 host(s) (not JSON)',
                      self.log.output)

    def test_record_larger_than_the_limit_is_too_large(self):
        """Ensures a well-formed record over MAX_RECORD_BYTES is refused.

        It is refused from its header, unread; forty hosts afford skipping
        its bytes, so the host after it is read.
        """
        big = base.two_node_payload('compute1')
        big['padding'] = 'x' * payload.MAX_RECORD_BYTES
        self.publish('compute1', raw=payload.encode(big))
        self.publish('compute2')
        data = self.source.live_data(['compute%d' % i for i in range(1, 41)])
        self.assertEqual(payload.TOO_LARGE, code(data.missing['compute1']))
        self.assertIn('more than %d' % payload.MAX_RECORD_BYTES,
                      data.missing['compute1'])
        self.assertEqual(['compute2'], list(data.hosts))
        # What is kept of it is the refusal, not its bytes.
        self.assertIsInstance(self.source._hosts['compute1'].value,
                              payload.Untrusted)

    def test_hosts_past_the_byte_budget_are_judged_on_accounted_data(self):
        """Ensures a planted 1 MiB value costs no more than the budget.

        Its header says it is larger than a record: it is refused unread
        (too large). Three hosts cannot afford to skip its bytes, so the
        hosts read after it are not read either; the store failed them, so
        they are judged on accounted data (not as missing), with a warning.
        A request large enough to afford skipping it reads them.
        """
        self.flags(live_data_memo_seconds=0)
        source = live.load('cache')
        self.publish('compute1', raw=b'x' * MIB)
        self.publish_records(['compute2', 'compute3'])
        received = []
        real_recv = store._BoundedSocket.recv

        def counting(sock, size):
            data = real_recv(sock, size)
            received.append(len(data))
            return data
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.live.store._BoundedSocket.recv', counting))
        hosts = ['compute1', 'compute2', 'compute3']
        data = source.live_data(hosts)
        self.assertLessEqual(sum(received), source.byte_budget(3))
        self.assertEqual({}, data.hosts)
        self.assertEqual(['compute1'], list(data.missing))
        self.assertEqual(payload.TOO_LARGE, code(data.missing['compute1']))
        self.assertIn('2 of 3 host(s) could not be read (e.g. compute2): the '
                      'store holds values too large to read within the byte '
                      'budget of the request; judging them on accounted '
                      'memory', self.log.output)
        # 300 hosts afford 1.2 MiB: only the planted host is refused.
        hosts += ['compute%d' % i for i in range(4, 301)]
        del received[:]
        data = source.live_data(hosts)
        self.assertLessEqual(sum(received), source.byte_budget(300))
        self.assertEqual(['compute2', 'compute3'], sorted(data.hosts))
        self.assertEqual(payload.TOO_LARGE, code(data.missing['compute1']))

    def test_refused_value_does_not_keep_requests_alive(self):
        """Ensures a memoised refusal does not hold on to the request.

        The refusal of a host's garbage is kept; raising it at every request
        must not chain that request's frames (and everything they hold) to
        it.
        """
        self.flags(live_data_memo_seconds=3600)
        source = live.load('cache')
        self.publish('compute1', raw=b'{garbage')
        refs = []
        for _ in range(3):
            hosts = _Hosts(['compute1'])
            refs.append(weakref.ref(hosts))
            data = source.live_data(hosts)
            self.assertEqual(payload.NOT_JSON,
                             code(data.missing['compute1']))
            del hosts
        self.assertEqual([1], self.round_trips)
        gc.collect()
        self.assertEqual([None, None, None], [ref() for ref in refs])

    def test_pickled_value_is_never_unpickled(self):
        """Ensures a value flagged as pickle stays bytes (no code runs)."""
        del SPRUNG[:]
        self.publish('compute1', raw=pickle.dumps(_Trap()), flags=1)
        data = self.source.live_data(['compute1'])
        self.assertEqual([], SPRUNG)
        # A pickle is neither a msgpack record nor JSON.
        self.assertIn('not JSON', data.missing['compute1'])

    def test_signed_payloads(self):
        """Ensures with a key only correctly signed records are used."""
        self.flags(payload_signing_key='k3y')
        source = live.load('cache')
        self.publish('good', raw=base.record(
            'good', key=payload.host_key('k3y', 'good')))
        self.publish('unsigned', raw=base.record('unsigned'))
        self.publish('forged', raw=base.record(
            'forged', key=payload.host_key('guess', 'forged')))
        # The full payload's signature does not sign the record.
        full = base.two_node_payload(
            'full', key=payload.host_key('k3y', 'full'))
        record = payload.memory_record(full)
        record['signature'] = full['signature']
        self.publish('full', raw=payload.encode(record))
        data = source.live_data(['good', 'unsigned', 'forged', 'full'])
        self.assertEqual(['good'], list(data.hosts))
        self.assertIn('unsigned', data.missing['unsigned'])
        self.assertIn('bad signature', data.missing['forged'])
        self.assertIn('bad signature', data.missing['full'])

    def test_warnings_are_rate_limited(self):
        """Ensures one warning per reason, not one per host and request."""
        hosts = ['compute%d' % i for i in range(50)]
        for _ in range(3):
            self.source.forget()
            self.source.live_data(hosts)
        self.assertEqual(1, self.log.output.count('WARNING'))
        self.assertIn('50 of 50 host(s) (missing)', self.log.output)

    def test_per_host_state_stays_bounded(self):
        """Ensures what the source keeps per host follows nova's hosts.

        Ten requests of 1,000 hosts each, never the same twice: the source
        never keeps more than twice a request's hosts plus 1,000.
        """
        sizes = []
        for round_number in range(10):
            hosts = ['compute%d-%d' % (round_number, i) for i in range(1000)]
            data = self.source.live_data(hosts)
            self.assertEqual(1000, len(data.missing))
            sizes.append(len(self.source._hosts))
        self.assertLessEqual(max(sizes), 2 * 1000 + 1000)
        # The hosts of the last request are all kept.
        self.assertLessEqual(set(hosts), set(self.source._hosts))


class BackendTest(base.LiveSourceTestCase):
    """Which [cache] backends the cache source accepts at start."""

    def test_non_memcached_backends_stop_the_scheduler(self):
        """Ensures redis, null (the default) and others are refused."""
        for backend in ('dogpile.cache.null', 'dogpile.cache.redis',
                        'dogpile.cache.redis_sentinel',
                        'dogpile.cache.memory'):
            self.flags(group='cache', backend=backend)
            exc = self.assertRaises(live.MemorySourceError, live.load,
                                    'cache')
            self.assertEqual(1, len(str(exc).splitlines()))
            self.assertIn("memory_source = 'cache': [cache] backend = %s"
                          % backend, str(exc))
            self.assertIn('memcached only', str(exc))

    def test_every_memcached_backend_is_accepted(self):
        """Ensures every memcached backend name loads the source."""
        for backend in sorted(store.MEMCACHED_BACKENDS):
            self.flags(group='cache', backend=backend,
                       memcache_servers=['127.0.0.1:1'])
            self.assertEqual(['127.0.0.1:1'], list(
                live.load('cache').store._servers))

    def test_malformed_server_list_stops_the_scheduler(self):
        """Ensures a server without a port is refused at start."""
        self.flags(group='cache', backend='dogpile.cache.pymemcache',
                   memcache_servers=['localhost'])
        exc = self.assertRaises(live.MemorySourceError, live.load, 'cache')
        self.assertIn("'localhost' is not host:port", str(exc))


class SeveralServersTest(base.LiveSourceTestCase):
    """Two memcached servers; one of them goes away."""

    def setUp(self):
        super().setUp()
        self.use_memcached(2)
        # The stopped server refuses at once: no read waits for it.
        self.flags(memory_source='cache', on_missing_live_data='reject',
                   cache_timeout=10.0)
        self.hosts = self.host_states(40)
        self.publish_records([h.host for h in self.hosts],
                             free={0: 30000, 1: 30000})
        self.filter = base.numa_cell_fit.NUMACellFitFilter()

    def test_hosts_of_a_dead_server_are_judged_on_accounted_data(self):
        """Ensures a dead server's hosts are not rejected as missing.

        With on_missing_live_data = reject, the hosts whose server is down
        must still be judged on accounted data, as when the whole cache is
        down; the other server's hosts keep their live data.
        """
        self.assertEqual(40, len(self.run_filter(self.hosts,
                                                 filter_obj=self.filter)))
        mstore = self.filter._source.store
        dead = self.servers[0].url
        on_dead = [h.host for h in self.hosts if mstore.server_of(
            store.key(store.RECORD_PREFIX, h.host)) == dead]
        self.assertTrue(0 < len(on_dead) < 40)
        self.servers[0].stop()
        for _ in range(3):
            self.filter._source.forget()
            data = self.filter._source.live_data([h.host for h in self.hosts])
            self.assertEqual(40 - len(on_dead), len(data.hosts))
            self.assertEqual({}, data.missing)
            passed = self.run_filter(self.hosts, filter_obj=self.filter)
            self.assertEqual(40, len(passed))
        self.assertNotIn('no trusted live memory data', self.log.output)
        self.assertIn('cannot be reached', self.log.output)


class CacheOutageTest(base.LiveSourceTestCase):
    """memcached goes away while the scheduler runs."""

    def setUp(self):
        super().setUp()
        self.use_memcached()
        self.flags(memory_source='cache', cache_timeout=0.5)
        self.hosts = self.host_states(1000)
        self.names = [h.host for h in self.hosts]
        self.publish_records(self.names)
        self.filter = base.numa_cell_fit.NUMACellFitFilter()
        self.source = self.filter._source

    def timed_live_data(self):
        self.source.forget()
        started = time.monotonic()
        data = self.source.live_data(self.names)
        return data, time.monotonic() - started

    def test_stopped_memcached_falls_back_to_accounted(self):
        """Ensures the filter keeps answering, on accounted data, at once."""
        self.assertEqual([], self.run_filter(self.hosts,
                                             filter_obj=self.filter))
        self.memcached.stop()
        for _ in range(3):
            data, elapsed = self.timed_live_data()
            self.assertIsNotNone(data.unavailable)
            self.assertLess(elapsed, 5 * 0.5)
            # Accounted data holds a 16 GB guest on every host.
            self.assertEqual(1000, len(self.run_filter(
                self.hosts, filter_obj=self.filter)))
        self.assertEqual(1, self.log.output.count('cannot be read'))
        self.assertIn('judging every host on accounted memory',
                      self.log.output)

    def test_hung_memcached_costs_at_most_the_timeout(self):
        """Ensures a memcached that accepts but never answers is bounded.

        The first request waits [numa_guard] cache_timeout at most; the
        server is then left alone: the next requests do not connect.
        """
        connects = []
        real_connect = store._BoundedSocket.connect

        def counting(sock, address):
            connects.append(address)
            return real_connect(sock, address)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.live.store._BoundedSocket.connect', counting))
        os.kill(self.memcached.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, self.memcached.process.pid, signal.SIGCONT)
        data, elapsed = self.timed_live_data()
        self.assertIsNotNone(data.unavailable)
        self.assertLess(elapsed, 5 * 0.5)
        connected = len(connects)
        for _ in range(2):
            data, elapsed = self.timed_live_data()
            self.assertIn('failed less than', data.unavailable)
            self.assertEqual(1000, len(self.run_filter(
                self.hosts, filter_obj=self.filter)))
        self.assertEqual(connected, len(connects))
