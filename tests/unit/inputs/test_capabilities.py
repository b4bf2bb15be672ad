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

"""Tests of the ``virsh capabilities`` XML parser."""

import os
from xml.sax import saxutils

import fixtures
import hypothesis
from hypothesis import strategies as st

from nova_numa_guard.inputs import capabilities
from nova_numa_guard.inputs import InputError
from tests import examples

from tests import testcase

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data')
TWO_NODE = examples.TWO_NODE_XML
HUGEPAGES = os.path.join(DATA, 'capabilities-hugepages.xml')

with open(TWO_NODE, 'rb') as f:
    TWO_NODE_XML = f.read()

PROPERTY = hypothesis.settings(max_examples=150, deadline=None,
                               derandomize=True, database=None)


def _cell(cell_id, memory_kb, cpus='', extra=''):
    return ("<cell id='%s'><memory unit='KiB'>%s</memory>%s"
            "<cpus num='%d'>%s</cpus></cell>" % (
                cell_id, memory_kb, extra, cpus.count('<cpu '), cpus))


def _topology(*cells):
    return "<topology><cells num='%d'>%s</cells></topology>" % (
        len(cells), ''.join(cells))


CPU0 = "<cpu id='0' socket_id='0' core_id='0' siblings='0'/>"
CPU1 = "<cpu id='1' socket_id='0' core_id='1' siblings='1'/>"


class TwoNodeCapabilitiesTest(testcase.TestCase):

    def test_two_node_cells(self):
        """Ensures two-node-64g's XML gives 2 cells of 12 CPUs and memory."""
        host = capabilities.load(TWO_NODE)

        self.assertEqual('two-node-64g-capabilities', host.name)
        self.assertEqual([0, 1], [c.id for c in host.cells])
        # 65872056 KiB and 66058400 KiB, in MiB as nova keeps them.
        self.assertEqual([64328, 64510], [c.memory_mb for c in host.cells])
        self.assertEqual([64328, 64510],
                         [c.small_page_mb for c in host.cells])
        self.assertEqual([12, 12], [len(c.cpus) for c in host.cells])
        self.assertEqual(set(range(0, 6)) | set(range(12, 18)),
                         host.cells[0].cpus)
        self.assertEqual(set(range(6, 12)) | set(range(18, 24)),
                         host.cells[1].cpus)
        self.assertEqual([0, 1], [c.socket for c in host.cells])
        self.assertEqual(tuple(frozenset({c, c + 12}) for c in range(6)),
                         host.cells[0].siblings)
        self.assertEqual({}, host.cells[0].hugepages)
        self.assertTrue(all(c.holds_guests for c in host.cells))

    def test_full_document_with_pages_and_distances(self):
        """Ensures pages, distances and a memory-only cell are read."""
        host = capabilities.load(HUGEPAGES)

        cell0, cell1, cxl = host.cells
        self.assertEqual(16384, cell0.memory_mb)
        # 3145728 pages of 4 KiB; hugepages are carved out of the node.
        self.assertEqual(12288, cell0.small_page_mb)
        self.assertEqual({2048: (1024, 0), 1048576: (2, 0)},
                         cell0.hugepages)
        self.assertEqual({0: 10, 1: 21, 2: 17}, cell0.distances)
        self.assertEqual({0: 21, 1: 10, 2: 28}, cell1.distances)
        self.assertEqual((frozenset({4, 5}), frozenset({6, 7})),
                         cell1.siblings)
        self.assertEqual(1, cell1.socket)
        self.assertEqual(frozenset(), cxl.cpus)
        self.assertEqual(65536, cxl.memory_mb)
        self.assertIsNone(cxl.socket)
        self.assertFalse(cxl.holds_guests)

    def test_str_and_bytes(self):
        """Ensures text and bytes parse the same."""
        from_bytes = capabilities.parse(TWO_NODE_XML)
        from_text = capabilities.parse(TWO_NODE_XML.decode())
        self.assertEqual([c.memory_mb for c in from_bytes.cells],
                         [c.memory_mb for c in from_text.cells])

    def test_units_and_cell_order(self):
        """Ensures memory units scale and cells come out ordered by id."""
        host = capabilities.parse(_topology(
            "<cell id='1'><memory unit='MiB'>2048</memory></cell>",
            "<cell id='0'><memory unit='GiB'>1</memory></cell>"))
        self.assertEqual([(0, 1024), (1, 2048)],
                         [(c.id, c.memory_mb) for c in host.cells])

    def test_every_unit_in_whole_kib(self):
        """Ensures each libvirt unit scales exactly, in integer arithmetic."""
        for unit, number, expected_mb in (
                ('b', 1073741824, 1024), ('bytes', 2147483648, 2048),
                ('KB', 1048576, 1000), ('k', 1048576, 1024),
                ('KiB', 1048576, 1024), ('MB', 1000, 953),
                ('M', 1000, 1000), ('MiB', 1000, 1000), ('GB', 1, 953),
                ('G', 1, 1024), ('GiB', 1, 1024), ('TB', 1, 953674),
                ('T', 1, 1048576), ('TiB', 1, 1048576),
                ('PiB', 1, 1073741824), ('EiB', 1, 1099511627776)):
            host = capabilities.parse(_topology(
                "<cell id='0'><memory unit='%s'>%d</memory></cell>" % (
                    unit, number)))
            self.assertEqual(expected_mb, host.cells[0].memory_mb, unit)

    def test_cell_spanning_sockets_has_no_socket(self):
        """Ensures a cell whose CPUs sit on two sockets has socket None."""
        cpu1 = CPU1.replace("socket_id='0'", "socket_id='1'")
        host = capabilities.parse(_topology(_cell(0, 1048576, CPU0 + cpu1)))
        self.assertIsNone(host.cells[0].socket)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<topology><cells num='1'><cell id='0'><memory unit='KiB'>&lol3;</memory>
