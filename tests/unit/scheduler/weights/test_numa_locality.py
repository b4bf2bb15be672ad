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

"""NUMALocalityWeigher on HostStates built as nova builds them."""

import copy
import datetime
import logging
from unittest import mock

import ddt
import fixtures
import hypothesis
from hypothesis import strategies as st
from nova import objects
from nova.scheduler import weights
from nova import test

from nova_numa_guard import host_view
from nova_numa_guard.live import payload
from nova_numa_guard.live import source
from nova_numa_guard.scheduler.filters import numa_cell_fit
from nova_numa_guard.scheduler import weights as guard_weights
from nova_numa_guard.scheduler.weights import numa_locality
from nova_numa_guard import topology
from tests.unit import fakes

GB = 1024
GUEST_MB = 16 * GB
# NUMA guests fill this much of a 64 GB cell: a 16 GB guest no longer fits.
FULL_MB = 60000
VF_REQUEST_ID = '8e2d2b4e-3f0c-4a51-9d39-0b8c0f7b5d11'


def vfs(node, count=4, physnet='physnet1', pf=0, **tags):
    """A pool of SR-IOV VFs as the scheduler sees it."""
    pool = {'vendor_id': '8086', 'product_id': '1515', 'numa_node': node,
            'count': count, 'dev_type': 'type-VF',
            'physical_network': physnet, 'remote_managed': 'false',
            'address': '0000:81:00.%d' % pf}
    pool.update(tags)
    return pool


def gpus(node, count=2):
    return {'vendor_id': '10de', 'product_id': '20b5', 'numa_node': node,
            'count': count, 'dev_type': 'type-PCI'}


def cells_of(count, mb, used=None, physnets=None, tunneled=()):
    """``count`` cells of 12 CPUs and ``mb``; ``used``: NUMA usage."""
    used = used or {}
    physnets = physnets or {}
    return [topology.Cell(i, fakes.cpus(12 * i, 12), mb,
                          small_page_used_mb=used.get(i, 0),
                          physnets=frozenset(physnets.get(i, ())),
                          tunneled=i in tunneled)
            for i in range(count)]


def host(name, cells, pools=None):
    numa = sum(c.numa_used_mb for c in cells)
    return fakes.host_state(cells, used_mb=512 + numa, name=name,
                            pools=pools)


# Host shapes, by name: (cells, pools).
SHAPES = {
    'two-node-64g': (cells_of(2, 64 * GB), None),
    'two-node-64g-node1-full': (cells_of(2, 64 * GB, {1: FULL_MB}), None),
    'two-node-64g-full': (cells_of(2, 64 * GB, {0: FULL_MB, 1: FULL_MB}),
                          None),
    # Where the agent places the physnet's NIC is up to each test.
    'nic-on-free-node0': (cells_of(2, 64 * GB, {1: FULL_MB}), None),
    'nic-on-full-node1': (cells_of(2, 64 * GB, {1: FULL_MB}), None),
    'vfs-on-free-node0': (cells_of(2, 64 * GB, {1: FULL_MB}), [vfs(0)]),
    'vfs-on-full-node1': (cells_of(2, 64 * GB, {1: FULL_MB}), [vfs(1)]),
    'vfs-on-both-nodes': (cells_of(2, 64 * GB, {1: FULL_MB}),
                          [vfs(0), vfs(1, pf=1)]),
    'vfs-on-node1-both-free': (cells_of(2, 64 * GB), [vfs(1)]),
    'vfs-on-node0-both-free': (cells_of(2, 64 * GB), [vfs(0)]),
    'one-vf-on-each-node': (cells_of(2, 64 * GB, {1: FULL_MB}),
                            [vfs(0, count=1), vfs(1, count=1, pf=1)]),
    'vfs-without-a-node': (cells_of(2, 64 * GB, {1: FULL_MB}),
                           [vfs(None)]),
    'vfs-on-node-minus-one': (cells_of(2, 64 * GB, {1: FULL_MB}),
                              [vfs(-1)]),
    'vfs-used-up-on-node0': (cells_of(2, 64 * GB, {1: FULL_MB}),
                             [vfs(0, count=0)]),
    'vfs-of-physnet2-on-node0': (cells_of(2, 64 * GB, {1: FULL_MB}),
                                 [vfs(0, physnet='physnet2')]),
    'vfs-on-node0-all-full': (
        cells_of(2, 64 * GB, {0: FULL_MB, 1: FULL_MB}), [vfs(0)]),
    'gpus-on-full-node1': (cells_of(2, 64 * GB, {1: FULL_MB}), [gpus(1)]),
    'one-node-128g-vfs-without-a-node': (cells_of(1, 128 * GB),
                                         [vfs(None)]),
    'no-topology-vfs': ([], [vfs(None)]),
    'no-topology': ([], None),
    'physnet2-on-free-node0': (
        cells_of(2, 64 * GB, {1: FULL_MB}, {0: ['physnet2']}), None),
    'physnet2-on-full-node1': (
        cells_of(2, 64 * GB, {1: FULL_MB}, {1: ['physnet2']}), None),
    'tunnel-on-free-node0': (
        cells_of(2, 64 * GB, {1: FULL_MB}, tunneled=(0,)), None),
    'tunnel-on-full-node1': (
        cells_of(2, 64 * GB, {1: FULL_MB}, tunneled=(1,)), None),
    # Four 32 GB cells; NUMA guests fill cells 2 and 3.
    'four-node-32g-vf-on-free-node0': (
        cells_of(4, 32 * GB, {2: 30000, 3: 30000}), [vfs(0)]),
    'four-node-32g-vf-on-full-node3': (
        cells_of(4, 32 * GB, {2: 30000, 3: 30000}), [vfs(3)]),
}


