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

import datetime
import itertools
import sys

from eventlet import patcher
import fixtures
from nova import objects
from oslo_utils import fixture as utils_fixture
from oslo_utils import timeutils

from nova_numa_guard import fit
from nova_numa_guard import host_view
from nova_numa_guard import topology
from tests import testcase
from tests.unit import fakes


def _record(last_used):
    """A memo entry last used by request ``last_used``."""
    record = host_view._Record('host', (), 0, 1.0, None, None, None)
    record.last_used = last_used
    return record


def _cell(**kwargs):
    fields = dict(id=0, cpuset={0, 1, 2, 3}, pcpuset={4, 5}, memory=65536,
                  memory_usage=0, cpu_usage=0, pinned_cpus=set(),
                  siblings=[])
    fields.update(kwargs)
    return objects.NUMACell(**fields)


class CellFromNovaTest(testcase.TestCase):

    def test_smallest_page_pool_is_small_page_memory(self):
        """Ensures hugepages and reserved small pages are carved out."""
        cell = host_view.cell_from_nova(_cell(
            memory=65536, memory_usage=10240,
            mempages=[
                objects.NUMAPagesTopology(size_kb=1048576, total=32, used=8,
                                          reserved=0),
                objects.NUMAPagesTopology(size_kb=4, total=8388608,
                                          used=524288, reserved=262144)],
            network_metadata=objects.NetworkMetadata(physnets={'foo'},
                                                     tunneled=True),
            socket=1))
        self.assertEqual(65536, cell.memory_mb)
        self.assertEqual(32768 - 1024, cell.small_page_mb)
        self.assertEqual(2048, cell.small_page_used_mb)
        self.assertEqual(10240, cell.numa_used_mb)
        # Only what a verdict reads, as plain values: CPUs are counted.
        self.assertEqual((4, 2), (len(cell.cpus), len(cell.pcpus)))
        self.assertEqual((frozenset({'foo'}), True),
                         (cell.physnets, cell.tunneled))

    def test_fields_are_read_where_nova_keeps_them(self):
        """Ensures a full record is read from the fields' storage.

        Where nova keeps a field's value (nova.objects.base.get_attrname) is
        read directly, ten times faster than through the field's property;
        this fails if nova or oslo.versionedobjects keep them elsewhere,
        which would leave every host on the slow path. Both paths agree.
        """
        numa_cell = _cell(
            memory_usage=4096,
            mempages=[objects.NUMAPagesTopology(size_kb=size, total=total,
                                                used=used, reserved=reserved)
                      for size, total, used, reserved in (
                          (4, 8388608, 262144, 1024), (2048, 1024, 512, 0),
                          (1048576, 8, 0, 0))],
            network_metadata=objects.NetworkMetadata(physnets={'foo'},
                                                     tunneled=True))
        fast = host_view._from_storage(numa_cell)
        self.useFixture(fixtures.MockPatchObject(
            host_view, '_from_storage', side_effect=AttributeError))
        slow = host_view.cell_from_nova(numa_cell)
        for name in fast.__slots__:
            self.assertEqual(getattr(slow, name), getattr(fast, name), name)
        self.assertEqual((32764, 1024), (fast.small_page_mb,
                                         fast.small_page_used_mb))

    def test_nothing_of_novas_objects_is_kept(self):
        """Ensures a memoised cell does not keep nova's objects alive.

        Every value of the cell is a plain Python value, so the NUMACell it
        was read from (and its HostState) can be freed after the request.
        """
        numa_cell = _cell(mempages=[objects.NUMAPagesTopology(
            size_kb=4, total=1024, used=0, reserved=0)],
            network_metadata=objects.NetworkMetadata(physnets={'foo'},
                                                     tunneled=False))
        cell = host_view.cell_from_nova(numa_cell)
        plain = (int, bool, range, frozenset, tuple, type(None),
                 type(cell.hugepages))
        for name in cell.__slots__:
            self.assertIsInstance(getattr(cell, name), plain, name)
        self.assertEqual([str], [type(n) for n in cell.physnets])

    def test_counted_cell_reads_as_a_full_cell(self):
        """Ensures the view's cells answer every attribute a Cell has.

        The counted cell leaves what nova's records do not give to its
        class (empty); code that reads a Cell reads it the same, and a copy
        of it is a full Cell.
        """
        cell = host_view.cell_from_nova(_cell(memory_usage=1024))
        full = topology.Cell(0, frozenset({0, 1, 2, 3}), 65536,
                             small_page_used_mb=1024, numa_used_mb=1024,
                             pcpus=frozenset({4, 5}))
        for name in topology.Cell.__slots__:
            got, want = getattr(cell, name), getattr(full, name)
            if name in ('cpus', 'pcpus'):
                got, want = len(got), len(want)
            self.assertEqual(want, got, name)
        self.assertEqual((True, repr(full)), (cell.holds_guests, repr(cell)))
        copy = cell.replace(memory_mb=1024)
        self.assertIs(topology.Cell, type(copy))
        self.assertEqual((1024, 65536), (copy.memory_mb, cell.memory_mb))
        self.assertEqual({}, dict(copy.hugepages))

    def test_cells_that_read_the_same_are_one_object(self):
        """Ensures cells that read the same share one object, and only they.

        Cells with physnets or tunnels are never shared; the table of shared
        cells stays within its bound, whatever the fleet.
        """
        shared = {}
        self.useFixture(fixtures.MockPatchObject(topology, '_SHARED', shared))
        self.useFixture(fixtures.MockPatchObject(topology, '_MAX_SHARED', 3))
        first = host_view.cell_from_nova(_cell(memory_usage=1024))
        self.assertIs(first, host_view.cell_from_nova(_cell(
            memory_usage=1024)))
        for fields in (dict(memory_usage=2048), dict(id=1),
                       dict(cpuset={0, 1}), dict(pcpuset=set()),
                       dict(memory=32768),
                       dict(mempages=[objects.NUMAPagesTopology(
                           size_kb=4, total=8388608, used=0, reserved=0)])):
            other = host_view.cell_from_nova(_cell(**dict(
                dict(memory_usage=1024), **fields)))
            self.assertIsNot(first, other, fields)
            self.assertNotEqual(topology.COUNTED_FIELDS(first),
                                topology.COUNTED_FIELDS(other), fields)
            self.assertLessEqual(len(shared), 3)
        for physnets, tunneled in (({'foo'}, False), (set(), True)):
            network = objects.NetworkMetadata(physnets=physnets,
                                              tunneled=tunneled)
            cells = [host_view.cell_from_nova(_cell(network_metadata=network))
                     for _ in range(2)]
            self.assertIsNot(cells[0], cells[1])
            self.assertEqual((frozenset(physnets), tunneled),
                             (cells[1].physnets, cells[1].tunneled))
        self.assertEqual((1024, 4, 2), (first.numa_used_mb, len(first.cpus),
                                        len(first.pcpus)))

    def test_pool_without_reserved_pages_reserves_none(self):
        """Ensures a page pool of an older record, without reserved, counts
        as reserving nothing (as nova's NUMAPagesTopology.free does).
        """
        pool = objects.NUMAPagesTopology(size_kb=4, total=1048576, used=0)
        self.assertFalse(pool.obj_attr_is_set('reserved'))
        cell = host_view.cell_from_nova(_cell(memory=4096, mempages=[pool]))
        self.assertEqual(4096, cell.small_page_mb)

    def test_missing_mempages_fall_back_to_memory(self):
        """Ensures cells from computes without page data use memory."""
        cell = host_view.cell_from_nova(_cell(memory=4096, memory_usage=1024))
        self.assertEqual((4096, 1024), (cell.small_page_mb,
                                        cell.small_page_used_mb))
        self.assertEqual((frozenset(), False, None),
                         (cell.physnets, cell.tunneled, cell.socket))

    def test_an_older_cell_among_full_ones_is_read_as_nova_does(self):
        """Ensures a record with one cell missing fields is read in full.

        The cells of a host are read from the fields' storage in one pass;
        a cell of an older compute, without mempages or network metadata,
        sends the whole host through the field properties instead.
        """
        pool = objects.NUMAPagesTopology(size_kb=4, total=1048576, used=0,
                                         reserved=0)
        full = [_cell(id=i, memory=8192, memory_usage=1024,
                      mempages=[pool],
                      network_metadata=objects.NetworkMetadata(
                          physnets={'foo'}, tunneled=False))
                for i in (0, 2)]
        older = _cell(id=1, memory=4096, memory_usage=512)
        state = fakes.host_state([])
        state.numa_topology = objects.NUMATopology(
            cells=[full[0], older, full[1]])
        cells = host_view.cells_from_state(state)
        self.assertEqual([0, 1, 2], [c.id for c in cells])
        self.assertEqual([4096, 4096, 4096],
                         [c.small_page_mb for c in cells])
        self.assertEqual([0, 512, 0],
                         [c.small_page_used_mb for c in cells])
        self.assertEqual([frozenset({'foo'}), frozenset(), frozenset({'foo'})],
                         [c.physnets for c in cells])


