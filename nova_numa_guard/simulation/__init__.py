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

"""The what-if simulator: a fleet and flavors through nova's scheduler.

:func:`simulate` builds nova ``HostState`` objects from a fleet file as
``HostManager`` builds them, ``RequestSpec`` objects from flavors as nova's
API builds them, and runs every flavor through nova's real filter and
weight handlers twice:

* ``stock``: nova's default ``[filter_scheduler] enabled_filters`` plus
  ``NUMATopologyFilter`` and ``PciPassthroughFilter``, with nova's default
  ``weight_classes``;
* ``guard``: the same plus ``NUMACellFitFilter``, on the fleet's live
  memory where it has some, and ``NUMALocalityWeigher`` when this
  installation has it (``nova_numa_guard.scheduler.weights``).

For each flavor it reports, per host, whether each run passes it, which
filter rejected it and why, its weight and rank; the host each run picks;
how many guests of the flavor the fleet takes in each run (capacity); and,
when the guard leaves no host for a flavor without a NUMA topology that
stock nova places, the vNUMA extra specs the helper plans for it, with the
host the guard then picks. Placement is emulated; disks are not
simulated. Needs nova; runs no service and reads no configuration file:
nova's defaults apply.
"""

import contextlib
import importlib.util
import json
import secrets

import nova.conf
from nova import exception
from nova import objects
from nova.pci import request as pci_request
from nova.scheduler import weights as nova_weights

from nova_numa_guard.inputs import InputError
from nova_numa_guard.scheduler.filters import numa_cell_fit
from nova_numa_guard.simulation import live
from nova_numa_guard.simulation import placement
from nova_numa_guard.simulation import requests
from nova_numa_guard.simulation import scheduler
from nova_numa_guard import vnuma

CONF = nova.conf.CONF

STOCK_EXTRA_FILTERS = ('NUMATopologyFilter', 'PciPassthroughFilter')
GUARD_WEIGHERS = 'nova_numa_guard.scheduler.weights'
# At most this many host shapes are planned for, and this many distinct
# plans tried, for a suggestion.
MAX_SHAPES = 8
MAX_PLANS = 2


class Report:
    """What :func:`simulate` found.

    :ivar requests: one dict per flavor, the ``-f json`` shape.
    :ivar warnings: one-line warnings nova or the plugin logged.
    """

    def __init__(self, requests, warnings):
        self.requests = requests
        self.warnings = warnings


def simulate(fleet, flavors, progress=None):
    """Run ``flavors`` over ``fleet`` (see the module doc).

    :param fleet: :class:`nova_numa_guard.inputs.fleet.Fleet`.
    :param flavors: :data:`nova_numa_guard.inputs.flavors.Flavor` objects.
    :param progress: called as ``progress(done, total)`` after each
        flavor.
    :returns: :class:`Report`.
    :raises InputError: when nova rejects a flavor or the fleet's aliases.
    """
    objects.register_all()
    with _configured(fleet), scheduler.Capture() as capture:
        reqs = [requests.Request(flavor, i)
                for i, flavor in enumerate(flavors)]
        hosts = scheduler.NovaFleet(fleet.hosts, [placement.provider(h)
                                              for h in fleet.hosts])
        runs = scheduler.Runs(
            _filters(), [numa_cell_fit.NUMACellFitFilter(
                memory_source=live.FleetSource(fleet.hosts))],
            _weighers(), _weighers(guard=True))
        results = []
        for done, request in enumerate(reqs, 1):
            stock, guard = scheduler.place(runs, hosts, request, capture)
            specs = picked = None
            # vNUMA specs only help where the guard is what stops the
            # flavor, and nova gives it no NUMA topology of its own.
            if (guard.host is None and stock.host is not None and
                    not request.has_topology):
                specs, picked = _suggest(runs, hosts, request, stock, fleet,
                                         capture)
            results.append(_entry(request, hosts.names, stock, guard, specs,
                                  picked))
            if progress is not None:
                progress(done, len(reqs))
        return Report(results, list(capture.warnings))


@contextlib.contextmanager
def _configured(fleet):
    """nova's options for the simulation, for as long as it runs.

    The fleet's PCI aliases; live data signed with a key of this run and
    never too old (payloads are stamped when it starts).
    """
    overrides = [
        ('alias', [json.dumps(alias) for alias in fleet.pci_aliases], 'pci'),
        ('payload_signing_key', secrets.token_hex(16), 'numa_guard'),
        ('max_data_age', 86400, 'numa_guard'),
        ('on_missing_live_data', 'accounted', 'numa_guard'),
    ]
    for name, value, group in overrides:
        CONF.set_override(name, value, group=group)
    # nova parses [pci] alias once per process.
    pci_request.get_alias_from_config.cache_clear()
    try:
        try:
            pci_request.get_alias_from_config()
        except exception.PciInvalidAlias as e:
            raise InputError(fleet.path, 'pci_aliases: %s' %
                             ' '.join(str(e).split()))
        yield
    finally:
        for name, _, group in overrides:
            CONF.clear_override(name, group=group)
        pci_request.get_alias_from_config.cache_clear()


