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

"""NUMALocalityWeigher through a real in-process nova.

Three fake-libvirt hosts pass every filter in each scenario; nova's own
weighers run with their default multipliers:

* ``compute1``, two 17 GB nodes: the most free memory, so ``RAMWeigher``
  picks it;
* ``compute2``, two 12 GB nodes: a little less;
* ``compute3``, two 8 GB nodes: the least.

Where a scenario needs a node with no room, ``compute1``'s agent says so
(``file`` memory source): node 0 has 1000 MB free. Each scenario runs twice,
with the plugin's weighers and with nova's alone: the guest must land on
``compute2`` with ``NUMALocalityWeigher``, and on ``compute1`` without it.
"""

import os
import time

import fixtures
import nova.conf
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base as libvirt_base
from oslo_serialization import jsonutils

from nova_numa_guard import conf as guard_conf
from nova_numa_guard.live import payload
from tests.functional import base

NOVA_WEIGHERS = 'nova.scheduler.weights.all_weighers'
GUARD_WEIGHERS = 'nova_numa_guard.scheduler.weights.all_weighers'
GUEST_MB = 4096
ALIAS = 'nic'
PHYSNET = 'physnet4'  # the SR-IOV network of nova's LibvirtNeutronFixture
VIRTIO_PHYSNET = 'foo'  # network_1, a flat network of ordinary ports


def two_node(gb):
    """Two NUMA nodes of ``gb`` GB, 4 CPUs each."""
    return fakelibvirt.HostInfo(cpu_nodes=2, cpu_sockets=1, cpu_cores=2,
                                cpu_threads=2, kB_mem=2 * gb * 1024 * 1024)


# compute1 has the most free memory, compute3 the least.
HOSTS = {'compute1': two_node(17), 'compute2': two_node(12),
         'compute3': two_node(8)}


def pci_devices(*nodes):
    """One passthrough PCI device on each of ``nodes``."""
    info = fakelibvirt.HostPCIDevicesInfo(num_pci=0, num_pfs=0, num_vfs=0)
    for slot, node in enumerate(nodes):
        info.add_device(dev_type='PCI', bus=0x81, slot=slot, function=0,
                        iommu_group=40 + slot, numa_node=node)
    return info


def sriov_nic(node):
    """An SR-IOV NIC (one PF, two VFs) on ``node``."""
    return fakelibvirt.HostPCIDevicesInfo(num_pfs=1, num_vfs=2,
                                          numa_node=node)


