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

"""Tests of the vNUMA planner: tables over host shapes, and properties."""

import itertools
import os
import subprocess
import sys
from unittest import mock

import hypothesis
from hypothesis import strategies as st

from nova import objects
from nova.virt import hardware

from nova_numa_guard.inputs import capabilities
from nova_numa_guard import nova_hosts
from nova_numa_guard import topology
from nova_numa_guard import vnuma
from nova_numa_guard.vnuma import planner
from tests import examples

from tests import testcase

Cell = topology.Cell
GB = 1024
DATA = os.path.join(os.path.dirname(__file__), 'data')


def cpus(first, count):
    return frozenset(range(first, first + count))


def two_node_cells():
    return capabilities.load(examples.TWO_NODE_XML)


HOSTS = {
    # The two-node-64g host: 2 x 12 CPUs, 64328 and 64510 MiB.
    'two-node-64g': two_node_cells().cells,
    '2socket': [Cell(0, cpus(0, 16), 128 * GB),
                Cell(1, cpus(16, 16), 128 * GB)],
    '4socket': [Cell(i, cpus(24 * i, 24), 256 * GB) for i in range(4)],
    # AMD EPYC, 2 sockets in NPS4 mode: 8 nodes of 16 CPUs and 64 GB.
    'nps4': [Cell(i, cpus(16 * i, 16), 64 * GB) for i in range(8)],
    'unequal_memory': [Cell(0, cpus(0, 16), 32 * GB),
                       Cell(1, cpus(16, 16), 96 * GB)],
    # A CXL memory expander shows up as a node without CPUs.
    'memory_only_node': [Cell(0, cpus(0, 12), 32 * GB),
                         Cell(1, cpus(12, 12), 32 * GB),
                         Cell(2, frozenset(), 256 * GB)],
    'cpu_only_node': [Cell(0, cpus(0, 8), 0),
                      Cell(1, cpus(8, 8), 64 * GB)],
    # Every 2 MiB page is taken.
    'pages_in_use': [Cell(0, cpus(0, 4), 16 * GB, small_page_mb=15 * GB,
                          hugepages={2048: (512, 512)})],
    # 2 cells of 4 CPUs, 12 GB of small pages, 2 GB of 2 MiB pages and
    # 2 GB of 1 GiB pages, and a memory-only cell.
    'hugepages': capabilities.load(
        os.path.join(DATA, 'capabilities-hugepages.xml')).cells,
}

SYM2 = {'hw:numa_nodes': '2', 'hw:cpu_sockets': '2'}


def asym(*nodes, **extra):
    """Specs for guest nodes given as (first vCPU spec, MiB)."""
    specs = {'hw:numa_nodes': str(len(nodes))}
    for i, (cpu_spec, mb) in enumerate(nodes):
        specs['hw:numa_cpus.%d' % i] = cpu_spec
        specs['hw:numa_mem.%d' % i] = str(mb)
    specs.update(extra)
    return specs


