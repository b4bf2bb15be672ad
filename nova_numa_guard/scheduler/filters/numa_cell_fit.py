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

import logging

from oslo_log import log

import nova.conf
from nova.scheduler import filters
from nova.scheduler import utils

from nova_numa_guard import conf
from nova_numa_guard import fit
from nova_numa_guard import host_view
from nova_numa_guard import live
from nova_numa_guard.live import source
from nova_numa_guard import request_view
from nova_numa_guard import topology
from nova_numa_guard import vnuma

LOG = log.getLogger(__name__)
CONF = nova.conf.CONF
conf.register_opts(CONF)

# Verdict kind: no trusted live data, [numa_guard] on_missing_live_data=reject
NO_LIVE_DATA = 'no_live_data'


class NUMACellFitFilter(filters.BaseHostFilter):
    """Keep guests inside the host NUMA cells that can hold their memory.

    A request without a NUMA topology passes a host with two or more cells
    only when some cell with shared CPUs and small-page memory

    * is big enough for the guest: memory less the per-node reserve, and
      shared CPUs when ``[numa_guard] cpu_fit`` is set, and
    * has the memory free now, after the earlier instances of the same
      multi-create request.

    A request with a NUMA topology on small pages (``hw:numa_nodes`` or
    pinning without ``hw:mem_page_size``) passes when every host cell nova
    binds it to (nova's own ``numa_fit_instance_to_host``, per allocation
    candidate, as ``NUMATopologyFilter`` calls it) has the guest cell's
    memory free: nova's per-cell accounting ignores guests without a NUMA
    topology. With ``hw:mem_page_size=any`` the same holds for the cells
    nova backs with small pages. Hugepage-backed requests are left to
    nova's page accounting.

    Free memory is estimated from the live data of ``[numa_guard]
    memory_source`` when it has trusted data for the host, else from nova's
    accounting (``[numa_guard] non_numa_memory_estimate``); hosts without
    trusted live data are handled per ``[numa_guard] on_missing_live_data``.
    Hosts with no NUMA topology or a single cell pass. Bad or missing data
    never raises: it is logged and the host passes.

    The live data fetched for a request is left on each host's view
    (``HostView.live_host``, ``agent_physnets``) for
    ``NUMALocalityWeigher``, which fetches nothing itself.
    """

    RUN_ON_REBUILD = False

    def __init__(self, memory_source=None):
        """Read ``[numa_guard]`` and load the memory source.

        :param memory_source: a :class:`nova_numa_guard.live.source.
            MemorySource` to use instead of the one ``[numa_guard]
            memory_source`` names (the simulator's in-process live data),
            for this filter alone: the filter keeps what it derives from
            the source's payloads on them; nova itself passes nothing.
        """
        super().__init__()
        # Read everything once: a bad value stops the scheduler at start,
        # in one line that names the option.
        opts = conf.check_scheduler(CONF)
        self._reserve = opts['reserved_node_memory_mb']
        self._cpu_fit = opts['cpu_fit']
        self._dry_run = opts['dry_run']
        self._estimate = opts['non_numa_memory_estimate']
        self._on_missing = opts['on_missing_live_data']
        self._reserved_host_mb = CONF.reserved_host_memory_mb
        self._source = (live.load(opts['memory_source'])
                        if memory_source is None else memory_source)
        if self._source.live and not opts['payload_signing_key']:
            LOG.warning("NUMACellFitFilter trusts unsigned live memory data "
                        "(memory_source = %s): whoever can write to it "
                        "steers scheduling. Set [numa_guard] "
                        "payload_signing_key, and each agent's "
                        "[numa_guard_agent] host_signing_key.",
                        opts['memory_source'])
        self._throttle = source.Throttle()
        # Per-node reserves for nodes not seen missing on a host yet.
        self._reserve_unchecked = frozenset(self._reserve[1])

    def host_passes(self, host_state, spec_obj):
        """Return True if a guest of ``spec_obj`` fits the host's cells."""
        return bool(list(self.filter_all([host_state], spec_obj)))

    def filter_all(self, filter_obj_list, spec_obj):
        """Judge every host of the request with one batch of shared work."""
        if utils.request_is_rebuild(spec_obj):
            yield from filter_obj_list
            return
        try:
            request = request_view.of(spec_obj)
        except Exception:
            # A request nova built but we cannot read: nova's own filters
            # judge it; the guard does not stand in the way.
            LOG.warning("NUMACellFitFilter could not read the request; it "
                        "passes every host", exc_info=True)
            yield from filter_obj_list
            return
        if request is None:
            if self._source.live:
                filter_obj_list = list(filter_obj_list)
                self._attach_live(filter_obj_list, spec_obj)
            yield from filter_obj_list
            return
        host_states = list(filter_obj_list)
        host_view.begin_request()
        live_data = self._live_data(host_states)
        with_live = bool(live_data.hosts or live_data.missing)
        debug = LOG.isEnabledFor(logging.DEBUG)
        # Only counts and the best rejection of each kind are kept: holding
        # every verdict would let thousands of objects survive into the
        # garbage collector's oldest generation on large requests.
        rejected = 0
        best = {}
        for host_state in host_states:
            verdict = self._judge(host_state, request, live_data, with_live)
            if verdict.passes:
                yield host_state
                continue
            rejected += 1
            kept = best.get(verdict.kind)
            if kept is None or (verdict.best_mb or 0) > (kept[1].best_mb or 0):
                best[verdict.kind] = (host_state, verdict)
            if debug:
                self._log_rejection(host_state, verdict, request.uuid)
            if self._dry_run:
                yield host_state
        if rejected and (self._dry_run or rejected == len(host_states)):
            try:
                self._log_summary(request, len(host_states), rejected, best)
            except Exception:
                LOG.warning("NUMACellFitFilter could not summarise the "
                            "request", instance_uuid=request.uuid,
                            exc_info=True)

    def _live_data(self, host_states):
        try:
            return self._source.live_data([hs.host for hs in host_states])
        except Exception:
            LOG.warning("NUMACellFitFilter: memory source %s failed; judging "
                        "hosts on accounted memory for this request",
                        type(self._source).__name__, exc_info=True)
            return source.LiveData()

    def _attach_live(self, host_states, spec_obj):
        """Leave the hosts' live data on their views, for the weigher.

        For requests the filter passes untouched (hugepage guests) whose
        physnets' NIC locality ``NUMALocalityWeigher`` ranks from the
        agents' data; never raises.
        """
        try:
            if not _needs_nics(spec_obj):
                return
            live_data = self._live_data(host_states)
            if not live_data.hosts:
                return
            host_view.begin_request()
            for host_state in host_states:
                self._with_live(host_view.get(host_state), live_data)
        except Exception:
            LOG.warning("NUMACellFitFilter could not leave the live data of "
                        "the hosts for the weigher", exc_info=True)

    def _judge(self, host_state, request, live_data, with_live):
        try:
            view = host_view.get(host_state)
            if view.live_host is not None:
                view.live_host = view.agent_physnets = None
            host = view.host
            if self._reserve_unchecked:
                self._check_reserve_nodes(host)
            if with_live:
                host, verdict = self._with_live(view, live_data)
                if verdict is not None:
                    return verdict
            if request.cells is not None:
                return self._judge_bound(view, host, host_state, request)
            # Instances of this request nova placed on the host before.
            placed = 0
            placed_mb = view.placed_mb(host_state)
            if placed_mb and request.memory_mb > 0:
                placed = int(round(placed_mb / request.memory_mb))
            # Positional: keywords cost more than the rest of the call.
            return fit.judge(host, request.memory_mb, request.vcpus,
                             self._reserve, self._cpu_fit, self._estimate,
                             placed)
        except Exception:
            LOG.warning("NUMACellFitFilter could not judge %(host)s, "
                        "%(node)s; letting it pass",
                        {'host': host_state.host, 'node': host_state.nodename},
                        instance_uuid=request.uuid, exc_info=True)
            return fit.PASS

    def _check_reserve_nodes(self, host):
        """Warn once per reserved node id a host does not have."""
        # Replaced, never changed in place: other threads may be reading it.
        unchecked = self._reserve_unchecked
        absent = unchecked.difference(c.id for c in host.cells)
        if absent and host.cells:
            self._reserve_unchecked = unchecked - absent
            LOG.warning("[numa_guard] reserved_node_memory_mb names node(s) "
                        "%(nodes)s, which %(host)s does not have (its nodes: "
                        "%(cells)s); nothing is reserved there",
                        {'nodes': ', '.join(map(str, sorted(absent))),
                         'host': host.name,
                         'cells': ', '.join(str(c.id) for c in host.cells)})

    def _with_live(self, view, live_data):
        """The host with its live figures, or the verdict without them.

        :returns: ``(host, None)`` to judge the host (with live data, or on
            accounted data), or ``(host, verdict)`` when ``[numa_guard]
            on_missing_live_data`` decides for a host without trusted data.
        """
        host = view.host
        trusted = live_data.hosts.get(host.name)
        if trusted is not None:
            # An unchanged payload on a compute record that reads the same
            # (the host view's memo keeps its cells): the host an earlier
            # request derived from them, read as one object (other threads
            # may replace it). The payload is this filter's own source's,
            # so [DEFAULT] reserved_host_memory_mb is the same too.
            with_live = trusted.derived
            if (with_live is None or with_live.cells is not host.cells or
                    with_live.used_mb != host.used_mb or
                    with_live.ram_allocation_ratio !=
                    host.ram_allocation_ratio):
                with_live = host.with_live(host_view.live_memory(
                    view, trusted, self._reserved_host_mb))
                trusted.derived = with_live
            if with_live.live is not None:
                view.live_host = with_live
                view.agent_physnets = trusted.physnets
                return with_live, None
            reason = 'its nodes %s do not cover the cells %s nova has' % (
                sorted(trusted.free_mb), [c.id for c in host.cells])
            if self._throttle('uncovered'):
                LOG.warning("NUMACellFitFilter: ignoring the live data of "
                            "%(host)s: %(reason)s; handled per [numa_guard] "
                            "on_missing_live_data = %(policy)s. Next such "
                            "warning in %(interval)d s at the earliest.",
                            {'host': host.name, 'reason': reason,
                             'policy': self._on_missing,
                             'interval': self._throttle.interval})
        else:
            reason = live_data.missing.get(host.name)
            if reason is None:
                return host, None
        if self._on_missing == 'accounted':
            return host, None
        if self._on_missing == 'pass':
            return host, fit.PASS
        return host, fit.Verdict(False, NO_LIVE_DATA, None, None,
                                 _no_live_data, (reason,))

    def _judge_bound(self, view, host, host_state, request):
        placed = None
        if view.placed_mb(host_state) > 0:
            placed = host_view.numa_placed_mb(view, host_state)
        free = fit.bound_free_mb(host, self._reserve, self._estimate, placed)
        verdict = fit.judge_bound(host, request.cells, free)
        if verdict is not None and (verdict.passes or not request.any_pages):
            return verdict
        # It depends on the cells nova picks: ask nova, per allocation
        # candidate, as NUMATopologyFilter does, and keep the candidates
        # whose cells have room.
        candidates = host_state.allocation_candidates or [None]
        good = []
        for candidate in candidates:
            verdict = fit.judge_cells(host, request.nova_cells(
                host_state, candidate), free)
            if verdict.passes:
                good.append(candidate)
        if not good:
            return verdict
        if (len(good) < len(candidates) and not self._dry_run and
                host_state.allocation_candidates):
            host_state.allocation_candidates = good
        return fit.PASS

    def _log_rejection(self, host_state, verdict, instance_uuid):
        LOG.debug("%(host)s, %(node)s fails NUMA cell fit%(dry)s: %(reason)s",
                  {'host': host_state.host, 'node': host_state.nodename,
                   'dry': ' (dry run, not rejected)' if self._dry_run else '',
                   'reason': verdict},
                  instance_uuid=instance_uuid)

    def _log_summary(self, request, total, rejected, best):
        """One INFO line for a request that lost every host (or would have).

        :param best: ``{verdict kind: (host_state, verdict)}``, the rejection
            of each kind with the largest ``best_mb``.
        """
        if not LOG.isEnabledFor(logging.INFO):
            return
        if fit.USAGE in best and request.cells is not None:
            host_state, verdict = best[fit.USAGE]
            why = ('the most free memory of a cell is %d MB (%s); free '
                   'memory on a host, or back the guest with hugepages '
                   '(hw:mem_page_size=large), which nova accounts per cell'
                   % (verdict.best_mb, host_state.host))
        elif fit.USAGE in best:
            host_state, verdict = best[fit.USAGE]
            why = ('the most free memory of a cell that is big enough is '
                   '%d MB (%s); free memory on a host or give the flavor '
                   'a vNUMA topology' % (verdict.best_mb, host_state.host))
        elif fit.STATIC in best:
            host_state, verdict = best[fit.STATIC]
            cells = _guest_cells(host_state, self._reserve)
            command = ('nova-numa-guard flavor-specs --vcpus %d --ram %d '
                       '--cells %s' % (request.vcpus, request.memory_mb,
                                       ','.join('%d:%d' % (
                                           len(c.cpus), c.memory_mb)
                                           for c in cells)))
            specs = _planned(request, cells)
            why = ('largest cell on %s is %d MB with %d CPUs (%s); '
                   'give the flavor a vNUMA topology: %s' % (
                       'any host' if rejected == total else 'those hosts',
                       verdict.best_mb, verdict.best_cpus, host_state.host,
                       '%s (planned by %s)' % (specs, command) if specs
                       else command))
        else:
            why = ('no host has trusted live memory data and [numa_guard] '
                   'on_missing_live_data = reject; check '
                   'nova-numa-guard-agent and the memory source')
        if self._dry_run:
            LOG.info("NUMACellFitFilter (dry run) would have removed "
                     "%(count)d of %(total)s: %(need)s; %(why)s",
                     {'count': rejected, 'total': _hosts(total),
                      'need': request.need, 'why': why},
                     instance_uuid=request.uuid)
        else:
            LOG.info("NUMACellFitFilter removed %(hosts)s: %(need)s; "
                     "%(why)s",
                     {'hosts': 'the only host' if rejected == 1
                      else 'all %d hosts' % rejected,
                      'need': request.need, 'why': why},
                     instance_uuid=request.uuid)


