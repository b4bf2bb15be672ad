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

"""Tests of ``nova-numa-guard inspect``, run in-process on fake sysfs."""

import json
import os

import hypothesis
from hypothesis import strategies as st

from nova_numa_guard.cli import inspect_host
from nova_numa_guard.inputs import sysfs
from tests import fake_sysfs
from tests import testcase
from tests.unit.cli import base

NO_HUGEPAGES = '2M: 0 of 0 free, 1G: 0 of 0 free'
TWO_NODE_ROWS = [
    {'Node': 0, 'CPUs': '0-5,12-17', 'Total MB': 64328, 'Free MB': 10501,
     'Available MB': 14286, 'Hugepages': NO_HUGEPAGES, 'Distances': '10 21',
     'Devices': '0000:03:00.0 storage'},
    {'Node': 1, 'CPUs': '6-11,18-23', 'Total MB': 64510, 'Free MB': 2769,
     'Available MB': 7854, 'Hugepages': NO_HUGEPAGES, 'Distances': '21 10',
     'Devices': '0000:81:00.0 network ens1f0, 0000:81:00.1 network ens1f1'},
]


class InspectTest(base.CLITestCase):

    def sysfs(self, nodes=None, devices=None):
        root = os.path.join(self.tmp, 'sys')
        fake_sysfs.write_tree(
            root, fake_sysfs.two_node_nodes() if nodes is None else nodes,
            fake_sysfs.TWO_NODE_DEVICES if devices is None else devices,
            fake_sysfs.TWO_NODE_NETS)
        return root

    def test_json_has_a_row_per_node(self):
        """Ensures two-node-64g's nodes show numastat's figures and devices.
        """
        code, out, err = self.run_cli('inspect', '--sysfs-root',
                                      self.sysfs(), '-f', 'json')
        self.assertEqual((0, TWO_NODE_ROWS, ''), (code, json.loads(out), err))

    def test_table(self):
        """Ensures the table lists the columns and the nodes' CPUs."""
        code, out, err = self.run_cli('inspect', '--sysfs-root',
                                      self.sysfs())
        self.assertEqual((0, ''), (code, err))
        header = out.splitlines()[1]
        self.assertEqual(list(inspect_host.COLUMNS),
                         [word.strip() for word in header.split('|')[1:-1]])
        self.assertIn('| 6-11,18-23 |', out)

    def test_devices_on_no_node_get_a_row(self):
        """Ensures a device the firmware puts on no node is listed apart."""
        gpu = {'address': '0000:41:00.0', 'numa_node': -1,
               'class': '0x030200', 'vendor': '0x10de', 'device': '0x20b5'}
        root = self.sysfs(devices=fake_sysfs.TWO_NODE_DEVICES + [gpu])
        code, out, _ = self.run_cli('inspect', '--sysfs-root', root,
                                    '-f', 'json')
        self.assertEqual(0, code)
        self.assertEqual(
            {'Node': None, 'CPUs': '', 'Total MB': None, 'Free MB': None,
             'Available MB': None, 'Hugepages': '', 'Distances': '',
             'Devices': '0000:41:00.0 display'}, json.loads(out)[-1])
        code, out, _ = self.run_cli('inspect', '--sysfs-root', root)
        self.assertIn('|    - |', out)
        self.assertNotIn('None', out)

    def test_memory_only_node_and_hugepages(self):
        """Ensures a node without CPUs and hugepages in use are shown."""
        nodes = fake_sysfs.two_node_nodes()
        nodes[1]['cpulist'] = ''
        nodes[1]['hugepages'] = {2048: (512, 100)}
        code, out, _ = self.run_cli('inspect', '--sysfs-root',
                                    self.sysfs(nodes=nodes), '-f', 'json')
        row = json.loads(out)[1]
        self.assertEqual((0, '', '2M: 100 of 512 free'),
                         (code, row['CPUs'], row['Hugepages']))

    def test_unreadable_node_is_left_out_with_a_warning(self):
        """Ensures a node that cannot be read is named and the rest shown.
        """
        nodes = fake_sysfs.two_node_nodes()
        nodes[0]['meminfo'] = None
        code, out, err = self.run_cli('inspect', '--sysfs-root',
                                      self.sysfs(nodes=nodes), '-f', 'json')
        self.assertEqual((0, [TWO_NODE_ROWS[1]['Node']]),
                         (code, [row['Node'] for row in json.loads(out)
                                 if row['Total MB'] is not None]))
        self.assertTrue(err.startswith('Warning: left out: '), err)
        self.assertIn(os.path.join('node0', 'meminfo'), err)

    def test_no_sysfs_is_one_line_and_exit_1(self):
        """Ensures a root without NUMA nodes gives one line and exit 1."""
        code, out, err = self.run_cli('inspect', '--sysfs-root', self.tmp)
        self.assert_one_line_error(
            code, out, err, os.path.join(self.tmp, sysfs.NODE_DIR) +
            ': cannot list NUMA nodes: ')

    def test_needs_no_nova(self):
        """Ensures inspect runs where nova is not installed."""
        self.hide_nova()
        code, out, _ = self.run_cli('inspect', '--sysfs-root', self.sysfs(),
                                    '-f', 'json')
        self.assertEqual((0, TWO_NODE_ROWS), (code, json.loads(out)))


class FormatTest(testcase.TestCase):

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
    @hypothesis.given(st.sets(st.integers(0, 300), max_size=40))
    def test_cpu_list_reads_back(self, cpus):
        """Ensures cpu_list() spells what the kernel's cpulist parser reads
        back, in the fewest ranges.
        """
        text = inspect_host.cpu_list(cpus)
        self.assertEqual(sorted(cpus), sysfs.parse_cpulist(text, 'test'))
        self.assertEqual(
            sum(1 for cpu in cpus if cpu - 1 not in cpus),
            len(text.split(',')) if text else 0)

    def test_page_sizes(self):
        """Ensures hugepage sizes read as the kernel's sizes go."""
        for size_kb, expected in ((4, '4K'), (64, '64K'), (2048, '2M'),
                                  (32768, '32M'), (1048576, '1G'),
                                  (16 * 1048576, '16G')):
            self.assertEqual(expected, inspect_host.page_size(size_kb))
