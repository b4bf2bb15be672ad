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

import operator
import types

# The size of a small (base) page, KiB: the page pool a host cell's
# ``small_page_mb`` is made of.
SMALL_PAGE_KB = 4
# Shared empty values: a cell without them keeps no container of its own.
NO_PHYSNETS = frozenset()
_NOTHING = types.MappingProxyType({})
# What _net_free() gives for live memory that does not cover the cells.
_UNCOVERED = object()
# CPU counts as shared range objects (counted_cell()), for the counts
# hosts have.
_RANGES = tuple(range(count) for count in range(1025))
_MAX_COUNTED = len(_RANGES)
# Counted cells without physnets or tunnels, by what they read:
# counted_cell() returns the one here when there is one. Bounded: when it
# holds _MAX_SHARED cells it starts over (the hosts keep theirs), so cells
# no host reads any more leave with the rest.
_SHARED = {}
_MAX_SHARED = 4096
# What counted_cell() sets from its arguments: two counted cells with the
# same are the same cell.
COUNTED_FIELDS = operator.attrgetter(
    'id', 'cpus', 'memory_mb', 'small_page_mb', 'small_page_used_mb',
    'numa_used_mb', 'pcpus', 'physnets', 'tunneled')


class Cell:
    """One host NUMA node as the guard sees it.

    :param id: the host node id.
    :param cpus: host CPUs that floating (shared) vCPUs may run on: a set of
        ids, or any sized container when only their number matters (the
        scheduler's view counts them).
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
                 hugepages=None, physnets=NO_PHYSNETS, tunneled=False,
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
        self.hugepages = hugepages or _NOTHING
        self.physnets = physnets
        self.tunneled = tunneled
        self.socket = socket
        self.siblings = tuple(siblings)
        self.distances = distances or _NOTHING

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
        for name in Cell.__slots__:
            setattr(copy, name, changes.get(name, getattr(self, name)))
        return copy

    def __repr__(self):
        return ('Cell(id=%r, cpus=%d, memory_mb=%r, small_page_mb=%r, '
                'small_page_used_mb=%r)' % (
                    self.id, len(self.cpus), self.memory_mb,
                    self.small_page_mb, self.small_page_used_mb))


class CountedCell:
    """A host node as the scheduler's view counts it (:func:`counted_cell`).

    The attributes a verdict reads, as :class:`Cell` has them: ``cpus`` and
    ``pcpus`` are ``range`` objects of the node's shared and dedicated CPU
    counts. ``hugepages``, ``socket``, ``siblings`` and ``distances`` are
    the class's, always empty: a cell that does not hold them is smaller,
    quicker to build and, thousands at a time, quicker for the garbage
    collector to walk.
    """

    __slots__ = ('id', 'cpus', 'memory_mb', 'small_page_mb',
                 'small_page_used_mb', 'numa_used_mb', 'pcpus', 'physnets',
                 'tunneled')

    hugepages = _NOTHING
    socket = None
    siblings = ()
    distances = _NOTHING

    holds_guests = Cell.holds_guests
    replace = Cell.replace
    __repr__ = Cell.__repr__


def counted_cell(id, cpus, memory_mb, small_page_mb, small_page_used_mb,
                 numa_used_mb, pcpus, physnets, tunneled):
    """A :class:`CountedCell`: the scheduler's view of one of nova's cells.

    Built for thousands of hosts at once: nothing of the given containers
    is kept, and nothing is checked. Cells without physnets or tunnels that
    read the same are one object (:data:`_SHARED`): a fleet's hosts come
    in few shapes, and a cell changes only with the NUMA guests on it, so
    most cells read like another host's. A shared cell is built once and
    kept once, stays in the processor's caches, and is one object less for
    the garbage collector to walk per cell of every host the scheduler
    keeps. Cells are never changed once built.

    :param cpus: a sized container of the shared CPUs.
    :param pcpus: a sized container of the dedicated CPUs, or None.
    :param physnets: an iterable of physnet names, or None.
    :param tunneled: whether tunnelled networks are affined (truthy).
    """
    ncpus = len(cpus)
    npcpus = len(pcpus) if pcpus else 0
    key = None
    if not physnets and not tunneled:
        # Plain numbers only: a key the garbage collector stops tracking.
        key = (id, ncpus, memory_mb, small_page_mb, small_page_used_mb,
               numa_used_mb, npcpus)
        cell = _SHARED.get(key)
        if cell is not None:
            return cell
    cell = object.__new__(CountedCell)
    cell.id = id
    cell.cpus = _RANGES[ncpus] if ncpus < _MAX_COUNTED else range(ncpus)
    cell.memory_mb = memory_mb
    cell.small_page_mb = small_page_mb
    cell.small_page_used_mb = small_page_used_mb
    cell.numa_used_mb = numa_used_mb
    cell.pcpus = _RANGES[npcpus] if npcpus < _MAX_COUNTED else range(npcpus)
    cell.physnets = frozenset(physnets) if physnets else NO_PHYSNETS
    cell.tunneled = bool(tunneled)
    if key is not None:
        # Other threads may add the same key: either cell will do.
        if len(_SHARED) >= _MAX_SHARED:
            _SHARED.clear()
        _SHARED[key] = cell
    return cell


class LiveMemory:
    """Live memory of a host's nodes, as its agent last saw it.

    :param free_mb: ``{node_id: MB}`` free pages (``MemFree``).
    :param available_mb: ``{node_id: MB}`` free pages plus the page cache and
        slab the kernel can reclaim for a process bound to the node; the
        same nodes as ``free_mb``.
    :param untouched_mb: ``{node_id: MB}`` memory running guests were given
        but have not touched yet, charged to the node, for the same nodes;
        None when unknown (an older agent).
    :param unseen_mb: guest memory nova accounts to the host that the agent
        did not see running (placed since, or not started yet); None when
        unknown.
    """

    __slots__ = ('free_mb', 'available_mb', 'untouched_mb', 'unseen_mb')

    def __init__(self, free_mb, available_mb=None, untouched_mb=None,
                 unseen_mb=None):
        self.free_mb = free_mb
        self.available_mb = free_mb if available_mb is None else available_mb
        self.untouched_mb = untouched_mb
        self.unseen_mb = unseen_mb

    def covers(self, cells):
        """Whether there are figures for every one of ``cells``.

        The maps of a live memory have the same nodes (a payload gives every
        figure for every node it lists).
        """
        free = self.free_mb
        for cell in cells:
            if cell.id not in free:
                return False
        return True

    def __repr__(self):
        return ('LiveMemory(free_mb=%r, available_mb=%r, untouched_mb=%r, '
                'unseen_mb=%r)' % (self.free_mb, self.available_mb,
                                   self.untouched_mb, self.unseen_mb))


class Host:
    """A compute host: its cells plus the host-wide figures nova keeps.

    :param name: nova's compute ``host`` name.
    :param cells: tuple of :class:`Cell`, empty when the host reports no NUMA
        topology (non-libvirt drivers, ironic).
    :param used_mb: host-wide memory nova counts as used: every guest, NUMA or
        not, plus ``[DEFAULT] reserved_host_memory_mb``.
    :param ram_allocation_ratio: the host's memory overcommit ratio.
    :param live: :class:`LiveMemory` covering every cell, when a live source
        has fresh data for the host (see :meth:`with_live`); else None.

    :ivar net_free: per cell, in the order of :attr:`cells`, the live free
        memory less the guest memory not touched yet and the unseen guest
        memory (MB), when :attr:`live` gives them all; else None. Worked out
        once per host, so that judging it reads one tuple.

    A host is never changed once built; :attr:`derived` holds what
    :mod:`nova_numa_guard.fit` last derived from it, so that a host kept
    across requests (the scheduler's memo) is not worked out again.
    """

    __slots__ = ('name', 'cells', 'used_mb', 'ram_allocation_ratio', 'live',
                 'net_free', 'derived')

    def __init__(self, name, cells, used_mb=0, ram_allocation_ratio=1.0,
                 live=None):
        self.name = name
        self.cells = tuple(cells)
        self.used_mb = used_mb
        self.ram_allocation_ratio = ram_allocation_ratio
        self.live = live
        self.net_free = None
        if live is not None:
            net = _net_free(self.cells, live)
            self.net_free = None if net is _UNCOVERED else net
        self.derived = None

    def with_live(self, live):
        """A copy of the host carrying live memory; it shares the cells.

        :param live: :class:`LiveMemory`; unless it covers every cell, the
            host is returned unchanged (live data is all or nothing).
        """
        net = _net_free(self.cells, live)
        if net is _UNCOVERED:
            return self
        host = object.__new__(Host)
        host.name = self.name
        host.cells = self.cells
        host.used_mb = self.used_mb
        host.ram_allocation_ratio = self.ram_allocation_ratio
        host.live = live
        host.net_free = net
        host.derived = self.derived
        return host

    def __repr__(self):
        if self.live is None:
            return 'Host(%r, cells=%r)' % (self.name, list(self.cells))
        return 'Host(%r, cells=%r, live=%r)' % (
            self.name, list(self.cells), self.live)


def _net_free(cells, live):
    """:attr:`Host.net_free` of ``cells`` with ``live``.

    In the same pass, whether ``live`` covers them (:meth:`LiveMemory.
    covers`): :data:`_UNCOVERED` when it does not.
    """
    free, untouched = live.free_mb, live.untouched_mb
    if untouched is None:
        return None if live.covers(cells) else _UNCOVERED
    unseen = live.unseen_mb or 0
    try:
        return tuple([free[c.id] - untouched[c.id] - unseen for c in cells])
    except KeyError:
        return _UNCOVERED
