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

"""PayloadSource: its byte budgets."""

from nova_numa_guard.live import cache
from nova_numa_guard.live import file
from nova_numa_guard.live import payload
from tests.unit.live import base

MIB = 1024 * 1024


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
