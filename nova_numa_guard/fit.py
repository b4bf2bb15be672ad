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
Estimated free memory is the live figure when a memory source supplied one
(``Cell.live_free_mb``) minus the reserve, else the accounted estimate of
:func:`accounted_free_mb`.

For the k-th instance of a multi-create, the ``placed`` earlier instances of
the same request are packed first: the host passes when the fitting cells have
room for ``placed + 1`` guests, each inside one cell.
"""

import collections

ESTIMATE_SPREAD = 'spread'
ESTIMATE_WORST_CASE = 'worst_case'
ESTIMATE_IGNORE = 'ignore'

NO_RESERVE = (0, {})

STATIC = 'static'
USAGE = 'usage'


class Verdict(collections.namedtuple(
        'Verdict', 'passes kind reason best_mb best_cpus')):
    """The answer for one host.

    :ivar passes: bool.
    :ivar kind: None when it passes, ``'static'`` when no cell is big enough,
        ``'usage'`` when cells are big enough but none has room now.
    :ivar reason: one line with the numbers compared, None when it passes.
    :ivar best_mb: largest capacity (static) or largest estimated free memory
        (usage) of a cell that can hold guests; None when it passes.
    :ivar best_cpus: shared CPUs of the largest cell (static); None otherwise.
    """


PASS = Verdict(True, None, None, None, None)


def node_reserve_mb(reserve, node_id):
    """Per-node reserve from a parsed ``(default_mb, {node: mb})`` tuple."""
    default, per_node = reserve
    return per_node.get(node_id, default)


def capacity_mb(cell, reserve=NO_RESERVE):
    """Small-page memory of the cell a guest may use, after the reserve."""
    return cell.small_page_mb - node_reserve_mb(reserve, cell.id)


def accounted_free_mb(host, reserve=NO_RESERVE, estimate=ESTIMATE_SPREAD):
    """Estimated free small-page memory of every cell from nova's numbers.

    Per cell: ``capacity * ram_allocation_ratio - small pages of NUMA guests -
    share of the non-NUMA usage``. The non-NUMA usage is
    :attr:`Host.non_numa_used_mb`; ``estimate`` says how it is charged:
    ``spread`` in proportion to the cells' small-page memory, ``worst_case``
    all of it to every cell, ``ignore`` not at all.

    :returns: list of MB, in the order of ``host.cells``.
    """
    cells = host.cells
    ratio = host.ram_allocation_ratio
    if estimate == ESTIMATE_IGNORE:
        non_numa = 0
    else:
        non_numa = host.non_numa_used_mb
    total = 0
    if estimate == ESTIMATE_SPREAD and non_numa:
        total = sum(c.small_page_mb for c in cells if c.small_page_mb > 0)
    free = []
    for cell in cells:
        if not non_numa:
            share = 0
        elif estimate == ESTIMATE_WORST_CASE:
            share = non_numa
        elif total and cell.small_page_mb > 0:
            share = non_numa * cell.small_page_mb / total
        else:
            share = 0
        free.append(int(capacity_mb(cell, reserve) * ratio -
                        cell.small_page_used_mb - share))
    return free


def free_mb(host, reserve=NO_RESERVE, estimate=ESTIMATE_SPREAD):
    """Free memory per cell: live where known, else accounted."""
    cells = host.cells
    if cells and cells[0].live_free_mb is not None:
        return [c.live_free_mb - node_reserve_mb(reserve, c.id)
                for c in cells]
    return accounted_free_mb(host, reserve, estimate)


def judge(host, memory_mb, vcpus, reserve=NO_RESERVE, cpu_fit=True,
          estimate=ESTIMATE_SPREAD, placed=0):
    """Decide whether a non-NUMA guest fits inside one cell of ``host``.

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
    fitting = []
    best = None
    for cell in cells:
        if not cell.holds_guests:
            continue
        cap = capacity_mb(cell, reserve)
        ncpus = len(cell.cpus)
        if cap >= memory_mb and (not cpu_fit or ncpus >= vcpus):
            fitting.append(cell)
        elif best is None or cap > best[0]:
            best = (cap, ncpus, cell.id)
    if not fitting:
        return _static_failure(best, memory_mb, vcpus, cpu_fit)
    if memory_mb <= 0:
        return PASS
    free = free_mb(host, reserve, estimate)
    by_id = {c.id: f for c, f in zip(cells, free)}
    slots = 0
    for cell in fitting:
        cell_free = by_id[cell.id]
        if cell_free >= memory_mb:
            slots += cell_free // memory_mb
            if slots > placed:
                return PASS
    return _usage_failure(host, fitting, by_id, memory_mb, placed)


def _static_failure(best, memory_mb, vcpus, cpu_fit):
    if best is None:
        return Verdict(False, STATIC,
                       'no cell has both shared CPUs and memory', 0, 0)
    cap, ncpus, cell_id = best
    if cpu_fit:
        need = '%d MB and %d vCPUs' % (memory_mb, vcpus)
    else:
        need = '%d MB' % memory_mb
    reason = ('needs %s in one cell; largest cell %d holds %d MB and %d '
              'CPUs' % (need, cell_id, cap, ncpus))
    return Verdict(False, STATIC, reason, cap, ncpus)


def _usage_failure(host, fitting, by_id, memory_mb, placed):
    source = ('live' if host.cells[0].live_free_mb is not None
              else 'accounted')
    frees = ', '.join('cell %d %d MB' % (c.id, by_id[c.id]) for c in fitting)
    reason = 'needs %d MB free in one cell; %s free: %s' % (
        memory_mb, source, frees)
    if placed:
        reason += ' before %d earlier instance(s) of this request' % placed
    best_mb = max(by_id[c.id] for c in fitting)
    return Verdict(False, USAGE, reason, best_mb, None)
