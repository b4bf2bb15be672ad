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

"""nova's filter and weight handlers over the fleet's hosts.

:class:`Runs` holds the two scheduler configurations, stock and guard:
filter and weigher objects as ``HostManager`` makes them, run through
nova's own ``HostFilterHandler.get_filtered_objects`` and
``HostWeightHandler.get_weighed_objects``. :func:`place` runs one flavor the
way nova-scheduler runs a request: placement (emulated) offers the hosts
with room, the filters judge them, the weighers rank those that pass, and
the best one is picked. The guarded run's filters are the stock filters
followed by the guard's, and nova's handler applies filters one after
another: the hosts the stock filters pass, on which the stock run stops,
go on through the guard's filters in a second handler call. Which filter
removed each host, and why, comes from the filters themselves: each runs
behind a recorder that notes the hosts it removed and the DEBUG line it
logged for each.

Capacity packs the flavor one guest after another, as nova places the
instances of one multi-create request: each placement is claimed in
placement and consumed with nova's own ``HostState.consume_from_request``
(:func:`consume`), and the next instance is filtered on the changed hosts,
with the filters nova runs for instances after the first. Every filter
judges a host on the host alone and a placement changes only the chosen
host, so how many guests each host takes does not depend on the order the
weighers would choose: the hosts are packed a round at a time (every host
that passes takes one more guest), and the weighers are not run. Both runs
pack the same hosts, which change the same way until a filter stops one of
them.

Some of nova's filters pass every host for a request without what they
check, whatever the host: ``NUMATopologyFilter`` a request without a NUMA
topology, ``PciPassthroughFilter`` one without PCI devices, the server group
filters one without a server group (every simulated request). They are not
run for such requests: the verdicts are the same, and
``NUMATopologyFilter`` copies the whole request for every host before it
looks at it (0.6 ms per host, the largest cost of a simulation). When no
filter of the stock run is left to run for later instances (filters nova
runs once per request run for the first only), placement alone decides how
many more guests a host takes, and the stock count of a host the guard
stopped is completed from placement's inventory without consuming the
guests one by one.
"""

import copy
import logging
import re
import time

from nova.scheduler import filters as nova_filters
from nova.scheduler import host_manager
from nova.scheduler import weights as nova_weights

from nova_numa_guard import nova_hosts

LOG = logging.getLogger(__name__)

# What the table and JSON call a host placement does not offer.
PLACEMENT = 'placement'
# A host takes at most this many guests of one flavor (a bound on the
# packing rounds; placement's inventories end them long before).
MAX_ROUNDS = 100000
# A service record younger than this is reused for a fresh HostState;
# ComputeFilter finds a service down after [DEFAULT] service_down_time
# (60 s).
SERVICE_REFRESH = 10.0

_LOGGERS = ('nova', 'nova_numa_guard')
# The loggers of the filters' per-host DEBUG lines.
_FILTER_LOGGERS = ('nova.scheduler.filters', 'nova_numa_guard.scheduler')
_FAILS = re.compile(r'fails [^:]{1,60}: (.+)$', re.DOTALL)


class Verdict:
    """What became of one host in one run.

    :ivar rejected_by: ``placement`` or the filter that removed the host;
        None when it passed.
    :ivar reason: why, as the filter logged it; None when it passed or the
        filter said nothing.
    :ivar weight: the host's weight, when it passed.
    :ivar rank: its place in the weighed list (1 is picked), when it passed.
    """

    __slots__ = ('rejected_by', 'reason', 'weight', 'rank')

    def __init__(self, rejected_by=None, reason=None, weight=None,
                 rank=None):
        self.rejected_by = rejected_by
        self.reason = reason
        self.weight = weight
        self.rank = rank

    @property
    def passes(self):
        return self.rejected_by is None


class Outcome:
    """One flavor in one run.

    :ivar host: the host picked, or None (NoValidHost).
    :ivar verdicts: ``{host name: Verdict}`` of every host of the fleet.
    :ivar capacity: guests of the flavor the fleet takes, or None when not
        packed.
    """

    def __init__(self, host, verdicts, capacity=None):
        self.host = host
        self.verdicts = verdicts
        self.capacity = capacity


