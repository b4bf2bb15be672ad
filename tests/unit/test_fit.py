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

"""Table-driven and property tests of the pure cell-fit logic."""

import copy
import itertools

import hypothesis
from hypothesis import strategies as st

from nova_numa_guard import fit
from nova_numa_guard import topology
from tests import testcase
from tests.unit import fakes

Cell = topology.Cell
cpus = fakes.cpus
GB = 1024

# name -> cells. Hosts are built with 512 MB of host-wide usage (nova's
# default reserved_host_memory_mb) unless a row says otherwise.
TOPOLOGIES = {
    'two-node-64g': fakes.two_node_cells(),
    'single_cell': [Cell(0, cpus(0, 24), 128 * GB)],
    'no_topology': [],
    'memory_only_node': [Cell(0, cpus(0, 12), 32 * GB),
                         Cell(1, cpus(12, 12), 32 * GB),
                         Cell(2, frozenset(), 256 * GB)],
    'cpu_only_node': [Cell(0, cpus(0, 4), 0),
                      Cell(1, cpus(4, 12), 32 * GB)],
    'unequal': [Cell(0, cpus(0, 8), 16 * GB),
                Cell(1, cpus(8, 16), 96 * GB)],
    # 64 GB cells with 48 GB of 1 GiB pages: 16 GB left for small pages.
    'hugepage_heavy': [Cell(0, cpus(0, 12), 64 * GB, small_page_mb=16 * GB,
                            hugepages={1048576: (48, 0)}),
                       Cell(1, cpus(12, 12), 64 * GB, small_page_mb=16 * GB,
                            hugepages={1048576: (48, 0)})],
    'no_shared_cpus': [Cell(0, frozenset(), 64 * GB, pcpus=cpus(0, 12)),
                       Cell(1, frozenset(), 64 * GB, pcpus=cpus(12, 12))],
    'zero_memory': [Cell(0, cpus(0, 12), 0), Cell(1, cpus(12, 12), 0)],
    # All memory in 1 GiB pages: nothing for guests without a page size.
    'hugepages_only': [Cell(0, cpus(0, 12), 64 * GB, small_page_mb=0,
                            hugepages={1048576: (64, 0)}),
                       Cell(1, cpus(12, 12), 64 * GB, small_page_mb=0,
                            hugepages={1048576: (64, 0)})],
}

# (topology, memory_mb, vcpus, options, expected kind: None = passes)
CASES = [
    ('two-node-64g', 70000, 4, {}, fit.STATIC),
    ('two-node-64g', 64000, 4, {}, None),
    # 512 MB of host-wide usage spread: 64072 and 64253 MB free.
    ('two-node-64g', 64253, 4, {}, None),
    ('two-node-64g', 64254, 4, {}, fit.USAGE),
    ('two-node-64g', 64510, 4, {}, fit.USAGE),  # cell 1 is 64510 MB
    ('two-node-64g', 64511, 4, {}, fit.STATIC),
    ('two-node-64g', 16 * GB, 13, {}, fit.STATIC),
    ('two-node-64g', 16 * GB, 13, {'cpu_fit': False}, None),
    ('two-node-64g', 16 * GB, 12, {}, None),
    ('two-node-64g', 0, 4, {}, None),
    ('two-node-64g', 0, 13, {}, fit.STATIC),
    ('two-node-64g', 64000, 4, {'reserve': (1024, {})}, fit.STATIC),
    ('two-node-64g', 63000, 4, {'reserve': (0, {0: 2048, 1: 1024})}, None),
    ('two-node-64g', 63400, 4, {'reserve': (0, {0: 2048, 1: 1024})},
     fit.USAGE),
    ('two-node-64g', 63500, 4, {'reserve': (0, {0: 2048, 1: 1024})},
     fit.STATIC),
    # 115566 MB used as in two-node-64g's numastat, all by non-NUMA guests.
    ('two-node-64g', 16 * GB, 4, {'used_mb': 115566}, fit.USAGE),
    ('two-node-64g', 6 * GB, 4, {'used_mb': 115566}, None),
    ('two-node-64g', 16 * GB, 4, {'used_mb': 115566, 'estimate': 'ignore'},
     None),
    ('two-node-64g', 16 * GB, 4, {'used_mb': 60000, 'estimate': 'worst_case'},
     fit.USAGE),
    ('two-node-64g', 16 * GB, 4, {'used_mb': 60000}, None),
    ('two-node-64g', 16 * GB, 4, {'used_mb': 115566, 'ratio': 1.5}, None),
    ('two-node-64g', 40000, 2, {'placed': 1}, None),
    ('two-node-64g', 40000, 2, {'placed': 2}, fit.USAGE),
    ('two-node-64g', 30000, 2, {'placed': 3}, None),
    ('two-node-64g', 30000, 2, {'placed': 4}, fit.USAGE),
    ('single_cell', 200 * GB, 64, {}, None),
    ('no_topology', 200 * GB, 64, {}, None),
    ('memory_only_node', 40 * GB, 4, {}, fit.STATIC),
    ('memory_only_node', 30 * GB, 4, {}, None),
    ('cpu_only_node', 8 * GB, 8, {}, None),
    ('cpu_only_node', 8 * GB, 13, {}, fit.STATIC),
    ('unequal', 32 * GB, 4, {}, None),
    ('unequal', 32 * GB, 12, {}, None),
    ('unequal', 32 * GB, 17, {}, fit.STATIC),
    ('unequal', 97 * GB, 4, {}, fit.STATIC),
    ('hugepage_heavy', 16 * GB - 512, 4, {'used_mb': 0}, None),
    ('hugepage_heavy', 20 * GB, 4, {}, fit.STATIC),
    ('no_shared_cpus', 8 * GB, 4, {}, None),
    ('zero_memory', 8 * GB, 4, {}, None),
    ('hugepages_only', 4 * GB, 2, {}, fit.STATIC),
    ('hugepages_only', 0, 2, {}, None),
]


