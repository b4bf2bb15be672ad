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

"""A fleet file (YAML) to :class:`Fleet`: hosts in the pure topology model.

The simulator (``nova-numa-guard simulate``) reads a fleet::

    pci_aliases:                 # optional, as nova's [pci] alias options
      - {name: vf, vendor_id: "8086", product_id: "154c",
         device_type: type-VF}
    hosts:
      - name: two-node-64g
        capabilities: two-node-64g-capabilities.xml  # virsh capabilities
        numastat: two-node-64g-numastat.txt          # numastat -m
        used_mb: 98816           # nova's memory_mb_used
      - name: one-node-192g
        cells:                   # instead of capabilities
          - {cpus: "0-31", memory_mb: 196608, free_mb: 90000,
             numa_usage_mb: 0}
        pci:
          - {numa_node: 0, vendor_id: "8086", product_id: "154c",
             dev_type: type-VF, physical_network: physnet2, count: 8}
        physnets: {physnet2: [0]}
        aggregates: [{pci_weight_multiplier: "2.0"}]
      - live: compute7.json      # what nova-numa-guard-agent printed

Each host has a ``name`` (a payload's own host name when it comes from
``live``) and its cells from exactly one of ``capabilities``, ``cells`` or
``live``; live per-node memory from ``numastat``, the cells' ``free_mb`` or
the payload. The rest is optional: ``used_mb`` (default: nova's
``reserved_host_memory_mb`` of 512 plus the cells' ``numa_usage_mb``),
``vcpus_used`` (0), ``ram_allocation_ratio`` (1.0),
``cpu_allocation_ratio`` (4.0), ``pci``, ``physnets`` and ``aggregates``
(metadata dicts). Paths are relative to the fleet file.

Every problem is an :class:`InputError` of one line that names the fleet
file, the host and the field. The YAML is read with ``yaml.safe_load`` (no
Python objects) and refused when it uses aliases (``*name``: they could make
a small file expand without bound); every file read is bounded in size.
Nothing here imports nova.
"""

import collections
import json
import os
import re

import yaml

from nova_numa_guard import inputs
from nova_numa_guard.inputs import capabilities
from nova_numa_guard.inputs import InputError
from nova_numa_guard.inputs import numastat
from nova_numa_guard.inputs import sysfs
from nova_numa_guard.live import payload
from nova_numa_guard import topology

# nova's [DEFAULT] reserved_host_memory_mb default: part of what nova counts
# as used on every host.
RESERVED_HOST_MB = 512
DEFAULT_CPU_RATIO = 4.0
DEFAULT_RAM_RATIO = 1.0

MAX_FLEET_BYTES = 32 * 1024 * 1024
MAX_CAPABILITIES_BYTES = 8 * 1024 * 1024
MAX_NUMASTAT_BYTES = 1024 * 1024
MAX_HOSTS = 100000
MAX_CELLS = payload.MAX_NODES
MAX_MB = payload.MAX_NODE_MB * payload.MAX_NODES
MAX_COUNT = 2 ** 20
MAX_RATIO = 1000.0

DEV_TYPES = ('type-PCI', 'type-PF', 'type-VF', 'type-VDPA')

# Names nova compute hosts have; nothing else becomes a host name.
_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.:-]{0,254}')
_HEX_ID = re.compile(r'[0-9a-fA-F]{4}')

_TOP_KEYS = ('hosts', 'pci_aliases')
_HOST_KEYS = ('name', 'capabilities', 'numastat', 'cells', 'live', 'pci',
              'physnets', 'used_mb', 'vcpus_used', 'ram_allocation_ratio',
              'cpu_allocation_ratio', 'aggregates')
_CELL_KEYS = ('id', 'cpus', 'memory_mb', 'free_mb', 'numa_usage_mb')
_PCI_KEYS = ('numa_node', 'vendor_id', 'product_id', 'dev_type',
             'physical_network', 'count')

Fleet = collections.namedtuple('Fleet', 'path hosts pci_aliases')
Fleet.__doc__ = """A parsed fleet file.

:ivar path: the fleet file.
:ivar hosts: tuple of :class:`FleetHost`, in file order.
:ivar pci_aliases: tuple of dicts, each one nova ``[pci] alias`` value.
"""

