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

"""``nova-numa-guard flavor-specs``: vNUMA extra specs for large flavors."""

import json
import logging
import shlex

from cliff.formatters import base as formatters
from cliff import show

from nova_numa_guard import cli
from nova_numa_guard import inputs
from nova_numa_guard.inputs import capabilities
from nova_numa_guard.inputs import flavors as flavor_inputs
from nova_numa_guard.inputs import InputError
from nova_numa_guard.inputs import numastat
from nova_numa_guard.inputs import sysfs
from nova_numa_guard import topology
from nova_numa_guard import vnuma

LOG = logging.getLogger(__name__)

# The columns of ``openstack flavor list --long -f json``.
FLAVOR_FIELDS = flavor_inputs.LIST_FIELDS

BATCH_COLUMNS = ('Flavor', 'VCPUs', 'RAM', 'Nodes', 'Extra Specs', 'Command')
# Bounds of every number the command takes, checked before anything is
# allocated by it: no real host or flavor comes near them, and planning is
# combinatorial in the number of cells.
MAX_CELLS = 64
MAX_CELL_CPUS = 4096
MAX_CELL_MB = 64 * 1024 * 1024
MAX_VCPUS = 4096
MAX_RAM_MB = MAX_CELLS * MAX_CELL_MB


class FlavorSpecs(show.ShowOne):
    """Plan vNUMA flavor extra specs for guests larger than one NUMA cell.

    Prints the hw:numa_* extra specs that split the guest over the fewest
    host NUMA cells that hold its vCPUs and memory, checked with nova's own
    code against the host. A guest that fits one cell needs no specs.
    With --flavors, plans every flavor of 'openstack flavor list --long
    -f json' output that does not fit one cell and prints ready
    'openstack flavor set' commands.
    """

    def __init__(self, app, app_args, cmd_name=None):
        super().__init__(app, app_args, cmd_name=cmd_name)
        self._failed = 0
        self._parser = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        # "--vcpu" is not "--vcpus": a typo is named, not guessed.
        parser.allow_abbrev = False
        # For usage errors found after parsing (argparse exits 2).
        self._parser = parser
        parser.add_argument(
            '--vcpus', metavar='<vcpus>', type=int,
            help='Number of vCPUs of the flavor (required unless --flavors '
                 'is given)')
        parser.add_argument(
            '--ram', metavar='<size-mb>', type=int,
            help='Memory size of the flavor in MB (required unless '
                 '--flavors is given)')
        parser.add_argument(
            '--flavors', metavar='<file>',
            help='Output of "openstack flavor list --long -f json": plan '
                 'every flavor that does not fit one cell (instead of '
                 '--vcpus and --ram)')
        # Checked in take_action: argparse would report a missing host
        # before an unknown argument (a misspelt --capabilities).
        host = parser.add_mutually_exclusive_group()
        host.add_argument(
            '--capabilities', metavar='<file>',
            help='Output of "virsh capabilities" on the compute host (or '
                 'its <topology> element)')
        host.add_argument(
            '--cells', metavar='<cpus:mb>[,<cpus:mb>...]',
            help='The host\'s NUMA cells as CPUs:MB, one per cell, e.g. '
                 '12:64328,12:64510 (MB usable by small pages; 0 CPUs or 0 '
                 'MB for cells that hold no guests)')
        host.add_argument(
            '--sysfs-root', metavar='<path>',
            help='Read the NUMA nodes of this machine from sysfs mounted at '
                 '<path> (normally /sys); the memory available on them now '
                 '(MemFree + Inactive(file) + SReclaimable) gives warnings '
                 'like --numastat')
        parser.add_argument(
            '--headroom', metavar='<percent>', type=float,
            default=vnuma.DEFAULT_HEADROOM_PCT,
            help='Percent of each cell\'s small-page memory a guest node may '
                 'not take, left to the host and QEMU (default: %(default)s)')
        parser.add_argument(
            '--page-size', metavar='<size>',
            help='Back the guest memory with pages of this size: small, '
                 'large, any, a size in KiB or a size such as 2MB or 1GB. '
                 'Sets hw:mem_page_size and sizes guest nodes in multiples '
                 'of the page size')
        parser.add_argument(
            '--pin', action='store_true',
            help='Give a guest that fits one cell a NUMA topology too '
                 '(hw:numa_nodes=1), so nova binds its vCPUs and memory to '
                 'one host node')
        parser.add_argument(
            '--numastat', metavar='<file>',
            help='Output of "numastat -m" on the compute host: warn when its '
                 'nodes do not have the memory available (MemFree + '
                 'Inactive(file) + SReclaimable) for the guest nodes now')
        return parser

    def take_action(self, parsed_args):
        args = parsed_args
        if args.flavors and (args.vcpus is not None or args.ram is not None):
            self._parser.error('--flavors replaces --vcpus and --ram; give '
                               'one or the other')
        if not args.flavors and (args.vcpus is None or args.ram is None):
            self._parser.error('--vcpus and --ram are required (or '
                               '--flavors)')
        if not (args.capabilities or args.cells or args.sysfs_root):
            self._parser.error('one of --capabilities, --cells or '
                               '--sysfs-root is required: the host to plan '
                               'for')
        if not args.flavors:
            _check_bound('--vcpus', args.vcpus, MAX_VCPUS)
            _check_bound('--ram', args.ram, MAX_RAM_MB)
        if args.flavors:
            self._check_list_output(args)
        cli.require_nova('flavor-specs')
        host = self._host(args)
        if args.flavors:
            return self._batch(args, host)
        plan = vnuma.plan(args.vcpus, args.ram, host,
                          headroom_pct=args.headroom,
                          page_size=args.page_size, pin=args.pin)
        for warning in plan.warnings:
            LOG.warning('Warning: %s', warning)
        if not plan.extra_specs:
            LOG.info('The guest fits one NUMA cell: it needs no vNUMA extra '
                     'specs (--pin gives it hw:numa_nodes=1).')
        return self.dict2columns(plan.extra_specs)

    def _host(self, args):
        if args.capabilities:
            host = capabilities.load(args.capabilities)
        elif args.sysfs_root:
            host = sysfs.read_host(args.sysfs_root)
        else:
            host = parse_cells(args.cells)
        if len(host.cells) > MAX_CELLS:
            raise InputError(args.capabilities or args.sysfs_root,
                             '%d NUMA cells; at most %d are planned for' %
                             (len(host.cells), MAX_CELLS))
        if args.numastat:
            stat = numastat.load(args.numastat)
            ids = sorted(c.id for c in host.cells)
            if sorted(stat.nodes) != ids:
                raise InputError(args.numastat, 'nodes %s do not match the '
                                 'host cells %s' % (
                                     ','.join(map(str, sorted(stat.nodes))),
                                     ','.join(map(str, ids))))
            host = host.with_live(topology.LiveMemory(stat.available_mb()))
        return host

    def _batch(self, args, host):
        rows = []
        warned = set()
        flavors = load_flavors(args.flavors)
        if not flavors:
            raise InputError(args.flavors, 'no flavors in the list')
        for flavor in flavors:
            name = flavor['name']
            try:
                numa = vnuma.topology_keys(flavor['vcpus'], flavor['ram'],
                                           flavor['properties'])
                if numa:
                    LOG.info('%s: already has a NUMA topology (%s); skipped',
                             name, ', '.join(numa))
                    continue
                plan = vnuma.plan(flavor['vcpus'], flavor['ram'], host,
                                  headroom_pct=args.headroom,
                                  page_size=args.page_size, pin=args.pin)
            except vnuma.PlanError as e:
                LOG.error('%s: %s', name, e)
                self._failed += 1
                continue
            if plan.nodes == 1 and not args.pin:
                LOG.info('%s: fits one NUMA cell; skipped', name)
                continue
            for warning in plan.warnings:
                if warning == vnuma.SMALL_PAGES_WARNING:
                    # The same for every flavor: say it once.
                    if warning not in warned:
                        warned.add(warning)
                        LOG.warning('Warning: %s', warning)
                else:
                    LOG.warning('Warning: %s: %s', name, warning)
            rows.append((name, flavor['vcpus'], flavor['ram'], plan.nodes,
                         vnuma.specs_text(plan.extra_specs),
                         flavor_set_command(name, plan.extra_specs)))
        return BATCH_COLUMNS, rows

    def _check_list_output(self, args):
        """Refuse list output options that cannot work, before planning."""
        if not isinstance(self.formatter, formatters.ListFormatter):
            raise InputError('flavor-specs', '-f %s cannot show a list of '
                             'flavors; use table, json, yaml or value' %
                             args.formatter)
        if args.columns and not _batch_columns(args.columns):
            raise InputError('flavor-specs', '-c %s: no such column; the '
                             'columns are %s' % (' -c '.join(args.columns),
                                                 ', '.join(BATCH_COLUMNS)))

    def produce_output(self, parsed_args, column_names, data):
        if not parsed_args.flavors:
            return super().produce_output(parsed_args, column_names, data)
        if parsed_args.columns:
            keep = _batch_columns(parsed_args.columns)
        elif parsed_args.formatter == 'value':
            # Ready to paste or pipe to a shell.
            keep = [BATCH_COLUMNS.index('Command')]
        else:
            keep = range(len(column_names))
        self.formatter.emit_list([column_names[i] for i in keep],
                                 [[row[i] for i in keep] for row in data],
                                 self.app.stdout, parsed_args)
        return 0

    def run(self, parsed_args):
        result = super().run(parsed_args)
        return 1 if self._failed else result


