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

"""Tests of the simulator: the example hosts through nova's handlers."""

import os
import sys
import types

import fixtures
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from nova import test
import yaml

from nova_numa_guard.inputs import flavors
from nova_numa_guard.inputs import fleet
from nova_numa_guard.inputs import InputError
from nova_numa_guard.scheduler.filters import numa_cell_fit
from nova_numa_guard import simulation
from nova_numa_guard.simulation import live
from nova_numa_guard.simulation import placement
from nova_numa_guard.simulation import requests
from nova_numa_guard.simulation import scheduler
from tests import examples

# Both hosts have 32 GB and 8 CPUs; nova counts 512 MB used on each.
SMALL_FLEET = {'hosts': [
    {'name': 'one-node-32g', 'cells': [{'cpus': '0-7', 'memory_mb': 32768}]},
    {'name': 'two-node-16g', 'cells': [
        {'cpus': '0-3', 'memory_mb': 16384},
        {'cpus': '4-7', 'memory_mb': 16384}]},
]}


def simulate(fleet_file, *specs):
    """The report of ``--flavor`` specs over a fleet file."""
    return simulation.simulate(fleet.load(fleet_file),
                               [flavors.parse_spec(spec) for spec in specs])


def hosts(request):
    return {host['name']: host for host in request['hosts']}


class SimulationTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        # These tests run without the plugin's weighers; see
        # GuardWeighersTest for with.
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.simulation.guard_weighers_installed',
            lambda: False))
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write_fleet(self, document):
        path = os.path.join(self.tmp, 'fleet.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump(document, f)
        return path


class TwoNodeExampleTest(SimulationTestCase):
    """The motivating host: 2 nodes of 12 CPUs and ~64 GB."""

    def test_large_flavor_spans_with_stock_nova_only(self):
        """Ensures stock nova picks the host for 70000 MB and the guard not.

        The guard says why in the cells' sizes and suggests vNUMA specs.
        """
        report = simulate(examples.TWO_NODE_FLEET, 'vcpus=4,ram=70000')
        (request,) = report.requests
        self.assertEqual({'host': 'two-node-64g', 'capacity': 1},
                         request['stock'])
        self.assertEqual({'host': None, 'capacity': 0}, request['guard'])
        host = hosts(request)['two-node-64g']
        self.assertEqual((True, False, 'NUMACellFitFilter'),
                         (host['stock_passes'], host['guard_passes'],
                          host['rejected_by']))
        self.assertEqual('needs 70000 MB and 4 vCPUs in one cell; largest '
                         'cell 1 holds 64510 MB and 12 CPUs', host['reason'])
        self.assertEqual({'hw:numa_nodes': '2', 'hw:cpu_sockets': '2'},
                         request['suggestion'])
        # numastat shows 14286 and 7854 MB available on its nodes: too
        # little for either 35000 MB guest node, which nova binds.
        self.assertIsNone(request['suggestion_host'])
        self.assertEqual([], report.warnings)

    def test_numastat_figures_reject_a_16g_flavor(self):
        """Ensures the host's live free memory rejects a 16 GB guest."""
        report = simulate(examples.TWO_NODE_FLEET, 'vcpus=4,ram=16384')
        (request,) = report.requests
        self.assertEqual('two-node-64g', request['stock']['host'])
        self.assertIsNone(request['guard']['host'])
        host = hosts(request)['two-node-64g']
        self.assertEqual('NUMACellFitFilter', host['rejected_by'])
        self.assertEqual('needs 16384 MB free in one cell; live (capped by '
                         'accounted) free: cell 0 10501 MB, cell 1 2769 MB',
                         host['reason'])
        # It fits one cell: no vNUMA specs help, free memory does.
        self.assertIsNone(request['suggestion'])

    def test_a_suggestion_the_guard_places(self):
        """Ensures the suggestion names where the guard then puts it."""
        path = self.write_fleet({'hosts': [{
            'name': 'two-node-64g', 'capabilities': examples.TWO_NODE_XML}]})
        (request,) = simulate(path, 'vcpus=4,ram=70000').requests
        self.assertEqual({'hw:numa_nodes': '2', 'hw:cpu_sockets': '2'},
                         request['suggestion'])
        self.assertEqual('two-node-64g', request['suggestion_host'])


class CapacityTest(SimulationTestCase):

    def test_capacity_by_hand(self):
        """Ensures the capacities of a small fleet, worked out by hand.

        Placement: each host offers (32768 - 512 reserved) MB. The guard
        charges the 512 MB nova counts as used to the cells in proportion:
        each 16 GB cell of two-node-16g has 16128 MB free.

        * 8 GB, no NUMA topology: stock 3 + 3 (placement); the guard 3 + 2
          (one 8 GB guest per 16128 MB cell).
        * 20000 MB: stock 1 + 1; the guard 1 + 0 (no 16 GB cell holds it).
        * 8 GB, hw:numa_nodes=1: stock 3 + 3 (placement; nova fits two per
          cell); the guard 3 + 2: nova binds the third guest to cell 0
          again, which has 16128 - 8192 = 7936 MB left.
        """
        report = simulate(self.write_fleet(SMALL_FLEET), 'vcpus=2,ram=8192',
                          'vcpus=2,ram=20000',
                          'vcpus=2,ram=8192,hw:numa_nodes=1')
        self.assertEqual(
            [(6, 5), (2, 1), (6, 5)],
            [(r['stock']['capacity'], r['guard']['capacity'])
             for r in report.requests])

    def test_packing_is_nova_one_instance_after_another(self):
        """Ensures capacity equals packing one weighed instance at a time.

        The reference runs every filter for every instance over the hosts
        the previous instance left, picks the best weighed host and calls
        nova's own consume_from_request: the slow, literal way.
        """
        parsed = fleet.load(examples.FLEET)
        specs = ['name=m1.large,vcpus=4,ram=8192',
                 'name=r1.2xlarge.vnuma,vcpus=8,ram=65536,hw:numa_nodes=2',
                 'name=nfv,vcpus=4,ram=16384,'
                 'pci_passthrough:alias=x710-vf:1',
                 'name=port,vcpus=4,ram=8192,port=physnet2:direct',
                 'name=pinned,vcpus=8,ram=16384,hw:numa_nodes=1']
        report = simulation.simulate(parsed, [flavors.parse_spec(spec)
                                              for spec in specs])
        for spec, request in zip(specs, report.requests):
            expected = (_literal(parsed, spec, guard=False),
                        _literal(parsed, spec, guard=True))
            self.assertEqual(expected, (request['stock']['capacity'],
                                        request['guard']['capacity']), spec)

    def test_skipped_filters_change_nothing(self):
        """Ensures filters not run for a request would pass every host."""
        parsed = fleet.load(examples.FLEET)
        with simulation._configured(parsed), scheduler.Capture() as capture:
            hosts_ = scheduler.NovaFleet(parsed.hosts, [
                placement.provider(h) for h in parsed.hosts])
            runs = _runs(parsed)
            for spec in ('vcpus=4,ram=8192', 'vcpus=16,ram=100000',
                         'vcpus=4,ram=8192,port=physnet1'):
                request = requests.Request(flavors.parse_spec(spec), 0)
                fast = scheduler.place(runs, hosts_, request, capture)
                every = scheduler.place(runs, hosts_, request, capture,
                                        every_filter=True)
                for quick, slow in zip(fast, every):
                    self.assertEqual(
                        (slow.host, slow.capacity, _verdicts(slow)),
                        (quick.host, quick.capacity, _verdicts(quick)))

    def test_packing_leaves_the_fleet_as_built(self):
        """Ensures a simulation does not change the hosts it copies.

        The second flavor (the same) is packed on fresh copies: nova's
        consume changes PCI pools in place.
        """
        report = simulate(examples.FLEET,
                          'vcpus=4,ram=16384,pci_passthrough:alias=x710-vf:1',
                          'vcpus=4,ram=16384,pci_passthrough:alias=x710-vf:1')
        first, second = report.requests
        self.assertEqual(first['stock'], second['stock'])
        self.assertEqual(first['guard'], second['guard'])
        self.assertEqual({'host': 'two-node-64g-sriov', 'capacity': 4},
                         first['guard'])


class ExampleFleetTest(SimulationTestCase):

    def test_verdicts_on_the_example_fleet(self):
        """Ensures the example fleet tells each host's story."""
        report = simulation.simulate(fleet.load(examples.FLEET),
                                     flavors.load(examples.FLAVORS))
        by_name = {r['flavor']['name']: r for r in report.requests}

        big = hosts(by_name['r1.2xlarge'])
        self.assertEqual(
            ('placement', 'MEMORY_MB: needs 65536, 30022 free of 128326'),
            (big['two-node-64g']['rejected_by'],
             big['two-node-64g']['reason']))
        self.assertEqual('NUMACellFitFilter',
                         big['two-node-64g-cxl-256g']['rejected_by'])
        self.assertTrue(big['one-node-192g']['reason'].startswith(
            'MEMORY_MB'))

        # nova binds both guest nodes to cells 0 and 1 of the four-node
        # host, which its agent shows nearly full.
        vnuma = hosts(by_name['r1.2xlarge.vnuma'])['four-node-128g']
        self.assertEqual((True, False), (vnuma['stock_passes'],
                                         vnuma['guard_passes']))
        self.assertIn('NUMA guest is bound by nova to 32768 MB on cell 0, '
                      '32768 MB on cell 1; live free for bound memory: '
                      'cell 0 18595 MB, cell 1 46886 MB', vnuma['reason'])

        nfv = by_name['nfv.medium']
        self.assertEqual('two-node-64g-sriov', nfv['guard']['host'])
        self.assertEqual('PciPassthroughFilter',
                         hosts(nfv)['one-node-192g']['rejected_by'])

        huge = by_name['x1.large']
        self.assertIsNone(huge['guard']['host'])
        self.assertEqual('2', huge['suggestion']['hw:numa_nodes'])
        self.assertIsNotNone(huge['suggestion_host'])

    def test_weights_and_ranks(self):
        """Ensures passing hosts carry nova's weights, best ranked first."""
        (request,) = simulate(examples.FLEET, 'vcpus=4,ram=8192').requests
        ranked = sorted((h for h in request['hosts'] if h['rank']),
                        key=lambda h: h['rank'])
        self.assertEqual(request['guard']['host'], ranked[0]['name'])
        weights = [h['weight'] for h in ranked]
        self.assertEqual(sorted(weights, reverse=True), weights)
        self.assertEqual(list(range(1, len(ranked) + 1)),
                         [h['rank'] for h in ranked])

    def test_flavors_it_cannot_simulate_are_one_line(self):
        """Ensures a flavor nova refuses, or needs traits, is refused."""
        for spec, expected in [
                ('name=bad,vcpus=4,ram=8192,hw:numa_nodes=3',
                 'flavor bad: nova rejects it: '),
                ('name=alias,vcpus=4,ram=8192,pci_passthrough:alias=gpu:1',
                 'flavor alias: nova rejects it: '),
                ('name=t,vcpus=4,ram=8192,trait:CUSTOM_X=required',
                 'flavor t: trait:CUSTOM_X=required: hosts have no traits')]:
            e = self.assertRaises(InputError, simulate, examples.FLEET, spec)
            self.assertTrue(str(e).startswith(expected), str(e))
            self.assertNotIn('\n', str(e))

    def test_bad_pci_aliases_name_the_fleet_file(self):
        """Ensures aliases nova refuses are an error of the fleet file."""
        path = self.write_fleet(dict(SMALL_FLEET, pci_aliases=[
            {'name': 'vf', 'vendor_id': '8086', 'product_id': '154c',
             'device_type': 'type-NIC'}]))
        e = self.assertRaises(InputError, simulate, path, 'vcpus=1,ram=512')
        self.assertTrue(str(e).startswith(path + ': pci_aliases: '), str(e))

    def test_each_simulation_has_its_fleets_aliases(self):
        """Ensures nova's parsed PCI aliases do not outlive a simulation."""
        spec = 'name=vf,vcpus=4,ram=8192,pci_passthrough:alias=x710-vf:1'
        e = self.assertRaises(InputError, simulate, examples.TWO_NODE_FLEET,
                              spec)
        self.assertIn('PCI alias x710-vf is not defined', str(e))
        (request,) = simulate(examples.FLEET, spec).requests
        self.assertEqual('two-node-64g-sriov', request['guard']['host'])
        self.assertRaises(InputError, simulate, examples.TWO_NODE_FLEET,
                          spec)

    def test_progress_is_reported_per_flavor(self):
        """Ensures the progress callback sees every flavor done."""
        seen = []
        simulation.simulate(fleet.load(self.write_fleet(SMALL_FLEET)),
                            [flavors.parse_spec('vcpus=1,ram=512')] * 3,
                            progress=lambda done, total: seen.append(
                                (done, total)))
        self.assertEqual([(1, 3), (2, 3), (3, 3)], seen)


class LiveSourceTest(SimulationTestCase):

    def test_live_figures_are_trusted_by_the_filter(self):
        """Ensures the in-process records pass the filter's trust rules."""
        parsed = fleet.load(examples.FLEET)
        with simulation._configured(parsed):
            source = live.FleetSource(parsed.hosts)
            data = source.live_data([h.host.name for h in parsed.hosts])
        self.assertEqual({'two-node-64g', 'four-node-128g'}, set(data.hosts))
        self.assertEqual({}, data.missing)
        four = data.hosts['four-node-128g']
        self.assertEqual((327680, {0: 4096, 1: 16384, 2: 0, 3: 8192}),
                         (four.guests_mb, four.untouched_mb))

    def test_the_filter_uses_the_source_it_is_given(self):
        """Ensures NUMACellFitFilter takes a memory source object."""
        parsed = fleet.load(examples.TWO_NODE_FLEET)
        with simulation._configured(parsed):
            source = live.FleetSource(parsed.hosts)
            filt = numa_cell_fit.NUMACellFitFilter(memory_source=source)
        self.assertIs(source, filt._source)


class GuardWeighersTest(SimulationTestCase):

    def _fake_weighers(self, prefer):
        """A module like the plugin's weights package, preferring a host."""
        class PreferWeigher(nova_weights.BaseHostWeigher):
            def weight_multiplier(self, host_state):
                return 100.0

            def _weigh_object(self, host_state, spec):
                return 1.0 if host_state.host == prefer else 0.0

        module = types.ModuleType(simulation.GUARD_WEIGHERS)
        module.all_weighers = lambda: [PreferWeigher]
        self.useFixture(fixtures.MonkeyPatch(
            'sys.modules', dict(sys.modules, **{
                simulation.GUARD_WEIGHERS: module})))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.simulation.guard_weighers_installed',
            lambda: True))

    def test_guarded_run_adds_the_plugin_weighers(self):
        """Ensures the guard weighs with the plugin's weighers when there."""
        self._fake_weighers('one-node-192g')
        (request,) = simulate(examples.FLEET, 'vcpus=4,ram=8192').requests
        self.assertEqual('four-node-128g', request['stock']['host'])
        self.assertEqual('one-node-192g', request['guard']['host'])

    def test_without_them_both_runs_weigh_alike(self):
        """Ensures the runs weigh alike without the plugin's weighers."""
        (request,) = simulate(examples.FLEET, 'vcpus=4,ram=8192').requests
        for host in request['hosts']:
            self.assertEqual(host['stock_weight'], host['weight'])