class JudgeTableTest(testcase.TestCase):

    def test_cases(self):
        """Ensures every row of the table gets the expected verdict."""
        for name, memory_mb, vcpus, options, expected in CASES:
            options = dict(options)
            host = fakes.host(TOPOLOGIES[name],
                              used_mb=options.pop('used_mb', 512),
                              ratio=options.pop('ratio', 1.0))
            verdict = fit.judge(host, memory_mb, vcpus, **options)
            self.assertEqual(
                expected, verdict.kind,
                '%s %s MB %s vCPUs %s: %s' % (name, memory_mb, vcpus,
                                              options, verdict.reason))
            self.assertEqual(expected is None, verdict.passes)

    def test_static_reason_names_the_numbers(self):
        """Ensures a static rejection says what was needed and what exists."""
        verdict = fit.judge(fakes.host(fakes.two_node_cells()), 70000, 4)
        self.assertEqual('needs 70000 MB and 4 vCPUs in one cell; largest '
                         'cell 1 holds 64510 MB and 12 CPUs', verdict.reason)
        self.assertEqual((64510, 12), (verdict.best_mb, verdict.best_cpus))

    def test_hugepage_only_cells_say_where_the_memory_is(self):
        """Ensures a host with no small-page memory is rejected, saying why."""
        verdict = fit.judge(fakes.host(TOPOLOGIES['hugepages_only']), 4096, 2)
        self.assertEqual(
            'needs 4096 MB and 2 vCPUs in one cell; largest cell 0 holds 0 MB '
            'and 12 CPUs (its memory is in hugepages or reserved; guests '
            'without a page size use small pages)', verdict.reason)

    def test_usage_reason_names_the_free_memory(self):
        """Ensures a usage rejection lists each fitting cell's free memory."""
        host = fakes.host(fakes.two_node_cells(), used_mb=115566)
        verdict = fit.judge(host, 16 * GB, 4)
        self.assertEqual('needs 16384 MB free in one cell; accounted free: '
                         'cell 0 6626 MB, cell 1 6645 MB', verdict.reason)
        self.assertEqual(6645, verdict.best_mb)

    def test_live_free_memory_wins_over_accounting(self):
        """Ensures live figures replace the accounted estimate."""
        host = fakes.host(fakes.two_node_cells(), used_mb=512)
        self.assertTrue(fit.judge(host, 16 * GB, 4).passes)
        live = host.with_live(topology.LiveMemory(
            {0: 10501, 1: 2769}, untouched_mb={0: 0, 1: 0}, unseen_mb=0))
        verdict = fit.judge(live, 16 * GB, 4)
        self.assertEqual(fit.USAGE, verdict.kind)
        self.assertIn('live free: cell 0 10501 MB, cell 1 2769 MB',
                      verdict.reason)
        self.assertTrue(fit.judge(live, 10 * GB, 4).passes)
        self.assertFalse(fit.judge(live, 10 * GB, 4,
                                   reserve=(512, {})).passes)

    def test_untouched_guest_memory_is_not_free(self):
        """Ensures memory running guests have not touched yet is promised."""
        host = fakes.host(fakes.two_node_cells()).with_live(
            topology.LiveMemory({0: 30000, 1: 20000},
                                untouched_mb={0: 25000, 1: 0}, unseen_mb=0))
        verdict = fit.judge(host, 16 * GB, 4)
        self.assertTrue(verdict.passes)
        verdict = fit.judge(host, 20001, 4)
        self.assertIn('live free: cell 0 5000 MB, cell 1 20000 MB',
                      verdict.reason)

    def test_older_agent_is_capped_by_accounting(self):
        """Ensures a payload without guest figures is never looser."""
        # Accounted: 60000 MB of non-NUMA usage spread by cell size,
        # 64328 - 29957 = 34370 MB free on cell 0; live says 60000 MB.
        host = fakes.host(fakes.two_node_cells(), used_mb=60000).with_live(
            topology.LiveMemory({0: 60000, 1: 2000}))
        verdict = fit.judge(host, 40000, 4)
        self.assertEqual(fit.USAGE, verdict.kind)
        self.assertIn('live (capped by accounted) free: cell 0 34370 MB, '
                      'cell 1 2000 MB', verdict.reason)

    def test_partial_live_data_is_ignored(self):
        """Ensures live data must cover every cell to be used."""
        host = fakes.host(fakes.two_node_cells())
        self.assertIs(host, host.with_live(topology.LiveMemory({0: 100})))
        self.assertIs(host, host.with_live(topology.LiveMemory(
            {0: 100, 5: 100})))
        self.assertIs(host, host.with_live(topology.LiveMemory(
            {0: 100, 5: 100}, None, {0: 0, 5: 0}, 0)))
        self.assertIsNone(topology.Host(host.name, host.cells, live=(
            topology.LiveMemory({0: 100}, None, {0: 0}))).net_free)

    def test_live_data_is_carried_by_the_host(self):
        """Ensures with_live shares the cells instead of copying them."""
        host = fakes.host(fakes.two_node_cells())
        memory = topology.LiveMemory({0: 10501, 1: 2769})
        live = host.with_live(memory)
        self.assertIsNone(host.live)
        self.assertIs(memory, live.live)
        self.assertIs(host.cells, live.cells)
        self.assertEqual((host.name, host.used_mb, host.ram_allocation_ratio),
                         (live.name, live.used_mb, live.ram_allocation_ratio))

    def test_net_free_is_worked_out_once_per_host(self):
        """Ensures net_free is free less untouched and unseen, per cell.

        In the order of the cells, whether the host is built with its live
        memory or given it; None without the guest figures.
        """
        cells = list(reversed(fakes.two_node_cells()))
        cases = [
            # (live memory, net_free)
            (None, None),
            (topology.LiveMemory({0: 10501, 1: 2769}), None),
            (topology.LiveMemory({0: 10501, 1: 2769}, None,
                                 {0: 500, 1: 700}), (2069, 10001)),
            (topology.LiveMemory({0: 10501, 1: 2769}, None,
                                 {0: 500, 1: 700}, 1000), (1069, 9001)),
        ]
        for live, net in cases:
            built = topology.Host('h', cells, live=live)
            self.assertEqual(net, built.net_free, live)
            self.assertIsNone(topology.Host('h', cells).net_free)
            if live is not None:
                given = topology.Host('h', cells).with_live(live)
                self.assertEqual(net, given.net_free, live)


