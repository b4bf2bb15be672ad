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

"""Placement judged by what the kernel does with the guests' memory.

Replays a few hundred boot requests over a mixed fleet through nova's real
filter and weight handlers (see :mod:`tests.replay`) and counts, per
scheduler configuration, the guests whose memory ends up on more than one
node. No nova service runs; only nova's libraries.
"""

import logging
import time

import fixtures
from oslo_config import fixture as config_fixture
from testtools import content

import nova.conf
from nova import objects

from tests import replay
from tests import testcase

LOG = logging.getLogger(__name__)


class ReplayTest(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(config_fixture.Config(nova.conf.CONF))
        self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.live_dir = self.useFixture(fixtures.TempDir()).path
        objects.register_all()

    def test_live_data_keeps_every_guest_on_one_node(self):
        """Ensures live data leaves no guest spanning nodes or overflowing.

        Stock nova must show the problem (spanning guests or NUMA guests
        whose bound node runs out of memory), accounted data must lessen
        it, and live data (fresh, or published every 5 requests) must leave
        no spanning guest and no overflow while placing nearly everything
        stock placed without spanning.
        """
        wall, cpu = time.perf_counter(), time.process_time()
        outcomes = replay.run(live_dir=self.live_dir)
        table = '%s\nrun time %.1f s (%.1f s of CPU)' % (
            replay.table(outcomes), time.perf_counter() - wall,
            time.process_time() - cpu)
        self.addDetail('replay', content.text_content(table))
        LOG.info('Replay:\n%s', table)

        by_config = {outcome.config: outcome for outcome in outcomes}
        stock = by_config[replay.STOCK]
        accounted = by_config[replay.ACCOUNTED]
        self.assertGreater(len(stock.spanning) + len(stock.overflows), 0,
                           'stock nova shows no problem to fix:\n' + table)
        self.assertLess(len(accounted.spanning), len(stock.spanning), table)
        for config in (replay.LIVE, replay.LIVE_EVERY_5):
            outcome = by_config[config]
            self.assertEqual([], [vm.name for vm in outcome.spanning],
                             '%s: spanning guests\n%s' % (config.name, table))
            self.assertEqual([], [vm.name for vm in outcome.overflows],
                             '%s: strict-binding overflows\n%s' % (
                                 config.name, table))
            self.assertLessEqual(outcome.lost, outcome.requests * 0.05,
                                 '%s: lost placements\n%s' % (
                                     config.name, table))
