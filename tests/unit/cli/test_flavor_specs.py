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

"""Tests of ``nova-numa-guard flavor-specs``, run in-process."""

import json
import os

import hypothesis
from hypothesis import strategies as st
import yaml

from nova_numa_guard.cli import app
from nova_numa_guard.cli import flavor_specs
from nova_numa_guard.inputs import InputError
from tests import examples
from tests.unit.cli import base

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data')
TWO_NODE_XML = examples.TWO_NODE_XML
TWO_NODE_NUMASTAT = examples.TWO_NODE_NUMASTAT
FLAVORS = os.path.join(DATA, 'flavors.json')
SYM2 = {'hw:numa_nodes': '2', 'hw:cpu_sockets': '2'}


class FlavorSpecsTest(base.CLITestCase):

    def test_json_is_one_object_of_strings(self):
        """Ensures -f json prints exactly one JSON object of str values."""
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '16', '--ram', '100000',
            '--capabilities', TWO_NODE_XML, '-f', 'json')

        self.assertEqual(0, code)
        self.assertEqual(SYM2, json.loads(out))
        self.assertTrue(out.lstrip().startswith('{'))
        self.assertIn('Warning: the guest\'s memory is bound strictly', err)

    def test_the_filters_suggestion_runs(self):
        """Ensures the command NUMACellFitFilter logs works as written."""
        code, out, _ = self.run_cli(
            'flavor-specs', '--vcpus', '4', '--ram', '70000', '--cells',
            '6:64419,6:64419', '-f', 'json')
        self.assertEqual(0, code)
        self.assertEqual(SYM2, json.loads(out))

    def test_asymmetric_table(self):
        """Ensures the table lists every hw:numa_cpus.i and hw:numa_mem.i."""
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '9', '--ram', '100001', '--cells',
            '6:64419,6:64419', '-f', 'yaml')
        self.assertEqual(0, code)
        self.assertEqual({'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0-4',
                          'hw:numa_mem.0': '50001', 'hw:numa_cpus.1': '5-8',
                          'hw:numa_mem.1': '50000'}, yaml.safe_load(out))
        self.assertIn('hw:cpu_sockets is not set', err)

    def test_value_and_table_formats(self):
        """Ensures -f value prints values and the table prints fields."""
        argv = ('flavor-specs', '--vcpus', '16', '--ram', '100000',
                '--capabilities', TWO_NODE_XML)
        code, out, _ = self.run_cli(*argv, '-f', 'value')
        self.assertEqual((0, '2\n2\n'), (code, out))
        code, out, _ = self.run_cli(*argv)
        self.assertEqual(0, code)
        self.assertIn('| hw:numa_nodes  | 2     |', out)

    def test_guest_that_fits_one_cell(self):
        """Ensures a small guest gets {} and --pin gives hw:numa_nodes=1."""
        argv = ('flavor-specs', '--vcpus', '4', '--ram', '16384',
                '--capabilities', TWO_NODE_XML, '-f', 'json')
        code, out, err = self.run_cli(*argv)
        self.assertEqual((0, {}), (code, json.loads(out)))
        self.assertIn('The guest fits one NUMA cell', err)
        code, out, _ = self.run_cli(*argv, '--pin')
        self.assertEqual({'hw:numa_nodes': '1', 'hw:cpu_sockets': '1'},
                         json.loads(out))

    def test_page_size(self):
        """Ensures --page-size adds hw:mem_page_size and says what it assumes.
        """
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '16', '--ram', '102400',
            '--capabilities', TWO_NODE_XML, '--page-size', 'large', '-f',
            'json')
        self.assertEqual(0, code)
        self.assertEqual(dict(SYM2, **{'hw:mem_page_size': 'large'}),
                         json.loads(out))
        self.assertIn('lists no 2048 KiB pages', err)
        self.assertNotIn('bound strictly', err)

    def test_numastat_warns_of_the_available_memory(self):
        """Ensures two-node-64g's numastat shows the nodes lack memory now."""
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '16', '--ram', '100000',
            '--capabilities', TWO_NODE_XML, '--numastat', TWO_NODE_NUMASTAT,
            '-f', 'json')
        self.assertEqual((0, SYM2), (code, json.loads(out)))
        # MemFree + Inactive(file) + SReclaimable of two-node-64g's nodes.
        self.assertIn('(node 0 14286 MB, node 1 7854 MB available; guest '
                      'nodes of 50000/50000 MB)', err)

    def test_impossible_guest(self):
        """Ensures a guest too large for the host exits 1 with the reason."""
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '32', '--ram', '100000',
            '--capabilities', TWO_NODE_XML, '-f', 'json')
        self.assertEqual(
            (1, '', '32 vCPUs need 3 nodes of <=12 CPUs; host has 2\n'),
            (code, out, err))

    def test_bad_inputs_exit_1_with_one_line(self):
        """Ensures bad files and values give exit 1 and one line, no trace."""
        laughs = self.write('laughs.xml', '<!DOCTYPE t [<!ENTITY a "b">]>'
                            '<topology>&a;</topology>')
        truncated = self.write('cut.txt', open(TWO_NODE_NUMASTAT).read()[:300])
        missing = os.path.join(self.tmp, 'missing.xml')
        absurd = self.write('absurd.xml', "<topology><cells><cell id='0'>"
                            "<memory unit='KB'>%s</memory></cell></cells>"
                            "</topology>" % ('9' * 400))
        base = ('flavor-specs', '--vcpus', '16', '--ram', '100000')
        cases = [
            (('--capabilities', laughs),
             laughs + ': refusing a document type declaration'),
            (('--capabilities', absurd),
         absurd + ': cell 0 <memory>: 99999999999999999999... is '
         'implausibly large'),
        (('--capabilities', missing),
             missing + ': cannot read: No such file or directory'),
            (('--cells', '6:64419,six:1'), '--cells: cell 1: expected '
             'CPUS:MB with whole numbers, got \'six:1\''),
            (('--cells', '6:64419', '--numastat', truncated),
             truncated + ': line 9: row Active(anon) has 1 values, '
             'expected 3 (one per node and the total); truncated?'),
            (('--cells', '6:64419', '--numastat', TWO_NODE_NUMASTAT),
             TWO_NODE_NUMASTAT + ': nodes 0,1 do not match the host cells 0'),
            (('--cells', '6:64419', '--headroom', '100'),
             'headroom must be at least 0 and below 100 percent, got 100.0'),
            (('--cells', '6:64419', '--page-size', '3MB'),
             "page size '3MB' is not a power of two KiB"),
        ]
        for args, expected in cases:
            code, out, err = self.run_cli(*base, *args)
            self.assert_one_line_error(code, out, err, expected)

    def test_without_nova_says_what_to_install(self):
        """Ensures flavor-specs without nova says so in one line, exit 1."""
        self.hide_nova()
        code, out, err = self.run_cli('flavor-specs', '--vcpus', '16',
                                      '--ram', '100000', '--cells',
                                      '12:64328,12:64510')
        self.assert_one_line_error(
            code, out, err, 'flavor-specs runs nova\'s own code, and nova is '
            'not installed in this Python environment')
        self.assertIn('(pip install nova)', err)

    def test_missing_ram_is_a_usage_error(self):
        """Ensures --vcpus without --ram is a usage error (exit 2)."""
        code, out, err = self.run_cli('flavor-specs', '--vcpus', '16',
                                      '--cells', '6:64419')
        self.assertEqual((2, ''), (code, out))
        self.assertIn('nova-numa-guard flavor-specs: error: --vcpus and '
                      '--ram are required (or --flavors)', err)
        self.assertTrue(err.startswith('usage: nova-numa-guard '
                                       'flavor-specs'), err)

    def test_usage_errors_exit_2(self):
        """Ensures argparse errors exit 2, like openstackclient."""
        for argv in (('--vcpus', 'x', '--cells', '1:1'),
                     ('--vcpus', '1', '--ram', '1'),
                     ('--vcpus', '1', '--ram', '1', '--cells', '1:1',
                      '--capabilities', TWO_NODE_XML)):
            code, out, err = self.run_cli('flavor-specs', *argv)
            self.assertEqual(2, code, argv)
            self.assertIn('nova-numa-guard flavor-specs: error:', err)
            self.assertNotIn('Traceback', err)

    def test_help(self):
        """Ensures --help reads like an openstackclient command's."""
        code, out, _ = self.run_cli('flavor-specs', '--help')
        self.assertIn(code, (0, None))
        self.assertIn('usage: nova-numa-guard flavor-specs [-h] [-f '
                      '{json,shell,table,value,yaml}]', out)
        for text in ('--vcpus <vcpus>', '--ram <size-mb>',
                     '--capabilities <file>',
                     '--cells <cpus:mb>[,<cpus:mb>...]',
                     '--headroom <percent>', '--page-size <size>', '--pin',
                     '--numastat <file>', '--flavors <file>',
                     'Plan vNUMA flavor extra specs'):
            self.assertIn(text, out)
        code, out, _ = self.run_cli('--help')
        self.assertIn(code, (0, None))
        self.assertIn('flavor-specs', out)

    def _sysfs(self):
        """A fake /sys: node 0 with 4 GiB of 1 GiB pages, node 1 without."""
        root = os.path.join(self.tmp, 'sys')
        for node, cpus, distance, total_kb, free_kb in (
                (0, '0-5', '10 21', 65872056, 20000000),
                (1, '6-11', '21 10', 66058400, 4000000)):
            base = os.path.join(root, 'devices', 'system', 'node',
                                'node%d' % node)
            os.makedirs(base)
            with open(os.path.join(base, 'meminfo'), 'w') as f:
                f.write('Node %d MemTotal: %d kB\nNode %d MemFree: %d kB\n'
                        % (node, total_kb, node, free_kb))
            for name, text in (('cpulist', cpus), ('distance', distance)):
                with open(os.path.join(base, name), 'w') as f:
                    f.write(text + '\n')
        pages = os.path.join(root, 'devices', 'system', 'node', 'node0',
                             'hugepages', 'hugepages-1048576kB')
        os.makedirs(pages)
        for name in ('nr_hugepages', 'free_hugepages'):
            with open(os.path.join(pages, name), 'w') as f:
                f.write('4\n')
        return root

    def test_sysfs_root(self):
        """Ensures --sysfs-root reads the nodes, pools and free memory.

        Node 0's small pages are its MemTotal less the 4 GiB of 1 GiB pages.
        """
        root = self._sysfs()
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '8', '--ram', '110000',
            '--sysfs-root', root, '-f', 'json', '--headroom', '0')
        self.assertEqual((0, {'hw:numa_nodes': '2', 'hw:cpu_sockets': '2'}),
                         (code, json.loads(out)))
        # 64328 - 4096 = 60232 and 64510 MiB of small pages.
        self.assertIn('(node 0 19531 MB, node 1 3906 MB available; guest '
                      'nodes of 55000/55000 MB)', err)
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '2', '--ram', '4096', '--sysfs-root',
            root, '--page-size', '1GB', '-f', 'json')
        self.assertEqual({'hw:numa_nodes': '1', 'hw:cpu_sockets': '1',
                          'hw:mem_page_size': '1GB'}, json.loads(out))
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '2', '--ram', '8192', '--sysfs-root',
            root, '--page-size', '1GB', '-f', 'json')
        self.assert_one_line_error(
            code, out, err, '8192 MB need 2 nodes of <=4096 MB; host has 1 '
            '(cells with CPUs and free 1048576 KiB pages)')

    def test_sysfs_root_without_nodes(self):
        """Ensures a path without NUMA nodes is a one-line error."""
        code, out, err = self.run_cli(
            'flavor-specs', '--vcpus', '8', '--ram', '1000', '--sysfs-root',
            self.tmp)
        self.assert_one_line_error(
            code, out, err, os.path.join(self.tmp, 'devices', 'system',
                                         'node') + ': cannot list NUMA nodes')


