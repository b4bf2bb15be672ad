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

import os

import fixtures
import hypothesis
from hypothesis import strategies as st
from oslo_config import cfg
import testtools

from nova_numa_guard import conf


class NodeReserveTest(testtools.TestCase):

    def test_valid_values(self):
        """Ensures every accepted form parses to (default, per-node)."""
        for text, expected in [
                ('', (0, {})), ('0', (0, {})), ('512', (512, {})),
                (' 1024 ', (1024, {})), ('0:2048', (0, {0: 2048})),
                ('0:2048, 1:1024', (0, {0: 2048, 1: 1024}))]:
            self.assertEqual(expected, conf.parse_node_reserve(text), text)

    def test_invalid_values_give_one_line_errors(self):
        """Ensures each bad value says what is wrong, on one line."""
        for text, problem in [
                ('0:abc', "'abc' is not a whole number"),
                ('-1', '-1 is negative'), ('0:-5', '-5 is negative'),
                ('0:1,0:2', 'node 0 listed twice'),
                ('0:1,2', "expected node:MB, got '2'"),
                ('x:1', "'x' is not a whole number")]:
            error = self.assertRaises(ValueError, conf.parse_node_reserve,
                                      text)
            self.assertIn(problem, str(error))
            self.assertNotIn('\n', str(error))

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(st.text(max_size=40))
    def test_any_text_parses_or_raises_value_error(self, text):
        """Ensures arbitrary text never raises anything but ValueError."""
        try:
            default, per_node = conf.parse_node_reserve(text)
        except ValueError as error:
            self.assertNotIn('\n', str(error))
        else:
            self.assertGreaterEqual(default, 0)
            self.assertTrue(all(v >= 0 for v in per_node.values()))

    def test_bad_value_in_a_config_file_fails_clearly(self):
        """Ensures a bad reserve in nova.conf fails when it is read."""
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(path, 'w') as f:
            f.write('[numa_guard]\nreserved_node_memory_mb = 0:abc\n')
        config = cfg.ConfigOpts()
        conf.register_opts(config)
        config(args=['--config-file', path])
        error = self.assertRaises(cfg.ConfigFileValueError, getattr,
                                  config.numa_guard,
                                  'reserved_node_memory_mb')
        self.assertIn('0:abc', str(error))


class ListOptsTest(testtools.TestCase):

    def test_list_opts_names_every_group(self):
        """Ensures oslo-config-generator sees the options with help."""
        groups = dict((group.name, opts) for group, opts in conf.list_opts())
        names = [opt.name for opt in groups['numa_guard']]
        for name in ('memory_source', 'reserved_node_memory_mb', 'cpu_fit',
                     'dry_run', 'non_numa_memory_estimate'):
            self.assertIn(name, names)
        for opts in groups.values():
            for opt in opts:
                self.assertTrue(opt.help.strip()[0].isupper(), opt.name)

    def test_entry_point_resolves(self):
        """Ensures the oslo.config.opts entry point is installed."""
        from stevedore import driver
        manager = driver.DriverManager('oslo.config.opts', 'nova_numa_guard')
        self.assertIs(conf.list_opts, manager.driver)
