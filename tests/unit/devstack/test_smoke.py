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

"""devstack/smoke.sh against stand-ins of openstackclient and the log.

The real run needs a devstack (the Zuul job); these tests check the script's
own logic: the flavors it makes, what it requires of the log and of
memcached, and that it fails on what is missing.
"""

import os
import socket
import subprocess

import fixtures

from tests import memcached_fixture
from tests import testcase

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
# Answers like openstackclient's for the calls smoke.sh makes; every call
# is recorded. Servers named *-vnuma become ACTIVE, the others ERROR.
OPENSTACK = r"""#!/bin/bash
echo "$*" >> "$SMOKE_TEST_CALLS"
case "$1 $2" in
    "image list") echo image-1 ;;
    "compute service") echo compute1 ;;
    "server show")
        if [[ "$*" == *"-c status"* ]]; then
            if [[ "${@: -1}" == *-vnuma ]]; then echo ACTIVE; else
                echo ERROR; fi
        else
            echo "{'code': 500, 'message': 'No valid host was found. '}"
        fi ;;
esac
"""
GUARD = """#!/bin/bash
echo "$*" >> "$SMOKE_TEST_CALLS"
echo '{"hw:numa_nodes": "2", "hw:cpu_sockets": "2"}'
"""
LOG = """#!/bin/bash
cat "$SMOKE_TEST_LOG"
"""
# Nodes of 65872056 and 66058400 kB: the largest is 64510 MB.
BIG = 64510 + 1024
SCHEDULER_LOG = """\
DEBUG compute1, compute1 fails NUMA cell fit: needs %(big)d MB and 2 vCPUs \
in one cell; largest cell 1 holds 64510 MB and 12 CPUs
INFO NUMACellFitFilter removed the only host: the flavor needs %(big)d MB \
and 2 vCPUs in one NUMA cell; largest cell on any host is 64510 MB
DEBUG compute1, compute1 fails NUMA cell fit: needs 64509 MB free in one \
cell; live free: cell 0 10501 MB, cell 1 2769 MB
""" % {'big': BIG}


class SmokeScriptTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        for name, text in (('openstack', OPENSTACK), ('guard', GUARD),
                           ('log', LOG)):
            path = os.path.join(self.dir, 'bin', name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(text)
            os.chmod(path, 0o755)
        self.calls = os.path.join(self.dir, 'calls')
        self.log = os.path.join(self.dir, 'scheduler.log')
        self.write_log(SCHEDULER_LOG)
        self.add_nodes(65872056, 66058400)

    def add_nodes(self, *sizes_kb):
        for node, kb in enumerate(sizes_kb):
            path = os.path.join(self.dir, 'sys', 'devices', 'system', 'node',
                                'node%d' % node)
            os.makedirs(path)
            with open(os.path.join(path, 'meminfo'), 'w') as f:
                f.write('Node %d MemTotal:  %d kB\n'
                        'Node %d MemFree:   1024 kB\n' % (node, kb, node))

    def write_log(self, text):
        with open(self.log, 'w') as f:
            f.write(text)

    def smoke(self, agent=False, memcached='127.0.0.1:9'):
        env = {
            'PATH': '%s:%s' % (os.path.join(self.dir, 'bin'),
                               os.environ.get('PATH', '/usr/bin:/bin')),
            'SMOKE_TEST_CALLS': self.calls,
            'SMOKE_TEST_LOG': self.log,
            'SMOKE_LOG_CMD': os.path.join(self.dir, 'bin', 'log'),
            'SMOKE_SYSFS': os.path.join(self.dir, 'sys'),
            'SMOKE_MEMCACHED': memcached,
            'NOVA_NUMA_GUARD_CLI': os.path.join(self.dir, 'bin', 'guard'),
            'NOVA_NUMA_GUARD_AGENT': str(agent),
        }
        return subprocess.run(
            ['bash', os.path.join(TOP, 'devstack', 'smoke.sh')], env=env,
            capture_output=True, text=True, timeout=60)

    def recorded(self):
        with open(self.calls) as f:
            return f.read().splitlines()

    def memcached_with_record(self, host):
        server = self.useFixture(memcached_fixture.Memcached())
        if host:
            with socket.create_connection(('127.0.0.1', server.port)) as s:
                s.sendall(b'set nova_numa_guard:mem:%s 0 60 2\r\n{}\r\n' %
                          host.encode())
                self.assertEqual(b'STORED\r\n', s.recv(64))
        return server.url

    def test_passes_with_the_agent(self):
        """Ensures that the script makes both flavors and checks the log."""
        result = self.smoke(agent=True,
                            memcached=self.memcached_with_record('compute1'))

        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn('nova-numa-guard smoke test passed', result.stdout)
        calls = self.recorded()
        self.assertIn('flavor create --vcpus 2 --ram %d --disk 1 '
                      'nng-smoke-big' % BIG, calls)
        self.assertIn('flavor-specs --vcpus 2 --ram %d --sysfs-root %s '
                      '-f json' % (BIG, os.path.join(self.dir, 'sys')), calls)
        self.assertIn('flavor create --vcpus 2 --ram %d --disk 1 --property '
                      'hw:numa_nodes=2 --property hw:cpu_sockets=2 '
                      'nng-smoke-vnuma' % BIG, calls)
        self.assertIn('flavor create --vcpus 2 --ram 64509 --disk 1 '
                      'nng-smoke-full', calls)
        # Servers and flavors are removed on exit.
        self.assertEqual('flavor delete nng-smoke-big nng-smoke-vnuma '
                         'nng-smoke-full', calls[-1])

    def test_needs_the_filter_reason_in_the_log(self):
        """Ensures that No valid host without the filter's lines fails."""
        self.write_log('INFO nothing of the guard\n')

        result = self.smoke()

        self.assertEqual(1, result.returncode)
        self.assertIn('no NUMACellFitFilter rejection of %d MB' % BIG,
                      result.stderr)

    def test_needs_the_memory_record_in_memcached(self):
        """Ensures that a host without a record in memcached fails."""
        result = self.smoke(agent=True,
                            memcached=self.memcached_with_record(None))

        self.assertEqual(1, result.returncode)
        self.assertIn('no memory record of compute1', result.stderr)

    def test_needs_trusted_live_figures(self):
        """Ensures that a rejection on accounted figures only fails."""
        self.write_log(SCHEDULER_LOG.replace('live free', 'accounted free'))

        result = self.smoke(agent=True,
                            memcached=self.memcached_with_record('compute1'))

        self.assertEqual(1, result.returncode)
        self.assertIn('no rejection on live figures', result.stderr)

    def test_one_node_host_stops_at_once(self):
        """Ensures that a host with one NUMA node is refused with why."""
        os.rename(os.path.join(self.dir, 'sys', 'devices', 'system', 'node',
                               'node1'), os.path.join(self.dir, 'node1'))

        result = self.smoke()

        self.assertEqual(1, result.returncode)
        self.assertIn('has 1 NUMA node(s)', result.stderr)
        self.assertFalse(os.path.exists(self.calls))