class LocalityScenarios:
    """Three hosts that pass the filters; where does the guest land?

    Mixed into a test case class with ``WEIGHT_CLASSES`` and ``LANDS_ON``.
    """

    ADDITIONAL_FILTERS = ['NUMATopologyFilter', 'PciPassthroughFilter',
                          'NUMACellFitFilter']
    WEIGHT_CLASSES = [NOVA_WEIGHERS, GUARD_WEIGHERS]
    # The host each scenario's guest lands on.
    LANDS_ON = 'compute2'

    def setUp(self):
        self.flags(device_spec=[jsonutils.dumps(spec) for spec in (
            {'vendor_id': fakelibvirt.PCI_VEND_ID,
             'product_id': fakelibvirt.PCI_PROD_ID},
            {'vendor_id': fakelibvirt.PCI_VEND_ID,
             'product_id': fakelibvirt.VF_PROD_ID,
             'physical_network': PHYSNET})], group='pci')
        self.flags(alias=[jsonutils.dumps({
            'vendor_id': fakelibvirt.PCI_VEND_ID,
            'product_id': fakelibvirt.PCI_PROD_ID,
            'device_type': 'type-PCI', 'name': ALIAS})], group='pci')
        guard_conf.register_opts(nova.conf.CONF)
        self.live_dir = self.useFixture(fixtures.TempDir()).path
        self.flags(memory_source='file', live_data_path=self.live_dir,
                   group='numa_guard')
        self.flags(weight_classes=self.WEIGHT_CLASSES,
                   group='filter_scheduler')
        super().setUp()

    def use_physnets(self):
        """Networks on physnets: nova's libvirt neutron fixture."""
        self.neutron = self.useFixture(
            libvirt_base.LibvirtNeutronFixture(self))

    def start_hosts(self, pci=None):
        """Start the three hosts; ``pci``: ``{host: HostPCIDevicesInfo}``."""
        pci = pci or {}
        for name, host_info in HOSTS.items():
            self.start_compute(name, host_info=host_info,
                               pci_info=pci.get(name))

    def publish(self, host, free, physnets=None):
        """Write ``host``'s agent payload: ``free`` MB per node."""
        total = HOSTS[host].kB_mem // 2 // 1024
        nodes = [{'id': node, 'mem_total_mb': total, 'mem_free_mb': mb,
                  'mem_available_mb': mb} for node, mb in enumerate(free)]
        data = payload.build(host, time.time(), nodes, physnets=physnets)
        with open(os.path.join(self.live_dir, host + '.json'), 'wb') as f:
            f.write(payload.encode(data))

    def assert_lands(self, server):
        self.assertEqual(self.LANDS_ON, self.host_of(server))
        self.assertNotIn('NUMALocalityWeigher could not',
                         self.guard_log.output)

    def boot(self, extra_spec=None, networks=None):
        flavor = self._create_flavor(memory_mb=GUEST_MB, vcpu=2,
                                     extra_spec=extra_spec)
        return self._create_server(flavor_id=flavor, networks=networks)

    def test_pci_alias_guest_lands_where_its_device_has_room(self):
        """Ensures a guest with a PCI alias lands next to its device.

        compute1's device is on node 0, which its agent shows full;
        compute2's is on node 1, which has room. compute3's is on node 0.
        """
        self.start_hosts({'compute1': pci_devices(0),
                          'compute2': pci_devices(1),
                          'compute3': pci_devices(0)})
        self.publish('compute1', [1000, 15000])

        server = self.boot({'pci_passthrough:alias': '%s:1' % ALIAS})

        self.assert_lands(server)

    def test_device_less_guest_lands_on_the_host_without_devices(self):
        """Ensures a guest that needs no device keeps off device cells.

        compute1 has a device on each node, compute2 none and compute3
        eight; PCIWeigher alone favours compute2 less than RAMWeigher
        favours compute1.
        """
        self.start_hosts({'compute1': pci_devices(0, 1),
                          'compute3': pci_devices(0, 1, 0, 1, 0, 1, 0, 1)})

        server = self.boot()

        self.assert_lands(server)

    def test_sriov_port_lands_where_its_nic_has_room(self):
        """Ensures an SR-IOV port lands where its VFs' node has room.

        The VFs of physnet4 are on node 0 of compute1 (full, its agent
        says), node 1 of compute2 and node 0 of compute3.
        """
        self.start_hosts({'compute1': sriov_nic(0), 'compute2': sriov_nic(1),
                          'compute3': sriov_nic(0)})
        self.publish('compute1', [1000, 15000])
        self.use_physnets()
        port = self.neutron.create_port(
            {'port': self.neutron.network_4_port_1})['port']

        server = self.boot(networks=[{'port': port['id']}])

        self.assert_lands(server)

    def test_virtio_port_lands_where_the_agent_puts_its_nic(self):
        """Ensures the agents' physnet nodes steer a virtio port.

        Nova has no [neutron_physnet_foo] numa_nodes; the agents say the
        NIC of physnet foo is on node 0 of compute1 (full) and on node 1 of
        compute2. compute3 has no agent data.
        """
        self.start_hosts()
        self.publish('compute1', [1000, 15000],
                     physnets={VIRTIO_PHYSNET: [0]})
        self.publish('compute2', [10000, 10000],
                     physnets={VIRTIO_PHYSNET: [1]})
        self.use_physnets()

        server = self.boot(networks=[
            {'uuid': libvirt_base.LibvirtNeutronFixture.network_1['id']}])

        self.assert_lands(server)


class NUMALocalityWeigherTest(LocalityScenarios, base.GuardTestBase):
    """With the plugin's weighers next to nova's, default multipliers."""


class WithoutLocalityWeigherTest(LocalityScenarios, base.GuardTestBase):
    """Nova's weighers alone pick compute1 every time: what we change."""

    WEIGHT_CLASSES = [NOVA_WEIGHERS]
    LANDS_ON = 'compute1'
