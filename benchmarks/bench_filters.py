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
``ComputeNode`` through ``HostState.update()``), and every filter runs over
fresh copies for every repetition, because nova builds new ``HostState``
objects for every request. The timings are per host; what matters is the
ratio to ``ComputeFilter`` measured side by side in the same run, as a median
over several repetitions, since absolute times on a shared machine are noise.

The garbage collector is off while a run is timed (as in timeit).

Usage: python benchmarks/bench_filters.py [--hosts 1000 10000] [--repeat 7]
"""

import argparse
import contextlib
import copy
import gc
import random
import statistics
import sys
import time

import nova.conf
from nova import objects
from nova.scheduler.filters import compute_filter
from nova.scheduler.filters import numa_topology_filter
from nova.scheduler import host_manager
from nova.virt import hardware

from nova_numa_guard import host_view
from nova_numa_guard import nova_hosts
from nova_numa_guard.scheduler.filters import numa_cell_fit
from nova_numa_guard import topology

SHAPES = [
    # (cells, CPUs per cell, MB per cell)
    (2, 24, 192 * 1024),
    (2, 12, 64 * 1024),
    (4, 16, 128 * 1024),
    (8, 8, 64 * 1024),
    (1, 48, 256 * 1024),
]


def build_hosts(count, seed=0):
    """``count`` HostStates of mixed shapes and usage, deterministic."""
    rng = random.Random(seed)
    hosts = []
    for i in range(count):
        ncells, ncpus, mb = SHAPES[i % len(SHAPES)]
        cells = []
        numa_used = 0
        for c in range(ncells):
            used = rng.choice([0, 0, 4096, 16384])
            numa_used += used
            cells.append(topology.Cell(
                c, frozenset(range(c * ncpus, (c + 1) * ncpus)), mb,
                small_page_used_mb=used))
        total = ncells * mb
        used_mb = numa_used + rng.randint(0, total // 2)
        hosts.append(nova_hosts.host_state(
            topology.Host('host%05d' % i, cells, used_mb=used_mb)))
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


@contextlib.contextmanager
def no_gc():
    """Time without the garbage collector, as timeit does.

    With 10,000 HostStates alive a full collection takes ~0.6 s here; when
    one falls inside a timed run it swamps the filter being measured and
    depends on what ran before, not on the filter.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_once(filt, hosts, spec, cold=False):
    """Mean seconds per host of one ``filt.filter_all`` over fresh copies.

    :param cold: forget the cells memo first, as for the first request
        after every compute node updated its record.
    """
    fresh = fresh_copies(hosts)
    if cold:
        host_view._CELLS_MEMO.clear()
    with no_gc():
        start = time.perf_counter()
        passed = list(filt.filter_all(fresh, spec))
        elapsed = time.perf_counter() - start
    return elapsed / len(hosts), len(passed)


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
    filters = [('ComputeFilter', compute_filter.ComputeFilter(), False),
               ('NUMATopologyFilter',
                numa_topology_filter.NUMATopologyFilter(), False),
               ('NUMACellFitFilter', guard, False),
               ('NUMACellFitFilter cold', guard, True)]
    requests = [('plain 2 GB / 2 vCPU', request(2048, 2)),
                ('large 100 GB / 16 vCPU', request(100 * 1024, 16)),
                # Nova binds it to two cells; the guard checks them.
                ('NUMA 2 x 24 GB / 8 vCPU', request(
                    48 * 1024, 8, {'hw:numa_nodes': '2'}))]
    print('per-host medians of %d runs; ratio = median of filter / '
          'ComputeFilter in the same repetition; "cold": first request '
          'after every compute updated its record' % args.repeat)
    print('%-7s %-24s %-20s %12s %7s %7s' % (
        'hosts', 'request', 'filter', 'us/host', 'ratio', 'passed'))
    worst = {False: 0.0, True: 0.0}
    for count in args.hosts:
        hosts = build_hosts(count)
        for label, spec in requests:
            # Every repetition runs every filter once; a ratio is taken to
            # ComputeFilter's time in the same repetition, since the
            # machine's speed drifts between repetitions.
            samples = {name: [] for name, _, _ in filters}
            ratios = {name: [] for name, _, _ in filters}
            passed = {}
            for _ in range(args.repeat):
                base = None
                for name, filt, cold in filters:
                    per_host, passed[name] = run_once(filt, hosts, spec,
                                                      cold)
                    base = base or per_host
                    samples[name].append(per_host)
                    ratios[name].append(per_host / base)
            for name, filt, cold in filters:
                ratio = statistics.median(ratios[name])
                if filt is guard:
                    worst[cold] = max(worst[cold], ratio)
                print('%-7d %-24s %-20s %12.2f %7.2f %7d' % (
                    count, label, name,
                    statistics.median(samples[name]) * 1e6, ratio,
                    passed[name]))
    print('worst NUMACellFitFilter / ComputeFilter ratio: %.2f warm (cells '
          'memoised), %.2f cold (every compute record changed)'
          % (worst[False], worst[True]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
