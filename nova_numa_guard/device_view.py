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

"""What a request needs next to its memory, and what each host cell offers.

The adapter between nova and :mod:`nova_numa_guard.locality`, for
``NUMALocalityWeigher``. Read only: nova's PCI pools, the ``RequestSpec`` and
its objects are never changed.

* Needs (:class:`Request`): each PCI request of ``spec_obj.pci_requests``
  (flavor aliases and SR-IOV ports; its ``count`` devices), each physnet of
  ``spec_obj.network_metadata`` that no SR-IOV port of the request already
  reaches through its device (a virtio or vhost port: one NIC), and a
  tunnelled network (one NIC).
* What a cell offers: free devices of the PCI pools on its node that could
  serve the request (``nova.pci.utils.pci_device_prop_match`` on the request's
  specs, and nova's rules for PFs, vDPA, remote-managed and live-migratable
  devices); the physnets and tunnels nova affines to it
  (``[neutron_physnet_<name>] numa_nodes``, ``[neutron_tunnel] numa_nodes``),
  and, for a physnet nova affines to no cell of the host, the nodes the
  host's agent publishes for it (``[numa_guard_agent] physnet_interfaces``).
* A network the host affines to none of its cells (neither nova nor the
  agent) is no need on that host, as nova ignores it: a cloud that
  configures no NIC locality ranks its ordinary guests as needing nothing.
* A host with one cell, or none (no NUMA topology), offers every device on
  its one (implied) cell; elsewhere devices whose ``numa_node`` is None or
  -1 are local to no cell.
* Room of a cell: what the guest (each guest cell of a NUMA guest) needs of
  free memory (:func:`nova_numa_guard.fit.free_mb`, live or accounted, as the
  filter estimates it; free pages of the guest's size for a hugepage guest)
  and of CPUs.
"""

from nova.pci import utils as pci_utils
from oslo_utils import strutils

from nova_numa_guard import fit
from nova_numa_guard import host_view
from nova_numa_guard import locality

# Spec tags nova matches in placement, not in the pools.
_IGNORED_SPEC_TAGS = frozenset(('resource_class', 'traits', 'rp_uuids'))
_PHYSNET = 'physical_network'
_DEV_TYPE = 'dev_type'
_REMOTE_MANAGED = 'remote_managed'
_LIVE_MIGRATABLE = 'live_migratable'
_PF = 'type-PF'
_VDPA = 'vdpa'
# Guest page sizes (nova.virt.hardware.MEMPAGES_*) and the small page.
_SMALL_PAGE_SIZES = (None, -1, 4)
_LARGE = -2
_ANY = -3


class PciNeed:
    """One PCI request: ``count`` devices matching any of ``specs``."""

    __slots__ = ('count', 'specs', 'pf', 'vdpa', 'remote_managed',
                 'live_migratable')

    def __init__(self, count, specs):
        self.count = count
        self.specs = [{k: v for k, v in spec.items()
                       if k not in _IGNORED_SPEC_TAGS} for spec in specs]
        self.pf = any(s.get(_DEV_TYPE) == _PF for s in specs)
        self.vdpa = any(s.get(_DEV_TYPE) == _VDPA for s in specs)
        self.remote_managed = any(strutils.bool_from_string(
            s.get(_REMOTE_MANAGED)) for s in specs)
        wanted = {s.get(_LIVE_MIGRATABLE) for s in specs}
        self.live_migratable = wanted.pop() if len(wanted) == 1 else None

    def serves(self, pool):
        """Whether devices of ``pool`` could serve this request."""
        dev_type = pool.get(_DEV_TYPE)
        if dev_type == _PF and not self.pf:
            return False
        if dev_type == _VDPA and not self.vdpa:
            return False
        if not self.remote_managed and strutils.bool_from_string(
                pool.get(_REMOTE_MANAGED)):
            return False
        if (self.live_migratable in ('true', 'false') and
                pool.get(_LIVE_MIGRATABLE) != self.live_migratable):
            return False
        return pci_utils.pci_device_prop_match(pool, self.specs)


