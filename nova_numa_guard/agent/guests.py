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

"""What running guests were given, and what they have touched, per node.

Guests touch their memory gradually after boot; until they do, the kernel
counts it as free (``MemFree``) although it is promised. For every running
guest the agent reads:

* its size and memory backing from libvirt: the domain XML, from the
  ``libvirt`` Python binding when it imports and connects, else from the
  runtime status XML libvirt keeps under ``/run/libvirt/qemu/<name>.xml``;
* what is resident, per node, from cgroup v2: ``memory.numa_stat`` of the
  guest's scope under ``machine.slice``
  (``machine-qemu\\x2d<id>\\x2d<name>.scope``): its ``anon`` plus ``shmem``
  bytes per node (guest RAM is anonymous memory, or shared memory when it is
  backed by memfd for vhost-user).

From these, :func:`untouched_by_node` charges each guest's untouched memory
(its size less what is resident) to the nodes (see there for the rule).
Hugepage-backed guests are resident from the start (their pages come out of
the hugepage pools, never out of ``MemFree``): they have nothing untouched,
but count in the total size of the guests (``guests_mb``), as they count in
nova's accounting.

Nothing here imports nova or the scheduler's modules.
"""

import os
import re

from defusedxml import ElementTree

from nova_numa_guard import inputs
from nova_numa_guard.inputs import InputError

RUNTIME_XML_DIR = '/run/libvirt/qemu'
CGROUP_ROOT = '/sys/fs/cgroup'
MACHINE_SLICE = 'machine.slice'
LIBVIRT_URI = 'qemu:///system'

# Memory sizes in a domain XML: unit -> bytes (libvirt's units).
_UNITS = {
    'b': 1, 'bytes': 1,
    'k': 1024, 'kib': 1024, 'kb': 1000,
    'm': 1024 ** 2, 'mib': 1024 ** 2, 'mb': 1000 ** 2,
    'g': 1024 ** 3, 'gib': 1024 ** 3, 'gb': 1000 ** 3,
    't': 1024 ** 4, 'tib': 1024 ** 4, 'tb': 1000 ** 4,
}
# A guest larger than this is not a real machine.
_MAX_GUEST_BYTES = 2 ** 50
_SCOPE_RE = re.compile(r'^machine-qemu-(\d+)-(.*)\.scope$')
_ESCAPE_RE = re.compile(r'\\x([0-9a-fA-F]{2})')
# ASCII digits only, and no more than int() takes or a count can have.
_NUMA_STAT_RE = re.compile(r'^N([0-9]{1,10})=([0-9]{1,30})$')
# memory.numa_stat keys that make up a guest's RAM.
_RESIDENT_KEYS = ('anon', 'shmem')
# Domain XML and memory.numa_stat are a few kB.
_MAX_FILE = 1024 * 1024
MB = 1024 * 1024
# Node ids from this one on are not a real machine's.
_MAX_NODES = 4096


class Guest:
    """One running guest.

    :ivar name: libvirt domain name.
    :ivar domain_id: libvirt's id of the running domain.
    :ivar size_mb: memory the guest was given (``currentMemory``).
    :ivar bound: ``{host_node: MB}`` when its memory is bound to host nodes
        (``<numatune>``), else None.
    :ivar resident_mb: ``{host_node: MB}`` of its memory resident now.
    :ivar hugepages: whether its memory is backed by hugepages: then it is
        all taken from the hugepage pools at start, never from ``MemFree``,
        and has nothing untouched.
    """

    __slots__ = ('name', 'domain_id', 'size_mb', 'bound', 'resident_mb',
                 'hugepages')

    def __init__(self, name, domain_id, size_mb, bound=None,
                 resident_mb=None, hugepages=False):
        self.name = name
        self.domain_id = domain_id
        self.size_mb = size_mb
        self.bound = bound
        self.resident_mb = resident_mb or {}
        self.hugepages = hugepages

    def __repr__(self):
        return 'Guest(%r, %d MB, resident=%r)' % (self.name, self.size_mb,
                                                  self.resident_mb)


