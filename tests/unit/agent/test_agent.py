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

"""nova-numa-guard-agent: command line, payload, publishing, outages."""

import io
import json
import logging
import os
import time

import fixtures
from oslo_config import cfg
import testtools

from nova_numa_guard.agent import main
from nova_numa_guard import payload
from nova_numa_guard.sources import cache
from tests import fake_sysfs
from tests import memcached_fixture


class AgentTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.root = fake_sysfs.write_seed_tree(os.path.join(self.tmp, 'sys'))
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', self.stdout))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.stderr))
        # oslo.log's setup() would rewire the test runner's logging.
        self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.agent.main.logging.setup'))
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_numa_guard', level=logging.DEBUG,
            format='%(levelname)s %(message)s'))

    def write_conf(self, text):
        path = os.path.join(self.tmp, 'nova.conf')
        with open(path, 'w') as handle:
            handle.write(text)
        return path

    def printed(self):
        return json.loads(self.stdout.getvalue())


class CommandLineTest(AgentTestCase):

    def test_once_print_prints_the_seed_payload(self):
        """Ensures --once --print prints one payload with the seed figures."""
        self.assertEqual(0, main.main(['--once', '--print', '--sysfs-root',
                                       self.root, '--host', 'compute1']))
        data = self.printed()
        trusted = payload.verify(json.dumps(data), 'compute1', None, 30,
                                 time.time())
        self.assertEqual(fake_sysfs.SEED_FREE_MB, trusted.free_mb)
        self.assertEqual(fake_sysfs.SEED_AVAILABLE_MB, trusted.available_mb)
        self.assertEqual(1, data['schema'])
        node0 = data['nodes'][0]
        self.assertEqual((64328, [10, 21], {'2048': {'total': 0, 'free': 0},
                                            '1048576': {'total': 0,
                                                        'free': 0}}),
                         (node0['mem_total_mb'], node0['distances'],
                          node0['hugepages']))
        self.assertEqual(
            [('0000:03:00.0', 0, []), ('0000:81:00.0', 1, ['ens1f0']),
             ('0000:81:00.1', 1, ['ens1f1'])],
            [(d['address'], d['numa_node'], d['net'])
             for d in data['devices']])
        self.assertNotIn('signature', data)

    def test_help_is_man_style(self):
        """Ensures --help reads like a man page."""
        exc = self.assertRaises(SystemExit, main.main, ['--help'])
        self.assertEqual(0, exc.code)
        text = self.stdout.getvalue()
        for section in ('NAME', 'DESCRIPTION', 'FILES', 'EXIT STATUS',
                        'EXAMPLES', '--sysfs-root PATH', '--config-file PATH',
                        'mem_available_mb'):
            self.assertIn(section, text)

    def test_host_and_key_from_nova_conf(self):
        """Ensures [DEFAULT] host names the payload and the key signs it."""
        conf = self.write_conf('[DEFAULT]\nhost = cn-17\n[numa_guard]\n'
                               'payload_signing_key = s3cret\n')
        self.assertEqual(0, main.main(['--once', '--print', '--config-file',
                                       conf, '--sysfs-root', self.root]))
        data = self.printed()
        self.assertEqual('cn-17', data['host'])
        payload.verify(self.stdout.getvalue(), 'cn-17',
                       payload.host_key('s3cret', 'cn-17'), 30, time.time())

    def test_host_signing_key_signs_for_this_host_only(self):
        """Ensures the host's own key signs; the secret need not be there."""
        host_key = payload.host_key('s3cret', 'cn-17')
        conf = self.write_conf('[DEFAULT]\nhost = cn-17\n'
                               '[numa_guard_agent]\nhost_signing_key = %s\n'
                               % host_key)
        self.assertEqual(0, main.main(['--once', '--print', '--config-file',
                                       conf, '--sysfs-root', self.root]))
        printed = self.stdout.getvalue()
        payload.verify(printed, 'cn-17', host_key, 30, time.time())
        exc = self.assertRaises(
            payload.Untrusted, payload.verify,
            printed.replace('"cn-17"', '"cn-18"'), 'cn-18',
            payload.host_key('s3cret', 'cn-18'), 30, time.time())
        self.assertEqual(payload.BAD_SIGNATURE, exc.code)

    def test_print_host_key(self):
        """Ensures --print-host-key prints the derived key of --host."""
        conf = self.write_conf('[numa_guard]\npayload_signing_key = s3cret\n')
        self.assertEqual(0, main.main(['--print-host-key', '--host', 'cn-17',
                                       '--config-file', conf]))
        self.assertEqual(payload.host_key('s3cret', 'cn-17') + '\n',
                         self.stdout.getvalue())
        self.assertEqual(2, main.main(['--print-host-key', '--host', 'x']))
        self.assertIn('needs [numa_guard] payload_signing_key',
                      self.stderr.getvalue())

    def test_host_flag_overrides_nova_conf(self):
        """Ensures --host wins over [DEFAULT] host."""
        conf = self.write_conf('[DEFAULT]\nhost = cn-17\n')
        main.main(['--once', '--print', '--config-file', conf, '--host',
                   'other', '--sysfs-root', self.root])
        self.assertEqual('other', self.printed()['host'])

    def test_sysfs_root_from_config(self):
        """Ensures [numa_guard_agent] sysfs_root is where sysfs is read."""
        conf = self.write_conf('[numa_guard_agent]\nsysfs_root = %s\n' %
                               self.root)
        main.main(['--once', '--print', '--config-file', conf, '--host', 'h'])
        self.assertEqual(2, len(self.printed()['nodes']))

    def test_missing_sysfs_fails_with_one_line(self):
        """Ensures a tree without nodes exits 1 with the file named."""
        empty = os.path.join(self.tmp, 'empty')
        self.assertEqual(1, main.main(['--once', '--print', '--sysfs-root',
                                       empty, '--host', 'h']))
        error = self.stderr.getvalue()
        self.assertEqual(1, len(error.splitlines()))
        self.assertIn('nothing published: %s' % empty, error)
        self.assertIn('cannot list NUMA nodes', error)

    def test_missing_config_file_exits_2(self):
        """Ensures a missing --config-file is a start-up error."""
        self.assertEqual(2, main.main(['--once', '--config-file',
                                       '/nonexistent/nova.conf']))
        self.assertIn('/nonexistent/nova.conf', self.stderr.getvalue())

    def test_bad_config_value_exits_2(self):
        """Ensures a bad option value is a one-line error, exit 2."""
        conf = self.write_conf('[numa_guard_agent]\ninterval = often\n')
        self.assertEqual(2, main.main(['--print', '--config-file', conf]))
        self.assertEqual(1, len(self.stderr.getvalue().splitlines()))
        self.assertIn('interval', self.stderr.getvalue())

    def test_unpickling_backend_exits_2(self):
        """Ensures a memcached backend that unpickles is refused at start."""
        conf = self.write_conf('[cache]\nenabled = True\nbackend = '
                               'oslo_cache.memcache_pool\n')
        self.assertEqual(2, main.main(['--once', '--config-file', conf,
                                       '--sysfs-root', self.root]))
        error = self.stderr.getvalue()
        self.assertEqual(1, len(error.splitlines()))
        self.assertIn('oslo_cache.memcache_pool cannot hold live memory '
                      'payloads', error)

    def test_missing_backend_library_exits_2(self):
        """Ensures a backend whose library is missing is a one-line error."""
        conf = self.write_conf('[cache]\nenabled = True\nbackend = '
                               'dogpile.cache.redis\n')
        self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.sources.cache.cache_core.'
            'configure_cache_region',
            side_effect=ImportError("No module named 'redis'")))
        self.assertEqual(2, main.main(['--once', '--config-file', conf,
                                       '--sysfs-root', self.root]))
        error = self.stderr.getvalue()
        self.assertEqual(1, len(error.splitlines()))
        self.assertIn("needs a library that is not installed: No module "
                      "named 'redis'", error)

    def test_publishing_without_a_cache_exits_2(self):
        """Ensures [cache] must be enabled unless --print is given."""
        self.assertEqual(2, main.main(['--once', '--sysfs-root', self.root]))
        self.assertIn('[cache] enabled = True', self.stderr.getvalue())

    def test_partial_sysfs_publishes_the_rest(self):
        """Ensures an unreadable node is left out, the rest published."""
        os.unlink(os.path.join(self.root, 'devices', 'system', 'node',
                               'node1', 'meminfo'))
        self.assertEqual(0, main.main(['--once', '--print', '--sysfs-root',
                                       self.root, '--host', 'h']))
        self.assertEqual([0], [n['id'] for n in self.printed()['nodes']])
        self.assertIn('Cannot read part of sysfs', self.log.output)


