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

"""What the agent reads of running guests: libvirt XML, cgroup v2, charges.

Every expected figure below is worked out by hand in the comments, never
recomputed with the code under test.
"""

import os
import shutil
import sys
from unittest import mock
from xml.sax import saxutils

import ddt
import fixtures
import hypothesis
from hypothesis import strategies as st

from nova_numa_guard.agent import collect
from nova_numa_guard.agent import guests
from nova_numa_guard.inputs import InputError
from nova_numa_guard.live import payload
from tests import fake_guests
from tests import fake_sysfs
from tests import testcase

PROPERTY = hypothesis.settings(max_examples=200, deadline=None,
                               derandomize=True, database=None)
# Generated documents have many independent parts: more examples.
GENERATED = hypothesis.settings(PROPERTY, max_examples=1000)
MIB = 1024 * 1024
# The room and homes of the table-driven scenarios: a two-node host whose
# node 0 has twice node 1's free memory.
ROOM = {0: 20000, 1: 10000}
HOMES = [0, 1]
GUEST = fake_guests.guest
FakeDomain = fake_guests.FakeDomain
FakeLibvirt = fake_guests.FakeLibvirt
LibvirtError = fake_guests.LibvirtError
STAT = ('anon N0=1073741824 N1=536870912\n'
        'file N0=9999999999 N1=9999999999\n'
        'shmem N0=1048576 N1=0\n'
        'anon_thp N0=1073741824 N1=0\n'
        'shmem_thp N0=1048576 N1=0\n')
XXE = ('<?xml version="1.0"?>\n'
       '<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
       "<domain id='1'><name>&xxe;</name>"
       "<memory unit='KiB'>1048576</memory></domain>\n")
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE domain [\n'
    '<!ENTITY lol "lol">\n' + ''.join(
        '<!ENTITY lol%d "%s">\n' % (i, ('&lol%s;' % ('' if i == 1 else
                                                     i - 1)) * 10)
        for i in range(1, 10)) +
    "]>\n<domain id='1'><name>&lol9;</name>"
    "<memory unit='KiB'>1048576</memory></domain>\n")


def binding_domain(name, domain_id, size_mb, **kwargs):
    """A domain of the fake binding: XMLDesc(0) of a running guest."""
    return FakeDomain(fake_guests.domain_xml(name, domain_id, size_mb,
                                             status=False, **kwargs))


def _domain(body, domain_id="'7'"):
    return ('<domain type="kvm" id=%s><name>instance-00000007</name>%s'
            '</domain>' % (domain_id, body))


class GuestTreeTestCase(testcase.TestCase):
    """A libvirt runtime directory and a cgroup v2 root in a temp dir."""

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.libvirt_root = os.path.join(self.tmp, 'run', 'libvirt', 'qemu')
        self.cgroup_root = os.path.join(self.tmp, 'sys', 'fs', 'cgroup')
        self.log = self.useFixture(fixtures.FakeLogger(name='nova_numa_guard'))

    def write(self, *specs):
        fake_guests.write_guests(self.libvirt_root, self.cgroup_root, specs)

    def memory(self, room=None, homes=None, uri=None):
        return guests.guest_memory(self.libvirt_root, self.cgroup_root,
                                   ROOM if room is None else room,
                                   HOMES if homes is None else homes, uri)

    def figures(self, room=None, homes=None):
        """``(untouched_mb, guests_mb)``; fails on any problem."""
        memory, problems = self.memory(room, homes)
        self.assertEqual([], [str(p) for p in problems])
        self.assertIsNotNone(memory)
        return memory.untouched_mb, memory.guests_mb

    def scope_dir(self, domain_id, name):
        return os.path.join(self.cgroup_root, 'machine.slice',
                            fake_guests.scope_name(domain_id, name))


