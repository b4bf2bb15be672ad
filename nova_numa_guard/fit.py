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

"""Does a guest fit inside the cells of a host?

Pure functions over :mod:`nova_numa_guard.topology`; no nova, no config.

A guest without a NUMA topology (:func:`judge`) floats over the host's
cells; the kernel places its memory. A host passes when some cell that can
hold guests (it has shared CPUs and small-page memory)

* is big enough: ``capacity >= memory`` and, with ``cpu_fit``,
  ``shared CPUs >= vCPUs`` (the *static* fit: otherwise the guest can never be
  local there), and
* has room now: its estimated free memory holds the guest (the *usage* fit).

``capacity`` is the cell's small-page memory minus the per-node reserve.
A host with at most one cell, or none with both shared CPUs and memory, has
nothing to judge and passes.

A NUMA guest on small pages (:func:`judge_bound`, :func:`judge_cells`) is
bound by nova to the host cells nova picks; each of them must have room for
its guest cell.

Estimated free memory of a cell (:func:`free_mb`) is, with live data
(``Host.live``):

* ``live figure - guest_untouched_mb - reserve``, where the live figure is
  ``MemFree`` for a floating guest and ``MemFree + Inactive(file) +
  SReclaimable`` for a bound one, less what nova placed that the agent has
  not seen (``unseen_mb``), charged in full to every cell. For a single
  floating guest, a host that fails that check gets a second look: the
  unseen memory charged to the roomiest of the cells big enough for the
  guest first, levelling them (:func:`level`): wherever those guests settle,
  one of these cells keeps at least the levelled room (the weigher asks the
  same of :func:`holding_cells`). For a bound guest, whose cells are given,
  and for later instances of a multi-create, the full charge stands.
* the lower of that figure (``live figure - reserve``) and the accounted
  estimate when the payload does not say what guests have not touched (an
  older agent): live data may make the guard stricter, never looser.

Without live data it is the accounted estimate of :func:`accounted_free_mb`.

For the k-th instance of a multi-create, the ``placed`` earlier instances of
the same request are packed first: the host passes when the fitting cells have
room for ``placed + 1`` guests, each inside one cell.
"""

ESTIMATE_SPREAD = 'spread'
ESTIMATE_WORST_CASE = 'worst_case'
ESTIMATE_IGNORE = 'ignore'

NO_RESERVE = (0, {})

STATIC = 'static'
USAGE = 'usage'


class Verdict:
    """The answer for one host.

    :ivar passes: bool.
    :ivar kind: None when it passes, ``'static'`` when no cell is big enough,
        ``'usage'`` when cells are big enough but none has room now.
    :ivar best_mb: largest capacity (static) or largest estimated free memory
        (usage) of a cell that can hold guests; None when it passes.
    :ivar best_cpus: shared CPUs of the largest cell (static); None otherwise.
    :ivar reason: one line with the numbers compared, None when it passes.
        Built only when read, by ``explain(*args)``: a log line that is not
        emitted costs nothing, and a rejection holds one tuple, not a
        closure (the filter rejects thousands of hosts per request).
    """

    __slots__ = ('passes', 'kind', 'best_mb', 'best_cpus', '_explain',
                 '_args')

    def __init__(self, passes, kind=None, best_mb=None, best_cpus=None,
                 explain=None, args=()):
        self.passes = passes
        self.kind = kind
        self.best_mb = best_mb
        self.best_cpus = best_cpus
        self._explain = explain
        self._args = args

    @property
    def reason(self):
        return self._explain(*self._args) if self._explain else None

    def __str__(self):
        return self.reason or 'passes'


PASS = Verdict(True)


def node_reserve_mb(reserve, node_id):
    """Per-node reserve from a parsed ``(default_mb, {node: mb})`` tuple."""
    default, per_node = reserve
    return per_node.get(node_id, default)


def capacity_mb(cell, reserve=NO_RESERVE):
    """Small-page memory of the cell a guest may use, after the reserve.

    Without a reserve, the cell's own figure: no new int, which a host kept
    across requests (:func:`_accounted_room`) would keep too.
    """
    node_reserve = node_reserve_mb(reserve, cell.id)
    return (cell.small_page_mb - node_reserve if node_reserve else
            cell.small_page_mb)


