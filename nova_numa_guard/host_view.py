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

"""The host NUMA view: a nova ``HostState`` as a :class:`topology.Host`.

Built once per scheduling request and host, on first use, and kept on the
``HostState`` (nova builds fresh ``HostState`` objects for every request, so
the view lives exactly as long as the request).

Reading nova's versioned objects is the expensive part, and what the view
reads changes only when the host's compute node record does: the
``topology.Host`` is memoised per compute node (``HostState.uuid``) and
record version. The version is the record's ``updated_at``
(``HostState.updated``) together with its ``free_ram_mb`` (every instance
added or removed, NUMA or not, moves it), its total memory and its memory
allocation ratio. The database may keep ``updated_at`` in whole seconds, so a
record updated less than a second before the request began is not memoised:
a second write within the same second could keep its timestamp. nova reads
the records before the filters run, so a record written just before that
read and rewritten within the same second, with the same free memory (one
guest replaced by another of the same size on another cell, or by one with
the same memory and a device on another node), could still be memoised as
first read: rare, and gone at the record's next write.

A newer record whose cells read the same as the memoised ones keeps their
:class:`topology.CountedCell` objects, and what :mod:`nova_numa_guard.fit`
derived from the host when nothing else the view reads changed either (nova
rewrites a record for every guest added or removed, and a guest without a
NUMA topology changes no cell). Building the cells again costs little;
freeing the old ones, far from the processor's caches by then, cost about
half as much as reading nova's objects.

The memo entry of a record is the host read from it (:class:`_Record`),
one object rather than a host and an entry: a request over thousands of new
records leaves thousands of them for the garbage collector to walk. It also
keeps the nodes of the record's free PCI devices once a request that takes
no device asked for them (:func:`device_nodes`).

The scheduler may judge requests on several threads at once: the memo is
only read, replaced entry by entry and pruned from a snapshot, never iterated
while others write to it. An entry itself changes only in its last use and
its device nodes, which every thread works out the same for the same record.
"""

import datetime
import itertools
import operator

from nova.objects import base as nova_objects
from oslo_utils import timeutils

from nova_numa_guard import topology

# A record this young may still be overwritten under the same timestamp.
_SETTLE = datetime.timedelta(seconds=1)

_ATTR = '_numa_guard_view'

# Where nova's objects keep the fields a host view reads.
_CELLS = nova_objects.get_attrname('cells')
_CELL_FIELDS = operator.attrgetter(*map(nova_objects.get_attrname, (
    'id', 'cpuset', 'pcpuset', 'memory', 'memory_usage', 'mempages',
    'network_metadata')))
_SIZE_KB = operator.attrgetter(nova_objects.get_attrname('size_kb'))
_POOL_FIELDS = operator.attrgetter(*map(nova_objects.get_attrname, (
    'total', 'reserved', 'used')))
_NETWORK_FIELDS = operator.attrgetter(*map(nova_objects.get_attrname, (
    'physnets', 'tunneled')))

# The sets of nodes with free devices, each kept once for all the memo
# entries with the same (a fleet has few: {0}, {1}, {0, 1}...); a host
# without free devices has the empty one.
_NO_NODES = frozenset()
_NODE_SETS = {_NO_NODES: _NO_NODES}
_MAX_NODE_SETS = 256

# compute node uuid -> _Record. A newer record replaces the entry; see
# begin_request() for compute nodes gone.
_MEMO = {}
# Requests counted by begin_request() (next() is atomic: each request gets
# its own number) and the latest number; the memo is pruned every
# _PRUNE_EVERY of them, of the entries no request used since the last
# pruning.
_COUNTER = itertools.count(1)
_REQUESTS = [0]
_PRUNE_EVERY = 100
# (aware, naive) UTC times: records updated since are not memoised; set by
# begin_request(), nothing before the first request.
_SETTLED = [(datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
             datetime.datetime.min)]