def _batch_columns(wanted):
    """Indexes of the batch columns ``-c`` names, as cliff matches names
    ('Extra Specs', 'extra_specs' or 'extra specs').
    """
    def key(name):
        return name.lower().strip().replace(' ', '_')

    wanted = {key(name) for name in wanted}
    return [i for i, name in enumerate(BATCH_COLUMNS) if key(name) in wanted]


def parse_cells(text, source='--cells'):
    """``CPUS:MB[,CPUS:MB...]`` to a :class:`topology.Host`.

    Cell i gets id i and CPUs numbered on from the previous cell's.
    """
    cells = []
    first_cpu = 0
    items = (text or '').split(',')
    if len(items) > MAX_CELLS:
        raise InputError(source, '%d cells; at most %d are planned for' %
                         (len(items), MAX_CELLS))
    for i, item in enumerate(items):
        cpus, sep, mb = item.strip().partition(':')
        if not sep or not _is_count(cpus) or not _is_count(mb):
            raise InputError(source, 'cell %d: expected CPUS:MB with whole '
                             'numbers, got %r' % (i, item.strip()[:40]))
        cpus, mb = int(cpus), int(mb)
        if cpus > MAX_CELL_CPUS or mb > MAX_CELL_MB:
            raise InputError(source, 'cell %d: %d CPUs and %d MB; a cell '
                             'has at most %d CPUs and %d MB' % (
                                 i, cpus, mb, MAX_CELL_CPUS, MAX_CELL_MB))
        cells.append(topology.Cell(
            id=i, cpus=frozenset(range(first_cpu, first_cpu + cpus)),
            memory_mb=mb))
        first_cpu += cpus
    return topology.Host('cells', cells)