class FlavorsBatchTest(base.CLITestCase):

    def test_value_prints_flavor_set_commands(self):
        """Ensures -f value prints one openstack flavor set line per plan.

        m1.small fits one cell and x1.numa has hw:numa_nodes: both are
        skipped; x1.huge cannot fit, which makes the exit code 1.
        """
        code, out, err = self.run_cli(
            'flavor-specs', '--flavors', FLAVORS, '--capabilities',
            TWO_NODE_XML, '-f', 'value')
        self.assertEqual(1, code)
        self.assertEqual(
            'openstack flavor set --property hw:numa_nodes=2 --property '
            'hw:cpu_sockets=2 x1.large\n'
            'openstack flavor set --property hw:numa_nodes=2 --property '
            'hw:numa_cpus.0=0-3 --property hw:numa_mem.0=49929 --property '
            'hw:numa_cpus.1=4-8 --property hw:numa_mem.1=50072 x1.odd\n',
            out)
        self.assertIn('x1.huge: 300000 MB need 6 nodes of <=58059 MB', err)
        self.assertIn('x1.numa: already has a NUMA topology (hw:numa_nodes); '
                      'skipped', err)
        self.assertIn('m1.small: fits one NUMA cell; skipped', err)
        self.assertEqual(1, err.count('bound strictly'))
        self.assertIn('Warning: x1.odd: hw:cpu_sockets is not set', err)

    def test_json_and_table(self):
        """Ensures -f json lists the plans and the table shows flavors."""
        argv = ('flavor-specs', '--flavors', FLAVORS, '--cells',
                '12:64328,12:64510')
        _, out, _ = self.run_cli(*argv, '-f', 'json')
        rows = json.loads(out)
        self.assertEqual(['x1.large', 'x1.odd'], [r['Flavor'] for r in rows])
        self.assertEqual('hw:numa_nodes=2 hw:cpu_sockets=2',
                         rows[0]['Extra Specs'])
        _, out, _ = self.run_cli(*argv)
        self.assertIn('| x1.large |', out)
        _, out, _ = self.run_cli(*argv, '-f', 'value', '-c', 'Flavor')
        self.assertEqual('x1.large\nx1.odd\n', out)

    def test_all_flavors_fit(self):
        """Ensures exit 0 and one command when every flavor plans or fits."""
        path = self.write('f.json', json.dumps([{
            'ID': '1', 'Name': 'big', 'RAM': 100000, 'VCPUs': 16,
            'Properties': "hw:cpu_sockets='2'"}]))
        code, out, _ = self.run_cli('flavor-specs', '--flavors', path,
                                    '--capabilities', TWO_NODE_XML, '-f',
                                    'value')
        self.assertEqual(0, code)
        self.assertEqual('openstack flavor set --property hw:numa_nodes=2 '
                         '--property hw:cpu_sockets=2 big\n', out)

    def test_bad_flavor_files(self):
        """Ensures bad flavor files give exit 1 and one line naming them."""
        cases = [
            ('[', 'not JSON: Expecting value: line 1 column 2'),
            ('{}', 'expected a JSON list of flavors'),
            ('[1]', 'flavor 0: expected a JSON object'),
            ('[{"Name": "a", "RAM": 1, "VCPUs": 1, "Flavour": 2}]',
             "flavor 0: unknown field 'Flavour'"),
            ('[{"Name": "a", "RAM": "lots", "VCPUs": 1}]',
             "flavor a: RAM must be a whole number from 1 to 4294967296, "
             "got 'lots'"),
            ('[{"RAM": 1, "VCPUs": 1}]', 'flavor 0: no Name or ID'),
        ]
        for text, expected in cases:
            path = self.write('flavors.json', text)
            code, out, err = self.run_cli(
                'flavor-specs', '--flavors', path, '--cells', '6:64419')
            self.assert_one_line_error(code, out, err,
                                       '%s: %s' % (path, expected))

    def test_flavors_with_vcpus_is_a_usage_error(self):
        """Ensures --flavors with --vcpus is a usage error (exit 2)."""
        code, out, err = self.run_cli(
            'flavor-specs', '--flavors', FLAVORS, '--vcpus', '2',
            '--cells', '6:64419')
        self.assertEqual((2, ''), (code, out))
        self.assertIn('nova-numa-guard flavor-specs: error: --flavors '
                      'replaces --vcpus and --ram; give one or the other',
                      err)

    def test_which_flavors_have_a_numa_topology(self):
        """Ensures only flavors nova gives a NUMA topology are skipped.

        hw:cpu_policy=shared and a value that mentions hw:numa_nodes give
        no topology: those flavors are planned. Dedicated CPUs, resources
        PCPU and hw:pmem do; invalid specs are an error (exit 1).
        """
        path = self.write('f.json', json.dumps([
            {'Name': 'shared', 'RAM': 100000, 'VCPUs': 16,
             'Properties': {'hw:cpu_policy': 'shared'}},
            {'Name': 'shared-text', 'RAM': 100000, 'VCPUs': 16,
             'Properties': "hw:cpu_policy='shared', hw:cpu_sockets='2'"},
            {'Name': 'noted', 'RAM': 100000, 'VCPUs': 16,
             'Properties': {'note': ' hw:numa_nodes=1 is for later'}},
            {'Name': 'dedicated', 'RAM': 100000, 'VCPUs': 16,
             'Properties': {'hw:cpu_policy': 'dedicated'}},
            {'Name': 'dedicated-text', 'RAM': 100000, 'VCPUs': 16,
             'Properties': "hw:cpu_policy='dedicated'"},
            {'Name': 'pcpu', 'RAM': 100000, 'VCPUs': 16,
             'Properties': {'resources:PCPU': '16'}},
            {'Name': 'pmem', 'RAM': 100000, 'VCPUs': 16,
             'Properties': {'hw:pmem': '6GB'}},
            {'Name': 'bogus', 'RAM': 100000, 'VCPUs': 16,
             'Properties': {'hw:cpu_policy': 'bogus'}}]))
        code, out, err = self.run_cli(
            'flavor-specs', '--flavors', path, '--capabilities', TWO_NODE_XML,
            '-f', 'value', '-c', 'Flavor')
        self.assertEqual(1, code)
        self.assertEqual('shared\nshared-text\nnoted\n', out)
        for line in ('dedicated: already has a NUMA topology '
                     '(hw:cpu_policy); skipped',
                     'dedicated-text: already has a NUMA topology '
                     '(hw:cpu_policy); skipped',
                     'pcpu: already has a NUMA topology (resources:PCPU); '
                     'skipped',
                     'pmem: already has a NUMA topology (hw:pmem); skipped',
                     'bogus: nova rejects the flavor\'s extra specs:'):
            self.assertIn(line, err)

    def test_failed_count_starts_at_zero(self):
        """Ensures a new command has no failures before it runs."""
        cmd = flavor_specs.FlavorSpecs(app.NovaNumaGuardApp(), None)
        self.assertEqual(0, cmd._failed)

    def test_unknown_column_is_a_one_line_error(self):
        """Ensures -c with no known column says which columns there are."""
        code, out, err = self.run_cli(
            'flavor-specs', '--flavors', FLAVORS, '--cells',
            '12:64328,12:64510', '-f', 'value', '-c', 'Nope')
        self.assert_one_line_error(
            code, out, err, "flavor-specs: -c Nope: no such column; the "
            "columns are Flavor, VCPUs, RAM, Nodes, Extra Specs, Command")

    def test_shell_format_is_refused_for_a_list(self):
        """Ensures -f shell, which shows one object, is refused cleanly."""
        code, out, err = self.run_cli(
            'flavor-specs', '--flavors', FLAVORS, '--cells', '6:64419',
            '-f', 'shell')
        self.assertEqual(1, code)
        self.assertIn('-f shell cannot show a list of flavors', err)


