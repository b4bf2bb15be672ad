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

import io

from nova import test

from nova_numa_guard import demo


class DemoTest(test.NoDBTestCase):

    def test_demo_shows_the_seed_guest_rejected_and_why(self):
        """Ensures the demo runs nova's handlers and tells the story."""
        out = io.StringIO()
        self.assertEqual(0, demo.run(out))
        text = out.getvalue()
        self.assertIn('seed-idle  passes               rejected: '
                      'NUMACellFitFilter needs 70000 MB and 4 vCPUs in one '
                      'cell; largest cell 1 holds 64510 MB and 12 CPUs', text)
        self.assertIn('stock nova picks: seed-idle; with the guard: '
                      'one-cell', text)
        self.assertIn('needs 40000 MB free in one cell; accounted free: '
                      'cell 0 34114 MB, cell 1 34211 MB', text)
        self.assertIn('picked: no valid host (NoValidHost)', text)
        self.assertIn('nova-numa-guard flavor-specs --vcpus 4 --ram 70000 '
                      '--cells 12:64328,12:64510', text)
