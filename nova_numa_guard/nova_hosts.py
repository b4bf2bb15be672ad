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

For the demo, the simulator and the benchmark: a :class:`topology.Host`
becomes a ``ComputeNode`` (NUMA topology serialised as the libvirt driver
and resource tracker store it) and then a ``HostState`` filled by
``HostState.update()``, exactly as ``HostManager`` does on every request.
Needs nova; the scheduler code paths never import this module.
"""

import datetime
import uuid

from oslo_utils import timeutils

from nova import objects
from nova.scheduler import host_manager

from nova_numa_guard.topology import SMALL_PAGE_KB

_CELL_UUID = '5e2c7ee4-6b44-4c0e-9d52-8c3bfa2f8a0f'


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


def pci_pools(pools):
    """The ``objects.PciDevicePoolList`` of pool dicts.

    :param pools: dicts as nova's scheduler sees the pools
        (``PciDeviceStats.pools``): ``vendor_id``, ``product_id``,
        ``numa_node`` (may be None), ``count`` and any tags (``dev_type``,
        ``physical_network``, ``address``...).
    """
    return objects.PciDevicePoolList(
        objects=[objects.PciDevicePool.from_dict(dict(pool))
                 for pool in pools or ()])


def compute_node(host, memory_mb=None, vcpus=None, pools=None):
    """The ``objects.ComputeNode`` a libvirt compute would report.

    :param pools: PCI pool dicts (see :func:`pci_pools`).
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
        vcpus=vcpus, vcpus_used=0,
        local_gb=1000, local_gb_used=0, free_disk_gb=1000,
        disk_available_least=1000,
        numa_topology=numa,
        pci_device_pools=pci_pools(pools),
        stats={}, metrics='[]',
        cpu_allocation_ratio=4.0,
        ram_allocation_ratio=host.ram_allocation_ratio,
        disk_allocation_ratio=1.0,
        # The compute reported a minute ago, as its periodic task does.
        updated_at=timeutils.utcnow(with_timezone=True) -
        datetime.timedelta(seconds=60))


def service(host_name):
    """A service record of an enabled nova-compute that is up."""
    now = timeutils.utcnow()
    return {'host': host_name, 'binary': 'nova-compute', 'topic': 'compute',
            'disabled': False, 'disabled_reason': None, 'forced_down': False,
            'created_at': now, 'updated_at': now, 'last_seen_up': now}


def host_state(host, node=None, **compute_kwargs):
    """A ``HostState`` built by ``HostState.update()`` like HostManager.

    :param compute_kwargs: for :func:`compute_node` (``pools`` for PCI
        pools).
    """
    objects.register_all()
    state = host_manager.HostState(host.name, node or host.name, _CELL_UUID)
    state.update(compute_node(host, **compute_kwargs), service(host.name),
                 aggregates=[], inst_dict={})
    # One placement allocation candidate, as the scheduler attaches them.
    state.allocation_candidates = [
        {'allocations': {state.uuid: {'resources': {}}}, 'mappings': {}}]
    return state