@ddt.ddt
class ParseDomainTest(testcase.TestCase):

    @ddt.named_data(
        # name, XML, expected (name, id, size MB, bound)
        ('runtime-status-file',
         fake_guests.domain_xml('instance-00000001', 1, 4096),
         ('instance-00000001', 1, 4096, None)),
        ('xmldesc-form',
         fake_guests.domain_xml('instance-00000002', 2, 2048, status=False),
         ('instance-00000002', 2, 2048, None)),
        ('balloon-current-memory-wins',
         fake_guests.domain_xml('a', 3, 8192, current_mb=6144),
         ('a', 3, 6144, None)),
        ('memory-when-no-current-memory',
         _domain("<memory unit='GiB'>3</memory>"),
         ('instance-00000007', 7, 3072, None)),
        ('default-unit-is-kib',
         _domain('<memory>2097152</memory>'),
         ('instance-00000007', 7, 2048, None)),
        ('bytes-rounded-down',
         _domain("<memory unit='bytes'>%d</memory>" % (MIB * 5 - 1)),
         ('instance-00000007', 7, 4, None)),
        ('decimal-units',
         _domain("<memory unit='MB'>1000000</memory>"),
         # 10**12 bytes / 2**20 = 953674.3...
         ('instance-00000007', 7, 953674, None)),
        ('bound-to-one-node',
         fake_guests.domain_xml('b', 4, 4096, nodeset='1'),
         ('b', 4, 4096, {1: 4096})),
        ('bound-split-evenly-over-two-nodes',
         fake_guests.domain_xml('b', 4, 4096, nodeset='0-1'),
         ('b', 4, 4096, {0: 2048, 1: 2048})),
        ('restrictive-binds',
         fake_guests.domain_xml('b', 4, 4096, nodeset='1',
                                mode='restrictive'),
         ('b', 4, 4096, {1: 4096})),
        ('preferred-does-not-bind',
         fake_guests.domain_xml('b', 4, 4096, nodeset='1', mode='preferred'),
         ('b', 4, 4096, None)),
        ('interleave-does-not-bind',
         fake_guests.domain_xml('b', 4, 4096, nodeset='0-1',
                                mode='interleave'),
         ('b', 4, 4096, None)),
        ('guest-cells-bound-by-memnode',
         fake_guests.domain_xml('c', 5, 4096, cells=[(3072, '0'),
                                                     (1024, '1')]),
         ('c', 5, 4096, {0: 3072, 1: 1024})),
        ('guest-cells-on-one-node',
         fake_guests.domain_xml('c', 5, 4096, cells=[(2048, '1'),
                                                     (2048, '1')]),
         ('c', 5, 4096, {1: 4096})),
        ('guest-cell-over-two-nodes',
         fake_guests.domain_xml('c', 5, 4096, cells=[(4096, '0-1')]),
         ('c', 5, 4096, {0: 2048, 1: 2048})),
    )
    def test_running_domain(self, xml, expected):
        """Ensures that a running guest's name, id, size, binding are read."""
        guest = guests.parse_domain(xml, 'g.xml')
        self.assertEqual(expected, (guest.name, guest.domain_id,
                                    guest.size_mb, guest.bound))
        self.assertEqual({}, guest.resident_mb)
        self.assertFalse(guest.hugepages)

    @ddt.named_data(
        ('runtime-status-file', True),
        ('xmldesc-form', False),
    )
    def test_hugepage_guest_is_marked(self, status):
        """Ensures that a hugepage-backed guest is a Guest marked so.

        Its full size counts in guests_mb (nova counts it); it has nothing
        untouched.
        """
        xml = fake_guests.domain_xml('h', 9, 16384, hugepages=True,
                                     nodeset='0', status=status)
        guest = guests.parse_domain(xml, 'h.xml')
        self.assertIsInstance(guest, guests.Guest)
        self.assertEqual(('h', 9, 16384, True, {}),
                         (guest.name, guest.domain_id, guest.size_mb,
                          guest.hugepages, guest.resident_mb))

    @ddt.named_data(
        ('other-root', '<capabilities><host/></capabilities>',
         'g.xml: no <domain> element (root is <capabilities>)'),
        ('domstatus-without-domain', "<domstatus state='running'/>",
         'g.xml: no <domain> element (root is <domstatus>)'),
        ('not-running-no-id',
         "<domain type='kvm'><name>x</name><memory>1</memory></domain>",
         'g.xml: domain has no name or is not running (no id)'),
        ('no-name', "<domain id='3'><memory>1</memory></domain>",
         'g.xml: domain has no name or is not running (no id)'),
        ('negative-id', _domain('<memory>1</memory>', "'-1'"),
         'g.xml: domain has no name or is not running (no id)'),
        ('superscript-id', _domain('<memory>1</memory>', "'\u00b2'"),
         'g.xml: domain has no name or is not running (no id)'),
        ('not-xml', 'instance-00000001 is running',
         'g.xml: not XML: syntax error: line 1, column 0'),
        ('empty', '', 'g.xml: not XML: no element found: line 1, column 0'),
        ('no-memory', _domain(''),
         "g.xml: domain 'instance-00000007' has no <memory>"),
        ('bad-unit', _domain("<memory unit='pages'>1</memory>"),
         "g.xml: memory '1' 'pages' is not a size"),
        ('negative-size', _domain('<memory>-1</memory>'),
         "g.xml: memory '-1' 'kib' is not a size"),
        ('superscript-size', _domain('<memory>\u00b2</memory>'),
         "g.xml: memory '\u00b2' 'kib' is not a size"),
        ('implausible-size', _domain("<memory unit='TiB'>1025</memory>"),
         'g.xml: memory of 1126999418470400 bytes is implausible'),
        ('bad-nodeset',
         _domain("<memory>1</memory><numatune><memory nodeset='a'/>"
                 "</numatune>"),
         "g.xml: bad nodeset 'a'"),
    )
    def test_not_a_running_domain(self, xml, message):
        """Ensures that what is not a running domain is a one-line error."""
        e = self.assertRaises(InputError, guests.parse_domain, xml, 'g.xml')
        self.assertEqual(message, str(e))

    @ddt.named_data(('xxe', XXE), ('billion-laughs', BILLION_LAUGHS))
    def test_entities_are_refused(self, xml):
        """Ensures that a document with entities is refused, never expanded."""
        e = self.assertRaises(InputError, guests.parse_domain, xml, 'g.xml')
        self.assertTrue(str(e).startswith('g.xml: not XML: '), str(e))
        self.assertNotIn('root:', str(e))
        self.assertNotIn('lollol', str(e))

    @ddt.named_data(
        ('name-with-newline',
         "<domain id='1'><name>a\nb</name></domain>"),
        ('unit-with-newline',
         "<domain id='1'><name>a</name><memory unit='&#10;'>1</memory>"
         "</domain>"),
        ('id-of-5000-digits', _domain('<memory>1</memory>',
                                      "'%s'" % ('9' * 5000))),
        ('size-of-5000-digits', _domain('<memory>%s</memory>' % ('9' * 5000))),
        ('nodeset-of-5000-digits',
         _domain("<memory>1048576</memory><numatune><memory nodeset='%s'/>"
                 "</numatune>" % ('9' * 5000))),
        ('nodeset-of-billions-of-nodes',
         _domain("<memory>1048576</memory><numatune>"
                 "<memory nodeset='0-99999999999'/></numatune>")),
        ('superscript-nodeset',
         _domain("<memory>1048576</memory><numatune>"
                 "<memory nodeset='\u00b2'/></numatune>")),
        ('superscript-cell-id',
         _domain("<memory>1048576</memory><numatune><memnode cellid='0' "
                 "nodeset='0'/></numatune><cpu><numa><cell id='\u00b2' "
                 "memory='1048576'/></numa></cpu>")),
        ('superscript-memnode-cellid',
         _domain("<memory>1048576</memory><numatune><memnode "
                 "cellid='\u00b2' nodeset='0'/></numatune><cpu><numa>"
                 "<cell id='0' memory='1048576'/></numa></cpu>")),
    )
    def test_odd_values_give_one_line_error_or_guest(self, xml):
        """Ensures that odd values parse or give a one-line InputError."""
        try:
            guest = guests.parse_domain(xml, 'g.xml')
        except InputError as e:
            self.assertTrue(str(e).startswith('g.xml: '), str(e))
            self.assertNotIn('\n', str(e))
        else:
            self.assertIsInstance(guest, guests.Guest)
            for node in guest.bound or ():
                self.assertLess(node, 4096)


# Values for the numbers, units and node sets of generated documents:
# plausible and absurd numbers, numbers too long for int(), and junk.
# Text XML can carry (no control characters but newline and tab).
XML_TEXT = st.one_of(st.characters(codec='utf-8',
                                   exclude_categories=('Cs', 'Cc')),
                     st.sampled_from('\n\t'))
NUMBERS = st.one_of(
    st.integers(0, 2 ** 24).map(str),
    st.integers(0, 10 ** 30).map(str),
    st.sampled_from(['0', '1', '4096', '1048576', '9' * 4400, '-1', '', 'x',
                     '\u00b2', '\u0663', '1.5', ' 7 ', '0x10', '1e3']),
    st.text(XML_TEXT, max_size=4))
UNITS = st.one_of(st.sampled_from(['KiB', 'k', 'MiB', 'G', 'GiB', 'TiB',
                                   'b', 'bytes', 'MB', 'pages', '']),
                  st.text(XML_TEXT, max_size=4))
NODESETS = st.one_of(
    st.sampled_from(['0', '1', '0-1', '0,1', '1-0', '0-', '-1', '^1',
                     '0-3,^2', ' 0 , 1 ', '', ',', '4095', '4096',
                     '0-4096', '0-99999999999', '\u00b2', '9' * 4400]),
    NUMBERS)
MODES = st.sampled_from(['strict', 'restrictive', 'preferred', 'interleave',
                         '', 'x'])
TEXT = st.text(XML_TEXT, max_size=12)
# Most parts are present: a document must get past the first checks to
# exercise the later ones.
MOSTLY = st.sampled_from([True, True, True, False])


def _attrs(draw, **values):
    """Attributes, each mostly present, with drawn values."""
    return ''.join(' %s=%s' % (name, saxutils.quoteattr(draw(value)))
                   for name, value in values.items() if draw(MOSTLY))


def _one_of_mostly(good, other):
    """``good`` three times out of four, else one of ``other``."""
    return MOSTLY.flatmap(lambda yes: st.just(good) if yes else other)