def _runs(parsed):
    return scheduler.Runs(
        simulation._filters(), [numa_cell_fit.NUMACellFitFilter(
            memory_source=live.FleetSource(parsed.hosts))],
        simulation._weighers(), simulation._weighers(guard=True))


def _verdicts(outcome):
    return {name: (v.rejected_by, v.reason, v.weight, v.rank)
            for name, v in outcome.verdicts.items()}


def _literal(parsed, spec, guard):
    """Guests of ``spec`` the fleet takes, one weighed instance at a time.

    Every filter of the run, for every instance (as nova's handler runs
    them), over the hosts the previous instance left; the best weighed host
    takes the guest through nova's consume_from_request.
    """
    with simulation._configured(parsed), scheduler.Capture():
        request = requests.Request(flavors.parse_spec(spec), 0)
        pairs = scheduler.NovaFleet(parsed.hosts, [
            placement.provider(h) for h in parsed.hosts]).fresh()
        providers = {state.host: provider for state, provider in pairs}
        runs = _runs(parsed)
        filters = runs.stock_filters + (runs.guard_filters if guard else [])
        weighers = runs.guard_weighers if guard else runs.stock_weighers
        spec_obj = request.spec()
        handler = nova_filters.HostFilterHandler()
        weigher_handler = nova_weights.HostWeightHandler()
        candidates = [state for state, _ in pairs]
        count = 0
        while True:
            offered = [s for s in candidates if providers[s.host].shortfall(
                request.resources) is None]
            candidates = handler.get_filtered_objects(
                filters, offered, spec_obj, count) or []
            if not candidates:
                return count
            best = weigher_handler.get_weighed_objects(
                weighers, candidates, spec_obj)[0].obj
            best.consume_from_request(spec_obj)
            providers[best.host].claim(request.resources)
            count += 1
