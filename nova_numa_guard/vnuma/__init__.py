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

"""Plan ``hw:numa_*`` flavor extra specs for guests too large for one cell.

:func:`plan` asks the pure planner (:mod:`.planner`, with page sizes in
:mod:`.pages`) for the fewest guest NUMA nodes that distinct host cells
hold with headroom, and checks every plan with nova itself
(:mod:`.nova_check`) before it is returned:
``nova.virt.hardware.numa_get_constraints`` must turn the specs into exactly
the planned guest nodes, and ``numa_fit_instance_to_host`` must fit them on
the host's cells, each node on a cell that holds it with the headroom. nova
picks the cells itself (the first permutation of the host cells that fits),
so the order of the guest nodes in the specs is chosen for that. The planner
works on the host's shape: nova's per-cell usage in the cells is ignored,
live available memory (``Host.live``) only produces warnings.
"""

from nova_numa_guard import topology
from nova_numa_guard.vnuma import nova_check
from nova_numa_guard.vnuma import planner

DEFAULT_HEADROOM_PCT = planner.DEFAULT_HEADROOM_PCT
SMALL_PAGES_WARNING = planner.SMALL_PAGES_WARNING
Plan = planner.Plan
PlanError = planner.PlanError
specs_text = planner.specs_text
topology_keys = nova_check.topology_keys


def plan(vcpus, memory_mb, cells, headroom_pct=DEFAULT_HEADROOM_PCT,
         page_size=None, pin=False):
    """Plan the vNUMA extra specs of a guest.

    :param vcpus: the flavor's vCPUs.
    :param memory_mb: the flavor's memory (MiB).
    :param cells: the host, a :class:`topology.Host` or an iterable of
        :class:`topology.Cell`.
    :param headroom_pct: percent of each cell's small-page memory kept free.
    :param page_size: None, or a ``hw:mem_page_size`` value (``small``,
        ``large``, ``any``, ``2048``, ``2MB``, ``1GB``...) to add to the specs
        and size the guest nodes in multiples of.
    :param pin: give a guest that fits one cell a NUMA topology anyway
        (``hw:numa_nodes=1``), so nova binds it to one host node.
    :returns: :class:`Plan`.
    :raises: PlanError when the arguments are invalid or no layout fits.
    """
    live_free = None
    if isinstance(cells, topology.Host):
        if cells.live is not None:
            live_free = cells.live.available_mb
        cells = cells.cells
    cells = tuple(cells)
    planner.check_args(vcpus, memory_mb, headroom_pct)
    page = planner.page_size(page_size)
    layout = planner.Layout(cells, headroom_pct, page)
    nodes_cpus, nodes_mb, symmetric, targets = layout.solve(vcpus,
                                                            memory_mb)
    with_specs = len(nodes_cpus) > 1 or pin or page is not None
    notes = list(layout.notes) + planner.common_notes(nodes_cpus, page,
                                                      with_specs)

    # nova's numa_fit_instance_to_host places guest node i on the i-th cell
    # of the first permutation of host cells that fits, so the order of the
    # nodes decides which cell gets which node. The order that lines the
    # nodes up with their planned cells in nova's order is tried first,
    # then other orders, until nova puts every node on a cell that holds
    # it with the headroom.
    nodes = list(zip(nodes_cpus, nodes_mb))
    overfull = None
    for order in planner.orders(planner.nova_order(layout.cells, targets,
                                                   nodes), symmetric):
        cpus_order = [count for count, _ in order]
        mb_order = [mb for _, mb in order]
        specs = (planner.specs(cpus_order, mb_order, symmetric, page)
                 if with_specs else {})
        host_cells = nova_check.verify(layout.cells, specs, vcpus, memory_mb,
                                       cpus_order, mb_order)
        if host_cells is None:
            continue
        # Without specs the guest has no NUMA topology: nova places no
        # node, the check above only shows that one cell can hold it.
        over = with_specs and layout.overfull(order, host_cells)
        if not over:
            notes.extend(planner.live_notes(cells, live_free, mb_order))
            return Plan(vcpus, memory_mb, cpus_order, mb_order, host_cells,
                        symmetric, specs, notes)
        overfull = overfull or over
    if overfull:
        raise PlanError(layout.overfull_text(*overfull))
    raise PlanError('nova cannot fit the guest nodes %s on the host (its '
                    'numa_fit_instance_to_host finds no placement)' % (
                        ', '.join('%d vCPUs/%d MB' % node for node in nodes)))
