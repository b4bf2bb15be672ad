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

"""``nova-numa-guard simulate``: where flavors land, with and without us."""

import logging
import textwrap
import time
import warnings

from cliff import show
import stevedore

from nova_numa_guard import cli
from nova_numa_guard.inputs import flavors as flavor_inputs
from nova_numa_guard.inputs import fleet as fleet_inputs

LOG = logging.getLogger(__name__)

FORMATS = ('table', 'json', 'yaml')
WIDTH = 80
# Widths of the host table's run columns and the most of a host name.
_RUN_WIDTH = 13
_NAME_WIDTH = WIDTH - 2 - 2 * (2 + _RUN_WIDTH) - 2
_REASON_INDENT = 6


class Simulate(show.ShowOne):
    """Show where flavors land on a fleet, with and without the guard.

    Runs nova's own filter and weight handlers over the hosts of a fleet
    file, built as nova-scheduler builds them, for each flavor: once with
    nova's default filters plus NUMATopologyFilter and PciPassthroughFilter
    (stock), once with NUMACellFitFilter as well (guard). Prints, per host,
    whether each passes it, which filter rejected it and why, its weight and
    rank; the host each picks; how many guests of the flavor the fleet
    takes in each (capacity); and, when the guard leaves no host, vNUMA
    extra specs for the flavor. Needs no service: placement is emulated,
    nova's defaults apply, disks are not simulated.
    """

    def __init__(self, app, app_args, cmd_name=None):
        super().__init__(app, app_args, cmd_name=cmd_name)
        self._parser = None

    def _load_formatter_plugins(self):
        # The output is one nested document: table (our own), json, yaml.
        return stevedore.NamedExtensionManager(
            self.formatter_namespace, names=list(FORMATS),
            invoke_on_load=True)

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        self._parser = parser
        parser.add_argument(
            '--fleet', metavar='<file>', required=True,
            help='Fleet file (YAML): the hosts, by virsh capabilities XML, '
                 'numastat -m output, inline cells or agent payloads, with '
                 'their PCI devices, physnets and aggregates')
        parser.add_argument(
            '--flavor', metavar='<spec>', action='append', default=[],
            help='A flavor: vcpus=N,ram=MB[,name=X][,port=PHYSNET[:direct]]'
                 '[,<extra spec>=<value>...], e.g. '
                 'vcpus=8,ram=70000,hw:numa_nodes=2 (repeat for more)')
        parser.add_argument(
            '--flavor-file', metavar='<file>',
            help='Output of "openstack flavor list --long -f json" or '
                 '"openstack flavor show -f json": simulate those flavors '
                 'too')
        return parser

    def take_action(self, parsed_args):
        args = parsed_args
        if not args.flavor and not args.flavor_file:
            self._parser.error('give at least one --flavor or a '
                               '--flavor-file')
        cli.require_nova('simulate')
        fleet = fleet_inputs.load(args.fleet)
        flavors = [flavor_inputs.parse_spec(spec) for spec in args.flavor]
        if args.flavor_file:
            flavors += flavor_inputs.load(args.flavor_file)
        with warnings.catch_warnings():
            # eventlet announces its deprecation when nova is imported.
            warnings.simplefilter('ignore')
            from nova_numa_guard import simulation
        progress = Progress(self.app.stderr)
        try:
            report = simulation.simulate(fleet, flavors, progress=progress)
        finally:
            progress.close()
        for warning in report.warnings:
            LOG.warning('Warning: %s', warning)
        return ('requests',), (report.requests,)

    def produce_output(self, parsed_args, column_names, data):
        if parsed_args.formatter == 'table':
            self.app.stdout.write(render(data[0]))
            return 0
        return super().produce_output(parsed_args, column_names, data)


LEGEND = ('capacity: how many guests of the flavor the fleet takes, placed '
          'one after another. #N W: the host passes, nova\'s weighers give '
          'it weight W and rank N (#1 is picked); rejected: by the filter '
          'named below it, or by placement.')


