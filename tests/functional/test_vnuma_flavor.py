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

"""vNUMA flavors from ``nova-numa-guard flavor-specs`` through real nova."""

import io
import json
import os
from xml.etree import ElementTree

import fixtures

from nova import context as nova_context
from nova import objects

from nova_numa_guard.cli import app
from nova_numa_guard.inputs import capabilities
from nova_numa_guard import vnuma
from tests.functional import base


class VNUMAFlavorTest(base.GuardTestBase):

    def setUp(self):
        super().setUp()
        self.start_compute('compute1', host_info=base.two_node_host_info())

    def _cli_specs(self, *argv):
        stdout, stderr = io.StringIO(), io.StringIO()
        code = app.NovaNumaGuardApp(stdout=stdout, stderr=stderr).run(
            ['flavor-specs'] + list(argv) + ['-f', 'json'])
        self.assertEqual(0, code, stderr.getvalue())
        return json.loads(stdout.getvalue())

    def _capabilities_file(self):
        """The compute's libvirt capabilities XML, written to a file."""
        conn = self.computes['compute1'].driver._host.get_connection()
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'compute1.xml')
        with open(path, 'w') as f:
            f.write(conn.getCapabilities())
        return path

    def _compute_host(self):
        """The compute's host, read by the capabilities parser.

        The XML is what the fake libvirt connection answers to
        getCapabilities(), as virsh capabilities shows it on a real host.
        """
        conn = self.computes['compute1'].driver._host.get_connection()
        return capabilities.parse(conn.getCapabilities(), source='compute1')

    def _boot(self, vcpus, memory_mb, specs):
        flavor = self._create_flavor(memory_mb=memory_mb, vcpu=vcpus,
                                     extra_spec=specs)
        server = self._create_server(flavor_id=flavor)
        self.assertEqual('compute1', self.host_of(server))
        return server

    def _guest_cells(self, server):
        """(vCPUs, MiB, host cell) of each guest node, as nova stored them."""
        topology = objects.InstanceNUMATopology.get_by_instance_uuid(
            nova_context.get_admin_context(), server['id'])
        return [(len(c.cpuset), c.memory, c.id) for c in topology.cells]

    def _domain_numa(self, server):
        """What the libvirt domain binds: memory and vCPUs per guest node.

        :returns: ({guest node: host nodeset}, {vCPU: host cpuset}).
        """
        conn = self.computes['compute1'].driver._host.get_connection()
        xml = ElementTree.fromstring(
            conn.lookupByUUIDString(server['id']).XMLDesc(0))
        memnodes = {int(el.get('cellid')): el.get('nodeset')
                    for el in xml.findall('./numatune/memnode')}
        pins = {int(el.get('vcpu')): el.get('cpuset')
                for el in xml.findall('./cputune/vcpupin')}
        return memnodes, pins

    def test_symmetric_plan_boots_across_both_cells(self):
        """Ensures a guest larger than a cell boots with the CLI's specs.

        8 vCPUs and 100000 MB: no 64419 MB cell holds it (and the guard
        rejects it without a NUMA topology); the helper, given the compute's
        own libvirt capabilities XML, splits it in two.
        """
        specs = self._cli_specs('--vcpus', '8', '--ram', '100000',
                                '--capabilities', self._capabilities_file())
        self.assertEqual({'hw:numa_nodes': '2', 'hw:cpu_sockets': '2'},
                         specs)

        server = self._boot(8, 100000, specs)

        cells = self._guest_cells(server)
        self.assertEqual([(4, 50000), (4, 50000)],
                         [(cpus, mb) for cpus, mb, _ in cells])
        self.assertEqual({0, 1}, {cell for _, _, cell in cells})
        # Guest node i's memory on host node i, its vCPUs on that node's
        # CPUs (cell 0 has host CPUs 0-5, cell 1 has 6-11).
        self.assertEqual(({0: '0', 1: '1'},
                          {0: '0-5', 1: '0-5', 2: '0-5', 3: '0-5',
                           4: '6-11', 5: '6-11', 6: '6-11', 7: '6-11'}),
                         self._domain_numa(server))

    def test_compute_capabilities_parse_to_the_example_cells(self):
        """Ensures the parser reads the fake libvirt host as nova does."""
        host = self._compute_host()
        self.assertEqual(
            [(0, frozenset(range(6)), base.TWO_NODE_CELL_MB),
             (1, frozenset(range(6, 12)), base.TWO_NODE_CELL_MB)],
            [(c.id, c.cpus, c.memory_mb) for c in host.cells])
        self.assertEqual((frozenset({0, 1}), frozenset({2, 3}),
                          frozenset({4, 5})), host.cells[0].siblings)

    def test_asymmetric_plan_boots_as_planned(self):
        """Ensures an uneven guest boots with the planned node sizes.

        The plan is made for the host the capabilities parser reads from the
        compute's own libvirt capabilities XML.
        """
        host = self._compute_host()
        plan = vnuma.plan(9, 100001, host)
        self.assertEqual((5, 4), plan.node_cpus)
        self.assertIn('hw:numa_mem.1', plan.extra_specs)

        server = self._boot(9, 100001, plan.extra_specs)

        cells = self._guest_cells(server)
        self.assertEqual(list(zip(plan.node_cpus, plan.node_memory_mb)),
                         [(cpus, mb) for cpus, mb, _ in cells])
        self.assertEqual(list(plan.host_cells),
                         [cell for _, _, cell in cells])
        host_cpus = {0: '0-5', 1: '6-11'}
        first, second = plan.host_cells
        self.assertEqual(
            ({0: str(first), 1: str(second)},
             dict([(v, host_cpus[first]) for v in range(5)] +
                  [(v, host_cpus[second]) for v in range(5, 9)])),
            self._domain_numa(server))

    def test_the_same_guest_without_specs_gets_no_valid_host(self):
        """Ensures the guest needs the specs: without them the guard says no.
        """
        flavor = self._create_flavor(memory_mb=100000, vcpu=8)

        server = self._create_server(flavor_id=flavor,
                                     expected_state='ERROR')

        self.assert_no_valid_host(server)
