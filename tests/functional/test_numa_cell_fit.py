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

"""NUMACellFitFilter through a real in-process nova and fake-libvirt hosts."""

import time

from nova.tests.functional.libvirt import base as libvirt_base

from tests.functional import base

# two-node-64g's "more memory than one node" guest: larger than a 64 GB
# cell, smaller than the 128 GB host.
LARGE_MB = 70000


class NUMACellFitFilterTest(base.GuardTestBase):

    def test_guest_larger_than_a_cell_gets_no_valid_host(self):
        """Ensures a non-NUMA guest larger than any cell is not scheduled."""
        self.start_compute('compute1', host_info=base.two_node_host_info())
        flavor = self._create_flavor(memory_mb=LARGE_MB, vcpu=4)

        server = self._create_server(flavor_id=flavor,
                                     expected_state='ERROR')

        self.assert_no_valid_host(server)
        log = self.guard_log.output
        self.assertIn('compute1, compute1 fails NUMA cell fit: needs %d MB '
                      'and 4 vCPUs in one cell; largest cell' % LARGE_MB,
                      log)
        self.assertIn('holds %d MB and 6 CPUs' % base.TWO_NODE_CELL_MB, log)
        self.assertIn('INFO [nova_numa_guard.scheduler.filters.numa_cell_fit]'
                      ' NUMACellFitFilter removed the only host: the flavor '
                      'needs %d MB and 4 vCPUs in one NUMA cell' % LARGE_MB,
                      log)
        cells = '6:%d,6:%d' % (base.TWO_NODE_CELL_MB, base.TWO_NODE_CELL_MB)
        self.assertIn('nova-numa-guard flavor-specs --vcpus 4 --ram %d '
                      '--cells %s' % (LARGE_MB, cells), log)

    def test_guest_that_fits_a_cell_lands(self):
        """Ensures a non-NUMA guest that fits one cell is scheduled."""
        self.start_compute('compute1', host_info=base.two_node_host_info())
        flavor = self._create_flavor(memory_mb=16384, vcpu=4)

        server = self._create_server(flavor_id=flavor)

        self.assertEqual('compute1', self.host_of(server))
        self.assertNotIn('fails NUMA cell fit', self.guard_log.output)

    def test_large_guest_goes_to_the_host_where_it_fits_one_cell(self):
        """Ensures the guest goes to the 1-cell host, not the roomier 2-cell.

        The 2-cell host has more free memory, so nova's RAM weigher alone
        would pick it.
        """
        self.start_compute('compute1', host_info=base.two_node_host_info())
        self.start_compute('compute2', host_info=base.one_cell_host_info())
        flavor = self._create_flavor(memory_mb=LARGE_MB, vcpu=4)

        server = self._create_server(flavor_id=flavor)

        self.assertEqual('compute2', self.host_of(server))
        self.assertIn('compute1, compute1 fails NUMA cell fit',
                      self.guard_log.output)
        self.assertNotIn('compute2, compute2 fails', self.guard_log.output)

    def test_numa_guest_of_the_same_size_still_boots(self):
        """Ensures a hw:numa_nodes=2 guest is left to NUMATopologyFilter."""
        self.start_compute('compute1', host_info=base.two_node_host_info())
        flavor = self._create_flavor(memory_mb=LARGE_MB, vcpu=4,
                                     extra_spec={'hw:numa_nodes': '2'})

        server = self._create_server(flavor_id=flavor)

        self.assertEqual('compute1', self.host_of(server))
        self.assertNotIn('fails NUMA cell fit', self.guard_log.output)

    def _multi_create(self, flavor, count):
        body = self._build_server(flavor_id=flavor)
        body.update(min_count=count, max_count=count)
        self.api.post_server({'server': body})
        servers = self.api.get_servers()
        self.assertEqual(count, len(servers))
        return [self._wait_until_settled(s) for s in servers]

    def _wait_until_settled(self, server):
        for _ in range(100):
            server = self.api.get_server(server['id'])
            if server['status'] in ('ACTIVE', 'ERROR'):
                return server
            time.sleep(0.1)
        self.fail('server %s did not settle: %s' % (
            server['id'], server['status']))

    def test_multi_create_counts_earlier_instances_of_the_request(self):
        """Ensures instance 3 sees instances 1 and 2 placed on the host.

        Each cell holds one 40000 MB guest; the host-wide free memory would
        hold three.
        """
        self.start_compute('compute1', host_info=base.two_node_host_info())
        flavor = self._create_flavor(memory_mb=40000, vcpu=2)

        servers = self._multi_create(flavor, 3)

        for server in servers:
            self.assert_no_valid_host(server)
        self.assertIn('after 2 earlier instance(s) of this request',
                      self.guard_log.output)

    def test_multi_create_that_fits_the_cells_lands(self):
        """Ensures three 30000 MB guests land: each cell holds two."""
        self.start_compute('compute1', host_info=base.two_node_host_info())
        flavor = self._create_flavor(memory_mb=30000, vcpu=2)

        servers = self._multi_create(flavor, 3)

        self.assertEqual(['ACTIVE'] * 3, [s['status'] for s in servers])


class WithoutGuardTest(base.GuardPluginMixin, libvirt_base.ServersTestBase):
    """The same requests with nova's stock filters only: what we fix."""

    ADDITIONAL_FILTERS = ['NUMATopologyFilter']

    def test_guest_larger_than_a_cell_lands_without_the_filter(self):
        """Ensures stock nova places the guest that spans both cells."""
        self.start_compute('compute1', host_info=base.two_node_host_info())
        flavor = self._create_flavor(memory_mb=LARGE_MB, vcpu=4)

        self._create_server(flavor_id=flavor, expected_state='ACTIVE')

    def test_multi_create_lands_without_the_filter(self):
        """Ensures stock nova puts three 40000 MB guests on 2 x 64 GB."""
        self.start_compute('compute1', host_info=base.two_node_host_info())
        flavor = self._create_flavor(memory_mb=40000, vcpu=2)
        body = self._build_server(flavor_id=flavor)
        body.update(min_count=3, max_count=3)
        self.api.post_server({'server': body})
        for server in self.api.get_servers():
            self._wait_for_state_change(server, 'ACTIVE')
