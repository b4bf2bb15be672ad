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

"""The sysfs reader against fake trees, including two-node-64g's numastat."""

import os
import shutil

import fixtures
import hypothesis
from hypothesis import strategies as st

from nova_numa_guard.inputs import InputError
from nova_numa_guard.inputs import numastat
from nova_numa_guard.inputs import sysfs
from nova_numa_guard.live import payload
from tests import examples
from tests import fake_sysfs
from tests import testcase

PROPERTY = hypothesis.settings(max_examples=200, deadline=None,
                               derandomize=True)


class SysfsTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def write_two_node(self):
        return fake_sysfs.write_two_node_tree(self.root)

    def node_file(self, node_id, name):
        return os.path.join(self.root, 'devices', 'system', 'node',
                            'node%d' % node_id, name)


class TwoNodeTreeTest(SysfsTestCase):

    def test_two_node_nodes_read_with_numastat_figures(self):
        """Ensures two-node-64g's numastat -m figures come back per node."""
        self.write_two_node()
        nodes = sysfs.read_nodes(self.root)
        self.assertEqual([0, 1], [n.id for n in nodes])
        self.assertEqual([10501, 2769], [n.mb('MemFree') for n in nodes])
        self.assertEqual([64328, 64510], [n.mb('MemTotal') for n in nodes])
        self.assertEqual([6115, 7584], [n.mb('FilePages') for n in nodes])
        self.assertEqual([14286, 7854], [n.available_mb for n in nodes])

    def test_available_memory_is_the_numastat_figure(self):
        """Ensures sysfs and numastat -m use one available-memory formula."""
        self.write_two_node()
        calls = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.available_mb',
            side_effect=payload.available_mb))
        from_sysfs = {n.id: n.available_mb
                      for n in sysfs.read_nodes(self.root)}
        self.assertEqual(2, calls.mock.call_count)
        from_numastat = numastat.load(
            examples.TWO_NODE_NUMASTAT).available_mb()
        self.assertEqual(4, calls.mock.call_count)
        self.assertEqual(from_numastat, from_sysfs)

    def test_two_node_cpus_distances_hugepages(self):
        """Ensures two-node-64g's CPUs, distances and hugepages are read."""
        self.write_two_node()
        node0, node1 = sysfs.read_nodes(self.root)
        self.assertEqual([0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17],
                         node0.cpus)
        self.assertEqual(list(range(6, 12)) + list(range(18, 24)),
                         node1.cpus)
        self.assertEqual([10, 21], node0.distances)
        self.assertEqual([21, 10], node1.distances)
        self.assertEqual({2048: (0, 0), 1048576: (0, 0)}, node0.hugepages)

    def test_two_node_devices_and_nics(self):
        """Ensures NICs and NVMe are read with their nodes, bridges not."""
        self.write_two_node()
        devices, problems = sysfs.read_devices(self.root)
        self.assertEqual([], problems)
        by_address = {d.address: d for d in devices}
        self.assertEqual(['0000:03:00.0', '0000:81:00.0', '0000:81:00.1'],
                         sorted(by_address))
        nic = by_address['0000:81:00.0']
        self.assertEqual((1, '0x020000', '8086', '1528', ['ens1f0']),
                         (nic.numa_node, nic.pci_class, nic.vendor_id,
                          nic.product_id, nic.net))
        self.assertEqual(0, by_address['0000:03:00.0'].numa_node)

    def test_unknown_device_node_is_none(self):
        """Ensures a device on node -1 has no node."""
        fake_sysfs.write_tree(self.root, fake_sysfs.two_node_nodes(), [
            {'address': '0000:05:00.0', 'numa_node': -1,
             'class': '0x020000', 'vendor': '0x15b3', 'device': '0x1017'}])
        devices, _ = sysfs.read_devices(self.root)
        self.assertIsNone(devices[0].numa_node)

    def test_hugepages_counted(self):
        """Ensures hugepage pools are read as (total, free)."""
        nodes = fake_sysfs.two_node_nodes()
        nodes[1]['hugepages'] = {1048576: (16, 4)}
        fake_sysfs.write_tree(self.root, nodes)
        self.assertEqual({1048576: (16, 4)},
                         sysfs.read_nodes(self.root)[1].hugepages)

    def test_memory_only_node_has_no_cpus(self):
        """Ensures a memory-only node reads with no CPUs."""
        nodes = fake_sysfs.two_node_nodes()
        nodes[1]['cpulist'] = ''
        fake_sysfs.write_tree(self.root, nodes)
        self.assertEqual([], sysfs.read_nodes(self.root)[1].cpus)


