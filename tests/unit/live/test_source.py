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

"""PayloadSource: its per-host map and byte budgets, on a source in memory.
"""

import threading

import fixtures

from nova_numa_guard.live import cache
from nova_numa_guard.live import file
from nova_numa_guard.live import payload
from nova_numa_guard.live import source
from tests.unit.live import base

MIB = 1024 * 1024


class MemorySource(source.PayloadSource):
    """Serves one stored record per host, from memory."""

    def __init__(self, conf=None):
        super().__init__(conf)
        self.stored = {}

    def fetch_raw(self, entries):
        stored = self.stored
        return [stored.get(entry.host) for entry in entries]


class Clock:
    """time.monotonic, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class HostMapTest(base.LiveSourceTestCase):
    """What the source keeps per host between requests."""

    def setUp(self):
        super().setUp()
        self.flags(max_data_age=30)
        self.clock = Clock()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.live.source.time.monotonic', self.clock))
        self.source = MemorySource(base.CONF)
        self.verified = []
        real = payload.verify

        def counting(raw, host, *args, **kwargs):
            self.verified.append(host)
            return real(raw, host, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.live.payload.verify', counting))

    def hosts(self, count, prefix='compute'):
        hosts = ['%s%d' % (prefix, i) for i in range(count)]
        self.source.stored.update(
            (host, base.record(host)) for host in hosts)
        return hosts

    def test_a_host_named_twice_is_fetched_once(self):
        """Ensures the host states of one host (the nodes of an ironic
        conductor) cost one fetch and one check of its payload.
        """
        hosts = self.hosts(2)
        fetched = []
        real = self.source.fetch_raw

        def recording(entries):
            fetched.extend(entry.host for entry in entries)
            return real(entries)
        self.useFixture(fixtures.MockPatchObject(
            self.source, 'fetch_raw', side_effect=recording))
        data = self.source.live_data([hosts[0], hosts[1], hosts[0],
                                      hosts[0]])
        self.assertEqual(hosts, fetched)
        self.assertEqual(hosts, self.verified)
        self.assertEqual(set(hosts), set(data.hosts))

    def test_small_requests_keep_the_hosts_of_large_ones(self):
        """Ensures a one-host request evicts nothing a large one needs.

        Between two requests of 3,000 hosts come requests of one host (a
        forced host, a rebuild); every entry is kept while requests of
        3,000 hosts come within 2 x max_data_age, and those not asked about
        for longer go.
        """
        large = self.hosts(3000)
        self.assertEqual(3000, len(self.source.live_data(large).hosts))
        kept = dict(self.source._hosts)
        self.assertEqual(3000, len(kept))
        forced = self.hosts(5, 'forced')
        for host in forced:
            self.clock.now += 5
            self.source.live_data([host])
        self.assertLessEqual(kept.items(), self.source._hosts.items())
        # The entries (and what was verified of them) serve the next one.
        self.clock.now += 5
        del self.verified[:]
        self.assertEqual(3000, len(self.source.live_data(large).hosts))
        self.assertEqual([], self.verified)
        self.assertLessEqual(kept.items(), self.source._hosts.items())
        # Past 2 x max_data_age without a large request, they go.
        self.clock.now += 2 * 30 + 1
        self.source.live_data(['compute1'])
        self.assertEqual(['compute1'], list(self.source._hosts))

    def test_replaced_compute_nodes_are_dropped(self):
        """Ensures the map stays bounded when nova replaces its hosts.

        Ten requests of 1,000 new hosts each within a few seconds: never
        more than twice the largest request plus 1,000, and the hosts of
        the last request are kept.
        """
        sizes = []
        for round_number in range(10):
            self.clock.now += 0.5
            hosts = self.hosts(1000, 'round%d-' % round_number)
            self.source.live_data(hosts)
            sizes.append(len(self.source._hosts))
        self.assertLessEqual(max(sizes), 2 * 1000 + source._SPARE_HOSTS)
        self.assertLessEqual(set(hosts), set(self.source._hosts))

    def test_requests_on_several_threads(self):
        """Ensures requests on native threads at once raise nothing.

        Each thread alternates large and small requests over hosts of its
        own and shared ones, while the clock moves so that entries are
        pruned.
        """
        shared = self.hosts(1500, 'shared')
        errors = []

        def requests(index):
            own = self.hosts(800, 'thread%d-' % index)
            try:
                for round_number in range(20):
                    self.clock.now += 7
                    data = self.source.live_data(
                        shared + own if round_number % 3 else own[:1])
                    if data.unavailable is not None:
                        errors.append(data.unavailable)
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=requests, args=(index,))
                   for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual([], errors)
        self.assertLessEqual(len(self.source._hosts),
                             2 * (1500 + 800) + source._SPARE_HOSTS)


class ByteBudgetTest(base.LiveSourceTestCase):
    """What a request may read from a store in all."""

    def test_byte_budget(self):
        """Ensures 4 KiB a host (cache) or 16 KiB (file), 32 MiB at most."""
        self.flags(live_data_path='/nonexistent')
        cases = [
            # (source class, hosts, budget)
            (cache.CacheSource, 1, payload.MAX_RECORD_BYTES),
            (cache.CacheSource, 16, payload.MAX_RECORD_BYTES),
            (cache.CacheSource, 100, 100 * 4096),
            (cache.CacheSource, 8192, 32 * MIB),
            (cache.CacheSource, 100000, 32 * MIB),
            (file.FileSource, 1, payload.MAX_BYTES),
            (file.FileSource, 1000, 1000 * 16384),
            (file.FileSource, 10000, 32 * MIB),
        ]
        for cls, hosts, budget in cases:
            self.assertEqual(budget, cls.byte_budget(
                cls.__new__(cls), hosts), (cls.__name__, hosts))
