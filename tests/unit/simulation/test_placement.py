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

"""Tests of the emulated placement."""

import hypothesis
from hypothesis import strategies as st

from nova_numa_guard.inputs import fleet
from nova_numa_guard.simulation import placement
from nova_numa_guard import topology
from tests import testcase


def _fleet_host(memory=(65536, 65536), cpus=(12, 12), used_mb=512,
                vcpus_used=0, ram_ratio=1.0, cpu_ratio=4.0):
    cells, first = [], 0
    for i, (mb, count) in enumerate(zip(memory, cpus)):
        cells.append(topology.Cell(i, frozenset(range(first, first + count)),
                                   mb))
        first += count
    return fleet.FleetHost(topology.Host('h', cells, used_mb=used_mb,
                                         ram_allocation_ratio=ram_ratio),
                           (), (), vcpus_used, cpu_ratio, None)


class ProviderTest(testcase.TestCase):

    def test_inventory_of_a_fleet_host(self):
        """Ensures the inventories are what the libvirt driver reports."""
        provider = placement.provider(_fleet_host(used_mb=20992,
                                                  vcpus_used=5))
        self.assertEqual({'MEMORY_MB': placement.Inventory(131072, 512, 1.0),
                          'VCPU': placement.Inventory(24, 0, 4.0)},
                         provider.inventories)
        self.assertEqual({'MEMORY_MB': 20480, 'VCPU': 5}, provider.used)

    def test_shortfall_says_which_resource(self):
        """Ensures a refused host gets the resource and the numbers."""
        provider = placement.provider(_fleet_host(used_mb=98816))
        self.assertIsNone(provider.shortfall({'MEMORY_MB': 32256,
                                              'VCPU': 4}))
        self.assertEqual('MEMORY_MB: needs 32257, 32256 free of 130560',
                         provider.shortfall({'MEMORY_MB': 32257}))
        self.assertEqual('VCPU: needs 25, the host has 24',
                         provider.shortfall({'VCPU': 25}))
        self.assertEqual('no PCPU inventory',
                         provider.shortfall({'PCPU': 2}))

    def test_claims_use_the_room(self):
        """Ensures claims count against the allocation ratio."""
        provider = placement.provider(_fleet_host(cpu_ratio=1.0))
        resources = {'VCPU': 8, 'MEMORY_MB': 1024}
        self.assertEqual(3, provider.room(resources))
        copy = provider.copy()
        copy.claim(resources)
        self.assertEqual((2, 3), (copy.room(resources),
                                  provider.room(resources)))
        self.assertEqual('VCPU: needs 8, 0 free of 24',
                         _claim_all(copy, resources))

    @hypothesis.given(st.integers(256, 200000), st.integers(1, 64),
                      st.integers(0, 131072),
                      st.sampled_from([0.5, 1.0, 1.1, 1.5, 3.0]))
    def test_room_is_the_claims_that_fit(self, memory, vcpus, used, ratio):
        """Ensures room() counts exactly the claims shortfall() accepts."""
        provider = placement.provider(_fleet_host(used_mb=used,
                                                  ram_ratio=ratio))
        resources = {'MEMORY_MB': memory, 'VCPU': vcpus}
        room = provider.room(resources)
        for _ in range(room):
            self.assertIsNone(provider.shortfall(resources))
            provider.claim(resources)
        self.assertIsNotNone(provider.shortfall(resources))


def _claim_all(provider, resources):
    while provider.shortfall(resources) is None:
        provider.claim(resources)
    return provider.shortfall(resources)
