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

import os
import pickle
import signal
import time

import fixtures
from pymemcache.client import base as pymemcache_base

from nova_numa_guard import payload
from nova_numa_guard import sources
from nova_numa_guard.sources import cache
from tests import memcached_fixture
from tests.unit.sources import base

SPRUNG = []


def _spring():
    SPRUNG.append(True)
    return {'schema': 1}


class _Trap:
    """Unpickling this calls _spring(): proof that something unpickled."""

    def __reduce__(self):
        return (_spring, ())


class CacheSourceTest(base.LiveSourceTestCase):
    """The cache source against one real memcached."""

    def setUp(self):
        super().setUp()
        self.use_memcached()
        self.source = sources.load('cache')
        self.store = self.source._store
        # Count memcached round trips: one get_many per server and call.
        self.round_trips = []
        real = pymemcache_base.Client.get_many

        def counting(client, keys, *args, **kwargs):
            self.round_trips.append(len(keys))
            return real(client, keys, *args, **kwargs)
        self.useFixture(fixtures.MockPatchObject(
            pymemcache_base.Client, 'get_many', counting))

    def publish(self, host, data=None, raw=None, flags=0):
        """Store a payload for ``host`` with a raw memcached ``set``."""
        if raw is None:
            raw = payload.encode(data or base.seed_payload(host))
        key = self.store._mangle(cache.cache_key(host)).encode()
        reply = self.memcached.command(
            b'set %s %d 60 %d\r\n%s\r\n' % (key, flags, len(raw), raw))
        self.assertEqual(b'STORED\r\n', reply)

    def test_reads_1000_hosts_in_one_batched_call(self):
        """Ensures one request fetches 1,000 hosts with one round trip."""
        hosts = ['compute%d' % i for i in range(1000)]
        for host in hosts[:990]:
            self.store.set(host, payload.encode(base.seed_payload(host)))

        live = self.source.live_free_mb(hosts)

        self.assertEqual([1000], self.round_trips)
        self.assertEqual(990, len(live))
        self.assertEqual({0: 10501, 1: 2769}, live['compute5'])
        self.assertEqual({0: 14286, 1: 7854}, live.available['compute5'])
        self.assertEqual(10, len(live.missing))
        self.assertIn('no live data', live.missing['compute999'])
        self.assertIsNone(live.unavailable)

    def test_filter_fetches_all_hosts_with_one_get_multi(self):
        """Ensures the filter makes one get_multi for a whole request."""
        self.flags(memory_source='cache')
        hosts = self.host_states(500)
        for host in hosts[:250]:
            self.store.set(host.host, payload.encode(
                base.seed_payload(host.host)))
        filter_obj = base.numa_cell_fit.NUMACellFitFilter()
        store = filter_obj._source._store
        get_multi = self.useFixture(fixtures.MockPatchObject(
            store, 'get_multi', side_effect=store.get_multi))
        spec = base.fakes.request_spec(base.SIXTEEN_GB, 4)
        passed = list(filter_obj.filter_all(hosts, spec))
        self.assertEqual(1, get_multi.mock.call_count)
        self.assertEqual([500], self.round_trips)
        # The seed's live figures keep 16 GB out; no data: accounted.
        self.assertEqual([h.host for h in hosts[250:]],
                         [h.host for h in passed])

    def test_memo_serves_requests_that_follow_closely(self):
        """Ensures a second request within the memo time costs no trip."""
        self.flags(live_data_memo_seconds=5)
        source = sources.load('cache')
        self.store.set('compute1', payload.encode(
            base.seed_payload('compute1')))
        source.live_free_mb(['compute1', 'compute2'])
        live = source.live_free_mb(['compute1', 'compute2'])
        self.assertEqual([2], self.round_trips)
        self.assertEqual({0: 10501, 1: 2769}, live['compute1'])
        source.live_free_mb(['compute1', 'compute3'])
        self.assertEqual([2, 1], self.round_trips)
        self.useFixture(fixtures.MockPatch(
            'time.monotonic', return_value=time.monotonic() + 4))
        source.live_free_mb(['compute1', 'compute3'])
        self.assertEqual([2, 1], self.round_trips)
        self.useFixture(fixtures.MockPatch(
            'time.monotonic', return_value=time.monotonic() + 6))
        source.live_free_mb(['compute1', 'compute3'])
        self.assertEqual([2, 1, 2], self.round_trips)

    def test_memo_can_be_turned_off(self):
        """Ensures live_data_memo_seconds = 0 fetches at every request."""
        self.flags(live_data_memo_seconds=0)
        source = sources.load('cache')
        self.store.set('compute1', payload.encode(
            base.seed_payload('compute1')))
        for _ in range(3):
            live = source.live_free_mb(['compute1', 'compute2'])
            self.assertEqual({0: 10501, 1: 2769}, live['compute1'])
        self.assertEqual([2, 2, 2], self.round_trips)

    def test_one_server_uses_the_plain_client(self):
        """Ensures one memcached server is read without hashing keys."""
        from pymemcache.client import hash as pymemcache_hash
        self.source.live_free_mb(['compute1'])
        client = self.store.backend.client
        self.assertIsInstance(client, pymemcache_base.Client)
        self.assertNotIsInstance(client, pymemcache_hash.HashClient)

    def test_mangled_keys_are_memoised(self):
        """Ensures each host's key is mangled once, not at every request."""
        mangle = self.useFixture(fixtures.MockPatchObject(
            self.store, '_mangle', side_effect=self.store._mangle))
        hosts = ['compute%d' % i for i in range(20)]
        self.source.live_free_mb(hosts)
        self.source.forget()
        self.source.live_free_mb(hosts)
        self.assertEqual(20, mangle.mock.call_count)

    def test_same_bad_bytes_are_checked_once(self):
        """Ensures a refused payload is not parsed again while unchanged."""
        self.flags(live_data_memo_seconds=0)
        source = sources.load('cache')
        self.publish('compute1', raw=b'{"schema": 1, "host": "x"')
        self.publish('compute2', base.seed_payload('other'))
        verify = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.payload.verify', side_effect=payload.verify))
        loads = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.payload._DECODER.decode',
            side_effect=payload._DECODER.decode))
        for _ in range(3):
            live = source.live_free_mb(['compute1', 'compute2'])
            self.assertIn('not JSON', live.missing['compute1'])
            self.assertIn('wrong host', live.missing['compute2'])
        self.assertEqual([2, 2, 2], self.round_trips)
        self.assertEqual(2, verify.mock.call_count)
        self.assertEqual(2, loads.mock.call_count)
        self.publish('compute1', raw=b'{"schema": 1, "host": "y"')
        source.live_free_mb(['compute1', 'compute2'])
        self.assertEqual(3, verify.mock.call_count)

    def test_payload_signed_for_another_host_is_refused(self):
        """Ensures a host's key cannot sign a payload for another host."""
        self.flags(payload_signing_key='k3y')
        source = sources.load('cache')
        # compute2 signs a payload naming compute1 with its own key.
        self.publish('compute1', base.seed_payload(
            'compute1', key=payload.host_key('k3y', 'compute2')))
        live = source.live_free_mb(['compute1'])
        self.assertEqual({}, dict(live))
        self.assertIn('bad signature', live.missing['compute1'])

    def test_memo_still_checks_age(self):
        """Ensures a memoised payload that turned stale is not used."""
        self.flags(max_data_age=5)
        source = sources.load('cache')
        self.store.set('compute1', payload.encode(
            base.seed_payload('compute1', timestamp=time.time() - 4)))
        self.assertIn('compute1', source.live_free_mb(['compute1']))
        self.useFixture(fixtures.MockPatch('time.time',
                                           return_value=time.time() + 3))
        live = source.live_free_mb(['compute1'])
        self.assertEqual({}, dict(live))
        self.assertIn('stale', live.missing['compute1'])

    def test_garbage_bytes_ignored_with_a_reason(self):
        """Ensures garbage in one key spoils only that host."""
        self.publish('compute1')
        self.publish('compute2', raw=b'\x00\xff garbage \x80')
        self.publish('compute3', raw=b'x' * (payload.MAX_BYTES + 10))
        live = self.source.live_free_mb(['compute1', 'compute2', 'compute3'])
        self.assertEqual(['compute1'], list(live))
        self.assertIn('not JSON', live.missing['compute2'])
        self.assertIn('too large', live.missing['compute3'])
        self.assertIn('ignoring the live data of 1 of 3 host(s) (not JSON)',
                      self.log.output)

    def test_pickled_value_is_never_unpickled(self):
        """Ensures a value flagged as pickle stays bytes (no code runs)."""
        del SPRUNG[:]
        self.publish('compute1', raw=pickle.dumps(_Trap()), flags=1)
        live = self.source.live_free_mb(['compute1'])
        self.assertEqual([], SPRUNG)
        self.assertIn('not JSON', live.missing['compute1'])

    def test_signed_payloads(self):
        """Ensures with a key only correctly signed payloads are used."""
        self.flags(payload_signing_key='k3y')
        source = sources.load('cache')
        self.publish('good', base.seed_payload(
            'good', key=payload.host_key('k3y', 'good')))
        self.publish('unsigned', base.seed_payload('unsigned'))
        self.publish('forged', base.seed_payload(
            'forged', key=payload.host_key('guess', 'forged')))
        live = source.live_free_mb(['good', 'unsigned', 'forged'])
        self.assertEqual(['good'], list(live))
        self.assertIn('unsigned', live.missing['unsigned'])
        self.assertIn('bad signature', live.missing['forged'])

    def test_warnings_are_rate_limited(self):
        """Ensures one warning per reason, not one per host and request."""
        hosts = ['compute%d' % i for i in range(50)]
        for _ in range(3):
            self.source.forget()
            self.source.live_free_mb(hosts)
        self.assertEqual(1, self.log.output.count('WARNING'))
        self.assertIn('50 of 50 host(s) (missing)', self.log.output)

    def test_cache_disabled_fails_at_scheduler_start(self):
        """Ensures [cache] enabled = False stops the scheduler at start."""
        self.flags(group='cache', enabled=False)
        exc = self.assertRaises(sources.UnknownMemorySource, sources.load,
                                'cache')
        self.assertIn('[cache] enabled = True', str(exc))