def _live(cells, free, available=None, untouched=None, unseen=0):
    """A host of ``cells`` with live memory; guest figures default to 0."""
    if untouched is None:
        untouched = dict.fromkeys(free, 0)
    return fakes.host(cells).with_live(topology.LiveMemory(
        free, available or free, untouched, unseen))


FOUR_NODES = [Cell(i, cpus(16 * i, 16), 128 * GB) for i in range(4)]

# (free, untouched, unseen, bound, expected MB per cell)
FREE_CASES = [
    # Untouched guest memory comes off where it is charged.
    ({0: 30000, 1: 20000}, {0: 25000, 1: 0}, 0, False, [5000, 20000]),
    # Unseen memory may all settle on any cell: it counts on each...
    ({0: 30000, 1: 20000}, None, 10000, False, [20000, 10000]),
    # ...and can drive every cell below zero.
    ({0: 3000, 1: 1000}, None, 10000, False, [-7000, -9000]),
    # A bound guest's cells are given: the same.
    ({0: 30000, 1: 20000}, None, 10000, True, [20000, 10000]),
]

# (free, unseen, placed_mb, guest MB, expected cells that hold, some holds)
HOLDING_CASES = [
    # Cell 0 keeps 20000 MB wherever the unseen 10000 MB settle.
    ({0: 30000, 1: 20000}, 10000, 0, 16000, [True, False], True),
    # No cell surely keeps 13000 MB, but one of them does: levelled, the
    # unseen 24000 MB leave 13000 MB on each.
    ({0: 30000, 1: 20000}, 24000, 0, 13000, [False, False], True),
    ({0: 30000, 1: 20000}, 24000, 0, 13001, [False, False], False),
    # Earlier instances of the request count like unseen memory.
    ({0: 30000, 1: 20000}, 4000, 6000, 20000, [True, False], True),
    ({0: 30000, 1: 20000}, 4000, 6001, 20000, [False, False], False),
    ({0: 3000, 1: 1000}, 10000, 0, 1, [False, False], False),
]


