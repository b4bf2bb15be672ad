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

"""Tests of the ``numastat -m`` text parser."""

import os

import hypothesis
from hypothesis import strategies as st

from nova_numa_guard.inputs import InputError
from nova_numa_guard.inputs import numastat
from tests import examples

from tests import testcase

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data')
TWO_NODE = examples.TWO_NODE_NUMASTAT

with open(TWO_NODE) as f:
    TWO_NODE_TEXT = f.read()

PROPERTY = hypothesis.settings(max_examples=150, deadline=None,
                               derandomize=True, database=None)


def table(nodes, rows):
    """numastat -m text with real column alignment."""
    lines = ['Per-node system memory usage (in MBs):',
             ' ' * 16 + ''.join('%16s' % ('Node %d' % n) for n in nodes) +
             '%16s' % 'Total',
             ' ' * 16 + ' ---------------' * (len(nodes) + 1)]
    for name, values in rows:
        lines.append('%-16s' % name + ''.join(
            '%16.2f' % v for v in values) + '%16.2f' % sum(values))
    return '\n'.join(lines) + '\n'


def rows_for(nodes, total=64000.0, free=1000.0):
    n = len(nodes)
    return [('MemTotal', [total] * n), ('MemFree', [free] * n),
            ('MemUsed', [total - free] * n), ('HugePages_Total', [0.0] * n),
            ('HugePages_Free', [0.0] * n), ('HugePages_Surp', [0.0] * n)]


class TwoNodeNumastatTest(testcase.TestCase):

    def test_two_node_numbers(self):
        """Ensures two-node-64g's numastat -m parses to its numbers in MB."""
        stat = numastat.load(TWO_NODE)

        self.assertEqual((0, 1), stat.nodes)
        self.assertEqual({0: 64328.18, 1: 64510.16}, stat.field('MemTotal'))
        self.assertEqual({0: 10501.73, 1: 2769.72}, stat.field('MemFree'))
        self.assertEqual({0: 53826.45, 1: 61740.43}, stat.field('MemUsed'))
        self.assertEqual(6115.00, stat.node(0)['FilePages'])
        self.assertEqual(1071.01, stat.node(1)['SReclaimable'])
        self.assertEqual(13271.46, stat.totals['MemFree'])
        self.assertEqual({0: 10501, 1: 2769}, stat.free_mb())
        self.assertEqual({0: 64328, 1: 64510}, stat.total_mb())
        # MemFree + Inactive(file) + SReclaimable.
        self.assertEqual({0: 14286, 1: 7854}, stat.available_mb())
        self.assertEqual(29, len(stat.rows))

    def test_any_number_of_nodes(self):
        """Ensures 1, 4 and 8 node tables parse, node ids as printed."""
        for nodes in ([0], [0, 1, 2, 3], list(range(8)), [0, 2]):
            stat = numastat.parse(table(nodes, rows_for(nodes)))
            self.assertEqual(tuple(nodes), stat.nodes)
            self.assertEqual({n: 1000 for n in nodes}, stat.free_mb())

    def test_available_is_capped_at_mem_total(self):
        """Ensures available memory never exceeds the node's MemTotal.

        Like the agent's sysfs figure: page cache and slab counted twice
        by the kernel cannot make a node larger than it is.
        """
        rows = [('MemTotal', [1000.0, 1000.0]), ('MemFree', [900.0, 100.0]),
                ('Inactive(file)', [200.0, 100.0]),
                ('SReclaimable', [50.0, 50.0]),
                ('HugePages_Surp', [0.0, 0.0])]
        stat = numastat.parse(table([0, 1], rows))
        self.assertEqual({0: 1000, 1: 250}, stat.available_mb())

    def test_notices_and_blank_lines_are_skipped(self):
        """Ensures numastat's 'Token ... not in hash table' lines are ok."""
        text = ('Token Unaccepted not in hash table.\n\n' +
                TWO_NODE_TEXT.replace('MemUsed', '\nMemUsed'))
        self.assertEqual({0: 10501, 1: 2769},
                         numastat.parse(text).free_mb())


def _drop_line(text, prefix):
    return '\n'.join(line for line in text.splitlines()
                     if not line.startswith(prefix)) + '\n'