def render(requests, width=WIDTH):
    """The requests as text for a terminal of ``width`` columns."""
    names = [host['name'] for request in requests
             for host in request['hosts']]
    name_width = min(_NAME_WIDTH, max([len('host')] + [
        len(name) for name in names]))
    blocks = [_flavor_block(request, width, name_width)
              for request in requests]
    blocks.append('\n'.join(_wrap(LEGEND, width, 0, 0)) + '\n')
    return '\n'.join(blocks)


def _flavor_block(request, width, name_width):
    flavor = request['flavor']
    lines = _wrap('Flavor %s: %s' % (flavor['name'], _flavor_text(flavor)),
                  width, 0, 4)
    for label, run in (('stock nova', request['stock']),
                       ('with the guard', request['guard'])):
        picks = ('picks %s' % run['host'] if run['host'] else
                 'no valid host')
        lines.append('  %-16s%s, capacity %d' % (label + ':', picks,
                                                 run['capacity']))
    if request['suggestion']:
        specs = ' '.join('%s=%s' % item
                         for item in request['suggestion'].items())
        lines.extend(_wrap('suggestion:     ' + specs, width, 2, 18))
        then = request['suggestion_host']
        lines.append(' ' * 18 + ('(the guard then picks %s)' % then if then
                                 else '(the guard finds no host for it now '
                                 'either)'))
    lines.append('')
    lines.append('  %-*s  %-*s  %s' % (name_width, 'host', _RUN_WIDTH,
                                       'stock nova', 'with the guard'))
    for host in request['hosts']:
        name = host['name']
        if len(name) > name_width:
            lines.append('  ' + name)
            name = ''
        lines.append(('  %-*s  %-*s  %s' % (
            name_width, name, _RUN_WIDTH,
            _verdict(host['stock_passes'], host['stock_rank'],
                     host['stock_weight']),
            _verdict(host['guard_passes'], host['rank'],
                     host['weight']))).rstrip())
        if host['rejected_by']:
            why = host['rejected_by']
            if host['reason']:
                why += ': ' + host['reason']
            lines.extend(_wrap(why, width, _REASON_INDENT, _REASON_INDENT))
    lines.append('')
    return '\n'.join(lines)


def _flavor_text(flavor):
    parts = ['%d vCPUs' % flavor['vcpus'], '%d MB' % flavor['ram']]
    specs = ' '.join('%s=%s' % item for item in flavor['extra_specs'].items())
    if not flavor['numa_topology']:
        specs += ' (no NUMA topology)' if specs else 'no NUMA topology'
    parts.append(specs)
    if flavor['ports']:
        parts.append('ports ' + ' '.join(flavor['ports']))
    return ', '.join(parts)


def _verdict(passes, rank, weight):
    if not passes:
        return 'rejected'
    return '#%d %.3f' % (rank, weight)


def _wrap(text, width, first, rest):
    return textwrap.wrap(text, width=width, initial_indent=' ' * first,
                         subsequent_indent=' ' * rest,
                         break_on_hyphens=False, break_long_words=False)


class Progress:
    """A progress bar on stderr, for a terminal and a run of some seconds.

    Nothing is written when the stream is not a terminal, nor before
    ``delay`` seconds have passed: a quick run prints no bar at all.
    """

    DELAY = 3.0
    INTERVAL = 0.2
    BAR = 30

    def __init__(self, stream, clock=time.monotonic):
        self._stream = stream
        self._clock = clock
        self._start = clock()
        self._last = None
        self._shown = 0
        try:
            self._tty = stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False

    def __call__(self, done, total):
        if not self._tty or total <= 0:
            return
        now = self._clock()
        if now - self._start < self.DELAY:
            return
        if self._last is not None and now - self._last < self.INTERVAL and (
                done < total):
            return
        self._last = now
        filled = self.BAR * done // total
        line = 'simulating [%s%s] %d/%d, %d s' % (
            '#' * filled, '-' * (self.BAR - filled), done, total,
            now - self._start)
        self._stream.write('\r' + line.ljust(self._shown))
        self._stream.flush()
        self._shown = len(line)

    def close(self):
        """Clear the bar, if one was drawn."""
        if self._shown:
            self._stream.write('\r' + ' ' * self._shown + '\r')
            self._stream.flush()
            self._shown = 0