def vf_request(count=1, physnet='physnet1'):
    return objects.InstancePCIRequest(
        count=count, request_id=VF_REQUEST_ID,
        spec=[{'physical_network': physnet, 'remote_managed': 'False',
               'dev_type': 'type-VF'}])


def numa_topology(*cells_mb, pagesize=None):
    cells = []
    for i, mb in enumerate(cells_mb):
        cell = objects.InstanceNUMACell(id=i, cpuset={2 * i, 2 * i + 1},
                                        pcpuset=set(), memory=mb)
        if pagesize is not None:
            cell.pagesize = pagesize
        cells.append(cell)
    return objects.InstanceNUMATopology(cells=cells)


REQUESTS = {
    'plain': lambda: fakes.request_spec(GUEST_MB, 4),
    'sriov-port': lambda: fakes.request_spec(
        GUEST_MB, 4, pci_requests=[vf_request()], physnets=['physnet1']),
    'two-vfs': lambda: fakes.request_spec(
        GUEST_MB, 4, pci_requests=[vf_request(count=2)]),
    'virtio-port-physnet2': lambda: fakes.request_spec(
        GUEST_MB, 4, physnets=['physnet2']),
    'tunnelled-port': lambda: fakes.request_spec(GUEST_MB, 4,
                                                 tunneled=True),
    'numa-two-cells-sriov': lambda: fakes.request_spec(
        2 * 8 * GB, 4, numa_topology=numa_topology(8 * GB, 8 * GB),
        pci_requests=[vf_request()]),
    'numa-two-cells-plain': lambda: fakes.request_spec(
        2 * 8 * GB, 4, numa_topology=numa_topology(8 * GB, 8 * GB)),
}


class WeigherTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_numa_guard', level=logging.DEBUG,
            format='%(levelname)s %(message)s'))

    def weigher(self):
        return numa_locality.NUMALocalityWeigher()

    def hosts(self, *names):
        return [host(name, *SHAPES[name]) for name in names]

    def raw(self, hosts, spec, weigher=None):
        """``{host: raw score}``."""
        weigher = weigher or self.weigher()
        scores = weigher.weigh_objects(
            [weights.WeighedHost(h, 0.0) for h in hosts], spec)
        return {h.host: score for h, score in zip(hosts, scores)}

    def weighed(self, hosts, spec, weighers=None):
        """``[(host, weight)]`` through nova's handler, best first."""
        weighers = weighers or [self.weigher()]
        return [(w.obj.host, w.weight) for w in
                weights.HostWeightHandler().get_weighed_objects(
                    weighers, hosts, spec)]