@st.composite
def domain_documents(draw):
    """Domain XML (maybe in <domstatus>) with random values everywhere."""
    memory = ''.join(
        '<%s%s>%s</%s>' % (tag, _attrs(draw, unit=UNITS), saxutils.escape(
            draw(_one_of_mostly('1048576', NUMBERS))), tag)
        for tag in draw(st.lists(st.sampled_from(['memory', 'currentMemory']),
                                 min_size=draw(st.sampled_from([0, 1, 1])),
                                 max_size=2)))
    backing = draw(st.sampled_from(
        ['', '', '<memoryBacking><hugepages/></memoryBacking>',
         '<memoryBacking><locked/></memoryBacking>']))
    numatune = ''
    if draw(MOSTLY):
        memnodes = ''.join(
            '<memnode%s/>' % _attrs(
                draw, cellid=_one_of_mostly('0', NUMBERS), mode=MODES,
                nodeset=_one_of_mostly('1', NODESETS))
            for _ in range(draw(st.integers(0, 3))))
        tune = ''
        if draw(MOSTLY):
            tune = '<memory%s/>' % _attrs(draw, mode=MODES, nodeset=NODESETS)
        numatune = '<numatune>%s%s</numatune>' % (tune, memnodes)
    cells = ''.join(
        '<cell%s/>' % _attrs(draw, id=_one_of_mostly('0', NUMBERS),
                             cpus=st.just('0'),
                             memory=_one_of_mostly('1048576', NUMBERS),
                             unit=UNITS)
        for _ in range(draw(st.integers(0, 3))))
    name = ''
    if draw(MOSTLY):
        name = '<name>%s</name>' % saxutils.escape(
            draw(_one_of_mostly('instance-00000001', TEXT)))
    domain = '<domain%s>%s%s%s%s<cpu><numa>%s</numa></cpu></domain>' % (
        _attrs(draw, id=_one_of_mostly('1', NUMBERS)), name, memory,
        backing, numatune, cells)
    if draw(st.booleans()):
        domain = "<domstatus state='running'>%s</domstatus>" % domain
    return domain


VALID_XML = fake_guests.domain_xml('instance-00000001', 1, 4096,
                                   cells=[(2048, '0'), (2048, '1')])


class ParseDomainPropertyTest(testcase.TestCase):

    def check(self, text):
        try:
            guest = guests.parse_domain(text, 'd.xml')
        except InputError as e:
            self.assertTrue(str(e).startswith('d.xml: '), str(e))
            self.assertNotIn('\n', str(e))
            return None
        self.assertIsInstance(guest, guests.Guest)
        self.assertIn(guest.hugepages, (True, False))
        self.assertTrue(0 <= guest.size_mb <= 2 ** 30)
        self.assertLessEqual(guest.domain_id, 10 ** 30)
        for node, mb in (guest.bound or {}).items():
            self.assertTrue(0 <= node < 4096)
            self.assertGreaterEqual(mb, 0)
        return guest

    @PROPERTY
    @hypothesis.given(st.one_of(st.binary(max_size=300),
                                st.text(max_size=300)))
    def test_random_input_is_an_input_error(self, data):
        """Ensures that random bytes or text give InputError, nothing else."""
        self.assertRaises(InputError, guests.parse_domain, data, 'd.xml')

    @PROPERTY
    @hypothesis.given(st.integers(0, len(VALID_XML.rstrip()) - 1))
    def test_truncated_runtime_file_is_an_input_error(self, length):
        """Ensures that any truncation of a runtime XML is a one-line error."""
        e = self.assertRaises(InputError, guests.parse_domain,
                              VALID_XML[:length], 'd.xml')
        self.assertNotIn('\n', str(e))

    @GENERATED
    @hypothesis.given(domain_documents())
    def test_generated_domains_parse_or_give_one_line_error(self, document):
        """Ensures that any values give a Guest or a one-line error."""
        self.check(document)

    @PROPERTY
    @hypothesis.given(st.lists(st.sampled_from(
        ['<domstatus>', "<domain id='1'>", '<domain>', '<name>', 'a',
         '</name>', "<memory unit='KiB'>", '<memory>', '1048576', '-1', 'x',
         '</memory>', '<currentMemory>', '</currentMemory>', '<numatune>',
         "<memory nodeset='0'/>", "<memnode cellid='0' nodeset='1'/>",
         '</numatune>', '<cpu>', '<numa>', "<cell id='0' memory='1024'/>",
         "<cell id='0'>1024</cell>", '</numa>', '</cpu>', '<memoryBacking>',
         '<hugepages/>', '</memoryBacking>', '</domain>', '</domstatus>']),
        max_size=25))
    def test_mangled_structure_parses_or_gives_one_line_error(self, parts):
        """Ensures that odd but well-formed structures never crash."""
        self.check(''.join(parts))


@ddt.ddt
class ParseNumaStatTest(testcase.TestCase):

    def test_anon_and_shmem_per_node(self):
        """Ensures that anon plus shmem bytes per node become whole MiB."""
        # N0: 1 GiB anon + 1 MiB shmem = 1025 MiB; N1: 512 MiB anon.
        # file, anon_thp and shmem_thp are not added.
        self.assertEqual({0: 1025, 1: 512},
                         guests.parse_numa_stat(STAT, 's'))

    def test_kernel_layout(self):
        """Ensures that the fake tree's full kernel layout is read."""
        text = fake_guests.numa_stat_text({0: 3 * MIB, 1: 5 * MIB - 1},
                                          {1: 2 * MIB})
        # N1: 5 MiB - 1 byte + 2 MiB = 6 MiB - 1 byte -> 6 MiB rounded down.
        self.assertEqual({0: 3, 1: 6}, guests.parse_numa_stat(text, 's'))

    @ddt.named_data(
        ('no-shmem', 'anon N0=1\n', 's: no shmem line'),
        ('no-anon-or-shmem', 'file N0=1\n', 's: no anon or shmem line'),
        ('empty', '', 's: no anon or shmem line'),
        ('anon-twice', 'anon N0=1\nshmem N0=1\nanon N0=2\n',
         's: line 3: anon listed twice'),
        ('key-alone', 'anon\nshmem N0=1\n',
         "s: line 1 is not \"key N0=bytes ...\": 'anon'"),
        ('not-a-count', 'anon N0=x\nshmem N0=1\n',
         "s: line 1 is not \"key N0=bytes ...\": 'anon N0=x'"),
        ('negative', 'anon N0=-1\nshmem N0=1\n',
         "s: line 1 is not \"key N0=bytes ...\": 'anon N0=-1'"),
        ('bad-other-line', 'anon N0=1\nshmem N0=1\nfile 12\n',
         "s: line 3 is not \"key N0=bytes ...\": 'file 12'"),
        ('node-4096', 'anon N4096=1\nshmem N0=1\n',
         's: line 1: N4096=1 is implausible'),
        ('implausible-bytes', 'anon N0=%d\nshmem N0=1\n' % (2 ** 50 + 1),
         's: line 1: N0=1125899906842625 is implausible'),
    )
    def test_garbage_is_a_one_line_error(self, text, message):
        """Ensures that a malformed memory.numa_stat is a one-line error."""
        e = self.assertRaises(InputError, guests.parse_numa_stat, text, 's')
        self.assertEqual(message, str(e))

    @ddt.named_data(
        ('count-of-5000-digits', 'anon N0=%s\nshmem N0=1\n' % ('9' * 5000)),
        ('node-of-5000-digits', 'anon N%s=1\nshmem N0=1\n' % ('9' * 5000)),
        ('arabic-indic-digits', 'anon N\u0663=\u0663\nshmem N0=1\n'),
        ('superscript-digits', 'anon N0=\u00b2\nshmem N0=1\n'),
    )
    def test_odd_numbers_are_input_errors(self, text):
        """Ensures that numbers int() refuses or misreads are InputErrors."""
        e = self.assertRaises(InputError, guests.parse_numa_stat, text, 's')
        self.assertNotIn('\n', str(e))

    def check(self, text):
        try:
            resident = guests.parse_numa_stat(text, 's')
        except InputError as e:
            self.assertTrue(str(e).startswith('s: '), str(e))
            self.assertNotIn('\n', str(e))
            return
        for node, mb in resident.items():
            self.assertTrue(0 <= node < 4096)
            self.assertTrue(0 <= mb <= 2 * 2 ** 30)

    @PROPERTY
    @hypothesis.given(st.text(max_size=300))
    def test_random_text_parses_or_gives_one_line_error(self, text):
        """Ensures that random text gives a dict or InputError, never else."""
        self.check(text)

    @PROPERTY
    @hypothesis.given(st.lists(st.one_of(
        st.sampled_from(STAT.splitlines() + [
            '', 'anon', 'anon N0=', 'anon N0=1 N0=2', 'shmem N4095=1',
            'anon N0=%s' % ('9' * 4400), 'anon N%s=1' % ('9' * 4400),
            'anon N\u0663=1', 'shmem N0=\u00b2', 'anon N0=1125899906842625',
            'anon N-1=1', 'shmem\tN0=1\tN1=2', 'anon N0=1\x85shmem N0=1']),
        st.builds('{} N{}={}'.format, st.sampled_from(['anon', 'shmem',
                                                       'file']),
                  NUMBERS, NUMBERS)), max_size=12))
    def test_mangled_lines_parse_or_give_one_line_error(self, lines):
        """Ensures that mixed real and broken lines never crash the parser."""
        self.check('\n'.join(lines))