PciPool = collections.namedtuple(
    'PciPool', 'numa_node vendor_id product_id dev_type physical_network '
    'count')
PciPool.__doc__ = """Devices of one kind on one node, as nova pools them.

:ivar numa_node: the host node, or None when the firmware does not say.
:ivar physical_network: the neutron physnet of a NIC, or None.
"""

FleetHost = collections.namedtuple(
    'FleetHost', 'host pci aggregates vcpus_used cpu_allocation_ratio '
    'guests_mb')
FleetHost.__doc__ = """One compute host of a fleet.

:ivar host: :class:`topology.Host`: cells (with physnets), nova's used
    memory, the RAM allocation ratio and the live memory, if any.
:ivar pci: tuple of :class:`PciPool`.
:ivar aggregates: tuple of ``{key: str}`` aggregate metadata.
:ivar vcpus_used: vCPUs nova counts as used.
:ivar cpu_allocation_ratio: the host's CPU overcommit ratio.
:ivar guests_mb: the size of the guests the agent saw running, from a
    payload that has it; else None.
"""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.MarkedYAMLError(
                problem='aliases (*name) are not allowed in a fleet file',
                problem_mark=mark)
        return super().compose_node(parent, index)


def load(path):
    """Read and check the fleet file ``path``.

    :returns: :class:`Fleet`.
    :raises InputError: naming the file, the host and the field.
    """
    return parse(inputs.read_file(path, MAX_FLEET_BYTES), path)


