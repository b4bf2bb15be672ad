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

from oslo_log import log as logging

import nova.conf
from nova.scheduler import filters
from nova.scheduler import utils

from nova_numa_guard import conf
from nova_numa_guard import fit
from nova_numa_guard import host_view
from nova_numa_guard import sources

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
conf.register_opts(CONF)


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
        self._source = sources.load(opts.memory_source)

    def host_passes(self, host_state, spec_obj):
        """Return True if a guest of ``spec_obj`` fits one cell of the host."""
        return any(True for _ in self.filter_all([host_state], spec_obj))

    def filter_all(self, filter_obj_list, spec_obj):
        """Judge every host of the request with one batch of shared work."""
        if (spec_obj.numa_topology is not None or
                utils.request_is_rebuild(spec_obj)):
            yield from filter_obj_list
            return
        host_states = list(filter_obj_list)
        memory_mb, vcpus = spec_obj.memory_mb, spec_obj.vcpus
        live = self._live_free(host_states)
        rejected = []
        for host_state in host_states:
            verdict = self._judge(host_state, spec_obj, memory_mb, vcpus,
                                  live)
            if verdict.passes:
                yield host_state
                continue
            rejected.append((host_state, verdict))
            LOG.debug("%(host)s, %(node)s fails NUMA cell fit%(dry)s: "
                      "%(reason)s",
                      {'host': host_state.host, 'node': host_state.nodename,
                       'dry': ' (dry run, not rejected)' if self._dry_run
                       else '',
                       'reason': verdict.reason},
                      instance_uuid=spec_obj.instance_uuid)
            if self._dry_run:
                yield host_state
        if rejected and (self._dry_run or
                         len(rejected) == len(host_states)):
            self._log_summary(spec_obj, memory_mb, vcpus, host_states,
                              rejected)

    def _live_free(self, host_states):
        try:
            return self._source.live_free_mb(
                [hs.host for hs in host_states])
        except Exception:
            LOG.warning("NUMACellFitFilter: memory source %s failed; judging "
                        "hosts on accounted memory for this request",
                        type(self._source).__name__, exc_info=True)
            return {}

    def _judge(self, host_state, spec_obj, memory_mb, vcpus, live):
        try:
            view = host_view.get(host_state)
            host = view.host
            placed = 0
            if memory_mb > 0:
                placed = int(round(view.placed_mb(host_state) / memory_mb))
            per_node = live.get(host.name)
            if per_node:
                host = host.with_live_free(per_node)
            return fit.judge(host, memory_mb, vcpus, reserve=self._reserve,
                             cpu_fit=self._cpu_fit, estimate=self._estimate,
                             placed=placed)
        except Exception:
            LOG.warning("NUMACellFitFilter could not judge %(host)s, "
                        "%(node)s; letting it pass",
                        {'host': host_state.host,
                         'node': host_state.nodename},
                        instance_uuid=spec_obj.instance_uuid, exc_info=True)
            return fit.PASS

    def _log_summary(self, spec_obj, memory_mb, vcpus, host_states,
                     rejected):
        static = [(v, hs) for hs, v in rejected if v.kind == fit.STATIC]
        usage = [(v, hs) for hs, v in rejected if v.kind == fit.USAGE]
        need = '%d MB and %d vCPUs' % (memory_mb, vcpus)
        if usage:
            verdict, host_state = max(usage, key=_best_mb)
            why = ('largest free memory of a cell that is big enough is '
                   '%d MB (%s); free memory on a host or give the flavor '
                   'a vNUMA topology' % (verdict.best_mb, host_state.host))
        else:
            verdict, host_state = max(static, key=_best_mb)
            why = ('largest cell on any host is %d MB with %d CPUs (%s); '
                   'give the flavor a vNUMA topology: nova-numa-guard '
                   'flavor-specs --vcpus %d --ram %d --cells %s' % (
                       verdict.best_mb, verdict.best_cpus, host_state.host,
                       vcpus, memory_mb, _cells_arg(host_state)))
        if self._dry_run:
            LOG.info("NUMACellFitFilter (dry run) would have removed "
                     "%(count)d of %(total)d hosts: the flavor needs "
                     "%(need)s in one NUMA cell; %(why)s",
                     {'count': len(rejected), 'total': len(host_states),
                      'need': need, 'why': why},
                     instance_uuid=spec_obj.instance_uuid)
        else:
            LOG.info("NUMACellFitFilter removed all %(count)d hosts: the "
                     "flavor needs %(need)s in one NUMA cell; %(why)s",
                     {'count': len(rejected), 'need': need, 'why': why},
                     instance_uuid=spec_obj.instance_uuid)


def _best_mb(item):
    return item[0].best_mb


def _cells_arg(host_state):
    """The host's cells as ``--cells CPUS:MB,...`` for the vNUMA helper."""
    cells = host_view.get(host_state).host.cells
    return ','.join('%d:%d' % (len(c.cpus), c.small_page_mb)
                    for c in cells if c.holds_guests)

