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

"""The weigher's adapter: what a request needs, what cells offer."""

import ddt
from nova import objects
from nova import test

from nova_numa_guard import device_view
from nova_numa_guard import host_view
from nova_numa_guard import topology
from tests.unit import fakes

VF = {'vendor_id': '8086', 'product_id': '1515', 'numa_node': 0,
      'count': 4, 'dev_type': 'type-VF', 'physical_network': 'physnet1',
      'remote_managed': 'false', 'address': '0000:81:00.0'}
SRIOV_SPEC = {'physical_network': 'physnet1', 'remote_managed': 'False',
              'dev_type': 'type-VF'}


def _pci(count=1, **spec):
    return objects.InstancePCIRequest(count=count, spec=[spec])


@ddt.ddt
class ServesTest(test.NoDBTestCase):
    """Which pools could serve a PCI request, by nova's rules."""

    @ddt.named_data(
        ('sriov-port-and-its-vfs', SRIOV_SPEC, {}, True),
        ('tags-compare-without-case', dict(SRIOV_SPEC,
                                           physical_network='PHYSNET1'),
         {}, True),
        ('other-physnet', SRIOV_SPEC, {'physical_network': 'physnet2'},
         False),
        ('pf-not-asked-for', {'vendor_id': '8086'}, {'dev_type': 'type-PF'},
         False),
        ('pf-asked-for', {'dev_type': 'type-PF'}, {'dev_type': 'type-PF'},
         True),
        ('vdpa-not-asked-for', {'vendor_id': '8086'}, {'dev_type': 'vdpa'},
         False),
        ('remote-managed-not-asked-for', {'vendor_id': '8086'},
         {'remote_managed': 'true'}, False),
        ('remote-managed-asked-for', dict(SRIOV_SPEC,
                                          remote_managed='True'),
         {'remote_managed': 'true'}, True),
        ('live-migratable-wanted', dict(SRIOV_SPEC,
                                        live_migratable='true'),
         {}, False),
        ('live-migratable-wanted-and-there', dict(SRIOV_SPEC,
                                                  live_migratable='true'),
         {'live_migratable': 'true'}, True),
        ('placement-tags-ignored', dict(SRIOV_SPEC, resource_class='X',
                                        traits='Y', rp_uuids='Z'), {}, True),
    )
    def test_rules(self, spec, pool_changes, serves):
        """Ensures a pool serves a request exactly as nova would allow."""
        pool = dict(VF, **pool_changes)
        request = device_view.Request(fakes.request_spec(
            1024, 1, pci_requests=[_pci(**spec)]))
        self.assertEqual((0,) if serves else (), request.served(pool))
        # The same answer from the memo, for a pool with the same values.
        self.assertEqual(request.served(pool), request.served(dict(pool)))


class RequestTest(test.NoDBTestCase):

    def test_sriov_physnets_are_needed_through_their_vfs_only(self):
        """Ensures an SR-IOV port's physnet is not counted twice."""
        request = device_view.Request(fakes.request_spec(
            1024, 2, pci_requests=[_pci(**SRIOV_SPEC)],
            physnets=['physnet1', 'physnet2'], tunneled=True))
        self.assertEqual((1, ('physnet2',), True, True),
                         (len(request.pci), request.physnets,
                          request.tunneled, request.needs))

    def test_request_without_devices_needs_nothing(self):
        """Ensures a request without PCI or network data needs nothing."""
        spec = fakes.request_spec(1024, 2)
        del spec.pci_requests
        del spec.network_metadata
        request = device_view.Request(spec, cpu_fit=False)
        self.assertEqual((False, 0, None, 1),
                         (request.needs, request.vcpus, request.cells,
                          request.spans))

    def test_numa_guest_cells(self):
        """Ensures a NUMA guest needs a host cell per guest cell."""
        numa = objects.InstanceNUMATopology(cells=[
            objects.InstanceNUMACell(id=0, cpuset={0}, pcpuset={1, 2},
                                     memory=2048, pagesize=2048),
            objects.InstanceNUMACell(id=1, cpuset={3}, pcpuset=set(),
                                     memory=1024, pagesize=2048)])
        request = device_view.Request(fakes.request_spec(
            3072, 4, numa_topology=numa))
        self.assertEqual((((2048, 1, 2), (1024, 1, 0)), 2048, 2),
                         (request.cells, request.pagesize, request.spans))


class CellsTest(test.NoDBTestCase):

    def cells(self, ids=(0, 1), physnets=None):
        physnets = physnets or {}
        return tuple(topology.Cell(i, fakes.cpus(4 * i, 4), 4096,
                                   physnets=frozenset(physnets.get(i, ())))
                     for i in ids)

    def test_busy_nodes(self):
        """Ensures free devices and the agent's NICs make nodes busy."""
        cells = self.cells()

        def busy(cells, pools, agent_physnets):
            return device_view.busy_nodes(
                cells, host_view.pool_nodes(pools), agent_physnets)

        self.assertEqual((), busy(cells, [], None))
        self.assertEqual((), busy(cells, [dict(VF, count=0)], None))
        self.assertEqual({1, None}, busy(
            cells, [dict(VF, numa_node=1), dict(VF, numa_node=None)],
            None))
        self.assertEqual({0}, busy(cells, [], {'physnet2': frozenset([0])}))
        self.assertEqual({0, 1}, busy(cells, [dict(VF, numa_node=1)],
                                      {'physnet2': frozenset([0])}))
        # One cell, or none: every device is on it.
        self.assertEqual({7}, busy(
            self.cells(ids=(7,)), [dict(VF, numa_node=None)], None))
        self.assertEqual({None}, busy((), [], {'physnet2': frozenset()}))

    def test_cells_listed_out_of_node_order(self):
        """Ensures devices land on the cell of their node, wherever it is."""
        cells = self.cells(ids=(1, 0))
        request = device_view.Request(fakes.request_spec(
            1024, 1, pci_requests=[_pci(**SRIOV_SPEC)]))
        local, wanted, offered = device_view.local_units(
            cells, [dict(VF, numa_node=0)], None, request)
        self.assertEqual(([[0], [4]], [1], True), (local, wanted, offered))
        self.assertEqual([False, True], device_view.busy_cells(
            cells, device_view.busy_nodes(
                cells, host_view.pool_nodes([VF]), None)))

    def test_networks_the_host_affines_nowhere_are_left_out(self):
        """Ensures nova's rule: a physnet without affinity is no need."""
        request = device_view.Request(fakes.request_spec(
            1024, 1, physnets=['physnet2', 'physnet3'], tunneled=True))
        cells = self.cells(physnets={1: ['physnet2']})
        self.assertEqual(([[0], [1]], [1], True), device_view.local_units(
            cells, [], None, request))
        # The agent knows physnet3, on no node it can tell: still a need.
        self.assertEqual(([[0, 0], [1, 0]], [1, 1], True),
                         device_view.local_units(
                             cells, [], {'physnet3': frozenset()}, request))