class BadTreeTest(SysfsTestCase):

    def assert_input_error(self, needle, func, *args):
        exc = self.assertRaises(InputError, func, *args)
        self.assertIn(needle, str(exc))
        self.assertEqual(1, len(str(exc).splitlines()))
        return exc

    def test_missing_node_directory(self):
        """Ensures a tree without nodes gives a one-line error."""
        self.assert_input_error('cannot list NUMA nodes',
                                sysfs.read_nodes, self.root)

    def test_missing_meminfo_names_the_file(self):
        """Ensures a missing meminfo is an error naming the file."""
        nodes = fake_sysfs.two_node_nodes()
        nodes[1]['meminfo'] = None
        fake_sysfs.write_tree(self.root, nodes)
        exc = self.assert_input_error('cannot read', sysfs.read_nodes,
                                      self.root)
        self.assertEqual(self.node_file(1, 'meminfo'), exc.source)

    def test_tolerant_read_keeps_good_nodes(self):
        """Ensures one unreadable node does not hide the others."""
        nodes = fake_sysfs.two_node_nodes()
        nodes[0]['cpulist'] = None
        fake_sysfs.write_tree(self.root, nodes)
        good, problems = sysfs.read_nodes_tolerant(self.root)
        self.assertEqual([1], [n.id for n in good])
        self.assertEqual([self.node_file(0, 'cpulist')],
                         [p.source for p in problems])

    def test_truncated_meminfo(self):
        """Ensures meminfo cut before MemFree is refused."""
        text = 'Node 0 MemTotal:       65872056 kB\nNode 0 MemF'
        self.assert_input_error('line 2', sysfs.parse_meminfo, text, 'm', 0)
        self.assert_input_error('truncated: no MemFree', sysfs.parse_meminfo,
                                'Node 0 MemTotal: 65872056 kB\n', 'm', 0)
        self.assert_input_error('truncated: no MemTotal or MemFree',
                                sysfs.parse_meminfo, '', 'm', 0)

    def test_non_numeric_meminfo(self):
        """Ensures a non-numeric meminfo value is refused."""
        self.assert_input_error('not a whole number', sysfs.parse_meminfo,
                                'Node 0 MemTotal: 12x kB\n'
                                'Node 0 MemFree: 1 kB\n', 'm', 0)
        self.assert_input_error('not a whole number', sysfs.parse_meminfo,
                                'Node 0 MemTotal: -5 kB\n'
                                'Node 0 MemFree: 1 kB\n', 'm', 0)

    def test_huge_meminfo_value(self):
        """Ensures an implausibly large meminfo value is refused."""
        self.assert_input_error('implausibly large', sysfs.parse_meminfo,
                                'Node 0 MemTotal: %d kB\n' % (2 ** 60),
                                'm', 0)

    def test_free_above_total(self):
        """Ensures MemFree above MemTotal is refused."""
        self.assert_input_error('more than MemTotal', sysfs.parse_meminfo,
                                'Node 0 MemTotal: 10 kB\n'
                                'Node 0 MemFree: 11 kB\n', 'm', 0)

    def test_a_figure_listed_twice_is_refused(self):
        """Ensures a duplicated MemFree line cannot replace the first."""
        self.assert_input_error('line 3: MemFree is listed twice',
                                sysfs.parse_meminfo,
                                'Node 1 MemTotal: 66058400 kB\n'
                                'Node 1 MemFree: 2835968 kB\n'
                                'Node 1 MemFree: 60000000 kB\n', 'm', 1)

    def test_only_the_kernels_node_names_count(self):
        """Ensures node01 or node with non-ASCII digits are not node 1."""
        fake_sysfs.write_two_node_tree(self.root)
        base = os.path.dirname(self.node_file(1, 'meminfo'))
        for alias in ('node01', 'node\u0661', 'node1x', 'node-1'):
            shutil.copytree(base, os.path.join(os.path.dirname(base), alias))
        self.assertEqual([0, 1], sysfs.node_ids(self.root))
        self.assertEqual([0, 1], [n.id for n in sysfs.read_nodes(self.root)])

    def test_non_ascii_digits_are_refused(self):
        """Ensures numbers are ASCII digits only, in every sysfs file."""
        self.assert_input_error('not a whole number', sysfs.parse_meminfo,
                                'Node 0 MemTotal: \u0661\u0662 kB\n'
                                'Node 0 MemFree: 1 kB\n', 'm', 0)
        self.assert_input_error('distances', sysfs.parse_distance,
                                '10 \u0662\u0661', 'd')

    def test_fifo_in_place_of_meminfo_does_not_block(self):
        """Ensures a FIFO as meminfo is refused at once, not waited on."""
        # A blocking open would wait for a writer for ever: fail instead.
        self.useFixture(fixtures.Timeout(20, gentle=True))
        fake_sysfs.write_two_node_tree(self.root)
        path = self.node_file(1, 'meminfo')
        os.unlink(path)
        os.mkfifo(path)
        nodes, problems = sysfs.read_nodes_tolerant(self.root)
        self.assertEqual([0], [n.id for n in nodes])
        self.assertEqual(['%s: cannot read: not a regular file' % path],
                         [str(p) for p in problems])

    def test_other_nodes_lines(self):
        """Ensures lines about another node are refused."""
        self.assert_input_error('about node 1', sysfs.parse_meminfo,
                                'Node 1 MemTotal: 10 kB\n', 'm', 0)

    def test_bad_cpulist_and_distance(self):
        """Ensures bad cpulist and distance text is refused."""
        self.assert_input_error('bad CPU', sysfs.parse_cpulist, '0-a', 'c')
        self.assert_input_error('bad CPU range', sysfs.parse_cpulist, '5-2',
                                'c')
        self.assert_input_error('distances', sysfs.parse_distance, '10 x',
                                'd')
        self.assertEqual([0, 1, 2, 7], sysfs.parse_cpulist('0-2,7\n', 'c'))

    def test_cpulist_of_non_ascii_or_endless_digits(self):
        """Ensures digits int() refuses give InputError, not ValueError."""
        self.assert_input_error('bad CPU list item', sysfs.parse_cpulist,
                                '\u00b2', 'c')
        self.assert_input_error('bad CPU list item', sysfs.parse_cpulist,
                                '0-\u0663', 'c')
        self.assert_input_error('bad CPU range', sysfs.parse_cpulist,
                                '9' * 5000, 'c')
        self.assert_input_error('bad CPU range', sysfs.parse_cpulist,
                                '0-' + '9' * 5000, 'c')

    @PROPERTY
    @hypothesis.given(st.text(max_size=40))
    def test_any_cpulist_text_parses_or_gives_input_error(self, text):
        """Ensures any text, digits of any script included, is handled."""
        try:
            cpus = sysfs.parse_cpulist(text, 'cpulist')
        except InputError as exc:
            self.assertEqual(1, len(str(exc).splitlines()))
            return
        self.assertEqual(sorted(set(cpus)), cpus)

    def test_bad_hugepage_counts(self):
        """Ensures more free than total hugepages is refused."""
        nodes = fake_sysfs.two_node_nodes()
        nodes[0]['hugepages'] = {2048: (4, 8)}
        fake_sysfs.write_tree(self.root, nodes)
        self.assert_input_error('more than nr_hugepages', sysfs.read_nodes,
                                self.root)

    def test_binary_file(self):
        """Ensures a binary meminfo is refused, not decoded."""
        nodes = fake_sysfs.two_node_nodes()
        fake_sysfs.write_tree(self.root, nodes)
        with open(self.node_file(0, 'meminfo'), 'wb') as handle:
            handle.write(b'\xff\xfe garbage')
        self.assert_input_error('not ASCII', sysfs.read_nodes, self.root)

    def test_unreadable_device_reported_not_raised(self):
        """Ensures a bad device file is reported, not raised."""
        fake_sysfs.write_tree(self.root, fake_sysfs.two_node_nodes(), [
            {'address': '0000:05:00.0', 'numa_node': 'x',
             'class': '0x020000', 'vendor': '0x15b3', 'device': '0x1017'},
            {'address': '0000:06:00.0', 'numa_node': 0,
             'class': None, 'vendor': '0x15b3', 'device': '0x1017'}])
        devices, problems = sysfs.read_devices(self.root)
        self.assertEqual([], devices)
        self.assertEqual(2, len(problems))

    @PROPERTY
    @hypothesis.given(st.text(max_size=400))
    def test_meminfo_parser_never_raises_anything_else(self, text):
        """Ensures any meminfo text parses or gives an InputError."""
        try:
            values = sysfs.parse_meminfo(text, 'meminfo', 0)
        except InputError as exc:
            self.assertEqual(1, len(str(exc).splitlines()))
        else:
            self.assertLessEqual(values['MemFree'], values['MemTotal'])

    @PROPERTY
    @hypothesis.given(st.text(alphabet='0123456789-,^ x\n', max_size=40))
    def test_cpulist_parser_never_raises_anything_else(self, text):
        """Ensures the cpulist parser raises only InputError."""
        try:
            cpus = sysfs.parse_cpulist(text, 'cpulist')
        except InputError:
            return
        self.assertEqual(sorted(set(cpus)), cpus)


