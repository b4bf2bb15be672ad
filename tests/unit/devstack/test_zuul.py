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

""".zuul.yaml: the jobs, their parents, the plugin and the files they use.

Zuul cannot run here; these checks keep the file right on paper.
"""

import configparser
import os
import re

import yaml

from tests import testcase

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
PLUGIN_URL = 'https://opendev.org/openstack/nova-numa-guard'


def _load(path):
    with open(os.path.join(TOP, path)) as f:
        return yaml.safe_load(f)


class ZuulConfigTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        config = _load('.zuul.yaml')
        self.jobs = {item['job']['name']: item['job']
                     for item in config if 'job' in item}
        [self.project] = [item['project'] for item in config
                          if 'project' in item]

    def test_jobs_and_parents(self):
        """Ensures that each job has the parent its checks need."""
        self.assertEqual(
            {'nova-numa-guard-tox-functional': 'openstack-tox-functional',
             'nova-numa-guard-devstack': 'devstack',
             'nova-numa-guard-devstack-multinode':
                 'nova-numa-guard-devstack'},
            {name: job['parent'] for name, job in self.jobs.items()})

    def test_project_runs_unit_pep8_docs_releasenotes_and_ours(self):
        """Ensures that the project runs the standard and its own jobs."""
        # unit tests and pep8, docs, release notes: openstack-zuul-jobs'
        # templates, which run these tox environments.
        self.assertEqual(['openstack-python3-jobs',
                          'publish-openstack-docs-pti',
                          'release-notes-jobs-python3'],
                         self.project['templates'])
        tox = configparser.ConfigParser(interpolation=None)
        tox.read(os.path.join(TOP, 'tox.ini'))
        for env in ('pep8', 'docs', 'releasenotes', 'functional'):
            self.assertIn('testenv:%s' % env, tox.sections())
        self.assertEqual(sorted(self.jobs), sorted(
            self.project['check']['jobs']))
        for name in self.project['gate']['jobs']:
            self.assertIn(name, self.jobs)
            self.assertNotIn('voting', self.jobs[name])

    def test_devstack_job_enables_the_plugin_with_the_agent(self):
        """Ensures that the devstack job enables the plugin and its agent."""
        job = self.jobs['nova-numa-guard-devstack']
        self.assertEqual({'nova-numa-guard': PLUGIN_URL},
                         job['vars']['devstack_plugins'])
        localrc = job['vars']['devstack_localrc']
        self.assertIs(True, localrc['NOVA_NUMA_GUARD_AGENT'])
        self.assertTrue(localrc['NOVA_NUMA_GUARD_SIGNING_KEY'])
        self.assertIs(True, job['vars']['smoke_agent'])
        self.assertEqual(
            {'debug': True},
            job['vars']['devstack_local_conf']['post-config']['$NOVA_CONF'][
                'DEFAULT'])

    def test_multinode_subnode_runs_the_agent_with_the_same_key(self):
        """Ensures that the subnode's agent shares the controller's key."""
        controller = self.jobs['nova-numa-guard-devstack']['vars'][
            'devstack_localrc']
        job = self.jobs['nova-numa-guard-devstack-multinode']
        subnode = job['group-vars']['subnode']['devstack_localrc']
        self.assertIs(True, subnode['NOVA_NUMA_GUARD_AGENT'])
        self.assertEqual(controller['NOVA_NUMA_GUARD_SIGNING_KEY'],
                         subnode['NOVA_NUMA_GUARD_SIGNING_KEY'])
        self.assertRegex(subnode['NOVA_NUMA_GUARD_MEMCACHE_SERVERS'],
                         r"hostvars\['controller'\].*:11211$")
        self.assertIs(True, job['vars']['devstack_localrc'][
            'NOVA_NUMA_GUARD_MEMCACHED_LISTEN'])

    def test_localrc_variables_are_the_plugins(self):
        """Ensures that every NOVA_NUMA_GUARD_* the jobs set is a setting."""
        with open(os.path.join(TOP, 'devstack', 'settings')) as f:
            settings = set(re.findall(r'^(NOVA_NUMA_GUARD_\w+)=', f.read(),
                                      re.M))
        job = self.jobs['nova-numa-guard-devstack-multinode']
        names = (set(self.jobs['nova-numa-guard-devstack']['vars'][
            'devstack_localrc']) | set(job['vars']['devstack_localrc']) |
            set(job['group-vars']['subnode']['devstack_localrc']))
        self.assertEqual(set(), names - settings)

    def test_referenced_files_exist(self):
        """Ensures that the playbook and the smoke script exist."""
        job = self.jobs['nova-numa-guard-devstack']
        self.assertEqual([{'zuul': 'openstack/devstack'}], job['roles'])
        plays = _load(job['run'])
        self.assertEqual(['orchestrate-devstack'], plays[0]['roles'])
        [task] = plays[1]['tasks']
        script = task['command'].split('/nova-numa-guard/', 1)[1]
        self.assertEqual('devstack/smoke.sh', script)
        self.assertTrue(os.access(os.path.join(TOP, script), os.X_OK))
        with open(os.path.join(TOP, 'bindep.txt')) as f:
            self.assertIn('memcached [test]', f.read())
