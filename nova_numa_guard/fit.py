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

"""Does a guest without a NUMA topology fit inside one cell of a host?

Pure functions over :mod:`nova_numa_guard.topology`; no nova, no config.

A host passes when some cell that can hold guests (it has shared CPUs and
small-page memory)

* is big enough: ``capacity >= memory`` and, with ``cpu_fit``,
  ``shared CPUs >= vCPUs`` (the *static* fit: otherwise the guest can never be
  local there), and
* has room now: its estimated free memory holds the guest (the *usage* fit).

``capacity`` is the cell's small-page memory minus the per-node reserve.
A host with at most one cell, or none with both shared CPUs and memory, has
nothing to judge and passes.

Estimated free memory is the live figure when a memory source supplied one
(``Host.live_free``) minus the reserve, else the accounted estimate of
:func:`accounted_free_mb`.

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
        Built only when read (a log line that is not emitted costs nothing).
    """

    __slots__ = ('passes', 'kind', 'best_mb', 'best_cpus', '_explain')

    def __init__(self, passes, kind=None, best_mb=None, best_cpus=None,
                 explain=None):
        self.passes = passes
        self.kind = kind
        self.best_mb = best_mb
        self.best_cpus = best_cpus
        self._explain = explain

    @property
    def reason(self):
        return self._explain() if self._explain else None

    def __str__(self):
        return self.reason or 'passes'


PASS = Verdict(True)


def node_reserve_mb(reserve, node_id):
    """Per-node reserve from a parsed ``(default_mb, {node: mb})`` tuple."""
    default, per_node = reserve
    return per_node.get(node_id, default)


def capacity_mb(cell, reserve=NO_RESERVE):
    """Small-page memory of the cell a guest may use, after the reserve."""
    return cell.small_page_mb - node_reserve_mb(reserve, cell.id)


def _non_numa_share(host, estimate):
    """How the non-NUMA usage is charged: ``(per cell, per small-page MB)``.

    The non-NUMA usage is what nova counts as used host-wide (every guest and
    ``[DEFAULT] reserved_host_memory_mb``) minus what the cells account to
    NUMA guests. ``spread`` charges it in proportion to the cells'
    small-page memory, ``worst_case`` all of it to every cell, ``ignore`` not
    at all.
    """
    if estimate == ESTIMATE_IGNORE:
        return 0, 0
    numa = total = 0
    for cell in host.cells:
        numa += cell.numa_used_mb
        if cell.small_page_mb > 0:
            total += cell.small_page_mb
    non_numa = host.used_mb - numa
    if non_numa <= 0:
        return 0, 0
    if estimate == ESTIMATE_WORST_CASE:
        return non_numa, 0
    return 0, (non_numa / total if total else 0)


def _accounted_free(cell, cap, ratio, share):
    per_cell, per_mb = share
    if cell.small_page_mb <= 0:
        per_mb = 0
    return int(cap * ratio - cell.small_page_used_mb - per_cell -
               cell.small_page_mb * per_mb)


def accounted_free_mb(host, reserve=NO_RESERVE, estimate=ESTIMATE_SPREAD):
    """Estimated free small-page memory of every cell from nova's numbers.

    Per cell: ``capacity * ram_allocation_ratio - small pages of NUMA guests -
    share of the non-NUMA usage`` (see ``[numa_guard]
    non_numa_memory_estimate``).

    :returns: list of MB, in the order of ``host.cells``.
    """
    share = _non_numa_share(host, estimate)
    return [_accounted_free(c, capacity_mb(c, reserve),
                            host.ram_allocation_ratio, share)
            for c in host.cells]