class ReadRuntimeDomainsTest(GuestTreeTestCase):

    def test_bad_files_are_problems_good_guests_still_read(self):
        """Ensures that each bad runtime file is one problem, not the end."""
        self.write(GUEST('instance-00000001', 1, 4096))
        bad = {
            'other-root': '<capabilities/>',
            'defined-not-running': "<domain><name>x</name></domain>",
            'not-xml': 'garbage',
            'xxe': XXE,
            'billion-laughs': BILLION_LAUGHS,
        }
        paths = {name: fake_guests.write_runtime_xml(self.libvirt_root,
                                                     name, text)
                 for name, text in bad.items()}
        fifo = os.path.join(self.libvirt_root, 'fifo.xml')
        os.mkfifo(fifo)
        # Not runtime XML: ignored.
        os.makedirs(os.path.join(self.libvirt_root,
                                 'domain-1-instance-00000001'))
        with open(os.path.join(self.libvirt_root,
                               'instance-00000001.pid'), 'w') as handle:
            handle.write('4001\n')
        self.useFixture(fixtures.Timeout(60, gentle=True))

        found, problems = guests.read_runtime_domains(self.libvirt_root)

        self.assertEqual([('instance-00000001', 1, 4096)],
                         [(g.name, g.domain_id, g.size_mb) for g in found])
        self.assertEqual(sorted(list(paths.values()) + [fifo]),
                         sorted(p.source for p in problems))
        for problem in problems:
            self.assertNotIn('\n', str(problem))
        self.assertIn('%s: cannot read: not a regular file' % fifo,
                      [str(p) for p in problems])

    def test_hugepage_guests_are_kept(self):
        """Ensures that hugepage-backed guests are listed, marked so."""
        self.write(GUEST('instance-00000001', 1, 4096),
                   GUEST('instance-00000002', 2, 16384, hugepages=True))
        found, problems = guests.read_runtime_domains(self.libvirt_root)
        self.assertEqual([('instance-00000001', 4096, False),
                          ('instance-00000002', 16384, True)],
                         [(g.name, g.size_mb, g.hugepages) for g in found])
        self.assertEqual([], problems)

    def test_missing_directory(self):
        """Ensures that no runtime directory means no libvirt data at all."""
        e = self.assertRaises(InputError, guests.read_runtime_domains,
                              self.libvirt_root)
        self.assertEqual('%s: cannot list libvirt runtime state: No such '
                         'file or directory' % self.libvirt_root, str(e))

    def test_file_vanishing_after_listing_is_skipped(self):
        """Ensures that a guest stopping while it is listed is no problem."""
        self.write(GUEST('instance-00000001', 1, 4096),
                   GUEST('instance-00000002', 2, 2048))
        real_listdir = os.listdir

        def listdir(path):
            names = real_listdir(path)
            if path == self.libvirt_root:
                names.append('instance-00000003.xml')  # stopped meanwhile
            return names
        self.useFixture(fixtures.MockPatchObject(guests.os, 'listdir',
                                                 side_effect=listdir))

        found, problems = guests.read_runtime_domains(self.libvirt_root)

        self.assertEqual(['instance-00000001', 'instance-00000002'],
                         [g.name for g in found])
        self.assertEqual([], problems)


class ScopePathsTest(GuestTreeTestCase):

    def test_scopes_by_domain_id(self):
        """Ensures that systemd's \\x2d escapes are read back to domain ids."""
        self.write(GUEST('instance-00000001', 1, 4096),
                   GUEST('web-db-2', 12, 4096))
        slice_dir = os.path.join(self.cgroup_root, 'machine.slice')
        # Neither a QEMU guest's scope nor a guest.
        os.makedirs(os.path.join(slice_dir, 'machine-lxc\\x2d3\\x2dc.scope'))
        os.makedirs(os.path.join(slice_dir, 'machine-qemu\\x2dx.scope'))
        self.assertEqual(
            {1: os.path.join(slice_dir,
                             'machine-qemu\\x2d1\\x2dinstance\\x2d00000001'
                             '.scope'),
             12: os.path.join(slice_dir,
                              'machine-qemu\\x2d12\\x2dweb\\x2ddb\\x2d2'
                              '.scope')},
            guests.scope_paths(self.cgroup_root))

    def test_not_cgroup_v2(self):
        """Ensures that a root without cgroup.controllers is refused."""
        fake_guests.write_cgroup_root(self.cgroup_root, v2=False)
        e = self.assertRaises(InputError, guests.scope_paths,
                              self.cgroup_root)
        self.assertEqual('%s: not a cgroup v2 hierarchy (no '
                         'cgroup.controllers)' % self.cgroup_root, str(e))

    def test_no_machine_slice_has_no_scopes(self):
        """Ensures that no machine.slice (no guest since boot) is no scope."""
        fake_guests.write_cgroup_root(self.cgroup_root, machine_slice=False)
        self.assertEqual({}, guests.scope_paths(self.cgroup_root))

    def test_machine_slice_not_a_directory(self):
        """Ensures that a machine.slice that cannot be listed is refused."""
        fake_guests.write_cgroup_root(self.cgroup_root, machine_slice=False)
        with open(os.path.join(self.cgroup_root, 'machine.slice'), 'w'):
            pass
        e = self.assertRaises(InputError, guests.scope_paths,
                              self.cgroup_root)
        self.assertEqual('%s/machine.slice: cannot list: Not a directory' %
                         self.cgroup_root, str(e))


