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

"""A real in-process nova with nova-numa-guard's scheduler classes loaded."""

import logging
import os
import sys

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base

GUARD_FILTERS = 'nova_numa_guard.scheduler.filters.all_filters'

# two-node-64g (virsh capabilities): 2 cells of 65872056 and 66058400 KiB.
# The fake libvirt splits kB_mem evenly and the harness allows at most 15
# CPUs, so the cells have 6 CPUs (3 cores x 2 threads) and 64419 MiB each.
TWO_NODE_KB = 65872056 + 66058400
TWO_NODE_CELL_MB = TWO_NODE_KB // 2 // 1024


def two_node_host_info():
    """A 2-cell fake-libvirt host shaped like two-node-64g's."""
    return fakelibvirt.HostInfo(cpu_nodes=2, cpu_sockets=1, cpu_cores=3,
                                cpu_threads=2, kB_mem=TWO_NODE_KB)


def one_cell_host_info(kb_mem=100 * 1024 * 1024):
    """A single-cell host (one socket, one NUMA node)."""
    return fakelibvirt.HostInfo(cpu_nodes=1, cpu_sockets=1, cpu_cores=6,
                                cpu_threads=2, kB_mem=kb_mem)


class GuardPluginMixin:
    """Loads the plugin's filters into nova's scheduler and captures its log.

    Put it before nova's test base class. Tests set ADDITIONAL_FILTERS as
    nova's libvirt tests do.
    """

    def setUp(self):
        # The nova wheel installs api-paste.ini under sys.prefix, not where
        # nova's ConfFixture looks for it.
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        # Guests here are larger than the default quota (50 GiB of RAM).
        self.flags(ram=-1, cores=-1, instances=-1, group='quota')
        super().setUp()
        self.guard_log = self.useFixture(fixtures.FakeLogger(
            name='nova_numa_guard', level=logging.DEBUG,
            format='%(levelname)s [%(name)s] %(message)s'))

    def _setup_scheduler_service(self):
        self.flags(available_filters=['nova.scheduler.filters.all_filters',
                                      GUARD_FILTERS],
                   group='filter_scheduler')
        return super()._setup_scheduler_service()


class GuardTestBase(GuardPluginMixin, base.ServersTestBase):
    """Servers through real nova with NUMACellFitFilter enabled."""

    ADMIN_API = True
    ADDITIONAL_FILTERS = ['NUMATopologyFilter', 'NUMACellFitFilter']

    def host_of(self, server):
        return self.admin_api.get_server(
            server['id'])['OS-EXT-SRV-ATTR:host']

    def assert_no_valid_host(self, server):
        self.assertEqual('ERROR', server['status'])
        self.assertIn('No valid host', server['fault']['message'])