PROPERTY = hypothesis.settings(max_examples=150, deadline=None,
                               derandomize=True, database=None)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300000) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(flavor_specs.FLAVOR_FIELDS + ('x',)), children,
        max_size=4),
    max_leaves=12)


class InputPropertyTest(base.CLITestCase):

    @PROPERTY
    @hypothesis.given(st.text(max_size=40))
    def test_cells_parse_or_input_error(self, text):
        """Ensures any --cells text gives a Host or a one-line InputError."""
        try:
            host = flavor_specs.parse_cells(text)
        except InputError as e:
            self.assertTrue(str(e).startswith('--cells: '))
            self.assertNotIn('\n', str(e))
        else:
            self.assertEqual(len(text.split(',')), len(host.cells))

    @PROPERTY
    @hypothesis.given(st.one_of(JSON_VALUES.map(json.dumps),
                                st.text(max_size=60)))
    def test_flavors_parse_or_input_error(self, text):
        """Ensures any flavors file gives flavors or a one-line InputError."""
        path = self.write('f.json', text)
        try:
            flavors = flavor_specs.load_flavors(path)
        except InputError as e:
            self.assertTrue(str(e).startswith(path + ': '))
            self.assertNotIn('\n', str(e))
        else:
            for flavor in flavors:
                self.assertGreaterEqual(flavor['vcpus'], 1)
                self.assertGreaterEqual(flavor['ram'], 1)
