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
from nova_numa_guard import sources

LOG = log.getLogger(__name__)
CONF = nova.conf.CONF
conf.register_opts(CONF)

# Verdict kind: no trusted live data, [numa_guard] on_missing_live_data=reject
NO_LIVE_DATA = 'no_live_data'
# Guest cell page sizes that mean small pages: unset, "small"
# (nova.virt.hardware.MEMPAGES_SMALL) or 4 KiB.
_SMALL_PAGE_SIZES = (None, -1, 4)


class NUMACellFitFilter(filters.BaseHostFilter):
    """Keep guests without a NUMA topology inside one host NUMA cell.

    Requests with a NUMA topology (``hw:numa_nodes``, pinning, page sizes) and
    hosts with no NUMA topology or a single cell pass: they are
    ``NUMATopologyFilter``'s business or have nothing to span. A request
    without a NUMA topology passes a multi-cell host only when some cell with
    shared CPUs and small-page memory

    * is big enough for the guest: memory less the per-node reserve, and
      shared CPUs when ``[numa_guard] cpu_fit`` is set, and
    * has the memory free now: live per-node data when the memory source has
      fresh data for the host, else nova's accounting with an estimate of what
      guests without a NUMA topology use (``[numa_guard]
      non_numa_memory_estimate``), after the earlier instances of the same
      multi-create request.

    With a live memory source (``[numa_guard] memory_source`` ``cache`` or
    ``file``), requests with a NUMA topology on small pages also need, per
    guest cell, a distinct host cell with that much live available memory;
    hosts without trusted live data are handled per ``[numa_guard]
    on_missing_live_data``.

    Bad or missing data never raises: it is logged and the host passes.
    """

    RUN_ON_REBUILD = False

    def __init__(self):
        super().__init__()
        opts = CONF.numa_guard
        # Read everything once: a bad value stops the scheduler at start.
        self._reserve = opts.reserved_node_memory_mb
        self._cpu_fit = opts.cpu_fit
        self._dry_run = opts.dry_run
        self._estimate = opts.non_numa_memory_estimate
        self._on_missing = opts.on_missing_live_data
        self._source = sources.load(opts.memory_source)

    def host_passes(self, host_state, spec_obj):
        """Return True if a guest of ``spec_obj`` fits one cell of the host."""
        return bool(list(self.filter_all([host_state], spec_obj)))

    def filter_all(self, filter_obj_list, spec_obj):
        """Judge every host of the request with one batch of shared work."""
        if utils.request_is_rebuild(spec_obj):
            yield from filter_obj_list
            return
        if spec_obj.numa_topology is not None:
            yield from self._filter_numa(filter_obj_list, spec_obj)
            return
        host_states = list(filter_obj_list)
        memory_mb, vcpus = spec_obj.memory_mb, spec_obj.vcpus
        instance_uuid = spec_obj.instance_uuid
        live = self._live_free(host_states)
        debug = LOG.isEnabledFor(logging.DEBUG)
        # Only counts and the best rejection of each kind are kept: holding
        # every verdict would let thousands of objects survive into the
        # garbage collector's oldest generation on large requests.
        rejected = 0
        best = {}
        for host_state in host_states:
            verdict = self._judge(host_state, instance_uuid, memory_mb, vcpus,
                                  live)
            if verdict.passes:
                yield host_state
                continue
            rejected += 1
            kept = best.get(verdict.kind)
            if kept is None or (verdict.best_mb or 0) > (kept[1].best_mb or 0):
                best[verdict.kind] = (host_state, verdict)
            if debug:
                self._log_rejection(host_state, verdict, instance_uuid)
            if self._dry_run:
                yield host_state
        if rejected and (self._dry_run or rejected == len(host_states)):
            try:
                self._log_summary(instance_uuid, memory_mb, vcpus,
                                  len(host_states), rejected, best)
            except Exception:
                LOG.warning("NUMACellFitFilter could not summarise the "
                            "request", instance_uuid=instance_uuid,
                            exc_info=True)

    def _log_rejection(self, host_state, verdict, instance_uuid):
        LOG.debug("%(host)s, %(node)s fails NUMA cell fit%(dry)s: %(reason)s",
                  {'host': host_state.host, 'node': host_state.nodename,
                   'dry': ' (dry run, not rejected)' if self._dry_run else '',
                   'reason': verdict},
                  instance_uuid=instance_uuid)

    @staticmethod
    def _cannot_judge(host_state, instance_uuid):
        LOG.warning("NUMACellFitFilter could not judge %(host)s, %(node)s; "
                    "letting it pass",
                    {'host': host_state.host, 'node': host_state.nodename},
                    instance_uuid=instance_uuid, exc_info=True)
        return fit.PASS

    def _live_free(self, host_states):
        try:
            return self._source.live_free_mb(
                [hs.host for hs in host_states])
        except Exception:
            LOG.warning("NUMACellFitFilter: memory source %s failed; judging "
                        "hosts on accounted memory for this request",
                        type(self._source).__name__, exc_info=True)
            return {}

    def _judge(self, host_state, instance_uuid, memory_mb, vcpus, live):
        try:
            view = host_view.get(host_state)
            host = view.host
            placed = 0
            if memory_mb > 0:
                placed = int(round(view.placed_mb(host_state) / memory_mb))
            host, fallback = self._with_live(host, live.get(host.name), live)
            if fallback is not None:
                return fallback
            return fit.judge(host, memory_mb, vcpus, reserve=self._reserve,
                             cpu_fit=self._cpu_fit, estimate=self._estimate,
                             placed=placed)
        except Exception:
            return self._cannot_judge(host_state, instance_uuid)

    def _with_live(self, host, per_node, live):
        """The host with its live figures, and the verdict without them.

        :returns: ``(host, None)`` to judge the host (with live data, or on
            accounted data), or ``(host, verdict)`` when
            ``on_missing_live_data`` decides for a host without trusted data.
        """
        if per_node:
            host = host.with_live_free(per_node)
        return host, self._without_live_data(live, host, per_node)

    def _without_live_data(self, live, host, per_node):
        """Apply ``on_missing_live_data`` to a host without trusted data.

        :returns: None to judge the host as it is (live, or accounted), else
            the verdict: PASS, or a rejection naming why.
        """
        if per_node:
            if not host.cells or host.live_free is not None:
                return None
            reason = 'live data has nodes %s, nova has cells %s' % (
                sorted(per_node), [c.id for c in host.cells])
        else:
            reason = getattr(live, 'missing', {}).get(host.name)
            if reason is None:
                return None
        if self._on_missing == 'accounted':
            return None
        if self._on_missing == 'pass':
            return fit.PASS
        return fit.Verdict(False, NO_LIVE_DATA, None, None, lambda: (
            'no trusted live memory data (%s) and [numa_guard] '
            'on_missing_live_data = reject' % reason))

    def _filter_numa(self, host_states, spec_obj):
        """Live check of NUMA guests on small pages; others pass.

        Nova binds their memory strictly per cell but accounts only NUMA
        guests there; with live data each guest cell needs a distinct host
        cell with that much available memory. Hugepage guests are left to
        nova's page accounting.
        """
        cells = spec_obj.numa_topology.cells
        if not self._source.live or not all(map(_on_small_pages, cells)):
            yield from host_states
            return
        host_states = list(host_states)
        need = [cell.memory for cell in cells]
        instance_uuid = spec_obj.instance_uuid
        live = self._live_free(host_states)
        passed = 0
        for host_state in host_states:
            verdict = self._judge_numa(host_state, instance_uuid, need, live)
            if verdict.passes:
                passed += 1
                yield host_state
                continue
            self._log_rejection(host_state, verdict, instance_uuid)
            if self._dry_run:
                yield host_state
        if host_states and not passed:
            LOG.info("NUMACellFitFilter %(what)s all %(count)d hosts: the "
                     "NUMA guest needs %(need)s MB of live available memory "
                     "on %(cells)d distinct cells; free memory on a host",
                     {'what': 'would have removed' if self._dry_run
                      else 'removed', 'count': len(host_states),
                      'need': '+'.join('%d' % mb for mb in need),
                      'cells': len(need)},
                     instance_uuid=instance_uuid)

    def _judge_numa(self, host_state, instance_uuid, need, live):
        try:
            view = host_view.get(host_state)
            host = view.host
            host, fallback = self._with_live(
                host, getattr(live, 'available', {}).get(host.name), live)
            if fallback is not None:
                return fallback
            placed = None
            if view.placed_mb(host_state) > 0:
                placed = _numa_placed_mb(view, host_state)
            return fit.judge_numa_live(host, need, self._reserve, placed)
        except Exception:
            return self._cannot_judge(host_state, instance_uuid)

    def _log_summary(self, instance_uuid, memory_mb, vcpus, total, rejected,
                     best):
        """One INFO line for a request that lost every host (or would have).

        :param best: ``{verdict kind: (host_state, verdict)}``, the rejection
            of each kind with the largest ``best_mb``.
        """
        need = '%d MB and %d vCPUs' % (memory_mb, vcpus)
        if fit.USAGE in best:
            host_state, verdict = best[fit.USAGE]
            why = ('largest free memory of a cell that is big enough is '
                   '%d MB (%s); free memory on a host or give the flavor '
                   'a vNUMA topology' % (verdict.best_mb, host_state.host))
        elif fit.STATIC in best:
            host_state, verdict = best[fit.STATIC]
            why = ('largest cell on %s is %d MB with %d CPUs (%s); '
                   'give the flavor a vNUMA topology: nova-numa-guard '
                   'flavor-specs --vcpus %d --ram %d --cells %s' % (
                       'any host' if rejected == total else 'those hosts',
                       verdict.best_mb, verdict.best_cpus, host_state.host,
                       vcpus, memory_mb,
                       _cells_arg(host_state, self._reserve)))
        else:
            why = ('no host has trusted live memory data and [numa_guard] '
                   'on_missing_live_data = reject; check '
                   'nova-numa-guard-agent and the memory source')
        if self._dry_run:
            LOG.info("NUMACellFitFilter (dry run) would have removed "
                     "%(count)d of %(total)d hosts: the flavor needs "
                     "%(need)s in one NUMA cell; %(why)s",
                     {'count': rejected, 'total': total,
                      'need': need, 'why': why},
                     instance_uuid=instance_uuid)
        else:
            LOG.info("NUMACellFitFilter removed all %(count)d hosts: the "
                     "flavor needs %(need)s in one NUMA cell; %(why)s",
                     {'count': rejected, 'need': need, 'why': why},
                     instance_uuid=instance_uuid)


def _on_small_pages(guest_cell):
    """Whether a guest cell uses small pages (no ``hw:mem_page_size``)."""
    if not guest_cell.obj_attr_is_set('pagesize'):
        return True
    return guest_cell.pagesize in _SMALL_PAGE_SIZES


def _numa_placed_mb(view, host_state):
    """``{cell: MB}`` nova placed on the cells since the view was built.

    For NUMA guests nova updates the cells of the HostState as it places the
    instances of a multi-create.
    """
    numa = host_state.numa_topology
    if numa is None:
        return {}
    before = {cell.id: cell.numa_used_mb for cell in view.host.cells}
    return {cell.id: cell.memory_usage - before[cell.id]
            for cell in numa.cells
            if cell.memory_usage > before.get(cell.id, cell.memory_usage)}


def _cells_arg(host_state, reserve):
    """The host's cells as ``--cells CPUS:MB,...`` for the vNUMA helper.

    MB is what the filter lets a guest use: small pages less the reserve.
    """
    cells = host_view.get(host_state).host.cells
    return ','.join('%d:%d' % (len(c.cpus), fit.capacity_mb(c, reserve))
                    for c in cells if c.holds_guests)