def judge(host, memory_mb, vcpus, reserve=NO_RESERVE, cpu_fit=True,
          estimate=ESTIMATE_SPREAD, placed=0):
    """Decide whether a non-NUMA guest fits inside one cell of ``host``.

    Runs for every host of every request: one pass over the cells, stopping
    at the first cell with room.

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
    live = host.live_free
    share = None if live is not None else _non_numa_share(host, estimate)
    ratio = host.ram_allocation_ratio
    fitting = []
    best = None
    slots = 0
    for cell in cells:
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
        if live is not None:
            free = live[cell.id] - node_reserve
        else:
            free = _accounted_free(cell, cap, ratio, share)
        fitting.append((cell.id, free))
        if free >= memory_mb:
            slots += free // memory_mb
            if slots > placed:
                return PASS
    if fitting:
        return _usage_failure(live is not None, fitting, memory_mb, placed)
    if best is None:
        # No cell has both shared CPUs and memory: bad data, or a host for
        # pinned guests only, which placement already keeps guests without a
        # NUMA topology off. Nothing to judge. (Cells whose memory is all in
        # hugepages do count: they are rejected above.)
        return PASS
    return _static_failure(best, memory_mb, vcpus, cpu_fit)


def _static_failure(best, memory_mb, vcpus, cpu_fit):
    cap, ncpus, cell_id = best

    def explain():
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
    return Verdict(False, STATIC, cap, ncpus, explain)


def _usage_failure(live, fitting, memory_mb, placed):
    def explain():
        source = 'live' if live else 'accounted'
        frees = ', '.join('cell %d %d MB' % item for item in fitting)
        if placed:
            return ('needs %d MB free in one cell after %d earlier '
                    'instance(s) of this request; %s free before them: %s' % (
                        memory_mb, placed, source, frees))
        return 'needs %d MB free in one cell; %s free: %s' % (
            memory_mb, source, frees)
    best_mb = max(free for _, free in fitting)
    return Verdict(False, USAGE, best_mb, None, explain)


def judge_numa_live(host, guest_cells_mb, reserve=NO_RESERVE,
                    placed_mb=None):
    """Cheap live check of a NUMA guest on small pages (``hw:numa_nodes``).

    Nova binds such a guest's memory strictly to its host cells but accounts
    only NUMA guests there, so a cell full of guests without a NUMA topology
    still looks empty to it and the guest is OOM-killed. The host passes when
    each guest cell gets a distinct host cell with CPUs (shared or dedicated)
    and small-page memory whose live figure (``Host.live_free``, the node's
    available memory) minus the per-node reserve and minus ``placed_mb``
    holds it. Memory-only nodes (CXL, HBM) never hold a guest cell: nova
    places guest cells only on nodes with CPUs. Hosts without live data pass.

    :param guest_cells_mb: memory of each guest cell, MB.
    :param placed_mb: ``{node_id: MB}`` placed on the cells by earlier
        instances of the same request.
    :returns: :class:`Verdict` (kind ``usage`` when it fails).
    """
    live = host.live_free
    if live is None or not host.cells or not guest_cells_mb:
        return PASS
    placed_mb = placed_mb or {}
    free = sorted(((live[c.id] - node_reserve_mb(reserve, c.id) -
                    placed_mb.get(c.id, 0), c.id)
                   for c in host.cells
                   if c.small_page_mb > 0 and (c.cpus or c.pcpus)),
                  reverse=True)
    need = sorted(guest_cells_mb, reverse=True)
    # Largest guest cell to the roomiest host cell, and so on: a distinct
    # assignment exists exactly when this pairing works.
    if len(need) <= len(free) and all(
            have >= want for (have, _), want in zip(free, need)):
        return PASS

    def explain():
        frees = ', '.join('cell %d %d MB' % (cell_id, mb)
                          for mb, cell_id in sorted(free, key=_cell_id))
        return ('NUMA guest needs %s MB on %d distinct cells; live '
                'available after the reserve%s: %s' % (
                    '+'.join('%d' % mb for mb in need), len(need),
                    ' and earlier instances' if placed_mb else '',
                    frees or 'no cell with CPUs and memory'))
    best_mb = free[0][0] if free else 0
    return Verdict(False, USAGE, best_mb, None, explain)


def _cell_id(item):
    return item[1]