# (name, text, words the one-line error must contain)
BAD = [
    ('empty', '', 'empty'),
    ('plain_numastat', 'node0 node1\nnuma_hit 1 2\n', 'expected the '
     'numastat -m header'),
    ('no_rows', TWO_NODE_TEXT.split('MemTotal')[0], 'no MemTotal row'),
    ('no_memfree', _drop_line(TWO_NODE_TEXT, 'MemFree'), 'no MemFree row'),
    ('cut_after_row', TWO_NODE_TEXT.split('HugePages_Total')[0],
     'ends after row AnonHugePages'),
    ('missing_value', TWO_NODE_TEXT.replace('10501.73 ', ''),
     'row MemFree has 2 values, expected 3'),
    ('not_a_number', TWO_NODE_TEXT.replace('10501.73', 'lots'),
     "row MemFree: bad value 'lots': not a number of MB; truncated?"),
    # The first value of the table sets the number of decimals.
    ('bad_first_value', TWO_NODE_TEXT.replace('64328.18', 'x'),
     "row MemTotal: bad value 'x': not a number of MB; truncated?"),
    ('cut_number', TWO_NODE_TEXT.replace('10501.73', '10501.7'),
     "row MemFree: bad value '10501.7': numastat prints MB with 2 "
     "decimals; truncated?"),
    ('bad_total', TWO_NODE_TEXT.replace('13271.46', '13271.00'),
     'add up to 13271.45, not the total 13271.00'),
    ('free_above_total', table([0], [('MemTotal', [10.0]),
                                     ('MemFree', [20.0]),
                                     ('HugePages_Surp', [0.0])]),
     'MemFree 20.00 exceeds MemTotal 10.00'),
    ('duplicate_row', TWO_NODE_TEXT.replace('MemUsed', 'MemFree'),
     'row MemFree appears twice'),
    ('duplicate_node', TWO_NODE_TEXT.replace('Node 1', 'Node 0'),
     'a node appears twice'),
    ('bad_row_name', TWO_NODE_TEXT.replace('Dirty', '{Dirty}'),
     "bad row name '{Dirty}'"),
    ('not_utf8', b'\xff\xfe', 'not UTF-8'),
]


class BadNumastatTest(testcase.TestCase):

    def test_bad_inputs(self):
        """Ensures each bad input gives a one-line error naming its source."""
        for name, text, words in BAD:
            message = str(self.assertRaises(InputError, numastat.parse, text,
                                            source='n.txt'))
            self.assertTrue(message.startswith('n.txt: '), name)
            self.assertIn(words, message, name)
            self.assertNotIn('\n', message, name)
            self.assertNotIn('None', message, name)

    def test_missing_file(self):
        """Ensures an unreadable file gives a one-line error naming it."""
        e = self.assertRaises(InputError, numastat.load, DATA)
        self.assertTrue(str(e).startswith(DATA + ': cannot read: '))

    @PROPERTY
    @hypothesis.given(st.integers(0, len(TWO_NODE_TEXT.rstrip()) - 1))
    def test_truncated_example_is_an_input_error(self, length):
        """Ensures every truncation of the two-node-64g text is an InputError.

        The table must end with HugePages_Surp, every value has the same
        number of decimals and each total is the sum of its nodes, so a cut
        anywhere shows.
        """
        e = self.assertRaises(InputError, numastat.parse,
                              TWO_NODE_TEXT[:length], 'two-node-64g.txt')
        self.assertNotIn('\n', str(e))

    @PROPERTY
    @hypothesis.given(st.one_of(st.binary(max_size=300),
                                st.text(max_size=300)))
    def test_random_input_is_an_input_error(self, data):
        """Ensures random bytes or text give InputError, nothing else."""
        self.assertRaises(InputError, numastat.parse, data, 'r.txt')

    @PROPERTY
    @hypothesis.given(st.lists(st.sampled_from(TWO_NODE_TEXT.splitlines()),
                               max_size=12),
                      st.sampled_from([' ', '\t', '  ', '.', '-', '0']))
    def test_shuffled_lines_parse_or_fail_cleanly(self, lines, junk):
        """Ensures lines of two-node-64g's text in any order parse or fail.

        A result always has two-node-64g's numbers: nothing is read wrongly.
        """
        text = '\n'.join(line.replace(' ', junk, 1) if i % 3 == 2 else line
                         for i, line in enumerate(lines))
        try:
            stat = numastat.parse(text, 'm.txt')
        except InputError as e:
            self.assertNotIn('\n', str(e))
        else:
            self.assertEqual({0: 10501.73, 1: 2769.72},
                             stat.field('MemFree'))