class FreeEstimateTest(testcase.TestCase):
    """Free memory per cell, as the filter estimates it."""

    def test_cases(self):
        """Ensures each row of the table gives the documented estimate."""
        for free, untouched, unseen, bound, expected in FREE_CASES:
            host = _live(fakes.two_node_cells(), free, untouched=untouched,
                         unseen=unseen)
            self.assertEqual(expected, fit.free_mb(host, bound=bound),
                             (free, untouched, unseen, bound))

    def test_bound_guests_use_available_memory(self):
        """Ensures a bound guest may take the page cache it can reclaim."""
        host = _live(fakes.two_node_cells(), {0: 10501, 1: 2769},
                     available={0: 14286, 1: 7854},
                     untouched={0: 1000, 1: 0})
        self.assertEqual([9501, 2769], fit.free_mb(host))
        self.assertEqual([13286, 7854], fit.free_mb(host, bound=True))

    def test_holding_cases(self):
        """Ensures each row gives the documented cells that hold."""
        for free, unseen, placed_mb, memory_mb, holds, some in HOLDING_CASES:
            host = _live(fakes.two_node_cells(), free, unseen=unseen)
            self.assertEqual((holds, some), fit.holding_cells(
                host, memory_mb, 4, placed_mb=placed_mb),
                (free, unseen, placed_mb, memory_mb))

    def test_memory_only_node_is_not_levelled(self):
        """Ensures unseen guests are not assumed to settle on a CXL node:
        its room does not make a guest fit the cells with CPUs.
        """
        host = _live(TOPOLOGIES['memory_only_node'],
                     {0: 20000, 1: 10000, 2: 200000}, unseen=10000)
        self.assertEqual(([False, False, False], False),
                         fit.holding_cells(host, 12000, 4))
        self.assertEqual(([True, False, False], True),
                         fit.holding_cells(host, 10000, 4))

    def test_without_live_data_it_is_the_accounted_estimate(self):
        """Ensures hosts without live data get the accounted estimate."""
        host = fakes.host(fakes.two_node_cells(), used_mb=115566)
        self.assertEqual(fit.accounted_free_mb(host), fit.free_mb(host))


class LevelTest(testcase.TestCase):

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(
        st.lists(st.integers(-5000, 100000), min_size=1, max_size=8),
        st.lists(st.integers(1, 40000), min_size=1, max_size=6),
        st.randoms(use_true_random=False))
    def test_roomiest_cell_keeps_the_level(self, free, guests, rng):
        """Ensures the level is a floor for the roomiest cell.

        However guests of the charged total settle (each on any cell), the
        cell with the most room left has at least the roomiest levelled
        cell's figure; and levelling gives up at least the amount.
        """
        amount = sum(guests)
        levelled = fit.level(free, amount)
        self.assertGreaterEqual(sum(free) - sum(levelled), amount)
        self.assertTrue(all(b <= a for a, b in zip(free, levelled)))
        left = list(free)
        for mb in guests:
            left[rng.randrange(len(left))] -= mb
        self.assertGreaterEqual(max(left), max(levelled))

    def test_ineligible_cells_are_kept(self):
        """Ensures only eligible cells are levelled."""
        self.assertEqual([5, 100, 0],
                         fit.level([10, 100, 0], 5, [True, False, True]))
        self.assertEqual([-3, 100, -3],
                         fit.level([10, 100, 0], 15, [True, False, True]))
        self.assertEqual([7, 8], fit.level([7, 8], 5, [False, False]))


