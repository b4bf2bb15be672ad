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

"""Turn a sysfs tree and the running guests into the live-data payload."""

import os

from nova_numa_guard.agent import guests
from nova_numa_guard import inputs
from nova_numa_guard.inputs import sysfs
from nova_numa_guard.live import payload


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


def physnet_nodes(sysfs_root, physnet_interfaces, devices):
    """The nodes of each physnet's NICs.

    :param physnet_interfaces: ``{physnet: (interface, ...)}``
        (``[numa_guard_agent] physnet_interfaces``).
    :param devices: the :class:`sysfs.Device` list the agent read.
    :returns: ``(physnets, problems)``: ``{physnet: [node id, ...]}`` (sorted;
        empty when the firmware gives no node) for every physnet with at
        least one NIC found, and an :class:`InputError` for each interface
        whose NIC was not found.
    """
    node_of = {device.address: device.numa_node for device in devices}
    physnets, problems = {}, []
    for physnet, interfaces in physnet_interfaces.items():
        nodes, found = set(), False
        for interface in interfaces:
            try:
                addresses = sysfs.interface_devices(sysfs_root, interface)
            except inputs.InputError as exc:
                problems.append(inputs.InputError(
                    exc.source, 'physnet %s: %s' % (physnet, exc.problem)))
                continue
            for address in addresses:
                if address not in node_of:
                    problems.append(inputs.InputError(
                        os.path.join(sysfs_root, sysfs.PCI_DIR, address),
                        'physnet %s: the PCI device of %s could not be read'
                        % (physnet, interface)))
                    continue
                found = True
                if node_of[address] is not None:
                    nodes.add(node_of[address])
        if found:
            physnets[physnet] = sorted(nodes)
    return physnets, problems


def collect(sysfs_root, host, timestamp, key=None, guest_roots=None,
            physnet_interfaces=None):
    """Read sysfs (and the guests) and build the host's payload.

    :param guest_roots: ``(libvirt_root, cgroup_root, libvirt_uri)`` to
        read the running guests from (:mod:`.guests`), or None to publish no
        guest figures.
    :param physnet_interfaces: ``{physnet: (interface, ...)}`` to publish
        the nodes of each physnet's NICs (:func:`physnet_nodes`); None or
        empty to publish no physnets.
    :returns: ``(payload, problems)``: the payload dict (None when no node
        could be read) and the :class:`~nova_numa_guard.inputs.InputError` of
        everything that could not be read (those nodes, devices, guests or
        interfaces are left out; without libvirt or cgroup v2 data, the
        guest figures).
    """
    nodes, problems = sysfs.read_nodes_tolerant(sysfs_root)
    if not nodes:
        return None, problems
    devices, device_problems = sysfs.read_devices(sysfs_root)
    problems.extend(device_problems)
    physnets = None
    if physnet_interfaces:
        physnets, net_problems = physnet_nodes(sysfs_root,
                                               physnet_interfaces, devices)
        problems.extend(net_problems)
    entries = [node_entry(n) for n in nodes]
    guests_mb = None
    if guest_roots is not None:
        libvirt_root, cgroup_root, uri = guest_roots
        memory, guest_problems = guests.guest_memory(
            libvirt_root, cgroup_root,
            {n.id: n.mb('MemFree') for n in nodes},
            [n.id for n in nodes if n.cpus and n.mb('MemTotal') > 0], uri)
        problems.extend(guest_problems)
        if memory is not None:
            guests_mb = memory.guests_mb
            for entry in entries:
                entry['guest_untouched_mb'] = memory.untouched_mb[entry['id']]
    data = payload.build(host, timestamp, entries,
                         [device_entry(d) for d in devices], key=key,
                         guests_mb=guests_mb, physnets=physnets)
    return data, problems
