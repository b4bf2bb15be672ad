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

"""Tests of the fleet file parser: good files, bad files, hostile files."""

import json
import os
import shutil

import fixtures
import hypothesis
from hypothesis import strategies as st
import yaml

from nova_numa_guard.inputs import fleet
from nova_numa_guard.inputs import InputError
from nova_numa_guard.live import payload
from tests import examples
from tests import testcase

CELLS = [{'cpus': '0-11', 'memory_mb': 64328},
         {'cpus': '12-23', 'memory_mb': 64510}]


class _Dumper(yaml.SafeDumper):
    """Writes shared values again instead of aliases (refused)."""

    def ignore_aliases(self, data):
        return True


def dump(document):
    return yaml.dump(document, Dumper=_Dumper)


def host(**fields):
    """A host of two inline cells, with ``fields`` added or replaced."""
    item = {'name': 'two-node-64g', 'cells': CELLS}
    item.update(fields)
    return {key: value for key, value in item.items() if value is not None}


class FleetTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = 'wb' if isinstance(data, bytes) else 'w'
        with open(path, mode) as f:
            f.write(data)
        return path

    def fleet(self, document, name='fleet.yaml'):
        """Write ``document`` (a dict, or YAML text) and parse it."""
        text = (document if isinstance(document, str)
                else dump(document))
        return fleet.load(self.write(name, text))

    def copy_example(self, name):
        shutil.copy(examples.path(name), os.path.join(self.tmp, name))


class ExamplesTest(FleetTestCase):

    def test_the_example_fleet_parses(self):
        """Ensures examples/fleet.yaml gives every shape it describes."""
        parsed = fleet.load(examples.FLEET)
        by_name = {fh.host.name: fh for fh in parsed.hosts}
        self.assertEqual(
            ['two-node-64g', 'two-node-96g-32g', 'four-node-128g',
             'two-node-64g-cxl-256g', 'one-node-192g', 'two-node-64g-sriov'],
            [fh.host.name for fh in parsed.hosts])
        self.assertEqual(('x710-vf',),
                         tuple(a['name'] for a in parsed.pci_aliases))

        motivating = by_name['two-node-64g'].host
        self.assertEqual([64328, 64510],
                         [c.memory_mb for c in motivating.cells])
        self.assertEqual({0: 10501, 1: 2769}, motivating.live.free_mb)
        self.assertEqual({0: 14286, 1: 7854}, motivating.live.available_mb)
        self.assertEqual(98816, motivating.used_mb)

        asymmetric = by_name['two-node-96g-32g'].host
        self.assertEqual([95487, 32195],
                         [c.small_page_mb for c in asymmetric.cells])
        self.assertIsNone(asymmetric.live)

        four = by_name['four-node-128g']
        self.assertEqual(4, len(four.host.cells))
        self.assertEqual(327680, four.guests_mb)
        self.assertEqual({0: 4096, 1: 16384, 2: 0, 3: 8192},
                         four.host.live.untouched_mb)

        cxl = by_name['two-node-64g-cxl-256g'].host
        self.assertEqual([True, True, False],
                         [c.holds_guests for c in cxl.cells])

        one = by_name['one-node-192g'].host
        self.assertEqual(1, len(one.cells))
        self.assertEqual(131584, one.used_mb)

        sriov = by_name['two-node-64g-sriov']
        self.assertEqual((fleet.PciPool(1, '8086', '154c', 'type-VF',
                                        'physnet2', 16),), sriov.pci)
        self.assertEqual([frozenset(), frozenset(['physnet2'])],
                         [c.physnets for c in sriov.host.cells])

    def test_the_two_node_fleet_keeps_nova_defaults(self):
        """Ensures a host without used_mb has nova's reserve as its usage."""
        parsed = fleet.load(examples.TWO_NODE_FLEET)
        (only,) = parsed.hosts
        self.assertEqual(fleet.RESERVED_HOST_MB, only.host.used_mb)
        self.assertEqual(0, only.vcpus_used)
        self.assertEqual((4.0, 1.0), (only.cpu_allocation_ratio,
                                      only.host.ram_allocation_ratio))