# (host, vcpus, memory_mb, options, expected specs or error text)
CASES = [
    ('two-node-64g', 16, 100000, {}, SYM2),
    ('two-node-64g', 24, 100000, {}, SYM2),
    ('two-node-64g', 2, 70000, {}, SYM2),
    ('two-node-64g', 4, 16 * GB, {}, {}),
    ('two-node-64g', 4, 16 * GB, {'pin': True},
     {'hw:numa_nodes': '1', 'hw:cpu_sockets': '1'}),
    # Shares in proportion to the cells (64328 and 64510 MiB): the bigger
    # guest node is for the bigger cell, cell 1. The guest takes every cell,
    # so nova tries them in id order: the bigger node comes second.
    ('two-node-64g', 9, 100001, {'headroom_pct': 0},
     asym(('0-3', 49929), ('4-8', 50072))),
    ('two-node-64g', 32, 100000, {},
     '32 vCPUs need 3 nodes of <=12 CPUs; host has 2'),
    ('two-node-64g', 8, 200000, {},
     '200000 MB need 4 nodes of <=58059 MB (after 10% headroom); host '
     'has 2'),
    # 58000 MiB per node: over cell 0's 57895 with 10% headroom, fine
    # without.
    ('two-node-64g', 8, 116000, {},
     "116000 MB exceed the 115954 MB the host's 2 cells offer (after 10% "
     "headroom)"),
    ('two-node-64g', 8, 116000, {'headroom_pct': 0}, SYM2),
    ('two-node-64g', 1, 70000, {}, 'but 1 vCPU(s) cannot make 2 nodes'),
    ('two-node-64g', 16, 100352, {'page_size': '1GB'},
     dict(SYM2, **{'hw:mem_page_size': '1GB'})),
    ('2socket', 32, 200000, {}, SYM2),
    ('2socket', 33, 200000, {}, '33 vCPUs need 3 nodes of <=16 CPUs'),
    ('4socket', 48, 400000, {}, SYM2),
    ('4socket', 96, 900000, {},
     {'hw:numa_nodes': '4', 'hw:cpu_sockets': '4'}),
    ('4socket', 64, 512000, {},
     asym(('0-21', 170667), ('22-42', 170667), ('43-63', 170666))),
    ('4socket', 97, 900000, {},
     '97 vCPUs need 5 nodes of <=24 CPUs; host has 4'),
    ('nps4', 64, 200000, {}, {'hw:numa_nodes': '4', 'hw:cpu_sockets': '4'}),
    # Memory needs 7 nodes of <= 58982 MiB although 40 vCPUs need only 3.
    ('nps4', 40, 400000, {},
     asym(('0-5', 57143), ('6-11', 57143), ('12-17', 57143),
          ('18-23', 57143), ('24-29', 57143), ('30-34', 57143),
          ('35-39', 57142))),
    ('nps4', 128, 8 * 58982, {},
     {'hw:numa_nodes': '8', 'hw:cpu_sockets': '8'}),
    ('nps4', 128, 8 * 58982 + 8, {},
     '471864 MB need 9 nodes of <=58982 MB (after 10% headroom); host '
     'has 8'),
    # The bigger guest node goes to the bigger cell, cell 1.
    ('unequal_memory', 16, 100000, {},
     asym(('0-7', 25000), ('8-15', 75000), **{'hw:cpu_sockets': '2'})),
    ('unequal_memory', 8, 80000, {}, {}),
    ('memory_only_node', 8, 50000, {}, SYM2),
    ('memory_only_node', 8, 60000, {},
     '60000 MB need 3 nodes of <=29491 MB (after 10% headroom); host has 2 '
     '(cells with CPUs and memory)'),
    ('cpu_only_node', 12, 8000, {},
     '12 vCPUs need 2 nodes of <=8 CPUs; host has 1 (cells with CPUs and '
     'memory)'),
    ('hugepages', 4, 16 * GB, {}, SYM2),
    ('hugepages', 4, 4 * GB, {'page_size': '1GB'},
     dict(SYM2, **{'hw:mem_page_size': '1GB'})),
    ('hugepages', 4, 3 * GB, {'page_size': '1048576'},
     asym(('0-1', 2048), ('2-3', 1024), **{'hw:cpu_sockets': '2',
                                           'hw:mem_page_size': '1048576'})),
    ('hugepages', 2, 2 * GB, {'page_size': 'large'},
     {'hw:numa_nodes': '1', 'hw:cpu_sockets': '1',
      'hw:mem_page_size': 'large'}),
    ('hugepages', 4, 3000, {'page_size': '1GB'},
     '3000 MB is not a multiple of the 1024 MB pages'),
    # large: nova takes the largest page size that fits, so 2 MiB pages
    # take nodes that are not whole 1 GiB pages.
    ('hugepages', 2, 1026, {'page_size': 'large'},
     {'hw:numa_nodes': '1', 'hw:cpu_sockets': '1',
      'hw:mem_page_size': 'large'}),
    ('hugepages', 4, 4094, {'page_size': 'large'},
     asym(('0-1', 2048), ('2-3', 2046), **{'hw:cpu_sockets': '2',
                                           'hw:mem_page_size': 'large'})),
    ('hugepages', 4, 3001, {'page_size': 'large'},
     '3001 MB is not a multiple of the 2 MB pages'),
    # any: nova falls back to small pages.
    ('hugepages', 4, 3001, {'page_size': 'any'},
     {'hw:numa_nodes': '1', 'hw:cpu_sockets': '1',
      'hw:mem_page_size': 'any'}),
    ('hugepages', 8, 20001, {'page_size': 'any'},
     asym(('0-3', 10001), ('4-7', 10000), **{'hw:cpu_sockets': '2',
                                            'hw:mem_page_size': 'any'})),
    ('hugepages', 4, 2048, {'page_size': '2MB'},
     {'hw:numa_nodes': '1', 'hw:cpu_sockets': '1',
      'hw:mem_page_size': '2MB'}),
    ('hugepages', 4, 8 * GB, {'page_size': '2MB'},
     '8192 MB need 4 nodes of <=2048 MB; host has 2 (cells with CPUs and '
     'free 2048 KiB pages)'),
    ('two-node-64g', 0, 1024, {}, 'vCPUs must be at least 1'),
    ('two-node-64g', 2, 1024, {'headroom_pct': 100}, 'headroom must be'),
    ('two-node-64g', 2, 1024, {'page_size': 'huge'},
     "page size 'huge': expected"),
    ('two-node-64g', 2, 1024, {'page_size': '3MB'}, 'not a power of two'),
    ('pages_in_use', 4, 1024, {'page_size': '2MB'},
     'no cell of the host has free 2048 KiB pages'),
    # A page size the host lists on no cell is assumed reservable.
    ('cpu_only_node', 4, 1024, {'page_size': '2MB'},
     {'hw:numa_nodes': '1', 'hw:cpu_sockets': '1',
      'hw:mem_page_size': '2MB'}),
]