def parse(data, path):
    """Parse fleet YAML (bytes or str); files it names are read too.

    :param path: the fleet file: named in errors, and the directory that
        relative paths start from.
    """
    try:
        document = yaml.load(data, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = ' (line %d)' % (mark.line + 1) if mark else ''
        raise InputError(path, 'not valid YAML%s: %s' % (
            where, e.problem or e.context))
    except (yaml.YAMLError, RecursionError, ValueError) as e:
        raise InputError(path, 'not valid YAML: %s' % _one_line(e))
    if not isinstance(document, dict):
        raise InputError(path, 'expected a mapping with a hosts: list')
    _check_keys(path, document, _TOP_KEYS, 'top level')
    hosts = document.get('hosts')
    if not isinstance(hosts, list) or not hosts:
        raise InputError(path, 'hosts: expected a non-empty list of hosts')
    if len(hosts) > MAX_HOSTS:
        raise InputError(path, 'hosts: %d hosts, more than %d' % (
            len(hosts), MAX_HOSTS))
    reader = _Reader(path)
    parsed = []
    names = set()
    for index, item in enumerate(hosts):
        host = reader.host(index, item)
        if host.host.name in names:
            raise InputError(path, 'host %s: name: listed twice' %
                             host.host.name)
        names.add(host.host.name)
        parsed.append(host)
    return Fleet(path, tuple(parsed), _aliases(path, document))


def _aliases(path, document):
    aliases = document.get('pci_aliases')
    if aliases is None:
        return ()
    if not isinstance(aliases, list):
        raise InputError(path, 'pci_aliases: expected a list of nova [pci] '
                         'alias mappings')
    for i, alias in enumerate(aliases):
        if not isinstance(alias, dict) or not isinstance(alias.get('name'),
                                                         str):
            raise InputError(path, 'pci_aliases[%d]: expected a mapping '
                             'with a name, as nova\'s [pci] alias' % i)
        try:
            json.dumps(alias)
        except (TypeError, ValueError):
            raise InputError(path, 'pci_aliases[%d]: values must be '
                             'strings, numbers or booleans' % i)
    return tuple(aliases)


class _HostError(Exception):
    """A problem with one field of a host (turned into an InputError)."""

    def __init__(self, field, problem):
        super().__init__(field, problem)
        self.field = field
        self.problem = problem


class _Reader:
    """Reads the hosts of one fleet file; parses each named file once."""

    def __init__(self, path):
        self.path = path
        self.base = os.path.dirname(os.path.abspath(path))
        self._files = {}

    def host(self, index, item):
        label = 'hosts[%d]' % index
        if isinstance(item, dict) and isinstance(item.get('name'), str):
            label = 'host %s' % item['name'][:60]
        try:
            return self._host(item)
        except _HostError as e:
            raise InputError(self.path, '%s: %s: %s' % (label, e.field,
                                                        e.problem))

    def _host(self, item):
        if not isinstance(item, dict):
            raise _HostError('host', 'expected a mapping')
        unknown = sorted(str(k) for k in item if k not in _HOST_KEYS)
        if unknown:
            raise _HostError(unknown[0][:40], 'unknown field (expected %s)' %
                             ', '.join(_HOST_KEYS))
        given = [key for key in ('capabilities', 'cells', 'live')
                 if item.get(key) is not None]
        if len(given) != 1:
            raise _HostError(
                'cells', 'give exactly one of capabilities, cells or live, '
                'got %s' % (' and '.join(given) or 'none'))
        guests_mb = None
        if 'live' in given:
            if item.get('numastat') is not None:
                raise _HostError('numastat', 'a live payload has its own '
                                 'free memory; give one or the other')
            name, cells, live, guests_mb = self._payload(item)
        else:
            name = _name(item.get('name'))
            if 'cells' in given:
                cells, live = _cells(item['cells'])
            else:
                cells, live = self._capabilities(item['capabilities']), None
            if item.get('numastat') is not None:
                if live is not None:
                    raise _HostError('numastat', 'the cells have free_mb '
                                     'already; give one or the other')
                live = self._numastat(item['numastat'], cells)
        cells = _with_physnets(cells, item.get('physnets'))
        numa_used = sum(c.numa_used_mb for c in cells)
        used_mb = _number('used_mb', item.get('used_mb'),
                          RESERVED_HOST_MB + numa_used, MAX_MB)
        if used_mb < numa_used:
            raise _HostError('used_mb', '%d MB is less than the %d MB the '
                             'cells account to NUMA guests' % (used_mb,
                                                               numa_used))
        ram_ratio = _ratio('ram_allocation_ratio',
                           item.get('ram_allocation_ratio'),
                           DEFAULT_RAM_RATIO)
        host = topology.Host(name, cells, used_mb=used_mb,
                             ram_allocation_ratio=ram_ratio)
        if live is not None:
            host = host.with_live(live)
        return FleetHost(
            host, _pci(item.get('pci'), cells), _aggregates(
                item.get('aggregates')),
            _number('vcpus_used', item.get('vcpus_used'), 0, MAX_COUNT),
            _ratio('cpu_allocation_ratio', item.get('cpu_allocation_ratio'),
                   DEFAULT_CPU_RATIO),
            guests_mb)

    def _file(self, field, value, limit, parse):
        """Read and parse a file a host names, once per fleet file."""
        if not isinstance(value, str) or not value.strip():
            raise _HostError(field, 'expected a file name')
        path = os.path.normpath(os.path.join(self.base, value))
        key = (field, path)
        if key not in self._files:
            try:
                self._files[key] = parse(inputs.read_file(path, limit), value)
            except InputError as e:
                raise _HostError(field, '%s: %s' % (value, e.problem))
        return self._files[key]

    def _capabilities(self, value):
        host = self._file('capabilities', value, MAX_CAPABILITIES_BYTES,
                          lambda data, name: capabilities.parse(
                              data, source=name))
        return host.cells

    def _numastat(self, value, cells):
        stat = self._file('numastat', value, MAX_NUMASTAT_BYTES,
                          lambda data, name: numastat.parse(
                              data, source=name))
        ids = sorted(c.id for c in cells)
        if sorted(stat.nodes) != ids:
            raise _HostError('numastat', '%s: nodes %s do not match the '
                             'cells %s' % (value, _ids(stat.nodes), _ids(ids)))
        return topology.LiveMemory(stat.free_mb(), stat.available_mb())

    def _payload(self, item):
        """``(name, cells, live, guests_mb)`` from an agent payload."""
        value = item['live']
        data = self._file('live', value, payload.MAX_BYTES, _read_payload)
        name = item.get('name')
        if name is None:
            name = data['host']
        name = _name(name)
        if name != data['host']:
            raise _HostError('live', '%s: the payload is for host %s' % (
                value, data['host'][:60]))
        return name, data['cells'], data['live'], data['guests_mb']


def _read_payload(raw, name):
    """The cells and live memory of a payload, as the agent printed it."""
    try:
        host = json.loads(raw).get('host')
    except (ValueError, AttributeError, RecursionError):
        host = None
    if not isinstance(host, str):
        raise InputError(name, 'not an agent payload: no host name')
    try:
        trusted = payload.verify(raw, host, full=True)
    except payload.Untrusted as e:
        raise InputError(name, 'not an agent payload: %s' % e)
    nodes = json.loads(raw).get('nodes')
    if nodes is None:
        raise InputError(name, 'a memory record has no CPUs: give the '
                         'payload nova-numa-guard-agent --once --print '
                         'prints')
    cells = []
    for node in sorted(nodes, key=lambda n: n['id']):
        if 'cpus' not in node:
            raise InputError(name, 'node %d lists no cpus' % node['id'])
        pools = {int(size): (counts['total'], counts['total'] -
                             counts['free'])
                 for size, counts in (node.get('hugepages') or {}).items()}
        huge_mb = sum(size * total for size, (total, _) in pools.items())
        huge_mb //= 1024
        total = node['mem_total_mb']
        cells.append(topology.Cell(
            node['id'], frozenset(node['cpus']), total,
            small_page_mb=max(0, total - huge_mb), hugepages=pools))
    live = topology.LiveMemory(trusted.free_mb, trusted.available_mb,
                               trusted.untouched_mb)
    return {'host': host, 'cells': tuple(cells), 'live': live,
            'guests_mb': trusted.guests_mb}


def _name(value):
    if not isinstance(value, str):
        raise _HostError('name', 'missing; every host needs a name')
    if not _NAME.fullmatch(value):
        raise _HostError('name', '%r is not a compute host name (letters, '
                         'digits and _.:-)' % value[:60])
    return value


def _check_fields(field, item, keys):
    """Refuse an ``item`` that is not a mapping of some of ``keys``."""
    if not isinstance(item, dict):
        raise _HostError(field, 'expected a mapping of %s' % ', '.join(keys))
    unknown = sorted(str(k) for k in item if k not in keys)
    if unknown:
        raise _HostError('%s.%s' % (field, unknown[0][:40]),
                         'unknown field (expected %s)' % ', '.join(keys))


def _cells(value):
    """Inline cells to ``(cells, live or None)``."""
    if not isinstance(value, list) or not value:
        raise _HostError('cells', 'expected a non-empty list of cells')
    if len(value) > MAX_CELLS:
        raise _HostError('cells', '%d cells, more than %d' % (len(value),
                                                             MAX_CELLS))
    cells, free, seen_cpus = [], {}, set()
    for i, item in enumerate(value):
        field = 'cells[%d]' % i
        _check_fields(field, item, _CELL_KEYS)
        cell_id = _number(field + '.id', item.get('id'), i, MAX_CELLS - 1)
        cpus = item.get('cpus')
        if not isinstance(cpus, str):
            raise _HostError(field + '.cpus', 'expected a CPU list in '
                             'quotes, such as "0-11" ("" for a node without '
                             'CPUs)')
        try:
            cpus = frozenset(sysfs.parse_cpulist(cpus, field))
        except InputError as e:
            raise _HostError(field + '.cpus', e.problem)
        if cpus & seen_cpus:
            raise _HostError(field + '.cpus', 'CPU %d is in another cell' %
                             min(cpus & seen_cpus))
        seen_cpus |= cpus
        if 'memory_mb' not in item:
            raise _HostError(field + '.memory_mb', 'missing')
        memory = _number(field + '.memory_mb', item['memory_mb'], 0,
                         payload.MAX_NODE_MB)
        used = _number(field + '.numa_usage_mb', item.get('numa_usage_mb'),
                       0, memory)
        if item.get('free_mb') is not None:
            free[cell_id] = _number(field + '.free_mb', item['free_mb'], 0,
                                    memory)
        if any(c.id == cell_id for c in cells):
            raise _HostError(field + '.id', 'cell %d is listed twice' %
                             cell_id)
        cells.append(topology.Cell(cell_id, cpus, memory,
                                   small_page_used_mb=used))
    if free and len(free) != len(cells):
        raise _HostError('cells', 'free_mb is given for cells %s but not '
                         'for %s: give it for every cell or none' % (
                             _ids(free), _ids(c.id for c in cells
                                              if c.id not in free)))
    cells.sort(key=lambda c: c.id)
    return tuple(cells), (topology.LiveMemory(free) if free else None)


def _with_physnets(cells, value):
    if value is None:
        return tuple(cells)
    if not isinstance(value, dict):
        raise _HostError('physnets', 'expected a mapping of physnet name to '
                         'a list of node ids')
    ids = {c.id for c in cells}
    nodes_of = {}
    for name, nodes in value.items():
        field = 'physnets.%s' % str(name)[:40]
        if not isinstance(name, str) or not name:
            raise _HostError(field, 'a physnet name must be a string')
        if not isinstance(nodes, list) or not nodes:
            raise _HostError(field, 'expected a non-empty list of node ids')
        for node in nodes:
            if isinstance(node, bool) or node not in ids:
                raise _HostError(field, 'node %r is not a cell of the host '
                                 '(cells %s)' % (node, _ids(ids)))
        nodes_of[name] = set(nodes)
    return tuple(c.replace(physnets=frozenset(
        name for name, nodes in nodes_of.items() if c.id in nodes))
        for c in cells)


def _pci(value, cells):
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _HostError('pci', 'expected a list of device pools')
    ids = {c.id for c in cells}
    pools = []
    for i, item in enumerate(value):
        field = 'pci[%d]' % i
        _check_fields(field, item, _PCI_KEYS)
        node = item.get('numa_node')
        if node is not None and (isinstance(node, bool) or node not in ids):
            raise _HostError(field + '.numa_node', '%r is not a cell of the '
                             'host (cells %s)' % (node, _ids(ids)))
        dev_type = item.get('dev_type', 'type-PCI')
        if dev_type not in DEV_TYPES:
            raise _HostError(field + '.dev_type', 'expected one of %s' %
                             ', '.join(DEV_TYPES))
        physnet = item.get('physical_network')
        if physnet is not None and (not isinstance(physnet, str) or
                                    not physnet):
            raise _HostError(field + '.physical_network', 'expected a '
                             'physnet name')
        pools.append(PciPool(
            node, _hex_id(field + '.vendor_id', item.get('vendor_id')),
            _hex_id(field + '.product_id', item.get('product_id')),
            dev_type, physnet,
            _number(field + '.count', item.get('count'), 1, MAX_COUNT,
                    minimum=1)))
    return tuple(pools)


def _hex_id(field, value):
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads an unquoted 8086 as a number.
        value = '%04d' % value
    if not isinstance(value, str) or not _HEX_ID.fullmatch(value):
        raise _HostError(field, 'expected 4 hex digits in quotes, such as '
                         '"8086"')
    return value.lower()


def _aggregates(value):
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _HostError('aggregates', 'expected a list of metadata '
                         'mappings')
    result = []
    for i, metadata in enumerate(value):
        if not isinstance(metadata, dict):
            raise _HostError('aggregates[%d]' % i, 'expected a mapping of '
                             'metadata keys to values')
        for key, item in metadata.items():
            if not isinstance(key, str) or isinstance(item, (dict, list)):
                raise _HostError('aggregates[%d]' % i, 'metadata must map '
                                 'names to plain values')
        result.append({key: _text(item) for key, item in metadata.items()})
    return tuple(result)


def _text(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def _number(field, value, default, limit, minimum=0):
    """A whole number in ``minimum..limit``, or ``default`` when None."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _HostError(field, 'expected a whole number, got %s' %
                         _short(value))
    if not minimum <= value <= limit:
        raise _HostError(field, '%d is outside %d..%d' % (value, minimum,
                                                          limit))
    return value


def _ratio(field, value, default):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _HostError(field, 'expected a number, got %s' % _short(value))
    if not 0 < value <= MAX_RATIO:
        raise _HostError(field, '%s is outside (0, %g]' % (value, MAX_RATIO))
    return float(value)


def _check_keys(path, mapping, allowed, where):
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise InputError(path, '%s: unknown field %r (expected %s)' % (
            where, unknown[0][:40], ', '.join(allowed)))


def _ids(ids):
    return ','.join(str(i) for i in sorted(ids)) or 'none'


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def _one_line(exc):
    text = ' '.join(str(exc).split())
    return text[:200] or type(exc).__name__
