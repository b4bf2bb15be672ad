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

import copy
import logging
from unittest import mock

import fixtures
import hypothesis
from hypothesis import strategies as st
from nova import objects
from nova.scheduler import filters as nova_filters
from nova import test
from nova.virt import hardware

from nova_numa_guard import conf
from nova_numa_guard import host_view
from nova_numa_guard import live
from nova_numa_guard.live import payload
from nova_numa_guard.live import source
from nova_numa_guard.scheduler.filters import numa_cell_fit
from nova_numa_guard import topology
from tests.unit import fakes

GB = 1024


def _numa_request(*cells_mb, pagesize=None):
    """A NUMA topology of one guest cell per MB figure, 2 vCPUs each."""
    cells = []
    for i, memory_mb in enumerate(cells_mb):
        cell = objects.InstanceNUMACell(
            id=i, cpuset={2 * i, 2 * i + 1}, pcpuset=set(),
            memory=memory_mb)
        if pagesize is not None:
            cell.pagesize = pagesize
        cells.append(cell)
    return objects.InstanceNUMATopology(cells=cells)


def _trusted(host, free, available=None, untouched=None, guests_mb=None):
    return payload.Trusted(host, 0.0, free, available or free, untouched,
                           guests_mb)


def _four_node_host(name='four-node-128g', numa_used=(0, 0, 20000, 20000)):
    """4 cells of 16 CPUs and 128 GB; NUMA guests on cells 2 and 3.

    Nova's accounting shows cells 0 and 1 emptiest, so nova binds a
    two-cell guest to them.
    """
    cells = [topology.Cell(i, fakes.cpus(16 * i, 16), 128 * GB,
                           small_page_used_mb=used)
             for i, used in enumerate(numa_used)]
    return fakes.host_state(cells, used_mb=512 + sum(numa_used), name=name)


class NUMACellFitFilterTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.filt = numa_cell_fit.NUMACellFitFilter()
        self.two_node = fakes.host_state(fakes.two_node_cells(),
                                         name='two-node-64g')

    def _passing(self, hosts, spec):
        return [h.host for h in self.filt.filter_all(hosts, spec)]

    def test_large_guest_rejected_on_two_node_64g(self):
        """Ensures two-node-64g's 70000 MB guest does not pass 2 x 64 GB."""
        spec = fakes.request_spec(70000, 4)
        self.assertFalse(self.filt.host_passes(self.two_node, spec))

    def test_guest_that_fits_passes(self):
        """Ensures a guest that fits one cell passes."""
        self.assertTrue(self.filt.host_passes(self.two_node,
                                              fakes.request_spec(16 * GB, 4)))

    def test_hugepage_numa_request_passes(self):
        """Ensures hugepage guests are left to nova's page accounting."""
        spec = fakes.request_spec(
            70000, 2, numa_topology=_numa_request(70000, pagesize=2048))
        self.assertTrue(self.filt.host_passes(self.two_node, spec))

    def test_small_page_numa_request_needs_room_on_its_cells(self):
        """Ensures a NUMA guest on small pages is checked per cell."""
        spec = fakes.request_spec(
            16 * GB, 2, numa_topology=_numa_request(16 * GB))
        self.assertTrue(self.filt.host_passes(self.two_node, spec))
        # 100000 MB of guests without a NUMA topology, which nova does not
        # count per cell: about 14 GB free per cell, accounted.
        busy = fakes.host_state(fakes.two_node_cells(), used_mb=100512,
                                name='busy')
        with mock.patch.object(numa_cell_fit.LOG, 'debug',
                               autospec=True) as debug:
            self.assertFalse(self.filt.host_passes(busy, spec))
        message = debug.call_args[0][0] % debug.call_args[0][1]
        self.assertEqual(
            'busy, busy fails NUMA cell fit: NUMA guest needs 16384 MB on 1 '
            'distinct cells; accounted free for bound memory: cell 0 14142 '
            'MB, cell 1 14183 MB', message)

    def test_any_page_size_is_checked_where_nova_picks_small_pages(self):
        """Ensures hw:mem_page_size=any is judged on the cells nova backs
        with small pages, and left to nova where it picks hugepages.
        """
        spec = fakes.request_spec(16 * GB, 2, numa_topology=_numa_request(
            16 * GB, pagesize=hardware.MEMPAGES_ANY))
        # About 14 GB free per cell for bound memory, accounted, and no
        # hugepages: nova backs the guest with small pages.
        busy = fakes.host_state(fakes.two_node_cells(), used_mb=100512,
                                name='busy')
        self.assertFalse(self.filt.host_passes(busy, spec))
        # The same small-page usage next to 20 free 1 GiB pages per cell:
        # nova backs the guest with them.
        cells = [topology.Cell(c.id, c.cpus, c.memory_mb,
                               small_page_mb=c.memory_mb - 20 * GB,
                               hugepages={1048576: (20, 0)})
                 for c in fakes.two_node_cells()]
        huge = fakes.host_state(cells, used_mb=100512, name='huge')
        self.assertTrue(self.filt.host_passes(huge, spec))

    def test_numa_guest_is_judged_on_the_cells_nova_binds(self):
        """Ensures the cells nova picks decide, not any cells with room."""
        spec = fakes.request_spec(
            40000, 4, numa_topology=_numa_request(20000, 20000))
        host = _four_node_host()
        full_where_nova_binds = _trusted(
            host.host, {0: 2000, 1: 2000, 2: 40000, 3: 40000})
        with mock.patch.object(
                self.filt._source, 'live_data', autospec=True,
                return_value=source.LiveData(
                    {host.host: full_where_nova_binds})):
            with mock.patch.object(numa_cell_fit.LOG, 'debug',
                                   autospec=True) as debug:
                self.assertEqual([], self._passing([host], spec))
        message = debug.call_args[0][0] % debug.call_args[0][1]
        self.assertIn('NUMA guest is bound by nova to 20000 MB on cell 0, '
                      '20000 MB on cell 1; live (capped by accounted) free '
                      'for bound memory: cell 0 2000 MB, cell 1 2000 MB, '
                      'cell 2 40000 MB, cell 3 40000 MB', message)

        host = _four_node_host()
        room_where_nova_binds = _trusted(
            host.host, {0: 40000, 1: 40000, 2: 2000, 3: 2000})
        with mock.patch.object(
                self.filt._source, 'live_data', autospec=True,
                return_value=source.LiveData(
                    {host.host: room_where_nova_binds})):
            self.assertEqual([host.host], self._passing([host], spec))

    def test_numa_guest_keeps_only_candidates_with_room(self):
        """Ensures allocation candidates nova would bind badly are dropped."""
        spec = fakes.request_spec(
            40000, 4, numa_topology=_numa_request(20000, 20000))
        host = _four_node_host()
        good = {'allocations': {}, 'mappings': {'good': []}}
        bad = {'allocations': {}, 'mappings': {'bad': []}}
        host.allocation_candidates = [bad, good]
        trusted = _trusted(host.host, {0: 2000, 1: 2000, 2: 40000,
                                       3: 40000})

        def nova_cells(*args):
            return [(0, 20000), (1, 20000)] if args[-1] is bad else \
                [(2, 20000), (3, 20000)]
        with mock.patch.object(
                self.filt._source, 'live_data', autospec=True,
                return_value=source.LiveData({host.host: trusted})):
            with mock.patch('nova_numa_guard.request_view.RequestView.'
                            'nova_cells', autospec=True,
                            side_effect=nova_cells):
                self.assertEqual([host.host], self._passing([host], spec))
        self.assertEqual([good], host.allocation_candidates)

    def test_rebuild_passes(self):
        """Ensures a rebuild is not filtered (RUN_ON_REBUILD = False)."""
        spec = fakes.request_spec(70000, 4,
                                  hints={'_nova_check_type': ['rebuild']})
        self.assertTrue(self.filt.host_passes(self.two_node, spec))

    def test_rejection_logs_one_debug_line_with_the_numbers(self):
        """Ensures a rejected host gets one DEBUG line saying why."""
        with mock.patch.object(numa_cell_fit.LOG, 'debug',
                               autospec=True) as debug:
            self.filt.host_passes(self.two_node, fakes.request_spec(70000, 4))
        debug.assert_called_once_with(
            mock.ANY, mock.ANY, instance_uuid=fakes.INSTANCE_UUID)
        message = debug.call_args[0][0] % debug.call_args[0][1]
        self.assertEqual('two-node-64g, two-node-64g fails NUMA cell fit: '
                         'needs 70000 MB and 4 vCPUs in one cell; largest '
                         'cell 1 holds 64510 MB and 12 CPUs', message)

    def test_info_line_when_every_host_is_removed(self):
        """Ensures the request gets one INFO line with what to do."""
        hosts = [self.two_node,
                 fakes.host_state(fakes.two_node_cells(), name='b')]
        with mock.patch.object(numa_cell_fit.LOG, 'info',
                               autospec=True) as info:
            self.assertEqual([], self._passing(hosts,
                                               fakes.request_spec(70000, 4)))
        info.assert_called_once()
        message = info.call_args[0][0] % info.call_args[0][1]
        self.assertEqual(
            'NUMACellFitFilter removed all 2 hosts: the flavor needs 70000 MB '
            'and 4 vCPUs in one NUMA cell; largest cell on any host is 64510 '
            'MB with 12 CPUs (two-node-64g); give the flavor a vNUMA '
            'topology: hw:numa_nodes=2 hw:cpu_sockets=2 (planned by '
            'nova-numa-guard flavor-specs --vcpus 4 --ram 70000 --cells '
            '12:64328,12:64510)',
            message)

    def _summary(self, spec, level=logging.INFO):
        """The INFO line of a request two-node-64g cannot take."""
        logger = numa_cell_fit.LOG.logger
        self.addCleanup(logger.setLevel, logger.level)
        logger.setLevel(level)
        with mock.patch.object(numa_cell_fit.LOG, 'info',
                               autospec=True) as info:
            self.assertEqual([], self._passing([self.two_node], spec))
        if not info.called:
            return None
        return info.call_args[0][0] % info.call_args[0][1]

    def test_info_line_without_a_plan_gives_the_command(self):
        """Ensures a guest no vNUMA layout holds gets the command alone."""
        message = self._summary(fakes.request_spec(200000, 4))
        self.assertTrue(message.endswith(
            'give the flavor a vNUMA topology: nova-numa-guard flavor-specs '
            '--vcpus 4 --ram 200000 --cells 12:64328,12:64510'), message)

    def test_info_line_survives_a_failing_planner(self):
        """Ensures the planner cannot make the summary fail."""
        with mock.patch.object(numa_cell_fit.vnuma, 'plan', autospec=True,
                               side_effect=RuntimeError('boom')):
            message = self._summary(fakes.request_spec(70000, 4))
        self.assertTrue(message.endswith(
            'vNUMA topology: nova-numa-guard flavor-specs --vcpus 4 --ram '
            '70000 --cells 12:64328,12:64510'), message)

    def test_no_plan_when_info_is_not_logged(self):
        """Ensures the planner only runs when the INFO line is logged."""
        with mock.patch.object(numa_cell_fit.vnuma, 'plan',
                               autospec=True) as plan:
            self.assertIsNone(self._summary(fakes.request_spec(70000, 4),
                                            level=logging.WARNING))
        plan.assert_not_called()

    def test_info_line_for_usage_names_the_largest_free_cell(self):
        """Ensures a usage failure says how much is free at best."""
        busy = fakes.host_state(fakes.two_node_cells(), used_mb=115566,
                                name='busy')
        with mock.patch.object(numa_cell_fit.LOG, 'info',
                               autospec=True) as info:
            self.assertEqual([], self._passing(
                [busy], fakes.request_spec(16 * GB, 4)))
        message = info.call_args[0][0] % info.call_args[0][1]
        self.assertIn('the most free memory of a cell that is big enough '
                      'is 6645 MB (busy)', message)

    def test_no_info_line_when_some_host_passes(self):
        """Ensures INFO is only for requests that lost every host."""
        one_cell = fakes.host_state(
            [topology.Cell(0, fakes.cpus(0, 24), 128 * GB)], name='one')
        with mock.patch.object(numa_cell_fit.LOG, 'info',
                               autospec=True) as info:
            self.assertEqual(['one'], self._passing(
                [self.two_node, one_cell], fakes.request_spec(70000, 4)))
        info.assert_not_called()

    def test_dry_run_rejects_nothing_and_says_what_it_would_do(self):
        """Ensures dry_run logs the rejections and keeps every host."""
        self.flags(dry_run=True, group='numa_guard')
        filt = numa_cell_fit.NUMACellFitFilter()
        with mock.patch.object(numa_cell_fit.LOG, 'info',
                               autospec=True) as info:
            self.assertEqual(['two-node-64g'], [
                h.host for h in filt.filter_all(
                    [self.two_node], fakes.request_spec(70000, 4))])
        message = info.call_args[0][0] % info.call_args[0][1]
        self.assertIn('(dry run) would have removed 1 of 1 host:', message)

    def test_reserve_and_cpu_fit_options(self):
        """Ensures the per-node reserve and cpu_fit reach the judgement."""
        spec = fakes.request_spec(64000, 4)
        self.assertTrue(self.filt.host_passes(self.two_node, spec))
        self.flags(reserved_node_memory_mb='0:1024,1:1024',
                   group='numa_guard')
        self.assertFalse(numa_cell_fit.NUMACellFitFilter().host_passes(
            self.two_node, spec))
        wide = fakes.request_spec(8 * GB, 16)
        self.assertFalse(self.filt.host_passes(self.two_node, wide))
        self.flags(cpu_fit=False, group='numa_guard')
        self.assertTrue(numa_cell_fit.NUMACellFitFilter().host_passes(
            self.two_node, wide))

    def test_non_numa_estimate_option(self):
        """Ensures non_numa_memory_estimate changes the accounted estimate."""
        host = fakes.host_state(fakes.two_node_cells(), used_mb=60000)
        spec = fakes.request_spec(16 * GB, 4)
        self.assertTrue(self.filt.host_passes(host, spec))
        self.flags(non_numa_memory_estimate='worst_case', group='numa_guard')
        self.assertFalse(numa_cell_fit.NUMACellFitFilter().host_passes(
            host, spec))

    def test_multi_create_counts_instances_nova_placed(self):
        """Ensures instance k sees the k earlier instances on the host."""
        spec = fakes.request_spec(40000, 2)
        handler = nova_filters.HostFilterHandler()
        for index in range(2):
            self.assertEqual([self.two_node], handler.get_filtered_objects(
                [self.filt], [self.two_node], spec, index))
            self.two_node.consume_from_request(spec)
        self.assertFalse(handler.get_filtered_objects(
            [self.filt], [self.two_node], spec, 2))

    def test_view_is_built_once_per_request(self):
        """Ensures the host view is cached on the HostState."""
        with mock.patch.object(host_view, '_memoised', autospec=True,
                               wraps=host_view._memoised) as build:
            for _ in range(3):
                self.filt.host_passes(self.two_node,
                                      fakes.request_spec(16 * GB, 4))
        build.assert_called_once_with(self.two_node)

    def test_memory_source_is_asked_once_per_request(self):
        """Ensures the source gets one batched call for all hosts."""
        hosts = [fakes.host_state(fakes.two_node_cells(), name='h%d' % i)
                 for i in range(5)]
        with mock.patch.object(self.filt._source, 'live_data',
                               autospec=True,
                               return_value=source.LiveData()) as live_data:
            self._passing(hosts, fakes.request_spec(16 * GB, 4))
        live_data.assert_called_once_with(['h%d' % i for i in range(5)])

    def test_live_data_from_the_source_is_used(self):
        """Ensures live free memory from the source decides."""
        spec = fakes.request_spec(16 * GB, 4)
        self._with_live(_trusted('two-node-64g', {0: 10501, 1: 2769}))
        self.assertEqual([], self._passing([self.two_node], spec))

    def _with_live(self, trusted, missing=None):
        self.useFixture(fixtures.MockPatchObject(
            self.filt._source, 'live_data', autospec=True,
            return_value=source.LiveData(
                {trusted.host: trusted} if trusted else {}, missing)))

    def test_untouched_and_unseen_guest_memory_is_not_free(self):
        """Ensures promised memory and guests the agent missed count.

        nova accounts 60000 MB of guests to the host (60512 used less the
        512 reserved); the agent saw 40000 MB of them, so 20000 MB are
        unseen and level the roomiest cells: 48000 and 30000 become 29000
        each, after 10000 MB untouched on cell 0.
        """
        host = fakes.host_state(fakes.two_node_cells(), used_mb=60512,
                                name='two-node-64g')
        trusted = _trusted(host.host, {0: 48000 + 10000, 1: 30000},
                           untouched={0: 10000, 1: 0}, guests_mb=40000)
        self._with_live(trusted)
        self.assertEqual([host.host], self._passing(
            [host], fakes.request_spec(29000, 4)))
        host = fakes.host_state(fakes.two_node_cells(), used_mb=60512,
                                name='two-node-64g')
        with mock.patch.object(numa_cell_fit.LOG, 'debug',
                               autospec=True) as debug:
            self.assertEqual([], self._passing(
                [host], fakes.request_spec(29001, 4)))
        message = debug.call_args[0][0] % debug.call_args[0][1]
        self.assertIn('live free: cell 0 29000 MB, cell 1 29000 MB', message)

    def test_guests_placed_since_an_unchanged_payload_count(self):
        """Ensures a payload reused across requests (the agent has not
        published since) meets the compute record of each request: guests
        nova placed in between are unseen memory. 30002 MB of them can
        leave neither cell 20000 MB (40000 - 19999 + 30000 - 19999).
        """
        trusted = _trusted('two-node-64g', {0: 40000, 1: 30000},
                           untouched={0: 0, 1: 0}, guests_mb=0)
        self._with_live(trusted)
        spec = fakes.request_spec(20000, 4)
        for used_mb, passing in ((512, ['two-node-64g']),
                                 (512 + 30002, []),
                                 (512, ['two-node-64g'])):
            host = fakes.host_state(fakes.two_node_cells(), used_mb=used_mb,
                                    name='two-node-64g')
            self.assertEqual(passing, self._passing([host], spec), used_mb)

    def test_unchanged_payload_and_record_reuse_the_live_host(self):
        """Ensures the live figures derived from a payload are reused while
        neither it nor the compute record changes, and derived again when
        the record's cells, used memory or allocation ratio do.
        """
        trusted = _trusted('two-node-64g', {0: 40000, 1: 30000},
                           untouched={0: 0, 1: 0}, guests_mb=0)
        self._with_live(trusted)
        spec = fakes.request_spec(20000, 4)
        record = fakes.host_state(fakes.two_node_cells(), name='two-node-64g')
        busier = fakes.host_state(fakes.two_node_cells(), name='two-node-64g',
                                  used_mb=512 + 30002)
        overcommitted = fakes.host_state(fakes.two_node_cells(),
                                         name='two-node-64g', ratio=1.5)
        # A NUMA guest of 4 GB on cell 0 and a plain one of 4 GB gone: the
        # same used memory and ratio, other cells.
        cells = fakes.two_node_cells()
        cells[0] = topology.Cell(0, cells[0].cpus, cells[0].memory_mb,
                                 small_page_used_mb=4096, numa_used_mb=4096)
        moved = fakes.host_state(cells, name='two-node-64g', ratio=1.5)
        with mock.patch.object(host_view, 'live_memory', autospec=True,
                               side_effect=host_view.live_memory) as derive:
            for state, passing, derived in ((record, ['two-node-64g'], 1),
                                            (record, ['two-node-64g'], 1),
                                            (overcommitted,
                                             ['two-node-64g'], 2),
                                            (moved, ['two-node-64g'], 3),
                                            (busier, [], 4),
                                            (busier, [], 4)):
                self.assertEqual(passing, self._passing(
                    [copy.copy(state)], spec))
                self.assertEqual(derived, derive.call_count)

    def test_live_data_not_covering_the_cells_is_ignored_with_a_warning(self):
        """Ensures a payload for other nodes is not used, and said so."""
        self._with_live(_trusted('two-node-64g', {0: 100, 5: 100}))
        with mock.patch.object(numa_cell_fit.LOG, 'warning',
                               autospec=True) as warning:
            self.assertEqual(['two-node-64g'], self._passing(
                [self.two_node], fakes.request_spec(16 * GB, 4)))
        message = warning.call_args[0][0] % warning.call_args[0][1]
        self.assertIn('ignoring the live data of two-node-64g: its nodes '
                      '[0, 5] do not cover the cells [0, 1] nova has', message)

    def test_on_missing_live_data_policy(self):
        """Ensures hosts without trusted data follow the policy."""
        spec = fakes.request_spec(70000, 4)
        for policy, passing in (('accounted', []), ('pass', ['two-node-64g']),
                                ('reject', [])):
            self.flags(on_missing_live_data=policy, group='numa_guard')
            self.filt = numa_cell_fit.NUMACellFitFilter()
            self._with_live(None, {'two-node-64g': 'stale: 100 s old'})
            self.assertEqual(passing, self._passing([self.two_node], spec),
                             policy)
        with mock.patch.object(numa_cell_fit.LOG, 'debug',
                               autospec=True) as debug:
            self._passing([self.two_node], fakes.request_spec(4 * GB, 4))
        message = debug.call_args[0][0] % debug.call_args[0][1]
        self.assertIn('no trusted live memory data (stale: 100 s old) and '
                      '[numa_guard] on_missing_live_data = reject', message)

    def test_failing_source_falls_back_to_accounting(self):
        """Ensures a source that raises does not reach nova."""
        with mock.patch.object(self.filt._source, 'live_data',
                               autospec=True, side_effect=OSError('down')):
            self.assertEqual(['two-node-64g'], self._passing(
                [self.two_node], fakes.request_spec(16 * GB, 4)))

    def test_broken_host_data_passes_with_a_warning(self):
        """Ensures a host whose data cannot be read passes, logged."""
        with mock.patch.object(host_view, 'get', autospec=True,
                               side_effect=TypeError('bad')):
            with mock.patch.object(numa_cell_fit.LOG, 'warning',
                                   autospec=True) as warning:
                self.assertTrue(self.filt.host_passes(
                    self.two_node, fakes.request_spec(70000, 4)))
        warning.assert_called_once()

    def test_unknown_memory_source_fails_at_start(self):
        """Ensures a bad memory_source stops the scheduler at start."""
        self.flags(memory_source='nope', group='numa_guard')
        error = self.assertRaises(live.MemorySourceError,
                                  numa_cell_fit.NUMACellFitFilter)
        self.assertIn("memory_source = 'nope'", str(error))
        self.assertIn('accounted', str(error))

    def test_bad_configuration_stops_the_start(self):
        """Ensures bad options fail at start with one line naming them."""
        self.flags(live_data_memo_seconds=60, max_data_age=30,
                   group='numa_guard')
        error = self.assertRaises(conf.ConfigError,
                                  numa_cell_fit.NUMACellFitFilter)
        self.assertIn('[numa_guard] live_data_memo_seconds = 60.0 must be '
                      'less than [numa_guard] max_data_age = 30', str(error))
        self.flags(live_data_memo_seconds=2, memory_source='cache',
                   group='numa_guard')
        for servers in ([], ['notahost:abc']):
            self.flags(backend='dogpile.cache.pymemcache',
                       memcache_servers=servers, group='cache')
            error = self.assertRaises(live.MemorySourceError,
                                      numa_cell_fit.NUMACellFitFilter)
            self.assertEqual(1, len(str(error).splitlines()))
            self.assertIn("memory_source = 'cache': ", str(error))

    def test_unsigned_live_data_is_warned_about_at_start(self):
        """Ensures a live source without a signing key logs one WARNING."""
        live_dir = self.useFixture(fixtures.TempDir()).path
        self.flags(memory_source='file', live_data_path=live_dir,
                   group='numa_guard')
        with mock.patch.object(numa_cell_fit.LOG, 'warning',
                               autospec=True) as warning:
            numa_cell_fit.NUMACellFitFilter()
        warning.assert_called_once()
        self.assertIn('payload_signing_key', warning.call_args[0][0])
        self.flags(payload_signing_key='secret', group='numa_guard')
        with mock.patch.object(numa_cell_fit.LOG, 'warning',
                               autospec=True) as warning:
            numa_cell_fit.NUMACellFitFilter()
        warning.assert_not_called()

    def test_reserve_for_a_node_a_host_lacks_is_warned_about_once(self):
        """Ensures a reserve naming a node no host has is not silent."""
        self.flags(reserved_node_memory_mb='0:512,7:1024', group='numa_guard')
        filt = numa_cell_fit.NUMACellFitFilter()
        hosts = [fakes.host_state(fakes.two_node_cells(), name='h%d' % i)
                 for i in range(3)]
        with mock.patch.object(numa_cell_fit.LOG, 'warning',
                               autospec=True) as warning:
            list(filt.filter_all(hosts, fakes.request_spec(4096, 2)))
            list(filt.filter_all(hosts, fakes.request_spec(4096, 2)))
        warning.assert_called_once()
        message = warning.call_args[0][0] % warning.call_args[0][1]
        self.assertEqual('[numa_guard] reserved_node_memory_mb names node(s) '
                         '7, which h0 does not have (its nodes: 0, 1); '
                         'nothing is reserved there', message)

    def test_hosts_without_numa_data(self):
        """Ensures hosts with no topology or odd cells pass, never raise."""
        spec = fakes.request_spec(70000, 4)
        for cells in ([], [topology.Cell(0, frozenset(), 0),
                           topology.Cell(1, frozenset(), 0)]):
            host = fakes.host_state(cells)
            self.assertTrue(self.filt.host_passes(host, spec))
        bare = fakes.host_state(fakes.two_node_cells())
        bare.updated = None  # not the record the cells memo has seen
        bare.numa_topology = objects.NUMATopology(cells=[
            objects.NUMACell(id=0, cpuset=set(range(4)), pcpuset=set(),
                             memory=1024, memory_usage=0),
            objects.NUMACell(id=1, cpuset=set(range(4, 8)), pcpuset=set(),
                             memory=1024, memory_usage=0)])
        self.assertFalse(self.filt.host_passes(bare, spec))
        self.assertTrue(self.filt.host_passes(
            bare, fakes.request_spec(512, 4)))