@ddt.ddt
class GuestMemoryTest(GuestTreeTestCase):
    """guest_untouched_mb and guests_mb on ROOM = {0: 20000, 1: 10000}."""

    @ddt.named_data(
        ('no-guests', [], {0: 0, 1: 0}, 0),
        # Nothing resident: all 4096 MB to node 0, the one with most room.
        ('nothing-resident', [GUEST('instance-00000001', 1, 4096)],
         {0: 4096, 1: 0}, 4096),
        # No scope yet (starting) while another guest has its scope:
        # counted as nothing resident, all 4096 MB to node 0 (20000 vs
        # 10000); the other is fully resident on node 1.
        ('no-scope-yet',
         [GUEST('instance-00000001', 1, 4096, scope=False),
          GUEST('instance-00000002', 2, 2048, anon_mb={1: 2048})],
         {0: 4096, 1: 0}, 4096 + 2048),
        # 1024 of 4096 resident on node 1: the other 3072 follow them.
        ('partly-resident-one-node',
         [GUEST('instance-00000001', 1, 4096, anon_mb={1: 1024})],
         {0: 0, 1: 3072}, 4096),
        ('fully-resident-one-node',
         [GUEST('instance-00000001', 1, 4096, anon_mb={1: 4096})],
         {0: 0, 1: 0}, 4096),
        # QEMU's own memory makes it more than the guest's size.
        ('resident-beyond-size',
         [GUEST('instance-00000001', 1, 4096, anon_mb={1: 4000},
                shmem_mb={1: 200})],
         {0: 0, 1: 0}, 4096),
        # anon 512 + shmem 512 = 1024 resident on node 1: 3072 untouched.
        ('anon-and-shmem',
         [GUEST('instance-00000001', 1, 4096, anon_mb={1: 512},
                shmem_mb={1: 512})],
         {0: 0, 1: 3072}, 4096),
        # Memfd-backed (vhost-user) guest RAM is shmem.
        ('shmem-only',
         [GUEST('instance-00000001', 1, 4096, shmem_mb={1: 1024})],
         {0: 0, 1: 3072}, 4096),
        # 8192 - (3072 + 1024) = 4096 untouched, split 3:1.
        ('partly-resident-two-nodes',
         [GUEST('instance-00000001', 1, 8192, anon_mb={0: 3072, 1: 1024})],
         {0: 3072, 1: 1024}, 8192),
        # 4096 - 1500 = 2596 untouched split 1000:500: 1730.67 and 865.33
        # round down to 1730 + 865 = 2595; the odd MB goes to node 0, the
        # larger share.
        ('partly-resident-two-nodes-uneven',
         [GUEST('instance-00000001', 1, 4096, anon_mb={0: 1000, 1: 500})],
         {0: 1731, 1: 865}, 4096),
        ('fully-resident-two-nodes',
         [GUEST('instance-00000001', 1, 8192, anon_mb={0: 4096, 1: 4096})],
         {0: 0, 1: 0}, 8192),
        # Largest first to the node with most room left: 12288 -> node 0
        # (20000 vs 10000), leaving 7712; 8192 -> node 1 (10000 vs 7712),
        # leaving 1808; 4096 -> node 0 (7712 vs 1808).
        ('nothing-resident-largest-first',
         [GUEST('instance-a', 1, 4096), GUEST('instance-b', 2, 8192),
          GUEST('instance-c', 3, 12288)],
         {0: 16384, 1: 8192}, 24576),
        # 16384 - 2048 = 14336 follow node 0's residency, leaving node 0
        # 5664 < 10000: the 4096 with nothing resident goes to node 1.
        ('charges-count-against-room',
         [GUEST('instance-a', 1, 4096),
          GUEST('instance-b', 2, 16384, anon_mb={0: 2048})],
         {0: 14336, 1: 4096}, 20480),
        # Bound to node 1 with nothing resident: node 1, not the roomiest.
        ('bound-nothing-resident',
         [GUEST('instance-00000001', 1, 4096, nodeset='1')],
         {0: 0, 1: 4096}, 4096),
        ('bound-over-two-nodes-nothing-resident',
         [GUEST('instance-00000001', 1, 4096, nodeset='0-1')],
         {0: 2048, 1: 2048}, 4096),
        # Guest cells of 3072 and 1024 MB bound to nodes 0 and 1.
        ('bound-cells-nothing-resident',
         [GUEST('instance-00000001', 1, 4096, cells=[(3072, '0'),
                                                    (1024, '1')])],
         {0: 3072, 1: 1024}, 4096),
        # Residency wins over the binding once there is some.
        ('bound-partly-resident',
         [GUEST('instance-00000001', 1, 4096, nodeset='0-1',
                anon_mb={1: 1024})],
         {0: 0, 1: 3072}, 4096),
        # "preferred" does not bind: roomiest node.
        ('preferred-nothing-resident',
         [GUEST('instance-00000001', 1, 4096, nodeset='1', mode='preferred')],
         {0: 4096, 1: 0}, 4096),
        # Bound to a node this host does not report: roomiest node.
        ('bound-to-unknown-node',
         [GUEST('instance-00000001', 1, 4096, nodeset='3')],
         {0: 4096, 1: 0}, 4096),
        # Hugepage guests count in guests_mb with their full size, but
        # nothing of them is untouched, with a scope or without one.
        ('hugepage-guests-in-size-never-untouched',
         [GUEST('instance-00000001', 1, 8192, hugepages=True,
                anon_mb={0: 64}),
          GUEST('instance-00000002', 2, 16384, hugepages=True, scope=False),
          GUEST('instance-00000003', 3, 4096)],
         {0: 4096, 1: 0}, 8192 + 16384 + 4096),
        # Only hugepage guests, none with a scope: no error, nothing
        # untouched, their size counted.
        ('hugepage-guests-only-no-scope',
         [GUEST('instance-00000001', 1, 16384, hugepages=True, scope=False),
          GUEST('instance-00000002', 2, 2048, hugepages=True, scope=False)],
         {0: 0, 1: 0}, 16384 + 2048),
        # A hugepage guest's scope has no memory.numa_stat: it is not read.
        ('hugepage-guest-scope-without-numa-stat',
         [GUEST('instance-00000001', 1, 16384, hugepages=True,
                numa_stat=False),
          GUEST('instance-00000002', 2, 4096, anon_mb={1: 1024})],
         {0: 0, 1: 3072}, 16384 + 4096),
    )
    def test_figures(self, specs, untouched, guests_mb):
        """Ensures that untouched memory is charged to nodes by the rules."""
        self.write(*specs)
        self.assertEqual((untouched, guests_mb), self.figures())

    def test_hugepage_guest_numa_stat_is_never_read(self):
        """Ensures that a hugepage guest's numa_stat, even garbage, is unread.

        Its pages come out of the hugepage pools: what cgroups say of it
        changes nothing.
        """
        self.write(GUEST('instance-00000001', 1, 16384, hugepages=True),
                   GUEST('instance-00000002', 2, 4096))
        path = os.path.join(self.scope_dir(1, 'instance-00000001'),
                            'memory.numa_stat')
        with open(path, 'w') as handle:
            handle.write('anon N0=lots\n')
        # 4096 with nothing resident to node 0; 16384 counted, untouched 0.
        self.assertEqual(({0: 4096, 1: 0}, 16384 + 4096), self.figures())

    def test_hugepage_guest_reads_nothing_resident(self):
        """Ensures that read_guests keeps a hugepage guest, unread."""
        self.write(GUEST('instance-00000001', 1, 16384, hugepages=True,
                         anon_mb={0: 16384}),
                   GUEST('instance-00000002', 2, 4096, anon_mb={1: 1024}))
        found, problems = guests.read_guests(self.libvirt_root,
                                             self.cgroup_root, None)
        self.assertEqual([('instance-00000001', True, {}),
                          ('instance-00000002', False, {1: 1024})],
                         [(g.name, g.hugepages, g.resident_mb)
                          for g in found])
        self.assertEqual([], problems)

    def test_no_machine_slice_no_guests_gives_zeros(self):
        """Ensures that no machine.slice and no guest gives zero figures."""
        fake_guests.write_runtime_dir(self.libvirt_root)
        fake_guests.write_cgroup_root(self.cgroup_root, machine_slice=False)
        self.assertEqual(({0: 0, 1: 0}, 0), self.figures())

    def test_no_machine_slice_hugepage_guests_only(self):
        """Ensures that hugepage guests need no machine.slice."""
        fake_guests.write_cgroup_root(self.cgroup_root, machine_slice=False)
        self.write(GUEST('instance-00000001', 1, 16384, hugepages=True,
                         scope=False))
        self.assertEqual(({0: 0, 1: 0}, 16384), self.figures())

    def test_only_home_nodes_take_guests_with_nothing_resident(self):
        """Ensures that a node without CPUs never gets an unplaced guest."""
        self.write(GUEST('instance-00000001', 1, 4096),
                   GUEST('instance-00000002', 2, 2048, anon_mb={2: 1024}))
        # Node 2 (memory only) has most room, but only residency charges it.
        self.assertEqual(({0: 4096, 1: 0, 2: 1024}, 6144), self.figures(
            room={0: 10000, 1: 9000, 2: 50000}, homes=[0, 1]))

    def test_libvirt_root_unused_with_working_binding(self):
        """Ensures that with a uri the binding's guests replace the files."""
        self.write(GUEST('instance-00000001', 1, 4096))
        fake_guests.write_scope(self.cgroup_root, 9, 'instance-00000009',
                                anon={1: 512 * MIB})
        libvirt = FakeLibvirt([binding_domain('instance-00000009', 9, 2048)])
        self.useFixture(libvirt)
        memory, problems = self.memory(uri='qemu:///system')
        # Only the binding's 2048: 512 resident on node 1, 1536 follow.
        self.assertEqual(({0: 0, 1: 1536}, 2048),
                         (memory.untouched_mb, memory.guests_mb))
        self.assertEqual([], problems)
        self.assertEqual(['qemu:///system'], libvirt.opened)