class PlanTableTest(testcase.TestCase):

    def test_cases(self):
        """Ensures each host shape and guest gives the expected specs."""
        for host, vcpus, memory_mb, options, expected in CASES:
            case = '%s %d vCPUs %d MB %s' % (host, vcpus, memory_mb, options)
            if isinstance(expected, str):
                e = self.assertRaises(vnuma.PlanError, vnuma.plan, vcpus,
                                      memory_mb, HOSTS[host], **options)
                self.assertIn(expected, str(e), case)
                self.assertNotIn('\n', str(e), case)
                continue
            try:
                plan = vnuma.plan(vcpus, memory_mb, HOSTS[host], **options)
            except vnuma.PlanError as e:
                self.fail('%s: %s' % (case, e))
            self.assertEqual(expected, plan.extra_specs, case)
            self.assertTrue(all(isinstance(v, str)
                                for v in plan.extra_specs.values()), case)
            self.assertEqual(vcpus, sum(plan.node_cpus), case)
            self.assertEqual(memory_mb, sum(plan.node_memory_mb), case)

    def test_bigger_guest_node_lands_on_bigger_cell(self):
        """Ensures nova fits the 75000 MiB node on the 96 GB cell."""
        plan = vnuma.plan(16, 100000, HOSTS['unequal_memory'])
        self.assertEqual((25000, 75000), plan.node_memory_mb)
        self.assertEqual((0, 1), plan.host_cells)

    def test_bigger_node_on_bigger_cell_when_nova_takes_every_cell(self):
        """Ensures nova puts the bigger node on the bigger cell with N = cells.

        With as many guest nodes as host cells nova tries the cells in id
        order: listing the bigger node first would put 62687 MiB on the
        64000 MiB cell, 2% of it free instead of 10%.
        """
        cells = [Cell(0, cpus(0, 8), 64000), Cell(1, cpus(8, 8), 70000)]
        plan = vnuma.plan(2, 120000, cells)
        placed = dict(zip(plan.host_cells, plan.node_memory_mb))
        self.assertEqual({0: 57313, 1: 62687}, placed)
        self.assertEqual((57313, 62687), plan.node_memory_mb)
        self.assertEqual({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0',
                          'hw:numa_mem.0': '57313', 'hw:numa_cpus.1': '1',
                          'hw:numa_mem.1': '62687', 'hw:cpu_sockets': '2'},
                         plan.extra_specs)

    def test_nova_placement_without_headroom_is_an_error(self):
        """Ensures no plan is returned when nova would break the headroom.

        Cell 0 has the most memory, so nova tries it first when the guest
        leaves a cell out, but only 64000 MiB of small pages: nova puts a
        60000 MiB node there whatever the order of the (equal) nodes.
        """
        cells = [Cell(0, cpus(0, 8), 80384, small_page_mb=64000,
                      hugepages={2048: (8192, 0)}),
                 Cell(1, cpus(8, 8), 70000), Cell(2, cpus(16, 8), 70000)]
        e = self.assertRaises(vnuma.PlanError, vnuma.plan, 2, 120000, cells)
        self.assertEqual(
            'nova places the guest node of 1 vCPUs and 60000 MB on host '
            'cell 0, which offers 8 CPUs and 57600 MB (after 10% headroom), '
            'in every order of the guest nodes; a lower headroom may accept '
            'it', str(e))
        plan = vnuma.plan(2, 120000, cells, headroom_pct=5)
        self.assertEqual((0, 1), plan.host_cells)

    def test_host_object_is_accepted(self):
        """Ensures a topology.Host works as well as a list of cells."""
        plan = vnuma.plan(16, 100000, two_node_cells())
        self.assertEqual(SYM2, plan.extra_specs)
        self.assertEqual((0, 1), plan.host_cells)