def _derived(host, estimate):
    """What :mod:`fit` keeps on ``host`` for ``estimate``.

    ``host.derived``: ``(estimate, per cell, per small-page MB, reserve,
    room)``, the first three worked out here: how the non-NUMA usage is
    charged. The non-NUMA usage is what nova counts as used host-wide (every
    guest and ``[DEFAULT] reserved_host_memory_mb``) minus what the cells
    account to NUMA guests. ``spread`` charges it in proportion to the
    cells' small-page memory, ``worst_case`` all of it to every cell,
    ``ignore`` not at all. ``reserve`` and ``room`` are
    :func:`_accounted_room`'s, None until it runs.

    The same for as long as the host lives: one tuple (other threads may
    replace it, never change it), one object for the garbage collector to
    walk on each of thousands of hosts kept across requests.
    """
    derived = host.derived
    if derived is not None and derived[0] == estimate:
        return derived
    per_cell = per_mb = 0
    if estimate != ESTIMATE_IGNORE:
        numa = total = 0
        for cell in host.cells:
            numa += cell.numa_used_mb
            if cell.small_page_mb > 0:
                total += cell.small_page_mb
        non_numa = host.used_mb - numa
        if non_numa > 0 and estimate == ESTIMATE_WORST_CASE:
            per_cell = non_numa
        elif non_numa > 0 and total:
            per_mb = non_numa / total
    derived = host.derived = (estimate, per_cell, per_mb, None, None)
    return derived


def _accounted_free(cell, cap, ratio, per_cell, per_mb):
    small = cell.small_page_mb
    return int(cap * ratio - cell.small_page_used_mb - per_cell -
               (small * per_mb if small > 0 else 0))


def _accounted_room(host, reserve, estimate):
    """Per cell ``(capacity, accounted free MB, CPUs, affined, id)``.

    :func:`capacity_mb`, what :func:`accounted_free_mb` gives, the cell's
    shared CPUs when it holds guests at all (shared CPUs and small pages;
    else 0), and whether nova affines physnets or tunnels to it: they
    depend on the host and the options only, so they are derived once for
    as long as the host lives, not once per request. (:func:`judge` reads
    the cells themselves: it stops at the first cell with room, and the
    cells are in the processor's caches anyway for their CPUs.)
    """
    derived = _derived(host, estimate)
    if derived[4] is not None and derived[3] == reserve:
        return derived[4]
    per_cell, per_mb = derived[1], derived[2]
    ratio = host.ram_allocation_ratio
    room = []
    for cell in host.cells:
        cap = capacity_mb(cell, reserve)
        room.append((cap, _accounted_free(cell, cap, ratio, per_cell, per_mb),
                     len(cell.cpus) if cell.small_page_mb > 0 else 0,
                     bool(cell.tunneled or cell.physnets), cell.id))
    room = tuple(room)
    host.derived = (estimate, per_cell, per_mb, reserve, room)
    return room


def accounted_free_mb(host, reserve=NO_RESERVE, estimate=ESTIMATE_SPREAD):
    """Estimated free small-page memory of every cell from nova's numbers.

    Per cell: ``capacity * ram_allocation_ratio - small pages of NUMA guests -
    share of the non-NUMA usage`` (see ``[numa_guard]
    non_numa_memory_estimate``).

    :returns: list of MB, in the order of ``host.cells``.
    """
    return [cell[1] for cell in _accounted_room(host, reserve, estimate)]


def free_mb(host, reserve=NO_RESERVE, estimate=ESTIMATE_SPREAD,
            bound=False):
    """Estimated free small-page memory of every cell (see module doc).

    The memory of guests nova placed that the agent has not seen is charged
    in full to every cell.

    :param bound: for a guest nova binds to its cells (a NUMA guest on
        small pages) rather than one the kernel places.
    :returns: list of MB, in the order of ``host.cells``.
    """
    free, unseen = _free_and_unseen(host, reserve, estimate, bound)
    return [mb - unseen for mb in free] if unseen else free


def _free_and_unseen(host, reserve, estimate, bound=False):
    """:func:`free_mb` before the unseen memory, and that memory (MB)."""
    live = host.live
    if live is None:
        return accounted_free_mb(host, reserve, estimate), 0
    figures = live.available_mb if bound else live.free_mb
    default, per_node = reserve
    free = [figures[c.id] - per_node.get(c.id, default) for c in host.cells]
    untouched = live.untouched_mb
    if untouched is None:
        return [min(mb, accounted) for mb, accounted in zip(
            free, accounted_free_mb(host, reserve, estimate))], 0
    return ([mb - untouched[c.id] for mb, c in zip(free, host.cells)],
            live.unseen_mb or 0)