class GoodFleetTest(FleetTestCase):

    def test_paths_are_relative_to_the_fleet_file(self):
        """Ensures files named by a fleet are found next to it."""
        os.makedirs(os.path.join(self.tmp, 'sub'))
        shutil.copy(examples.TWO_NODE_XML,
                    os.path.join(self.tmp, 'sub', 'caps.xml'))
        parsed = self.fleet(
            {'hosts': [{'name': 'h', 'capabilities': 'caps.xml'}]},
            name='sub/fleet.yaml')
        self.assertEqual(2, len(parsed.hosts[0].host.cells))

    def test_fields(self):
        """Ensures every optional field lands in the model."""
        parsed = self.fleet({'hosts': [host(
            cells=[dict(CELLS[0], free_mb=10000, numa_usage_mb=2048),
                   dict(CELLS[1], free_mb=20000)],
            used_mb=40000, vcpus_used=10, ram_allocation_ratio=1.5,
            cpu_allocation_ratio=2, physnets={'physnet1': [0, 1]},
            aggregates=[{'cpu_weight_multiplier': 2.0, 'ssd': True}],
            pci=[{'numa_node': None, 'vendor_id': 8086,
                  'product_id': '10FB', 'count': 2}])]})
        (item,) = parsed.hosts
        self.assertEqual(40000, item.host.used_mb)
        self.assertEqual(1.5, item.host.ram_allocation_ratio)
        self.assertEqual((10, 2.0), (item.vcpus_used,
                                     item.cpu_allocation_ratio))
        self.assertEqual([2048, 0],
                         [c.small_page_used_mb for c in item.host.cells])
        self.assertEqual({0: 10000, 1: 20000}, item.host.live.free_mb)
        self.assertEqual([frozenset(['physnet1'])] * 2,
                         [c.physnets for c in item.host.cells])
        self.assertEqual(({'cpu_weight_multiplier': '2.0', 'ssd': 'true'},),
                         item.aggregates)
        self.assertEqual((fleet.PciPool(None, '8086', '10fb', 'type-PCI',
                                        None, 2),), item.pci)
        self.assertIsNone(item.guests_mb)

    def test_used_mb_defaults_to_the_reserve_and_numa_guests(self):
        """Ensures nova's usage counts the reserve and the NUMA guests."""
        parsed = self.fleet({'hosts': [host(cells=[
            dict(CELLS[0], numa_usage_mb=4096), CELLS[1]])]})
        self.assertEqual(512 + 4096, parsed.hosts[0].host.used_mb)

    def test_memory_only_cell(self):
        """Ensures a cell with no CPUs is a memory-only node."""
        parsed = self.fleet({'hosts': [host(cells=CELLS + [
            {'cpus': '', 'memory_mb': 262144}])]})
        self.assertEqual([True, True, False],
                         [c.holds_guests for c in parsed.hosts[0].host.cells])

    def test_live_payload_takes_its_name_and_figures(self):
        """Ensures an agent payload gives the host's cells and live data."""
        self.copy_example('four-node-128g-live.json')
        parsed = self.fleet({'hosts': [{'live': 'four-node-128g-live.json',
                                        'used_mb': 328192}]})
        (item,) = parsed.hosts
        self.assertEqual('four-node-128g', item.host.name)
        self.assertEqual([16] * 4, [len(c.cpus) for c in item.host.cells])
        self.assertEqual([128511] * 4,
                         [c.memory_mb for c in item.host.cells])
        self.assertEqual({0: 20480, 1: 61440, 2: 8192, 3: 90112},
                         item.host.live.free_mb)
        self.assertEqual(327680, item.guests_mb)

    def test_payload_hugepages_are_carved_out(self):
        """Ensures a payload's hugepages leave the small pages of a cell."""
        data = payload.build('h', 0.0, [{
            'id': 0, 'cpus': [0, 1], 'mem_total_mb': 4096,
            'mem_free_mb': 1024, 'mem_available_mb': 1024,
            'hugepages': {'2048': {'total': 512, 'free': 256}}}])
        self.write('h.json', payload.encode(data))
        parsed = self.fleet({'hosts': [{'live': 'h.json'}]})
        (cell,) = parsed.hosts[0].host.cells
        self.assertEqual((3072, {2048: (512, 256)}),
                         (cell.small_page_mb, cell.hugepages))
        self.assertIsNone(parsed.hosts[0].host.live.untouched_mb)

    def test_a_file_named_by_many_hosts_is_read_once(self):
        """Ensures hosts of one shape share one parse of their file."""
        self.copy_example('two-node-64g-capabilities.xml')
        parsed = self.fleet({'hosts': [
            {'name': 'h%d' % i,
             'capabilities': 'two-node-64g-capabilities.xml'}
            for i in range(3)]})
        self.assertIs(parsed.hosts[0].host.cells, parsed.hosts[2].host.cells)


