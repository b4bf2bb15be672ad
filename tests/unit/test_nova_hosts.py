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

"""Tests of the HostState builder: fleet hosts as HostManager sees them."""

from nova import objects
from nova.scheduler.filters import pci_passthrough_filter
from nova.scheduler import utils as scheduler_utils
from nova import test

from nova_numa_guard.inputs import fleet
from nova_numa_guard import nova_hosts
from tests.unit import fakes


def _fleet_host(**fields):
    values = dict(
        host=fakes.host(fakes.two_node_cells(), used_mb=20480, name='sriov'),
        pci=(fleet.PciPool(1, '8086', '154c', 'type-VF', 'physnet2', 8),
             fleet.PciPool(None, '10de', '1eb8', 'type-PCI', None, 1)),
        aggregates=({'pci_weight_multiplier': '2.5'},),
        vcpus_used=6, cpu_allocation_ratio=2.0, guests_mb=None)
    values.update(fields)
    return fleet.FleetHost(**values)


class FleetHostStateTest(test.NoDBTestCase):

    def test_the_record_and_its_usage(self):
        """Ensures the host's usage and ratios reach the HostState."""
        state = nova_hosts.fleet_host_state(_fleet_host())
        self.assertEqual('sriov', state.host)
        self.assertEqual(64328 + 64510, state.total_usable_ram_mb)
        self.assertEqual(64328 + 64510 - 20480, state.free_ram_mb)
        self.assertEqual((24, 6), (state.vcpus_total, state.vcpus_used))
        self.assertEqual((2.0, 1.0), (state.cpu_allocation_ratio,
                                      state.ram_allocation_ratio))
        self.assertEqual(2, len(state.numa_topology.cells))

    def test_pci_pools_as_the_resource_tracker_tags_them(self):
        """Ensures the pools carry the tags nova's PCI code matches."""
        state = nova_hosts.fleet_host_state(_fleet_host())
        pools = sorted(state.pci_stats.pools, key=lambda p: p['vendor_id'])
        self.assertEqual([
            {'vendor_id': '10de', 'product_id': '1eb8', 'numa_node': None,
             'count': 1, 'dev_type': 'type-PCI'},
            {'vendor_id': '8086', 'product_id': '154c', 'numa_node': 1,
             'count': 8, 'dev_type': 'type-VF',
             'physical_network': 'physnet2', 'remote_managed': 'false'},
        ], pools)

    def test_pci_passthrough_filter_finds_the_vfs(self):
        """Ensures nova's PCI filter passes the host for its VF only."""
        state = nova_hosts.fleet_host_state(_fleet_host())
        filt = pci_passthrough_filter.PciPassthroughFilter()

        def spec(product_id):
            return objects.RequestSpec(
                pci_requests=objects.InstancePCIRequests(requests=[
                    objects.InstancePCIRequest(
                        count=1, spec=[{'vendor_id': '8086',
                                        'product_id': product_id}])]))

        self.assertTrue(filt.host_passes(state, spec('154c')))
        self.assertFalse(filt.host_passes(state, spec('1528')))

    def test_aggregate_metadata_reaches_the_weighers(self):
        """Ensures nova reads a weight multiplier from the aggregates."""
        state = nova_hosts.fleet_host_state(_fleet_host())
        self.assertEqual(2.5, scheduler_utils.get_weight_multiplier(
            state, 'pci_weight_multiplier', 1.0))
        self.assertEqual(['sriov'], state.aggregates[0].hosts)
