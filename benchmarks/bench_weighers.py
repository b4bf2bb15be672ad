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

"""Time NUMALocalityWeigher next to nova's RAMWeigher and PCIWeigher.

Every weigher runs alone through nova's real ``HostWeightHandler`` over the
same ``HostState`` objects (built as ``HostManager`` builds them, with PCI
pools), fresh copies for every repetition as nova builds them for every
request. The hosts have the shapes of ``bench_filters.py`` (two-socket
hosts with several page pools, dedicated CPUs on some, few single-cell
hosts); two in five have no devices, the others SR-IOV VFs on one node, VFs
on two nodes or GPUs, and one in five has a physnet nova affines to a node.

``NUMALocalityWeigher`` is timed twice: after ``NUMACellFitFilter`` ran in
the same request (untimed), as deployed: the filter built the host views
the weigher reads; and ``alone``, building the views itself (with the cells
of every compute record already seen).

Every repetition runs every case once, in an order that rotates between
repetitions; a case's ratio is its time per host over RAMWeigher's in the
same repetition, and the figure is the median of those ratios. The garbage
collector stays on (collected before each timed run). "best" is how many
hosts share the best weight: RAMWeigher tells every host apart, PCIWeigher
and NUMALocalityWeigher rank hosts in groups. Last, the memory the filter
and the weigher keep per host between requests, at the largest host count.

Usage: python benchmarks/bench_weighers.py [--hosts 1000 10000]
       [--repeat 7]
"""

import gc
import os
import random
import statistics
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'benchmarks')]

import nova.conf  # noqa: E402
from nova import objects  # noqa: E402
from nova.scheduler import weights  # noqa: E402
from nova.scheduler.weights import pci  # noqa: E402
from nova.scheduler.weights import ram  # noqa: E402

import bench_filters  # noqa: E402
from nova_numa_guard import nova_hosts  # noqa: E402
from nova_numa_guard.scheduler.filters import numa_cell_fit  # noqa: E402
from nova_numa_guard.scheduler.weights import numa_locality  # noqa: E402
from nova_numa_guard import topology  # noqa: E402

PHYSNET = 'physnet1'
PROVIDER = 'provider'


def _vfs(node, pf, count=8):
    return {'vendor_id': '8086', 'product_id': '1515', 'numa_node': node,
            'count': count, 'dev_type': 'type-VF',
            'physical_network': PHYSNET, 'remote_managed': 'false',
            'address': '0000:81:00.%d' % pf}


def _gpus(node, count=2):
    return {'vendor_id': '10de', 'product_id': '20b5', 'numa_node': node,
            'count': count, 'dev_type': 'type-PCI'}


# How a host's devices sit on its cells, by the index of the host.
DEVICES = [
    lambda cells: [],
    lambda cells: [_vfs(0, 0), _vfs(0, 1)],
    lambda cells: [],
    lambda cells: [_vfs(0, 0), _vfs(cells - 1, 1)],
    lambda cells: [_gpus(cells - 1)],
]