class PlanWarningTest(testcase.TestCase):

    def test_small_pages_warning(self):
        """Ensures specs on small pages warn of strict binding and OOM."""
        plan = vnuma.plan(16, 100000, HOSTS['two-node-64g'])
        self.assertIn(vnuma.SMALL_PAGES_WARNING, plan.warnings)
        self.assertIn('hw:mem_page_size=large', vnuma.SMALL_PAGES_WARNING)
        self.assertIn('OOM', vnuma.SMALL_PAGES_WARNING)

    def test_no_small_pages_warning_with_hugepages(self):
        """Ensures a hugepage plan does not warn about small pages."""
        plan = vnuma.plan(4, 4 * GB, HOSTS['hugepages'], page_size='1GB')
        self.assertEqual([], plan.warnings)

    def test_no_warning_without_specs(self):
        """Ensures a guest that fits one cell gets no warning."""
        plan = vnuma.plan(4, 4 * GB, HOSTS['two-node-64g'])
        self.assertEqual([], plan.warnings)

    def test_assumed_pages_warning(self):
        """Ensures a page size the host does not list is called assumed."""
        plan = vnuma.plan(16, 100352, HOSTS['two-node-64g'], page_size='1GB')
        self.assertEqual(['the host description lists no 1048576 KiB '
                          'pages; the plan assumes each cell can reserve its '
                          'memory less 10% headroom as such pages'],
                         plan.warnings)

    def test_unequal_vcpus_warning(self):
        """Ensures unequal guest nodes get no hw:cpu_sockets, with a note."""
        plan = vnuma.plan(9, 100000, HOSTS['two-node-64g'])
        self.assertNotIn('hw:cpu_sockets', plan.extra_specs)
        self.assertIn('hw:cpu_sockets is not set: the guest nodes have '
                      'different vCPU counts (5/4), so sockets cannot match '
                      'nodes', plan.warnings)

    def test_live_free_memory_warning(self):
        """Ensures numastat's free memory that cannot take the nodes warns."""
        host = topology.Host('two-node-64g', HOSTS['two-node-64g']).with_live(
            topology.LiveMemory({0: 10501, 1: 2769}))
        plan = vnuma.plan(16, 100000, host)
        self.assertIn("the host's nodes do not have the memory available "
                      "for the guest nodes now (node 0 10501 MB, node 1 "
                      "2769 MB available; guest nodes of 50000/50000 MB)",
                      plan.warnings[-1])
        roomy = topology.Host('two-node-64g', HOSTS['two-node-64g']).with_live(
            topology.LiveMemory({0: 50000, 1: 50000}))
        self.assertEqual([vnuma.SMALL_PAGES_WARNING],
                         vnuma.plan(16, 100000, roomy).warnings)