class _Record(topology.Host):
    """The memo entry of one compute node record: the host read from it.

    A :class:`topology.Host` (name, cells, used memory and allocation ratio
    are part of the record's version) with the rest of the version and what
    the memo keeps of the record.

    :ivar updated: the record's ``updated_at``.
    :ivar free_ram_mb: the record's free memory.
    :ivar last_used: the number of the latest request that read it.
    :ivar device_nodes: :func:`device_nodes` of the record, or None until a
        request asks.
    """

    __slots__ = ('updated', 'free_ram_mb', 'last_used', 'device_nodes')

    def __init__(self, name, cells, used_mb, ratio, derived, updated,
                 free_ram_mb):
        """:param derived: ``Host.derived`` of an earlier record with the
        same cells, used memory and allocation ratio, or None.
        """
        topology.Host.__init__(self, name, cells, used_mb, ratio)
        self.derived = derived
        self.updated = updated
        self.free_ram_mb = free_ram_mb
        self.last_used = _REQUESTS[0]
        self.device_nodes = None


class HostView:
    """What the guard knows of one host for the current request.

    :ivar host: the :class:`topology.Host`.
    :ivar built_free_ram_mb: ``HostState.free_ram_mb`` when the view was built.
        Nova lowers it for every instance of a multi-create it places on the
        host (and changes no cell for guests without a NUMA topology), so the
        drop tells how much this request already placed there.
    :ivar live_host: :attr:`host` with the live memory the filter fetched
        for the request (``topology.Host.live`` set), or None when it found
        no trusted live data for the host (or did not run). The weigher
        reads it, so that live data is fetched once per request.
    :ivar agent_physnets: ``{physnet: frozenset(node ids)}`` from the same
        trusted payload, or None.
    :ivar record: the memo entry of the host's compute record, or None when
        the record is not memoised.
    """

    __slots__ = ('host', 'built_free_ram_mb', 'live_host', 'agent_physnets',
                 'record')

    def __init__(self, host, built_free_ram_mb, record=None):
        self.host = host
        self.built_free_ram_mb = built_free_ram_mb
        self.live_host = None
        self.agent_physnets = None
        self.record = record

    def placed_mb(self, host_state):
        """Memory placed on the host since the view was built."""
        return max(0, self.built_free_ram_mb - host_state.free_ram_mb)


def get(host_state):
    """Return the :class:`HostView` of ``host_state``, building it once."""
    view = host_state.__dict__.get(_ATTR)
    if view is None:
        host, record = _memoised(host_state)
        view = HostView(host, host_state.free_ram_mb, record)
        setattr(host_state, _ATTR, view)
    return view


def built(host_state):
    """Whether the view of ``host_state`` was built in this request."""
    return _ATTR in host_state.__dict__


def numa_placed_mb(view, host_state):
    """``{cell: MB}`` nova placed on the cells since the view was built.

    For NUMA guests nova updates the cells of the HostState as it places the
    instances of a multi-create.
    """
    numa = host_state.numa_topology
    if numa is None:
        return {}
    before = {cell.id: cell.numa_used_mb for cell in view.host.cells}
    return {cell.id: cell.memory_usage - before[cell.id]
            for cell in numa.cells
            if cell.memory_usage > before.get(cell.id, cell.memory_usage)}


def live_memory(view, trusted, reserved_host_mb):
    """The host's :class:`topology.LiveMemory` from a trusted payload.

    ``unseen_mb`` is the guest memory nova accounts to the host (its used
    memory less ``[DEFAULT] reserved_host_memory_mb``) that the payload's
    ``guests_mb`` does not cover: guests placed since the agent read the
    host, or not started yet. Guests nova deleted that still run make it
    zero, not negative.

    :param view: the host's :class:`HostView`.
    :param trusted: a :class:`nova_numa_guard.live.payload.Trusted`.
    :param reserved_host_mb: ``[DEFAULT] reserved_host_memory_mb``.
    """
    unseen = None
    if trusted.guests_mb is not None:
        nova_guests_mb = view.host.used_mb - reserved_host_mb
        unseen = max(0, nova_guests_mb - trusted.guests_mb)
    return topology.LiveMemory(trusted.free_mb, trusted.available_mb,
                               trusted.untouched_mb, unseen)