class GuestMemory:
    """What the agent publishes of the guests: two optional payload fields.

    :ivar untouched_mb: ``{node_id: MB}`` (``guest_untouched_mb``).
    :ivar guests_mb: total size of the guests (``guests_mb``).
    """

    __slots__ = ('untouched_mb', 'guests_mb')

    def __init__(self, untouched_mb, guests_mb):
        self.untouched_mb = untouched_mb
        self.guests_mb = guests_mb


def parse_domain(text, source):
    """Read a domain XML (or libvirt's runtime ``<domstatus>`` wrapper).

    :returns: :class:`Guest` without residency.
    :raises InputError: when it is not a running domain's XML.
    """
    try:
        root = ElementTree.fromstring(text)
    except Exception as exc:  # defusedxml refusals and parse errors
        raise InputError(source, 'not XML: %s' % _first_line(exc))
    domain = root if root.tag == 'domain' else root.find('domain')
    if domain is None:
        raise InputError(source, 'no <domain> element (root is <%s>)' %
                         root.tag[:40])
    name = (domain.findtext('name') or '').strip()
    domain_id = _digits(domain.get('id', ''))
    if not name or domain_id is None:
        raise InputError(source, 'domain has no name or is not running '
                         '(no id)')
    size = domain.find('currentMemory')
    if size is None:
        size = domain.find('memory')
    if size is None:
        raise InputError(source, 'domain %r has no <memory>' % name[:60])
    guest = Guest(name, domain_id,
                  _size_mb(size.text, size.get('unit'), source))
    if domain.find('memoryBacking/hugepages') is not None:
        guest.hugepages = True
    else:
        guest.bound = _binding(domain, guest.size_mb, source)
    return guest