@ddt.ddt
class ScoreTableTest(WeigherTestCase):
    """One request and a few hosts per row: the score of each host."""

    @ddt.named_data(
        ('vfs-on-the-free-cell-beat-vfs-on-the-full-cell', 'sriov-port',
         {'vfs-on-free-node0': 1.0, 'vfs-on-full-node1': 0.5}),
        ('vfs-on-both-cells-tie-with-vfs-on-the-free-cell', 'sriov-port',
         {'vfs-on-both-nodes': 1.0, 'vfs-on-free-node0': 1.0}),
        ('vfs-whose-node-is-unknown-are-local-to-no-cell', 'sriov-port',
         {'vfs-without-a-node': 0.5, 'vfs-on-node-minus-one': 0.5}),
        ('vfs-of-another-physnet-or-used-up-do-not-count', 'sriov-port',
         {'vfs-of-physnet2-on-node0': 0.5, 'vfs-used-up-on-node0': 0.5}),
        ('devices-only-where-the-guest-cannot-fit-score-low', 'sriov-port',
         {'vfs-on-node0-all-full': 0.25, 'two-node-64g-full': 0.0}),
        ('one-cell-or-no-topology-holds-every-device', 'sriov-port',
         {'one-node-128g-vfs-without-a-node': 1.0, 'no-topology-vfs': 1.0,
          'no-topology': 0.5}),
        ('two-vfs-half-local', 'two-vfs',
         {'one-vf-on-each-node': 0.75, 'vfs-on-free-node0': 1.0}),
        ('device-less-host-then-device-free-cell-then-device-cells',
         'plain',
         {'two-node-64g': 1.0, 'vfs-on-node1-both-free': 0.75,
          'vfs-on-free-node0': 0.25, 'two-node-64g-full': 0.0}),
        ('a-device-on-a-full-cell-leaves-the-free-cell-idle', 'plain',
         {'gpus-on-full-node1': 0.75, 'vfs-used-up-on-node0': 1.0,
          'no-topology-vfs': 0.25, 'no-topology': 1.0}),
        ('nova-physnet-affinity-makes-a-cell-busy', 'plain',
         {'physnet2-on-free-node0': 0.25, 'physnet2-on-full-node1': 0.75}),
        ('nova-physnet-affinity-counts-like-a-device',
         'virtio-port-physnet2',
         {'physnet2-on-free-node0': 1.0, 'physnet2-on-full-node1': 0.5}),
        ('a-physnet-the-host-affines-nowhere-is-no-need',
         'virtio-port-physnet2',
         {'two-node-64g-node1-full': 1.0, 'vfs-on-free-node0': 0.25}),
        ('tunnel-affinity-counts-like-a-device', 'tunnelled-port',
         {'tunnel-on-free-node0': 1.0, 'tunnel-on-full-node1': 0.5}),
        ('numa-guest-cells-next-to-the-vf', 'numa-two-cells-sriov',
         {'four-node-32g-vf-on-free-node0': 1.0,
          'four-node-32g-vf-on-full-node3': 0.5}),
        ('numa-guest-cells-off-device-cells', 'numa-two-cells-plain',
         {'four-node-32g-vf-on-free-node0': 0.5,
          'four-node-32g-vf-on-full-node3': 0.75}),
    )
    def test_scores(self, request, expected):
        """Ensures that each host of the row gets its documented score."""
        hosts = self.hosts(*expected)
        self.assertEqual(expected, self.raw(hosts, REQUESTS[request]()))
        self.assertEqual([], self.log.output.splitlines())