</cell></cells></topology>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE topology [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<topology><cells num='1'><cell id='0'><memory unit='KiB'>&xxe;</memory>
</cell></cells></topology>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE topology SYSTEM "http://example.com/evil.dtd">
<topology/>"""

# (name, XML, words the one-line error must contain)
BAD = [
    ('billion_laughs', BILLION_LAUGHS, 'refusing a document type'),
    ('xxe', XXE, 'refusing a document type'),
    ('external_dtd', EXTERNAL_DTD, 'refusing a document type'),
    ('empty', b'', 'malformed XML'),
    ('not_xml', b'numastat -m', 'malformed XML'),
    ('truncated', TWO_NODE_XML[:len(TWO_NODE_XML) // 2], 'malformed XML'),
    ('wrong_root', b'<domain/>', 'found <domain>'),
    ('no_topology', b'<capabilities><host/></capabilities>',
     'no <host><topology>'),
    ('no_cells', b'<topology/>', 'no <topology><cells>'),
    ('zero_cells', b"<topology><cells num='0'/></topology>", 'no <cell>'),
    ('cells_num', b"<topology><cells num='2'><cell id='0'><memory>1"
     b"</memory></cell></cells></topology>", "<cells num='2'> but 1"),
    ('no_memory', _topology("<cell id='0'/>").encode(), 'has no <memory>'),
    ('bad_memory', _topology(_cell(0, '-5')).encode(),
     'expected a non-negative integer'),
    ('bad_unit', _topology("<cell id='0'><memory unit='parsec'>1</memory>"
                           "</cell>").encode(), "unknown unit 'parsec'"),
    ('bad_cell_id', _topology(_cell('x', 1)).encode(), '<cell> id'),
    ('duplicate_cell', _topology(_cell(0, 1), _cell(0, 1)).encode(),
     'duplicate cell id 0'),
    ('duplicate_cpu', _topology(_cell(0, 1, CPU0),
                                _cell(1, 1, CPU0)).encode(),
     'duplicate cpu id 0'),
    ('cpus_num', _topology(_cell(0, 1, CPU0)).replace(
        "<cpus num='1'>", "<cpus num='2'>").encode(), "<cpus num='2'>"),
    ('bad_siblings', _topology(_cell(0, 1, CPU0.replace(
        "siblings='0'", "siblings='3-1'"))).encode(), 'bad CPU range'),
    ('absurd_memory', _topology(
        "<cell id='0'><memory unit='KB'>%s</memory></cell>" % ('9' * 400)
    ).encode(), 'cell 0 <memory>: %s... is implausibly large' % ('9' * 20)),
    ('absurd_memory_unit', _topology(
        "<cell id='0'><memory unit='EB'>2</memory></cell>").encode(),
     'cell 0 <memory>: 2 EB is implausibly large'),
    ('absurd_page_count', _topology(_cell(0, 1, extra=(
        "<pages unit='GiB' size='1'>%d</pages>" % 2 ** 40))).encode(),
     'cell 0 <pages>: %d pages of 1048576 KiB are implausibly many' %
     2 ** 40),
    ('digits_beyond_int', _topology(_cell('9' * 5000, 1)).encode(),
     '<cell> id: %s... is implausibly large' % ('9' * 20)),
    ('superscript_sibling', _topology(_cell(0, 1, CPU0.replace(
        "siblings='0'", "siblings='\u00b2'"))).encode(),
     "cpu 0 siblings: bad CPU list item '\u00b2'"),
    ('empty_siblings', _topology(_cell(0, 1, CPU0.replace(
        "siblings='0'", "siblings=''"))).encode(),
     'cpu 0 siblings: empty'),
    ('bad_pages', _topology(_cell(0, 1, extra=(
        "<pages unit='KiB' size='0'>5</pages>"))).encode(),
     'must be positive'),
    ('duplicate_pages', _topology(_cell(0, 1, extra=(
        "<pages size='4'>5</pages><pages size='4'>5</pages>"))).encode(),
     'lists 4 KiB pages twice'),
]


class BadCapabilitiesTest(testcase.TestCase):

    def test_bad_inputs(self):
        """Ensures each bad input gives a one-line error naming its source."""
        for name, data, words in BAD:
            message = str(self.assertRaises(
                InputError, capabilities.parse, data, source='host.xml'))
            self.assertTrue(message.startswith('host.xml: '),
                            '%s: %s' % (name, message))
            self.assertIn(words, message, name)
            self.assertNotIn('\n', message, name)

    def test_absurd_file_names_the_file(self):
        """Ensures absurd numbers in a file give an error naming the file."""
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'absurd.xml')
        with open(path, 'w') as f:
            f.write(_topology("<cell id='0'><memory unit='KB'>%s</memory>"
                              "</cell>" % ('9' * 400)))
        e = self.assertRaises(InputError, capabilities.load, path)
        self.assertTrue(str(e).startswith(path + ': cell 0 <memory>: '),
                        str(e))

    def test_missing_file(self):
        """Ensures an unreadable file gives a one-line error naming it."""
        path = os.path.join(DATA, 'no-such-file.xml')
        e = self.assertRaises(InputError, capabilities.load, path)
        self.assertEqual('%s: cannot read: No such file or directory' % path,
                         str(e))

    def test_entities_are_never_expanded(self):
        """Ensures no entity text reaches a Host, even from an internal one.

        The error comes before any expansion: the parser refuses the DTD.
        """
        e = self.assertRaises(InputError, capabilities.parse, XXE, 'x.xml')
        self.assertNotIn('root:', str(e))

    @PROPERTY
    @hypothesis.given(st.integers(0, len(TWO_NODE_XML.rstrip()) - 1))
    def test_truncated_example_is_an_input_error(self, length):
        """Ensures any truncation of two-node-64g's XML is an InputError.

        Only the trailing newline may go: the document is complete without.
        """
        e = self.assertRaises(InputError, capabilities.parse,
                              TWO_NODE_XML[:length], 'two-node-64g.xml')
        self.assertNotIn('\n', str(e))

    @PROPERTY
    @hypothesis.given(st.one_of(st.binary(max_size=300),
                                st.text(max_size=300)))
    def test_random_input_is_an_input_error(self, data):
        """Ensures random bytes or text give InputError, nothing else."""
        self.assertRaises(InputError, capabilities.parse, data, 'r.xml')

    @PROPERTY
    @hypothesis.given(st.lists(st.sampled_from(
        ['<topology>', '<cells>', "<cells num='1'>", "<cell id='0'>",
         "<cell id='1'>", "<memory unit='KiB'>", "<memory unit='X'>", '1024',
         '-1', 'x', '</memory>', "<cpus num='1'>", "<cpus num='2'>", CPU0,
         CPU1, "<cpu id='a'/>", "<cpu id='2' siblings='0-'/>", '</cpus>',
         "<pages size='4'>", "<pages size='2048'>", '</pages>',
         '<distances>', "<sibling id='0' value='10'/>", "<sibling id='z'/>",
         '</distances>', '</cell>', '</cells>', '</topology>']),
        max_size=25))
    def test_mangled_structure_is_host_or_input_error(self, parts):
        """Ensures well-formed but odd documents parse or give InputError."""
        try:
            host = capabilities.parse(''.join(parts), 'm.xml')
        except InputError as e:
            self.assertNotIn('\n', str(e))
        else:
            self.assertTrue(host.cells)
            for cell in host.cells:
                self.assertGreaterEqual(cell.memory_mb, 0)


# Values for the numbers and units of generated documents: plausible and
# absurd numbers, numbers too long for int(), and junk.
NUMBERS = st.one_of(
    st.integers(0, 2 ** 24).map(str),
    st.integers(0, 10 ** 400).map(str),
    st.sampled_from(['0', '4', '2048', '1048576', '9' * 400, '9' * 5000,
                     '-1', '', 'x', '\u00b2', '1.5', ' 7 ', '0x10']),
    st.text(max_size=4))
UNITS = st.one_of(st.sampled_from(sorted(capabilities.UNIT_B)),
                  st.text(max_size=4))
SIBLINGS = st.one_of(st.sampled_from(['0', '0-1', '0,2', '1-0', '', '0-',
                                      '\u00b2', '0-99999999']),
                     NUMBERS)


def _attr(value):
    return saxutils.quoteattr(value)


@st.composite
def documents(draw):
    """Well-formed capabilities XML with random numbers, units and lists."""
    cells = []
    for i in range(draw(st.integers(1, 3))):
        memory = '<memory unit=%s>%s</memory>' % (
            _attr(draw(UNITS)), saxutils.escape(draw(NUMBERS)))
        pages = ''.join(
            '<pages unit=%s size=%s>%s</pages>' % (
                _attr(draw(UNITS)), _attr(draw(NUMBERS)),
                saxutils.escape(draw(NUMBERS)))
            for _ in range(draw(st.integers(0, 2))))
        cpus = ''.join(
            '<cpu id=%s socket_id=%s siblings=%s/>' % (
                _attr(draw(st.one_of(st.just(str(10 * i + n)), NUMBERS))),
                _attr(draw(st.one_of(st.just('0'), NUMBERS))),
                _attr(draw(SIBLINGS)))
            for n in range(draw(st.integers(0, 2))))
        cell_id = draw(st.one_of(st.just(str(i)), NUMBERS))
        cells.append('<cell id=%s>%s%s<cpus>%s</cpus></cell>' % (
            _attr(cell_id), memory, pages, cpus))
    return '<topology><cells>%s</cells></topology>' % ''.join(cells)


class GeneratedCapabilitiesTest(testcase.TestCase):

    @PROPERTY
    @hypothesis.given(documents())
    def test_values_parse_or_give_one_line_error(self, document):
        """Ensures any numbers and units give a Host or a one-line error.

        Huge numbers, unknown units and bad CPU lists are InputErrors that
        name the source, never OverflowError or ValueError.
        """
        try:
            host = capabilities.parse(document, 'd.xml')
        except InputError as e:
            self.assertTrue(str(e).startswith('d.xml: '), str(e))
            self.assertNotIn('\n', str(e))
        else:
            for cell in host.cells:
                self.assertLessEqual(0, cell.memory_mb)
                self.assertLessEqual(cell.memory_mb, 2 ** 40)
