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

"""Read NUMA nodes and PCI/NIC locality from a sysfs tree.

Files read, under ``root`` (``/sys`` on a real host, a fake tree in tests):

* ``devices/system/node/node<N>/meminfo``: ``Node N MemTotal: 65872056 kB``
  lines (MemTotal, MemFree, FilePages, Inactive(file), SReclaimable...).
* ``devices/system/node/node<N>/cpulist``: ``0-5,12-17`` (empty for a
  memory-only node).
* ``devices/system/node/node<N>/distance``: ``10 21``.
* ``devices/system/node/node<N>/hugepages/hugepages-<size>kB/``
  ``nr_hugepages`` and ``free_hugepages``.
* ``bus/pci/devices/<address>/{numa_node,class,vendor,device}`` and
  ``class/net/<ifname>/device`` (a link to the PCI device of the NIC);
  ``class/net/<ifname>/lower_<name>`` links name the interfaces below a bond,
  team or VLAN interface.

Every problem is an :class:`nova_numa_guard.inputs.InputError` naming the
file and what is wrong. Nothing here imports nova.
"""

import os
import re

from nova_numa_guard import inputs
from nova_numa_guard.inputs import InputError
from nova_numa_guard.live import payload
from nova_numa_guard import topology

NODE_DIR = os.path.join('devices', 'system', 'node')
PCI_DIR = os.path.join('bus', 'pci', 'devices')
NET_DIR = os.path.join('class', 'net')

# Per-node meminfo values above 1 EiB (in kB) are not a real machine.
MAX_KB = 2 ** 50
# meminfo keys a node must have.
REQUIRED = ('MemTotal', 'MemFree')
# PCI base classes worth publishing: storage, network, display, processors,
# accelerators. Bridges, USB, SMBus and the like would only bloat the payload.
DEVICE_CLASSES = ('01', '02', '03', '0b', '12')

# node<N> as the kernel names nodes: ASCII digits, no leading zero (node01
# or node\u0661 next to node1 would be node 1 twice).
_NODE_RE = re.compile(r'node(0|[1-9][0-9]{0,3})')
_MEMINFO_RE = re.compile(r'^Node\s+([0-9]+)\s+([A-Za-z0-9_()]+):\s+(\S+)'
                         r'(?:\s+kB)?\s*$')
_HUGEPAGES_RE = re.compile(r'hugepages-([1-9][0-9]{0,9})kB')
_PCI_ADDRESS_RE = re.compile(r'^[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:'
                             r'[0-9a-fA-F]{2}\.[0-7]$')
_MAX_FILE = 64 * 1024


class Node:
    """One NUMA node as sysfs shows it.

    :ivar id: node id.
    :ivar cpus: sorted list of CPU ids (empty for memory-only nodes).
    :ivar meminfo: ``{key: value}``; sizes in kB, page counts as counts.
    :ivar hugepages: ``{size_kb: (total, free)}``.
    :ivar distances: the node's ``distance`` row.
    """

    __slots__ = ('id', 'cpus', 'meminfo', 'hugepages', 'distances')

    def __init__(self, id, cpus, meminfo, hugepages, distances):
        self.id = id
        self.cpus = cpus
        self.meminfo = meminfo
        self.hugepages = hugepages
        self.distances = distances

    def mb(self, key):
        """A meminfo size in MiB, rounded down; 0 when the key is absent."""
        return self.meminfo.get(key, 0) // 1024

    @property
    def available_mb(self):
        """``MemFree + Inactive(file) + SReclaimable``, capped at MemTotal.

        Whole MiB, rounded down, by
        :func:`nova_numa_guard.payload.available_mb`; see
        :mod:`nova_numa_guard.payload` for why these three.
        """
        info = self.meminfo
        return payload.available_mb(
            info['MemTotal'] / 1024, info['MemFree'] / 1024,
            info.get('Inactive(file)', 0) / 1024,
            info.get('SReclaimable', 0) / 1024)

    def __repr__(self):
        return 'Node(%d, cpus=%d, MemTotal=%s kB, MemFree=%s kB)' % (
            self.id, len(self.cpus), self.meminfo.get('MemTotal'),
            self.meminfo.get('MemFree'))