class WeigherTest(WeigherTestCase):

    def test_all_weighers_lists_the_weigher(self):
        """Ensures that weight_classes can load the plugin's weighers."""
        self.assertEqual([numa_locality.NUMALocalityWeigher],
                         guard_weights.all_weighers())
        loaded = weights.HostWeightHandler().get_matching_classes(
            ['nova_numa_guard.scheduler.weights.all_weighers'])
        self.assertEqual([numa_locality.NUMALocalityWeigher], loaded)

    def test_handler_puts_the_local_host_first(self):
        """Ensures nova's handler ranks the local host over the others."""
        hosts = self.hosts('vfs-on-full-node1', 'vfs-on-free-node0',
                           'gpus-on-full-node1')
        self.assertEqual(
            [('vfs-on-free-node0', 1.0), ('vfs-on-full-node1', 0.0),
             ('gpus-on-full-node1', 0.0)],
            self.weighed(hosts, REQUESTS['sriov-port']()))

    def test_aggregate_multiplier_zero_silences_it(self):
        """Ensures metadata numa_locality_weight_multiplier=0 mutes it."""
        hosts = self.hosts('vfs-on-full-node1', 'vfs-on-free-node0')
        silent = objects.Aggregate(id=1, name='silent', hosts=[],
                                   metadata={numa_locality.MULTIPLIER_KEY:
                                             '0'})
        for h in hosts:
            h.aggregates = [silent]
        self.assertEqual([0.0, 0.0], [w for _, w in self.weighed(
            hosts, REQUESTS['sriov-port']())])
        # Only the local host muted: the other one does not gain.
        hosts[0].aggregates = []
        self.assertEqual({'vfs-on-full-node1': 0.0,
                          'vfs-on-free-node0': 0.0},
                         dict(self.weighed(hosts, REQUESTS['sriov-port']())))

    def test_aggregate_multiplier_scales_it(self):
        """Ensures an aggregate's multiplier replaces the option's."""
        hosts = self.hosts('vfs-on-full-node1', 'vfs-on-free-node0')
        hosts[1].aggregates = [objects.Aggregate(
            id=1, name='strong', hosts=[],
            metadata={numa_locality.MULTIPLIER_KEY: '2.5'})]
        self.assertEqual([('vfs-on-free-node0', 2.5),
                          ('vfs-on-full-node1', 0.0)],
                         self.weighed(hosts, REQUESTS['sriov-port']()))

    def test_option_multiplier_and_its_inverse(self):
        """Ensures [numa_guard] locality_weight_multiplier scales it."""
        hosts = self.hosts('vfs-on-full-node1', 'vfs-on-free-node0')
        weigher = self.weigher()
        self.flags(locality_weight_multiplier=3.0, group='numa_guard')
        self.assertEqual([('vfs-on-free-node0', 3.0),
                          ('vfs-on-full-node1', 0.0)],
                         self.weighed(hosts, REQUESTS['sriov-port'](),
                                      [weigher]))
        self.flags(locality_weight_multiplier=-1.0, group='numa_guard')
        self.assertEqual([('vfs-on-full-node1', 0.0),
                          ('vfs-on-free-node0', -1.0)],
                         self.weighed(hosts, REQUESTS['sriov-port'](),
                                      [weigher]))

    def test_pools_and_request_are_left_alone(self):
        """Ensures pools, cells and the request are only read."""
        hosts = self.hosts('vfs-on-both-nodes', 'vfs-on-free-node0',
                           'physnet2-on-free-node0')
        spec = REQUESTS['numa-two-cells-sriov']()
        spec.network_metadata.physnets = {'physnet1', 'physnet2'}
        pools = [copy.deepcopy(h.pci_stats.pools) for h in hosts]
        numa = [h.numa_topology.obj_to_primitive() for h in hosts]
        before = spec.obj_to_primitive()
        self.raw(hosts, spec)
        self.assertEqual(pools, [h.pci_stats.pools for h in hosts])
        self.assertEqual(numa, [h.numa_topology.obj_to_primitive()
                                for h in hosts])
        self.assertEqual(before, spec.obj_to_primitive())

    def test_a_host_that_cannot_be_read_weighs_zero(self):
        """Ensures an error weighs the host 0, warned once a minute."""
        hosts = self.hosts('vfs-on-free-node0', 'vfs-on-full-node1')
        for h in hosts:
            h.pci_stats = 'not pci stats'
        self.assertEqual({'vfs-on-free-node0': 0.0, 'vfs-on-full-node1': 0.0},
                         self.raw(hosts, REQUESTS['sriov-port']()))
        warnings = [line for line in self.log.output.splitlines()
                    if line.startswith('WARNING')]
        self.assertEqual(['WARNING NUMALocalityWeigher could not weigh '
                          'vfs-on-free-node0, vfs-on-free-node0; it weighs '
                          '0. Next such warning in 60 s at the earliest.'],
                         warnings)

    def test_a_request_that_cannot_be_read_weighs_every_host_zero(self):
        """Ensures a broken request weighs 0 everywhere, with a warning."""
        hosts = self.hosts('vfs-on-free-node0', 'two-node-64g')
        spec = REQUESTS['sriov-port']()
        # A request object without its count (it cannot be lazy-loaded).
        spec.pci_requests.requests = [objects.InstancePCIRequest(
            spec=[{'physical_network': 'physnet1'}])]
        self.assertEqual({'vfs-on-free-node0': 0.0, 'two-node-64g': 0.0},
                         self.raw(hosts, spec))
        self.assertIn('WARNING NUMALocalityWeigher could not read the '
                      'request; weighing every host 0', self.log.output)

    def test_earlier_instances_of_the_request_fill_the_free_cell(self):
        """Ensures a multi-create sees its earlier instances on the host."""
        hosts = self.hosts('vfs-on-free-node0')
        spec = REQUESTS['sriov-port']()
        self.assertEqual([1.0], list(self.raw(hosts, spec).values()))
        # Nova placed three 16 GB instances of the request on the host:
        # node 0 has no room for a fourth, node 1 never had.
        hosts[0].free_ram_mb -= 3 * GUEST_MB
        self.assertEqual([0.25], list(self.raw(hosts, spec).values()))

    def test_a_plain_request_follows_the_devices_of_a_newer_record(self):
        """Ensures the nodes of free devices, kept per compute record, are
        read again when the record changes.
        """
        hosts = self.hosts('vfs-on-node1-both-free')
        spec = REQUESTS['plain']()
        self.assertEqual([0.75], list(self.raw(hosts, spec).values()))
        # The VFs were taken: a newer record of the same compute node.
        cells, _ = SHAPES['vfs-on-node1-both-free']
        newer = host('vfs-on-node1-both-free', cells, [vfs(1, count=0)])
        newer.updated = hosts[0].updated + datetime.timedelta(seconds=1)
        self.assertEqual(hosts[0].uuid, newer.uuid)
        self.assertEqual([1.0], list(self.raw([newer], spec).values()))

    def test_a_request_for_devices_reads_the_pools_as_they_are(self):
        """Ensures a multi-create sees the devices its earlier instances
        took: nova takes them from the HostState's pools as it places them.
        """
        hosts = self.hosts('vfs-on-free-node0')
        spec = REQUESTS['sriov-port']()
        self.assertEqual([1.0], list(self.raw(hosts, spec).values()))
        hosts[0].pci_stats.pools[0]['count'] = 0
        self.assertEqual([0.5], list(self.raw(hosts, spec).values()))

    def test_hugepage_guest_needs_free_pages_next_to_the_vf(self):
        """Ensures a hugepage guest is fitted on its page size."""
        cells = [topology.Cell(i, fakes.cpus(12 * i, 12), 64 * GB,
                               small_page_mb=32 * GB,
                               hugepages={1048576: (32, used)})
                 for i, used in enumerate((30, 0))]
        spec = fakes.request_spec(
            8 * GB, 2, numa_topology=numa_topology(8 * GB,
                                                   pagesize=1048576),
            pci_requests=[vf_request()])
        hosts = [host('pages-used-next-to-the-vf', cells,
                      [vfs(0)]),
                 host('pages-free-next-to-the-vf', cells,
                      [vfs(1)])]
        self.assertEqual({'pages-used-next-to-the-vf': 0.5,
                          'pages-free-next-to-the-vf': 1.0},
                         self.raw(hosts, spec))


