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

"""Fake sysfs trees for the sysfs reader, the agent and the functional tests.

``two_node_nodes()`` are the nodes of the motivating host, two-node-64g:
its ``numastat -m`` figures (MB) written back as per-node meminfo (kB).
"""

import os

# numastat -m of the two-node-64g host, in MB, per node.
TWO_NODE_NUMASTAT_MB = [
    {'MemTotal': 64328.18, 'MemFree': 10501.73, 'MemUsed': 53826.45,
     'Active': 48528.07, 'Inactive': 3082.79, 'Active(anon)': 45496.47,
     'Inactive(anon)': 0.12, 'Active(file)': 3031.60,
     'Inactive(file)': 3082.67, 'Dirty': 0.50, 'FilePages': 6115.00,
     'Mapped': 13.54, 'AnonPages': 45495.84, 'Shmem': 0.73,
     'KernelStack': 6.70, 'PageTables': 94.40, 'Slab': 1462.05,
     'SReclaimable': 701.69, 'SUnreclaim': 760.36, 'AnonHugePages': 1396.00},
    {'MemTotal': 64510.16, 'MemFree': 2769.72, 'MemUsed': 61740.43,
     'Active': 55331.48, 'Inactive': 4013.75, 'Active(anon)': 51762.40,
     'Inactive(anon)': 0.18, 'Active(file)': 3569.08,
     'Inactive(file)': 4013.56, 'Dirty': 0.30, 'FilePages': 7584.15,
     'Mapped': 6.84, 'AnonPages': 51761.65, 'Shmem': 0.94,
     'KernelStack': 4.98, 'PageTables': 124.43, 'Slab': 1622.14,
     'SReclaimable': 1071.01, 'SUnreclaim': 551.12, 'AnonHugePages': 438.00},
]
# What the payload must say for the two-node-64g host (MiB, rounded down).
TWO_NODE_FREE_MB = {0: 10501, 1: 2769}
# MemFree + Inactive(file) + SReclaimable.
TWO_NODE_AVAILABLE_MB = {0: 14286, 1: 7854}


def two_node_nodes():
    """two-node-64g's nodes: 12 CPUs each (0-5,12-17 and 6-11,18-23)."""
    nodes = []
    for node_id, figures in enumerate(TWO_NODE_NUMASTAT_MB):
        meminfo = {key: int(round(mb * 1024)) for key, mb in figures.items()
                   if key != 'MemUsed'}
        meminfo.update({'HugePages_Total': 0, 'HugePages_Free': 0,
                        'HugePages_Surp': 0})
        nodes.append({
            'id': node_id,
            'cpulist': '0-5,12-17' if node_id == 0 else '6-11,18-23',
            'meminfo': meminfo,
            'distance': '10 21' if node_id == 0 else '21 10',
            'hugepages': {2048: (0, 0), 1048576: (0, 0)},
        })
    return nodes


def meminfo_text(node_id, meminfo):
    """meminfo as the kernel writes it (hugepage counts have no unit)."""
    lines = []
    for key, value in meminfo.items():
        unit = '' if key.startswith('HugePages_') else ' kB'
        lines.append('Node %d %-15s %8d%s' % (node_id, key + ':', value,
                                              unit))
    return '\n'.join(lines) + '\n'


def write_tree(root, nodes, devices=(), nets=None, lowers=None):
    """Write a sysfs tree under ``root``.

    :param nodes: dicts with ``id``, ``cpulist``, ``meminfo`` (dict, or raw
        text), ``distance`` and ``hugepages`` (``{size_kb: (total, free)}``);
        a key set to None leaves that file out.
    :param devices: dicts with ``address``, ``numa_node``, ``class``,
        ``vendor``, ``device`` (sysfs spellings, e.g. ``0x8086``).
    :param nets: ``{ifname: pci_address}``.
    :param lowers: ``{ifname: [lower ifname, ...]}``: virtual interfaces
        (bonds, VLANs) and the interfaces below them (``lower_<name>``
        links, as the kernel makes them).
    """
    base = os.path.join(root, 'devices', 'system', 'node')
    os.makedirs(base, exist_ok=True)
    for node in nodes:
        path = os.path.join(base, 'node%d' % node['id'])
        os.makedirs(path, exist_ok=True)
        meminfo = node.get('meminfo')
        if isinstance(meminfo, dict):
            meminfo = meminfo_text(node['id'], meminfo)
        _write(path, 'meminfo', meminfo)
        _write(path, 'cpulist', _line(node.get('cpulist')))
        _write(path, 'distance', _line(node.get('distance')))
        for size_kb, (total, free) in (node.get('hugepages') or {}).items():
            pages = os.path.join(path, 'hugepages', 'hugepages-%dkB' % size_kb)
            os.makedirs(pages, exist_ok=True)
            _write(pages, 'nr_hugepages', '%d\n' % total)
            _write(pages, 'free_hugepages', '%d\n' % free)
    pci = os.path.join(root, 'bus', 'pci', 'devices')
    os.makedirs(pci, exist_ok=True)
    for device in devices:
        path = os.path.join(pci, device['address'])
        os.makedirs(path, exist_ok=True)
        for leaf in ('numa_node', 'class', 'vendor', 'device'):
            _write(path, leaf, _line(device.get(leaf)))
    net = os.path.join(root, 'class', 'net')
    os.makedirs(os.path.join(net, 'lo'), exist_ok=True)
    for ifname, address in (nets or {}).items():
        os.makedirs(os.path.join(net, ifname), exist_ok=True)
        os.symlink(os.path.join('..', '..', '..', 'bus', 'pci', 'devices',
                                address),
                   os.path.join(net, ifname, 'device'))
    for ifname, below in (lowers or {}).items():
        os.makedirs(os.path.join(net, ifname), exist_ok=True)
        for lower in below:
            os.symlink(os.path.join('..', lower),
                       os.path.join(net, ifname, 'lower_' + lower))
    return root


TWO_NODE_DEVICES = [
    {'address': '0000:81:00.0', 'numa_node': 1, 'class': '0x020000',
     'vendor': '0x8086', 'device': '0x1528'},
    {'address': '0000:81:00.1', 'numa_node': 1, 'class': '0x020000',
     'vendor': '0x8086', 'device': '0x1528'},
    {'address': '0000:00:1f.0', 'numa_node': -1, 'class': '0x060100',
     'vendor': '0x8086', 'device': '0x8d44'},
    {'address': '0000:03:00.0', 'numa_node': 0, 'class': '0x010802',
     'vendor': '0x144d', 'device': '0xa808'},
]
TWO_NODE_NETS = {'ens1f0': '0000:81:00.0', 'ens1f1': '0000:81:00.1'}


def write_two_node_tree(root):
    """two-node-64g: its two nodes, two NIC ports on node 1, an NVMe."""
    return write_tree(root, two_node_nodes(), TWO_NODE_DEVICES, TWO_NODE_NETS)


def _line(value):
    return None if value is None else '%s\n' % value


def _write(path, name, text):
    if text is None:
        return
    with open(os.path.join(path, name), 'w') as handle:
        handle.write(text)