class ReadHostTest(SysfsTestCase):

    def test_two_node_host(self):
        """Ensures two-node-64g's nodes become cells with live free memory."""
        self.write_two_node()
        host = sysfs.read_host(self.root)
        self.assertEqual(os.path.normpath(self.root), host.name)
        cell0, cell1 = host.cells
        self.assertEqual([0, 1], [c.id for c in host.cells])
        self.assertEqual(frozenset(range(6)) | frozenset(range(12, 18)),
                         cell0.cpus)
        self.assertEqual([64328, 64510], [c.memory_mb for c in host.cells])
        self.assertEqual([64328, 64510],
                         [c.small_page_mb for c in host.cells])
        # MemFree + Inactive(file) + SReclaimable, capped at MemTotal.
        self.assertEqual({0: 14286, 1: 7854}, host.live.available_mb)
        self.assertEqual({0: 10, 1: 21}, cell0.distances)
        self.assertEqual({0: 21, 1: 10}, cell1.distances)
        self.assertEqual({2048: (0, 0), 1048576: (0, 0)}, cell0.hugepages)

    def test_hugepages_are_carved_out_of_small_pages(self):
        """Ensures a pool counts whole (its shape), not its free pages."""
        nodes = fake_sysfs.two_node_nodes()
        nodes[1]['hugepages'] = {1048576: (16, 4)}
        fake_sysfs.write_tree(self.root, nodes)
        cell1 = sysfs.read_host(self.root).cells[1]
        self.assertEqual(64510, cell1.memory_mb)
        self.assertEqual(64510 - 16 * 1024, cell1.small_page_mb)
        self.assertEqual({1048576: (16, 0)}, cell1.hugepages)

    def test_memory_only_node_and_odd_distances(self):
        """Ensures a node without CPUs holds no guests; bad rows are dropped.
        """
        nodes = fake_sysfs.two_node_nodes()
        nodes[1]['cpulist'] = ''
        nodes[0]['distance'] = '10'
        fake_sysfs.write_tree(self.root, nodes)
        cell0, cell1 = sysfs.read_host(self.root).cells
        self.assertFalse(cell1.holds_guests)
        self.assertEqual({}, cell0.distances)

    def test_problems_are_input_errors(self):
        """Ensures a tree without nodes is a one-line InputError."""
        exc = self.assertRaises(InputError, sysfs.read_host, self.root)
        self.assertIn('cannot list NUMA nodes', str(exc))
        self.assertEqual(1, len(str(exc).splitlines()))