class Runs:
    """The stock and the guarded scheduler configuration.

    :param stock_filters: filter objects of the stock run, in
        ``enabled_filters`` order.
    :param guard_filters: the filter objects the guarded run adds after
        them.
    :param stock_weighers: weigher objects of the stock run.
    :param guard_weighers: weigher objects of the guarded run.
    """

    def __init__(self, stock_filters, guard_filters, stock_weighers,
                 guard_weighers):
        self.stock_filters = stock_filters
        self.guard_filters = guard_filters
        self.stock_weighers = stock_weighers
        self.guard_weighers = guard_weighers
        self.filter_handler = nova_filters.HostFilterHandler()
        self.weight_handler = nova_weights.HostWeightHandler()

    def filter(self, filters, states, spec, index, capture=None):
        """The hosts that pass ``filters``, through nova's filter handler.

        :param capture: a :class:`Capture` to record which filter removed
            each host and why (in ``capture.verdicts``); None to just filter.
        """
        if not states:
            return []
        if capture is not None:
            filters = [_recorder(f, capture) for f in filters]
        return self.filter_handler.get_filtered_objects(
            filters, states, spec, index) or []

    def weigh(self, weighers, states, spec):
        """``[(state, weight)]``, best first, through nova's weight handler.
        """
        if not states:
            return []
        weighed = self.weight_handler.get_weighed_objects(
            weighers, states, spec)
        return [(w.obj, w.weight) for w in weighed]


def filter_classes():
    """``{name: filter class}`` of nova's filters and the plugin's."""
    handler = nova_filters.HostFilterHandler()
    return {cls.__name__: cls for cls in handler.get_matching_classes(
        ['nova.scheduler.filters.all_filters',
         'nova_numa_guard.scheduler.filters.all_filters'])}


class NovaFleet:
    """The fleet as nova sees it, built once and copied for every request.

    A ``HostState`` and a placement resource provider per host.

    :param fleet_hosts: :class:`nova_numa_guard.inputs.fleet.FleetHost`.
    :param providers: the placement :class:`Provider` of each host.
    """

    def __init__(self, fleet_hosts, providers):
        self.names = [fh.host.name for fh in fleet_hosts]
        self._templates = [nova_hosts.fleet_host_state(fh)
                           for fh in fleet_hosts]
        self._providers = list(providers)
        self._services = None
        self._services_at = None

    def fresh(self, only=None):
        """``[(HostState, Provider)]`` as nova would build them now.

        ``HostManager`` builds fresh ``HostState`` objects for every
        request; a copy of one built from the same record is the same. The
        copy gets its own per-request fields, PCI pools (nova's consume
        changes them in place) and a service record heard from recently.
        ``consume_from_request`` replaces the NUMA topology, never changes
        it, so it is shared.

        :param only: names of the hosts to build; all when None.
        """
        now = time.monotonic()
        if (self._services is None or
                now - self._services_at > SERVICE_REFRESH):
            self._services = [host_manager.ReadOnlyDict(
                nova_hosts.service(t.host)) for t in self._templates]
            self._services_at = now
        pairs = []
        for template, provider, service in zip(
                self._templates, self._providers, self._services):
            if only is not None and template.host not in only:
                continue
            state = copy.copy(template)
            state.limits = {}
            state.allocation_candidates = nova_hosts.allocation_candidates(
                template)
            if template.pci_stats.pools:
                # The pools only: the stats also hold the host's NUMA
                # topology, which nothing changes and is slow to copy.
                state.pci_stats = copy.copy(template.pci_stats)
                state.pci_stats.pools = copy.deepcopy(
                    template.pci_stats.pools)
            state.service = service
            pairs.append((state, provider.copy()))
        return pairs