class Request:
    """What a request needs, read once per request.

    :ivar pci: tuple of :class:`PciNeed`.
    :ivar physnets: physnets the guest needs a NIC on outside its PCI
        requests (virtio and vhost ports).
    :ivar tunneled: whether it needs the tunnel NIC.
    :ivar needs: whether it needs any device or NIC.
    :ivar memory_mb: the guest's memory.
    :ivar vcpus: vCPUs a cell must have for a guest without a NUMA topology
        (0 when ``[numa_guard] cpu_fit`` is off).
    :ivar cells: for a NUMA guest, per guest cell ``(MB, shared vCPUs,
        dedicated vCPUs)``; None for a guest without a NUMA topology.
    :ivar pagesize: the NUMA guest's page size in KiB, or nova's
        ``MEMPAGES_*`` constant; None when it has none.
    """

    __slots__ = ('pci', 'physnets', 'tunneled', 'needs', 'memory_mb',
                 'vcpus', 'cells', 'pagesize', '_keys', '_served')

    def __init__(self, spec, cpu_fit=True):
        requests = ()
        if 'pci_requests' in spec and spec.pci_requests:
            requests = spec.pci_requests.requests
        self.pci = tuple(PciNeed(r.count, r.spec) for r in requests
                         if r.count > 0 and r.spec)
        sriov_physnets = {s.get(_PHYSNET) for need in self.pci
                          for s in need.specs}
        physnets, tunneled = (), False
        if 'network_metadata' in spec and spec.network_metadata:
            network = spec.network_metadata
            if 'physnets' in network:
                physnets = sorted(p for p in network.physnets
                                  if p not in sriov_physnets)
            tunneled = 'tunneled' in network and bool(network.tunneled)
        self.physnets = tuple(physnets)
        self.tunneled = tunneled
        self.needs = bool(self.pci or self.physnets or self.tunneled)
        self.memory_mb = spec.memory_mb
        self.vcpus = spec.vcpus if cpu_fit else 0
        self.cells = self.pagesize = None
        topology = spec.numa_topology
        if topology is not None:
            self.cells = tuple((c.memory, _count(c, 'cpuset'),
                                _count(c, 'pcpuset'))
                               for c in topology.cells)
            pagesizes = {c.pagesize for c in topology.cells
                         if c.obj_attr_is_set('pagesize')}
            self.pagesize = pagesizes.pop() if len(pagesizes) == 1 else None
        keys = {_DEV_TYPE, _REMOTE_MANAGED, _LIVE_MIGRATABLE}
        for need in self.pci:
            for s in need.specs:
                keys.update(s)
        self._keys = tuple(sorted(keys))
        self._served = {}

    @property
    def spans(self):
        """Host cells the guest takes."""
        return 1 if self.cells is None else len(self.cells)

    def served(self, pool):
        """Indexes of the PCI needs that devices of ``pool`` could serve.

        Remembered per distinct set of the pool's values that matter, so
        that the same kind of device on thousands of hosts is matched once.
        """
        keys = self._keys
        try:
            key = tuple(map(pool.get, keys))
            served = self._served.get(key)
        except TypeError:  # an unhashable tag value: match every time
            key = served = None
        if served is None:
            served = tuple(i for i, need in enumerate(self.pci)
                           if need.serves(pool))
            if key is not None:
                self._served[key] = served
        return served


def _count(guest_cell, name):
    """The size of a set field of a guest cell; 0 when it is not set."""
    return len(getattr(guest_cell, name)) if name in guest_cell else 0


def cell_of(cells, node):
    """The index of the cell of node ``node`` in ``cells``, or None.

    Nova lists a host's cells by node id, so the id is the index on almost
    every host; the others are searched.
    """
    if type(node) is int and 0 <= node < len(cells) and \
            cells[node].id == node:
        return node
    for i, cell in enumerate(cells):
        if cell.id == node:
            return i
    return None


def busy_nodes(cells, device_nodes, agent_physnets):
    """Node ids of the cells with free devices or NICs the agent places.

    :param cells: the host's :class:`topology.Cell` tuple; empty for a host
        without a NUMA topology (one implied cell, then ``{None}``).
    :param device_nodes: node ids of the host's PCI pools with free devices
        (:func:`host_view.pool_nodes`).
    :param agent_physnets: ``{physnet: frozenset(node ids)}`` the host's
        agent publishes, or None.
    :returns: a set or frozenset, or an empty tuple when there are none.
    """
    if agent_physnets:
        nodes = set(device_nodes)
        for ids in agent_physnets.values():
            nodes.update(ids)
    elif device_nodes:
        nodes = device_nodes
    else:
        return ()
    if len(cells) <= 1:
        # One cell: every device and NIC of the host is on it.
        return {cells[0].id if cells else None}
    return nodes


