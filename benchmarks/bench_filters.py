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

"""Time NUMACellFitFilter next to nova's stock filters on the same hosts.

Hosts are ``HostState`` objects built as ``HostManager`` builds them (from a
``ComputeNode`` through ``HostState.update()``), of the shapes real fleets
have: two-socket hosts with hyperthread siblings, several page pools (4 KiB,
2 MiB, 1 GiB), dedicated CPUs on some, few single-cell hosts. Every filter
runs through nova's ``HostFilterHandler`` over fresh copies for every
repetition, because nova builds new ``HostState`` objects for every request,
with the garbage collector on, as in nova-scheduler (after a full collection:
no case collects the garbage of the ones before it).

The guard runs in four regimes: warm (it has seen every compute node's
record), mix (2% of the records changed since the last request, as nova's
resource tracker rewrites a record for every guest that comes or goes),
changed (every record changed) and cold (it has read none of the records:
the first request after it started). A changed record has a guest more or
less: a NUMA guest on its first cell for every other host, a guest without a
NUMA topology (no cell changes) for the others. Every repetition runs every
case once, each case in every place of the order in turn, and a case's
ratio is its time per host over ``ComputeFilter``'s in the same repetition;
the figure is the median of the ratios, since absolute times on a shared
machine are noise. Last, the memory the guard keeps per host once the
request's HostStates are gone, and the size of its memo after 10 rounds of
replacing 1,000 compute nodes.

Usage: python benchmarks/bench_filters.py [--hosts 1000 10000] [--repeat 7]
"""

import argparse
import copy
import datetime
import gc
import random
import statistics
import sys
import time
import tracemalloc

import nova.conf
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler.filters import compute_filter
from nova.scheduler.filters import numa_topology_filter
from nova.scheduler import host_manager
from nova.virt import hardware

from nova_numa_guard import host_view
from nova_numa_guard import nova_hosts
from nova_numa_guard.scheduler.filters import numa_cell_fit
from nova_numa_guard import topology

# (percent of the fleet, cells, shared CPUs per cell, dedicated CPUs per
# cell, MB per cell, {hugepage size KiB: pages per cell})
SHAPES = [
    (30, 2, 24, 0, 192 * 1024, {2048: 4096}),
    (25, 2, 12, 0, 64 * 1024, {}),
    (15, 4, 16, 0, 128 * 1024, {1048576: 16}),
    (10, 8, 8, 0, 64 * 1024, {}),
    (15, 2, 16, 16, 256 * 1024, {2048: 8192, 1048576: 32}),
    (5, 1, 48, 0, 256 * 1024, {}),
]
MIX_CHANGED = 0.02
# The guest a changed record gained or lost, MB.
GUEST_MB = 2048


def _shape(i):
    bucket = i % 100
    for share, *shape in SHAPES:
        if bucket < share:
            return shape
        bucket -= share
    return SHAPES[-1][1:]