@ddt.ddt
class UntouchedByNodeTest(testcase.TestCase):
    """The charging rule on Guest objects."""

    @ddt.named_data(
        # Equal room: the lowest node id.
        ('tie-goes-to-lowest-node', [guests.Guest('a', 1, 1024)],
         {0: 5000, 1: 5000}, [0, 1], {0: 1024, 1: 0}),
        ('homes-limit-unplaced', [guests.Guest('a', 1, 1024)],
         {0: 100, 1: 200, 2: 9000}, [0, 1], {0: 0, 1: 1024, 2: 0}),
        # No home at all: every node is a candidate.
        ('no-homes-every-node', [guests.Guest('a', 1, 1024)],
         {0: 100, 1: 200, 2: 9000}, [], {0: 0, 1: 0, 2: 1024}),
        # Resident only on a node the host did not report (unreadable):
        # the 3072 left count as unplaced.
        ('resident-on-unknown-node',
         [guests.Guest('a', 1, 4096, resident_mb={3: 1024})],
         {0: 100, 1: 200}, [0, 1], {0: 0, 1: 3072}),
        # Bound with zero MB per node (a 1 MB cell over two nodes): no
        # share at all, so unplaced; never a division by zero.
        ('bound-with-nothing-per-node',
         [guests.Guest('a', 1, 1, bound={0: 0, 1: 0})],
         {0: 100, 1: 200}, [0, 1], {0: 0, 1: 1}),
        ('resident-below-1-mib-ignored',
         [guests.Guest('a', 1, 1024, resident_mb={0: 0, 1: 0})],
         {0: 100, 1: 200}, [0, 1], {0: 0, 1: 1024}),
        # Hugepage guests have nothing untouched, whatever else they say.
        ('hugepage-guest-nothing-untouched',
         [guests.Guest('h', 1, 4096, hugepages=True),
          guests.Guest('i', 2, 8192, bound={1: 8192}, hugepages=True),
          guests.Guest('j', 3, 8192, resident_mb={0: 1024},
                       hugepages=True)],
         {0: 100, 1: 200}, [0, 1], {0: 0, 1: 0}),
        # ...and take no room from the guests that do.
        ('hugepage-guest-takes-no-room',
         [guests.Guest('h', 1, 16384, hugepages=True),
          guests.Guest('a', 2, 1024)],
         {0: 100, 1: 200}, [0, 1], {0: 0, 1: 1024}),
    )
    def test_charges(self, guest_list, room, homes, expected):
        """Ensures that each guest's untouched memory lands where it should."""
        self.assertEqual(expected,
                         guests.untouched_by_node(guest_list, room, homes))


class GuestProblemsTest(GuestTreeTestCase):
    """Without libvirt or cgroup v2 data there are no guest figures."""

    def assertNoFigures(self, problem):
        memory, problems = self.memory()
        self.assertIsNone(memory)
        self.assertEqual([problem], [str(p) for p in problems])

    def test_no_cgroup_v2(self):
        """Ensures that a cgroup v1 host gives no figures and one problem."""
        self.write(GUEST('instance-00000001', 1, 4096))
        os.unlink(os.path.join(self.cgroup_root, 'cgroup.controllers'))
        self.assertNoFigures('%s: not a cgroup v2 hierarchy (no '
                             'cgroup.controllers)' % self.cgroup_root)

    def test_no_machine_slice_with_running_guests(self):
        """Ensures that running guests but no machine.slice give no figures.

        libvirt does not put its guests there (another cgroup layout): what
        is resident cannot be read, and charging every guest in full would
        be wrong.
        """
        self.write(GUEST('instance-00000001', 1, 4096, scope=False),
                   GUEST('instance-00000002', 2, 2048, scope=False),
                   # Not counted among the guests whose scope is missing.
                   GUEST('instance-00000003', 3, 8192, hugepages=True,
                         scope=False))
        shutil.rmtree(os.path.join(self.cgroup_root, 'machine.slice'))
        self.assertNoFigures('%s/machine.slice: no scope of any of the 2 '
                             'running guests: libvirt does not put them in '
                             'machine.slice' % self.cgroup_root)

    def test_no_scope_of_any_guest(self):
        """Ensures that machine.slice without any guest's scope is refused."""
        self.write(GUEST('instance-00000001', 1, 4096, scope=False),
                   # A hugepage guest's scope does not make up for it.
                   GUEST('instance-00000002', 2, 8192, hugepages=True))
        self.assertNoFigures('%s/machine.slice: no scope of any of the 1 '
                             'running guests: libvirt does not put them in '
                             'machine.slice' % self.cgroup_root)

    def test_scope_without_numa_stat(self):
        """Ensures that a scope without memory.numa_stat gives no figures.

        The memory controller is not enabled for machine.slice: no guest's
        residency can be read.
        """
        self.write(GUEST('instance-00000001', 1, 4096, anon_mb={0: 1024}),
                   GUEST('instance-00000002', 2, 4096, numa_stat=False))
        path = os.path.join(self.scope_dir(2, 'instance-00000002'),
                            'memory.numa_stat')
        self.assertFalse(os.path.exists(path))
        self.assertNoFigures('%s: missing: the memory controller is not '
                             'enabled for machine.slice' % path)

    def test_no_libvirt_data(self):
        """Ensures that no runtime directory gives no figures."""
        fake_guests.write_cgroup_root(self.cgroup_root)
        self.assertNoFigures('%s: cannot list libvirt runtime state: No '
                             'such file or directory' % self.libvirt_root)

    def test_garbage_numa_stat(self):
        """Ensures that an untrustworthy numa_stat gives no figures."""
        self.write(GUEST('instance-00000001', 1, 4096),
                   GUEST('instance-00000002', 2, 4096))
        path = os.path.join(self.scope_dir(2, 'instance-00000002'),
                            'memory.numa_stat')
        with open(path, 'w') as handle:
            handle.write('anon N0=lots\n')
        self.assertNoFigures("%s: line 1 is not \"key N0=bytes ...\": "
                             "'anon N0=lots'" % path)

    def test_numa_stat_fifo_does_not_block(self):
        """Ensures that a FIFO in place of numa_stat is refused at once."""
        self.write(GUEST('instance-00000001', 1, 4096))
        path = os.path.join(self.scope_dir(1, 'instance-00000001'),
                            'memory.numa_stat')
        os.unlink(path)
        os.mkfifo(path)
        # Fails the test instead of hanging it should the read block.
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.assertNoFigures('%s: cannot read: not a regular file' % path)

    def test_bad_runtime_file_is_reported_figures_kept(self):
        """Ensures that one bad runtime file leaves the other guests in."""
        self.write(GUEST('instance-00000001', 1, 4096, anon_mb={1: 1024}))
        path = fake_guests.write_runtime_xml(self.libvirt_root, 'broken',
                                             '<domain')
        memory, problems = self.memory()
        self.assertEqual(({0: 0, 1: 3072}, 4096),
                         (memory.untouched_mb, memory.guests_mb))
        self.assertEqual([path], [p.source for p in problems])

    def test_scope_vanishing_after_listing(self):
        """Ensures that a guest whose scope goes after listing is left out."""
        self.write(GUEST('instance-00000001', 1, 4096),
                   GUEST('instance-00000002', 2, 8192, anon_mb={1: 1024}))
        real = guests.scope_paths

        def scope_paths(root):
            scopes = real(root)
            shutil.rmtree(self.scope_dir(2, 'instance-00000002'))
            return scopes
        self.useFixture(fixtures.MockPatchObject(
            guests, 'scope_paths', autospec=True, side_effect=scope_paths))
        # Only instance-00000001 (4096, nothing resident) is left.
        self.assertEqual(({0: 4096, 1: 0}, 4096), self.figures())

    def test_numa_stat_vanishing_before_read(self):
        """Ensures that a numa_stat gone before reading is no problem."""
        self.write(GUEST('instance-00000001', 1, 4096),
                   GUEST('instance-00000002', 2, 8192, anon_mb={1: 1024}))
        real = guests._read
        gone = os.path.join(self.scope_dir(2, 'instance-00000002'),
                            'memory.numa_stat')

        def read(path):
            if path == gone:
                # The guest stops: systemd removes its scope, file and all.
                shutil.rmtree(os.path.dirname(path))
            return real(path)
        self.useFixture(fixtures.MockPatchObject(
            guests, '_read', autospec=True, side_effect=read))
        self.assertEqual(({0: 4096, 1: 0}, 4096), self.figures())

    def test_only_guest_stopping_while_read(self):
        """Ensures that the last guest stopping mid-read gives zeros."""
        self.write(GUEST('instance-00000001', 1, 4096, anon_mb={1: 1024}))
        real = guests.scope_paths

        def scope_paths(root):
            scopes = real(root)
            shutil.rmtree(self.scope_dir(1, 'instance-00000001'))
            return scopes
        self.useFixture(fixtures.MockPatchObject(
            guests, 'scope_paths', autospec=True, side_effect=scope_paths))
        self.assertEqual(({0: 0, 1: 0}, 0), self.figures())