def _digits(text, max_digits=20):
    """``text`` of ASCII digits as an int, else None.

    ``str.isdigit`` alone takes ``'\u00b2'``, which int() refuses, and int()
    refuses thousands of digits.
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def _size_mb(text, unit, source):
    """A size (element text or ``memory`` attribute) and unit in MiB."""
    unit = (unit or 'KiB').lower()
    text = (text or '').strip()
    if unit not in _UNITS or not (text.isascii() and text.isdigit()):
        raise InputError(source, 'memory %r %r is not a size' %
                         (text[:20], unit[:10]))
    if len(text) > 20:
        raise InputError(source, 'memory %s... is implausible' % text[:20])
    size = int(text) * _UNITS[unit]
    if size > _MAX_GUEST_BYTES:
        raise InputError(source, 'memory of %d bytes is implausible' % size)
    return size // MB


def _binding(domain, size_mb, source):
    """``{host_node: MB}`` the guest's memory is bound to, or None.

    ``<numatune><memnode cellid nodeset>`` per guest cell (its size from
    ``<cpu><numa><cell memory>``), else ``<numatune><memory nodeset>`` split
    evenly; only ``strict`` and ``restrictive`` modes bind.
    """
    numatune = domain.find('numatune')
    if numatune is None:
        return None
    cells = {}
    for cell in domain.findall('cpu/numa/cell'):
        cell_id = _digits(cell.get('id', ''))
        if cell_id is not None and cell.get('memory'):
            # <cell id='0' cpus='0-1' memory='1048576' unit='KiB'/>
            cells[cell_id] = _size_mb(cell.get('memory'), cell.get('unit'),
                                      source)
    bound = {}
    for memnode in numatune.findall('memnode'):
        nodes = _nodeset(memnode.get('nodeset', ''), source)
        cell_mb = cells.get(_digits(memnode.get('cellid', '')))
        if memnode.get('mode', 'strict') in ('strict', 'restrictive') and \
                nodes and cell_mb:
            for node in nodes:
                bound[node] = bound.get(node, 0) + cell_mb // len(nodes)
    if bound:
        return bound
    memory = numatune.find('memory')
    if memory is None or memory.get('mode', 'strict') not in (
            'strict', 'restrictive'):
        return None
    nodes = _nodeset(memory.get('nodeset', ''), source)
    if not nodes:
        return None
    return {node: size_mb // len(nodes) for node in nodes}


def _nodeset(text, source):
    nodes = set()
    for part in text.split(','):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition('-')
        first = _digits(first, 4)
        last = _digits(last, 4) if sep else first
        # Check the range before expanding it: 0-99999999999 is no nodeset.
        if first is None or last is None or not first <= last < _MAX_NODES:
            raise InputError(source, 'bad nodeset %r' % text[:40])
        nodes.update(range(first, last + 1))
    return sorted(nodes)


def read_runtime_domains(path):
    """The running guests libvirt describes under ``path``.

    :returns: ``(guests, problems)``.
    :raises InputError: when ``path`` cannot be listed (no libvirt data).
    """
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise InputError(path, 'cannot list libvirt runtime state: %s' %
                         (exc.strerror or exc))
    guests, problems = [], []
    for name in names:
        if not name.endswith('.xml'):
            continue
        file_path = os.path.join(path, name)
        try:
            text = _read(file_path)
        except FileNotFoundError:
            continue  # the guest stopped while we listed
        except InputError as exc:
            problems.append(exc)
            continue
        try:
            guests.append(parse_domain(text, file_path))
        except InputError as exc:
            problems.append(exc)
    return guests, problems


def read_libvirt_domains(uri=LIBVIRT_URI):
    """The running guests, through the ``libvirt`` Python binding.

    :returns: ``(guests, problems)``, or None when the binding does not
        import or cannot connect.
    """
    try:
        import libvirt
    except ImportError:
        return None
    try:
        conn = libvirt.openReadOnly(uri)
    except Exception:
        return None
    guests, problems = [], []
    try:
        try:
            domains = conn.listAllDomains(
                libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        except Exception:
            return None  # the connection dropped (libvirtd restarting)
        for domain in domains:
            try:
                source = 'libvirt domain %s' % domain.name()
                guests.append(parse_domain(domain.XMLDesc(0), source))
            except InputError as exc:
                problems.append(exc)
            except Exception:
                continue  # the domain went away while we asked
    finally:
        try:
            conn.close()
        except Exception:
            pass
    return guests, problems


def scope_paths(cgroup_root):
    """``{domain_id: scope directory}`` of libvirt's guests under cgroup v2.

    A host without ``machine.slice`` (no guest started since boot) has no
    scopes.

    :raises InputError: when ``cgroup_root`` is not a cgroup v2 hierarchy.
    """
    if not os.path.exists(os.path.join(cgroup_root, 'cgroup.controllers')):
        raise InputError(cgroup_root, 'not a cgroup v2 hierarchy (no '
                         'cgroup.controllers)')
    slice_path = os.path.join(cgroup_root, MACHINE_SLICE)
    try:
        names = os.listdir(slice_path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(slice_path, 'cannot list: %s' %
                         (exc.strerror or exc))
    scopes = {}
    for name in names:
        match = _SCOPE_RE.match(_unescape(name))
        if match:
            scopes[int(match.group(1))] = os.path.join(slice_path, name)
    return scopes


def _unescape(name):
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), name)


def parse_numa_stat(text, source):
    """Resident guest memory per node from ``memory.numa_stat``.

    :returns: ``{node: MB}`` of the ``anon`` and ``shmem`` lines.
    :raises InputError: on a malformed file or one without those lines.
    """
    resident = {}
    seen = set()
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        key = fields[0]
        counts = [_NUMA_STAT_RE.match(field) for field in fields[1:]]
        if not counts or not all(counts):
            raise InputError(source, 'line %d is not "key N0=bytes ...": %r'
                             % (number, line[:60]))
        if key not in _RESIDENT_KEYS:
            continue
        if key in seen:
            raise InputError(source, 'line %d: %s listed twice' %
                             (number, key))
        seen.add(key)
        for match in counts:
            node, count = int(match.group(1)), int(match.group(2))
            if node >= _MAX_NODES or count > _MAX_GUEST_BYTES:
                raise InputError(source, 'line %d: N%d=%d is implausible' %
                                 (number, node, count))
            resident[node] = resident.get(node, 0) + count
    if seen != set(_RESIDENT_KEYS):
        raise InputError(source, 'no %s line' % ' or '.join(
            sorted(set(_RESIDENT_KEYS) - seen)))
    return {node: count // MB for node, count in resident.items()}


def read_guests(libvirt_root, cgroup_root, uri=LIBVIRT_URI):
    """The running guests with what is resident of them, per node.

    :param libvirt_root: libvirt's runtime XML directory, read when the
        binding cannot be used (``uri`` None or empty: never use it).
    :returns: ``(guests, problems)``.
    :raises InputError: when there is no libvirt data or no cgroup v2 data
        at all, or a guest's ``memory.numa_stat`` cannot be trusted: the
        agent then publishes no guest figures.
    """
    found = read_libvirt_domains(uri) if uri else None
    if found is None:
        found = read_runtime_domains(libvirt_root)
    guests, problems = found
    scopes = scope_paths(cgroup_root)
    counted = [guest for guest in guests if not guest.hugepages]
    if counted and not any(g.domain_id in scopes for g in counted):
        raise InputError(os.path.join(cgroup_root, MACHINE_SLICE),
                         'no scope of any of the %d running guests: libvirt '
                         'does not put them in machine.slice' % len(counted))
    running = []
    for guest in guests:
        scope = scopes.get(guest.domain_id)
        if scope is None or guest.hugepages:
            # Starting: nothing resident yet (hugepage guests: nothing to
            # read).
            running.append(guest)
            continue
        path = os.path.join(scope, 'memory.numa_stat')
        try:
            guest.resident_mb = parse_numa_stat(_read(path), path)
        except FileNotFoundError:
            if os.path.isdir(scope):
                raise InputError(path, 'missing: the memory controller is '
                                 'not enabled for machine.slice')
            continue  # the guest stopped while we read it
        running.append(guest)
    return running, problems


def untouched_by_node(guests, room_mb, homes):
    """Charge every guest's untouched memory to host nodes.

    A guest's untouched memory is its size less what is resident of it. It
    is charged

    * to the nodes its memory already is on, in proportion: the kernel
      allocates a process's new pages next to the CPU its thread runs on,
      and NUMA balancing moves the threads next to their memory;
    * for a guest bound to nodes (``<numatune>``) with nothing resident, to
      those nodes, as bound;
    * for a guest with nothing resident, to the node with the most room left
      (``room_mb`` less what is charged there already), largest guests first:
      that is where a process that fits one node settles, and where the
      scheduler's estimate counts room for it.

    Hugepage-backed guests have nothing untouched.

    :param guests: :class:`Guest` list.
    :param room_mb: ``{node_id: MB}`` free memory per node (``MemFree``).
    :param homes: node ids a guest's threads can run on (nodes with CPUs
        and memory); the nodes a guest with nothing resident can be charged
        to.
    :returns: ``{node_id: MB}`` for every node of ``room_mb``.
    """
    charged = dict.fromkeys(room_mb, 0)
    unplaced = []
    for guest in guests:
        if guest.hugepages:
            continue
        resident = {node: mb for node, mb in guest.resident_mb.items()
                    if mb > 0 and node in charged}
        untouched = guest.size_mb - sum(guest.resident_mb.values())
        if untouched <= 0:
            continue
        shares = resident or {node: mb for node, mb in
                              (guest.bound or {}).items()
                              if mb > 0 and node in charged}
        if shares:
            _charge(charged, shares, untouched)
        else:
            unplaced.append(untouched)
    candidates = [node for node in homes if node in charged] or \
        list(charged)
    for mb in sorted(unplaced, reverse=True):
        node = max(candidates,
                   key=lambda n: (room_mb[n] - charged[n], -n))
        charged[node] += mb
    return charged


def _charge(charged, shares, amount):
    """Split ``amount`` over ``shares`` in proportion, exactly."""
    total = sum(shares.values())
    given = 0
    for node, share in shares.items():
        part = amount * share // total
        charged[node] += part
        given += part
    largest = max(shares, key=lambda n: (shares[n], -n))
    charged[largest] += amount - given


def guest_memory(libvirt_root, cgroup_root, room_mb, homes,
                 uri=LIBVIRT_URI):
    """The payload's guest figures for this host.

    :returns: ``(GuestMemory or None, problems)``: None when there is no
        libvirt or cgroup v2 data to publish.
    """
    try:
        guests, problems = read_guests(libvirt_root, cgroup_root, uri)
    except InputError as exc:
        return None, [exc]
    return GuestMemory(untouched_by_node(guests, room_mb, homes),
                       sum(guest.size_mb for guest in guests)), problems


def _read(path):
    """A small text file; FileNotFoundError passes through."""
    data = inputs.read_bytes(path, _MAX_FILE)
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise InputError(path, 'not UTF-8 text')


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__
