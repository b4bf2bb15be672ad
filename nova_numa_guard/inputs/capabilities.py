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

"""``virsh capabilities`` XML to :class:`nova_numa_guard.topology.Host`.

Reads the ``<topology><cells>`` element of the host capabilities libvirt
reports (the whole ``<capabilities>`` document, or just its ``<topology>``
element as the examples show it): per cell its memory (KiB, kept in MiB like
nova's ``NUMACell.memory``), its CPUs with socket, core and thread siblings,
its page pools (``<pages>``: the smallest is the small-page pool, the others
hugepages) and its distances to the other cells. Sizes are scaled in integer
arithmetic; sizes above 1 EiB are refused as implausible.

The XML is parsed with ``defusedxml`` and any document type declaration is
refused: capabilities XML never has one, and entity declarations are how
entity-expansion ("billion laughs") and external-entity (XXE) attacks work.
"""

import os
from xml.etree import ElementTree

import defusedxml
from defusedxml import ElementTree as safe_tree

from nova_numa_guard import inputs
from nova_numa_guard.inputs import InputError
from nova_numa_guard.inputs import sysfs
from nova_numa_guard import topology

# libvirt's scaled-integer units, in bytes.
UNIT_B = {
    'b': 1, 'bytes': 1,
    'KB': 1000, 'k': 1024, 'K': 1024, 'KiB': 1024,
    'MB': 1000 ** 2, 'M': 1024 ** 2, 'MiB': 1024 ** 2,
    'GB': 1000 ** 3, 'G': 1024 ** 3, 'GiB': 1024 ** 3,
    'TB': 1000 ** 4, 'T': 1024 ** 4, 'TiB': 1024 ** 4,
    'PB': 1000 ** 5, 'P': 1024 ** 5, 'PiB': 1024 ** 5,
    'EB': 1000 ** 6, 'E': 1024 ** 6, 'EiB': 1024 ** 6,
}
# Sizes (KiB) above 1 EiB are not a real machine.
MAX_KB = sysfs.MAX_KB
# Longer numbers than this many digits are above any size or count.
_MAX_DIGITS = 20


def load(path, name=None):
    """Parse the capabilities XML in file ``path``.

    :param path: the file; its name is the source named in errors.
    :param name: the host name; defaults to the file name without extension.
    :raises: InputError when the file cannot be read or is not valid
        capabilities XML.
    """
    data = inputs.read_file(path)
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0]
    return parse(data, source=path, name=name)


def parse(data, source='capabilities', name=None):
    """Parse capabilities XML (``bytes`` or ``str``) into a Host.

    :param data: the XML document.
    :param source: what to call the input in errors (a file name).
    :param name: the host name; defaults to ``source``.
    :returns: :class:`nova_numa_guard.topology.Host` with one Cell per
        ``<cell>``, ordered by cell id.
    :raises: InputError, with a one-line message, on anything else.
    """
    root = _parse_xml(data, source)
    if root.tag == 'capabilities':
        topo = root.find('host/topology')
        if topo is None:
            raise InputError(source, 'no <host><topology> element: the host '
                             'reports no NUMA topology')
    elif root.tag == 'topology':
        topo = root
    else:
        raise InputError(source, 'expected a <capabilities> or <topology> '
                         'root element, found <%s>' % _tag(root))
    cells_el = topo.find('cells')
    if cells_el is None:
        raise InputError(source, 'no <topology><cells> element: the host '
                         'reports no NUMA topology')
    cells = [_cell(el, source) for el in cells_el.findall('cell')]
    if not cells:
        raise InputError(source, '<cells> lists no <cell>')
    declared = cells_el.get('num')
    if declared is not None and _int(declared, source,
                                     '<cells num>') != len(cells):
        raise InputError(source, '<cells num=%r> but %d <cell> elements' % (
            declared, len(cells)))
    _check_unique(source, 'cell id', [c.id for c in cells])
    _check_unique(source, 'cpu id', [cpu for c in cells for cpu in c.cpus])
    cells.sort(key=lambda c: c.id)
    return topology.Host(source if name is None else name, cells)


def _parse_xml(data, source):
    try:
        return safe_tree.fromstring(data, forbid_dtd=True,
                                    forbid_entities=True,
                                    forbid_external=True)
    except defusedxml.DTDForbidden:
        raise InputError(source, 'refusing a document type declaration '
                         '(<!DOCTYPE>): capabilities XML has none, and its '
                         'entities could expand without bound or read other '
                         'files')
    except defusedxml.EntitiesForbidden:
        raise InputError(source, 'refusing an entity declaration: '
                         'capabilities XML has none')
    except defusedxml.ExternalReferenceForbidden:
        raise InputError(source, 'refusing an external reference: '
                         'capabilities XML has none')
    except ElementTree.ParseError as e:
        raise InputError(source, 'malformed XML: %s' % e)
    except (ValueError, TypeError) as e:
        # Text that cannot be encoded for the parser (lone surrogates...).
        raise InputError(source, 'not XML text: %s' % e)


