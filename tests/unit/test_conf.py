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

import ddt
import fixtures
import hypothesis
from hypothesis import strategies as st
from oslo_config import cfg

from nova_numa_guard import conf

from tests import testcase


class NodeReserveTest(testcase.TestCase):

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


class ListOptsTest(testcase.TestCase):

    def test_list_opts_names_every_group(self):
        """Ensures oslo-config-generator sees the options with help."""
        groups = dict((group.name, opts) for group, opts in conf.list_opts())
        names = [opt.name for opt in groups['numa_guard']]
        for name in ('memory_source', 'reserved_node_memory_mb', 'cpu_fit',
                     'dry_run', 'non_numa_memory_estimate',
                     'locality_weight_multiplier'):
            self.assertIn(name, names)
        self.assertIn('physnet_interfaces',
                      [opt.name for opt in groups['numa_guard_agent']])
        for opts in groups.values():
            for opt in opts:
                self.assertTrue(opt.help.strip()[0].isupper(), opt.name)

    def test_entry_point_resolves(self):
        """Ensures the oslo.config.opts entry point is installed."""
        from stevedore import driver
        manager = driver.DriverManager('oslo.config.opts', 'nova_numa_guard')
        self.assertIs(conf.list_opts, manager.driver)


class StrictNumbersTest(testcase.TestCase):

    def test_numbers_are_plain_ascii_digits_within_bounds(self):
        """Ensures 1_000, non-ASCII digits and huge reserves are refused."""
        for text, problem in [
                ('1_000', "'1_000' is not a whole number"),
                ('\u0661\u0662', 'is not a whole number'),
                ('0:\u0661', 'is not a whole number'),
                ('99999999999999999999999999', 'is not a whole number'),
                ('67108865', 'is more than 67108864'),
                ('4096:1', 'is more than 4095')]:
            error = self.assertRaises(ValueError, conf.parse_node_reserve,
                                      text)
            self.assertIn(problem, str(error))


class CheckSchedulerTest(testcase.TestCase):
    """[numa_guard] is read and cross-checked when the scheduler starts."""

    def setUp(self):
        super().setUp()
        self.live_dir = self.useFixture(fixtures.TempDir()).path

    def load(self, group='numa_guard', register=conf.register_opts,
             **values):
        """A ConfigOpts read from a file with ``values`` in ``group``.

        oslo.config checks a value from a file when it is read, as in
        nova.conf, not when it is set.
        """
        path = os.path.join(self.live_dir, 'nova.conf')
        with open(path, 'w') as f:
            f.write('[%s]\n' % group)
            for name, value in values.items():
                f.write('%s = %s\n' % (name, value))
        config = cfg.ConfigOpts()
        register(config)
        config(args=['--config-file', path])
        return config

    def assert_refused(self, message, **values):
        error = self.assertRaises(conf.ConfigError, conf.check_scheduler,
                                  self.load(**values))
        self.assertIn(message, str(error))
        self.assertEqual(1, len(str(error).splitlines()))

    def test_defaults_pass(self):
        """Ensures the defaults are a valid configuration."""
        values = conf.check_scheduler(self.load())
        self.assertEqual('accounted', values['memory_source'])
        self.assertEqual((0, {}), values['reserved_node_memory_mb'])

    def test_bad_values_stop_the_start_naming_the_option(self):
        """Ensures each bad value is refused in one line naming it."""
        self.assert_refused(
            'live_data_memo_seconds = 40.0 must be less than [numa_guard] '
            'max_data_age = 30', live_data_memo_seconds=40)
        self.assert_refused('[numa_guard] max_data_age: Should be greater '
                            'than or equal to 1', max_data_age=0)
        self.assert_refused('[numa_guard] cache_timeout: Should be less '
                            'than or equal to 60', cache_timeout='inf')
        self.assert_refused('[numa_guard] cache_timeout = nan is not a '
                            'number of seconds', cache_timeout='nan')
        self.assert_refused('[numa_guard] live_data_memo_seconds: Should be '
                            'less than or equal to 3600',
                            live_data_memo_seconds='inf')
        self.assert_refused('[numa_guard] reserved_node_memory_mb: ',
                            reserved_node_memory_mb='1_000')

    def test_file_source_needs_an_existing_absolute_directory(self):
        """Ensures live_data_path is checked with memory_source = file."""
        missing = os.path.join(self.live_dir, 'missing')
        for path in (missing, '', 'relative/dir'):
            self.assert_refused('live_data_path = %r must be an absolute '
                                'path to an existing directory' % path,
                                memory_source='file', live_data_path=path)
        values = conf.check_scheduler(self.load(
            memory_source='file', live_data_path=self.live_dir))
        self.assertEqual(self.live_dir, values['live_data_path'])

    def test_agent_secret_is_not_echoed(self):
        """Ensures a malformed host_signing_key is refused, not shown."""
        config = self.load('numa_guard_agent', conf.register_agent_opts,
                           host_signing_key='not-hex-abc')
        error = self.assertRaises(conf.ConfigError, conf.check, config,
                                  'numa_guard_agent')
        self.assertEqual('[numa_guard_agent] host_signing_key: must be the '
                         '64 hex characters --print-host-key prints (the '
                         'value is secret: not shown)', str(error))