class LibvirtBindingTest(GuestTreeTestCase):

    def setUp(self):
        super().setUp()
        # The runtime files hold another guest than the binding: which one
        # comes back says which was read.
        self.write(GUEST('instance-00000001', 1, 1024))

    def names(self, found):
        return [g.name for g in found[0]]

    def test_binding_is_used_when_it_connects(self):
        """Ensures that the binding lists active domains read-only."""
        libvirt = self.useFixture(FakeLibvirt([
            binding_domain('instance-00000002', 2, 2048),
            binding_domain('instance-00000003', 3, 8192, hugepages=True)]))
        found = guests.read_libvirt_domains('qemu:///system')
        # The hugepage guest is kept, marked.
        self.assertEqual(([('instance-00000002', 2048, False),
                           ('instance-00000003', 8192, True)], []),
                         ([(g.name, g.size_mb, g.hugepages)
                           for g in found[0]], found[1]))
        self.assertEqual(['qemu:///system'], libvirt.opened)
        self.assertEqual([1], libvirt.connection.flags)
        self.assertTrue(libvirt.connection.closed)

    def test_bad_domain_is_a_problem_vanished_one_is_skipped(self):
        """Ensures that one odd domain neither hides nor breaks the rest."""
        self.useFixture(FakeLibvirt([
            FakeDomain('<domain', name='instance-00000004'),
            FakeDomain('', name='instance-00000005',
                       error=LibvirtError('Domain not found')),
            binding_domain('instance-00000002', 2, 2048)]))
        found, problems = guests.read_libvirt_domains('qemu:///system')
        self.assertEqual(['instance-00000002'], [g.name for g in found])
        self.assertEqual(['libvirt domain instance-00000004'],
                         [p.source for p in problems])

    def test_read_guests_prefers_the_binding(self):
        """Ensures that read_guests takes the binding's guests over files."""
        fake_guests.write_scope(self.cgroup_root, 2, 'instance-00000002',
                                anon={0: 1024 * MIB})
        self.useFixture(FakeLibvirt([
            binding_domain('instance-00000002', 2, 2048)]))
        found = guests.read_guests(self.libvirt_root, self.cgroup_root,
                                   'qemu:///system')
        self.assertEqual(['instance-00000002'], self.names(found))
        self.assertEqual({0: 1024}, found[0][0].resident_mb)

    def test_no_uri_never_touches_the_binding(self):
        """Ensures that without a uri the runtime files are read."""
        libvirt = self.useFixture(FakeLibvirt([
            binding_domain('instance-00000002', 2, 2048)]))
        for uri in (None, ''):
            found = guests.read_guests(self.libvirt_root, self.cgroup_root,
                                       uri)
            self.assertEqual(['instance-00000001'], self.names(found))
        self.assertEqual([], libvirt.opened)

    def test_falls_back_when_connecting_fails(self):
        """Ensures that a refused connection falls back to runtime files."""
        libvirt = self.useFixture(FakeLibvirt(
            open_error=LibvirtError('Failed to connect socket')))
        self.assertIsNone(guests.read_libvirt_domains('qemu:///system'))
        found = guests.read_guests(self.libvirt_root, self.cgroup_root,
                                   'qemu:///system')
        self.assertEqual(['instance-00000001'], self.names(found))
        self.assertEqual(['qemu:///system', 'qemu:///system'],
                         libvirt.opened)

    def test_falls_back_when_listing_fails(self):
        """Ensures that a connection lost while listing falls back too."""
        libvirt = self.useFixture(FakeLibvirt(
            [], list_error=LibvirtError('End of file while reading data')))
        found = guests.read_guests(self.libvirt_root, self.cgroup_root,
                                   'qemu:///system')
        self.assertEqual(['instance-00000001'], self.names(found))
        self.assertTrue(libvirt.connection.closed)

    def test_falls_back_when_the_binding_does_not_import(self):
        """Ensures that a host without the binding reads runtime files."""
        with mock.patch.dict(sys.modules, {'libvirt': None}):
            self.assertIsNone(guests.read_libvirt_domains('qemu:///system'))
            found = guests.read_guests(self.libvirt_root, self.cgroup_root,
                                       'qemu:///system')
        self.assertEqual(['instance-00000001'], self.names(found))