class Device:
    """A PCI device and the node it sits on.

    :ivar address: PCI address, ``0000:81:00.0``.
    :ivar numa_node: node id, or None when the firmware does not say (-1).
    :ivar pci_class: ``0x020000``.
    :ivar vendor_id: ``8086`` (no ``0x``, as nova's PCI specs spell it).
    :ivar product_id: ``1528``.
    :ivar net: names of the network interfaces of the device.
    """

    __slots__ = ('address', 'numa_node', 'pci_class', 'vendor_id',
                 'product_id', 'net')

    def __init__(self, address, numa_node, pci_class, vendor_id, product_id,
                 net=()):
        self.address = address
        self.numa_node = numa_node
        self.pci_class = pci_class
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.net = list(net)

    def __repr__(self):
        return 'Device(%s, node=%s, net=%s)' % (self.address, self.numa_node,
                                                self.net)


def node_ids(root):
    """Ids of the nodes under ``root``, sorted.

    :raises InputError: when the node directory is missing or empty.
    """
    path = os.path.join(root, NODE_DIR)
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise InputError(path, 'cannot list NUMA nodes: %s' %
                         (exc.strerror or exc))
    ids = sorted(int(m.group(1)) for m in map(_NODE_RE.fullmatch, names)
                 if m)
    if not ids:
        raise InputError(path, 'no node<N> directories')
    return ids


def read_node(root, node_id):
    """Read one node.

    :raises InputError: on a missing, truncated or malformed file.
    """
    base = os.path.join(root, NODE_DIR, 'node%d' % node_id)
    meminfo = parse_meminfo(_read(os.path.join(base, 'meminfo')),
                            os.path.join(base, 'meminfo'), node_id)
    cpus_path = os.path.join(base, 'cpulist')
    cpus = parse_cpulist(_read(cpus_path), cpus_path)
    distance_path = os.path.join(base, 'distance')
    distances = parse_distance(_read(distance_path), distance_path)
    hugepages = _read_hugepages(os.path.join(base, 'hugepages'))
    return Node(node_id, cpus, meminfo, hugepages, distances)


def read_nodes(root):
    """Read every node; the first problem raises :class:`InputError`."""
    return [read_node(root, node_id) for node_id in node_ids(root)]


def read_nodes_tolerant(root):
    """Read every node that can be read.

    :returns: ``(nodes, problems)``: the nodes read and an
        :class:`InputError` for each node (or the node directory) that could
        not be.
    """
    try:
        ids = node_ids(root)
    except InputError as exc:
        return [], [exc]
    nodes, problems = [], []
    for node_id in ids:
        try:
            nodes.append(read_node(root, node_id))
        except InputError as exc:
            problems.append(exc)
    return nodes, problems


def parse_meminfo(text, source, node_id=None):
    """Parse a node's ``meminfo`` into ``{key: int}``.

    :raises InputError: on a malformed line, a non-numeric or implausible
        value, another node's lines, or a missing MemTotal/MemFree.
    """
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _MEMINFO_RE.match(line)
        if not match:
            raise InputError(source, 'line %d is not "Node N Key: value '
                             'kB": %r' % (number, line[:60]))
        node, key, value = match.groups()
        if node_id is not None and int(node) != node_id:
            raise InputError(source, 'line %d is about node %s, not node %d'
                             % (number, node, node_id))
        if not _is_number(value):
            raise InputError(source, 'line %d: %s value %r is not a whole '
                             'number' % (number, key, value[:30]))
        value = int(value)
        if value > MAX_KB:
            raise InputError(source, 'line %d: %s value %d is implausibly '
                             'large' % (number, key, value))
        if key in values:
            raise InputError(source, 'line %d: %s is listed twice' %
                             (number, key))
        values[key] = value
    missing = [key for key in REQUIRED if key not in values]
    if missing:
        raise InputError(source, 'truncated: no %s' % ' or '.join(missing))
    if values['MemFree'] > values['MemTotal']:
        raise InputError(source, 'MemFree %d kB is more than MemTotal %d kB'
                         % (values['MemFree'], values['MemTotal']))
    return values


