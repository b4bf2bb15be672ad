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

"""``numastat -m`` text to per-node memory figures (MB).

``numastat -m`` prints the kernel's per-node ``meminfo`` as a table: a header
``Node 0  Node 1 ... Total``, a rule of dashes, then one row per field
(``MemTotal``, ``MemFree``, ...) with one value per node and the total, all in
MB with the same number of decimals. The kernel's per-node meminfo always ends
with the hugepage rows, so the table ends with ``HugePages_Surp``; a table
that stops earlier, a row with a missing or cut value, or a total that is not
the sum of the nodes is reported as truncated or garbled text.
"""

import re

from nova_numa_guard import inputs
from nova_numa_guard.inputs import InputError
from nova_numa_guard.live import payload

LAST_ROW = 'HugePages_Surp'
REQUIRED_ROWS = ('MemTotal', 'MemFree')

_TITLE = re.compile(r'^\s*Per-node system memory usage \(in MBs\):\s*$')
_HEADER = re.compile(r'^\s*((?:Node\s+\d{1,5}\s+)+)Total\s*$', re.ASCII)
_RULE = re.compile(r'^[\s-]+$')
_ROW_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_()]*$')
_VALUE = re.compile(r'^\d{1,15}(?:\.(\d{1,6}))?$', re.ASCII)
# numastat prints "Token X not in hash table." for meminfo fields it does
# not know (newer kernels).
_TOKEN_NOTICE = re.compile(r'^Token \S+ not in hash table\.?\s*$')


class Numastat:
    """The parsed table.

    :ivar nodes: tuple of node ids, in column order.
    :ivar rows: ``{field: (value per node...)}`` in MB (floats).
    :ivar totals: ``{field: total}`` as printed in the Total column.
    """

    def __init__(self, nodes, rows, totals):
        self.nodes = tuple(nodes)
        self.rows = rows
        self.totals = totals

    def node(self, node_id):
        """``{field: MB}`` for one node."""
        i = self.nodes.index(node_id)
        return {field: values[i] for field, values in self.rows.items()}

    def field(self, name):
        """``{node_id: MB}`` for one field, e.g. ``MemFree``."""
        return dict(zip(self.nodes, self.rows[name]))

    def free_mb(self):
        """``{node_id: whole MB free}`` (MemFree)."""
        return {node: int(mb) for node, mb in self.field('MemFree').items()}

    def available_mb(self):
        """``{node_id: whole MB}`` the node could give a guest now.

        ``MemFree + Inactive(file) + SReclaimable`` (page cache and slab the
        kernel can drop), capped at ``MemTotal``, rounded down: the figure
        the agent publishes from sysfs, by the same function
        (:func:`nova_numa_guard.payload.available_mb`).
        """
        total = self.field('MemTotal')
        extra = [self.field(row) for row in ('Inactive(file)', 'SReclaimable')
                 if row in self.rows]
        return {node: payload.available_mb(total[node], mb,
                                           sum(e[node] for e in extra))
                for node, mb in self.field('MemFree').items()}

    def total_mb(self):
        """``{node_id: whole MB}`` (MemTotal)."""
        return {node: int(mb) for node, mb in self.field('MemTotal').items()}


def load(path):
    """Parse the ``numastat -m`` text in file ``path``.

    :raises: InputError when the file cannot be read or is not
        ``numastat -m`` output.
    """
    return parse(inputs.read_file(path), source=path)


def parse(text, source='numastat'):
    """Parse ``numastat -m`` output (``str`` or UTF-8 ``bytes``).

    :param source: what to call the input in errors (a file name).
    :returns: :class:`Numastat`.
    :raises: InputError, with a one-line message, on truncated or garbled
        text.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode('utf-8')
        except UnicodeDecodeError as e:
            raise InputError(source, 'not UTF-8 text: %s' % e)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not _TOKEN_NOTICE.match(line.strip())]
    if lines and _TITLE.match(lines[0][1]):
        lines = lines[1:]
    if not lines:
        raise InputError(source, 'empty: expected numastat -m output')
    number, header = lines[0]
    match = _HEADER.match(header)
    if not match:
        raise InputError(source, 'line %d: expected the numastat -m header '
                         '"Node 0 ... Total", got %r' % (number, header[:60]))
    nodes = [int(n) for n in re.findall(r'\d+', match.group(1))]
    if len(set(nodes)) != len(nodes):
        raise InputError(source, 'line %d: a node appears twice in the '
                         'header' % number)
    lines = lines[1:]
    if lines and _RULE.match(lines[0][1]):
        lines = lines[1:]

    rows, totals = {}, {}
    decimals = None
    last = None
    for number, line in lines:
        fields = line.split()
        name, values = fields[0], fields[1:]
        if not _ROW_NAME.match(name):
            raise InputError(source, 'line %d: bad row name %r' % (
                number, name[:40]))
        if name in rows:
            raise InputError(source, 'line %d: row %s appears twice' % (
                number, name))
        if len(values) != len(nodes) + 1:
            raise InputError(source, 'line %d: row %s has %d values, '
                             'expected %d (one per node and the total); '
                             'truncated?' % (number, name, len(values),
                                             len(nodes) + 1))
        parsed = []
        for value in values:
            value_match = _VALUE.match(value)
            if not value_match:
                raise InputError(source, 'line %d: row %s: bad value %r: not '
                                 'a number of MB; truncated?' % (
                                     number, name, value[:20]))
            places = len(value_match.group(1) or '')
            if decimals is None:
                decimals = places
            if places != decimals:
                raise InputError(source, 'line %d: row %s: bad value %r: '
                                 'numastat prints MB with %d decimals; '
                                 'truncated?' % (number, name, value[:20],
                                                 decimals))
            parsed.append(float(value))
        total = parsed.pop()
        # Each printed value is rounded: allow half a unit of the last
        # decimal per column.
        slack = (len(nodes) + 1) * 0.5 * 10 ** -decimals + 1e-6
        if abs(sum(parsed) - total) > slack:
            raise InputError(source, 'line %d: row %s: nodes add up to '
                             '%.2f, not the total %.2f; garbled?' % (
                                 number, name, sum(parsed), total))
        rows[name] = tuple(parsed)
        totals[name] = total
        last = name

    for name in REQUIRED_ROWS:
        if name not in rows:
            raise InputError(source, 'no %s row: not numastat -m output' %
                             name)
    if last != LAST_ROW:
        raise InputError(source, 'the table ends after row %s; numastat -m '
                         'output ends with %s: truncated?' % (last, LAST_ROW))
    for i, node in enumerate(nodes):
        if rows['MemFree'][i] > rows['MemTotal'][i]:
            raise InputError(source, 'node %d: MemFree %.2f exceeds MemTotal '
                             '%.2f' % (node, rows['MemFree'][i],
                                       rows['MemTotal'][i]))
    return Numastat(nodes, rows, totals)
