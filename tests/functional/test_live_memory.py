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

The payloads of :class:`LiveMemoryTest` are what ``nova-numa-guard-agent
--once --print`` makes of a fake sysfs tree holding two-node-64g's
``numastat -m`` figures: node 0 has 10501 MB free, node 1 2769 MB, so
neither holds a 16 GB guest, although nova's accounting of the fresh
2 x 64 GB host would place it. That agent reads no guests, so the filter
takes the lower of the live and the accounted figures. :class:`LiveTruthTest`
writes payloads with the guest figures (``guest_untouched_mb``,
``guests_mb``).
"""

import os
import time

import fixtures
import nova.conf
from nova import context as nova_context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt

from nova_numa_guard.agent import collect
from nova_numa_guard import conf as guard_conf
from nova_numa_guard.live import payload
from tests import fake_sysfs
from tests.functional import base

SIXTEEN_GB = 16384
KEY = 'functional-test-key'


class LiveMemoryTestBase(base.GuardTestBase):

    SIGNING_KEY = None

    def setUp(self):
        guard_conf.register_opts(nova.conf.CONF)
        self.live_dir = self.useFixture(fixtures.TempDir()).path
        self.sysfs = fake_sysfs.write_two_node_tree(
            self.useFixture(fixtures.TempDir()).path)
        self.flags(memory_source='file', live_data_path=self.live_dir,
                   payload_signing_key=self.SIGNING_KEY, group='numa_guard')
        super().setUp()
        self.start_compute('compute1', host_info=base.two_node_host_info())

    def publish(self, host='compute1', names='compute1', key=None,
                timestamp=None):
        """Write the agent's payload of the two-node-64g tree for ``host``."""
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

    def test_two_node_live_data_rejects_a_16gb_guest(self):
        """Ensures live data showing two-node-64g's numbers keeps 16 GB out."""
        self.publish()

        server = self.boot(expected_state='ERROR')

        self.assert_no_valid_host(server)
        self.assertIn('compute1, compute1 fails NUMA cell fit: needs 16384 '
                      'MB free in one cell; live (capped by accounted) free: '
                      'cell 0 10501 MB, cell 1 2769 MB',
                      self.guard_log.output)

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
        self.assertRegex(self.guard_log.output,
                         r'\(stale\), e.g. compute1: 36\d\d s old, '
                         r'\[numa_guard\] max_data_age is 30 s')

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
                      '(capped by accounted) free for bound memory: cell 0 '
                      '14286 MB, cell 1 7854 MB', self.guard_log.output)

        server = self.boot(memory_mb=4096, extra_spec={'hw:numa_nodes': '1'})
        self.assertEqual('compute1', self.host_of(server))