def busy_cells(cells, nodes):
    """Per cell, whether it is busy (see :func:`fit.holding_idle`).

    :param nodes: :func:`busy_nodes` of the host.
    :returns: a list of bool, or None when no cell is busy.
    """
    if not cells:
        return [True] if nodes else None
    busy = [bool(c.physnets or c.tunneled or c.id in nodes) for c in cells]
    return busy if any(busy) else None


def local_units(cells, pools, agent_physnets, request):
    """What each cell offers of the request's needs on this host.

    :param cells: the host's :class:`topology.Cell` tuple; empty for a host
        without a NUMA topology (one implied cell).
    :returns: ``(local, wanted, offered)``: ``local`` and ``wanted`` for
        :func:`locality.device_score`, with the networks the host affines to
        no cell left out (``wanted`` is empty when nothing is left), and
        whether any cell offers anything.
    """
    count = len(cells) or 1
    wanted = [need.count for need in request.pci]
    local = [[0] * len(wanted) for _ in range(count)]
    offered = False
    if wanted:
        for pool in pools:
            devices = pool['count']
            if devices <= 0:
                continue
            served = request.served(pool)
            if not served:
                continue
            i = 0 if count == 1 else cell_of(cells, pool.get('numa_node'))
            if i is None:
                continue
            row = local[i]
            for j in served:
                row[j] += devices
            offered = True
    for name in request.physnets:
        where = [i for i, c in enumerate(cells) if name in c.physnets]
        if not where and agent_physnets and name in agent_physnets:
            if count == 1:
                where = [0]
            else:
                where = [i for i in (cell_of(cells, node)
                                     for node in agent_physnets[name])
                         if i is not None]
            offered = _add_network_need(local, wanted, where) or offered
        elif where:
            offered = _add_network_need(local, wanted, where) or offered
    if request.tunneled:
        where = [i for i, c in enumerate(cells) if c.tunneled]
        if where:
            offered = _add_network_need(local, wanted, where) or offered
    return local, wanted, offered


def _add_network_need(local, wanted, where):
    """Add a need of one NIC, offered by the cells ``where``.

    :returns: whether a cell offers it.
    """
    wanted.append(1)
    for i, row in enumerate(local):
        row.append(1 if i in where else 0)
    return bool(where)


def room(view, host, host_state, request, reserve, estimate):
    """``(holds, fits)`` of :func:`locality.fit_cells` for the host's cells.

    :param view: the host's :class:`host_view.HostView`.
    :param host: the :class:`topology.Host` to judge (with live data when
        the filter found some).
    """
    cells = host.cells
    if not cells:
        return [True], True
    if request.cells is None:
        return _floating_room(view, host, host_state, request, reserve,
                              estimate)
    pagesize = request.pagesize
    if pagesize in _SMALL_PAGE_SIZES:
        placed = {}
        if view.placed_mb(host_state) > 0:
            placed = host_view.numa_placed_mb(view, host_state)
        free = fit.free_mb(host, reserve, estimate, bound=True)
        free = [mb - placed.get(cell.id, 0) for cell, mb in zip(cells, free)]
    else:
        # The view keeps no hugepages: nova's own page accounting, which
        # nova updates as it places the instances of a multi-create.
        pages = _free_pages_mb(host_state, pagesize)
        free = [pages.get(cell.id, 0) for cell in cells]
    rooms = [(mb, len(cell.cpus), len(cell.pcpus))
             for cell, mb in zip(cells, free)]
    return locality.fit_cells(rooms, request.cells)


def _floating_room(view, host, host_state, request, reserve, estimate):
    return fit.holding_cells(host, request.memory_mb, request.vcpus,
                             reserve, estimate, view.placed_mb(host_state))


def _free_pages_mb(host_state, pagesize):
    """``{cell id: MB}`` of free pages a hugepage guest may use.

    :param pagesize: a page size in KiB, or nova's ``MEMPAGES_LARGE``
        (any page larger than the smallest) or ``MEMPAGES_ANY``.
    """
    free = {}
    for cell in host_state.numa_topology.cells:
        pools = sorted((p.size_kb, (p.total - p.used - (
            p.reserved if 'reserved' in p else 0)) * p.size_kb // 1024)
            for p in cell.mempages or ())
        if pagesize == _LARGE:
            pools = pools[1:]
        elif pagesize != _ANY:
            pools = [pool for pool in pools if pool[0] == pagesize]
        free[cell.id] = max([mb for _, mb in pools] or [0])
    return free