def device_nodes(view, host_state):
    """Node ids of the host's PCI pools that have free devices.

    Read from ``host_state.pci_stats`` once per compute record, and kept
    with its memo entry: reading nova's pools costs more than weighing the
    host. Only for requests that take no device: nova takes devices from
    the pools as it places the instances of a request that does.

    :returns: a frozenset, holding ``None`` when some pool's devices have
        no node.
    """
    record = view.record
    if record is not None:
        nodes = record.device_nodes
        if nodes is not None:
            return nodes
    stats = host_state.pci_stats
    nodes = pool_nodes((stats.pools if stats is not None else None) or ())
    if record is not None:
        record.device_nodes = nodes
    return nodes


def pool_nodes(pools):
    """Node ids of nova PCI ``pools`` that have free devices: a frozenset."""
    nodes = frozenset([pool.get('numa_node') for pool in pools
                       if pool['count'] > 0])
    shared = _NODE_SETS.get(nodes)
    if shared is not None:
        return shared
    if len(_NODE_SETS) < _MAX_NODE_SETS:
        _NODE_SETS.setdefault(nodes, nodes)
    return nodes


def host_from_state(host_state):
    """A :class:`topology.Host` of a nova ``HostState``.

    From the memo while the compute node record has not changed; what
    reads the same of a newer record is kept (see the module doc).
    """
    return _memoised(host_state)[0]


def _memoised(host_state):
    """:func:`host_from_state`, and the record's memo entry or None."""
    key = host_state.uuid
    updated = host_state.updated
    free_ram_mb = host_state.free_ram_mb
    used_mb = host_state.total_usable_ram_mb - free_ram_mb
    ratio = host_state.ram_allocation_ratio or 1.0
    name = host_state.host
    kept = _MEMO.get(key)
    # Other threads may replace the entry, never change it but for its last
    # use and device nodes.
    derived = None
    if kept is None:
        cells = cells_from_state(host_state)
    else:
        same = (kept.used_mb == used_mb and
                kept.ram_allocation_ratio == ratio and kept.name == name)
        if (same and kept.updated == updated and updated is not None and
                kept.free_ram_mb == free_ram_mb):
            kept.last_used = _REQUESTS[0]
            return kept, kept
        cells = cells_from_state(host_state, kept.cells)
        if same and cells is kept.cells:
            # What fit derived of the host holds for the newer record.
            derived = kept.derived
    if key is None or not _settled(updated):
        host = topology.Host(name, cells, used_mb, ratio)
        host.derived = derived
        return host, None
    record = _MEMO[key] = _Record(name, cells, used_mb, ratio, derived,
                                  updated, free_ram_mb)
    return record, record


def cells_from_state(host_state, previous=()):
    """The host's cells, read from its nova ``NUMATopology``.

    :param previous: the cells of an earlier record of the same compute
        node: those that read the same are returned in place of new ones,
        and ``previous`` itself when all of them do.
    """
    numa = host_state.numa_topology
    if numa is None:
        return ()
    cells = getattr(numa, _CELLS, None)
    if cells is None:
        cells = numa.cells
    try:
        # cell_from_nova()'s fast path, one call less per cell.
        built = tuple(map(_from_storage, cells))
    except AttributeError:
        built = tuple(map(cell_from_nova, cells))
    if previous and len(previous) == len(built):
        same = topology.COUNTED_FIELDS
        built = [old if new is old or same(old) == same(new) else new
                 for new, old in zip(built, previous)]
        if all(map(operator.is_, built, previous)):
            return previous
        return tuple(built)
    return built


def begin_request():
    """Start a scheduling request: number it, and bound the memo.

    Called once per request, before the first view is built. Fixes when
    records are settled for this request (see the module doc), and every
    :data:`_PRUNE_EVERY` requests drops the entries that no request used
    since the previous pruning: those of compute nodes that were replaced or
    removed. A host that only small requests skip (a forced host, a rebuild)
    keeps its entry as long as any request in the window reads it. Never
    raises.
    """
    now = timeutils.utcnow(with_timezone=True)
    settled = now - _SETTLE
    _SETTLED[0] = (settled, settled.replace(tzinfo=None))
    current = _REQUESTS[0] = next(_COUNTER)
    if current % _PRUNE_EVERY:
        return
    oldest = current - _PRUNE_EVERY
    try:
        # dict.copy() takes no item tuples: unlike list(items()), it makes
        # no garbage that could run other threads' code mid-copy and
        # change the dict under it.
        for key, entry in _MEMO.copy().items():
            # Not an entry another request has just replaced.
            if entry.last_used < oldest and _MEMO.get(key) is entry:
                _MEMO.pop(key, None)
    except Exception:  # never into nova; the next pruning tries again
        pass