class BoundTest(testcase.TestCase):
    """NUMA guests on small pages, bound to the cells nova picks."""

    def test_free_is_per_cell_that_can_hold_a_guest_cell(self):
        """Ensures memory-only and memory-less cells are left out."""
        host = _live(TOPOLOGIES['memory_only_node'],
                     {0: 1000, 1: 2000, 2: 200000})
        self.assertEqual({0: 1000, 1: 2000}, fit.bound_free_mb(host))
        host = _live(TOPOLOGIES['cpu_only_node'], {0: 0, 1: 9000})
        self.assertEqual({1: 9000}, fit.bound_free_mb(host))

    def test_pinned_cpus_make_a_cell_count(self):
        """Ensures a cell with dedicated CPUs only still holds guest cells."""
        cells = [Cell(0, frozenset(), 32 * GB, pcpus=cpus(0, 8)),
                 Cell(1, cpus(8, 8), 32 * GB)]
        host = _live(cells, {0: 20000, 1: 1000})
        self.assertEqual({0: 20000, 1: 1000}, fit.bound_free_mb(host))

    def test_placed_memory_and_reserve_come_off(self):
        """Ensures earlier instances and the per-node reserve count."""
        host = _live(fakes.two_node_cells(), {0: 14286, 1: 7854})
        self.assertEqual({0: 6094 - 512, 1: 7854},
                         fit.bound_free_mb(host, reserve=(0, {0: 512}),
                                           placed_mb={0: 8192}))

    def test_judged_without_nova_when_the_cells_do_not_matter(self):
        """Ensures the cheap answers: no distinct cells, or every cell."""
        host = _live(FOUR_NODES, {0: 40000, 1: 2000, 2: 2000, 3: 30000})
        free = fit.bound_free_mb(host)
        self.assertIsNone(fit.judge_bound(host, [20000, 20000], free))
        verdict = fit.judge_bound(host, [20000, 20000, 20000], free)
        self.assertEqual(fit.USAGE, verdict.kind)
        self.assertEqual(
            'NUMA guest needs 20000+20000+20000 MB on 3 distinct cells; '
            'live free for bound memory: cell 0 40000 MB, cell 1 2000 MB, '
            'cell 2 2000 MB, cell 3 30000 MB', verdict.reason)
        self.assertIs(fit.PASS, fit.judge_bound(host, [2000, 2000], free))
        self.assertIs(fit.PASS, fit.judge_bound(host, [], free))

    def test_the_cells_nova_binds_must_have_room(self):
        """Ensures nova's chosen cells are judged, not any cells with room."""
        host = _live(FOUR_NODES, {0: 40000, 1: 2000, 2: 2000, 3: 30000})
        free = fit.bound_free_mb(host)
        self.assertTrue(fit.judge_cells(host, [(0, 20000), (3, 20000)],
                                        free).passes)
        verdict = fit.judge_cells(host, [(1, 20000), (2, 20000)], free)
        self.assertFalse(verdict.passes)
        self.assertEqual(
            'NUMA guest is bound by nova to 20000 MB on cell 1, 20000 MB on '
            'cell 2; live free for bound memory: cell 0 40000 MB, cell 1 '
            '2000 MB, cell 2 2000 MB, cell 3 30000 MB', verdict.reason)
        self.assertTrue(fit.judge_cells(host, None, free).passes)

    def test_accounted_estimate_when_there_is_no_live_data(self):
        """Ensures the same check runs on the accounted estimate."""
        # 100000 MB of non-NUMA guests spread: ~14 GB free per cell.
        host = fakes.host(fakes.two_node_cells(), used_mb=100512)
        free = fit.bound_free_mb(host)
        verdict = fit.judge_bound(host, [16 * GB], free)
        self.assertFalse(verdict.passes)
        self.assertIn('accounted free for bound memory', verdict.reason)


class AccountedFreeTest(testcase.TestCase):

    def test_spread_is_proportional_to_small_page_memory(self):
        """Ensures spread charges non-NUMA usage by cell size."""
        cells = [Cell(0, cpus(0, 4), 16 * GB), Cell(1, cpus(4, 4), 48 * GB)]
        free = fit.accounted_free_mb(fakes.host(cells, used_mb=8 * GB))
        self.assertEqual([16 * GB - 2 * GB, 48 * GB - 6 * GB], free)

    def test_numa_guests_are_charged_to_their_cell(self):
        """Ensures NUMA guests' small pages count only on their cell."""
        cells = [Cell(0, cpus(0, 4), 16 * GB, small_page_used_mb=4 * GB),
                 Cell(1, cpus(4, 4), 16 * GB)]
        # 512 MB reserve + the 4 GB NUMA guest: non-NUMA usage is 512 MB.
        free = fit.accounted_free_mb(fakes.host(cells,
                                                used_mb=4 * GB + 512))
        self.assertEqual([16 * GB - 4 * GB - 256, 16 * GB - 256], free)

    def test_hugepage_guests_do_not_use_small_pages(self):
        """Ensures hugepage-backed NUMA memory is not taken off small pages."""
        cells = [Cell(0, cpus(0, 4), 64 * GB, small_page_mb=16 * GB,
                      numa_used_mb=8 * GB, hugepages={1048576: (48, 8)}),
                 Cell(1, cpus(4, 4), 64 * GB, small_page_mb=16 * GB,
                      hugepages={1048576: (48, 0)})]
        free = fit.accounted_free_mb(fakes.host(cells, used_mb=8 * GB))
        self.assertEqual([16 * GB, 16 * GB], free)

    def test_one_host_estimated_each_way_in_turn(self):
        """Ensures the share kept on a host answers only for its estimate.

        The scheduler keeps a host across requests and caches on it what
        the estimate derives; another estimate must not get it.
        """
        cells = [Cell(0, cpus(0, 4), 16 * GB), Cell(1, cpus(4, 4), 48 * GB)]
        host = fakes.host(cells, used_mb=8 * GB)
        for _ in range(2):
            self.assertEqual([14 * GB, 42 * GB],
                             fit.accounted_free_mb(host, estimate='spread'))
            self.assertEqual([8 * GB, 40 * GB], fit.accounted_free_mb(
                host, estimate='worst_case'))
            self.assertEqual([16 * GB, 48 * GB],
                             fit.accounted_free_mb(host, estimate='ignore'))