def parse_cpulist(text, source):
    """Parse ``0-5,12-17`` into a sorted list of ints (``''`` -> ``[]``)."""
    cpus = set()
    text = text.strip()
    if not text:
        return []
    for part in text.split(','):
        first, sep, last = part.strip().partition('-')
        first = _cpu_number(first)
        last = _cpu_number(last) if sep else first
        if first is None or last is None:
            raise InputError(source, 'bad CPU list item %r' % part[:30])
        if last < first or last >= 2 ** 16:
            raise InputError(source, 'bad CPU range %r' % part[:30])
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def _cpu_number(text):
    """A CPU id in ASCII digits as an int, else None.

    Longer numbers than any CPU id stand for 2 ** 64: int() refuses
    thousands of digits.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= 20 else 2 ** 64


def read_host(root):
    """The NUMA nodes under sysfs ``root`` as a :class:`topology.Host`.

    Hugepages are carved out of a node's MemTotal: the rest is its
    small-page memory. Every hugepage counts as the host's shape (a plan is
    for the flavor, not for now); the memory the node could give now
    (:attr:`Node.available_mb`) becomes the host's ``live`` memory.

    :raises InputError: when a node cannot be read.
    """
    nodes = read_nodes(root)
    ids = [node.id for node in nodes]
    cells = []
    for node in nodes:
        total_kb = node.meminfo['MemTotal']
        huge_kb = sum(size * total
                      for size, (total, _) in node.hugepages.items())
        distances = (dict(zip(ids, node.distances))
                     if len(node.distances) == len(ids) else {})
        cells.append(topology.Cell(
            id=node.id, cpus=frozenset(node.cpus),
            memory_mb=total_kb // 1024,
            small_page_mb=max(0, total_kb - huge_kb) // 1024,
            hugepages={size: (total, 0)
                       for size, (total, _) in node.hugepages.items()},
            distances=distances))
    return topology.Host(os.path.normpath(root), cells).with_live(
        topology.LiveMemory({node.id: node.available_mb for node in nodes}))


def parse_distance(text, source):
    """Parse a node's ``distance`` row (``10 21``)."""
    items = text.split()
    if not items or not all(map(_is_number, items)):
        raise InputError(source, 'expected node distances, got %r' %
                         text.strip()[:40])
    return [int(item) for item in items]


def _read_hugepages(path):
    pages = {}
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return pages
    except OSError as exc:
        raise InputError(path, 'cannot list: %s' % (exc.strerror or exc))
    for name in names:
        match = _HUGEPAGES_RE.fullmatch(name)
        if not match:
            continue
        size_kb = int(match.group(1))
        counts = []
        for leaf in ('nr_hugepages', 'free_hugepages'):
            leaf_path = os.path.join(path, name, leaf)
            text = _read(leaf_path).strip()
            if not _is_number(text):
                raise InputError(leaf_path, 'expected a page count, got %r'
                                 % text[:30])
            counts.append(int(text))
        total, free = counts
        if free > total:
            raise InputError(os.path.join(path, name), 'free_hugepages %d '
                             'is more than nr_hugepages %d' % (free, total))
        pages[size_kb] = (total, free)
    return pages


