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

"""Live per-node memory through a real in-process nova (``file`` source).

The payloads are what ``nova-numa-guard-agent --once --print`` makes of a
fake sysfs tree holding the seed's ``numastat -m`` figures: node 0 has
10501 MB free, node 1 2769 MB, so neither holds a 16 GB guest, although
nova's accounting of the fresh 2 x 64 GB host would place it.
"""

import os
import time

import fixtures
import nova.conf

from nova_numa_guard.agent import collect
from nova_numa_guard import conf as guard_conf
from nova_numa_guard import payload
from tests import fake_sysfs
from tests.functional import base

SIXTEEN_GB = 16384
KEY = 'functional-test-key'


class LiveMemoryTestBase(base.GuardTestBase):

    SIGNING_KEY = None

    def setUp(self):
        guard_conf.register_opts(nova.conf.CONF)
        self.live_dir = self.useFixture(fixtures.TempDir()).path
        self.sysfs = fake_sysfs.write_seed_tree(
            self.useFixture(fixtures.TempDir()).path)
        self.flags(memory_source='file', live_data_path=self.live_dir,
                   payload_signing_key=self.SIGNING_KEY, group='numa_guard')
        super().setUp()
        self.start_compute('compute1', host_info=base.seed_host_info())

    def publish(self, host='compute1', names='compute1', key=None,
                timestamp=None):
        """Write the agent's payload of the seed tree for ``host``."""
        data, problems = collect.collect(
            self.sysfs, names, time.time() if timestamp is None
            else timestamp, key=key)
        self.assertEqual([], problems)
        with open(os.path.join(self.live_dir, host + '.json'), 'wb') as f:
            f.write(payload.encode(data))

    def boot(self, expected_state='ACTIVE', memory_mb=SIXTEEN_GB,
             extra_spec=None):
        flavor = self._create_flavor(memory_mb=memory_mb, vcpu=4,
                                     extra_spec=extra_spec)
        return self._create_server(flavor_id=flavor,
                                   expected_state=expected_state)


class LiveMemoryTest(LiveMemoryTestBase):

    def test_seed_live_data_rejects_a_16gb_guest(self):
        """Ensures live data showing the seed's numbers keeps 16 GB out."""
        self.publish()

        server = self.boot(expected_state='ERROR')

        self.assert_no_valid_host(server)
        self.assertIn('compute1, compute1 fails NUMA cell fit: needs 16384 '
                      'MB free in one cell; live free: cell 0 10501 MB, '
                      'cell 1 2769 MB', self.guard_log.output)

    def test_accounted_data_alone_accepts_the_guest(self):
        """Ensures the same guest lands when the host has no live data."""
        server = self.boot()

        self.assertEqual('compute1', self.host_of(server))
        self.assertIn('(missing), e.g. compute1: no live data stored',
                      self.guard_log.output)

    def test_stale_and_wrong_host_payloads_are_ignored(self):
        """Ensures stale and wrong-host payloads fall back to accounted."""
        self.publish(timestamp=time.time() - 3600)
        server = self.boot()
        self.assertEqual('compute1', self.host_of(server))
        self.assertIn('(stale), e.g. compute1: 3600 s old',
                      self.guard_log.output)

        self.publish(names='compute2')
        server = self.boot()
        self.assertEqual('compute1', self.host_of(server))
        self.assertIn("(wrong host), e.g. compute1: payload names host "
                      "'compute2'", self.guard_log.output)

    def test_small_page_numa_guest_gets_the_live_check(self):
        """Ensures a 16 GB hw:numa_nodes=1 guest is kept out, 4 GB lands."""
        self.publish()

        server = self.boot(expected_state='ERROR',
                           extra_spec={'hw:numa_nodes': '1'})
        self.assert_no_valid_host(server)
        self.assertIn('NUMA guest needs 16384 MB on 1 distinct cells; live '
                      'available after the reserve: cell 0 14286 MB, cell 1 '
                      '7854 MB', self.guard_log.output)

        server = self.boot(memory_mb=4096, extra_spec={'hw:numa_nodes': '1'})
        self.assertEqual('compute1', self.host_of(server))


class SignedLiveMemoryTest(LiveMemoryTestBase):

    SIGNING_KEY = KEY

    def test_signed_seed_live_data_rejects_a_16gb_guest(self):
        """Ensures a payload signed with the host's own key is used."""
        self.publish(key=payload.host_key(KEY, 'compute1'))

        self.assert_no_valid_host(self.boot(expected_state='ERROR'))
        self.assertIn('live free: cell 0 10501 MB, cell 1 2769 MB',
                      self.guard_log.output)

    def test_unsigned_and_forged_payloads_are_ignored(self):
        """Ensures unsigned and forged payloads fall back to accounted."""
        self.publish()
        self.assertEqual('compute1', self.host_of(self.boot()))
        self.assertIn('(unsigned), e.g. compute1: no signature',
                      self.guard_log.output)

        self.publish(key=payload.host_key('not-' + KEY, 'compute1'))
        self.assertEqual('compute1', self.host_of(self.boot()))
        self.assertIn('(bad signature), e.g. compute1: HMAC-SHA256 does not '
                      'match', self.guard_log.output)

    def test_payload_signed_by_another_host_is_ignored(self):
        """Ensures compute2's key cannot vouch for compute1's payload."""
        self.publish(key=payload.host_key(KEY, 'compute2'))
        self.assertEqual('compute1', self.host_of(self.boot()))
        self.assertIn('(bad signature), e.g. compute1: HMAC-SHA256 does not '
                      "match the host's key", self.guard_log.output)
