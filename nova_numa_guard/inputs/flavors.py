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

"""Flavors for the simulator: ``--flavor SPEC`` and openstackclient output.

A flavor spec is ``vcpus=N,ram=MB[,name=X][,port=P...][,key=value...]``:

* ``vcpus`` and ``ram`` (MB) are required;
* ``name`` names the flavor in the output (default: the spec itself);
* ``port`` gives the server a port: ``port=PHYSNET`` on a network of that
  physnet, ``port=PHYSNET:direct`` an SR-IOV port (a VF) on it,
  ``port=tunnel`` on a tunnelled (VXLAN, Geneve) network; repeatable;
* every other key is an extra spec and must have a namespace, such as
  ``hw:numa_nodes=2`` or ``pci_passthrough:alias=vf:1``. A comma followed
  by text without ``=`` continues the value before it, so
  ``pci_passthrough:alias=a:1,b:2`` is one extra spec.

Disks are not simulated: a flavor's disk sizes are ignored.

A flavor file is ``openstack flavor list --long -f json`` output (a list)
or ``openstack flavor show -f json`` output (one flavor). Nothing here
imports nova.
"""

import collections
import json
import re

from nova_numa_guard import inputs
from nova_numa_guard.inputs import InputError

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_VCPUS = 4096
MAX_RAM_MB = 64 * 1024 * 1024
MAX_PORTS = 32

# The columns of ``openstack flavor list [--long] -f json``.
LIST_FIELDS = ('ID', 'Name', 'RAM', 'Disk', 'Ephemeral', 'VCPUs',
               'Is Public', 'Swap', 'RXTX Factor', 'Properties',
               'Description')
# The fields of ``openstack flavor show -f json``.
SHOW_FIELDS = ('OS-FLV-DISABLED:disabled', 'OS-FLV-EXT-DATA:ephemeral',
               'access_project_ids', 'description', 'disk', 'id', 'name',
               'os-flavor-access:is_public', 'properties', 'ram',
               'rxtx_factor', 'swap', 'vcpus')
SPEC_FIELDS = ('vcpus', 'ram', 'name', 'port')
TUNNEL = 'tunnel'
DIRECT = 'direct'

# One property of the Properties column as older openstackclients print
# it: key='value', key2='value2'.
_PROPERTY = re.compile(r"([^\s=,']+)='([^']*)'")
_PHYSNET = re.compile(r'[A-Za-z0-9_.-]{1,64}')

Flavor = collections.namedtuple('Flavor', 'name vcpus ram extra_specs ports')
Flavor.__doc__ = """A flavor to simulate.

:ivar name: its name in the output.
:ivar vcpus: vCPUs.
:ivar ram: memory, MB.
:ivar extra_specs: ``{key: str}``.
:ivar ports: tuple of :data:`Port`.
"""

Port = collections.namedtuple('Port', 'physnet direct')
Port.__doc__ = """A port of the server.

:ivar physnet: the physnet of its network, or None for a tunnelled one.
:ivar direct: an SR-IOV port (``vnic_type=direct``): it takes a VF.
"""


def parse_properties(text):
    """``key='value', key2='value2'`` (older openstackclients) to a dict."""
    return dict(_PROPERTY.findall(text))