def read_devices(root, classes=DEVICE_CLASSES):
    """Read PCI devices of the given base classes and their NICs.

    A device whose files cannot be read is left out and reported.

    :returns: ``(devices, problems)``, devices sorted by address.
    """
    pci_path = os.path.join(root, PCI_DIR)
    problems = []
    try:
        addresses = sorted(os.listdir(pci_path))
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [InputError(pci_path, 'cannot list: %s' %
                               (exc.strerror or exc))]
    nets = _net_names(root)
    devices = []
    for address in addresses:
        if not _PCI_ADDRESS_RE.match(address):
            continue
        base = os.path.join(pci_path, address)
        try:
            pci_class = _hex(base, 'class')
            if classes and pci_class[2:4] not in classes:
                continue
            numa_node = int(_read(os.path.join(base, 'numa_node')).strip())
            devices.append(Device(
                address, numa_node if numa_node >= 0 else None, pci_class,
                _hex(base, 'vendor')[2:], _hex(base, 'device')[2:],
                sorted(nets.get(address, ()))))
        except InputError as exc:
            problems.append(exc)
        except ValueError:
            problems.append(InputError(os.path.join(base, 'numa_node'),
                                       'not a node number'))
    return devices, problems


def _net_names(root):
    """``{pci_address: [ifname, ...]}`` from ``class/net/*/device``."""
    path = os.path.join(root, NET_DIR)
    nets = {}
    try:
        names = os.listdir(path)
    except OSError:
        return nets
    for name in names:
        address = _pci_address(os.path.join(path, name, 'device'))
        if address is not None:
            nets.setdefault(address, []).append(name)
    return nets


def _pci_address(device):
    """The PCI address a ``class/net/<ifname>/device`` link leads to.

    None when there is no link (virtual interfaces: lo, bridges, taps,
    bonds) or it leads to no PCI device.
    """
    if not os.path.islink(device):
        return None
    # The link points at the PCI device, or at a child of it (virtio0).
    target = os.path.realpath(device)
    for _ in range(3):
        address = os.path.basename(target)
        if _PCI_ADDRESS_RE.match(address):
            return address
        target = os.path.dirname(target)
    return None


# Interfaces below interfaces below...: bond over VLAN over NIC is deep.
_MAX_LOWER_DEPTH = 4


def interface_devices(root, ifname):
    """PCI addresses of the NICs behind a network interface, sorted.

    A physical interface's own device; for a bond, team, VLAN or macvlan
    interface, the devices of the interfaces below it (its
    ``lower_<name>`` links), a few levels deep.

    :raises InputError: when the interface does not exist, or no PCI device
        is behind it.
    """
    path = os.path.join(root, NET_DIR, ifname)
    if not os.path.isdir(path):
        raise InputError(path, 'no such network interface')
    found = set()
    names = [ifname]
    for _ in range(_MAX_LOWER_DEPTH + 1):
        below = []
        for name in names:
            base = os.path.join(root, NET_DIR, name)
            address = _pci_address(os.path.join(base, 'device'))
            if address is not None:
                found.add(address)
                continue
            try:
                entries = os.listdir(base)
            except OSError:
                continue
            below.extend(entry[len('lower_'):] for entry in entries
                         if entry.startswith('lower_'))
        names = below
        if not names:
            break
    if not found:
        raise InputError(path, 'no PCI device behind the interface or the '
                         'interfaces below it')
    return sorted(found)


def _hex(base, leaf):
    path = os.path.join(base, leaf)
    text = _read(path).strip().lower()
    if not re.match(r'^0x[0-9a-f]+$', text):
        raise InputError(path, 'expected a hex number, got %r' % text[:30])
    return text


def _is_number(text):
    """Whether ``text`` is a whole number in at most 20 ASCII digits."""
    return text.isascii() and text.isdigit() and len(text) <= 20


def _read(path):
    """A small sysfs file as text; never blocks (a FIFO is refused)."""
    try:
        data = inputs.read_bytes(path, _MAX_FILE)
    except FileNotFoundError as exc:
        raise InputError(path, 'cannot read: %s' % (exc.strerror or exc))
    try:
        return data.decode('ascii')
    except UnicodeDecodeError:
        raise InputError(path, 'not ASCII text')