# (document, expected one-line error after "<fleet file>: "). The fleet
# file is in a directory that holds the example files.
BAD = [
    ('- a list', 'expected a mapping with a hosts: list'),
    ({'hosts': []}, 'hosts: expected a non-empty list of hosts'),
    ({'hosts': [host()], 'extra': 1},
     "top level: unknown field 'extra' (expected hosts, pci_aliases)"),
    ({'hosts': ['h']}, 'hosts[0]: host: expected a mapping'),
    ({'hosts': [host(name=None)]},
     'hosts[0]: name: missing; every host needs a name'),
    ({'hosts': [host(name='a b')]},
     "host a b: name: 'a b' is not a compute host name (letters, digits "
     "and _.:-)"),
    ({'hosts': [host(), host()]}, 'host two-node-64g: name: listed twice'),
    ({'hosts': [host(colour='blue')]},
     'host two-node-64g: colour: unknown field (expected name, '
     'capabilities, numastat, cells, live, pci, physnets, used_mb, '
     'vcpus_used, ram_allocation_ratio, cpu_allocation_ratio, aggregates)'),
    ({'hosts': [host(cells=None)]},
     'host two-node-64g: cells: give exactly one of capabilities, cells or '
     'live, got none'),
    ({'hosts': [host(capabilities='two-node-64g-capabilities.xml')]},
     'host two-node-64g: cells: give exactly one of capabilities, cells or '
     'live, got capabilities and cells'),
    ({'hosts': [host(cells=[])]},
     'host two-node-64g: cells: expected a non-empty list of cells'),
    ({'hosts': [host(cells=[{'cpus': 12, 'memory_mb': 1}])]},
     'host two-node-64g: cells[0].cpus: expected a CPU list in quotes, such '
     'as "0-11" ("" for a node without CPUs)'),
    ({'hosts': [host(cells=[{'cpus': '0-x', 'memory_mb': 1}])]},
     "host two-node-64g: cells[0].cpus: bad CPU list item '0-x'"),
    ({'hosts': [host(cells=[{'cpus': '0-3'}])]},
     'host two-node-64g: cells[0].memory_mb: missing'),
    ({'hosts': [host(cells=[{'cpus': '0-3', 'memory_mb': '64g'}])]},
     "host two-node-64g: cells[0].memory_mb: expected a whole number, got "
     "'64g'"),
    ({'hosts': [host(cells=[{'cpus': '0-3', 'memory_mb': -1}])]},
     'host two-node-64g: cells[0].memory_mb: -1 is outside 0..67108864'),
    ({'hosts': [host(cells=[{'cpus': '0-3', 'memory_mb': 8,
                             'numa_usage_mb': 9}])]},
     'host two-node-64g: cells[0].numa_usage_mb: 9 is outside 0..8'),
    ({'hosts': [host(cells=[CELLS[0], dict(CELLS[1], cpus='11-13')])]},
     'host two-node-64g: cells[1].cpus: CPU 11 is in another cell'),
    ({'hosts': [host(cells=[dict(CELLS[0], id=1), dict(CELLS[1], id=1)])]},
     'host two-node-64g: cells[1].id: cell 1 is listed twice'),
    ({'hosts': [host(cells=[dict(CELLS[0], free_mb=1), CELLS[1]])]},
     'host two-node-64g: cells: free_mb is given for cells 0 but not for 1: '
     'give it for every cell or none'),
    ({'hosts': [host(cells=[dict(CELLS[0], gpus=1)])]},
     'host two-node-64g: cells[0].gpus: unknown field (expected id, cpus, '
     'memory_mb, free_mb, numa_usage_mb)'),
    ({'hosts': [host(cells=None, capabilities='missing.xml')]},
     'host two-node-64g: capabilities: missing.xml: cannot read: No such '
     'file or directory'),
    ({'hosts': [host(cells=None, capabilities='bad.xml')]},
     'host two-node-64g: capabilities: bad.xml: malformed XML: '),
    ({'hosts': [host(cells=None, capabilities='.')]},
     'host two-node-64g: capabilities: .: cannot read: not a regular '
     'file'),
    ({'hosts': [host(numastat='two-node-64g-numastat.txt',
                     cells=[CELLS[0]])]},
     'host two-node-64g: numastat: two-node-64g-numastat.txt: nodes 0,1 do '
     'not match the cells 0'),
    ({'hosts': [host(numastat='two-node-64g-numastat.txt', cells=[
        dict(c, free_mb=1) for c in CELLS])]},
     'host two-node-64g: numastat: the cells have free_mb already; give one '
     'or the other'),
    ({'hosts': [host(cells=None, live='cut.json')]},
     'host two-node-64g: live: cut.json: not an agent payload: no host '
     'name'),
    ({'hosts': [host(cells=None, live='four-node-128g-live.json')]},
     'host two-node-64g: live: four-node-128g-live.json: the payload is for '
     'host four-node-128g'),
    ({'hosts': [host(cells=None, live='record.json')]},
     'host two-node-64g: live: record.json: a memory record has no CPUs: '
     'give the payload nova-numa-guard-agent --once --print prints'),
    ({'hosts': [host(cells=None, name=None, live='four-node-128g-live.json',
                     numastat='two-node-64g-numastat.txt')]},
     'hosts[0]: numastat: a live payload has its own free memory; give one '
     'or the other'),
    ({'hosts': [host(used_mb=1, cells=[dict(CELLS[0], numa_usage_mb=2048),
                                       CELLS[1]])]},
     'host two-node-64g: used_mb: 1 MB is less than the 2048 MB the cells '
     'account to NUMA guests'),
    ({'hosts': [host(vcpus_used=1.5)]},
     'host two-node-64g: vcpus_used: expected a whole number, got 1.5'),
    ({'hosts': [host(ram_allocation_ratio=0)]},
     'host two-node-64g: ram_allocation_ratio: 0 is outside (0, 1000]'),
    ({'hosts': [host(cpu_allocation_ratio='4')]},
     "host two-node-64g: cpu_allocation_ratio: expected a number, got '4'"),
    ({'hosts': [host(physnets={'physnet1': [2]})]},
     'host two-node-64g: physnets.physnet1: node 2 is not a cell of the '
     'host (cells 0,1)'),
    ({'hosts': [host(physnets=['physnet1'])]},
     'host two-node-64g: physnets: expected a mapping of physnet name to a '
     'list of node ids'),
    ({'hosts': [host(pci=[{'vendor_id': '8086', 'product_id': '154c',
                           'count': 1, 'numa_node': 5}])]},
     'host two-node-64g: pci[0].numa_node: 5 is not a cell of the host '
     '(cells 0,1)'),
    ({'hosts': [host(pci=[{'vendor_id': 'intel', 'product_id': '154c',
                           'count': 1}])]},
     'host two-node-64g: pci[0].vendor_id: expected 4 hex digits in quotes, '
     'such as "8086"'),
    ({'hosts': [host(pci=[{'vendor_id': '8086', 'product_id': '154c',
                           'count': 0}])]},
     'host two-node-64g: pci[0].count: 0 is outside 1..1048576'),
    ({'hosts': [host(pci=[{'vendor_id': '8086', 'product_id': '154c',
                           'count': 1, 'dev_type': 'type-NIC'}])]},
     'host two-node-64g: pci[0].dev_type: expected one of type-PCI, '
     'type-PF, type-VF, type-VDPA'),
    ({'hosts': [host(aggregates={'a': 1})]},
     'host two-node-64g: aggregates: expected a list of metadata mappings'),
    ({'hosts': [host(aggregates=[{'a': [1]}])]},
     'host two-node-64g: aggregates[0]: metadata must map names to plain '
     'values'),
    ({'hosts': [host()], 'pci_aliases': {'name': 'vf'}},
     'pci_aliases: expected a list of nova [pci] alias mappings'),
    ({'hosts': [host()], 'pci_aliases': [{'vendor_id': '8086'}]},
     "pci_aliases[0]: expected a mapping with a name, as nova's [pci] "
     "alias"),
    ('hosts: [{name: a, cells: [}', 'not valid YAML (line 1): '),
    ('a: &x [1]\nhosts: *x\n',
     'not valid YAML (line 2): aliases (*name) are not allowed in a fleet '
     'file'),
    ('!!python/object:os.system {}\n', 'not valid YAML (line 1): '),
    (b'hosts: \xff\n', 'not valid YAML'),
]


