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

"""``nova-numa-guard inspect``: this machine's NUMA nodes in one table."""

import logging

from cliff import lister

from nova_numa_guard.inputs import InputError
from nova_numa_guard.inputs import sysfs

LOG = logging.getLogger(__name__)

COLUMNS = ('Node', 'CPUs', 'Total MB', 'Free MB', 'Available MB',
           'Hugepages', 'Distances', 'Devices')

# PCI base classes of sysfs.DEVICE_CLASSES, as lspci names them.
_CLASS_NAMES = {'01': 'storage', '02': 'network', '03': 'display',
                '0b': 'processor', '12': 'accelerator'}


class InspectHost(lister.Lister):
    """Show this machine's NUMA nodes, their memory and devices.

    One row per node, from sysfs: its CPUs (as lscpu lists them), its
    memory as ``numastat -m`` shows it (MemTotal, MemFree, and the memory
    available: MemFree + Inactive(file) + SReclaimable, which the agent
    publishes), its hugepages, its distances to the other nodes, and the
    PCI devices and network interfaces attached to it (as hwloc-ls shows
    them). Devices the firmware puts on no node get a row of their own.
    Needs neither nova nor root.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--sysfs-root', metavar='<path>', default='/sys',
            help='Where sysfs is mounted (default: %(default)s)')
        return parser

    def take_action(self, parsed_args):
        root = parsed_args.sysfs_root
        nodes, problems = sysfs.read_nodes_tolerant(root)
        if not nodes:
            raise problems[0] if problems else InputError(
                root, 'no NUMA node could be read')
        devices, device_problems = sysfs.read_devices(root)
        for problem in problems + device_problems:
            LOG.warning('Warning: left out: %s', problem)
        table = rows(nodes, devices)
        if parsed_args.formatter == 'table':
            # The row of devices on no node: None reads badly in a table.
            table = [tuple('-' if value is None else value for value in row)
                     for row in table]
        return COLUMNS, table


def rows(nodes, devices):
    """The table rows of ``nodes`` and the ``devices`` on them.

    :param nodes: :class:`nova_numa_guard.inputs.sysfs.Node` objects.
    :param devices: :class:`nova_numa_guard.inputs.sysfs.Device` objects.
    """
    by_node = {}
    for device in devices:
        by_node.setdefault(device.numa_node, []).append(device_text(device))
    table = []
    for node in nodes:
        table.append((
            node.id, cpu_list(node.cpus), node.mb('MemTotal'),
            node.mb('MemFree'), node.available_mb,
            ', '.join('%s: %d of %d free' % (page_size(size_kb), free, total)
                      for size_kb, (total, free)
                      in sorted(node.hugepages.items())),
            ' '.join(map(str, node.distances)),
            ', '.join(by_node.pop(node.id, ()))))
    # Devices on no node (the firmware says -1) or on a node not read.
    for node_id in sorted(by_node, key=lambda key: (key is None, key)):
        table.append((node_id, '', None, None, None, '', '',
                      ', '.join(by_node[node_id])))
    return table


def cpu_list(cpus):
    """CPU ids as the kernel's cpulist spells them: ``0-5,12-17``."""
    ranges = []
    for cpu in sorted(cpus):
        if ranges and ranges[-1][1] == cpu - 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ','.join(str(first) if first == last else '%d-%d' % (first, last)
                    for first, last in ranges)


def page_size(size_kb):
    """``2048`` -> ``2M``, ``1048576`` -> ``1G``, as hugepage sizes go."""
    for unit, kb in (('G', 1024 * 1024), ('M', 1024)):
        if size_kb % kb == 0:
            return '%d%s' % (size_kb // kb, unit)
    return '%dK' % size_kb


def device_text(device):
    """``0000:81:00.0 network ens1f0``: address, class and interfaces."""
    words = [device.address,
             _CLASS_NAMES.get(device.pci_class[2:4], device.pci_class)]
    return ' '.join(words + device.net)