def holding_cells(host, memory_mb, vcpus=0, reserve=NO_RESERVE,
                  estimate=ESTIMATE_SPREAD, placed_mb=0):
    """Which cells surely hold a guest without a NUMA topology now.

    A cell holds the guest when it can hold guests at all (shared CPUs and
    small-page memory), is big enough (:func:`capacity_mb` and ``vcpus``
    shared CPUs) and its estimated free memory (:func:`free_mb`) has room
    for it. Memory whose cell is not known yet, the guests the agent has
    not seen and the ``placed_mb`` of earlier instances of the same
    request, is charged in full to each cell: wherever it settles, a cell
    that holds keeps its room. Some cell may hold when none does so
    charged: that memory levelled over the cells big enough
    (:func:`level`) leaves room in one of them, wherever it settles.

    :returns: ``(holds, some)``: per cell whether it holds, in the order of
        ``host.cells``, and whether some cell does.
    """
    if host.live is None and not placed_mb:
        holds = _accounted_holding(host, memory_mb, vcpus, reserve, estimate,
                                   None)
        return holds, any(holds)
    free, pending, big = _pending_room(host, memory_mb, vcpus, reserve,
                                       estimate, placed_mb)
    holds = [ok and mb - pending >= memory_mb for ok, mb in zip(big, free)]
    return holds, _surely_one(free, pending, big, memory_mb)


def holding_idle(host, memory_mb, vcpus=0, reserve=NO_RESERVE,
                 estimate=ESTIMATE_SPREAD, placed_mb=0, busy_nodes=()):
    """Whether a cell holds the guest, and whether an idle one does.

    A cell is *busy* when guests that need devices or NICs want its memory:
    its node is in ``busy_nodes`` (free PCI devices, NICs the agent places
    there) or nova affines physnets or tunnels to it; else it is idle.
    Whether some cell holds is :func:`holding_cells`' second answer; on
    accounted data, found in one pass that stops once both answers and a
    busy cell are known.

    :param busy_nodes: a container of node ids.
    :returns: ``(some cell holds, some idle cell holds, some cell is
        busy)``.
    """
    if host.live is None and not placed_mb:
        return _accounted_holding(host, memory_mb, vcpus, reserve, estimate,
                                  busy_nodes)
    free, pending, big = _pending_room(host, memory_mb, vcpus, reserve,
                                       estimate, placed_mb)
    busy = [bool(c.physnets or c.tunneled or c.id in busy_nodes)
            for c in host.cells]
    idle = [ok and not taken for ok, taken in zip(big, busy)]
    return (_surely_one(free, pending, big, memory_mb),
            _surely_one(free, pending, idle, memory_mb), any(busy))


def _pending_room(host, memory_mb, vcpus, reserve, estimate, placed_mb):
    """``(free, pending, big)`` of :func:`holding_cells`.

    The free memory of each cell before the memory whose cell is not known,
    that memory, and whether each cell is big enough for the guest.
    """
    free, unseen = _free_and_unseen(host, reserve, estimate)
    big = [c.holds_guests and len(c.cpus) >= vcpus and
           capacity_mb(c, reserve) >= memory_mb for c in host.cells]
    return free, unseen + placed_mb, big


def _surely_one(free, pending, cells, memory_mb):
    """Whether one of ``cells`` (a mask) keeps ``memory_mb`` free.

    However ``pending`` MB settle over the cells: levelled over the masked
    cells (:func:`level`), the roomiest keeps the level.
    """
    room = [mb for mb, ok in zip(free, cells) if ok]
    if not room:
        return False
    if pending > 0:
        room = level(room, pending)
    return max(room) >= memory_mb


def _accounted_holding(host, memory_mb, vcpus, reserve, estimate,
                       busy_nodes):
    """:func:`holding_cells` (``busy_nodes`` None) or :func:`holding_idle`
    on accounted data: what :func:`free_mb` computes, cell by cell.
    """
    holds = [] if busy_nodes is None else None
    held = idle = busy = False
    for cap, free, cpus, affined, cell_id in _accounted_room(
            host, reserve, estimate):
        ok = cap >= memory_mb and free >= memory_mb and 0 < cpus >= vcpus
        if holds is not None:
            holds.append(ok)
        elif affined or cell_id in busy_nodes:
            busy = True
            if ok:
                held = True
            if idle:
                break
        elif ok:
            held = idle = True
            if busy:
                break
    return holds if holds is not None else (held, idle, busy)


