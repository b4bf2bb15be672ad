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

"""nova-numa-guard-demo: the seed's host through nova's real scheduler code.

Builds ``HostState`` objects the way nova's HostManager does, for hosts shaped
like the seed's ``virsh capabilities`` (2 cells of 12 CPUs and ~64 GB), and
runs nova's own filter and weight handlers over them twice: with nova's
default filters plus ``NUMATopologyFilter`` ("stock"), and the same plus
``NUMACellFitFilter`` ("guard"). It prints, per flavor and host, which filter
rejected the host and why, and which host each would pick.

Needs nova importable (run it in nova's environment); no services, no
configuration files.
"""

import argparse
import logging
import sys

import nova.conf
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from nova.virt import hardware

from nova_numa_guard import nova_hosts
from nova_numa_guard import topology

CONF = nova.conf.CONF

STOCK_FILTERS = ['ComputeFilter', 'ComputeCapabilitiesFilter',
                 'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
                 'ServerGroupAffinityFilter', 'NUMATopologyFilter']
GUARD_FILTER = 'NUMACellFitFilter'


def _seed_cells():
    # virsh capabilities in the seed: cell 0 has CPUs 0-5,12-17 and
    # 65872056 KiB, cell 1 has CPUs 6-11,18-23 and 66058400 KiB.
    return [topology.Cell(0, frozenset(list(range(0, 6)) +
                                       list(range(12, 18))), 65872056 // 1024),
            topology.Cell(1, frozenset(list(range(6, 12)) +
                                       list(range(18, 24))), 66058400 // 1024)]


def seed_hosts():
    """The demo's hosts: the seed's host idle and busy, and a 1-cell host."""
    return [
        topology.Host('seed-idle', _seed_cells(), used_mb=512),
        # 60000 MB of guests without a NUMA topology: nova knows it only
        # host-wide, so the 68 GB it counts as free are split over 2 cells.
        topology.Host('seed-busy', _seed_cells(), used_mb=60512),
        # A smaller single-socket host: nova's RAM weigher prefers the
        # seed's host, which has more free memory in total.
        topology.Host('one-cell', [topology.Cell(0, frozenset(range(16)),
                                                 96 * 1024)], used_mb=512),
    ]


FLAVORS = [
    # name, vCPUs, MB, extra specs
    ('seed.70g', 4, 70000, {}),
    ('seed.40g', 4, 40000, {}),
    ('seed.16g', 4, 16384, {}),
    ('seed.70g.vnuma', 4, 70000, {'hw:numa_nodes': '2'}),
]


class _Reasons(logging.Handler):
    """Collects the guard's per-host DEBUG reasons and its INFO summary."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def reason(self, host):
        prefix = '%s, %s fails NUMA cell fit' % (host, host)
        for record in self.records:
            message = record.getMessage()
            if message.startswith(prefix):
                return message.split(': ', 1)[1]
        return ''

    def summaries(self):
        return [r.getMessage() for r in self.records
                if r.levelno == logging.INFO]


def request_spec(name, vcpus, memory_mb, extra_specs):
    flavor = objects.Flavor(name=name, vcpus=vcpus, memory_mb=memory_mb,
                            root_gb=10, ephemeral_gb=0, swap=0,
                            extra_specs=extra_specs)
    image = objects.ImageMeta.from_dict({'properties': {}})
    return objects.RequestSpec(
        flavor=flavor, image=image,
        numa_topology=hardware.numa_get_constraints(flavor, image),
        pci_requests=objects.InstancePCIRequests(requests=[]),
        instance_uuid='d6b5e6a4-3c59-4f07-a4a8-3f3b4b8b6f40',
        instance_group=None, scheduler_hints={}, project_id='demo',
        num_instances=1, ignore_hosts=None, force_hosts=None,
        force_nodes=None)


class Scheduler:
    """Nova's filter and weight handlers with a given list of filters."""

    def __init__(self, filter_names):
        handler = nova_filters.HostFilterHandler()
        classes = {cls.__name__: cls for cls in handler.get_matching_classes(
            ['nova.scheduler.filters.all_filters',
             'nova_numa_guard.scheduler.filters.all_filters'])}
        self.filter_handler = handler
        self.filters = [classes[name]() for name in filter_names]
        self.weight_handler = nova_weights.HostWeightHandler()
        self.weighers = [cls() for cls in self.weight_handler.
                         get_matching_classes(
                             ['nova.scheduler.weights.all_weighers'])]

    def rejected_by(self, state, spec):
        """The first filter that rejects ``state`` alone, or None."""
        for filt in self.filters:
            if not list(filt.filter_all([state], spec)):
                return type(filt).__name__
        return None

    def pick(self, states, spec):
        passed = self.filter_handler.get_filtered_objects(
            self.filters, states, spec, 0) or []
        if not passed:
            return None
        weighed = self.weight_handler.get_weighed_objects(
            self.weighers, passed, spec)
        return weighed[0].obj.host


def run(out=sys.stdout):
    CONF([], project='nova', default_config_files=[])
    objects.register_all()
    reasons = _Reasons()
    guard_log = logging.getLogger('nova_numa_guard')
    guard_log.addHandler(reasons)
    guard_log.setLevel(logging.DEBUG)
    guard_log.propagate = False
    try:
        stock = Scheduler(STOCK_FILTERS)
        guard = Scheduler(STOCK_FILTERS + [GUARD_FILTER])
        hosts = seed_hosts()

        out.write('Hosts (built as nova HostManager builds them):\n')
        for host in hosts:
            cells = ', '.join('cell %d: %d CPUs %d MB' % (
                c.id, len(c.cpus), c.memory_mb) for c in host.cells)
            out.write('  %-10s %s; nova counts %d MB used host-wide\n' % (
                host.name, cells, host.used_mb))

        for name, vcpus, memory_mb, extra_specs in FLAVORS:
            spec = request_spec(name, vcpus, memory_mb, extra_specs)
            specs = ' '.join('%s=%s' % kv for kv in extra_specs.items())
            out.write('\nFlavor %s: %d vCPUs, %d MB %s\n' % (
                name, vcpus, memory_mb, specs or '(no NUMA topology)'))
            out.write('  %-10s %-20s %-20s %s\n' % ('host', 'stock nova',
                                                    'with the guard', 'why'))
            for host in hosts:
                del reasons.records[:]
                state = nova_hosts.host_state(host)
                stock_verdict = stock.rejected_by(state, spec)
                state = nova_hosts.host_state(host)
                guard_verdict = guard.rejected_by(state, spec)
                out.write('  %-10s %-20s %-20s %s\n' % (
                    host.name,
                    ('rejected: ' + stock_verdict if stock_verdict
                     else 'passes'),
                    ('rejected: ' + guard_verdict if guard_verdict
                     else 'passes'),
                    reasons.reason(host.name)))
            stock_pick = stock.pick([nova_hosts.host_state(h) for h in hosts],
                                    spec)
            guard_pick = guard.pick([nova_hosts.host_state(h) for h in hosts],
                                    spec)
            out.write('  stock nova picks: %s; with the guard: %s\n' % (
                stock_pick or 'no valid host', guard_pick or 'no valid host'))

        name, vcpus, memory_mb, extra_specs = FLAVORS[0]
        out.write('\nOnly the seed\'s host, flavor %s: what the operator '
                  'sees\n' % name)
        del reasons.records[:]
        pick = guard.pick([nova_hosts.host_state(hosts[0])],
                          request_spec(name, vcpus, memory_mb, extra_specs))
        out.write('  picked: %s\n' % (pick or 'no valid host (NoValidHost)'))
        for line in reasons.summaries():
            out.write('  INFO %s\n' % line)
    finally:
        guard_log.removeHandler(reasons)
        guard_log.propagate = True
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='nova-numa-guard-demo',
        description='Run nova\'s filter and weight handlers, with and '
                    'without NUMACellFitFilter, over hosts shaped like the '
                    'seed\'s 2 x 64 GB KVM host.')
    parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return run()


if __name__ == '__main__':
    sys.exit(main())
