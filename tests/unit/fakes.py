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

"""Small host topologies and requests for the unit tests."""

from nova import objects

from nova_numa_guard import nova_hosts
from nova_numa_guard import topology

INSTANCE_UUID = '6b1a4b8e-4f3c-4a36-9c1e-2f0f3f7f2b10'


def cpus(first, count):
    return frozenset(range(first, first + count))


def two_node_cells():
    """two-node-64g's virsh capabilities: 2 cells, 12 CPUs, ~64 GB each."""
    return [topology.Cell(0, cpus(0, 12), 65872056 // 1024),
            topology.Cell(1, cpus(12, 12), 66058400 // 1024)]


def host(cells, used_mb=512, ratio=1.0, name='host1'):
    return topology.Host(name, cells, used_mb=used_mb,
                         ram_allocation_ratio=ratio)


def host_state(cells, used_mb=512, ratio=1.0, name='host1', pools=None):
    """A HostState; ``pools``: PCI pool dicts as the scheduler sees them."""
    return nova_hosts.host_state(
        host(cells, used_mb, ratio, name),
        pools=[objects.PciDevicePool.from_dict(dict(pool))
               for pool in pools or ()])


def request_spec(memory_mb, vcpus, extra_specs=None, numa_topology=None,
                 hints=None, pci_requests=(), physnets=(), tunneled=False):
    """A RequestSpec; ``pci_requests``: InstancePCIRequest objects."""
    return objects.RequestSpec(
        flavor=objects.Flavor(memory_mb=memory_mb, vcpus=vcpus, root_gb=1,
                              ephemeral_gb=0, swap=0,
                              extra_specs=extra_specs or {}),
        numa_topology=numa_topology, instance_uuid=INSTANCE_UUID,
        pci_requests=objects.InstancePCIRequests(
            requests=list(pci_requests)),
        network_metadata=objects.NetworkMetadata(
            physnets=set(physnets), tunneled=tunneled),
        scheduler_hints=hints or {})