class NovaCheckTest(testcase.TestCase):

    def test_plan_nova_cannot_fit_is_an_error(self):
        """Ensures the nova check rejects a plan that overstates cells.

        With capacities twice the real cells, the planner would put 100000
        MiB on one 64 GB cell: nova's numa_fit_instance_to_host refuses it.
        """
        real = planner.Layout.capacity_mb

        def doubled(layout, cell):
            return 2 * real(layout, cell)

        with mock.patch.object(planner.Layout, 'capacity_mb', new=doubled):
            e = self.assertRaises(vnuma.PlanError, vnuma.plan, 12, 100000,
                                  HOSTS['two-node-64g'])
        self.assertEqual('nova cannot fit the guest nodes 12 vCPUs/100000 '
                         'MB on the host (its numa_fit_instance_to_host '
                         'finds no placement)', str(e))

    def test_specs_nova_rejects_are_an_error(self):
        """Ensures specs nova's numa_get_constraints raises on are refused."""
        with mock.patch.object(planner, 'cpu_range', autospec=True,
                               return_value='0'):
            e = self.assertRaises(vnuma.PlanError, vnuma.plan, 9, 100000,
                                  HOSTS['two-node-64g'])
        self.assertIn('nova rejects the specs', str(e))

    def test_plan_nova_reads_differently_is_an_error(self):
        """Ensures valid specs nova reads as other guest nodes are refused.

        The first node's CPU range loses its last vCPU to the second: nova
        accepts the specs but reads nodes of other sizes than planned.
        """
        real = planner.cpu_range

        def shifted(first, count):
            if first == 0:
                return real(first, count - 1)
            return real(first - 1, count + 1)

        with mock.patch.object(planner, 'cpu_range', autospec=True,
                               side_effect=shifted):
            e = self.assertRaises(vnuma.PlanError, vnuma.plan, 9, 100000,
                                  HOSTS['two-node-64g'])
        self.assertIn('nova reads the specs', str(e))
        self.assertIn('not the planned', str(e))


