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

"""Pure model of a host's NUMA cells.

Nothing here imports nova: the scheduler adapter (``host_view``), the topology
parsers, the simulator and the vNUMA planner all build and read these objects.
Memory is in MiB, like nova's ``NUMACell.memory``.
"""

# The size of a small (base) page, KiB: the page pool a host cell's
# ``small_page_mb`` is made of.
SMALL_PAGE_KB = 4


class Cell:
    """One host NUMA node as the guard sees it.

    :param id: the host node id.
    :param cpus: host CPUs that floating (shared) vCPUs may run on.
    :param memory_mb: total memory of the node.
    :param small_page_mb: memory usable by small pages: the node's smallest
        page pool when page pools are known (hugepages are carved out of the
        node), else ``memory_mb``.
    :param small_page_used_mb: small-page memory nova accounts to NUMA guests.
    :param numa_used_mb: all memory nova accounts to NUMA guests on the node
        (small pages and hugepages).
    :param pcpus: host CPUs reserved for pinned guests.
    :param hugepages: ``{size_kb: (total, used)}`` for page sizes other than
        the smallest.
    :param physnets: neutron physical networks affined to the node.
    :param tunneled: whether tunnelled networks are affined to the node.
    :param socket: the socket the node sits on, when known.
    :param siblings: tuple of frozensets of host CPUs that are hyperthread
        siblings (one set per core), when known.
    :param distances: ``{node_id: distance}`` as the firmware reports it
        (``10`` for the node itself), when known; else empty.
    """

    __slots__ = ('id', 'cpus', 'memory_mb', 'small_page_mb',
                 'small_page_used_mb', 'numa_used_mb', 'pcpus', 'hugepages',
                 'physnets', 'tunneled', 'socket', 'siblings', 'distances')

    def __init__(self, id, cpus, memory_mb, small_page_mb=None,
                 small_page_used_mb=0, numa_used_mb=None, pcpus=frozenset(),
                 hugepages=None, physnets=frozenset(), tunneled=False,
                 socket=None, siblings=(), distances=None):
        self.id = id
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.small_page_mb = (memory_mb if small_page_mb is None
                              else small_page_mb)
        self.small_page_used_mb = small_page_used_mb
        self.numa_used_mb = (small_page_used_mb if numa_used_mb is None
                             else numa_used_mb)
        self.pcpus = pcpus
        self.hugepages = hugepages or {}
        self.physnets = physnets
        self.tunneled = tunneled
        self.socket = socket
        self.siblings = tuple(siblings)
        self.distances = distances or {}

    @property
    def holds_guests(self):
        """Whether a whole guest can live here: the node has CPUs and memory.

        Memory-only nodes (CXL, some HBM modes) and CPU-only nodes never hold a
        whole guest.
        """
        return bool(self.cpus) and self.small_page_mb > 0

    def replace(self, **changes):
        """Return a copy of the cell with some attributes changed."""
        copy = object.__new__(Cell)
        for name in self.__slots__:
            setattr(copy, name, changes.get(name, getattr(self, name)))
        return copy

    def __repr__(self):
        return ('Cell(id=%r, cpus=%d, memory_mb=%r, small_page_mb=%r, '
                'small_page_used_mb=%r)' % (
                    self.id, len(self.cpus), self.memory_mb,
                    self.small_page_mb, self.small_page_used_mb))


class Host:
    """A compute host: its cells plus the host-wide figures nova keeps.

    :param name: nova's compute ``host`` name.
    :param cells: tuple of :class:`Cell`, empty when the host reports no NUMA
        topology (non-libvirt drivers, ironic).
    :param used_mb: host-wide memory nova counts as used: every guest, NUMA or
        not, plus ``[DEFAULT] reserved_host_memory_mb``.
    :param ram_allocation_ratio: the host's memory overcommit ratio.
    :param live_free: ``{node_id: MB}`` live memory of every cell, when a
        live source has fresh data for the host (see
        :meth:`with_live_free`); else None.
    """

    __slots__ = ('name', 'cells', 'used_mb', 'ram_allocation_ratio',
                 'live_free')

    def __init__(self, name, cells, used_mb=0, ram_allocation_ratio=1.0,
                 live_free=None):
        self.name = name
        self.cells = tuple(cells)
        self.used_mb = used_mb
        self.ram_allocation_ratio = ram_allocation_ratio
        self.live_free = live_free

    def with_live_free(self, per_node):
        """A copy of the host carrying live memory per cell.

        The copy shares this host's cells (no cell is copied).

        :param per_node: ``{node_id: MB}``; unless it covers every cell, the
            host is returned unchanged (live data is all or nothing).
        """
        for cell in self.cells:
            if cell.id not in per_node:
                return self
        host = object.__new__(Host)
        host.name = self.name
        host.cells = self.cells
        host.used_mb = self.used_mb
        host.ram_allocation_ratio = self.ram_allocation_ratio
        host.live_free = per_node
        return host

    def __repr__(self):
        if self.live_free is None:
            return 'Host(%r, cells=%r)' % (self.name, list(self.cells))
        return 'Host(%r, cells=%r, live_free=%r)' % (
            self.name, list(self.cells), self.live_free)