def parse_spec(text, source='--flavor'):
    """Parse one ``--flavor`` spec.

    :raises InputError: naming ``source`` and the field.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(source, 'empty flavor spec: expected '
                         'vcpus=N,ram=MB[,name=X][,key=value...]')
    fields = []
    for piece in text.split(','):
        key, sep, value = piece.partition('=')
        if not sep:
            if not fields or ':' not in fields[-1][0]:
                raise InputError(source, '%r: expected key=value' %
                                 piece.strip()[:40])
            fields[-1][1] += ',' + piece.strip()
            continue
        fields.append([key.strip(), value.strip()])
    values, specs, ports = {}, {}, []
    for key, value in fields:
        if not value:
            raise InputError(source, '%s: empty value' % key[:40])
        if key == 'port':
            ports.append(_port(value, source))
        elif key in SPEC_FIELDS:
            if key in values:
                raise InputError(source, '%s: given twice' % key)
            values[key] = value
        elif (':' in key and ' ' not in key and len(key) <= 255 and
                key.isprintable()):
            if key in specs:
                raise InputError(source, '%s: given twice' % key)
            specs[key] = value
        else:
            raise InputError(source, 'unknown field %r (expected vcpus, ram, '
                             'name, port or an extra spec such as '
                             'hw:numa_nodes)' % key[:40])
    for key in ('vcpus', 'ram'):
        if key not in values:
            raise InputError(source, '%s: missing (expected '
                             'vcpus=N,ram=MB[,...])' % key)
    if len(ports) > MAX_PORTS:
        raise InputError(source, 'more than %d ports' % MAX_PORTS)
    return Flavor(values.get('name', text.strip())[:255],
                  _count(values['vcpus'], source, 'vcpus', MAX_VCPUS),
                  _count(values['ram'], source, 'ram', MAX_RAM_MB),
                  specs, tuple(ports))


def _port(value, source):
    physnet, sep, kind = value.partition(':')
    if sep and kind != DIRECT:
        raise InputError(source, 'port=%s: expected PHYSNET, PHYSNET:direct '
                         'or tunnel' % value[:40])
    if not _PHYSNET.fullmatch(physnet):
        raise InputError(source, 'port=%s: %r is not a physnet name' % (
            value[:40], physnet[:40]))
    if physnet == TUNNEL:
        if sep:
            raise InputError(source, 'port=%s: an SR-IOV port needs a '
                             'physnet, not a tunnelled network' % value[:40])
        return Port(None, False)
    return Port(physnet, bool(sep))


def _count(value, source, field, limit, text=True):
    """A whole number in ``1..limit``; from digits too when ``text``."""
    if text and isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 12:
            raise InputError(source, '%s: expected a whole number, got %r' %
                             (field, value[:40]))
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(source, '%s: expected a whole number, got %r' %
                         (field, value))
    if not 1 <= value <= limit:
        raise InputError(source, '%s: %d is outside 1..%d' % (field, value,
                                                             limit))
    return value


def load(path):
    """Flavors from ``openstack flavor list --long`` or ``flavor show``.

    :returns: list of :data:`Flavor`.
    :raises InputError: naming the file and the flavor.
    """
    raw = inputs.read_file(path, MAX_FILE_BYTES)
    try:
        data = json.loads(raw.decode('utf-8'))
    except (ValueError, RecursionError) as e:
        raise InputError(path, 'not JSON: %s' % ' '.join(str(e).split()))
    if isinstance(data, dict):
        return [_flavor(path, 'flavor', data, SHOW_FIELDS,
                        ('name', 'id', 'vcpus', 'ram', 'properties'))]
    if not isinstance(data, list) or not data:
        raise InputError(path, 'expected openstack flavor list --long -f '
                         'json or openstack flavor show -f json output')
    return [_flavor(path, 'flavor %d' % i, item, LIST_FIELDS,
                    ('Name', 'ID', 'VCPUs', 'RAM', 'Properties'))
            for i, item in enumerate(data)]


def _flavor(path, where, item, fields, keys):
    name_key, id_key, vcpus_key, ram_key, properties_key = keys
    if not isinstance(item, dict):
        raise InputError(path, '%s: expected a JSON object' % where)
    unknown = sorted(str(k) for k in item if k not in fields)
    if unknown:
        raise InputError(path, '%s: unknown field %r (expected the fields '
                         'of openstack flavor list --long or flavor show)' %
                         (where, unknown[0][:40]))
    name = item.get(name_key) or item.get(id_key)
    if not isinstance(name, str) or not name.strip():
        raise InputError(path, '%s: no %s or %s' % (where, name_key, id_key))
    where = 'flavor %s' % name[:60]
    properties = item.get(properties_key) or {}
    if isinstance(properties, str):
        properties = parse_properties(properties)
    elif not isinstance(properties, dict):
        raise InputError(path, '%s: %s must be an object or a string' % (
            where, properties_key))
    for key, value in properties.items():
        if isinstance(value, (dict, list)):
            raise InputError(path, '%s: property %s is not a plain value' %
                             (where, str(key)[:40]))
    return Flavor(name, _count(item.get(vcpus_key), path,
                               '%s: %s' % (where, vcpus_key), MAX_VCPUS,
                               text=False),
                  _count(item.get(ram_key), path,
                         '%s: %s' % (where, ram_key), MAX_RAM_MB,
                         text=False),
                  {str(k): str(v) for k, v in properties.items()}, ())