class TopologyKeysTest(testcase.TestCase):

    def test_nova_decides_which_flavors_have_a_topology(self):
        """Ensures only specs nova turns into a NUMA topology are named."""
        for specs, expected in (
                ({}, []),
                ({'hw:cpu_policy': 'shared'}, []),
                ({'hw:cpu_sockets': '2', 'note': 'hw:numa_nodes=2'}, []),
                ({'hw:numa_nodes': '2', 'hw:cpu_sockets': '2'},
                 ['hw:numa_nodes']),
                ({'hw:cpu_policy': 'dedicated'}, ['hw:cpu_policy']),
                ({'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '0-3'},
                 ['hw:cpu_policy']),
                ({'resources:PCPU': '16'}, ['resources:PCPU']),
                ({'hw:pmem': '6GB'}, ['hw:pmem']),
                ({'hw:mem_page_size': 'large', 'hw:cpu_policy': 'shared'},
                 ['hw:mem_page_size'])):
            self.assertEqual(expected,
                             vnuma.topology_keys(16, 100000, specs), specs)

    def test_specs_nova_rejects_are_a_one_line_error(self):
        """Ensures invalid specs give a PlanError of one line."""
        e = self.assertRaises(vnuma.PlanError, vnuma.topology_keys, 16,
                              100000, {'hw:numa_nodes': 'two\nnodes'})
        self.assertIn("nova rejects the flavor's extra specs: The property "
                      "'numa_nodes' cannot be 'two nodes'", str(e))
        self.assertNotIn('\n', str(e))


# The property tests state the planner's contract independently of it.

def usable(cell, headroom):
    """MiB a guest node may take on a cell with small pages."""
    return cell.small_page_mb * (100 - headroom) // 100


def offers(cells, headroom):
    """(CPUs, MiB) of each cell that holds guests: CPUs and memory."""
    result = [(len(c.cpus), usable(c, headroom))
              for c in cells if c.cpus and c.small_page_mb > 0]
    return [o for o in result if o[1] >= 1]


def minimal_nodes(cells, vcpus, memory_mb, headroom):
    """Smallest N with N distinct cells holding N guest nodes, or None.

    Each guest node has 1 to the cell's CPUs vCPUs and 1 MiB to the cell's
    memory less headroom; the nodes add up to the guest. With cpus and
    memory split independently, N cells do it iff N <= vCPUs, N <= MiB and
    their CPUs and memory cover the guest's.
    """
    usable_offers = offers(cells, headroom)
    for n in range(1, len(usable_offers) + 1):
        if n > vcpus or n > memory_mb:
            return None
        for combo in itertools.combinations(usable_offers, n):
            if (sum(c for c, _ in combo) >= vcpus and
                    sum(m for _, m in combo) >= memory_mb):
                return n
    return None


def placed_with_headroom(cells, plan, headroom):
    """Each guest node fits the host cell nova placed it on, with headroom.

    :returns: the (vCPUs, MiB, cell id) of the nodes that do not.
    """
    by_id = {c.id: c for c in cells}
    return [(count, mb, cell_id) for count, mb, cell_id in zip(
        plan.node_cpus, plan.node_memory_mb, plan.host_cells)
        if count > len(by_id[cell_id].cpus) or
        mb > usable(by_id[cell_id], headroom)]


def nova_fits(cells, plan):
    """nova reads the specs as the planned nodes and fits them on the host."""
    specs = plan.extra_specs or {'hw:numa_nodes': '1'}
    flavor = objects.Flavor(vcpus=plan.vcpus, memory_mb=plan.memory_mb,
                            extra_specs=specs, name='f', flavorid='f')
    guest = hardware.numa_get_constraints(
        flavor, objects.ImageMeta.from_dict({'properties': {}}))
    if [(len(c.cpuset), c.memory) for c in guest.cells] != list(
            zip(plan.node_cpus, plan.node_memory_mb)):
        return False
    host = nova_hosts.numa_topology(topology.Host('h', cells))
    return hardware.numa_fit_instance_to_host(
        host, guest.obj_clone(), None) is not None


@st.composite
def hosts(draw, max_cells=6):
    count = draw(st.integers(1, max_cells))
    cells, first = [], 0
    for i in range(count):
        n = draw(st.sampled_from([0, 1, 2, 4, 8, 12, 16, 24, 32]))
        mb = draw(st.one_of(
            st.sampled_from([0, 512, 1024, 4096, 16384, 32768, 65536, 98304,
                             131072, 262144]),
            # Cells of nearly equal size, where the order nova tries them
            # in decides whether a node keeps the headroom.
            st.integers(60000, 72000)))
        cells.append(Cell(i, cpus(first, n), mb))
        first += n
    return cells


PROPERTY = hypothesis.settings(max_examples=200, deadline=None,
                               derandomize=True, database=None)


class PlanPropertyTest(testcase.TestCase):

    @PROPERTY
    @hypothesis.given(hosts(), st.integers(1, 100),
                      st.one_of(st.integers(1, 600000),
                                st.integers(1, 300).map(lambda k: k * 2048)),
                      st.sampled_from([0, 10, 25]), st.booleans())
    # nova tries the cells in id order when the guest takes all of them.
    @hypothesis.example([Cell(0, cpus(0, 8), 64000),
                         Cell(1, cpus(8, 8), 70000)], 2, 120000, 10, False)
    def test_plans_are_minimal_and_nova_accepts_them(self, cells, vcpus,
                                                     memory_mb, headroom,
                                                     pin):
        """Ensures plans are minimal, complete and fit per nova, or errors.

        N is minimal: no smaller N satisfies the constraints stated in
        minimal_nodes(). A guest no N can hold gets a PlanError, not a plan.
        """
        expected = minimal_nodes(cells, vcpus, memory_mb, headroom)
        if expected is None:
            e = self.assertRaises(vnuma.PlanError, vnuma.plan, vcpus,
                                  memory_mb, cells, headroom_pct=headroom,
                                  pin=pin)
            self.assertNotIn('\n', str(e))
            return
        plan = vnuma.plan(vcpus, memory_mb, cells, headroom_pct=headroom,
                          pin=pin)

        self.assertEqual(expected, plan.nodes)
        self.assertEqual(vcpus, sum(plan.node_cpus))
        self.assertEqual(memory_mb, sum(plan.node_memory_mb))
        self.assertTrue(nova_fits(cells, plan))
        self.assertEqual(plan.nodes, len(set(plan.host_cells)))
        specs = plan.extra_specs
        if specs:
            # The guest nodes as nova places them keep the headroom.
            self.assertEqual([], placed_with_headroom(cells, plan, headroom))
        if plan.nodes == 1 and not pin:
            self.assertEqual({}, specs)
            return
        self.assertEqual(str(plan.nodes), specs['hw:numa_nodes'])
        asymmetric = {k for k in specs if k.startswith(('hw:numa_cpus.',
                                                        'hw:numa_mem.'))}
        if plan.symmetric:
            self.assertEqual(set(), asymmetric)
        else:
            self.assertEqual(
                {'hw:numa_%s.%d' % (kind, i) for i in range(plan.nodes)
                 for kind in ('cpus', 'mem')}, asymmetric)
        if len(set(plan.node_cpus)) == 1:
            self.assertEqual(str(plan.nodes), specs['hw:cpu_sockets'])
        else:
            self.assertNotIn('hw:cpu_sockets', specs)

    @PROPERTY
    @hypothesis.given(st.lists(st.tuples(st.integers(1, 16),
                                         st.integers(0, 64)),
                               min_size=1, max_size=6),
                      st.integers(1, 64), st.integers(1, 200))
    def test_gigabyte_pages(self, shapes, vcpus, gigabytes):
        """Ensures 1 GiB page plans use whole pages of the pools, minimally.

        Cells hold N guest nodes of whole free 1 GiB pages; no headroom is
        taken from a hugepage pool.
        """
        cells, first = [], 0
        for i, (n, pages) in enumerate(shapes):
            cells.append(Cell(i, cpus(first, n), 64 * GB,
                              small_page_mb=64 * GB - pages * GB,
                              hugepages={1048576: (pages, 0)}))
            first += n
        memory_mb = gigabytes * GB
        pools = [(n, pages) for n, pages in shapes if pages]
        expected = None
        for count in range(1, min(len(pools), vcpus, gigabytes) + 1):
            if any(sum(n for n, _ in combo) >= vcpus and
                   sum(p for _, p in combo) >= gigabytes
                   for combo in itertools.combinations(pools, count)):
                expected = count
                break
        if expected is None:
            self.assertRaises(vnuma.PlanError, vnuma.plan, vcpus, memory_mb,
                              cells, page_size='1GB')
            return
        plan = vnuma.plan(vcpus, memory_mb, cells, page_size='1GB')

        self.assertEqual(expected, plan.nodes)
        self.assertEqual('1GB', plan.extra_specs['hw:mem_page_size'])
        self.assertTrue(all(mb % GB == 0 for mb in plan.node_memory_mb))
        self.assertTrue(nova_fits(cells, plan))
        self.assertNotIn(vnuma.SMALL_PAGES_WARNING, plan.warnings)


# The page pools each page-size request may use, as nova reads it:
# 'large' any hugepage size (the largest that fits), 'any' those or small
# pages, a size only that size.
POOLS = {'2MB': (2048,), '1GB': (1048576,), 'large': (2048, 1048576),
         'any': (2048, 1048576, 4)}


def node_fits(cell, page_size, count, mb, headroom):
    """Whether one guest node fits a cell for a page-size request.

    Small pages keep the headroom free; a hugepage pool is the headroom
    already (its pages are reserved), but a node takes whole pages of one
    size.
    """
    if count > len(cell.cpus) or mb < 1:
        return False
    for size_kb in POOLS[page_size]:
        if size_kb == 4:
            if mb <= usable(cell, headroom):
                return True
            continue
        total, used = cell.hugepages.get(size_kb, (0, 0))
        if mb * 1024 % size_kb == 0 and mb * 1024 <= (total - used) * size_kb:
            return True
    return False


def minimal_nodes_with_pages(cells, page_size, vcpus, memory_mb, headroom):
    """Smallest N (1 or 2) for a host of two guest cells, or None.

    Two nodes need a split of the vCPUs and of the memory that fits the two
    cells: every split of the memory is tried.
    """
    holding = [c for c in cells if c.cpus]
    if any(node_fits(c, page_size, vcpus, memory_mb, headroom)
           for c in holding):
        return 1
    for first, second in itertools.permutations(holding, 2):
        cpu_splits = [(a, vcpus - a) for a in range(1, vcpus)
                      if a <= len(first.cpus) and
                      vcpus - a <= len(second.cpus)]
        if not cpu_splits:
            continue
        count, rest = cpu_splits[0]
        for mb in range(1, memory_mb):
            if (node_fits(first, page_size, count, mb, headroom) and
                    node_fits(second, page_size, rest, memory_mb - mb,
                              headroom)):
                return 2
    return None


class PageSizePropertyTest(testcase.TestCase):

    @PROPERTY
    @hypothesis.given(st.sampled_from(sorted(POOLS)), st.integers(1, 9),
                      st.one_of(st.integers(1, 24000),
                                st.integers(1, 2100).map(lambda k: k * 2),
                                st.integers(1, 5).map(lambda k: k * GB)),
                      st.sampled_from([0, 10, 25]))
    def test_page_sizes_on_the_hugepages_host(self, page_size, vcpus,
                                              memory_mb, headroom):
        """Ensures each page size plans what nova accepts, minimally.

        The host of capabilities-hugepages.xml: two cells of 4 CPUs, 12 GiB
        of small pages, 1024 pages of 2 MiB and 2 of 1 GiB each, and a
        memory-only cell. A guest no split can hold gets a PlanError.
        """
        cells = HOSTS['hugepages']
        expected = minimal_nodes_with_pages(cells, page_size, vcpus,
                                            memory_mb, headroom)
        if expected is None:
            e = self.assertRaises(vnuma.PlanError, vnuma.plan, vcpus,
                                  memory_mb, cells, headroom_pct=headroom,
                                  page_size=page_size)
            self.assertNotIn('\n', str(e))
            return
        plan = vnuma.plan(vcpus, memory_mb, cells, headroom_pct=headroom,
                          page_size=page_size)

        self.assertEqual(expected, plan.nodes)
        self.assertEqual(page_size, plan.extra_specs['hw:mem_page_size'])
        self.assertTrue(nova_fits(cells, plan))
        by_id = {c.id: c for c in cells}
        for count, mb, cell_id in zip(plan.node_cpus, plan.node_memory_mb,
                                      plan.host_cells):
            self.assertTrue(node_fits(by_id[cell_id], page_size, count, mb,
                                      headroom), plan)


class PlannerShapeTest(testcase.TestCase):

    def test_offers_name_what_a_cell_offers(self):
        """Ensures the planner's offers name the cell, CPUs and capacity."""
        layout = planner.Layout(HOSTS['unequal_memory'], 10, None)
        first = layout.offers[0]
        self.assertEqual((1, 16, 88473), (first.cell.id, first.cpus,
                                          first.capacity_mb))
        self.assertEqual([1, 0], [o.cell.id for o in layout.offers])

    def test_planner_and_page_sizes_import_no_nova(self):
        """Ensures the pure planner and page sizes work without nova."""
        code = ('import sys\n'
                'import nova_numa_guard.vnuma.pages\n'
                'import nova_numa_guard.vnuma.planner\n'
                'print(sorted(m for m in sys.modules\n'
                '             if m.split(".")[0] == "nova"))\n')
        out = subprocess.check_output([sys.executable, '-c', code])
        self.assertEqual('[]', out.decode().strip())