# Property tests ---------------------------------------------------------

def _cells(draw):
    count = draw(st.integers(0, 6))
    ids = draw(st.lists(st.integers(0, 63), min_size=count, max_size=count,
                        unique=True))
    cells = []
    for i in ids:
        memory = draw(st.integers(0, 200000))
        small = draw(st.integers(0, memory))
        small_used = draw(st.integers(0, small))
        # NUMA guests on hugepages count in numa_used_mb, not in small pages.
        numa_used = small_used + draw(st.integers(0, memory - small))
        cells.append(Cell(i, cpus(100 * i, draw(st.integers(0, 16))), memory,
                          small_page_mb=small, small_page_used_mb=small_used,
                          numa_used_mb=numa_used))
    return cells


@st.composite
def hosts_and_requests(draw):
    cells = _cells(draw)
    host = fakes.host(cells, used_mb=draw(st.integers(0, 400000)),
                      ratio=draw(st.sampled_from([1.0, 1.5])))
    if draw(st.booleans()):
        figures = st.integers(-1000, 200000)
        untouched = None
        unseen = None
        if draw(st.booleans()):
            untouched = {c.id: draw(st.integers(0, 50000)) for c in cells}
            unseen = draw(st.integers(0, 50000))
        host = host.with_live(topology.LiveMemory(
            {c.id: draw(figures) for c in cells}, None, untouched, unseen))
    reserve = (draw(st.integers(0, 4096)),
               draw(st.dictionaries(st.integers(0, 63), st.integers(0, 8192),
                                    max_size=3)))
    return dict(host=host,
                memory_mb=draw(st.integers(0, 250000)),
                vcpus=draw(st.integers(1, 32)),
                reserve=reserve,
                cpu_fit=draw(st.booleans()),
                estimate=draw(st.sampled_from(['spread', 'worst_case',
                                               'ignore'])),
                placed=draw(st.integers(0, 3)))


def _expected_free(host, reserve, estimate):
    """Free memory per cell, written out from the documented rules."""
    default, per_node = reserve
    accounted = _expected_accounted(host, reserve, estimate)
    live = host.live
    if live is None:
        return accounted
    free = {c.id: live.free_mb[c.id] - per_node.get(c.id, default)
            for c in host.cells}
    if live.untouched_mb is None:
        return {i: min(free[i], accounted[i]) for i in free}
    free = {i: mb - live.untouched_mb[i] for i, mb in free.items()}
    if not live.unseen_mb:
        return free
    # Water-filling, by bisection on the level.
    eligible = [c.id for c in host.cells if c.holds_guests]
    if not eligible:
        return free
    low, high = min(free.values()) - live.unseen_mb - 1, max(free.values())
    while high - low > 1:
        mid = (low + high) // 2
        if sum(max(0, free[i] - mid) for i in eligible) >= live.unseen_mb:
            low = mid
        else:
            high = mid
    return {i: min(mb, low) if i in eligible else mb
            for i, mb in free.items()}


def _expected_accounted(host, reserve, estimate):
    default, per_node = reserve
    numa = sum(c.numa_used_mb for c in host.cells)
    non_numa = max(0, host.used_mb - numa)
    total = sum(c.small_page_mb for c in host.cells if c.small_page_mb > 0)
    free = {}
    for c in host.cells:
        share = {'ignore': 0, 'worst_case': non_numa,
                 'spread': (non_numa * c.small_page_mb / total
                            if total and c.small_page_mb > 0 else 0)}
        cap = c.small_page_mb - per_node.get(c.id, default)
        free[c.id] = int(cap * host.ram_allocation_ratio -
                         c.small_page_used_mb - share[estimate])
    return free