def _no_live_data(reason):
    return ('no trusted live memory data (%s) and [numa_guard] '
            'on_missing_live_data = reject' % reason)


def _hosts(count):
    return '1 host' if count == 1 else '%d hosts' % count


def _needs_nics(spec_obj):
    """Whether the request asks for networks on physnets."""
    if 'network_metadata' not in spec_obj or not spec_obj.network_metadata:
        return False
    network = spec_obj.network_metadata
    return 'physnets' in network and bool(network.physnets)


def _planned(request, cells):
    """The specs the vNUMA helper plans for the request on ``cells``, or ''.

    Only on the summary path, once per request that lost every host: the
    planner checks its plan with nova (a few milliseconds). Never raises.
    """
    try:
        plan = vnuma.plan(request.vcpus, request.memory_mb, cells)
    except Exception:
        # PlanError: no layout holds the guest; anything else: a log line
        # must not fail the request.
        return ''
    return vnuma.specs_text(plan.extra_specs)


def _guest_cells(host_state, reserve):
    """The host's cells that hold guests, as ``--cells`` gives them.

    CPUs and the memory the filter lets a guest use (small pages less the
    reserve), numbered from 0 with CPUs numbered on from the previous cell,
    as the vNUMA helper reads ``--cells CPUS:MB,...``.
    """
    cells = []
    first_cpu = 0
    for cell in host_view.get(host_state).host.cells:
        if not cell.holds_guests:
            continue
        count = len(cell.cpus)
        cells.append(topology.Cell(
            len(cells), frozenset(range(first_cpu, first_cpu + count)),
            fit.capacity_mb(cell, reserve)))
        first_cpu += count
    return cells