class PublishTest(AgentTestCase):
    """Against a real memcached on 127.0.0.1."""

    def setUp(self):
        super().setUp()
        self.memcached = self.useFixture(memcached_fixture.Memcached())
        self.conf_file = self.write_conf(
            '[DEFAULT]\nhost = compute1\n[cache]\nenabled = True\n'
            'backend = dogpile.cache.pymemcache\nmemcache_servers = %s\n'
            '[numa_guard_agent]\nttl = 45\n' % self.memcached.url)

    def reader(self):
        conf = cfg.ConfigOpts()
        main.guard_conf.register_opts(conf)
        conf(['--config-file', self.conf_file])
        return cache.CacheSource(conf)

    def agent(self):
        conf = main.load_config([self.conf_file])
        return main.Agent(conf, 'compute1', self.root, main.open_store(conf))

    def test_agent_publishes_what_the_scheduler_reads(self):
        """Ensures the agent's payload reaches the cache source."""
        self.assertEqual(0, main.main(['--once', '--config-file',
                                       self.conf_file, '--sysfs-root',
                                       self.root]))
        live = self.reader().live_free_mb(['compute1'])
        self.assertEqual({'compute1': fake_sysfs.SEED_FREE_MB}, dict(live))
        # Stored raw, with the TTL of [numa_guard_agent] ttl.
        key = cache.Store(self.reader()._conf, 0.5)._mangle(
            cache.cache_key('compute1'))
        reply = self.memcached.command(b'mg %s t f\r\n' % key.encode())
        self.assertRegex(reply.decode(), r'^HD t4[0-5] f0\r\n$')

    def test_agent_survives_a_cache_outage(self):
        """Ensures failures are logged once and publishing resumes."""
        agent = self.agent()
        self.assertTrue(agent.publish_once())
        self.memcached.stop()
        self.assertFalse(agent.publish_once())
        self.assertFalse(agent.publish_once())
        self.assertEqual(1, self.log.output.count('Cannot publish'))
        self.memcached.start()
        self.assertTrue(agent.publish_once())
        self.assertTrue(agent.publish_once())
        self.assertEqual(1, self.log.output.count('Publishing to the cache '
                                                  'again'))
        self.assertIn('compute1', self.reader().live_free_mb(['compute1']))

    def test_backoff_doubles_up_to_the_maximum(self):
        """Ensures waits of 1, 2, 4... s after failures, interval after."""
        conf = main.load_config([self.conf_file])
        conf.set_override('max_backoff', 4, group='numa_guard_agent')
        agent = main.Agent(conf, 'compute1', self.root, None)
        results = iter([False, False, False, False, True, False])
        self.useFixture(fixtures.MockPatchObject(
            agent, 'publish_once', side_effect=lambda: next(results)))
        stop = _CountingStop(6)
        agent.run(stop)
        self.assertEqual([1, 2, 4, 4], stop.waits[:4])
        self.assertAlmostEqual(10, stop.waits[4], delta=0.5)
        self.assertEqual(1, stop.waits[5])

    def test_sysfs_problems_logged_once_per_change(self):
        """Ensures sysfs problems are logged once per change of state."""
        agent = self.agent()
        cpulist = os.path.join(self.root, 'devices', 'system', 'node',
                               'node1', 'cpulist')
        os.rename(cpulist, cpulist + '.bak')
        agent.publish_once()
        agent.publish_once()
        self.assertEqual(1, self.log.output.count('Cannot read part'))
        os.rename(cpulist + '.bak', cpulist)
        agent.publish_once()
        self.assertIn('reads cleanly again', self.log.output)


class _CountingStop:
    """A stop event that records the waits and stops after ``n`` of them."""

    def __init__(self, n):
        self.n = n
        self.waits = []

    def is_set(self):
        return len(self.waits) >= self.n

    def wait(self, timeout):
        self.waits.append(timeout)