def build_hosts(count, seed=0, prefix='host'):
    """``count`` HostStates of mixed shapes and usage, deterministic."""
    rng = random.Random(seed)
    hosts = []
    for i in range(count):
        ncells, shared, dedicated, mb, pages = _shape(i)
        cells = []
        numa_used = 0
        first = 0
        for c in range(ncells):
            huge_mb = sum(size * n // 1024 for size, n in pages.items())
            used = rng.choice([0, 0, 4096, 16384])
            numa_used += used
            cpus = range(first, first + shared + dedicated)
            first += shared + dedicated
            # Hyperthread siblings: CPU n and n + 1 share a core.
            siblings = [frozenset((n, n + 1)) for n in cpus[::2]]
            cells.append(topology.Cell(
                c, frozenset(cpus[:shared]), mb,
                small_page_mb=mb - huge_mb, small_page_used_mb=used,
                pcpus=frozenset(cpus[shared:]),
                hugepages={size: (n, 0) for size, n in pages.items()},
                siblings=siblings))
        total = ncells * mb
        used_mb = numa_used + rng.randint(0, total // 2)
        hosts.append(nova_hosts.host_state(
            topology.Host('%s%05d' % (prefix, i), cells, used_mb=used_mb)))
    return hosts


def request(memory_mb, vcpus, extra_specs=None):
    """A RequestSpec as nova's API builds it (NUMA topology included)."""
    flavor = objects.Flavor(memory_mb=memory_mb, vcpus=vcpus, root_gb=10,
                            ephemeral_gb=0, swap=0,
                            extra_specs=extra_specs or {})
    image = objects.ImageMeta.from_dict({'properties': {}})
    return objects.RequestSpec(
        flavor=flavor, image=image,
        numa_topology=hardware.numa_get_constraints(flavor, image),
        pci_requests=objects.InstancePCIRequests(requests=[]),
        instance_uuid='0f6a4a49-4d8e-4a0b-9a55-9d1f4a3c2e11',
        scheduler_hints={})


def fresh_copies(hosts):
    """The HostStates of a new request, as nova builds them every time.

    Copies without the guard's per-request view, with a service record that
    was heard from just now (a long benchmark must not let ComputeFilter
    find the services down).
    """
    fresh = []
    for host in hosts:
        copied = copy.copy(host)
        copied.__dict__.pop('_numa_guard_view', None)
        copied.service = host_manager.ReadOnlyDict(
            nova_hosts.service(host.host))
        fresh.append(copied)
    return fresh


def change_records(hosts, indexes, guests):
    """Give the hosts of ``indexes`` a newer record: a guest came or went.

    As nova's resource tracker rewrites a record: with :data:`GUEST_MB`
    more or less used; on the first cell (and its smallest page pool) for
    every other host (a NUMA guest), no cell changed for the others (a
    guest without a NUMA topology). A millisecond newer: many repetitions
    must not bring it within the second that the guard does not memoise.

    :param guests: set of the indexes of hosts with the guest now; updated.
    """
    later = datetime.timedelta(milliseconds=1)
    for index in indexes:
        host = hosts[index]
        if index in guests:
            guests.discard(index)
            delta = -GUEST_MB
        else:
            guests.add(index)
            delta = GUEST_MB
        host.updated += later
        host.free_ram_mb -= delta
        if index % 2 and host.numa_topology is not None:
            cell = host.numa_topology.cells[0]
            cell.memory_usage += delta
            pool = cell.mempages[0]
            pool.used += delta * 1024 // pool.size_kb


def run_once(filt, hosts, spec, regime=None, changed=(), guests=None):
    """Mean seconds per host of one request through HostFilterHandler.

    :param regime: None (warm), ``'mix'`` (the hosts of ``changed`` have a
        newer record), ``'changed'`` (every host has) or ``'cold'``
        (:func:`forget` first, as for the first request after the scheduler
        started).
    :param guests: for :func:`change_records`.
    """
    if regime == 'mix':
        change_records(hosts, changed, guests)
    elif regime == 'changed':
        change_records(hosts, range(len(hosts)), guests)
    fresh = fresh_copies(hosts)
    if regime == 'cold':
        forget()
    handler = nova_filters.HostFilterHandler()
    # The garbage of the cases before is not this one's to collect.
    gc.collect()
    start = time.perf_counter()
    passed = handler.get_filtered_objects([filt], fresh, spec, index=0)
    elapsed = time.perf_counter() - start
    return elapsed / len(hosts), len(passed or ())


def forget():
    """Forget what the guard kept of earlier requests: the memo of host
    views and the cells hosts share.
    """
    host_view._MEMO.clear()
    topology._SHARED.clear()


def retained_per_host(filt, count, spec):
    """Bytes the filter keeps per host once a request's HostStates are gone.

    Traced allocations that survive one request over ``count`` HostStates
    built for it (as nova builds them for every request) and freed after
    it: the cells memo and the cells hosts share, mostly.
    """
    forget()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hosts = build_hosts(count, prefix='traced')
        list(filt.filter_all(fresh_copies(hosts), spec))
        del hosts
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / count


def memo_after_churn(filt, spec, count=1000, rounds=10):
    """Memo entries after ``rounds`` of replacing ``count`` compute nodes.

    Then two pruning periods of requests on the last of them.
    """
    forget()
    for round_ in range(rounds):
        hosts = build_hosts(count, seed=round_, prefix='churn%d-' % round_)
        list(filt.filter_all(fresh_copies(hosts), spec))
    for _ in range(2 * host_view._PRUNE_EVERY):
        list(filt.filter_all(fresh_copies(hosts), spec))
    return len(host_view._MEMO)


def rotated(cases, rep):
    """``cases`` in the order of repetition ``rep``: each case runs first,
    second and so on in turn.

    A case's time depends on its place in the repetition (which cases ran
    before it, and what they left allocated): taken always in the same
    place, ComputeFilter measured up to 10% slower or faster than in
    another.
    """
    shift = rep % len(cases)
    return cases[shift:] + cases[:shift]


def parse_args(argv, description):
    """``--hosts`` and ``--repeat``, shared by the benchmark scripts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--hosts', type=int, nargs='+', default=[1000, 10000])
    parser.add_argument('--repeat', type=int, default=7)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv, __doc__.splitlines()[0])

    nova.conf.CONF([], project='nova')
    objects.register_all()
    guard = numa_cell_fit.NUMACellFitFilter()
    filters = [('ComputeFilter', compute_filter.ComputeFilter(), None),
               ('NUMATopologyFilter',
                numa_topology_filter.NUMATopologyFilter(), None),
               ('guard warm', guard, None),
               ('guard mix', guard, 'mix'),
               ('guard changed', guard, 'changed'),
               ('guard cold', guard, 'cold')]
    requests = [('plain 2 GB / 2 vCPU', request(2048, 2)),
                ('large 100 GB / 16 vCPU', request(100 * 1024, 16)),
                # Nova binds it to two cells; the guard checks them.
                ('NUMA 2 x 24 GB / 8 vCPU', request(
                    48 * 1024, 8, {'hw:numa_nodes': '2'}))]
    print('per-host medians of %d repetitions through HostFilterHandler, '
          'garbage collector on; ratio = median of filter / ComputeFilter '
          'in the same repetition; mix: %d%% of the compute records changed '
          'since the last request; changed: all of them; cold: none read '
          'before' % (args.repeat, MIX_CHANGED * 100))
    print('%-7s %-24s %-20s %12s %7s %7s' % (
        'hosts', 'request', 'filter', 'us/host', 'ratio', 'passed'))
    rng = random.Random(1)
    for count in args.hosts:
        hosts = build_hosts(count)
        guests = set()
        for label, spec in requests:
            samples = {name: [] for name, _, _ in filters}
            ratios = {name: [] for name, _, _ in filters}
            passed = {}
            list(guard.filter_all(fresh_copies(hosts), spec))  # warm up
            for rep in range(args.repeat):
                changed = rng.sample(range(count),
                                     int(count * MIX_CHANGED))
                # Each case takes every place in the order in turn: the
                # place alone moves a case's time by up to 10%.
                times = {}
                for name, filt, regime in rotated(filters, rep):
                    times[name], passed[name] = run_once(
                        filt, hosts, spec, regime, changed, guests)
                for name, _, _ in filters:
                    samples[name].append(times[name])
                    ratios[name].append(times[name] / times['ComputeFilter'])
            for name, filt, regime in filters:
                print('%-7d %-24s %-20s %12.2f %7.2f %7d' % (
                    count, label, name,
                    statistics.median(samples[name]) * 1e6,
                    statistics.median(ratios[name]), passed[name]))
        print('%-7d retained by the guard per host: %.0f bytes' % (
            count, retained_per_host(guard, count, requests[0][1])))
    entries = memo_after_churn(guard, requests[0][1])
    print('cells memo after 10 rounds of replacing 1,000 compute nodes and '
          '%d requests: %d entries' % (2 * host_view._PRUNE_EVERY, entries))
    return 0


if __name__ == '__main__':
    sys.exit(main())