class StoreBackendTest(base.LiveSourceTestCase):
    """Which oslo.cache backends may hold payloads."""

    def test_unpickling_memcached_backends_are_refused(self):
        """Ensures backends whose clients unpickle stop the scheduler."""
        for backend in ('oslo_cache.memcache_pool', 'dogpile.cache.memcached',
                        'dogpile.cache.bmemcached', 'dogpile.cache.pylibmc'):
            self.flags(group='cache', enabled=True, backend=backend,
                       memcache_servers=['127.0.0.1:1'])
            exc = self.assertRaises(ValueError, cache.Store, base.CONF, 0.5)
            self.assertEqual(1, len(str(exc).splitlines()))
            self.assertIn('[cache] backend = %s cannot hold live memory '
                          'payloads' % backend, str(exc))
            self.assertIn('dogpile.cache.pymemcache, dogpile.cache.redis',
                          str(exc))
            exc = self.assertRaises(sources.UnknownMemorySource,
                                    sources.load, 'cache')
            self.assertIn('cannot hold live memory payloads', str(exc))

    def test_backends_without_raw_bytes_are_refused(self):
        """Ensures a backend that keeps objects, not bytes, is refused."""
        self.flags(group='cache', enabled=True,
                   backend='dogpile.cache.memory')
        exc = self.assertRaises(ValueError, cache.Store, base.CONF, 0.5)
        self.assertIn('dogpile.cache.memory cannot hold', str(exc))

    def test_redis_backend_is_accepted(self):
        """Ensures the redis backend, which moves raw bytes, is accepted."""
        self.flags(group='cache', enabled=True, backend='dogpile.cache.redis')
        store = cache.Store(base.CONF, 0.5)
        self.assertTrue(store._raw)


