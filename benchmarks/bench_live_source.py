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
``$NUMA_GUARD_MEMCACHED``), publishes one agent payload per host, then runs
``ComputeFilter`` and ``NUMACellFitFilter`` (``accounted``, ``cache`` with an
empty memo so every run fetches all hosts in one ``get_multi``, ``cache``
with a signing key, and ``cache`` served from the memo) through nova's real
``HostFilterHandler`` over the same ``HostState`` objects, in the same run.
Figures are per host, medians of ``--repeat`` runs; the ratio is to
``ComputeFilter``. ``extra`` is what the live data adds over ``accounted``.

Usage: python benchmarks/bench_live_source.py [--hosts 1000 10000]
       [--repeat 7]
"""

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
from nova_numa_guard import payload  # noqa: E402
from nova_numa_guard.scheduler.filters import numa_cell_fit  # noqa: E402
from nova_numa_guard.sources import cache  # noqa: E402
from tests import memcached_fixture  # noqa: E402

CONF = nova.conf.CONF
KEY = 'benchmark-signing-key'


def host_payload(host_state, key=None):
    """A payload like the agent's for a host: its cells, 2 NICs."""
    nodes = []
    cells = host_state.numa_topology.cells
    for cell in cells:
        nodes.append({
            'id': cell.id, 'cpus': sorted(cell.cpuset),
            'mem_total_mb': cell.memory,
            'mem_free_mb': cell.memory // 3,
            'mem_available_mb': cell.memory // 2,
            'hugepages': {'2048': {'total': 0, 'free': 0},
                          '1048576': {'total': 0, 'free': 0}},
            'distances': [10 if c.id == cell.id else 21 for c in cells]})
    devices = [{'address': '0000:81:00.%d' % i, 'numa_node': cells[-1].id,
                'class': '0x020000', 'vendor_id': '8086',
                'product_id': '1528', 'net': ['ens1f%d' % i]}
               for i in range(2)]
    if key:
        key = payload.host_key(key, host_state.host)
    return payload.encode(payload.build(host_state.host, time.time(), nodes,
                                        devices, key=key))


def make_filter(source, key=None):
    CONF.set_override('memory_source', source, group='numa_guard')
    CONF.set_override('payload_signing_key', key, group='numa_guard')
    return numa_cell_fit.NUMACellFitFilter()


def time_filter(filt, hosts, spec, repeat, forget):
    """Median seconds per host through nova's HostFilterHandler.

    :param forget: None, ``'memo'`` (fetch again; payloads unchanged since
        the last request) or ``'all'`` (fetch and verify every payload).
    """
    handler = nova_filters.HostFilterHandler()
    samples = []
    for _ in range(repeat):
        fresh = bench_filters.fresh_copies(hosts)
        if forget:
            filt._source.forget(verified=forget == 'all')
        with bench_filters.no_gc():
            start = time.perf_counter()
            passed = handler.get_filtered_objects([filt], fresh, spec,
                                                  index=0)
            samples.append((time.perf_counter() - start) / len(hosts))
    return statistics.median(samples), len(passed or ())


def main(argv=None):
    args = bench_filters.parse_args(argv, __doc__.splitlines()[0])

    nova.conf.CONF([], project='nova')
    objects.register_all()
    guard_conf.register_opts(CONF)
    memcached = memcached_fixture.Memcached()
    memcached.setUp()
    try:
        CONF.set_override('enabled', True, group='cache')
        CONF.set_override('backend', 'dogpile.cache.pymemcache',
                          group='cache')
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
    store = cache.Store(CONF, 1.0)
    spec = bench_filters.request(2048, 2)
    print('per-host medians of %d runs through HostFilterHandler; ratio = '
          'filter / ComputeFilter; extra = over accounted' % args.repeat)
    print('%-6s %-22s %9s %6s %8s %7s' % ('hosts', 'filter', 'us/host',
                                          'ratio', 'extra', 'passed'))
    print('cache: new payloads = every payload fetched and verified (each '
          'agent published since the last request); unchanged = fetched, '
          'same bytes as last time; memo = within %.0f s of the last '
          'request' % CONF.numa_guard.live_data_memo_seconds)
    for count in args.hosts:
        hosts = bench_filters.build_hosts(count)
        rows = [('ComputeFilter', compute, None),
                ('NUMACellFit accounted', accounted, None)]
        for h in hosts:
            store.set(h.host, host_payload(h))
        rows.append(('cache: new payloads', live, 'all'))
        rows.append(('cache: unchanged', live, 'memo'))
        rows.append(('cache: memo', live, None))
        timings = []
        for name, filt, forget in rows:
            timings.append((name,) + time_filter(filt, hosts, spec,
                                                 args.repeat, forget))
        for h in hosts:
            store.set(h.host, host_payload(h, KEY))
        timings.append(('cache: new, signed',) + time_filter(
            signed, hosts, spec, args.repeat, 'all'))
        base = timings[0][1]
        plain = timings[1][1]
        for name, per_host, passed in timings:
            print('%-6d %-22s %9.2f %6.2f %8.2f %7d' % (
                count, name, per_host * 1e6, per_host / base,
                (per_host - plain) / base if name.startswith('cache')
                else 0.0, passed))
        host_view._CELLS_MEMO.clear()
    return 0


if __name__ == '__main__':
    sys.exit(main())
