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

"""The pure vNUMA planner: guest nodes for a host's cells, and their specs.

:class:`Layout` picks the smallest number of guest NUMA nodes N such that N
distinct host cells that hold guests (cells with CPUs and memory) each hold
one guest node:

* a guest node's vCPUs fit the cell's CPUs (nova does not let a guest
  overcommit a cell against itself), and
* its memory fits the cell's capacity less ``headroom_pct`` percent: the
  small-page memory, or with a hugepage page size the free pages of that
  size (all of them: the memory outside the pool is the host's headroom).

Each guest node has at least one vCPU and one page. The split is symmetric
(``hw:numa_nodes`` alone) when the vCPUs and memory divide by N and every
chosen cell holds an equal share; otherwise every guest node gets explicit
``hw:numa_cpus.i`` and ``hw:numa_mem.i`` (MiB), in shares proportional to the
chosen cells so the bigger guest nodes go to the bigger cells. ``hw:cpu_sockets
= N`` gives the guest one socket per node when the vCPUs split evenly.

Guest nodes are sized in whole pages: of the given size, of the smallest
hugepage size for ``large`` (nova backs each node with the largest page size
that fits it), and in MiB for ``small`` and ``any`` (nova falls back to small
pages).

Nothing here imports nova: :mod:`nova_numa_guard.vnuma` checks what this
module plans with nova (:mod:`.nova_check`).
"""

import collections
import itertools

from nova_numa_guard import topology
from nova_numa_guard.vnuma import pages

DEFAULT_HEADROOM_PCT = 10

NUMA_NODES = 'hw:numa_nodes'
NUMA_CPUS = 'hw:numa_cpus.%d'
NUMA_MEM = 'hw:numa_mem.%d'
CPU_SOCKETS = 'hw:cpu_sockets'
MEM_PAGE_SIZE = 'hw:mem_page_size'

SMALL_PAGES_WARNING = (
    'the guest\'s memory is bound strictly to its host nodes on small '
    'pages, and nova does not count guests without a NUMA topology per '
    'node: on a host shared with such guests a full node gets this guest '
    'OOM-killed while other nodes have free memory; set '
    'hw:mem_page_size=large (--page-size large) with hugepages reserved per '
    'node, or run the guard\'s live memory check (nova-numa-guard-agent, '
    '[numa_guard] memory_source = cache)')


class PlanError(ValueError):
    """The guest cannot be planned; the message says why, on one line."""


# What one host cell offers one guest node: the cell, its CPUs and the
# memory a guest node may take there (MiB, a multiple of the page size).
Offer = collections.namedtuple('Offer', 'cell cpus capacity_mb')


class Plan:
    """A vNUMA layout for one guest and the extra specs that request it.

    :ivar vcpus: the flavor's vCPUs.
    :ivar memory_mb: the flavor's memory.
    :ivar nodes: N, the number of guest NUMA nodes (1 for a guest that fits
        one cell).
    :ivar node_cpus: vCPUs of each guest node.
    :ivar node_memory_mb: memory of each guest node (MiB).
    :ivar host_cells: ids of the host cells nova fitted the guest nodes on.
    :ivar symmetric: whether ``hw:numa_nodes`` alone describes the layout.
    :ivar extra_specs: ``{key: str}``; empty for a guest that fits one cell
        and needs no NUMA topology.
    :ivar warnings: list of one-line warnings.
    """

    def __init__(self, vcpus, memory_mb, node_cpus, node_memory_mb,
                 host_cells, symmetric, extra_specs, warnings):
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.nodes = len(node_cpus)
        self.node_cpus = tuple(node_cpus)
        self.node_memory_mb = tuple(node_memory_mb)
        self.host_cells = tuple(host_cells)
        self.symmetric = symmetric
        self.extra_specs = extra_specs
        self.warnings = warnings

    def __repr__(self):
        return 'Plan(nodes=%d, cpus=%r, memory_mb=%r, specs=%r)' % (
            self.nodes, self.node_cpus, self.node_memory_mb,
            self.extra_specs)


def page_size(value):
    """:class:`pages.PageSize` of a ``hw:mem_page_size`` value, or None.

    :raises: PlanError when nova would not read it as a page size.
    """
    if value is None:
        return None
    try:
        return pages.PageSize(value)
    except ValueError as e:
        raise PlanError(str(e))