class BadFleetTest(FleetTestCase):

    def setUp(self):
        super().setUp()
        for name in ('two-node-64g-capabilities.xml',
                     'two-node-64g-numastat.txt',
                     'four-node-128g-live.json'):
            self.copy_example(name)
        self.write('bad.xml', '<topology><cells>')
        self.write('cut.json', '{"schema": 1, "ho')
        record = payload.memory_record(payload.build('record', 0.0, [{
            'id': 0, 'mem_total_mb': 4, 'mem_free_mb': 1,
            'mem_available_mb': 1}]))
        self.write('record.json', json.dumps(record))

    def test_bad_fleets_give_one_line_naming_host_and_field(self):
        """Ensures each bad fleet gives its one-line InputError."""
        for document, expected in BAD:
            text = document
            if isinstance(document, dict):
                text = dump(document)
            path = self.write('fleet.yaml', text)
            e = self.assertRaises(InputError, fleet.load, path)
            self.assertTrue(str(e).startswith(path + ': ' + expected),
                            '%s\n%s' % (expected, e))
            self.assertNotIn('\n', str(e))

    def test_missing_fleet_file(self):
        """Ensures a missing fleet file is one line naming it."""
        path = os.path.join(self.tmp, 'none.yaml')
        e = self.assertRaises(InputError, fleet.load, path)
        self.assertEqual(path + ': cannot read: No such file or directory',
                         str(e))

    def test_oversized_files_are_refused(self):
        """Ensures a fleet or a file it names cannot be of any size."""
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.inputs.fleet.MAX_FLEET_BYTES', 100))
        path = self.write('fleet.yaml', 'hosts: []\n' + '#' * 100)
        e = self.assertRaises(InputError, fleet.load, path)
        self.assertEqual(path + ': larger than 100 bytes', str(e))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.inputs.fleet.MAX_CAPABILITIES_BYTES', 100))
        e = self.assertRaises(InputError, self.fleet, {'hosts': [host(
            cells=None, capabilities='two-node-64g-capabilities.xml')]})
        self.assertIn('capabilities: two-node-64g-capabilities.xml: larger '
                      'than 100 bytes', str(e))


