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

"""Time NUMACellFitFilter with the ``cache`` source against memcached.

Starts its own memcached on 127.0.0.1 (``/usr/bin/memcached`` or
``$NUMA_GUARD_MEMCACHED``), publishes one agent memory record per host (with
the guest figures), then runs ``ComputeFilter`` and ``NUMACellFitFilter``
(``accounted``; ``cache`` with every record new, so every run fetches all
hosts in one batched ``get`` and verifies every record, the source knowing
each host's keys as when every agent published anew; ``cache`` with the
records unchanged since the last fetch; ``cache`` served from the memo
window; every record new and signed) through nova's real
``HostFilterHandler`` over the same ``HostState`` objects, in the same run.
Figures are per host, medians of ``--repeat`` runs; the ratio is to
``ComputeFilter``. ``extra`` is what the live data adds over ``accounted``.
The garbage collector stays on while a run is timed, as in nova-scheduler;
a full collection before each run keeps the garbage of the cases before it
from being collected (about 0.6 s with 10,000 hosts) in its time.

Usage: python benchmarks/bench_live_source.py [--hosts 1000 10000]
       [--repeat 7]
"""

import copy
import gc
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'benchmarks')]

import nova.conf  # noqa: E402
from nova import objects  # noqa: E402
from nova.scheduler import filters as nova_filters  # noqa: E402
from nova.scheduler.filters import compute_filter  # noqa: E402

import bench_filters  # noqa: E402
from nova_numa_guard import conf as guard_conf  # noqa: E402
from nova_numa_guard import host_view  # noqa: E402
from nova_numa_guard.live import payload  # noqa: E402
from nova_numa_guard.live import store as live_store  # noqa: E402
from nova_numa_guard.scheduler.filters import numa_cell_fit  # noqa: E402
from tests import memcached_fixture  # noqa: E402

CONF = nova.conf.CONF
KEY = 'benchmark-signing-key'


def host_record(host_state, key=None):
    """The memory record the agent stores for a host: its cells, guests."""
    nodes = []
    cells = host_state.numa_topology.cells
    for cell in cells:
        nodes.append({
            'id': cell.id, 'cpus': sorted(cell.cpuset),
            'mem_total_mb': cell.memory,
            'mem_free_mb': cell.memory // 3,
            'mem_available_mb': cell.memory // 2,
            'guest_untouched_mb': cell.memory // 16,
            'hugepages': {'2048': {'total': 0, 'free': 0},
                          '1048576': {'total': 0, 'free': 0}},
            'distances': [10 if c.id == cell.id else 21 for c in cells]})
    devices = [{'address': '0000:81:00.%d' % i, 'numa_node': cells[-1].id,
                'class': '0x020000', 'vendor_id': '8086',
                'product_id': '1528', 'net': ['ens1f%d' % i]}
               for i in range(2)]
    if key:
        key = payload.host_key(key, host_state.host)
    # The agent saw every guest nova accounts to the host, but on every
    # tenth host a 4 GB guest nova placed since (so it is unseen).
    guests_mb = host_state.total_usable_ram_mb - host_state.free_ram_mb - 512
    if int(host_state.host[-5:]) % 10 == 0:
        guests_mb -= 4096
    guests_mb = max(0, guests_mb)
    full = payload.build(host_state.host, time.time(), nodes, devices,
                         guests_mb=guests_mb)
    return payload.encode_record(full, key)


def publish(store, hosts, key=None):
    store.set_many({live_store.key(live_store.RECORD_PREFIX, h.host):
                    host_record(h, key) for h in hosts}, 600)


def make_filter(source, key=None):
    CONF.set_override('memory_source', source, group='numa_guard')
    CONF.set_override('payload_signing_key', key, group='numa_guard')
    return numa_cell_fit.NUMACellFitFilter()


def run_once(handler, filt, hosts, spec, forget):
    """Seconds per host of one request through nova's HostFilterHandler.

    :param forget: None, ``'memo'`` (fetch again; payloads unchanged since
        the last request) or ``'all'`` (fetch and verify every payload).
    """
    fresh = bench_filters.fresh_copies(hosts)
    if forget:
        filt._source.forget(verified=forget == 'all')
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    passed = handler.get_filtered_objects([filt], fresh, spec, index=0)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return elapsed / len(hosts), cpu / len(hosts), len(passed or ())