def usable_mb(memory_mb, headroom_pct):
    """Memory of a cell a guest node may take: ``headroom_pct`` stays free."""
    return int(memory_mb * (100 - headroom_pct) // 100)


def check_args(vcpus, memory_mb, headroom_pct):
    """Refuse arguments no plan can be made for, in one line."""
    for name, value in (('vCPUs', vcpus), ('memory', memory_mb)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlanError('%s must be an integer, got %r' % (name, value))
        if value < 1:
            raise PlanError('%s must be at least 1, got %d' % (name, value))
    if not 0 <= headroom_pct < 100:
        raise PlanError('headroom must be at least 0 and below 100 percent, '
                        'got %s' % headroom_pct)


def common_notes(nodes_cpus, page, with_specs):
    """Warnings every plan of these guest nodes carries."""
    found = []
    if with_specs and len(set(nodes_cpus)) > 1:
        found.append('hw:cpu_sockets is not set: the guest nodes have '
                     'different vCPU counts (%s), so sockets cannot match '
                     'nodes' % '/'.join(map(str, nodes_cpus)))
    if with_specs and (page is None or page.may_be_small):
        found.append(SMALL_PAGES_WARNING)
    return found


def nova_order(cells, targets, nodes):
    """The guest nodes in the order nova tries their planned cells.

    ``numa_fit_instance_to_host`` tries the host cells in their order when
    the guest takes all of them, else those with the most free memory first
    (it spreads by default).

    :param cells: the host cells, as nova gets them.
    :param targets: the planned cell of each guest node.
    :param nodes: the guest nodes, ``(vCPUs, MiB)``.
    """
    position = {cell.id: i for i, cell in enumerate(cells)}
    spread = len(nodes) < len(cells)

    def rank(pair):
        cell = pair[0]
        free = cell.memory_mb - cell.numa_used_mb
        return (-free if spread else 0, position[cell.id])

    return [node for _, node in sorted(zip(targets, nodes), key=rank)]


def orders(nodes, symmetric, limit=120):
    """The given order of guest nodes, then other distinct orders."""
    yield nodes
    if symmetric:
        return
    seen = {tuple(nodes)}
    for order in itertools.permutations(nodes):
        if order not in seen:
            seen.add(order)
            yield list(order)
            if len(seen) >= limit:
                return


def specs(nodes_cpus, nodes_mb, symmetric, page):
    """The extra specs of guest nodes, in this order."""
    n = len(nodes_cpus)
    result = {NUMA_NODES: str(n)}
    if not symmetric:
        first = 0
        for i, (count, mb) in enumerate(zip(nodes_cpus, nodes_mb)):
            result[NUMA_CPUS % i] = cpu_range(first, count)
            result[NUMA_MEM % i] = str(mb)
            first += count
    if len(set(nodes_cpus)) == 1:
        result[CPU_SOCKETS] = str(n)
    if page is not None:
        result[MEM_PAGE_SIZE] = page.value
    return result


def specs_text(extra_specs):
    """Extra specs as ``key=value`` words, in their order."""
    return ' '.join('%s=%s' % item for item in extra_specs.items())


def cpu_range(first, count):
    if count == 1:
        return str(first)
    return '%d-%d' % (first, first + count - 1)


class Layout:
    """What each host cell offers one guest node, for a page-size request.

    :ivar cells: the host cells as nova is to see them (with an assumed
        hugepage pool made explicit when the host lists none).
    :ivar offers: an :data:`Offer` of every cell that can hold a guest
        node, roomiest first.
    """

    def __init__(self, cells, headroom_pct, page):
        self.headroom_pct = headroom_pct
        self.page = page
        self.notes = []
        # Cells with CPUs; those without memory for the page size drop out
        # of the offers below.
        self.holding = [c for c in cells if c.cpus]
        self.any_memory = any(
            c.small_page_mb > 0 or any(pages.pool_mb(c, size) > 0
                                       for size in c.hugepages)
            for c in self.holding)
        page_kb, self.assumed_kb = self._page_kb()
        self.mult_mb = max(1, page_kb // 1024)
        if self.assumed_kb:
            self.notes.append(
                'the host description lists no %d KiB pages; the plan '
                'assumes each cell can reserve its memory less %g%% '
                'headroom as such pages' % (self.assumed_kb, headroom_pct))
        # Host cells for nova's check: assumed pools made explicit.
        self.cells = list(cells)
        if self.assumed_kb:
            self.cells = [self._with_assumed_pool(c) for c in cells]
        # Every cell that can hold a guest node.
        offers = [Offer(c, len(c.cpus), self.capacity_mb(c))
                  for c in self.holding]
        self.offers = sorted(
            (o for o in offers if o.capacity_mb >= self.mult_mb),
            key=_roomiest_first)
        self.excluded = len(cells) - len(self.offers)

    def _page_kb(self):
        """(page size guest nodes are multiples of, size assumed or None).

        For ``large`` nova backs each node with the largest page size that
        fits it: nodes of whole pages of the smallest size with free pages
        can fit a pool (nova's check finds those that do not). ``any``
        falls back to small pages, like ``small``.
        """
        kind = self.page.kind if self.page else 'small'
        listed = {size for c in self.holding for size in c.hugepages}
        if kind == 'size':
            size = self.page.size_kb
            return size, (None if size in listed else size)
        if kind == 'large':
            free = {size for c in self.holding for size in c.hugepages
                    if pages.pool_mb(c, size) > 0}
            if free or listed:
                return min(free or listed), None
            return pages.ASSUMED_LARGE_PAGE_KB, pages.ASSUMED_LARGE_PAGE_KB
        return topology.SMALL_PAGE_KB, None

    def _with_assumed_pool(self, cell):
        if not cell.cpus:
            return cell
        pages = self._floor(usable_mb(cell.small_page_mb, self.headroom_pct))
        pools = dict(cell.hugepages)
        pools[self.assumed_kb] = (pages * 1024 // self.assumed_kb, 0)
        return cell.replace(hugepages=pools)

    def _floor(self, mb):
        return mb // self.mult_mb * self.mult_mb

    def capacity_mb(self, cell):
        """Memory one guest node may take on ``cell`` (a page multiple)."""
        small = self._floor(usable_mb(cell.small_page_mb, self.headroom_pct))
        kind = self.page.kind if self.page else 'small'
        if kind == 'small':
            return small
        if self.assumed_kb:
            return small
        if kind == 'size':
            sizes = [self.page.size_kb]
        else:
            sizes = list(cell.hugepages)
        large = max([self._floor(pages.pool_mb(cell, size))
                     for size in sizes],
                    default=0)
        return max(small, large) if kind == 'any' else large

    def solve(self, vcpus, memory_mb):
        """(vCPUs per node, MiB per node, symmetric)."""
        if not self.holding or not (self.offers or self.any_memory):
            raise PlanError('the host has no NUMA cell with both CPUs and '
                            'memory')
        mult = self.mult_mb
        if memory_mb % mult:
            raise PlanError('%d MB is not a multiple of the %d MB pages' % (
                memory_mb, mult))
        if not self.offers:
            raise PlanError('no cell of the host has %s' % self._what())
        units = memory_mb // mult
        limit = min(len(self.offers), vcpus, units)
        best = _best_subsets(self.offers, vcpus, limit)
        for n in range(1, limit + 1):
            sym = self._symmetric(n, vcpus, memory_mb)
            if sym:
                return [vcpus // n] * n, [memory_mb // n] * n, True, sym
            mem, subset = best.get(n, (-1, ()))
            if mem >= memory_mb:
                subset = sorted(subset, key=_roomiest_first)
                cpus = _split(vcpus, [o.cpus for o in subset])
                mem_units = _split(units,
                                   [o.capacity_mb // mult for o in subset])
                return (cpus, [u * mult for u in mem_units], False,
                        [o.cell for o in subset])
        raise PlanError(self._why_not(vcpus, memory_mb))

    def overfull(self, nodes, host_cells):
        """The first guest node nova placed beyond what its cell offers.

        :param nodes: the guest nodes, ``(vCPUs, MiB)``.
        :param host_cells: the id of the cell nova placed each node on.
        :returns: ``(vCPUs, MiB, cell)`` or None.
        """
        by_id = {c.id: c for c in self.cells}
        for (count, mb), cell_id in zip(nodes, host_cells):
            cell = by_id[cell_id]
            if count > len(cell.cpus) or mb > self.capacity_mb(cell):
                return count, mb, cell
        return None

    def overfull_text(self, count, mb, cell):
        return ('nova places the guest node of %d vCPUs and %d MB on host '
                'cell %d, which offers %d CPUs and %d MB%s, in every order '
                'of the guest nodes; a lower headroom may accept it' % (
                    count, mb, cell.id, len(cell.cpus),
                    self.capacity_mb(cell), self._headroom_text()))

    def _symmetric(self, n, vcpus, memory_mb):
        if vcpus % n or memory_mb % n or (memory_mb // n) % self.mult_mb:
            return None
        fits = [o for o in self.offers
                if o.cpus >= vcpus // n and o.capacity_mb >= memory_mb // n]
        return [o.cell for o in fits[:n]] if len(fits) >= n else None

    def _headroom_text(self):
        """How the headroom counts: hugepage pools are headroom already."""
        if (self.page and self.page.kind in ('size', 'large') and
                not self.assumed_kb):
            return ''
        return ' (after %g%% headroom)' % self.headroom_pct

    def _what(self):
        if self.page and self.page.kind == 'size':
            return 'free %d KiB pages' % self.page.size_kb
        if self.page and self.page.kind == 'large':
            return 'free hugepages'
        return 'memory'

    def _why_not(self, vcpus, memory_mb):
        count = len(self.offers)
        has = 'host has %d' % count
        if self.excluded:
            has += ' (cells with CPUs and %s)' % self._what()
        cpus = sorted((o.cpus for o in self.offers), reverse=True)
        mems = sorted((o.capacity_mb for o in self.offers), reverse=True)
        n_cpu = _cover(cpus, vcpus)
        n_mem = _cover(mems, memory_mb)
        headroom = self._headroom_text()
        if n_cpu is None:
            need = -(-vcpus // cpus[0])
            if need > count:
                return '%d vCPUs need %d nodes of <=%d CPUs; %s' % (
                    vcpus, need, cpus[0], has)
            return ('%d vCPUs exceed the %d CPUs of the host\'s %d cells '
                    'that hold guests' % (vcpus, sum(cpus), count))
        if n_mem is None:
            need = -(-memory_mb // mems[0])
            if need > count:
                return '%d MB need %d nodes of <=%d MB%s; %s' % (
                    memory_mb, need, mems[0], headroom, has)
            return ('%d MB exceed the %d MB the host\'s %d cells offer%s' % (
                memory_mb, sum(mems), count, headroom))
        if n_mem > vcpus:
            return ('%d MB need %d nodes of <=%d MB%s, but %d vCPU(s) '
                    'cannot make %d nodes: each node needs a vCPU' % (
                        memory_mb, n_mem, mems[0], headroom, vcpus, n_mem))
        units = memory_mb // self.mult_mb
        if n_cpu > units:
            return ('%d vCPUs need %d nodes, but %d MB split into at most %d '
                    'nodes of %d MB pages' % (vcpus, n_cpu, memory_mb, units,
                                              self.mult_mb))
        return ('no set of the host\'s cells holds both %d vCPUs and %d MB '
                '(one node per cell%s)' % (vcpus, memory_mb, headroom))


def _cover(values, total):
    """How many of ``values`` (sorted descending) add up to ``total``."""
    acc = 0
    for n, value in enumerate(values, 1):
        acc += value
        if acc >= total:
            return n
    return None


def _best_subsets(offers, vcpus, limit):
    """For n in 1..limit, the n offers with the most memory and >= vcpus CPUs.

    A small dynamic programme over (cells taken, CPUs taken capped at
    ``vcpus``): exact, and linear in cells x nodes x vCPUs.

    :returns: ``{n: (memory, offers)}`` for every n that some n cells reach.
    """
    states = {(0, 0): (0, ())}
    for offer in offers:
        for (taken, cpu), (total, chosen) in sorted(states.items(),
                                                    reverse=True):
            if taken >= limit:
                continue
            key = (taken + 1, min(vcpus, cpu + offer.cpus))
            candidate = (total + offer.capacity_mb, chosen + (offer,))
            if key not in states or states[key][0] < candidate[0]:
                states[key] = candidate
    return {taken: value for (taken, cpu), value in states.items()
            if cpu == vcpus}


def _split(total, caps):
    """Split ``total`` into shares of at least 1 and at most ``caps[i]``.

    Shares are proportional to the caps, and a larger cap never gets a
    smaller share. Needs ``len(caps) <= total <= sum(caps)``.
    """
    spare = total - len(caps)
    room = sum(caps) - len(caps)
    shares = [1 + (spare * (cap - 1) // room if room else 0) for cap in caps]
    order = sorted(range(len(caps)), key=lambda i: -caps[i])
    left = total - sum(shares)
    while left:
        for i in order:
            if left and shares[i] < caps[i]:
                shares[i] += 1
                left -= 1
    return shares


def live_notes(cells, live_free, nodes_mb):
    """Warn when the memory available now cannot take the guest nodes.

    :param live_free: ``{node_id: MB}`` available now (``MemFree +
        Inactive(file) + SReclaimable``), or None.
    """
    if not live_free:
        return []
    live = {c.id: live_free[c.id] for c in cells
            if c.holds_guests and c.id in live_free}
    if not live:
        return []
    free = sorted(live.values(), reverse=True)
    need = sorted(nodes_mb, reverse=True)
    if len(free) >= len(need) and all(f >= m for f, m in zip(free, need)):
        return []
    return ['the host\'s nodes do not have the memory available for the '
            'guest nodes now (%s available; guest nodes of %s MB): free '
            'memory on the host before booting the guest there' % (
                ', '.join('node %d %d MB' % item
                          for item in sorted(live.items())),
                '/'.join(map(str, nodes_mb)))]


def _roomiest_first(offer):
    return (-offer.capacity_mb, -offer.cpus, offer.cell.id)