def _trusted(name, free, physnets=None):
    return payload.Trusted(name, 0.0, free, free, None, None, physnets)


class LiveDataTest(WeigherTestCase):
    """What NUMACellFitFilter fetched for the request, and nothing more."""

    def filter_then_weigh(self, hosts, spec, live):
        filt = numa_cell_fit.NUMACellFitFilter()
        with mock.patch.object(filt._source, 'live_data', autospec=True,
                               return_value=source.LiveData(live)) as fetch:
            with mock.patch.object(type(filt._source), 'live',
                                   new_callable=mock.PropertyMock,
                                   return_value=True):
                passed = list(filt.filter_all(hosts, spec))
            scores = self.raw(passed, spec)
        fetch.assert_called_once_with([h.host for h in hosts])
        return scores

    def test_live_free_memory_of_the_filter_is_used(self):
        """Ensures the weigher judges cells on the filter's live data.

        Accounted, both nodes are free; live, node 0 (with the VFs) is
        nearly full, so only node 1 holds the guest.
        """
        hosts = self.hosts('vfs-on-node0-both-free')
        self.assertEqual({'vfs-on-node0-both-free': 1.0},
                         self.raw(hosts, REQUESTS['sriov-port']()))
        hosts = self.hosts('vfs-on-node0-both-free')
        live = {'vfs-on-node0-both-free': _trusted(
            'vfs-on-node0-both-free', {0: 2000, 1: 40000})}
        self.assertEqual({'vfs-on-node0-both-free': 0.5},
                         self.filter_then_weigh(
                             hosts, REQUESTS['sriov-port'](), live))
        self.assertIsNotNone(host_view.get(hosts[0]).live_host)

    def test_live_data_is_only_for_its_request(self):
        """Ensures a later instance without live data is judged accounted.
        """
        hosts = self.hosts('vfs-on-node0-both-free')
        live = {'vfs-on-node0-both-free': _trusted(
            'vfs-on-node0-both-free', {0: 2000, 1: 40000},
            {'physnet2': frozenset([1])})}
        spec = REQUESTS['sriov-port']()
        self.assertEqual({'vfs-on-node0-both-free': 0.5},
                         self.filter_then_weigh(hosts, spec, live))
        self.assertEqual({'vfs-on-node0-both-free': 1.0},
                         self.filter_then_weigh(hosts, spec, {}))
        view = host_view.get(hosts[0])
        self.assertEqual((None, None), (view.live_host, view.agent_physnets))

    def test_agent_physnets_count_like_nova_affinity(self):
        """Ensures the agent's physnet nodes rank like nova's own."""
        hosts = self.hosts('nic-on-free-node0', 'nic-on-full-node1')
        free = {0: 40000, 1: 3000}
        live = {'nic-on-free-node0': _trusted(
                    'nic-on-free-node0', free, {'physnet2': frozenset([0])}),
                'nic-on-full-node1': _trusted(
                    'nic-on-full-node1', free, {'physnet2': frozenset([1])})}
        self.assertEqual({'nic-on-free-node0': 1.0,
                          'nic-on-full-node1': 0.5},
                         self.filter_then_weigh(
                             hosts, REQUESTS['virtio-port-physnet2'](),
                             live))

    def test_nova_affinity_wins_over_the_agents(self):
        """Ensures [neutron_physnet_<name>] numa_nodes is not overridden."""
        hosts = self.hosts('physnet2-on-full-node1')
        live = {'physnet2-on-full-node1': _trusted(
            'physnet2-on-full-node1', {0: 40000, 1: 3000},
            {'physnet2': frozenset([0])})}
        self.assertEqual({'physnet2-on-full-node1': 0.5},
                         self.filter_then_weigh(
                             hosts, REQUESTS['virtio-port-physnet2'](),
                             live))

    def test_agent_physnets_make_cells_busy_for_plain_guests(self):
        """Ensures a device-less guest keeps off the agent's NIC cells."""
        hosts = self.hosts('two-node-64g-node1-full')
        live = {'two-node-64g-node1-full': _trusted(
            'two-node-64g-node1-full', {0: 40000, 1: 3000},
            {'physnet2': frozenset([0])})}
        self.assertEqual({'two-node-64g-node1-full': 0.25},
                         self.filter_then_weigh(hosts, REQUESTS['plain'](),
                                                live))

    def test_hugepage_requests_with_physnets_fetch_once_too(self):
        """Ensures the filter leaves the agent's data for hugepage guests.

        It passes every host of a hugepage request, and fetches the live
        data once for the weigher when the request has physnets.
        """
        hosts = self.hosts('two-node-64g')
        spec = fakes.request_spec(
            4 * GB, 2, numa_topology=numa_topology(4 * GB, pagesize=2048),
            physnets=['physnet2'])
        live = {'two-node-64g': _trusted('two-node-64g', {0: 1, 1: 1},
                                         {'physnet2': frozenset([1])})}
        self.filter_then_weigh(hosts, spec, live)
        view = host_view.get(hosts[0])
        self.assertEqual({'physnet2': frozenset([1])}, view.agent_physnets)

    def test_memo_is_bounded_by_whoever_builds_the_views(self):
        """Ensures the weigher begins the request only without the filter.

        After NUMACellFitFilter the views exist and the filter bounded the
        memo over every host it judged; the weigher, which sees only the
        hosts that passed, must not prune it again.
        """
        hosts = self.hosts('vfs-on-free-node0', 'two-node-64g')
        with mock.patch.object(host_view, 'begin_request',
                               autospec=True) as bound:
            self.raw(hosts, REQUESTS['plain']())
        bound.assert_called_once_with()
        with mock.patch.object(host_view, 'begin_request',
                               autospec=True) as bound:
            self.raw(hosts, REQUESTS['plain']())
        bound.assert_not_called()

    def test_without_the_filter_the_estimate_is_accounted(self):
        """Ensures the weigher alone builds the view and fetches nothing."""
        hosts = self.hosts('vfs-on-free-node0')
        with mock.patch.object(numa_cell_fit.NUMACellFitFilter,
                               '_live_data', autospec=True) as fetch:
            self.assertEqual({'vfs-on-free-node0': 1.0},
                             self.raw(hosts, REQUESTS['sriov-port']()))
        fetch.assert_not_called()
        self.assertIsNone(host_view.get(hosts[0]).live_host)


