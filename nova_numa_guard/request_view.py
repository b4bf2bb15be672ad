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

"""The request view: what the guard needs of a nova ``RequestSpec``.

The adapter on the request side, as :mod:`nova_numa_guard.host_view` is on
the host side: the guest's memory and vCPUs, whether nova binds its memory
to host cells, and which cells nova would bind it to on a host.
"""

from nova import objects
from nova.virt import hardware

# Guest cell page sizes that mean small pages: unset, "small"
# (nova.virt.hardware.MEMPAGES_SMALL) or 4 KiB.
_SMALL_PAGE_SIZES = (None, hardware.MEMPAGES_SMALL, 4)


def of(spec):
    """The :class:`RequestView` of ``spec``, or None when its memory is
    hugepage-backed (nova's own page accounting covers it).

    A guest with ``hw:mem_page_size=any`` gets hugepages where a host cell
    has them free and small pages elsewhere: nova picks per cell, so the
    cells it would back with small pages are checked.
    """
    topology = spec.numa_topology
    if topology is None:
        return RequestView(spec, None)
    sizes = [cell.pagesize if cell.obj_attr_is_set('pagesize') else None
             for cell in topology.cells]
    cells = [cell.memory for cell in topology.cells]
    if all(size in _SMALL_PAGE_SIZES for size in sizes):
        return RequestView(spec, cells)
    if all(size in _SMALL_PAGE_SIZES or size == hardware.MEMPAGES_ANY
           for size in sizes):
        return RequestView(spec, cells, any_pages=True)
    return None


class RequestView:
    """A request as the guard sees it.

    :ivar spec: the ``RequestSpec``.
    :ivar uuid: the instance being scheduled (it changes per instance of a
        multi-create).
    :ivar memory_mb: the guest's memory.
    :ivar vcpus: the guest's vCPUs.
    :ivar cells: memory of each guest cell of a NUMA guest on small pages,
        which nova binds to host cells; None for a guest without a NUMA
        topology, whose memory the kernel places.
    :ivar any_pages: whether nova picks the page size per host cell
        (``hw:mem_page_size=any``): only the cells it backs with small
        pages are the guard's business.
    """

    __slots__ = ('spec', 'uuid', 'memory_mb', 'vcpus', 'cells', 'any_pages')

    def __init__(self, spec, cells, any_pages=False):
        self.spec = spec
        self.uuid = spec.instance_uuid
        self.memory_mb = spec.memory_mb
        self.vcpus = spec.vcpus
        self.cells = cells
        self.any_pages = any_pages

    @property
    def need(self):
        """What the guest needs, for log lines."""
        if self.cells is None:
            return ('the flavor needs %d MB and %d vCPUs in one NUMA cell' %
                    (self.memory_mb, self.vcpus))
        return ('the NUMA guest needs %s MB free on %d distinct cells' % (
            '+'.join('%d' % mb for mb in self.cells), len(self.cells)))

    def nova_cells(self, host_state, candidate):
        """The host cells nova binds the guest cells to on a host.

        Nova's ``numa_fit_instance_to_host``, called as
        ``NUMATopologyFilter`` calls it for an allocation candidate (on a
        copy of the request's topology, which it changes).

        :returns: ``[(host_cell_id, guest_cell_mb), ...]``, or None when nova
            cannot fit the guest on the host.
        """
        spec = self.spec
        limits = objects.NUMATopologyLimits(
            cpu_allocation_ratio=host_state.cpu_allocation_ratio,
            ram_allocation_ratio=host_state.ram_allocation_ratio)
        if 'network_metadata' in spec and spec.network_metadata:
            limits.network_metadata = spec.network_metadata
        pci_requests = spec.pci_requests.requests if spec.pci_requests \
            else None
        fitted = hardware.numa_fit_instance_to_host(
            host_state.numa_topology, spec.numa_topology.obj_clone(),
            limits=limits, pci_requests=pci_requests,
            pci_stats=host_state.pci_stats,
            provider_mapping=candidate['mappings'] if candidate else None)
        if fitted is None:
            return None
        if not self.any_pages:
            return [(cell.id, cell.memory) for cell in fitted.cells]
        smallest = {cell.id: min((pages.size_kb for pages in cell.mempages),
                                 default=None)
                    for cell in host_state.numa_topology.cells}
        return [(cell.id, cell.memory) for cell in fitted.cells
                if cell.pagesize in (None, smallest.get(cell.id))]