# Two dual-port NICs: 0000:81 on node 1, 0000:03 on node 0.
TWO_NICS = fake_sysfs.TWO_NODE_DEVICES[:2] + [
    {'address': '0000:03:00.0', 'numa_node': 0, 'class': '0x020000',
     'vendor': '0x15b3', 'device': '0x1017'},
    {'address': '0000:03:00.1', 'numa_node': 0, 'class': '0x020000',
     'vendor': '0x15b3', 'device': '0x1017'}]
TWO_NICS_NETS = dict(fake_sysfs.TWO_NODE_NETS, ens3f0='0000:03:00.0',
                     ens3f1='0000:03:00.1')


class InterfaceDevicesTest(SysfsTestCase):
    """Which PCI devices carry a network interface."""

    def setUp(self):
        super().setUp()
        fake_sysfs.write_tree(
            self.root, fake_sysfs.two_node_nodes(), TWO_NICS, TWO_NICS_NETS,
            lowers={'bond0': ['ens1f0', 'ens3f0'],
                    'bond0.100': ['bond0'],
                    'br-int': []})

    def test_a_nic_is_its_own_device(self):
        """Ensures that a physical interface gives its PCI device."""
        self.assertEqual(['0000:81:00.0'],
                         sysfs.interface_devices(self.root, 'ens1f0'))

    def test_a_bond_gives_the_devices_below_it(self):
        """Ensures that a bond, and a VLAN on it, lead to both NICs."""
        for ifname in ('bond0', 'bond0.100'):
            self.assertEqual(['0000:03:00.0', '0000:81:00.0'],
                             sysfs.interface_devices(self.root, ifname))

    def test_unknown_interface_names_its_path(self):
        """Ensures that a missing interface is a one-line InputError."""
        error = self.assertRaises(InputError, sysfs.interface_devices,
                                  self.root, 'ens9f9')
        self.assertEqual(os.path.join(self.root, 'class', 'net', 'ens9f9'),
                         error.source)
        self.assertEqual('no such network interface', error.problem)

    def test_virtual_interface_without_a_nic_below_is_refused(self):
        """Ensures that a bridge with no NIC below it gives an error."""
        for ifname in ('br-int', 'lo'):
            error = self.assertRaises(InputError, sysfs.interface_devices,
                                      self.root, ifname)
            self.assertIn('no PCI device behind the interface', str(error))