def shaped_nodes(free_mb, total_mb=32768, cpulists=None):
    """fake_sysfs nodes of ``total_mb`` each, with the given MemFree.

    :param cpulists: per node; '' makes a memory-only node.
    """
    count = len(free_mb)
    cpulists = cpulists or ['%d-%d' % (8 * i, 8 * i + 7)
                            for i in range(count)]
    return [{
        'id': node_id,
        'cpulist': cpulist,
        'meminfo': {'MemTotal': total_mb * 1024, 'MemFree': free * 1024,
                    'Inactive(file)': 1024 * 1024, 'SReclaimable': 0},
        'distance': ' '.join('10' if i == node_id else '21'
                             for i in range(count)),
        'hugepages': {2048: (0, 0)},
    } for node_id, (free, cpulist) in enumerate(zip(free_mb, cpulists))]


class CollectTest(GuestTreeTestCase):
    """collect.collect() end to end over fake sysfs, libvirt and cgroups."""

    def setUp(self):
        super().setUp()
        self.sysfs = os.path.join(self.tmp, 'sys-root')

    def collect(self, host, key=None, roots=True):
        guest_roots = None
        if roots:
            guest_roots = (self.libvirt_root, self.cgroup_root, None)
        return collect.collect(self.sysfs, host, 1700000000.0, key,
                               guest_roots)

    def two_node_64g(self):
        """Two nodes of 32 GiB, 20000 and 10000 MB free, with guests."""
        fake_sysfs.write_tree(self.sysfs, shaped_nodes([20000, 10000]))
        self.write(
            # 1024 of 8192 resident on node 1: 7168 untouched there.
            GUEST('instance-00000001', 1, 8192, anon_mb={1: 1024}),
            # Nothing resident: node 0 (20000 vs 10000 - 7168).
            GUEST('instance-00000002', 2, 4096),
            # Fully resident over both nodes.
            GUEST('instance-00000003', 3, 2048, anon_mb={0: 1024, 1: 1024}),
            # In guests_mb, nothing untouched.
            GUEST('instance-00000004', 4, 16384, hugepages=True))

    def test_guest_fields_present_and_trusted(self):
        """Ensures that the payload and its record carry the guest figures."""
        self.two_node_64g()
        data, problems = self.collect('two-node-64g')
        self.assertEqual([], problems)
        self.assertEqual([(0, 20000, 4096), (1, 10000, 7168)],
                         [(n['id'], n['mem_free_mb'], n['guest_untouched_mb'])
                          for n in data['nodes']])
        self.assertEqual(8192 + 4096 + 2048 + 16384, data['guests_mb'])
        for raw in (payload.encode(data), payload.encode_record(data)):
            trusted = payload.verify(raw, 'two-node-64g', full=True)
            self.assertEqual(({0: 4096, 1: 7168}, 30720),
                             (trusted.untouched_mb, trusted.guests_mb))

    def test_signed_payload_and_record_verify(self):
        """Ensures that signed guest figures verify with the host's key."""
        self.two_node_64g()
        key = payload.host_key('s3cret', 'two-node-64g')
        data, _ = self.collect('two-node-64g', key)
        for raw in (payload.encode(data), payload.encode_record(data, key)):
            trusted = payload.verify(raw, 'two-node-64g', key, full=True)
            self.assertEqual(30720, trusted.guests_mb)

    def test_memory_only_node_takes_no_unplaced_guest(self):
        """Ensures that a node without CPUs is not a home for new guests."""
        fake_sysfs.write_tree(self.sysfs, shaped_nodes(
            [9000, 8000, 30000], cpulists=['0-7', '8-15', '']))
        self.write(GUEST('instance-00000001', 1, 4096))
        data, problems = self.collect('three-node-96g-memory-only-node')
        self.assertEqual([], problems)
        self.assertEqual([4096, 0, 0],
                         [n['guest_untouched_mb'] for n in data['nodes']])
        payload.verify(payload.encode(data), 'three-node-96g-memory-only-node',
                       full=True)

    def assertNoGuestFields(self, data):
        self.assertNotIn('guests_mb', data)
        for node in data['nodes']:
            self.assertNotIn('guest_untouched_mb', node)
        trusted = payload.verify(payload.encode(data), 'two-node-64g',
                                 full=True)
        self.assertEqual((None, None, {0: 20000, 1: 10000}),
                         (trusted.untouched_mb, trusted.guests_mb,
                          trusted.free_mb))
        self.assertIsNone(payload.verify(payload.encode_record(data),
                                         'two-node-64g',
                                         full=True).guests_mb)

    def test_no_cgroup_v2_leaves_the_fields_out(self):
        """Ensures that without cgroup v2 the guest fields are left out."""
        self.two_node_64g()
        os.unlink(os.path.join(self.cgroup_root, 'cgroup.controllers'))
        data, problems = self.collect('two-node-64g')
        self.assertNoGuestFields(data)
        self.assertEqual(['%s: not a cgroup v2 hierarchy (no '
                          'cgroup.controllers)' % self.cgroup_root],
                         [str(p) for p in problems])

    def test_no_libvirt_data_leaves_the_fields_out(self):
        """Ensures that without libvirt data the guest fields are left out."""
        self.two_node_64g()
        shutil.rmtree(self.libvirt_root)
        data, problems = self.collect('two-node-64g')
        self.assertNoGuestFields(data)
        self.assertEqual(['%s: cannot list libvirt runtime state: No such '
                          'file or directory' % self.libvirt_root],
                         [str(p) for p in problems])

    def test_scope_without_numa_stat_leaves_the_fields_out(self):
        """Ensures that a scope without numa_stat drops the guest fields."""
        self.two_node_64g()
        self.write(GUEST('instance-00000005', 5, 1024, numa_stat=False))
        data, problems = self.collect('two-node-64g')
        self.assertNoGuestFields(data)
        self.assertEqual(['%s: missing: the memory controller is not '
                          'enabled for machine.slice' % os.path.join(
                              self.scope_dir(5, 'instance-00000005'),
                              'memory.numa_stat')],
                         [str(p) for p in problems])

    def test_no_machine_slice_no_guests_gives_zeros(self):
        """Ensures that no machine.slice and no guest publishes zeros."""
        fake_sysfs.write_tree(self.sysfs, shaped_nodes([20000, 10000]))
        fake_guests.write_runtime_dir(self.libvirt_root)
        fake_guests.write_cgroup_root(self.cgroup_root, machine_slice=False)
        data, problems = self.collect('two-node-64g')
        self.assertEqual([], problems)
        self.assertEqual(([0, 0], 0),
                         ([n['guest_untouched_mb'] for n in data['nodes']],
                          data['guests_mb']))
        trusted = payload.verify(payload.encode(data), 'two-node-64g',
                                 full=True)
        self.assertEqual(({0: 0, 1: 0}, 0),
                         (trusted.untouched_mb, trusted.guests_mb))

    def test_no_machine_slice_with_guests_leaves_the_fields_out(self):
        """Ensures that guests without any scope drop the guest fields."""
        self.two_node_64g()
        shutil.rmtree(os.path.join(self.cgroup_root, 'machine.slice'))
        data, problems = self.collect('two-node-64g')
        self.assertNoGuestFields(data)
        # instance-00000004 (hugepages) is not among them.
        self.assertEqual(['%s/machine.slice: no scope of any of the 3 '
                          'running guests: libvirt does not put them in '
                          'machine.slice' % self.cgroup_root],
                         [str(p) for p in problems])

    def test_no_guest_roots_no_fields_no_problem(self):
        """Ensures that collect without guest_roots reads no guests."""
        self.two_node_64g()
        data, problems = self.collect('two-node-64g', roots=False)
        self.assertNoGuestFields(data)
        self.assertEqual([], problems)