def place(runs, fleet, request, capture, pack=True, only=None,
          every_filter=False):
    """Run one flavor through both runs on a fresh fleet.

    :param request: :class:`nova_numa_guard.simulation.requests.Request`.
    :param capture: :class:`Capture` (its logging set up by entering it).
    :param pack: also count how many guests of the flavor the fleet takes.
    :param only: names of the hosts to run it on; all when None.
    :param every_filter: run the filters that pass every host for this
        request too (the tests check that nothing changes).
    :returns: ``(stock Outcome, guard Outcome)``.
    """
    pairs = fleet.fresh(only)
    providers = {state.host: provider for state, provider in pairs}
    resources = request.resources
    spec = request.spec()
    stock_filters = [f for f in runs.stock_filters
                     if every_filter or _judges(f, spec)]
    stock = {}
    offered = []
    for state, provider in pairs:
        shortfall = provider.shortfall(resources)
        if shortfall is None:
            offered.append(state)
        else:
            stock[state.host] = Verdict(PLACEMENT, shortfall)
    with capture.filters_debug():
        capture.verdicts = stock
        passed = runs.filter(stock_filters, offered, spec, 0, capture)
        capture.verdicts = guard = dict(stock)
        guarded = runs.filter(runs.guard_filters, passed, spec, 0, capture)
    outcomes = []
    for verdicts, states, weighers in ((stock, passed, runs.stock_weighers),
                                       (guard, guarded,
                                        runs.guard_weighers)):
        weighed = runs.weigh(weighers, states, spec)
        for rank, (state, weight) in enumerate(weighed, 1):
            verdicts[state.host] = Verdict(weight=weight, rank=rank)
        outcomes.append(Outcome(weighed[0][0].host if weighed else None,
                                verdicts))
    if pack:
        outcomes[0].capacity, outcomes[1].capacity = _pack(
            runs, stock_filters, passed, guarded, providers, spec,
            resources)
    return tuple(outcomes)


def _pack(runs, stock_filters, passed, guarded, providers, spec, resources):
    """Guests the hosts take in each run (see the module doc).

    :param stock_filters: the stock filters run for this request.
    :param passed: the hosts the stock run passed for the first guest.
    :param guarded: those the guarded run passed.
    :returns: ``(stock count, guard count)``.
    """
    stock_later = any(f.run_filter_for_index(1) for f in stock_filters)
    stock_count, guard_count = len(passed), len(guarded)
    alive = {id(state) for state in guarded}
    hosts = passed
    index = 0
    while hosts:
        for state in hosts:
            consume(state, spec)
            providers[state.host].claim(resources)
        index += 1
        hosts = [state for state in hosts
                 if providers[state.host].shortfall(resources) is None]
        if not stock_later:
            # Placement alone decides the stock run from here on.
            for state in hosts:
                if id(state) not in alive:
                    stock_count += providers[state.host].room(resources)
            hosts = [state for state in hosts if id(state) in alive]
        if index >= MAX_ROUNDS:
            break
        hosts = runs.filter(stock_filters, hosts, spec, index)
        guarded = runs.filter(runs.guard_filters, [
            state for state in hosts if id(state) in alive], spec, index)
        alive = {id(state) for state in guarded}
        stock_count += len(hosts)
        guard_count += len(guarded)
    return stock_count, guard_count


def consume(state, spec):
    """nova's ``HostState.consume_from_request``, without its lock.

    ``consume_from_request`` runs ``_locked_consume_from_request`` under a
    per-host lock (built anew for every call, nine tenths of its cost) and
    then stamps the host's update time; the simulation runs in one thread
    and reads no update time. Like nova, a failure is logged and the guest
    counts as placed (nova's claim in placement has been made).
    """
    locked = getattr(state, '_locked_consume_from_request', None)
    if locked is None:
        state.consume_from_request(spec)
        return
    try:
        locked(spec)
    except Exception as e:
        LOG.warning("Selected host: %(host)s failed to consume from "
                    "instance. Error: %(error)s",
                    {'host': state.host, 'error': e})


def _judges(filt, spec):
    """Whether a filter may reject a host for this request.

    Some of nova's filters pass every host for a request without what they
    check: a NUMA topology, PCI devices or a server group.
    """
    needs = _PASS_WITHOUT.get(type(filt).__name__)
    return needs is None or needs(spec)