def level(free, amount, eligible=None):
    """Charge ``amount`` to the roomiest eligible cells first.

    Water-filling: the eligible cells above a level ``L`` are lowered to it,
    where ``L`` is such that the cells give up ``amount`` in all. However
    guests of ``amount`` MB in total settle on the cells, the roomiest cell
    then still has at least ``L`` free: the cells above ``L`` started with
    ``amount`` more than ``L`` each on average, and lost at most ``amount``.

    :param free: MB per cell.
    :param amount: MB to charge, > 0.
    :param eligible: per cell, whether guests settle there; None: every
        cell.
    :returns: a new list of MB per cell.
    """
    if eligible is None:
        eligible = [True] * len(free)
    room = sorted((mb for mb, ok in zip(free, eligible) if ok),
                  reverse=True)
    if not room:
        return list(free)
    # Lower the top k cells to the (k+1)-th until that would give up at
    # least ``amount``; the level is then between the two.
    top = 0
    for k, mb in enumerate(room, 1):
        top += mb
        if k == len(room) or top - k * room[k] >= amount:
            line = (top - amount) // k
            break
    return [min(mb, line) if ok else mb for mb, ok in zip(free, eligible)]


def judge(host, memory_mb, vcpus, reserve=NO_RESERVE, cpu_fit=True,
          estimate=ESTIMATE_SPREAD, placed=0):
    """Decide whether a guest without a NUMA topology fits one cell.

    Runs for every host of every request: one pass over the cells, stopping
    at the first cell with room (on accounted data).

    :param host: :class:`nova_numa_guard.topology.Host`.
    :param memory_mb: the guest's memory.
    :param vcpus: the guest's vCPUs.
    :param reserve: parsed ``[numa_guard] reserved_node_memory_mb``.
    :param cpu_fit: also require ``shared CPUs >= vcpus`` in the cell.
    :param estimate: how accounted free memory charges non-NUMA usage.
    :param placed: instances of the same request already placed on the host.
    :returns: :class:`Verdict`.
    """
    cells = host.cells
    if len(cells) <= 1:
        return PASS
    default, per_node = reserve
    live = host.live
    net = host.net_free
    estimated = derived = None
    if live is not None and net is None:
        estimated = free_mb(host, reserve, estimate)
    fitting = []
    best = None
    slots = 0
    for index, cell in enumerate(cells):
        cpus = cell.cpus
        if not cpus or cell.memory_mb <= 0:
            # CPU-only or memory-only: never holds a whole guest.
            continue
        node_reserve = per_node.get(cell.id, default) if per_node else default
        cap = cell.small_page_mb - node_reserve
        if cap < memory_mb or (cpu_fit and len(cpus) < vcpus):
            if best is None or cap > best[0]:
                best = (cap, len(cpus), cell.id)
            continue
        if memory_mb <= 0:
            return PASS
        if live is None:
            if derived is None:
                # Only for a cell big enough: hosts whose cells all are
                # too small need no estimate.
                derived = _derived(host, estimate)
            free = _accounted_free(cell, cap, host.ram_allocation_ratio,
                                   derived[1], derived[2])
        elif estimated is not None:
            free = estimated[index]
        else:
            # Every cell less all of the unseen memory first: a lower bound
            # of the levelled figure, exact enough to pass most hosts
            # cheaply.
            free = net[index] - node_reserve
        if free >= memory_mb:
            slots += free // memory_mb
            if slots > placed:
                return PASS
        fitting.append((cell.id, free))
    unseen = (live.unseen_mb or 0) if fitting and net is not None else 0
    if fitting and unseen and not placed:
        # Near the limit: the unseen memory charged to the roomiest cells
        # that fit the guest first. However those guests settle, the
        # roomiest of these cells keeps at least the levelled figure (and
        # more if some settle elsewhere). Levelling says nothing of the
        # other cells, so with instances already placed (several guests to
        # fit) the first pass's full charge stands.
        levelled = level([free + unseen for _, free in fitting], unseen)
        fitting = [(cell_id, mb)
                   for (cell_id, _), mb in zip(fitting, levelled)]
        if max(levelled) >= memory_mb:
            return PASS
    if fitting:
        return _usage_failure(_source(live), fitting, memory_mb, placed)
    if best is None:
        # No cell has both shared CPUs and memory: bad data, or a host for
        # pinned guests only, which placement already keeps guests without a
        # NUMA topology off. Nothing to judge. (Cells whose memory is all in
        # hugepages do count: they are rejected above.)
        return PASS
    return _static_failure(best, memory_mb, vcpus, cpu_fit)


def _source(live):
    """How a free figure was estimated, for the reasons we log."""
    if live is None:
        return 'accounted'
    if live.untouched_mb is None:
        return 'live (capped by accounted)'
    return 'live'


def _static_failure(best, memory_mb, vcpus, cpu_fit):
    cap, ncpus, cell_id = best
    return Verdict(False, STATIC, cap, ncpus, _explain_static,
                   (memory_mb, vcpus, cpu_fit, cap, ncpus, cell_id))