class SignedLiveMemoryTest(LiveMemoryTestBase):

    SIGNING_KEY = KEY

    def test_signed_two_node_live_data_rejects_a_16gb_guest(self):
        """Ensures a payload signed with the host's own key is used."""
        self.publish(key=payload.host_key(KEY, 'compute1'))

        self.assert_no_valid_host(self.boot(expected_state='ERROR'))
        self.assertIn('free: cell 0 10501 MB, cell 1 2769 MB',
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


class LiveTruthTest(base.GuardTestBase):
    """Memory the kernel shows as free but guests are owed, through nova."""

    def setUp(self):
        guard_conf.register_opts(nova.conf.CONF)
        self.live_dir = self.useFixture(fixtures.TempDir()).path
        self.flags(memory_source='file', live_data_path=self.live_dir,
                   group='numa_guard')
        super().setUp()

    def publish(self, host, free, untouched, guests_mb):
        """Write an agent payload for ``host``: MB per node."""
        nodes = [{'id': node, 'mem_total_mb': 64 * 1024,
                  'mem_free_mb': mb, 'mem_available_mb': mb,
                  'guest_untouched_mb': untouched[node]}
                 for node, mb in sorted(free.items())]
        with open(os.path.join(self.live_dir, host + '.json'), 'wb') as f:
            f.write(payload.encode(payload.build(
                host, time.time(), nodes, guests_mb=guests_mb)))

    def boot(self, memory_mb, vcpus=2, extra_spec=None,
             expected_state='ACTIVE'):
        flavor = self._create_flavor(memory_mb=memory_mb, vcpu=vcpus,
                                     extra_spec=extra_spec)
        return self._create_server(flavor_id=flavor,
                                   expected_state=expected_state)

    def test_untouched_guest_memory_is_not_free(self):
        """Ensures MemFree promised to a running guest does not count.

        Node 0 shows 30000 MB free, but 24000 MB of it belong to a running
        guest that has not touched them yet; node 1 has 8000 MB. A 16 GB
        guest that bare MemFree would place fits no node.
        """
        self.start_compute('compute1', host_info=base.two_node_host_info())
        self.publish('compute1', {0: 30000, 1: 8000}, {0: 24000, 1: 0}, 0)

        self.assert_no_valid_host(self.boot(16384, expected_state='ERROR'))
        self.assertIn('needs 16384 MB free in one cell; live free: cell 0 '
                      '6000 MB, cell 1 8000 MB', self.guard_log.output)

        self.publish('compute1', {0: 30000, 1: 8000}, {0: 12000, 1: 0}, 0)
        self.assertEqual('compute1', self.host_of(self.boot(16384)))

    def test_guest_placed_after_the_payload_counts(self):
        """Ensures a guest nova placed since the agent's payload counts.

        The payload shows 20000 MB free on each node and no guest. Nova
        then places a 12 GB guest the payload has not seen: wherever it
        settles, one node keeps at least 13856 MB (the unseen 12 GB level
        both nodes), so a 16 GB guest no longer fits, and a 12 GB one
        still does.
        """
        self.start_compute('compute1', host_info=base.two_node_host_info())
        self.publish('compute1', {0: 20000, 1: 20000}, {0: 0, 1: 0}, 0)
        self.assertEqual('compute1', self.host_of(self.boot(12288)))

        self.assert_no_valid_host(self.boot(16384, expected_state='ERROR'))
        self.assertIn('needs 16384 MB free in one cell; live free: cell 0 '
                      '13856 MB, cell 1 13856 MB', self.guard_log.output)
        self.assertEqual('compute1', self.host_of(self.boot(12288)))

    def test_numa_guest_checked_on_the_cells_nova_binds(self):
        """Ensures nova's own choice of cells is what gets checked.

        On a fresh four-cell host nova binds a two-node guest to cells 0
        and 1. With them full (of guests without a NUMA topology, which
        nova does not count per cell) and cells 2 and 3 roomy, the guest is
        refused; with room on cells 0 and 1 it boots there.
        """
        self.start_compute('compute1', host_info=fakelibvirt.HostInfo(
            cpu_nodes=4, cpu_sockets=1, cpu_cores=3, cpu_threads=1,
            kB_mem=4 * 64 * 1024 * 1024))
        spec = {'hw:numa_nodes': '2'}
        self.publish('compute1', {0: 2000, 1: 2000, 2: 40000, 3: 40000},
                     dict.fromkeys(range(4), 0), 0)
        self.assert_no_valid_host(self.boot(
            16384, extra_spec=spec, expected_state='ERROR'))
        self.assertIn('NUMA guest is bound by nova to 8192 MB on cell 0, '
                      '8192 MB on cell 1; live free for bound memory',
                      self.guard_log.output)

        self.publish('compute1', {0: 40000, 1: 40000, 2: 2000, 3: 2000},
                     dict.fromkeys(range(4), 0), 0)
        server = self.boot(16384, extra_spec=spec)
        self.assertEqual('compute1', self.host_of(server))
        cells = objects.InstanceNUMATopology.get_by_instance_uuid(
            nova_context.get_admin_context(), server['id']).cells
        self.assertEqual([0, 1], sorted(cell.id for cell in cells))