def _pci_requests(spec):
    return bool(spec.pci_requests and spec.pci_requests.requests)


def _server_group(spec):
    return bool(spec.instance_group)


_PASS_WITHOUT = {
    'NUMATopologyFilter': lambda spec: spec.numa_topology is not None,
    'PciPassthroughFilter': _pci_requests,
    'ServerGroupAffinityFilter': _server_group,
    'ServerGroupAntiAffinityFilter': _server_group,
}


class Capture(logging.Handler):
    """Collects the log records of nova and the plugin during a simulation.

    :ivar verdicts: ``{host name: Verdict}`` the recorders fill in.
    :ivar warnings: one-line warnings logged, in order, without repeats.
    """

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self.warnings = []
        self.verdicts = {}
        self._saved = None

    def emit(self, record):
        if record.levelno >= logging.WARNING:
            try:
                text = ' '.join(record.getMessage().split())
            except Exception:
                text = str(record.msg)
            if text not in self.warnings:
                self.warnings.append(text)
        else:
            self.records.append(record)

    def __enter__(self):
        """Route nova's and the plugin's logs here, WARNING and up only."""
        self._saved = []
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level, logger.propagate))
            logger.addHandler(self)
            logger.setLevel(logging.WARNING)
            logger.propagate = False
        return self

    def __exit__(self, *exc):
        for logger, level, propagate in self._saved:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate

    def filters_debug(self):
        """Let the filters' DEBUG lines through, for one filter pass."""
        return _Debug(self)


class _Debug:
    """The filters' loggers at DEBUG, then as they were."""

    def __init__(self, capture):
        self._capture = capture
        self._loggers = [logging.getLogger(name) for name in _FILTER_LOGGERS]
        self._levels = None

    def __enter__(self):
        self._levels = [logger.level for logger in self._loggers]
        for logger in self._loggers:
            logger.setLevel(logging.DEBUG)

    def __exit__(self, *exc):
        for logger, level in zip(self._loggers, self._levels):
            logger.setLevel(level)
        del self._capture.records[:]


class _Recorder:
    """Runs a filter and notes which hosts it removes, and why.

    nova's handler calls it like the filter; its class has the filter's
    name, which the handler logs.
    """

    def __init__(self, filt, capture):
        self._filter = filt
        self._capture = capture

    def run_filter_for_index(self, index):
        return self._filter.run_filter_for_index(index)

    def filter_all(self, states, spec):
        states = list(states)
        records = self._capture.records
        start = len(records)
        kept = self._filter.filter_all(states, spec)
        kept = None if kept is None else list(kept)
        logged = records[start:]
        del records[start:]
        passed = {id(state) for state in kept or ()}
        name = type(self).__name__
        for state in states:
            if id(state) not in passed:
                self._capture.verdicts[state.host] = Verdict(
                    name, _reason(logged, state))
        return kept


_RECORDERS = {}


def _recorder(filt, capture):
    """A :class:`_Recorder` of ``filt``, of a class named as the filter's."""
    name = type(filt).__name__
    cls = _RECORDERS.get(name)
    if cls is None:
        cls = _RECORDERS[name] = type(name, (_Recorder,), {})
    return cls(filt, capture)


def _reason(records, state):
    """What the last record about ``state`` says, without the host's name.

    Filters log ``"<host>, <node> fails ...: why"`` or ``"<host state>
    ..."``, with the host state or its name among the arguments.
    """
    for record in reversed(records):
        args = record.args
        values = args.values() if isinstance(args, dict) else (args or ())
        if not any(value is state or (isinstance(value, str) and
                                      value == state.host)
                   for value in values):
            continue
        try:
            text = ' '.join(record.getMessage().split())
        except Exception:
            continue
        for prefix in (repr(state), '%s, %s' % (state.host, state.nodename),
                       state.host):
            if text.startswith(prefix):
                text = text[len(prefix):].lstrip(' ,:')
                break
        match = _FAILS.match(text)
        return match.group(1) if match else text
    return None
