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

"""devstack/plugin.sh phases under bash, on scratch nova.conf and tempest.conf.

devstack sources ``settings`` once and then ``plugin.sh stack <phase>`` for
each phase in one shell; so do these tests, with the stand-ins of
``fake-devstack.sh`` for devstack's functions.
"""

import os
import stat
import subprocess
import sys

import fixtures
from oslo_config import cfg

from nova_numa_guard.agent import main as agent_main
from nova_numa_guard import conf as guard_conf
from tests import testcase
from tests.unit.devstack import fake_ini

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
NOVA_FILTERS = ('ComputeFilter,ComputeCapabilitiesFilter,'
                'ImagePropertiesFilter,NUMATopologyFilter')
# What devstack's configure_nova writes that the plugin reads or keeps.
NOVA_CONF = """[DEFAULT]
debug = True

[filter_scheduler]
enabled_filters = %s

[cache]
enabled = True
backend = dogpile.cache.memcached
memcache_servers = localhost:11211
""" % NOVA_FILTERS
NOVA_CPU_CONF = """[DEFAULT]
host = compute1
"""
TEMPEST_CONF = """[compute-feature-enabled]
scheduler_enabled_filters = %s
""" % NOVA_FILTERS
MEMCACHED_CONF = "-m 64\n-p 11211\n-l 127.0.0.1\n"
CONTROLLER = 'key,n-api,n-cond,n-sch,n-cpu,placement-api,tempest'
SUBNODE = 'n-cpu,q-agt'
ALL_PHASES = ('install', 'post-config', 'extra', 'test-config')
AGENT = {'NOVA_NUMA_GUARD_AGENT': 'True',
         'NOVA_NUMA_GUARD_SIGNING_KEY': 's3cret'}


class DevstackPluginTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.path = {name: os.path.join(self.dir, name) for name in (
            'nova.conf', 'nova-cpu.conf', 'tempest.conf', 'memcached.conf',
            'nova-numa-guard-agent.conf', 'record')}
        for name, text in (('nova.conf', NOVA_CONF),
                           ('nova-cpu.conf', NOVA_CPU_CONF),
                           ('tempest.conf', TEMPEST_CONF),
                           ('memcached.conf', MEMCACHED_CONF)):
            with open(self.path[name], 'w') as f:
                f.write(text)

    def run_plugin(self, phases, services=CONTROLLER, check=True, **localrc):
        """Source settings, then plugin.sh for each phase, in one bash.

        :param phases: ``stack`` phases, or ``'unstack'``/``'clean'``.
        :returns: the CompletedProcess.
        """
        env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'FAKE_DEVSTACK_DIR': HERE,
            'FAKE_PYTHON': sys.executable,
            'FAKE_DEVSTACK_LOG': self.path['record'],
            'FAKE_BIN_DIR': '/opt/stack/data/venv/bin',
            'DEST': '/opt/stack',
            'NOVA_CONF_DIR': self.dir,
            'NOVA_CONF': self.path['nova.conf'],
            'NOVA_CPU_CONF': self.path['nova-cpu.conf'],
            'TEMPEST_CONFIG': self.path['tempest.conf'],
            'NOVA_FILTERS': NOVA_FILTERS,
            'MEMCACHE_SERVERS': 'localhost:11211',
            'SERVICE_HOST': '203.0.113.10',
            'LIBVIRT_GROUP': 'libvirt',
            'ENABLED_SERVICES': services,
            'NOVA_NUMA_GUARD_MEMCACHED_CONF': self.path['memcached.conf'],
        }
        env.update(localrc)
        script = ['set -o errexit',
                  'source "$FAKE_DEVSTACK_DIR/fake-devstack.sh"',
                  'source devstack/settings']
        for phase in phases:
            if phase in ('unstack', 'clean'):
                script.append('source devstack/plugin.sh %s' % phase)
            else:
                script.append('source devstack/plugin.sh stack %s' % phase)
        result = subprocess.run(
            ['bash', '-c', '\n'.join(script)], cwd=TOP, env=env,
            capture_output=True, text=True, timeout=120)
        if check:
            self.assertEqual(0, result.returncode, result.stderr)
        return result

    def read(self, name):
        with open(self.path[name]) as f:
            return f.read()

    def lines(self, name):
        return fake_ini.read(self.path[name])

    def record(self):
        if not os.path.exists(self.path['record']):
            return []
        with open(self.path['record']) as f:
            return f.read().splitlines()

    def test_stack_controller_with_agent(self):
        """Ensures that every phase configures nova, tempest and the agent."""
        self.run_plugin(ALL_PHASES, **AGENT)

        nova = self.lines('nova.conf')
        self.assertEqual(
            ['nova.scheduler.filters.all_filters',
             'nova_numa_guard.scheduler.filters.all_filters'],
            fake_ini.get_multiline(nova, 'filter_scheduler',
                                   'available_filters'))
        self.assertEqual(
            NOVA_FILTERS + ',NUMACellFitFilter',
            fake_ini.get(nova, 'filter_scheduler', 'enabled_filters'))
        self.assertEqual(
            'nova.scheduler.weights.all_weighers,'
            'nova_numa_guard.scheduler.weights.all_weighers',
            fake_ini.get(nova, 'filter_scheduler', 'weight_classes'))
        self.assertEqual(
            NOVA_FILTERS + ',NUMACellFitFilter',
            fake_ini.get(self.lines('tempest.conf'),
                         'compute-feature-enabled',
                         'scheduler_enabled_filters'))

        # nova-scheduler accepts its [numa_guard] as the plugin wrote it.
        conf = cfg.ConfigOpts()
        guard_conf.register_opts(conf)
        conf([], default_config_files=[self.path['nova.conf']])
        values = guard_conf.check_scheduler(conf)
        self.assertEqual('cache', values['memory_source'])
        self.assertEqual('s3cret', values['payload_signing_key'])
        self.assertFalse(values['dry_run'])
        self.assertEqual(1.0, values['locality_weight_multiplier'])

        agent_conf = self.path['nova-numa-guard-agent.conf']
        self.assertEqual(0o600, stat.S_IMODE(os.stat(agent_conf).st_mode))
        self.assertEqual([
            'define_plugin nova-numa-guard',
            'setup_develop /opt/stack/nova-numa-guard',
            'run_process nova-numa-guard-agent|'
            '/opt/stack/data/venv/bin/nova-numa-guard-agent '
            '--config-file %s --config-file %s|libvirt' % (
                self.path['nova-cpu.conf'], agent_conf),
        ], self.record())

        # The agent loads the files of its command line: the compute host's
        # name from nova-cpu.conf, devstack's memcached and the shared key.
        conf = agent_main.load_config([self.path['nova-cpu.conf'],
                                       agent_conf])
        self.assertEqual('compute1', conf.host)
        self.assertEqual(['localhost:11211'], conf.cache.memcache_servers)
        self.assertEqual('s3cret', conf.numa_guard.payload_signing_key)
        self.assertEqual(10, conf.numa_guard_agent.interval)
        self.assertEqual(60, conf.numa_guard_agent.ttl)
        self.assertIsNotNone(agent_main.open_store(conf))

    def test_stack_without_agent(self):
        """Ensures that the defaults judge on accounted data, no agent runs."""
        self.run_plugin(ALL_PHASES)

        nova = self.lines('nova.conf')
        self.assertEqual('accounted',
                         fake_ini.get(nova, 'numa_guard', 'memory_source'))
        self.assertEqual('', fake_ini.get(nova, 'numa_guard',
                                          'payload_signing_key'))
        self.assertEqual('False', fake_ini.get(nova, 'numa_guard', 'dry_run'))
        self.assertFalse(os.path.exists(
            self.path['nova-numa-guard-agent.conf']))
        self.assertEqual(['define_plugin nova-numa-guard',
                          'setup_develop /opt/stack/nova-numa-guard'],
                         self.record())

    def test_options_from_variables(self):
        """Ensures that NOVA_NUMA_GUARD_<OPTION> sets [numa_guard] option."""
        self.run_plugin(['post-config'], NOVA_NUMA_GUARD_DRY_RUN='yes',
                        NOVA_NUMA_GUARD_RESERVED_NODE_MEMORY_MB=(
                            '0:2048,1:1024'),
                        NOVA_NUMA_GUARD_CPU_FIT='False',
                        NOVA_NUMA_GUARD_MAX_DATA_AGE='45',
                        NOVA_NUMA_GUARD_LOCALITY_WEIGHT_MULTIPLIER='3.0')

        nova = self.lines('nova.conf')
        self.assertEqual(
            {'dry_run': 'True', 'reserved_node_memory_mb': '0:2048,1:1024',
             'cpu_fit': 'False', 'max_data_age': '45',
             'locality_weight_multiplier': '3.0',
             'memory_source': 'accounted'},
            {option: fake_ini.get(nova, 'numa_guard', option)
             for option in ('dry_run', 'reserved_node_memory_mb', 'cpu_fit',
                            'max_data_age', 'locality_weight_multiplier',
                            'memory_source')})
        # Variables left empty leave nova's default.
        self.assertEqual(
            [], fake_ini._option_lines(nova, 'numa_guard',
                                       'on_missing_live_data'))

    def test_stack_twice_changes_nothing(self):
        """Ensures that every phase run again gives the same files."""
        self.run_plugin(ALL_PHASES, NOVA_NUMA_GUARD_MEMCACHED_LISTEN='True',
                        **AGENT)
        first = {name: self.read(name) for name in (
            'nova.conf', 'tempest.conf', 'nova-numa-guard-agent.conf',
            'memcached.conf')}

        self.run_plugin(ALL_PHASES, NOVA_NUMA_GUARD_MEMCACHED_LISTEN='True',
                        **AGENT)

        self.assertEqual(first, {name: self.read(name) for name in first})
        self.assertEqual(1, self.record().count('restart_service memcached'))

    def test_unstack_restores(self):
        """Ensures that unstack stops the agent and restores the files."""
        self.run_plugin(ALL_PHASES, NOVA_NUMA_GUARD_MEMCACHED_LISTEN='True',
                        **AGENT)
        self.assertIn('-l 203.0.113.10', self.read('memcached.conf'))

        self.run_plugin(['unstack'], NOVA_NUMA_GUARD_MEMCACHED_LISTEN='True',
                        **AGENT)

        self.assertEqual(NOVA_CONF, self.read('nova.conf'))
        self.assertEqual(MEMCACHED_CONF, self.read('memcached.conf'))
        self.assertFalse(os.path.exists(
            self.path['nova-numa-guard-agent.conf']))
        self.assertEqual(['stop_process nova-numa-guard-agent',
                          'restart_service memcached'], self.record()[-2:])

    def test_unstack_keeps_operator_lists(self):
        """Ensures that unstack removes only the plugin's list entries."""
        fake_lines = fake_ini.set_multiline(
            self.lines('nova.conf'), 'filter_scheduler', 'available_filters',
            'nova.scheduler.filters.all_filters', 'my.filters.all')
        fake_lines = fake_ini.set_(fake_lines, 'filter_scheduler',
                                   'weight_classes',
                                   'nova.scheduler.weights.ram.RAMWeigher')
        with open(self.path['nova.conf'], 'w') as f:
            f.write(''.join(line + '\n' for line in fake_lines))
        self.run_plugin(['post-config'])
        nova = self.lines('nova.conf')
        self.assertEqual(
            ['nova.scheduler.filters.all_filters', 'my.filters.all',
             'nova_numa_guard.scheduler.filters.all_filters'],
            fake_ini.get_multiline(nova, 'filter_scheduler',
                                   'available_filters'))
        self.assertEqual(
            'nova.scheduler.weights.ram.RAMWeigher,'
            'nova_numa_guard.scheduler.weights.all_weighers',
            fake_ini.get(nova, 'filter_scheduler', 'weight_classes'))

        self.run_plugin(['unstack'])
        # iniadd rewrites a multi-valued option after the section header:
        # the lines move, the values are as they were.
        nova = self.lines('nova.conf')
        self.assertEqual(
            ['nova.scheduler.filters.all_filters', 'my.filters.all'],
            fake_ini.get_multiline(nova, 'filter_scheduler',
                                   'available_filters'))
        self.assertEqual(
            'nova.scheduler.weights.ram.RAMWeigher',
            fake_ini.get(nova, 'filter_scheduler', 'weight_classes'))
        self.assertEqual(
            NOVA_FILTERS,
            fake_ini.get(nova, 'filter_scheduler', 'enabled_filters'))
        self.assertNotIn('[numa_guard]', nova)

    def test_subnode_runs_only_the_agent(self):
        """Ensures that a compute subnode gets the agent and nothing else."""
        self.run_plugin(ALL_PHASES, services=SUBNODE,
                        NOVA_NUMA_GUARD_MEMCACHE_SERVERS='203.0.113.10:11211',
                        NOVA_NUMA_GUARD_MEMCACHED_LISTEN='True', **AGENT)

        self.assertEqual(NOVA_CONF, self.read('nova.conf'))
        self.assertEqual(TEMPEST_CONF, self.read('tempest.conf'))
        self.assertEqual(MEMCACHED_CONF, self.read('memcached.conf'))
        agent_conf = self.path['nova-numa-guard-agent.conf']
        self.assertEqual(
            'run_process nova-numa-guard-agent|'
            '/opt/stack/data/venv/bin/nova-numa-guard-agent '
            '--config-file %s --config-file %s|libvirt' % (
                self.path['nova-cpu.conf'], agent_conf),
            self.record()[-1])
        conf = agent_main.load_config([self.path['nova-cpu.conf'],
                                       agent_conf])
        self.assertEqual(['203.0.113.10:11211'], conf.cache.memcache_servers)

        self.run_plugin(['unstack'], services=SUBNODE, **AGENT)
        self.assertFalse(os.path.exists(agent_conf))
        self.assertEqual(NOVA_CONF, self.read('nova.conf'))

    def test_agent_needs_the_shared_key(self):
        """Ensures that the agent without a signing key stops devstack."""
        result = self.run_plugin(['install', 'post-config'], check=False,
                                 NOVA_NUMA_GUARD_AGENT='True')

        self.assertEqual(1, result.returncode)
        self.assertIn('NOVA_NUMA_GUARD_SIGNING_KEY', result.stderr)

    def test_clean_uninstalls(self):
        """Ensures that clean undoes the configuration and uninstalls."""
        self.run_plugin(ALL_PHASES, **AGENT)
        self.run_plugin(['clean'], **AGENT)

        self.assertEqual(NOVA_CONF, self.read('nova.conf'))
        self.assertEqual('pip_uninstall nova-numa-guard', self.record()[-1])