def renamed(hosts, prefix):
    """Copies of the hosts under other names (their own payload keys), as
    other compute nodes.
    """
    copies = []
    for host in hosts:
        copied = copy.copy(host)
        copied.host = copied.nodename = prefix + host.host
        copied.uuid = prefix + host.uuid
        copies.append(copied)
    return copies


def main(argv=None):
    args = bench_filters.parse_args(argv, __doc__.splitlines()[0])

    nova.conf.CONF([], project='nova')
    objects.register_all()
    guard_conf.register_opts(CONF)
    memcached = memcached_fixture.Memcached()
    memcached.setUp()
    try:
        CONF.set_override('backend', 'dogpile.cache.pymemcache',
                          group='cache')
        # A first fetch of 10,000 hosts must not hit the deadline.
        CONF.set_override('cache_timeout', 10.0, group='numa_guard')
        CONF.set_override('memcache_servers', [memcached.url], group='cache')
        CONF.set_override('max_data_age', 3600, group='numa_guard')
        return run(args)
    finally:
        memcached.cleanUp()


def run(args):
    compute = compute_filter.ComputeFilter()
    accounted = make_filter('accounted')
    live = make_filter('cache')
    signed = make_filter('cache', KEY)
    store = live_store.MemcacheStore(CONF.cache.memcache_servers, 10.0)
    spec = bench_filters.request(2048, 2)
    print('per-host medians of %d runs through HostFilterHandler, garbage '
          'collector on; ratio = median of filter / ComputeFilter in the '
          'same repetition; extra = over accounted' % args.repeat)
    print('%-6s %-22s %9s %6s %8s %6s %7s' % (
        'hosts', 'filter', 'us/host', 'ratio', 'extra', 'cpu', 'passed'))
    print('cpu: the same ratio of this process\'s CPU time, without the time '
          'spent waiting for memcached (which shares this machine)')
    print('cache: new payloads = every payload fetched and verified (each '
          'agent published since the last request); unchanged = fetched, '
          'same bytes as last time; memo = within %.0f s of the last '
          'request' % CONF.numa_guard.live_data_memo_seconds)
    handler = nova_filters.HostFilterHandler()
    for count in args.hosts:
        hosts = bench_filters.build_hosts(count)
        signed_hosts = renamed(hosts, 's-')
        publish(store, hosts)
        publish(store, signed_hosts, KEY)
        # Every repetition runs every case once, so that each case's ratio
        # is taken to ComputeFilter's time of the same repetition (the
        # machine's speed drifts between repetitions more than the cases
        # differ), each group of cases in every place of the order in turn
        # (the place alone moves a case's time by up to 10%). The memo case
        # runs right after a fetch.
        groups = [[('ComputeFilter', compute, hosts, None)],
                  [('NUMACellFit accounted', accounted, hosts, None)],
                  [('cache: new payloads', live, hosts, 'all')],
                  [('cache: unchanged', live, hosts, 'memo'),
                   ('cache: memo', live, hosts, None)],
                  [('cache: new, signed', signed, signed_hosts, 'all')]]
        cases = [case for group in groups for case in group]
        samples = {name: [] for name, _, _, _ in cases}
        ratios = {name: [] for name, _, _, _ in cases}
        cpu_ratios = {name: [] for name, _, _, _ in cases}
        passed = {}
        for rep in range(args.repeat):
            times = {}
            for group in bench_filters.rotated(groups, rep):
                for name, filt, case_hosts, forget in group:
                    times[name] = run_once(handler, filt, case_hosts, spec,
                                           forget)
            base, base_cpu, _ = times['ComputeFilter']
            for name, _, _, _ in cases:
                per_host, cpu, passed[name] = times[name]
                samples[name].append(per_host)
                ratios[name].append(per_host / base)
                cpu_ratios[name].append(cpu / base_cpu)
        for name, _, _, _ in cases:
            ratio = statistics.median(ratios[name])
            extra = ratio - statistics.median(
                ratios['NUMACellFit accounted'])
            print('%-6d %-22s %9.2f %6.2f %8.2f %6.2f %7d' % (
                count, name, statistics.median(samples[name]) * 1e6, ratio,
                extra if name.startswith('cache') else 0.0,
                statistics.median(cpu_ratios[name]), passed[name]))
        host_view._MEMO.clear()
    return 0


if __name__ == '__main__':
    sys.exit(main())