@ddt.ddt
class PhysnetInterfacesTest(testcase.TestCase):
    """[numa_guard_agent] physnet_interfaces: physnet:interface pairs."""

    @ddt.named_data(
        ('empty', '', {}),
        ('one-pair', 'physnet1:ens2f0', {'physnet1': ('ens2f0',)}),
        ('physnet-twice-in-order', 'physnet1:ens2f1, physnet1:ens2f0',
         {'physnet1': ('ens2f1', 'ens2f0')}),
        ('two-physnets', 'physnet1:ens2f0,physnet2:bond0.100',
         {'physnet1': ('ens2f0',), 'physnet2': ('bond0.100',)}),
        ('one-nic-two-physnets', 'a:ens2f0,b:ens2f0',
         {'a': ('ens2f0',), 'b': ('ens2f0',)}),
    )
    def test_valid_values(self, text, expected):
        """Ensures that each accepted form parses to physnet -> NICs."""
        self.assertEqual(expected, conf.parse_physnet_interfaces(text))

    @ddt.named_data(
        ('no-colon', 'physnet1', "'physnet1' is not physnet:interface"),
        ('equals', 'physnet1=ens2f0', "'physnet1=ens2f0' is not physnet:"),
        ('no-interface', 'physnet1:', "'physnet1:' is not physnet:"),
        ('no-physnet', ':ens2f0', "':ens2f0' is not physnet:interface"),
        ('trailing-comma', 'physnet1:ens2f0,', "'' is not physnet:"),
        ('two-colons', 'a:b:c', "'b:c' is not a network interface name"),
        ('interface-too-long', 'a:abcdefghijklmnop',
         "'abcdefghijklmnop' is not a network interface name"),
        ('slash-in-interface', 'a:ens/1', "'ens/1' is not a network"),
        ('dot-dot', 'a:..', "'..' is not a network interface name"),
        ('space-in-physnet', 'phys net:ens1', "physnet 'phys net' is not"),
        ('physnet-too-long', 'p' * 65 + ':ens1', 'is not a physical network'),
        ('pair-twice', 'a:ens1,a:ens1', 'a:ens1 is listed twice'),
    )
    def test_invalid_values_give_one_line_errors(self, text, problem):
        """Ensures that each bad value says what is wrong, on one line."""
        error = self.assertRaises(ValueError, conf.parse_physnet_interfaces,
                                  text)
        self.assertIn(problem, str(error))
        self.assertNotIn('\n', str(error))

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(st.text(max_size=60))
    def test_any_text_parses_or_raises_value_error(self, text):
        """Ensures that arbitrary text gives a mapping or a ValueError."""
        try:
            mapping = conf.parse_physnet_interfaces(text)
        except ValueError as error:
            self.assertNotIn('\n', str(error))
            return
        for physnet, interfaces in mapping.items():
            self.assertTrue(physnet and ':' not in physnet)
            self.assertEqual(len(interfaces), len(set(interfaces)))
            for interface in interfaces:
                self.assertTrue(0 < len(interface) <= conf.MAX_IFNAME)
                self.assertNotIn('/', interface)

    def test_agent_check_names_the_option(self):
        """Ensures that a bad value in a file is one line naming the option."""
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'agent.conf')
        with open(path, 'w') as f:
            f.write('[numa_guard_agent]\nphysnet_interfaces = physnet1\n')
        config = cfg.ConfigOpts()
        conf.register_agent_opts(config)
        config(args=['--config-file', path])
        error = self.assertRaises(conf.ConfigError, conf.check, config,
                                  'numa_guard_agent')
        self.assertEqual("[numa_guard_agent] physnet_interfaces: 'physnet1' "
                         "is not physnet:interface", str(error))


class MultiplierTest(testcase.TestCase):

    def test_non_finite_multiplier_stops_the_scheduler(self):
        """Ensures that nan is refused at start, naming the option."""
        config = cfg.ConfigOpts()
        conf.register_opts(config)
        config([])
        config.set_override('locality_weight_multiplier', float('nan'),
                            group='numa_guard')
        # Registered groups share their options' state between ConfigOpts.
        self.addCleanup(config.clear_override, 'locality_weight_multiplier',
                        group='numa_guard')
        error = self.assertRaises(conf.ConfigError, conf.check_scheduler,
                                  config)
        self.assertEqual('[numa_guard] locality_weight_multiplier = nan is '
                         'not a finite number', str(error))

    def test_help_says_how_it_combines_with_nova_weighers(self):
        """Ensures that the help names the weighers it adds up with."""
        opt = {o.name: o for o in conf.numa_guard_opts}[
            'locality_weight_multiplier']
        for text in ('RAMWeigher', 'PCIWeigher', 'Possible values:',
                     'Related options:', 'numa_locality_weight_multiplier'):
            self.assertIn(text, opt.help)