@st.composite
def _nova_cells(draw):
    cells = []
    for i in range(draw(st.integers(0, 4))):
        memory = draw(st.integers(-10, 100000))
        # Every field a compute's record has (nova's own fit needs them).
        kwargs = dict(id=i, memory=memory,
                      cpuset=draw(st.sets(st.integers(0, 63), max_size=8)),
                      pcpuset=set(), cpu_usage=0, pinned_cpus=set(),
                      siblings=[], mempages=[],
                      memory_usage=draw(st.integers(-10, 100000)))
        if draw(st.booleans()):
            kwargs['mempages'] = [objects.NUMAPagesTopology(
                size_kb=draw(st.sampled_from([4, 2048])),
                total=draw(st.integers(0, 10 ** 7)),
                used=draw(st.integers(0, 10 ** 7)),
                reserved=draw(st.integers(0, 10 ** 5)))]
        cells.append(objects.NUMACell(**kwargs))
    return cells


class FilterNeverRaisesTest(test.NoDBTestCase):

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
    @hypothesis.given(_nova_cells(), st.integers(-1000, 10 ** 6),
                      st.integers(-1000, 10 ** 6), st.integers(0, 300000),
                      st.integers(0, 64), st.booleans())
    def test_no_host_or_request_makes_it_raise(self, cells, total, free,
                                               memory_mb, vcpus, has_topo):
        """Ensures any host data and request is judged without an error.

        The filter would catch an error and let the host pass with a
        warning; no generated input may get that far.
        """
        host = fakes.host_state(fakes.two_node_cells())
        host.updated = None  # not the record the cells memo has seen
        host.numa_topology = (objects.NUMATopology(cells=cells)
                              if has_topo else None)
        host.total_usable_ram_mb = total
        host.free_ram_mb = free
        with mock.patch.object(numa_cell_fit.LOG, 'warning',
                               autospec=True) as warning:
            result = numa_cell_fit.NUMACellFitFilter().host_passes(
                host, fakes.request_spec(memory_mb, vcpus))
        self.assertIsInstance(result, bool)
        warning.assert_not_called()

    def test_unreadable_request_passes_every_host(self):
        """Ensures a request the guard cannot read passes all its hosts
        with one warning, instead of raising into nova.
        """
        hosts = [fakes.host_state(fakes.two_node_cells(), name=name)
                 for name in ('a', 'b')]
        spec = fakes.request_spec(70000, 4)
        with mock.patch.object(numa_cell_fit.request_view, 'of',
                               autospec=True, side_effect=ValueError('bad')), \
                mock.patch.object(numa_cell_fit.LOG, 'warning',
                                  autospec=True) as warning:
            passed = list(numa_cell_fit.NUMACellFitFilter().filter_all(
                hosts, spec))
        self.assertEqual(hosts, passed)
        warning.assert_called_once_with(
            'NUMACellFitFilter could not read the request; it passes every '
            'host', exc_info=True)

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
    @hypothesis.given(_nova_cells(), st.integers(-1000, 10 ** 6),
                      st.lists(st.integers(0, 100000), min_size=0,
                               max_size=3),
                      st.one_of(st.none(), st.dictionaries(
                          st.integers(0, 5), st.integers(0, 100000))),
                      st.one_of(st.none(), st.integers(0, 10 ** 6)))
    def test_no_live_data_or_numa_request_makes_it_raise(
            self, cells, used, guest_cells, free, guests_mb):
        """Ensures live data and NUMA requests never reach the catch-all.

        Any trusted payload (covering nova's cells or not, with or without
        guest figures) and any small-page NUMA request (or none) is judged
        without an error.
        """
        host = fakes.host_state(fakes.two_node_cells(), name='h')
        host.updated = None  # not the record the cells memo has seen
        host.numa_topology = objects.NUMATopology(cells=cells)
        host.free_ram_mb = host.total_usable_ram_mb - used
        filt = numa_cell_fit.NUMACellFitFilter()
        hosts = {}
        if free is not None:
            untouched = None
            if guests_mb is not None:
                untouched = {node: mb // 3 for node, mb in free.items()}
            hosts['h'] = _trusted('h', free, untouched=untouched,
                                  guests_mb=guests_mb)
        self.useFixture(fixtures.MockPatchObject(
            filt._source, 'live_data', autospec=True,
            return_value=source.LiveData(hosts)))
        topology = _numa_request(*guest_cells) if guest_cells else None
        with mock.patch.object(numa_cell_fit.LOG, 'warning',
                               autospec=True) as warning:
            result = filt.host_passes(host, fakes.request_spec(
                sum(guest_cells) or 1024, 2 * max(1, len(guest_cells)),
                numa_topology=topology))
        self.assertIsInstance(result, bool)
        self.assertTrue(all('ignoring the live data' in call[0][0]
                            for call in warning.call_args_list),
                        warning.call_args_list)
