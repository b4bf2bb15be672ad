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

"""Turn a sysfs tree into the live-data payload (no I/O besides sysfs)."""

from nova_numa_guard.inputs import sysfs
from nova_numa_guard import payload


def node_entry(node):
    """The payload entry of one :class:`sysfs.Node`."""
    return {
        'id': node.id,
        'cpus': node.cpus,
        'mem_total_mb': node.mb('MemTotal'),
        'mem_free_mb': node.mb('MemFree'),
        'mem_available_mb': node.available_mb,
        'hugepages': {str(size): {'total': total, 'free': free}
                      for size, (total, free)
                      in sorted(node.hugepages.items())},
        'distances': node.distances,
    }


def device_entry(device):
    """The payload entry of one :class:`sysfs.Device`."""
    return {'address': device.address, 'numa_node': device.numa_node,
            'class': device.pci_class, 'vendor_id': device.vendor_id,
            'product_id': device.product_id, 'net': device.net}


def collect(sysfs_root, host, timestamp, key=None):
    """Read sysfs and build the host's payload.

    :returns: ``(payload, problems)``: the payload dict (None when no node
        could be read) and the :class:`~nova_numa_guard.inputs.InputError` of
        every file that could not be read (those nodes or devices are left
        out).
    """
    nodes, problems = sysfs.read_nodes_tolerant(sysfs_root)
    if not nodes:
        return None, problems
    devices, device_problems = sysfs.read_devices(sysfs_root)
    problems.extend(device_problems)
    data = payload.build(host, timestamp, [node_entry(n) for n in nodes],
                         [device_entry(d) for d in devices], key=key)
    return data, problems
