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

"""Nova objects built from the pure model, the way nova builds them.

The simulator's ``HostState`` builder (also used by the vNUMA helper's
check, the tests and the benchmarks): a :class:`topology.Host` becomes a
``ComputeNode`` (NUMA topology serialised as the libvirt driver and resource
tracker store it, PCI device pools as the resource tracker summarises them)
and then a ``HostState`` filled by ``HostState.update()`` with its service
record and aggregates, exactly as ``HostManager`` does on every request.
Needs nova; the scheduler code paths never import this module.
"""

import datetime
import uuid

from oslo_utils import timeutils

from nova import objects
from nova.scheduler import host_manager

from nova_numa_guard.topology import SMALL_PAGE_KB

_CELL_UUID = '5e2c7ee4-6b44-4c0e-9d52-8c3bfa2f8a0f'
# Device types whose pools nova tags remote_managed (PciDeviceStats).
_REMOTE_MANAGED_TYPES = ('type-PF', 'type-VF', 'type-VDPA')


def numa_topology(host):
    """The ``objects.NUMATopology`` nova would store for ``host``."""
    cells = []
    for cell in host.cells:
        mempages = [objects.NUMAPagesTopology(
            size_kb=SMALL_PAGE_KB,
            total=cell.small_page_mb * 1024 // SMALL_PAGE_KB,
            used=cell.small_page_used_mb * 1024 // SMALL_PAGE_KB,
            reserved=0)]
        for size_kb, (total, used) in sorted(cell.hugepages.items()):
            mempages.append(objects.NUMAPagesTopology(
                size_kb=size_kb, total=total, used=used, reserved=0))
        cells.append(objects.NUMACell(
            id=cell.id, cpuset=set(cell.cpus), pcpuset=set(cell.pcpus),
            memory=cell.memory_mb, cpu_usage=0,
            memory_usage=cell.numa_used_mb, pinned_cpus=set(),
            siblings=[set(s) for s in cell.siblings], mempages=mempages,
            network_metadata=objects.NetworkMetadata(
                physnets=set(cell.physnets), tunneled=cell.tunneled),
            socket=cell.socket))
    return objects.NUMATopology(cells=cells)


def pci_pool(pool):
    """The ``objects.PciDevicePool`` of a :class:`fleet.PciPool`.

    Tagged as the resource tracker tags pools: the device type, the physnet
    of a NIC and ``remote_managed`` for SR-IOV and vDPA devices.
    """
    tags = {'dev_type': pool.dev_type}
    if pool.physical_network:
        tags['physical_network'] = pool.physical_network
    if pool.dev_type in _REMOTE_MANAGED_TYPES:
        tags['remote_managed'] = 'false'
    return objects.PciDevicePool(
        vendor_id=pool.vendor_id, product_id=pool.product_id,
        numa_node=pool.numa_node, count=pool.count, tags=tags)


def aggregate(index, host_names, metadata):
    """An ``objects.Aggregate`` of ``host_names`` with ``metadata``."""
    name = 'nova-numa-guard-%d' % index
    return objects.Aggregate(
        id=index, uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), name=name,
        hosts=list(host_names), metadata=dict(metadata))


def compute_node(host, memory_mb=None, vcpus=None, vcpus_used=0,
                 cpu_allocation_ratio=4.0, pools=()):
    """The ``objects.ComputeNode`` a libvirt compute would report.

    :param pools: ``objects.PciDevicePool`` of the host (see
        :func:`pci_pool`).
    """
    if memory_mb is None:
        memory_mb = sum(c.memory_mb for c in host.cells)
    if vcpus is None:
        vcpus = sum(len(c.cpus) for c in host.cells) or 1
    numa = numa_topology(host)._to_json() if host.cells else None
    return objects.ComputeNode(
        uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, host.name)),
        host=host.name, hypervisor_hostname=host.name,
        hypervisor_type='QEMU', hypervisor_version=8002000,
        host_ip='192.0.2.1', cpu_info='{}', supported_hv_specs=[],
        memory_mb=memory_mb, memory_mb_used=host.used_mb,
        free_ram_mb=memory_mb - host.used_mb,
        vcpus=vcpus, vcpus_used=vcpus_used,
        local_gb=1000, local_gb_used=0, free_disk_gb=1000,
        disk_available_least=1000,
        numa_topology=numa,
        pci_device_pools=objects.PciDevicePoolList(objects=list(pools)),
        stats={}, metrics='[]',
        cpu_allocation_ratio=cpu_allocation_ratio,
        ram_allocation_ratio=host.ram_allocation_ratio,
        disk_allocation_ratio=1.0,
        # The compute reported a minute ago, as its periodic task does.
        updated_at=timeutils.utcnow(with_timezone=True) -
        datetime.timedelta(seconds=60))


def fleet_host_state(fleet_host):
    """The ``HostState`` of a :class:`nova_numa_guard.inputs.fleet.FleetHost`.

    Each metadata dict of the host becomes an aggregate of its own.
    """
    name = fleet_host.host.name
    return host_state(
        fleet_host.host,
        aggregates=[aggregate(i, [name], metadata)
                    for i, metadata in enumerate(fleet_host.aggregates, 1)],
        vcpus_used=fleet_host.vcpus_used,
        cpu_allocation_ratio=fleet_host.cpu_allocation_ratio,
        pools=[pci_pool(pool) for pool in fleet_host.pci])


def service(host_name):
    """A service record of an enabled nova-compute that is up."""
    now = timeutils.utcnow()
    return {'host': host_name, 'binary': 'nova-compute', 'topic': 'compute',
            'disabled': False, 'disabled_reason': None, 'forced_down': False,
            'created_at': now, 'updated_at': now, 'last_seen_up': now}


def host_state(host, node=None, aggregates=(), **compute_kwargs):
    """A ``HostState`` built by ``HostState.update()`` like HostManager.

    :param aggregates: ``objects.Aggregate`` the host is in.
    :param compute_kwargs: for :func:`compute_node`.
    """
    objects.register_all()
    state = host_manager.HostState(host.name, node or host.name, _CELL_UUID)
    state.update(compute_node(host, **compute_kwargs), service(host.name),
                 aggregates=list(aggregates), inst_dict={})
    state.allocation_candidates = allocation_candidates(state)
    return state


def allocation_candidates(state):
    """One placement allocation candidate, as the scheduler attaches them."""
    return [{'allocations': {state.uuid: {'resources': {}}},
             'mappings': {}}]