def _check_bound(option, value, limit):
    """One line and exit 1 for a number beyond what any host has."""
    if not 1 <= value <= limit:
        raise InputError(option, '%d is not between 1 and %d' % (value,
                                                                  limit))


def _is_count(text):
    return text.isdigit() and text.isascii() and len(text) < 10


def load_flavors(path):
    """Flavors from ``openstack flavor list --long -f json`` output.

    :returns: list of dicts with ``name``, ``vcpus``, ``ram`` and
        ``properties`` (the flavor's extra specs, ``{key: str}``).
    :raises: InputError on anything else.
    """
    raw = inputs.read_file(path)
    try:
        data = json.loads(raw.decode('utf-8'))
    except ValueError as e:
        raise InputError(path, 'not JSON: %s' % e)
    if not isinstance(data, list):
        raise InputError(path, 'expected a JSON list of flavors (openstack '
                         'flavor list --long -f json)')
    flavors = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise InputError(path, 'flavor %d: expected a JSON object' % i)
        unknown = sorted(set(item) - set(FLAVOR_FIELDS))
        if unknown:
            raise InputError(path, 'flavor %d: unknown field %r (expected '
                             'the columns of openstack flavor list --long)' %
                             (i, unknown[0][:40]))
        name = item.get('Name') or item.get('ID')
        if not isinstance(name, str) or not name.strip():
            raise InputError(path, 'flavor %d: no Name or ID' % i)
        for field, limit in (('VCPUs', MAX_VCPUS), ('RAM', MAX_RAM_MB)):
            value = item.get(field)
            if isinstance(value, bool) or not isinstance(value, int) or (
                    not 1 <= value <= limit):
                raise InputError(path, 'flavor %s: %s must be a whole '
                                 'number from 1 to %d, got %r' % (
                                     name, field, limit, value))
        properties = item.get('Properties') or {}
        if isinstance(properties, str):
            # key='value', key2='value2' (older openstackclients).
            properties = flavor_inputs.parse_properties(properties)
        elif not isinstance(properties, dict):
            raise InputError(path, 'flavor %s: Properties must be an object '
                             'or a string' % name)
        flavors.append({'name': name, 'vcpus': item['VCPUs'],
                        'ram': item['RAM'],
                        'properties': {str(key): str(value)
                                       for key, value in properties.items()}})
    return flavors


def flavor_set_command(name, specs):
    """The ``openstack flavor set`` command that applies ``specs``."""
    words = ['openstack', 'flavor', 'set']
    for key, value in specs.items():
        words += ['--property', '%s=%s' % (key, value)]
    words.append(name)
    return ' '.join(shlex.quote(w) for w in words)