def _yaml_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2 ** 40),
                        st.floats(allow_nan=True), st.text(max_size=8),
                        st.sampled_from(['0-3', '', '8086', 'type-VF',
                                         'four-node-128g-live.json',
                                         'two-node-64g-capabilities.xml']))
    return st.recursive(scalars, lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(fleet._HOST_KEYS + fleet._CELL_KEYS +
                                        fleet._PCI_KEYS + ('hosts', 'x')),
                        children, max_size=5)), max_leaves=20)


class HostileFleetTest(FleetTestCase):

    def setUp(self):
        super().setUp()
        for name in ('two-node-64g-capabilities.xml',
                     'four-node-128g-live.json'):
            self.copy_example(name)

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(st.lists(_yaml_values(), min_size=1, max_size=3))
    def test_any_structure_parses_or_fails_in_one_line(self, hosts):
        """Ensures any YAML structure gives a fleet or a one-line error."""
        path = self.write('fleet.yaml', dump({'hosts': hosts}))
        try:
            parsed = fleet.load(path)
        except InputError as e:
            self.assertTrue(str(e).startswith(path + ': '), str(e))
            self.assertNotIn('\n', str(e))
            return
        self.assertEqual(len(hosts), len(parsed.hosts))

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(st.binary(max_size=200))
    def test_any_bytes_parse_or_fail_in_one_line(self, data):
        """Ensures arbitrary bytes give a fleet or a one-line error."""
        path = self.write('fleet.yaml', data)
        try:
            fleet.load(path)
        except InputError as e:
            self.assertTrue(str(e).startswith(path + ': '), str(e))
            self.assertNotIn('\n', str(e))