class SeveralServersTest(base.LiveSourceTestCase):
    """Two memcached servers; one of them goes away."""

    def setUp(self):
        super().setUp()
        self.servers = [self.useFixture(memcached_fixture.Memcached())
                        for _ in range(2)]
        self.flags(group='cache', enabled=True,
                   backend='dogpile.cache.pymemcache',
                   memcache_servers=[m.url for m in self.servers])
        self.flags(memory_source='cache', on_missing_live_data='reject')
        self.hosts = self.host_states(40)
        store = cache.Store(base.CONF, 0.5)
        for host in self.hosts:
            store.set(host.host, payload.encode(base.seed_payload(
                host.host, free={0: 30000, 1: 30000})))
        self.filter = base.numa_cell_fit.NUMACellFitFilter()

    def test_hosts_of_a_dead_server_are_judged_on_accounted_data(self):
        """Ensures a dead server's hosts are not rejected as missing.

        pymemcache drops a dead server and its keys come back as misses;
        with on_missing_live_data = reject those hosts must still be judged
        on accounted data, as when the whole cache is down.
        """
        self.assertEqual(40, len(self.run_filter(self.hosts,
                                                 filter_obj=self.filter)))
        self.servers[0].stop()
        for _ in range(3):
            self.filter._source.forget()
            passed = self.run_filter(self.hosts, filter_obj=self.filter)
            self.assertEqual(40, len(passed))
        self.assertNotIn('no trusted live memory data', self.log.output)
        self.assertIn('cannot be reached', self.log.output)