class HostViewTest(testcase.TestCase):

    def test_host_from_state(self):
        """Ensures host-wide usage and ratio come from the HostState."""
        state = fakes.host_state(fakes.two_node_cells(), used_mb=2048,
                                 ratio=1.5)
        host = host_view.host_from_state(state)
        self.assertEqual('host1', host.name)
        self.assertEqual([64328, 64510], [c.memory_mb for c in host.cells])
        self.assertEqual((2048, 1.5), (host.used_mb,
                                       host.ram_allocation_ratio))

    def test_no_topology_gives_no_cells(self):
        """Ensures non-libvirt hosts become hosts with no cells."""
        state = fakes.host_state([])
        self.assertIsNone(state.numa_topology)
        self.assertEqual((), host_view.get(state).host.cells)

    def test_placed_memory_is_the_drop_of_free_ram(self):
        """Ensures the view sees what nova consumed since it was built."""
        state = fakes.host_state(fakes.two_node_cells())
        view = host_view.get(state)
        state.free_ram_mb -= 3000
        self.assertIs(view, host_view.get(state))
        self.assertEqual(3000, view.placed_mb(state))

    def test_hosts_are_memoised_per_compute_node_record(self):
        """Ensures a host is read again exactly when its record changes."""
        host_view.begin_request()
        state = fakes.host_state(fakes.two_node_cells())
        first = host_view.host_from_state(state)
        again = fakes.host_state(fakes.two_node_cells())
        again.updated = state.updated
        self.assertIs(first, host_view.host_from_state(again))
        again.free_ram_mb -= 2048  # an instance came or went
        self.assertIsNot(first, host_view.host_from_state(again))
        self.assertEqual(first.used_mb + 2048,
                         host_view.host_from_state(again).used_mb)
        when = state.updated
        for name, value, read in (
                ('total_usable_ram_mb', state.total_usable_ram_mb + 1024,
                 ('used_mb', first.used_mb + 1024)),
                ('ram_allocation_ratio', 2.0, ('ram_allocation_ratio', 2.0)),
                ('host', 'renamed', ('name', 'renamed'))):
            # In the same record and in a newer one (which keeps the cells),
            # each after the unchanged record.
            for newer in (0, 1):
                when += datetime.timedelta(seconds=2)
                unchanged = fakes.host_state(fakes.two_node_cells())
                unchanged.updated = when
                kept = host_view.host_from_state(unchanged)
                changed = fakes.host_state(fakes.two_node_cells())
                changed.updated = when + datetime.timedelta(seconds=newer)
                setattr(changed, name, value)
                host = host_view.host_from_state(changed)
                self.assertEqual(read[1], getattr(host, read[0]), name)
                self.assertIs(kept.cells, host.cells)
        newer = fakes.host_state(fakes.two_node_cells()[:1])
        newer.updated += datetime.timedelta(seconds=1)
        self.assertEqual(1, len(host_view.host_from_state(newer).cells))

    def test_a_newer_record_keeps_what_reads_the_same(self):
        """Ensures a rewritten record keeps the cells that did not change.

        Nova rewrites a record for every guest added or removed: the cells
        and what fit derived from the host are kept when nothing the guard
        reads changed, the cells when a guest without a NUMA topology came,
        all but the cell a NUMA guest took.
        """
        host_view.begin_request()
        state = fakes.host_state(fakes.two_node_cells())
        first = host_view.host_from_state(state)
        fit.accounted_free_mb(first)
        later = datetime.timedelta(seconds=1)
        rewritten = fakes.host_state(fakes.two_node_cells())
        rewritten.updated = state.updated + later
        same = host_view.host_from_state(rewritten)
        self.assertIs(first.cells, same.cells)
        self.assertIsNotNone(first.derived)
        self.assertIs(first.derived, same.derived)

        rewritten.updated += later
        rewritten.free_ram_mb -= 2048  # a guest without a NUMA topology
        floating = host_view.host_from_state(rewritten)
        self.assertIsNot(first, floating)
        self.assertIs(first.cells, floating.cells)
        self.assertIsNone(floating.derived)
        self.assertEqual(first.used_mb + 2048, floating.used_mb)

        rewritten.updated += later
        rewritten.free_ram_mb -= 4096  # a NUMA guest on cell 1
        numa_cell = rewritten.numa_topology.cells[1]
        numa_cell.memory_usage += 4096
        numa_cell.mempages[0].used += 4096 * 1024 // 4
        bound = host_view.host_from_state(rewritten)
        self.assertIs(first.cells[0], bound.cells[0])
        self.assertIsNot(first.cells[1], bound.cells[1])
        self.assertEqual((0, 4096), (bound.cells[0].small_page_used_mb,
                                     bound.cells[1].small_page_used_mb))
        self.assertEqual((first.used_mb + 6144, 0, 0),
                         (bound.used_mb, first.cells[1].small_page_used_mb,
                          first.cells[1].numa_used_mb))

    def test_a_newer_record_with_any_cell_field_changed_is_read(self):
        """Ensures a kept cell is one whose every field reads the same.

        One change per field a verdict reads, each on a newer record of the
        same compute node.
        """
        host_view.begin_request()

        def pools(small_total=8388608, small_used=0, small_reserved=0):
            return [objects.NUMAPagesTopology(
                size_kb=4, total=small_total, used=small_used,
                reserved=small_reserved),
                objects.NUMAPagesTopology(size_kb=2048, total=1024, used=0,
                                          reserved=0)]

        changes = {
            'id': dict(id=1),
            'memory': dict(memory=32768),
            'memory_usage': dict(memory_usage=2048),
            'cpuset': dict(cpuset={0, 1, 2}),
            'pcpuset': dict(pcpuset={4}),
            'small pages': dict(mempages=pools(small_total=4194304)),
            'small pages used': dict(mempages=pools(small_used=1024)),
            'small pages reserved': dict(mempages=pools(small_reserved=256)),
            'physnets': dict(network_metadata=objects.NetworkMetadata(
                physnets={'foo'}, tunneled=False)),
            'tunneled': dict(network_metadata=objects.NetworkMetadata(
                physnets=set(), tunneled=True)),
        }
        base = dict(mempages=pools(), network_metadata=objects.NetworkMetadata(
            physnets=set(), tunneled=False))
        state = fakes.host_state(fakes.two_node_cells())
        state.numa_topology = objects.NUMATopology(cells=[_cell(**base)])
        when = state.updated
        before = host_view.host_from_state(state).cells[0]
        for name, change in changes.items():
            when += datetime.timedelta(seconds=1)
            changed = fakes.host_state(fakes.two_node_cells())
            changed.updated = when
            changed.numa_topology = objects.NUMATopology(
                cells=[_cell(**dict(base, **change))])
            cell = host_view.host_from_state(changed).cells[0]
            self.assertEqual(topology.COUNTED_FIELDS(host_view._from_storage(
                changed.numa_topology.cells[0])),
                topology.COUNTED_FIELDS(cell), name)
            self.assertNotEqual(topology.COUNTED_FIELDS(before),
                                topology.COUNTED_FIELDS(cell), name)
            # Back to the first record: read again, not kept.
            when += datetime.timedelta(seconds=1)
            state.updated = when
            again = host_view.host_from_state(state).cells[0]
            self.assertIsNot(cell, again, name)
            self.assertEqual(topology.COUNTED_FIELDS(before),
                             topology.COUNTED_FIELDS(again), name)

    def test_free_device_nodes_are_read_once_per_record(self):
        """Ensures the nodes of free PCI devices are kept with the record.

        Read from the first HostState of a memoised record, again for a
        newer record, and every time for a record that is not memoised.
        """
        host_view.begin_request()
        when = timeutils.utcnow(with_timezone=True) - datetime.timedelta(
            seconds=60)
        vf = {'vendor_id': '8086', 'product_id': '1515', 'numa_node': 1,
              'count': 4, 'dev_type': 'type-VF'}

        def state(updated, pools):
            hs = fakes.host_state(fakes.two_node_cells(), pools=pools)
            hs.updated = updated
            return hs

        first = state(when, [vf, dict(vf, numa_node=0, count=0)])
        self.assertEqual(frozenset([1]), host_view.device_nodes(
            host_view.get(first), first))
        # The same record: kept, whatever the HostState's pools say.
        same = state(when, [])
        self.assertEqual(frozenset([1]), host_view.device_nodes(
            host_view.get(same), same))
        newer = state(when + datetime.timedelta(seconds=1),
                      [dict(vf, numa_node=None)])
        self.assertEqual(frozenset([None]), host_view.device_nodes(
            host_view.get(newer), newer))
        young = state(timeutils.utcnow(with_timezone=True), [])
        view = host_view.get(young)
        self.assertIsNone(view.record)
        self.assertEqual(frozenset(), host_view.device_nodes(view, young))
        young.pci_stats.pools.append(vf)
        self.assertEqual(frozenset([1]), host_view.device_nodes(view, young))
        # Hosts with the same nodes share one set.
        self.assertIs(host_view.pool_nodes([vf]),
                      host_view.pool_nodes([dict(vf, count=1)]))
        self.assertIs(host_view.pool_nodes([]),
                      host_view.pool_nodes([dict(vf, count=0)]))

    def test_records_younger_than_a_second_are_not_memoised(self):
        """Ensures a record that may still change in its second is re-read.

        Databases may keep updated_at in whole seconds; nova's
        consume_from_request stamps a naive UTC time.
        """
        now = timeutils.utcnow(with_timezone=True)
        self.useFixture(utils_fixture.TimeFixture(now))
        host_view.begin_request()
        state = fakes.host_state(fakes.two_node_cells())
        cell = state.numa_topology.cells[0]
        state.updated = now - datetime.timedelta(milliseconds=999)
        host_view.host_from_state(state)
        # Rewritten within the same second: read again.
        cell.memory_usage += 2048
        self.assertEqual(2048, host_view.host_from_state(
            state).cells[0].numa_used_mb)
        state.updated = now.replace(tzinfo=None)
        cell.memory_usage += 2048
        self.assertEqual(4096, host_view.host_from_state(
            state).cells[0].numa_used_mb)
        state.updated = now - datetime.timedelta(seconds=1)
        settled = host_view.host_from_state(state)
        # Memoised: not read again while the record keeps its timestamp.
        cell.memory_usage += 2048
        self.assertIs(settled, host_view.host_from_state(state))
        self.assertEqual(4096, settled.cells[0].numa_used_mb)

    def _memoised(self, name):
        state = fakes.host_state(fakes.two_node_cells(), name=name)
        state.uuid = name
        host_view.host_from_state(state)
        return state

    def test_small_requests_do_not_empty_the_memo(self):
        """Ensures a host read once per pruning window keeps its cells.

        A stream of one-host requests (a forced host, a rebuild) between two
        large requests must not evict the large requests' hosts; a compute
        node that no request reads for a whole window goes.
        """
        self.useFixture(fixtures.MockPatchObject(
            host_view, '_MEMO', {}))
        self.useFixture(fixtures.MockPatchObject(host_view, '_REQUESTS', [0]))
        self.useFixture(fixtures.MockPatchObject(
            host_view, '_COUNTER', itertools.count(1)))
        host_view.begin_request()
        fleet = [self._memoised('h%d' % i) for i in range(50)]
        gone = self._memoised('replaced')
        for window in range(3):
            for _ in range(host_view._PRUNE_EVERY - 1):
                host_view.begin_request()
            for state in fleet:
                host_view.host_from_state(state)
            host_view.begin_request()
            self.assertLessEqual({s.uuid for s in fleet},
                                 set(host_view._MEMO), window)
        self.assertEqual({s.uuid for s in fleet}, set(host_view._MEMO))
        self.assertNotIn(gone.uuid, host_view._MEMO)

    def test_pruning_while_other_threads_memoise(self):
        """Ensures every pruning removes the stale entries while requests on
        other threads add cells to the memo (nova's scheduler runs native
        threads), and never raises.
        """
        memo = {}
        self.useFixture(fixtures.MockPatchObject(host_view, '_MEMO',
                                                 memo))
        self.useFixture(fixtures.MockPatchObject(host_view, '_REQUESTS', [0]))
        self.useFixture(fixtures.MockPatchObject(
            host_view, '_COUNTER', itertools.count(1)))
        self.useFixture(fixtures.MockPatchObject(
            host_view, '_PRUNE_EVERY', 1))
        stop = patcher.original('threading').Event()
        # Switch threads as often as the interpreter can, so that the other
        # thread writes while a pruning walks the memo.
        self.addCleanup(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(1e-6)

        def memoise():
            i = 0
            while not stop.is_set():
                memo['new%d' % (i % 5000)] = _record(0)
                i += 1

        # A native thread, as nova's scheduler runs requests on (the
        # tests import nova, which lets eventlet patch threading).
        thread = patcher.original('threading').Thread(target=memoise)
        thread.start()
        try:
            for round_ in range(200):
                used = host_view._REQUESTS[0]
                stale = ['stale%d' % i for i in range(50)]
                for key in stale:
                    memo[key] = _record(used)
                # The second request prunes what the first did not use.
                host_view.begin_request()
                host_view.begin_request()
                self.assertEqual([], [key for key in stale if key in memo],
                                 round_)
        finally:
            stop.set()
            thread.join()
