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

"""Faults injected under NUMACellFitFilter, through nova's filter handler.

Each memory store misbehaves in one way: a memcached that hangs, drips
bytes, answers garbage or huge values; payload files that are a FIFO, a
directory or a symlink loop. Every request must end within a bound (checked
with a wide margin: these tests are about never blocking, not about speed),
judge the hosts on accounted data, and raise nothing into nova.
"""

import os
import time

import fixtures
import nova.conf
from nova.scheduler import filters as nova_filters
from nova import test

from nova_numa_guard.scheduler.filters import numa_cell_fit
from tests import fake_memcached
from tests.unit import fakes

CONF = nova.conf.CONF
TIMEOUT = 0.5
# A request may take the deadline plus this, on a loaded test machine.
MARGIN = 5.0
HOSTS = 20


class FaultInjectionTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        # Not more than the bound: a blocked call fails the test.
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.hosts = [fakes.host_state(fakes.two_node_cells(),
                                       name='compute%d' % i)
                      for i in range(HOSTS)]
        # Accounted data lets a 16 GB guest in on every host.
        self.spec = fakes.request_spec(16384, 4)

    def run_filter(self):
        """Hosts passing one request, and the seconds it took."""
        filt = numa_cell_fit.NUMACellFitFilter()
        start = time.monotonic()
        passed = nova_filters.HostFilterHandler().get_filtered_objects(
            [filt], self.hosts, self.spec, index=0)
        return [h.host for h in passed or []], time.monotonic() - start

    def use_memcached(self, behaviour):
        server = self.useFixture(fake_memcached.FakeServer(behaviour))
        self.flags(backend='dogpile.cache.pymemcache',
                   memcache_servers=[server.url], group='cache')
        self.flags(memory_source='cache', cache_timeout=TIMEOUT,
                   on_missing_live_data='reject', group='numa_guard')

    def assert_accounted(self, passed, elapsed):
        self.assertEqual(['compute%d' % i for i in range(HOSTS)], passed)
        self.assertLess(elapsed, TIMEOUT + MARGIN)

    def test_memcached_that_hangs(self):
        """Ensures a memcached that never answers costs one deadline."""
        self.use_memcached(fake_memcached.hang)
        self.assert_accounted(*self.run_filter())

    def test_memcached_that_drips_bytes(self):
        """Ensures one byte every 0.3 s cannot hold the request."""
        self.use_memcached(fake_memcached.trickle)
        self.assert_accounted(*self.run_filter())

    def test_memcached_that_answers_garbage(self):
        """Ensures a reply that is not memcached's is an outage."""
        self.use_memcached(fake_memcached.garbage)
        self.assert_accounted(*self.run_filter())

    def test_memcached_that_answers_huge_values(self):
        """Ensures 1 MiB values are refused unread, within the budget.

        The first is refused from its header: too large for a record, its
        host is missing live data (rejected, per on_missing_live_data =
        reject). The request cannot afford to skip its bytes: the store
        failed the other hosts, not their agents, and they are judged on
        accounted data.
        """
        self.use_memcached(fake_memcached.huge)
        passed, elapsed = self.run_filter()
        self.assertEqual(['compute%d' % i for i in range(1, HOSTS)], passed)
        self.assertLess(elapsed, TIMEOUT + MARGIN)

    def use_files(self):
        live_dir = self.useFixture(fixtures.TempDir()).path
        self.flags(memory_source='file', live_data_path=live_dir,
                   on_missing_live_data='accounted', group='numa_guard')
        return live_dir

    def test_payload_files_that_are_no_files(self):
        """Ensures a FIFO, a directory and a symlink loop never block."""
        live_dir = self.use_files()
        os.mkfifo(os.path.join(live_dir, 'compute0.json'))
        os.mkdir(os.path.join(live_dir, 'compute1.json'))
        os.symlink('compute2.json', os.path.join(live_dir, 'compute2.json'))
        os.symlink('/dev/zero', os.path.join(live_dir, 'compute3.json'))
        log = self.useFixture(fixtures.FakeLogger(
            name='nova_numa_guard.live.source'))
        self.assert_accounted(*self.run_filter())
        self.assertIn('compute0.json: cannot read: not a regular file',
                      log.output)
