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

"""Tests of ``nova-numa-guard simulate``, run in-process."""

import io
import json

import fixtures
import yaml

from nova_numa_guard.cli import simulate
from nova_numa_guard import simulation
from tests import examples
from tests import testcase
from tests.unit.cli import base

MAIN = ('simulate', '--fleet', examples.FLEET, '--flavor-file',
        examples.FLAVORS)


class SimulateTestCase(base.CLITestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.simulation.guard_weighers_installed',
            lambda: False))


class OutputTest(SimulateTestCase):

    def test_json_shape(self):
        """Ensures -f json is {"requests": [...]} in the documented shape."""
        code, out, err = self.run_cli(*MAIN, '-f', 'json')
        self.assertEqual((0, ''), (code, err))
        document = json.loads(out)
        self.assertEqual(['requests'], list(document))
        self.assertEqual(5, len(document['requests']))
        for request in document['requests']:
            self.assertLessEqual({'flavor', 'stock', 'guard', 'suggestion',
                                  'hosts'}, set(request))
            self.assertLessEqual({'name', 'vcpus', 'ram', 'extra_specs'},
                                 set(request['flavor']))
            for run in ('stock', 'guard'):
                self.assertEqual({'host', 'capacity'}, set(request[run]))
                self.assertIsInstance(request[run]['capacity'], int)
                self.assertIsInstance(request[run]['host'], (str,
                                                             type(None)))
            suggestion = request['suggestion']
            self.assertTrue(suggestion is None or all(
                isinstance(v, str) for v in suggestion.values()))
            self.assertEqual(6, len(request['hosts']))
            for host in request['hosts']:
                self.assertLessEqual(
                    {'name', 'stock_passes', 'guard_passes', 'rejected_by',
                     'reason', 'weight'}, set(host))
                self.assertIsInstance(host['stock_passes'], bool)
                self.assertIsInstance(host['guard_passes'], bool)
                self.assertEqual(host['guard_passes'],
                                 host['weight'] is not None)
                self.assertEqual(host['guard_passes'] and
                                 host['stock_passes'],
                                 host['rejected_by'] is None)
        large = document['requests'][1]
        self.assertEqual({'host': 'four-node-128g', 'capacity': 7},
                         large['stock'])

    def test_yaml_is_the_same_document(self):
        """Ensures -f yaml gives what -f json gives."""
        _, out_json, _ = self.run_cli(*MAIN, '-f', 'json')
        code, out_yaml, _ = self.run_cli(*MAIN, '-f', 'yaml')
        self.assertEqual(0, code)
        self.assertEqual(json.loads(out_json), yaml.safe_load(out_yaml))

    def test_table_reads_in_80_columns(self):
        """Ensures the table tells the story and keeps to 80 columns."""
        code, out, err = self.run_cli(*MAIN)
        self.assertEqual((0, ''), (code, err))
        for line in out.splitlines():
            self.assertLessEqual(len(line), 80, line)
        self.assertIn('Flavor x1.large: 16 vCPUs, 100000 MB, no NUMA topology'
                      '\n  stock nova:     picks four-node-128g, capacity 4\n'
                      '  with the guard: no valid host, capacity 0\n'
                      '  suggestion:     hw:numa_nodes=2', out)
        self.assertIn('  two-node-64g-cxl-256g  #2 3.375       rejected\n'
                      '      NUMACellFitFilter: needs 65536 MB and 8 vCPUs in '
                      'one cell; largest cell 1\n'
                      '      holds 64510 MB and 12 CPUs\n', out)
        self.assertIn('capacity: how many guests of the flavor', out)

    def test_long_host_names_get_a_line_of_their_own(self):
        """Ensures a host name longer than its column does not run on."""
        request = {
            'flavor': {'name': 'f', 'vcpus': 1, 'ram': 512,
                       'extra_specs': {}, 'ports': [],
                       'numa_topology': False},
            'stock': {'host': None, 'capacity': 0},
            'guard': {'host': None, 'capacity': 0},
            'suggestion': None, 'suggestion_host': None,
            'hosts': [{'name': 'compute-%s.example.org' % ('x' * 50),
                       'stock_passes': True, 'guard_passes': False,
                       'rejected_by': 'NUMACellFitFilter',
                       'reason': 'needs ' + 'more ' * 30, 'weight': None,
                       'rank': None, 'stock_weight': 1.0, 'stock_rank': 1}]}
        text = simulate.render([request])
        for line in text.splitlines():
            self.assertLessEqual(len(line), 80, line)
        self.assertIn('\n  compute-xxx', text)
        self.assertIn('#1 1.000       rejected', text)

    def test_warnings_go_to_stderr(self):
        """Ensures what nova or the guard warned of reaches stderr."""
        self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.simulation.simulate',
            return_value=simulation.Report([], ['consume failed'])))
        code, out, err = self.run_cli(*MAIN, '-f', 'json')
        self.assertEqual((0, {'requests': []}, 'Warning: consume failed\n'),
                         (code, json.loads(out), err))