class CacheOutageTest(base.LiveSourceTestCase):
    """memcached goes away while the scheduler runs."""

    def setUp(self):
        super().setUp()
        self.use_memcached()
        self.flags(memory_source='cache')
        self.hosts = self.host_states(1000)
        store = cache.Store(base.CONF, 0.5)
        for host in self.hosts:
            store.set(host.host, payload.encode(
                base.seed_payload(host.host)))
        self.filter = base.numa_cell_fit.NUMACellFitFilter()

    def test_stopped_memcached_falls_back_to_accounted(self):
        """Ensures the filter keeps answering, accounted, within 1 s."""
        self.assertEqual([], self.run_filter(self.hosts,
                                             filter_obj=self.filter))
        self.memcached.stop()
        for _ in range(3):
            self.filter._source.forget()
            started = time.monotonic()
            passed = self.run_filter(self.hosts, filter_obj=self.filter)
            elapsed = time.monotonic() - started
            # Accounted data holds a 16 GB guest on every host.
            self.assertEqual(1000, len(passed))
            self.assertLess(elapsed, 1.0)
        self.assertEqual(1, self.log.output.count('cannot be read'))
        self.assertIn('judging every host on accounted memory',
                      self.log.output)

    def test_hung_memcached_costs_at_most_the_timeout(self):
        """Ensures a memcached that accepts but never answers is bounded.

        The first request waits [numa_guard] cache_timeout (0.5 s); the
        server is then left alone, so the next requests do not wait.
        """
        os.kill(self.memcached.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, self.memcached.process.pid, signal.SIGCONT)
        times = []
        for _ in range(3):
            self.filter._source.forget()
            started = time.monotonic()
            passed = self.run_filter(self.hosts, filter_obj=self.filter)
            times.append(time.monotonic() - started)
            self.assertEqual(1000, len(passed))
        self.assertLess(times[0], 0.5 + 1.0)
        self.assertLess(max(times[1:]), 0.5)