def _cell(el, source):
    cell_id = _int(el.get('id'), source, '<cell> id')
    where = 'cell %d' % cell_id
    memory_el = el.find('memory')
    if memory_el is None:
        raise InputError(source, '%s has no <memory>' % where)
    memory_kb = _size_kb(memory_el.text, memory_el.get('unit', 'KiB'),
                         source, where + ' <memory>', allow_zero=True)
    memory_mb = memory_kb // 1024

    pools = {}
    for pages in el.findall('pages'):
        size_kb = _size_kb(pages.get('size'), pages.get('unit', 'KiB'),
                           source, where + ' <pages> size')
        if size_kb in pools:
            raise InputError(source, '%s lists %d KiB pages twice' % (
                where, size_kb))
        count = _int(pages.text, source, where + ' <pages> count')
        if count * size_kb > MAX_KB:
            raise InputError(source, '%s <pages>: %d pages of %d KiB are '
                             'implausibly many' % (where, count, size_kb))
        pools[size_kb] = count

    cpus_el = el.find('cpus')
    cpus, sockets, siblings = set(), set(), []
    if cpus_el is not None:
        for cpu in cpus_el.findall('cpu'):
            cpu_id = _int(cpu.get('id'), source, where + ' <cpu> id')
            cpus.add(cpu_id)
            socket = cpu.get('socket_id')
            sockets.add(None if socket is None else
                        _int(socket, source, 'cpu %d socket_id' % cpu_id))
            if cpu.get('core_id') is not None:
                _int(cpu.get('core_id'), source, 'cpu %d core_id' % cpu_id)
            if cpu.get('siblings') is not None:
                group = _cpu_list(cpu.get('siblings'), source,
                                  'cpu %d siblings' % cpu_id)
                if group not in siblings:
                    siblings.append(group)
        declared = cpus_el.get('num')
        if declared is not None and _int(
                declared, source, where + ' <cpus num>') != len(cpus):
            raise InputError(source, '%s: <cpus num=%r> but %d distinct '
                             '<cpu> elements' % (where, declared, len(cpus)))

    distances = {}
    distances_el = el.find('distances')
    if distances_el is not None:
        for sib in distances_el.findall('sibling'):
            node = _int(sib.get('id'), source, where + ' <sibling> id')
            distances[node] = _int(sib.get('value'), source,
                                   where + ' <sibling> value')

    small_page_mb = None
    hugepages = {}
    if pools:
        small_kb = min(pools)
        small_page_mb = pools[small_kb] * small_kb // 1024
        hugepages = {size: (count, 0) for size, count in pools.items()
                     if size != small_kb}
    socket = sockets.pop() if len(sockets) == 1 else None
    return topology.Cell(
        id=cell_id, cpus=frozenset(cpus), memory_mb=memory_mb,
        small_page_mb=small_page_mb, hugepages=hugepages, socket=socket,
        siblings=sorted(siblings, key=min), distances=distances)


def _tag(el):
    return str(el.tag)[:40]


def _int(text, source, what):
    text = (text or '').strip()
    if not text.isdigit() or not text.isascii():
        raise InputError(source, '%s: expected a non-negative integer, got '
                         '%r' % (what, text[:40]))
    if len(text) > _MAX_DIGITS:
        raise InputError(source, '%s: %s... is implausibly large' % (
            what, text[:_MAX_DIGITS]))
    return int(text)


def _size_kb(text, unit, source, what, allow_zero=False):
    """A scaled integer (``<memory unit='KB'>``...) in whole KiB."""
    number = _int(text, source, what)
    if unit not in UNIT_B:
        raise InputError(source, '%s: unknown unit %r' % (what, unit[:20]))
    size = number * UNIT_B[unit] // 1024
    if size > MAX_KB:
        raise InputError(source, '%s: %d %s is implausibly large' % (
            what, number, unit))
    if size <= 0 and not allow_zero:
        raise InputError(source, '%s: must be positive' % what)
    return size


def _cpu_list(text, source, what):
    """A libvirt CPU list ("0,12", "0-3,8") as a frozenset of ints."""
    try:
        cpus = sysfs.parse_cpulist(text, source)
    except InputError as e:
        raise InputError(source, '%s: %s' % (what, e.problem))
    if not cpus:
        raise InputError(source, '%s: empty' % what)
    return frozenset(cpus)


def _check_unique(source, what, values):
    seen = set()
    for value in values:
        if value in seen:
            raise InputError(source, 'duplicate %s %d' % (what, value))
        seen.add(value)