def _explain_static(memory_mb, vcpus, cpu_fit, cap, ncpus, cell_id):
    if cpu_fit:
        need = '%d MB and %d vCPUs' % (memory_mb, vcpus)
    else:
        need = '%d MB' % memory_mb
    reason = ('needs %s in one cell; largest cell %d holds %d MB and %d '
              'CPUs' % (need, cell_id, max(cap, 0), ncpus))
    if cap <= 0:
        reason += (' (its memory is in hugepages or reserved; guests '
                   'without a page size use small pages)')
    return reason


def _usage_failure(source, fitting, memory_mb, placed):
    best_mb = max(free for _, free in fitting)
    return Verdict(False, USAGE, best_mb, None, _explain_usage,
                   (source, fitting, memory_mb, placed))


def _explain_usage(source, fitting, memory_mb, placed):
    frees = ', '.join('cell %d %d MB' % item for item in fitting)
    if placed:
        return ('needs %d MB free in one cell after %d earlier '
                'instance(s) of this request; %s free before them: %s' % (
                    memory_mb, placed, source, frees))
    return 'needs %d MB free in one cell; %s free: %s' % (
        memory_mb, source, frees)


def bound_free_mb(host, reserve=NO_RESERVE, estimate=ESTIMATE_SPREAD,
                  placed_mb=None):
    """``{cell_id: MB}`` a bound guest can get on each cell that can hold it.

    Cells with CPUs (shared or dedicated) and small-page memory; memory-only
    nodes (CXL, HBM) never hold a guest cell: nova places guest cells only on
    nodes with CPUs.

    :param placed_mb: ``{cell_id: MB}`` placed on the cells by earlier
        instances of the same request.
    """
    placed_mb = placed_mb or {}
    return {c.id: mb - placed_mb.get(c.id, 0)
            for c, mb in zip(host.cells,
                             free_mb(host, reserve, estimate, bound=True))
            if c.small_page_mb > 0 and (c.cpus or c.pcpus)}


def judge_bound(host, guest_cells_mb, free):
    """Judge a NUMA guest on small pages without asking nova, if possible.

    Nova binds such a guest's memory strictly to the host cells it picks but
    accounts only NUMA guests there, so a cell full of guests without a NUMA
    topology still looks empty to it and the guest is OOM-killed.

    :param guest_cells_mb: memory of each guest cell, MB.
    :param free: :func:`bound_free_mb` of the host.
    :returns: :class:`Verdict` when the answer does not depend on which cells
        nova picks: a rejection when no distinct cells can hold the guest
        cells, PASS when every cell holds the largest; else None (ask nova
        which cells, then :func:`judge_cells`).
    """
    if not host.cells or not guest_cells_mb:
        return PASS
    need = sorted(guest_cells_mb, reverse=True)
    room = sorted(free.values(), reverse=True)
    # Largest guest cell to the roomiest host cell, and so on: a distinct
    # assignment exists exactly when this pairing works.
    if len(need) > len(room) or not all(
            have >= want for have, want in zip(room, need)):
        return _bound_failure(host, need, free, None)
    if room[-1] >= need[0]:
        return PASS
    return None


def judge_cells(host, chosen, free):
    """Judge the host cells nova binds a NUMA guest to.

    :param chosen: ``[(host_cell_id, guest_cell_mb), ...]`` as nova's
        ``numa_fit_instance_to_host`` placed the guest cells; None when nova
        cannot place them at all.
    :param free: :func:`bound_free_mb` of the host.
    :returns: :class:`Verdict`.
    """
    if chosen is None:
        return PASS  # NUMATopologyFilter's business
    for cell_id, mb in chosen:
        if free.get(cell_id, 0) < mb:
            return _bound_failure(host, sorted((mb for _, mb in chosen),
                                               reverse=True), free, chosen)
    return PASS


def _bound_failure(host, need, free, chosen):
    best_mb = max(free.values()) if free else 0
    return Verdict(False, USAGE, best_mb, None, _explain_bound,
                   (host, need, free, chosen))


def _explain_bound(host, need, free, chosen):
    frees = ', '.join('cell %d %d MB' % (cell_id, mb)
                      for cell_id, mb in sorted(free.items()))
    source = _source(host.live)
    if chosen is None:
        return ('NUMA guest needs %s MB on %d distinct cells; %s free '
                'for bound memory: %s' % (
                    '+'.join('%d' % mb for mb in need), len(need),
                    source, frees or 'no cell with CPUs and memory'))
    return ('NUMA guest is bound by nova to %s; %s free for bound '
            'memory: %s' % (
                ', '.join('%d MB on cell %d' % (mb, cell_id)
                          for cell_id, mb in chosen), source, frees))
