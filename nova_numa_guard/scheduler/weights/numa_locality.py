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

"""NUMA Locality Weigher. Weigh hosts by how local a guest's devices are.

The default is to favour hosts where a cell that can hold the guest also
holds its PCI devices and the NICs of its networks, and to keep guests that
need no device off the cells next to devices. If you prefer the opposite,
set the ``[numa_guard] locality_weight_multiplier`` option (by configuration
or aggregate metadata ``numa_locality_weight_multiplier``) to a negative
number.
"""

from oslo_log import log

import nova.conf
from nova.scheduler import utils
from nova.scheduler import weights

from nova_numa_guard import conf
from nova_numa_guard import device_view
from nova_numa_guard import fit
from nova_numa_guard import host_view
from nova_numa_guard.live import source
from nova_numa_guard import locality

LOG = log.getLogger(__name__)
CONF = nova.conf.CONF
conf.register_opts(CONF)

MULTIPLIER_KEY = 'numa_locality_weight_multiplier'


class NUMALocalityWeigher(weights.BaseHostWeigher):
    """Favour hosts where the guest's devices are local to its memory.

    Each host scores between 0 and 1 (see :mod:`nova_numa_guard.locality`).
    A guest that needs devices or NICs scores best on a host with a cell
    that can hold its memory and vCPUs (per guest cell for a NUMA guest)
    and holds all its devices and NICs; partial locality scores in between
    and devices only on cells that cannot hold the guest score low. A guest
    that needs none scores best on a host without device-local cells, then
    on one where it fits a cell without devices. Free memory per cell is
    ``NUMACellFitFilter``'s estimate: live when the filter found trusted
    live data for the host in this request, else accounted.

    Nothing is fetched per host, and pools, request and host are only read;
    a host that cannot be read weighs 0 and is logged, never raised.
    """

    def __init__(self):
        super().__init__()
        opts = conf.check_scheduler(CONF)
        self._reserve = opts['reserved_node_memory_mb']
        self._estimate = opts['non_numa_memory_estimate']
        self._cpu_fit = opts['cpu_fit']
        self._multiplier = opts['locality_weight_multiplier']
        self._throttle = source.Throttle()

    def weight_multiplier(self, host_state):
        """The multiplier, overridden per aggregate.

        ``[numa_guard] locality_weight_multiplier`` is read once per request
        (by :meth:`weigh_objects`, which nova calls first): reading an option
        costs more than weighing a host.
        """
        try:
            if not host_state.aggregates:
                return self._multiplier
            return utils.get_weight_multiplier(host_state, MULTIPLIER_KEY,
                                               self._multiplier)
        except Exception:
            return self._multiplier

    def weigh_objects(self, weighed_obj_list, weight_properties):
        """Weigh every host, reading the request once."""
        try:
            self._multiplier = CONF.numa_guard.locality_weight_multiplier
            request = device_view.Request(weight_properties, self._cpu_fit)
            host_states = [weighed.obj for weighed in weighed_obj_list]
            if host_states and not host_view.built(host_states[0]):
                # NUMACellFitFilter did not run: the views are built (and
                # memoised) here, so the request begins here.
                host_view.begin_request()
        except Exception:
            LOG.warning("NUMALocalityWeigher could not read the request; "
                        "weighing every host 0",
                        instance_uuid=_uuid(weight_properties),
                        exc_info=True)
            return [0.0] * len(weighed_obj_list)
        weigh = self._weigh
        return [weigh(host_state, request) for host_state in host_states]

    def _weigh_object(self, host_state, weight_properties):
        return self.weigh_objects([weights.WeighedHost(host_state, 0.0)],
                                  weight_properties)[0]

    def _weigh(self, host_state, request):
        try:
            view = host_view.get(host_state)
            host = view.live_host or view.host
            cells = host.cells
            agent_physnets = view.agent_physnets
            if request.needs:
                pools = ()
                if request.pci:
                    # As they are now: nova takes devices from them as it
                    # places the request's instances.
                    stats = host_state.pci_stats
                    pools = (stats.pools if stats is not None else None) or ()
                local, wanted, offered = device_view.local_units(
                    cells, pools, agent_physnets, request)
                if wanted:
                    holds, fits = device_view.room(
                        view, host, host_state, request, self._reserve,
                        self._estimate)
                    if not offered:
                        return locality.device_score(None, fits, None,
                                                     wanted, request.spans)
                    return locality.device_score(holds, fits, local, wanted,
                                                 request.spans)
            # A request that takes no device (PCI needs are always wanted):
            # the pools are the compute record's.
            nodes = device_view.busy_nodes(
                cells, host_view.device_nodes(view, host_state),
                agent_physnets)
            if request.cells is None and cells:
                # Most hosts of most requests: one pass over the cells.
                fits, idle, busy = fit.holding_idle(
                    host, request.memory_mb, request.vcpus, self._reserve,
                    self._estimate, max(0, view.built_free_ram_mb -
                                        host_state.free_ram_mb), nodes)
                return locality.plain_score(fits, busy, 1 if idle else 0)
            holds, fits = device_view.room(view, host, host_state, request,
                                           self._reserve, self._estimate)
            busy = device_view.busy_cells(cells, nodes)
            return locality.plain_score(fits, busy is not None,
                                        locality.idle_spans(holds, busy),
                                        request.spans)
        except Exception:
            if self._throttle('weigh'):
                LOG.warning("NUMALocalityWeigher could not weigh %(host)s, "
                            "%(node)s; it weighs 0. Next such warning in "
                            "%(interval)d s at the earliest.",
                            {'host': host_state.host,
                             'node': host_state.nodename,
                             'interval': self._throttle.interval},
                            exc_info=True)
            return 0.0


def _uuid(spec_obj):
    try:
        return spec_obj.instance_uuid
    except Exception:
        return None
