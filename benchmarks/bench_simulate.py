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

"""Time ``nova-numa-guard simulate`` on a large fleet, capacity included.

Writes a fleet file of ``--hosts`` hosts (the shapes of ``examples/``:
capabilities XML, inline cells with live free memory, agent payloads, SR-IOV
VFs, with deterministic pseudo-random usage) and runs ``--flavors`` flavors
(plain, large, vNUMA, PCI and SR-IOV port flavors) through the simulator, as
the command does. Prints the wall time of reading the fleet and of the
simulation, and how many guests the capacity packing placed.
``--profile`` prints where the time goes.

Usage: python benchmarks/bench_simulate.py [--hosts 1000] [--flavors 20]
       [--profile]
"""

import argparse
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time

import yaml

from nova_numa_guard.inputs import flavors as flavor_inputs
from nova_numa_guard.inputs import fleet as fleet_inputs
from nova_numa_guard.live import payload
from nova_numa_guard import simulation

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'examples')
GB = 1024

FLAVORS = [
    'name=m1.small,vcpus=1,ram=2048',
    'name=m1.medium,vcpus=2,ram=4096',
    'name=m1.large,vcpus=4,ram=8192',
    'name=m1.xlarge,vcpus=8,ram=16384',
    'name=c1.xlarge,vcpus=16,ram=16384',
    'name=r1.large,vcpus=4,ram=32768',
    'name=r1.xlarge,vcpus=8,ram=49152',
    'name=r1.2xlarge,vcpus=8,ram=65536',
    'name=x1.70g,vcpus=4,ram=70000',
    'name=x1.large,vcpus=16,ram=100000',
    'name=x1.xlarge,vcpus=24,ram=131072',
    'name=r1.2xlarge.vnuma,vcpus=8,ram=65536,hw:numa_nodes=2',
    'name=x1.large.vnuma,vcpus=16,ram=100000,hw:numa_nodes=2',
    'name=m1.xlarge.pinned,vcpus=8,ram=16384,hw:numa_nodes=1',
    'name=nfv.medium,vcpus=4,ram=16384,pci_passthrough:alias=x710-vf:1',
    'name=nfv.port,vcpus=4,ram=8192,port=physnet2:direct',
    'name=m1.tiny,vcpus=1,ram=512',
    'name=m2.large,vcpus=4,ram=12288',
    'name=m2.xlarge,vcpus=8,ram=24576',
    'name=r2.large,vcpus=6,ram=40960',
]


def write_fleet(directory, count, seed=0):
    """A fleet file of ``count`` hosts in ``directory``; returns its path."""
    rng = random.Random(seed)
    hosts = []
    for i in range(count):
        kind = i % 6
        name = 'compute%05d' % i
        if kind == 0:
            hosts.append({'name': name, 'capabilities': os.path.join(
                EXAMPLES, 'two-node-64g-capabilities.xml'),
                'used_mb': 512 + rng.randrange(0, 96) * GB})
        elif kind == 1:
            hosts.append({'name': name, 'capabilities': os.path.join(
                EXAMPLES, 'two-node-96g-32g-capabilities.xml'),
                'used_mb': 512 + rng.randrange(0, 96) * GB})
        elif kind == 2:
            path = os.path.join(directory, name + '.json')
            with open(path, 'wb') as f:
                f.write(_payload(name, rng))
            hosts.append({'live': path, 'used_mb': 512 + 300 * GB})
        elif kind == 3:
            hosts.append({'name': name, 'capabilities': os.path.join(
                EXAMPLES, 'two-node-64g-cxl-256g-capabilities.xml'),
                'used_mb': 512 + rng.randrange(0, 256) * GB})
        elif kind == 4:
            used = [rng.randrange(0, 56) * GB for _ in range(2)]
            hosts.append({'name': name, 'cells': [
                {'cpus': '0-11', 'memory_mb': 64328,
                 'free_mb': 64328 - used[0] - 2048},
                {'cpus': '12-23', 'memory_mb': 64510,
                 'free_mb': 64510 - used[1] - 1024}],
                'used_mb': 512 + sum(used)})
        else:
            hosts.append({'name': name, 'cells': [
                {'cpus': '0-11', 'memory_mb': 64328},
                {'cpus': '12-23', 'memory_mb': 64510}],
                'pci': [{'numa_node': 1, 'vendor_id': '8086',
                         'product_id': '154c', 'dev_type': 'type-VF',
                         'physical_network': 'physnet2', 'count': 16}],
                'physnets': {'physnet2': [1]},
                'used_mb': 512 + rng.randrange(0, 96) * GB})
    document = {'pci_aliases': [{'name': 'x710-vf', 'vendor_id': '8086',
                                 'product_id': '154c',
                                 'device_type': 'type-VF'}],
                'hosts': hosts}
    path = os.path.join(directory, 'fleet.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump(document, f)
    return path


def _payload(name, rng):
    """A 4-node host's agent payload with some guests on it."""
    nodes = []
    guests = 0
    for node in range(4):
        used = rng.randrange(40, 120) * GB
        guests += used
        free = 128511 - used
        nodes.append({'id': node, 'cpus': list(range(16 * node,
                                                     16 * node + 16)),
                      'mem_total_mb': 128511, 'mem_free_mb': free,
                      'mem_available_mb': free,
                      'guest_untouched_mb': min(free, rng.randrange(0, 8) *
                                                GB)})
    return payload.encode(payload.build(name, time.time(), nodes,
                                        guests_mb=guests))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--flavors', type=int, default=len(FLAVORS))
    parser.add_argument('--profile', action='store_true',
                        help='print where the time goes')
    args = parser.parse_args(argv)
    flavors = [flavor_inputs.parse_spec(spec)
               for spec in (FLAVORS * (1 + args.flavors // len(FLAVORS)))[
                   :args.flavors]]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fleet(tmp, args.hosts)
        start = time.perf_counter()
        fleet = fleet_inputs.load(path)
        loaded = time.perf_counter()
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        report = simulation.simulate(fleet, flavors)
        if profile:
            profile.disable()
        done = time.perf_counter()
    packed = sum(r[run]['capacity'] for r in report.requests
                 for run in ('stock', 'guard'))
    print('%d hosts x %d flavors: %.1f s (fleet file %.1f s, simulation '
          '%.1f s); capacity packing placed %d guests' % (
              args.hosts, len(flavors), done - start, loaded - start,
              done - loaded, packed))
    if profile:
        stats = pstats.Stats(profile, stream=sys.stdout)
        stats.sort_stats('cumulative').print_stats(25)
        stats.sort_stats('tottime').print_stats(15)
    return 0


if __name__ == '__main__':
    sys.exit(main())
