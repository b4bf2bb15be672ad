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

"""Replay boot requests over a mixed fleet; judge by what the kernel does.

A few hundred seeded boot requests go through nova's real filter and weight
handlers over ``HostState`` objects built as nova's HostManager builds them,
rebuilt for every request from nova's accounting (:class:`Accounting`).
Placement is emulated (RAM with ``ram_allocation_ratio`` 1.0, vCPUs with
``cpu_allocation_ratio`` 4.0) and the best weighed host is taken.

Each host also has a simple model of the Linux kernel (:class:`Kernel`)
placing every guest's memory as the guest touches it over time, and an
agent (:func:`publish`) that writes what ``nova-numa-guard-agent`` would
publish of that kernel for the ``file`` memory source. At the end the
replay counts, per scheduler configuration (:data:`CONFIGS`), the guests
whose memory ended up on more than one node and the NUMA guests whose bound
node ran out of memory.

Run ``python -m tests.replay`` from the repository root to print the table.
"""

import copy
import math
import os
import random
import sys
import tempfile
import time
import uuid

import nova.conf
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import host_manager
from nova.scheduler import weights as nova_weights
from nova.virt import hardware

from nova_numa_guard.agent import guests as agent_guests
from nova_numa_guard import conf as guard_conf
from nova_numa_guard import host_view
from nova_numa_guard.live import payload
from nova_numa_guard import nova_hosts
from nova_numa_guard import topology

CONF = nova.conf.CONF

GIB = 1024
SEED = 20240611
REQUESTS = 300
# Nova's [DEFAULT] reserved_host_memory_mb; the kernel model's baseline
# (kernel, host services) on node 0 is exactly this.
RESERVED_HOST_MB = 1024
CPU_RATIO = 4.0
RAM_RATIO = 1.0
BOOT_DELAY = 1
# [numa_guard] payload_signing_key: the agent signs with its host's key.
SIGNING_KEY = 'replay-signing-key'

STOCK_FILTERS = ['ComputeFilter', 'ComputeCapabilitiesFilter',
                 'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
                 'ServerGroupAffinityFilter', 'NUMATopologyFilter']
GUARD = 'NUMACellFitFilter'