def _settled(updated):
    """Whether a record updated at ``updated`` can no longer change silently.

    Against the time the latest request began (an earlier time only
    memoises less). Records from the database and nova's
    ``HostState.consume_from_request`` carry a time zone; naive times (of
    older nova, or tests) are taken as UTC.
    """
    if updated is None:
        return False
    aware, naive = _SETTLED[0]
    return updated <= (naive if updated.tzinfo is None else aware)


def cell_from_nova(cell):
    """Build a :class:`topology.CountedCell` from a nova ``objects.NUMACell``.

    Only what a verdict reads, as plain Python values: nothing of nova's
    objects is kept (the cells are memoised across requests). CPUs are
    counted, not listed: ``cpus`` and ``pcpus`` are ``range`` objects of the
    cell's shared and dedicated CPU counts.

    When the cell reports page pools, the smallest pool is what guests without
    a page size can use (libvirt reports it as the node's memory not taken by
    hugepages), less its reserved pages (``[DEFAULT] reserved_huge_pages`` may
    reserve small pages too); nova charges NUMA guests on small pages to it.
    Fields that records of older computes lack are taken as empty.
    """
    try:
        return _from_storage(cell)
    except AttributeError:
        # A field is not set (an older record): read it as nova does.
        pass
    try:
        cpuset, pcpuset, mempages, network = (
            cell.cpuset, cell.pcpuset, cell.mempages, cell.network_metadata)
    except NotImplementedError:
        cpuset, pcpuset, mempages, network = (
            cell.cpuset, _optional(cell, 'pcpuset'),
            _optional(cell, 'mempages'), _optional(cell, 'network_metadata'))
    small_mb, small_used = cell.memory, cell.memory_usage
    if mempages:
        smallest = min(mempages, key=lambda pool: pool.size_kb)
        # Unset on records of older computes: nothing reserved, as nova's
        # own NUMAPagesTopology.free takes it.
        reserved = _optional(smallest, 'reserved') or 0
        small_mb = ((smallest.total - reserved) * smallest.size_kb
                    // 1024)
        small_used = smallest.used * smallest.size_kb // 1024
    physnets, tunneled = topology.NO_PHYSNETS, False
    if network is not None:
        physnets, tunneled = network.physnets, network.tunneled
    return topology.counted_cell(cell.id, cpuset, cell.memory, small_mb,
                                 small_used, cell.memory_usage, pcpuset,
                                 physnets, tunneled)


def _from_storage(cell):
    """:func:`cell_from_nova` from the fields' storage on nova's objects.

    Reading a field through its property costs ten times reading where nova
    keeps it (``nova.objects.base.get_attrname``, which nova reads and
    writes itself where speed matters), and a cold host view reads some
    forty. Read as attributes: asking for an object's ``__dict__`` would
    build one for each of nova's fresh objects. Raises AttributeError when
    a field is not set.
    """
    (cell_id, cpuset, pcpuset, memory, numa_used, mempages,
     network) = _CELL_FIELDS(cell)
    small_mb, small_used = memory, numa_used
    if mempages:
        smallest = mempages[0]
        size_kb = _SIZE_KB(smallest)
        if size_kb > topology.SMALL_PAGE_KB:
            # libvirt lists the base pages first; no page is smaller.
            for pool in mempages[1:]:
                if _SIZE_KB(pool) < size_kb:
                    smallest, size_kb = pool, _SIZE_KB(pool)
        total, reserved, used = _POOL_FIELDS(smallest)
        small_mb = (total - reserved) * size_kb // 1024
        small_used = used * size_kb // 1024
    physnets, tunneled = topology.NO_PHYSNETS, False
    if network is not None:
        physnets, tunneled = _NETWORK_FIELDS(network)
    return topology.counted_cell(cell_id, cpuset, memory, small_mb,
                                 small_used, numa_used, pcpuset, physnets,
                                 tunneled)


def _optional(obj, name):
    """A field of a versioned object, or None when it is not set."""
    try:
        return getattr(obj, name)
    except NotImplementedError:
        return None