def build_hosts(count, seed=0):
    """``count`` HostStates of bench_filters' shapes, with devices."""
    rng = random.Random(seed)
    hosts = []
    weights = [shape[0] for shape in bench_filters.SHAPES]
    for i in range(count):
        _, ncells, shared, dedicated, mb, pages = rng.choices(
            bench_filters.SHAPES, weights)[0]
        huge_mb = sum(size * n // 1024 for size, n in pages.items())
        cells = []
        numa_used = 0
        first = 0
        for c in range(ncells):
            used = rng.choice([0, 0, 4096, 16384])
            numa_used += used
            cpus = range(first, first + shared + dedicated)
            first += shared + dedicated
            physnets = frozenset([PROVIDER]) if (
                i % 5 == 2 and c == 0) else frozenset()
            cells.append(topology.Cell(
                c, frozenset(cpus[:shared]), mb,
                small_page_mb=mb - huge_mb, small_page_used_mb=used,
                pcpus=frozenset(cpus[shared:]),
                hugepages={size: (n, 0) for size, n in pages.items()},
                physnets=physnets))
        used_mb = numa_used + rng.randint(0, ncells * mb // 2)
        pools = DEVICES[(i // 7) % len(DEVICES)](ncells)
        hosts.append(nova_hosts.host_state(
            topology.Host('host%05d' % i, cells, used_mb=used_mb),
            pools=[objects.PciDevicePool.from_dict(pool) for pool in pools]))
    return hosts


def sriov_request():
    """2 GB / 2 vCPU with one SR-IOV port on physnet1, as nova builds it."""
    spec = bench_filters.request(2048, 2)
    spec.pci_requests = objects.InstancePCIRequests(requests=[
        objects.InstancePCIRequest(
            count=1, spec=[{'physical_network': PHYSNET,
                            'remote_managed': 'False',
                            'dev_type': 'type-VF'}],
            request_id='6f0b8a3e-5d2c-4d8e-9a57-0c9f1f1b2a33')])
    spec.network_metadata = objects.NetworkMetadata(
        physnets={PHYSNET}, tunneled=False)
    return spec


def run_once(weigher, hosts, spec):
    """Seconds per host of one weighing through nova's handler."""
    handler = weights.HostWeightHandler()
    gc.collect()
    start = time.perf_counter()
    weighed = handler.get_weighed_objects([weigher], hosts, spec)
    elapsed = time.perf_counter() - start
    return elapsed / len(hosts), weighed


def retained_per_host(guard, weigher, count, spec):
    """Bytes the filter and the weigher keep per host between requests.

    As ``bench_filters.retained_per_host``, on these hosts (with PCI
    pools), the weigher ranking the hosts the filter passed.
    """
    bench_filters.forget()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hosts = build_hosts(count)
        passed = list(guard.filter_all(bench_filters.fresh_copies(hosts),
                                       spec))
        weights.HostWeightHandler().get_weighed_objects([weigher], passed,
                                                        spec)
        del hosts, passed
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / count


def main(argv=None):
    args = bench_filters.parse_args(argv, __doc__.splitlines()[0])
    nova.conf.CONF([], project='nova')
    objects.register_all()
    guard = numa_cell_fit.NUMACellFitFilter()
    locality = numa_locality.NUMALocalityWeigher()
    # (name, weigher, whether NUMACellFitFilter ran first)
    cases = [('RAMWeigher', ram.RAMWeigher(), True),
             ('PCIWeigher', pci.PCIWeigher(), True),
             ('NUMALocalityWeigher', locality, True),
             ('NUMALocalityWeigher alone', locality, False)]
    requests = [('plain 2 GB / 2 vCPU', bench_filters.request(2048, 2)),
                ('SR-IOV port, 2 GB / 2 vCPU', sriov_request())]
    print('per-host medians of %d repetitions; ratio = median of the '
          'per-repetition ratios to RAMWeigher; "alone": without '
          'NUMACellFitFilter before it' % args.repeat)
    print('%-7s %-28s %-26s %9s %6s %6s' % (
        'hosts', 'request', 'weigher', 'us/host', 'ratio', 'best'))
    worst = {}
    for count in args.hosts:
        hosts = build_hosts(count)
        for label, spec in requests:
            samples = {name: [] for name, _, _ in cases}
            ratios = {name: [] for name, _, _ in cases}
            best = {}
            for rep in range(args.repeat):
                with_views = bench_filters.fresh_copies(hosts)
                list(guard.filter_all(with_views, spec))
                without = bench_filters.fresh_copies(hosts)
                times = {}
                for name, weigher, filtered in bench_filters.rotated(cases,
                                                                     rep):
                    per_host, weighed = run_once(
                        weigher, with_views if filtered else without, spec)
                    times[name] = per_host
                    top = weighed[0].weight
                    best[name] = sum(1 for w in weighed if w.weight == top)
                for name, _, _ in cases:
                    samples[name].append(times[name])
                    ratios[name].append(times[name] / times['RAMWeigher'])
            for name, _, _ in cases:
                ratio = statistics.median(ratios[name])
                key = (label.split()[0], name)
                worst[key] = max(worst.get(key, 0.0), ratio)
                print('%-7d %-28s %-26s %9.2f %6.2f %6d' % (
                    count, label, name,
                    statistics.median(samples[name]) * 1e6, ratio,
                    best[name]))
    print('retained by NUMACellFitFilter and NUMALocalityWeigher per host, '
          'plain request: %.0f bytes' % retained_per_host(
              guard, locality, max(args.hosts), requests[0][1]))
    print('worst NUMALocalityWeigher / RAMWeigher ratio: %.2f plain '
          '(target 1.0), %.2f SR-IOV (target 2.0); alone: %.2f plain, '
          '%.2f SR-IOV' % (
              worst[('plain', 'NUMALocalityWeigher')],
              worst[('SR-IOV', 'NUMALocalityWeigher')],
              worst[('plain', 'NUMALocalityWeigher alone')],
              worst[('SR-IOV', 'NUMALocalityWeigher alone')]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