def _filters():
    """Fresh objects of the stock filters, as HostManager makes them."""
    classes = scheduler.filter_classes()
    names = list(CONF.filter_scheduler.enabled_filters)
    names += [name for name in STOCK_EXTRA_FILTERS if name not in names]
    return [classes[name]() for name in names]


def guard_weighers_installed():
    """Whether this installation has the plugin's weighers."""
    return importlib.util.find_spec(GUARD_WEIGHERS) is not None


def _weighers(guard=False):
    """Weigher objects of nova's ``weight_classes`` (and the plugin's)."""
    paths = list(CONF.filter_scheduler.weight_classes)
    if guard and guard_weighers_installed():
        paths.append(GUARD_WEIGHERS + '.all_weighers')
    handler = nova_weights.HostWeightHandler()
    return [cls() for cls in handler.get_matching_classes(paths)]


def _suggest(runs, hosts, request, stock_outcome, fleet, capture):
    """The vNUMA specs for a flavor the guard leaves no host for.

    Plans on the shapes of the hosts stock nova passes first, then the
    others; a plan the guard then places somewhere wins.

    :returns: ``(specs, host the guard picks with them)``, ``(specs,
        None)`` when no plan gets a host, or ``(None, None)`` when no shape
        of the fleet can hold the guest.
    """
    flavor = request.flavor
    order = sorted(fleet.hosts, key=lambda fh: not stock_outcome.verdicts[
        fh.host.name].passes)
    plans, shapes = [], set()
    for fleet_host in order:
        shape = tuple((c.id, len(c.cpus), c.small_page_mb,
                       tuple(sorted(c.hugepages.items())))
                      for c in fleet_host.host.cells)
        if shape in shapes:
            continue
        shapes.add(shape)
        if len(shapes) > MAX_SHAPES:
            break
        try:
            plan = vnuma.plan(flavor.vcpus, flavor.ram,
                              fleet_host.host.cells)
        except vnuma.PlanError:
            continue
        if plan.extra_specs and plan.extra_specs not in plans:
            plans.append(plan.extra_specs)
    # Symmetric plans (hw:numa_nodes alone) suit more host shapes.
    plans.sort(key=len)
    # Hosts placement or a stock filter refused the flavor would refuse it
    # with more extra specs too: NUMATopologyFilter and the guard can only
    # refuse more.
    passed = {name for name, verdict in stock_outcome.verdicts.items()
              if verdict.passes}
    for specs in plans[:MAX_PLANS]:
        extra = dict(flavor.extra_specs)
        extra.update(specs)
        try:
            planned = requests.Request(flavor._replace(extra_specs=extra),
                                       request.index)
        except InputError:
            continue
        _, outcome = scheduler.place(runs, hosts, planned, capture,
                                     pack=False, only=passed)
        if outcome.host is not None:
            return specs, outcome.host
    return (plans[0], None) if plans else (None, None)


def _entry(request, names, stock, guard, specs, picked):
    """One flavor in the ``-f json`` shape."""
    flavor = request.flavor
    hosts = []
    for name in names:
        s, g = stock.verdicts[name], guard.verdicts[name]
        rejected = g if not g.passes else (None if s.passes else s)
        hosts.append({
            'name': name,
            'stock_passes': s.passes,
            'guard_passes': g.passes,
            'rejected_by': rejected.rejected_by if rejected else None,
            'reason': rejected.reason if rejected else None,
            'weight': _weight(g.weight),
            'rank': g.rank,
            'stock_weight': _weight(s.weight),
            'stock_rank': s.rank,
        })
    return {
        'flavor': {
            'name': flavor.name, 'vcpus': flavor.vcpus, 'ram': flavor.ram,
            'extra_specs': dict(flavor.extra_specs),
            'ports': [_port(port) for port in flavor.ports],
            'numa_topology': request.has_topology,
        },
        'stock': {'host': stock.host, 'capacity': stock.capacity},
        'guard': {'host': guard.host, 'capacity': guard.capacity},
        'suggestion': specs,
        'suggestion_host': picked,
        'hosts': hosts,
    }


def _weight(value):
    return None if value is None else round(value, 6)


def _port(port):
    if port.physnet is None:
        return 'tunnel'
    return port.physnet + (':direct' if port.direct else '')