class JudgePropertyTest(testcase.TestCase):

    @hypothesis.settings(max_examples=400, deadline=None, derandomize=True)
    @hypothesis.given(hosts_and_requests())
    def test_passes_exactly_when_a_cell_holds_the_guest(self, case):
        """Ensures the filter's invariant.

        A host with at most one cell, or with no cell that has both shared
        CPUs and memory (no judgement possible), passes. Otherwise it passes
        exactly when the cells with CPUs and memory that are big enough
        (small-page capacity after the reserve >= memory and, with cpu_fit,
        CPUs >= vCPUs) have, in free memory (live when the host has live
        data, else the accounted estimate), room for the earlier instances
        of the request and this one, each guest inside one cell.
        """
        host, mem, vcpus = case['host'], case['memory_mb'], case['vcpus']
        default, per_node = case['reserve']
        verdict = fit.judge(**case)
        usable = [c for c in host.cells if c.cpus and c.memory_mb > 0]
        big_enough = [
            c for c in usable
            if c.small_page_mb - per_node.get(c.id, default) >= mem and
            (not case['cpu_fit'] or len(c.cpus) >= vcpus)]
        if len(host.cells) <= 1 or not usable:
            expected = True
        elif not big_enough:
            expected = False
        elif mem == 0:
            expected = True
        else:
            free = _expected_free(host, case['reserve'], case['estimate'])
            room = sum(max(0, free[c.id]) // mem for c in big_enough)
            expected = room > case['placed']
        self.assertEqual(expected, verdict.passes, verdict.reason)
        self.assertEqual(verdict.passes, verdict.reason is None)

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
    @hypothesis.given(hosts_and_requests(), st.integers(0, 250000))
    def test_a_smaller_guest_fits_wherever_a_larger_one_does(self, case,
                                                             smaller):
        """Ensures the verdict is monotonic in the guest's memory."""
        hypothesis.assume(smaller <= case['memory_mb'])
        case['placed'] = 0
        if fit.judge(**case).passes:
            case['memory_mb'] = smaller
            self.assertTrue(fit.judge(**case).passes)

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
    @hypothesis.given(hosts_and_requests(), st.integers(0, 100000),
                      st.integers(0, 4096), st.integers(0, 3))
    def test_more_usage_reserve_or_placed_never_helps(self, case, used,
                                                      reserve, placed):
        """Ensures a host that fails keeps failing when things get tighter.

        More host-wide usage, a larger per-node reserve or more earlier
        instances of the request never turn a rejection into a pass.
        """
        hypothesis.assume(not fit.judge(**case).passes)
        host = case['host']
        busier = fakes.host(host.cells, used_mb=host.used_mb + used,
                            ratio=host.ram_allocation_ratio)
        if host.live is not None:
            busier = busier.with_live(host.live)
        default, per_node = case['reserve']
        tighter = (default + reserve,
                   {node: mb + reserve for node, mb in per_node.items()})
        for change in ({'host': busier}, {'reserve': tighter},
                       {'placed': case['placed'] + placed}):
            self.assertFalse(fit.judge(**dict(case, **change)).passes,
                             change)


class KeptHostPropertyTest(testcase.TestCase):
    """A host kept across requests answers as a new one."""

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(hosts_and_requests(), hosts_and_requests(),
                      st.sets(st.integers(-1, 4), max_size=3))
    def test_what_a_host_keeps_changes_no_answer(self, case, other,
                                                 busy_nodes):
        """Ensures the figures derived and kept on a host (for its options)
        give the answers a host judged for the first time gets, whatever
        requests with other options came in between.
        """
        host = case['host']

        def answers(request, on):
            verdict = fit.judge(**dict(request, host=on))
            args = (on, request['memory_mb'],
                    request['vcpus'] if request['cpu_fit'] else 0,
                    request['reserve'], request['estimate'])
            return ((verdict.passes, verdict.kind, verdict.best_mb,
                     verdict.best_cpus), fit.holding_cells(*args),
                    fit.holding_idle(*args, busy_nodes=busy_nodes))

        def new_host():
            copied = copy.copy(host)
            copied.derived = None
            return copied
        expected = [answers(request, new_host()) for request in (case, other)]
        for _ in range(2):
            self.assertEqual(expected, [answers(request, host)
                                        for request in (case, other)])


class HoldingPropertyTest(testcase.TestCase):
    """The weigher's question: which cells hold the guest now."""

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(hosts_and_requests(), st.integers(0, 100000),
                      st.sets(st.integers(-1, 4), max_size=3))
    def test_holding_follows_the_free_estimate(self, case, placed_mb,
                                               busy_nodes):
        """Ensures the cells that hold the guest are those the adversary
        cannot fill, and some cell holds only when the adversary cannot
        fill them all.

        A cell holds when it can hold guests, is big enough (capacity and,
        with cpu_fit, CPUs), and its free_mb() less the earlier instances
        has room. The memory whose cell is unknown (unseen guests, earlier
        instances) can fill every big cell below the guest only if it is at
        least sum(max(0, free - memory + 1)) over them: some cell holds
        only when it is not, and does when it is short of sum(max(0, free
        - memory)) (levelling rounds down). holding_idle() answers the same
        for all cells and for those not busy.
        """
        host, mem = case['host'], case['memory_mb']
        vcpus = case['vcpus'] if case['cpu_fit'] else 0
        reserve, estimate = case['reserve'], case['estimate']
        live = host.live
        unseen = (live.unseen_mb or 0) if (
            live is not None and live.untouched_mb is not None) else 0
        free = [mb + unseen for mb in fit.free_mb(host, reserve, estimate)]
        pending = unseen + placed_mb
        big = [c.holds_guests and len(c.cpus) >= vcpus and
               fit.capacity_mb(c, reserve) >= mem for c in host.cells]
        holds, some = fit.holding_cells(host, mem, vcpus, reserve, estimate,
                                        placed_mb)
        self.assertEqual([ok and mb - pending >= mem
                          for ok, mb in zip(big, free)], holds)
        busy = [bool(c.physnets or c.tunneled or c.id in busy_nodes)
                for c in host.cells]
        idle = [ok and not taken for ok, taken in zip(big, busy)]
        answers = fit.holding_idle(host, mem, vcpus, reserve, estimate,
                                   placed_mb, busy_nodes)
        self.assertEqual(some, answers[0])
        self.assertEqual(any(busy), answers[2])
        for cells, answer in ((big, some), (idle, answers[1])):
            room = [mb for mb, ok in zip(free, cells) if ok]
            to_fill = sum(max(0, mb - mem + 1) for mb in room)
            if answer:
                self.assertGreater(to_fill, pending)
            if max(room, default=mem - 1) >= mem and sum(
                    max(0, mb - mem) for mb in room) >= pending:
                self.assertTrue(answer)
        self.assertFalse(any(holds) and not some)


def _fewest_slots(free, unseen, memory_mb):
    """The fewest guests of ``memory_mb`` the cells hold, each inside one,
    once an adversary spreads ``unseen`` MB over them as it likes.

    Bringing cell ``i`` down to ``j`` slots costs
    ``max(0, free_i - ((j + 1) * memory_mb - 1))``: tried for every ``j``.
    """
    options = []
    for mb in free:
        slots = max(0, mb) // memory_mb
        options.append([(j, max(0, mb - ((j + 1) * memory_mb - 1)))
                        for j in range(slots + 1)])
    best = None
    for choice in itertools.product(*options):
        if sum(cost for _, cost in choice) <= unseen:
            total = sum(j for j, _ in choice)
            best = total if best is None else min(best, total)
    return best


class UnseenMemoryPropertyTest(testcase.TestCase):
    """Guests nova placed that the agent has not seen, wherever they land."""

    # Guests of at least 50 MB keep the adversary's search small.
    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(
        st.lists(st.tuples(st.integers(0, 4), st.integers(1, 1000),
                           st.integers(-100, 1000)),
                 min_size=2, max_size=3),
        st.integers(1, 1500), st.integers(50, 600), st.integers(1, 4),
        st.integers(0, 2))
    def test_a_pass_survives_any_spread_of_the_unseen_guests(
            self, shapes, unseen, memory_mb, vcpus, placed):
        """Ensures judge() passes only when the cells big enough for the
        guest hold ``placed + 1`` guests however the unseen memory settles
        on them, and that a single guest passes whenever that holds with a
        megabyte per cell to spare (the levelled second look).
        """
        cells = [Cell(i, cpus(8 * i, n), mb) for i, (n, mb, _) in
                 enumerate(shapes)]
        free = {i: mb for i, (_, _, mb) in enumerate(shapes)}
        host = _live(cells, free, unseen=unseen)
        fitting = [free[c.id] for c in cells
                   if c.holds_guests and len(c.cpus) >= vcpus and
                   c.memory_mb >= memory_mb]
        hypothesis.assume(fitting)
        verdict = fit.judge(host, memory_mb, vcpus, placed=placed)
        if verdict.passes:
            self.assertGreater(_fewest_slots(fitting, unseen, memory_mb),
                               placed)
        if not placed and sum(max(0, mb - memory_mb)
                              for mb in fitting) >= unseen:
            self.assertTrue(verdict.passes)