@st.composite
def _pools(draw, cells):
    pools = []
    for i in range(draw(st.integers(0, 4))):
        node = draw(st.sampled_from([None, -1, 7] + list(range(cells))))
        pool = draw(st.sampled_from([vfs(node, pf=i),
                                     vfs(node, pf=i, physnet='physnet2'),
                                     gpus(node),
                                     vfs(node, pf=i, dev_type='type-PF'),
                                     vfs(node, pf=i, remote_managed='true')]))
        pool['count'] = draw(st.integers(0, 4))
        pools.append(pool)
    return pools


@st.composite
def _hosts(draw):
    count = draw(st.integers(0, 4))
    cells = [topology.Cell(
        i, fakes.cpus(8 * i, draw(st.integers(0, 8))),
        draw(st.integers(0, 64 * GB)),
        small_page_used_mb=draw(st.integers(0, 64 * GB)),
        physnets=frozenset(draw(st.sets(st.sampled_from(
            ['physnet1', 'physnet2']), max_size=2))),
        tunneled=draw(st.booleans())) for i in range(count)]
    return cells, draw(_pools(count))


@st.composite
def _requests(draw):
    numa = None
    if draw(st.booleans()):
        numa = numa_topology(*draw(st.lists(st.integers(0, 32 * GB),
                                            min_size=1, max_size=3)),
                             pagesize=draw(st.sampled_from(
                                 [None, -1, -2, -3, 2048, 1048576])))
    pci = draw(st.lists(st.sampled_from([
        vf_request(), vf_request(count=3), vf_request(physnet='physnet2'),
        objects.InstancePCIRequest(count=1, alias_name='gpu',
                                   spec=[{'vendor_id': '10de',
                                          'product_id': '20b5'}]),
        objects.InstancePCIRequest(count=2, spec=[{'dev_type': 'type-PF'}])]),
        max_size=2))
    spec = fakes.request_spec(
        draw(st.integers(0, 64 * GB)), draw(st.integers(0, 16)),
        numa_topology=numa, pci_requests=pci,
        physnets=draw(st.sets(st.sampled_from(['physnet1', 'physnet2',
                                               'physnet3']), max_size=2)),
        tunneled=draw(st.booleans()))
    if draw(st.booleans()):
        del spec.pci_requests
    return spec


class WeigherPropertyTest(WeigherTestCase):

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(_hosts(), min_size=1, max_size=3),
                      _requests(), st.integers(0, 3 * 64 * GB))
    def test_scores_stay_in_range_and_nothing_raises(self, shapes, spec,
                                                     placed):
        """Ensures any host and request weighs in [0, 1] without an error.

        Pools on nodes None, -1 or a node the host does not have, hosts
        without a topology, requests without PCI requests: an error would
        weigh the host 0 with a warning; no generated input gets there.
        """
        hosts = [host('host%d' % i, cells, pools)
                 for i, (cells, pools) in enumerate(shapes)]
        for h in hosts:
            h.free_ram_mb -= placed
        pools = [copy.deepcopy(h.pci_stats.pools) for h in hosts]
        scores = self.raw(hosts, spec)
        for score in scores.values():
            self.assertIsInstance(score, float)
            self.assertTrue(0.0 <= score <= 1.0, score)
        self.assertEqual(pools, [h.pci_stats.pools for h in hosts])
        self.assertNotIn('WARNING', self.log.output)