class ExitCodeTest(SimulateTestCase):

    def test_bad_input_is_one_line_and_exit_1(self):
        """Ensures bad files and flavors give exit 1 and one line."""
        bad_fleet = self.write('fleet.yaml', 'hosts: [{name: a}]\n')
        for args, expected in [
                (('--fleet', bad_fleet, '--flavor', 'vcpus=1,ram=512'),
                 bad_fleet + ': host a: cells: give exactly one of '
                 'capabilities, cells or live, got none'),
                (('--fleet', examples.FLEET, '--flavor', 'vcpus=1'),
                 '--flavor: ram: missing'),
                (('--fleet', examples.FLEET, '--flavor',
                  'name=x,vcpus=1,ram=512,hw:numa_nodes=0'),
                 'flavor x: nova rejects it: '),
                (('--fleet', examples.FLEET, '--flavor-file',
                  bad_fleet), bad_fleet + ': not JSON: ')]:
            code, out, err = self.run_cli('simulate', *args)
            self.assert_one_line_error(code, out, err, expected)

    def test_without_nova_says_what_to_install(self):
        """Ensures simulate without nova says so in one line, exit 1."""
        self.hide_nova()
        code, out, err = self.run_cli('simulate', '--fleet', examples.FLEET,
                                      '--flavor', 'vcpus=1,ram=512')
        self.assert_one_line_error(
            code, out, err, 'simulate runs nova\'s own code, and nova is not '
            'installed in this Python environment: run nova-numa-guard '
            'where nova-scheduler runs')
        self.assertIn('(pip install nova)', err)

    def test_usage_errors_exit_2(self):
        """Ensures missing options and unknown formats exit 2."""
        for args, expected in [
                (('--flavor', 'vcpus=1,ram=512'),
                 'the following arguments are required: --fleet'),
                (('--fleet', examples.FLEET),
                 'give at least one --flavor or a --flavor-file'),
                (('--fleet', examples.FLEET, '--flavor', 'vcpus=1,ram=512',
                  '-f', 'value'), "argument -f/--format: invalid choice: "
                 "'value'")]:
            code, out, err = self.run_cli('simulate', *args)
            self.assertEqual((2, ''), (code, out))
            self.assertIn(expected, err)


class _Stream(io.StringIO):

    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


class ProgressTest(testcase.TestCase):

    def _progress(self, tty=True):
        self.now = 100.0
        stream = _Stream(tty)
        return stream, simulate.Progress(stream, clock=lambda: self.now)

    def test_quick_runs_show_nothing(self):
        """Ensures a run shorter than the delay draws no bar."""
        stream, progress = self._progress()
        progress(1, 2)
        self.now += simulate.Progress.DELAY - 0.1
        progress(2, 2)
        progress.close()
        self.assertEqual('', stream.getvalue())

    def test_long_runs_draw_and_clear_a_bar(self):
        """Ensures a long run draws a bar on the terminal, then clears it."""
        stream, progress = self._progress()
        self.now += simulate.Progress.DELAY
        progress(5, 20)
        bar = 'simulating [#######-----------------------] 5/20, 3 s'
        self.assertEqual('\r' + bar, stream.getvalue())
        self.now += 0.01
        progress(6, 20)  # too soon after the last
        self.assertNotIn('6/20', stream.getvalue())
        progress.close()
        self.assertEqual('\r%s\r%s\r' % (bar, ' ' * len(bar)),
                         stream.getvalue())

    def test_no_bar_unless_a_terminal(self):
        """Ensures nothing is drawn when stderr is not a terminal."""
        stream, progress = self._progress(tty=False)
        self.now += 60
        progress(1, 2)
        progress.close()
        self.assertEqual('', stream.getvalue())