# name, count, [(CPUs, MB) per node], share of node 0 in guests at the
# start, share of every other node.
SHAPES = [
    ('one-cell', 8, [(48, 192 * GIB)], (0.4, 0.7), None),
    # The motivating 2-socket host (its virsh capabilities).
    ('two-node-64g', 10, [(12, 65872056 // 1024), (12, 66058400 // 1024)],
     (0.5, 0.8), (0.05, 0.2)),
    ('four-node-128g', 6, [(16, 128 * GIB)] * 4, (0.5, 0.8), (0.05, 0.2)),
]
GUEST_SIZES = [2 * GIB, 4 * GIB, 8 * GIB, 16 * GIB]


class Config:
    """One scheduler configuration of the comparison.

    :ivar name: its row label.
    :ivar memory_source: ``[numa_guard] memory_source``, or None without
        NUMACellFitFilter.
    :ivar with_guests: the agent publishes the guest fields.
    :ivar every: the agent publishes every this many requests.
    """

    def __init__(self, name, memory_source=None, with_guests=True, every=1):
        self.name = name
        self.memory_source = memory_source
        self.with_guests = with_guests
        self.every = every

    @property
    def live(self):
        return self.memory_source == 'file'


STOCK = Config('stock')
ACCOUNTED = Config('accounted', 'accounted')
OLD_AGENT = Config('live, old agent', 'file', with_guests=False)
LIVE = Config('live', 'file')
LIVE_EVERY_5 = Config('live, agent every 5 requests', 'file', every=5)
CONFIGS = [STOCK, ACCOUNTED, OLD_AGENT, LIVE, LIVE_EVERY_5]


class VM:
    """A guest as the kernel sees it.

    :ivar name: its name (the request's, or the host's for guests running
        at the start).
    :ivar size_mb: its memory.
    :ivar vcpus: its vCPUs.
    :ivar bound: ``{node: MB}`` for a NUMA guest (each guest cell strictly
        bound to one host node), None for a guest the kernel places.
    :ivar rate: the share of its size it touches per step.
    :ivar home: the node a floating guest settled on, None before its first
        touch.
    :ivar resident: ``{node: MB}`` touched so far.
    :ivar overflow: a bound node had no free memory left: it stopped.
    :ivar placed: placed by the replay (not running at the start).
    """

    def __init__(self, name, size_mb, vcpus, rate, bound=None, home=None,
                 resident=None, placed=True):
        self.name = name
        self.size_mb = size_mb
        self.vcpus = vcpus
        self.rate = rate
        self.bound = bound
        self.home = home
        self.resident = resident or {}
        self.overflow = False
        self.placed = placed

    @property
    def untouched_mb(self):
        return self.size_mb - sum(self.resident.values())

    @property
    def settled(self):
        return self.overflow or self.untouched_mb <= 0

    @property
    def spans(self):
        """A floating guest with memory on more than one node."""
        return self.bound is None and sum(
            1 for mb in self.resident.values() if mb > 0) > 1

    def agent_guest(self, domain_id):
        """The :class:`agent_guests.Guest` the agent would read."""
        return agent_guests.Guest(self.name, domain_id, self.size_mb,
                                  bound=self.bound,
                                  resident_mb=dict(self.resident))


class Kernel:
    """The memory of one host's nodes, as the kernel hands it out.

    Started guests touch a further ``rate`` of their size every step. A
    floating guest settles, at its first touch, on the node with the most
    room (free memory less the untouched memory of the guests settled or
    bound there; ties to the lower node; guests first touching in the same
    step largest first; only nodes with CPUs), and takes its pages there
    while the node has free memory, else from the node with the most free
    memory. A NUMA guest takes pages only from its bound nodes; when one is
    out of free memory it overflows and stops.

    :ivar total: ``{node: MB}``.
    :ivar free: ``{node: MB}``.
    :ivar guests: started guests, in start order.
    """

    def __init__(self, total, cpu_nodes, baseline):
        self.total = dict(total)
        self.free = {node: mb - baseline.get(node, 0)
                     for node, mb in total.items()}
        self.cpu_nodes = sorted(cpu_nodes)
        self.guests = []
        self.waiting = []  # (start step, VM), in placement order

    def run(self, vm):
        """A guest that is running already (resident memory taken)."""
        for node, mb in vm.resident.items():
            self.free[node] -= mb
        self.guests.append(vm)

    def schedule_start(self, vm, step):
        self.waiting.append((step, vm))

    def promised(self):
        """``{node: MB}`` untouched memory of the settled and bound guests."""
        promised = dict.fromkeys(self.total, 0)
        for vm in self.guests:
            if vm.overflow:
                continue
            if vm.bound is not None:
                for node, mb in vm.bound.items():
                    promised[node] += mb - vm.resident.get(node, 0)
            elif vm.home is not None:
                promised[vm.home] += vm.untouched_mb
        return promised

    def step(self, now):
        """One time step (one request).

        Guests touching for the first time settle, every started guest
        touches, then the guests due at ``now`` start: they exist for the
        agent from the next publication on and first touch in the next step.
        """
        new = [vm for vm in self.guests
               if vm.bound is None and vm.home is None]
        if new:
            promised = self.promised()
            for vm in sorted(new, key=lambda vm: -vm.size_mb):
                vm.home = max(self.cpu_nodes, key=lambda n: (
                    self.free[n] - promised[n], -n))
                promised[vm.home] += vm.untouched_mb
        for vm in self.guests:
            if not vm.settled:
                self._touch(vm)
        due = [vm for start, vm in self.waiting if start <= now]
        self.waiting = [(s, vm) for s, vm in self.waiting if s > now]
        self.guests.extend(due)

    def _touch(self, vm):
        if vm.bound is not None:
            for node, cell_mb in sorted(vm.bound.items()):
                want = min(math.ceil(vm.rate * cell_mb),
                           cell_mb - vm.resident.get(node, 0))
                got = min(want, self.free[node])
                self._take(vm, node, got)
                if got < want:
                    vm.overflow = True
                    return
            return
        want = min(math.ceil(vm.rate * vm.size_mb), vm.untouched_mb)
        got = min(want, self.free[vm.home])
        self._take(vm, vm.home, got)
        want -= got
        while want > 0:
            node = max(self.total, key=lambda n: (self.free[n], -n))
            got = min(want, self.free[node])
            if got <= 0:
                raise RuntimeError('%s: no free memory left on any node for '
                                   '%s' % (self.total, vm.name))
            self._take(vm, node, got)
            want -= got

    def _take(self, vm, node, mb):
        self.free[node] -= mb
        vm.resident[node] = vm.resident.get(node, 0) + mb

    @property
    def settled(self):
        return not self.waiting and all(vm.settled for vm in self.guests)


class Accounting:
    """What nova's database holds of one host: the ``ComputeNode`` record.

    :ivar used_mb: memory_mb_used (every guest and the host reserve).
    :ivar vcpus_used: vCPUs of every guest.
    :ivar numa_mb: ``{cell: MB}`` of NUMA guests.
    :ivar numa_cpus: ``{cell: vCPUs}`` of NUMA guests.
    """

    def __init__(self, name, cells):
        self.name = name
        self.cells = cells
        self.used_mb = RESERVED_HOST_MB
        self.vcpus_used = 0
        self.numa_mb = dict.fromkeys((c.id for c in cells), 0)
        self.numa_cpus = dict.fromkeys((c.id for c in cells), 0)
        self._built = None

    @property
    def memory_mb(self):
        return sum(c.memory_mb for c in self.cells)

    @property
    def vcpus(self):
        return sum(len(c.cpus) for c in self.cells)

    def holds(self, memory_mb, vcpus):
        """Whether placement would offer the host (RAM and VCPU)."""
        return (self.memory_mb * RAM_RATIO - self.used_mb >= memory_mb and
                self.vcpus_used + vcpus <= self.vcpus * CPU_RATIO)

    def host(self):
        cells = [c.replace(small_page_used_mb=self.numa_mb[c.id],
                           numa_used_mb=self.numa_mb[c.id])
                 for c in self.cells]
        return topology.Host(self.name, cells, used_mb=self.used_mb,
                             ram_allocation_ratio=RAM_RATIO)

    def host_state(self):
        """A fresh ``HostState``, as HostManager builds one per request.

        It is built by ``HostState.update()`` from the record
        (``nova_hosts``; the vCPU usage, which ``nova_hosts`` leaves at
        zero, filled in as nova's resource tracker writes it) whenever the
        record changed, and otherwise copied from the last one built: what
        is built from an unchanged record is the same. A copy gets its own
        per-request fields (limits, allocation candidates) and a service
        record heard from just now, and nothing of the guard's request view.
        """
        if self._built is None:
            state = nova_hosts.host_state(self.host())
            state.vcpus_used = self.vcpus_used
            for cell in state.numa_topology.cells:
                cell.cpu_usage = self.numa_cpus[cell.id]
            self._built = state
        state = copy.copy(self._built)
        state.__dict__.pop(host_view._ATTR, None)
        state.limits = {}
        state.allocation_candidates = copy.deepcopy(
            self._built.allocation_candidates)
        state.service = host_manager.ReadOnlyDict(
            nova_hosts.service(self.name))
        return state

    def add(self, memory_mb, vcpus, fitted=None):
        """Account a guest; ``fitted`` is its ``InstanceNUMATopology``."""
        self._built = None
        self.used_mb += memory_mb
        self.vcpus_used += vcpus
        for cell in (fitted.cells if fitted else ()):
            self.numa_mb[cell.id] += cell.memory
            self.numa_cpus[cell.id] += len(cell.cpuset)


class FleetHost:
    """A compute host: its kernel and nova's record of it."""

    def __init__(self, name, cells):
        self.name = name
        self.cells = cells
        self.kernel = Kernel({c.id: c.memory_mb for c in cells},
                             [c.id for c in cells if c.cpus],
                             {cells[0].id: RESERVED_HOST_MB})
        self.accounting = Accounting(name, cells)


def build_fleet(seed=SEED):
    """The hosts of :data:`SHAPES`, with guests running unevenly."""
    rng = random.Random(seed)
    fleet = []
    for shape, count, nodes, first, others in SHAPES:
        for index in range(count):
            cells, cpu = [], 0
            for node, (ncpus, mb) in enumerate(nodes):
                cells.append(topology.Cell(
                    node, frozenset(range(cpu, cpu + ncpus)), mb))
                cpu += ncpus
            host = FleetHost('%s-%02d' % (shape, index), cells)
            for cell in cells:
                share = rng.uniform(*(others if cell.id else first))
                _fill(host, cell, share, rng)
            fleet.append(host)
    return fleet


def _fill(host, cell, share, rng):
    """Guests without a NUMA topology on ``cell``, partly touched."""
    room = host.kernel.free[cell.id]
    target = int(cell.memory_mb * share)
    used = 0
    while True:
        sizes = [mb for mb in GUEST_SIZES if used + mb <= min(target, room)]
        if not sizes:
            return
        size = rng.choice(sizes)
        used += size
        vm = VM('%s-guest-%d' % (host.name, len(host.kernel.guests)), size,
                vcpus=max(1, min(8, size // (2 * GIB))),
                rate=rng.uniform(0.1, 0.3), home=cell.id,
                resident={cell.id: int(size * rng.uniform(0.3, 0.9))},
                placed=False)
        host.kernel.run(vm)
        host.accounting.add(vm.size_mb, vm.vcpus)


class Request:
    """One boot request: a flavor (and an empty image)."""

    def __init__(self, index, memory_mb, vcpus, numa_nodes=None):
        self.index = index
        self.memory_mb = memory_mb
        self.vcpus = vcpus
        self.extra_specs = ({'hw:numa_nodes': str(numa_nodes)}
                            if numa_nodes else {})
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                   'nova-numa-guard/replay/%d' % index))

    @property
    def name(self):
        return 'request-%03d' % self.index

    def spec(self):
        """The ``RequestSpec``, with the NUMA topology nova's API builds."""
        flavor = objects.Flavor(
            name='%dg.%dc%s' % (self.memory_mb // GIB, self.vcpus,
                                '.numa' if self.extra_specs else ''),
            vcpus=self.vcpus, memory_mb=self.memory_mb, root_gb=10,
            ephemeral_gb=0, swap=0, extra_specs=dict(self.extra_specs))
        image = objects.ImageMeta.from_dict({'properties': {}})
        return objects.RequestSpec(
            flavor=flavor, image=image,
            numa_topology=hardware.numa_get_constraints(flavor, image),
            pci_requests=objects.InstancePCIRequests(requests=[]),
            instance_uuid=self.uuid, instance_group=None,
            scheduler_hints={}, project_id='replay', num_instances=1,
            ignore_hosts=None, force_hosts=None, force_nodes=None)

    def __repr__(self):
        return '%s(%d MB, %d vCPUs%s)' % (
            self.name, self.memory_mb, self.vcpus,
            ', hw:numa_nodes=%s' % self.extra_specs['hw:numa_nodes']
            if self.extra_specs else '')


def build_requests(count=REQUESTS, seed=SEED):
    """Mostly small guests without a NUMA topology, some large, some NUMA."""
    rng = random.Random(seed + 1)
    requests = []
    for index in range(count):
        kind = rng.random()
        if kind < 0.68:
            size = rng.choice(GUEST_SIZES)
            vcpus = rng.randint(1, max(1, min(8, size // GIB // 2)))
            requests.append(Request(index, size, vcpus))
        elif kind < 0.80:
            requests.append(Request(index, rng.choice([32, 40, 48]) * GIB,
                                    rng.choice([4, 8])))
        elif kind < 0.93:
            requests.append(Request(index, rng.choice([8, 12, 16]) * GIB,
                                    rng.choice([2, 4, 8]), numa_nodes=1))
        else:
            requests.append(Request(index, 32 * GIB, 8, numa_nodes=2))
    return requests


def publish(host, live_dir, with_guests=True):
    """Write what the agent would publish of the host's kernel.

    Free and available memory per node (no page cache in the model); with
    ``with_guests`` also the untouched memory of the started guests per node
    (the agent's own rule) and their total size. Signed with the host's key.
    """
    kernel = host.kernel
    untouched = guests_mb = None
    if with_guests:
        seen = [vm.agent_guest(i) for i, vm in enumerate(kernel.guests, 1)]
        untouched = agent_guests.untouched_by_node(
            seen, dict(kernel.free), kernel.cpu_nodes)
        guests_mb = sum(vm.size_mb for vm in kernel.guests)
    nodes = []
    for node in sorted(kernel.total):
        entry = {'id': node, 'mem_total_mb': kernel.total[node],
                 'mem_free_mb': kernel.free[node],
                 'mem_available_mb': kernel.free[node]}
        if with_guests:
            entry['guest_untouched_mb'] = untouched[node]
        nodes.append(entry)
    data = payload.build(host.name, time.time(), nodes, guests_mb=guests_mb,
                         key=payload.host_key(SIGNING_KEY, host.name))
    write(os.path.join(live_dir, host.name + '.json'), payload.encode(data))


def write(path, data):
    """Replace a file's content in place.

    Not truncated on open: ext4 flushes a file truncated to zero when it is
    closed, which made every write cost half a millisecond.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


class Scheduler:
    """Nova's filter and weight handlers with a configuration's filters.

    Set the configuration's options before building it: NUMACellFitFilter
    reads them when it is instantiated.
    """

    def __init__(self, config):
        self.filter_handler = nova_filters.HostFilterHandler()
        classes = {cls.__name__: cls
                   for cls in self.filter_handler.get_matching_classes(
                       ['nova.scheduler.filters.all_filters',
                        'nova_numa_guard.scheduler.filters.all_filters'])}
        names = STOCK_FILTERS + ([GUARD] if config.memory_source else [])
        self.filters = [classes[name]() for name in names]
        self.weight_handler = nova_weights.HostWeightHandler()
        self.weighers = [cls() for cls in nova_weights.all_weighers()]

    def pick(self, states, spec):
        """The best weighed host state that passes the filters, or None."""
        passed = self.filter_handler.get_filtered_objects(
            self.filters, states, spec, index=0)
        if not passed:
            return None
        weighed = self.weight_handler.get_weighed_objects(
            self.weighers, passed, spec)
        return weighed[0].obj


def nova_binding(state, spec):
    """The guest cells nova binds a NUMA request to on the chosen host."""
    return hardware.numa_fit_instance_to_host(
        state.numa_topology, spec.numa_topology.obj_clone(), None,
        limits=objects.NUMATopologyLimits(cpu_allocation_ratio=CPU_RATIO,
                                          ram_allocation_ratio=RAM_RATIO))


class Outcome:
    """What one configuration did with the requests."""

    def __init__(self, config, requests, placed, guests):
        self.config = config
        self.requests = requests
        self.placed = placed
        self.spanning = [vm for vm in guests if vm.spans]
        self.overflows = [vm for vm in guests if vm.overflow]
        self.lost = 0

    @property
    def name(self):
        return self.config.name


def configure(config, live_dir):
    """Set the options of ``config`` on nova's CONF."""
    guard_conf.register_opts(CONF)
    CONF.set_override('reserved_host_memory_mb', RESERVED_HOST_MB)
    CONF.set_override('memory_source', config.memory_source or 'accounted',
                      group='numa_guard')
    CONF.set_override('live_data_path', live_dir, group='numa_guard')
    CONF.set_override('max_data_age', 86400, group='numa_guard')
    CONF.set_override('payload_signing_key', SIGNING_KEY, group='numa_guard')


def replay(config, requests, live_dir, seed=SEED, trace=None):
    """Replay ``requests`` over a fresh fleet under ``config``.

    :param trace: called as ``trace(step, request, host, state, vm)`` after
        every placement, for investigation; may be None.
    :returns: :class:`Outcome`.
    """
    configure(config, live_dir)
    host_view._MEMO.clear()
    scheduler = Scheduler(config)
    fleet = build_fleet(seed)
    rng = random.Random(seed + 2)
    placed = 0
    step = 0
    for step, request in enumerate(requests):
        if config.live and step % config.every == 0:
            for host in fleet:
                publish(host, live_dir, config.with_guests)
        rate = rng.uniform(0.1, 0.3)
        spec = request.spec()
        offered = [host for host in fleet if host.accounting.holds(
            request.memory_mb, request.vcpus)]
        states = {host.name: host.accounting.host_state()
                  for host in offered}
        chosen = scheduler.pick(list(states.values()), spec)
        if chosen is not None:
            host = next(h for h in offered if h.name == chosen.host)
            vm = place(host, states[host.name], request, spec, rate)
            placed += 1
            if trace is not None:
                trace(step, request, host, chosen, vm)
        for host in fleet:
            host.kernel.step(step)
    while not all(host.kernel.settled for host in fleet):
        step += 1
        for host in fleet:
            host.kernel.step(step)
    guests = [vm for host in fleet for vm in host.kernel.guests]
    return Outcome(config, len(requests), placed, guests)


def place(host, state, request, spec, rate):
    """Record a placement in nova's accounting and queue the guest's start.

    A guest placed at request ``i`` starts at the end of step ``i +
    BOOT_DELAY``: until then it is memory nova accounts that the agent has
    not seen.

    :returns: the :class:`VM`.
    """
    fitted = None
    bound = None
    if spec.numa_topology is not None:
        fitted = nova_binding(state, spec)
        bound = {}
        for cell in fitted.cells:
            bound[cell.id] = bound.get(cell.id, 0) + cell.memory
    host.accounting.add(request.memory_mb, request.vcpus, fitted)
    vm = VM(request.name, request.memory_mb, request.vcpus, rate,
            bound=bound)
    host.kernel.schedule_start(vm, request.index + BOOT_DELAY)
    return vm


def run(configs=CONFIGS, requests=None, seed=SEED, live_dir=None):
    """Replay every configuration; the first is the baseline for "lost".

    :returns: list of :class:`Outcome`.
    """
    requests = requests or build_requests(seed=seed)
    if live_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return run(configs, requests, seed, tmp)
    outcomes = [replay(config, requests, live_dir, seed)
                for config in configs]
    stock = outcomes[0]
    for outcome in outcomes:
        outcome.lost = max(0, (stock.placed - len(stock.spanning)) -
                           outcome.placed)
    return outcomes


def table(outcomes):
    """The outcomes as a plain-text table, one row per configuration."""
    head = ('configuration', 'requests', 'placed', 'spanning',
            'overflows', 'lost')
    rows = [head] + [(o.name, o.requests, o.placed, len(o.spanning),
                      len(o.overflows), o.lost) for o in outcomes]
    width = max(len(str(row[0])) for row in rows)
    lines = ['%-*s %9s %7s %9s %10s %5s' % ((width,) + tuple(row))
             for row in rows]
    lines.extend([
        'spanning: guests with memory on more than one node',
        'overflows: NUMA guests whose bound node ran out of free memory',
        'lost: placements stock made without spanning that the '
        'configuration did not make'])
    return '\n'.join(lines)


def main():
    CONF([], project='nova', default_config_files=[])
    objects.register_all()
    wall, cpu = time.perf_counter(), time.process_time()
    outcomes = run()
    print(table(outcomes))
    print('%d hosts, %d requests, %d configurations: %.1f s (%.1f s of '
          'CPU)' % (len(build_fleet()), REQUESTS, len(outcomes),
                    time.perf_counter() - wall, time.process_time() - cpu))
    return 0


if __name__ == '__main__':
    sys.exit(main())
