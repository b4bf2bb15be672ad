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

"""Fake libvirt runtime trees and cgroup v2 trees for the guest reader.

A guest is described by a dict, as ``fake_sysfs`` describes nodes::

    {'name': 'instance-00000001', 'id': 1, 'size_mb': 4096,
     'hugepages': False,          # <memoryBacking><hugepages/>
     'nodeset': None,             # <numatune><memory nodeset=...>
     'cells': None,               # [(size_mb, nodeset), ...]: guest NUMA
                                  # cells, each bound by a <memnode>
     'mode': 'strict',            # numatune mode
     'anon_mb': {0: 1024},        # memory.numa_stat anon, MiB per node
     'shmem_mb': {},              # memory.numa_stat shmem, MiB per node
     'scope': True,               # False: no scope yet (guest starting)
     'numa_stat': True}           # False: a scope without memory.numa_stat
                                  # (memory controller not enabled)

:func:`write_guests` writes every guest's runtime XML under a libvirt root
(``/run/libvirt/qemu`` on a real host) and its scope under a cgroup v2 root
(``/sys/fs/cgroup``). The lower-level writers build broken trees.

:class:`FakeLibvirt` puts a ``libvirt`` module into ``sys.modules`` whose
``openReadOnly(uri).listAllDomains(flags)`` returns :class:`FakeDomain`
objects (``name()``, ``XMLDesc(0)``).
"""

import os
import sys
import types
from unittest import mock

import fixtures

MIB = 1024 * 1024
# What a cgroup v2 root lists as its controllers.
CONTROLLERS = 'cpuset cpu io memory hugetlb pids rdma misc\n'
# memory.numa_stat keys in the kernel's order; anon and shmem make up a
# guest's RAM, the rest must be ignored (anon_thp and shmem_thp are already
# part of anon and shmem).
NUMA_STAT_KEYS = (
    'anon', 'file', 'kernel_stack', 'pagetables', 'sec_pagetables', 'shmem',
    'file_mapped', 'file_dirty', 'file_writeback', 'swapcached', 'anon_thp',
    'file_thp', 'shmem_thp', 'inactive_anon', 'active_anon', 'inactive_file',
    'active_file', 'unevictable', 'slab_reclaimable', 'slab_unreclaimable')
# Bytes per node of every other key: large enough that counting one of them
# by mistake changes every figure.
OTHER_BYTES = 3 * MIB * 1024


def escape_unit_name(text):
    """``text`` as systemd escapes it in a unit name (``-`` -> ``\\x2d``)."""
    return ''.join(
        c if (c.isascii() and (c.isalnum() or c in ':_.')) else
        ''.join('\\x%02x' % b for b in c.encode('utf-8'))
        for c in text)


def scope_name(domain_id, name):
    """``machine-qemu\\x2d<id>\\x2d<name>.scope`` of a guest.

    The four literal characters ``\\x2d`` stand for every ``-`` of the
    machine name ``qemu-<id>-<name>``, as systemd escapes it.
    """
    return 'machine-%s.scope' % escape_unit_name('qemu-%d-%s' % (domain_id,
                                                                name))


def domain_xml(name, domain_id, size_mb, hugepages=False, nodeset=None,
               cells=None, mode='strict', status=True, current_mb=None):
    """A running guest's domain XML, shaped like the XML nova generates.

    :param nodeset: bind the guest's memory (``<numatune><memory>``).
    :param cells: ``[(size_mb, nodeset), ...]``: guest NUMA cells
        (``<cpu><numa><cell>``), each bound by a ``<memnode>``; the
        ``<memory>`` nodeset is then their union unless ``nodeset`` is given.
    :param status: wrap it in ``<domstatus>`` as libvirt's runtime file does;
        False: the ``XMLDesc(0)`` form.
    :param current_mb: ``<currentMemory>`` when it differs (balloon).
    """
    kib = size_mb * 1024
    current = kib if current_mb is None else current_mb * 1024
    backing = ''
    if hugepages:
        backing = ("<memoryBacking><hugepages><page size='2048' unit='KiB' "
                   "nodeset='0'/></hugepages></memoryBacking>")
    numatune = numa = ''
    if cells and nodeset is None:
        nodeset = ','.join(sorted({cell_nodes for _, cell_nodes in cells}))
    if nodeset is not None or cells:
        memnodes = ''.join(
            "<memnode cellid='%d' mode='%s' nodeset='%s'/>" % (
                cell_id, mode, cell_nodes)
            for cell_id, (_, cell_nodes) in enumerate(cells or ()))
        numatune = ("<numatune><memory mode='%s' nodeset='%s'/>%s"
                    "</numatune>" % (mode, nodeset, memnodes))
    if cells:
        numa = '<numa>%s</numa>' % ''.join(
            "<cell id='%d' cpus='%d' memory='%d' unit='KiB'/>" % (
                cell_id, cell_id, cell_mb * 1024)
            for cell_id, (cell_mb, _) in enumerate(cells))
    domain = (
        "<domain type='kvm' id='%(id)d'>\n"
        "  <name>%(name)s</name>\n"
        "  <uuid>6f5c1b8e-0d43-4e0a-9b0e-%(id)012d</uuid>\n"
        "  <metadata><nova:instance xmlns:nova="
        "'http://openstack.org/xmlns/libvirt/nova/1.1'><nova:flavor "
        "name='m1'><nova:memory>%(size)d</nova:memory></nova:flavor>"
        "</nova:instance></metadata>\n"
        "  <memory unit='KiB'>%(kib)d</memory>\n"
        "  <currentMemory unit='KiB'>%(current)d</currentMemory>\n"
        "  %(backing)s\n"
        "  <vcpu placement='static'>%(vcpus)d</vcpu>\n"
        "  %(numatune)s\n"
        "  <os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type></os>\n"
        "  <cpu mode='host-model' check='partial'>%(numa)s</cpu>\n"
        "  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        "</devices>\n"
        "</domain>\n" % {
            'id': domain_id, 'name': name, 'size': size_mb, 'kib': kib,
            'current': current, 'backing': backing, 'numatune': numatune,
            'numa': numa, 'vcpus': max(1, len(cells or ()))})
    if not status:
        return domain
    return (
        "<domstatus state='running' reason='booted' pid='%(pid)d'>\n"
        "  <taint flag='high-privileges'/>\n"
        "  <monitor path='/var/lib/libvirt/qemu/domain-%(id)d-%(name)s/"
        "monitor.sock' type='unix'/>\n"
        "  <vcpus><vcpu id='0' pid='%(vcpu)d'/></vcpus>\n"
        "  <qemuCaps><flag name='kvm'/></qemuCaps>\n"
        "%(domain)s"
        "</domstatus>\n" % {'pid': 4000 + domain_id, 'id': domain_id,
                            'name': name, 'vcpu': 5000 + domain_id,
                            'domain': domain})


def numa_stat_text(anon, shmem=None, nodes=None):
    """A scope's ``memory.numa_stat`` as the kernel writes it.

    :param anon: ``{node: bytes}``.
    :param shmem: ``{node: bytes}``.
    :param nodes: the node ids every line lists (default: those of ``anon``
        and ``shmem``, at least node 0).
    """
    shmem = shmem or {}
    if nodes is None:
        nodes = sorted(set(anon) | set(shmem)) or [0]
    lines = []
    for key in NUMA_STAT_KEYS:
        values = {'anon': anon, 'shmem': shmem}.get(key)
        lines.append(key + ''.join(
            ' N%d=%d' % (node, values.get(node, 0) if values is not None
                         else OTHER_BYTES)
            for node in nodes))
    return '\n'.join(lines) + '\n'


def write_runtime_dir(root):
    """An empty libvirt runtime directory (no guest runs)."""
    os.makedirs(root, exist_ok=True)
    return root


def write_runtime_xml(root, name, text):
    """``<root>/<name>.xml`` with ``text``; returns its path."""
    write_runtime_dir(root)
    path = os.path.join(root, name + '.xml')
    with open(path, 'w') as handle:
        handle.write(text)
    return path


def write_cgroup_root(root, v2=True, machine_slice=True):
    """A cgroup v2 root: ``cgroup.controllers`` and ``machine.slice``.

    :param v2: False leaves ``cgroup.controllers`` out (a cgroup v1 or
        hybrid mount).
    :param machine_slice: False leaves ``machine.slice`` out.
    """
    os.makedirs(root, exist_ok=True)
    if v2:
        _write(root, 'cgroup.controllers', CONTROLLERS)
        _write(root, 'cgroup.subtree_control', 'cpu io memory pids\n')
    if machine_slice:
        path = os.path.join(root, 'machine.slice')
        os.makedirs(path, exist_ok=True)
        _write(path, 'cgroup.controllers', 'cpu io memory pids\n')
    return root


def write_scope(root, domain_id, name, anon=None, shmem=None, text=None):
    """A guest's scope under ``<root>/machine.slice``.

    :param anon: ``{node: bytes}`` of its ``memory.numa_stat``.
    :param shmem: ``{node: bytes}``.
    :param text: the raw ``memory.numa_stat`` instead; None with ``anon``
        None leaves the file out.
    :returns: the scope directory.
    """
    path = os.path.join(root, 'machine.slice', scope_name(domain_id, name))
    # libvirt >= 7 puts the processes in sub-cgroups of the scope.
    os.makedirs(os.path.join(path, 'libvirt', 'emulator'), exist_ok=True)
    _write(path, 'cgroup.procs', '')
    if text is None and anon is not None:
        text = numa_stat_text(anon, shmem)
    _write(path, 'memory.numa_stat', text)
    return path


def write_guests(libvirt_root, cgroup_root, guests):
    """Write running ``guests`` (dicts as in the module docstring).

    The cgroup v2 root and runtime directory are created when missing.
    :returns: ``(libvirt_root, cgroup_root)``.
    """
    write_runtime_dir(libvirt_root)
    if not os.path.exists(os.path.join(cgroup_root, 'cgroup.controllers')):
        write_cgroup_root(cgroup_root)
    for guest in guests:
        write_runtime_xml(libvirt_root, guest['name'], domain_xml(
            guest['name'], guest['id'], guest['size_mb'],
            hugepages=guest.get('hugepages', False),
            nodeset=guest.get('nodeset'), cells=guest.get('cells'),
            mode=guest.get('mode', 'strict')))
        if not guest.get('scope', True):
            continue
        if not guest.get('numa_stat', True):
            write_scope(cgroup_root, guest['id'], guest['name'])
            continue
        write_scope(cgroup_root, guest['id'], guest['name'],
                    anon=_bytes(guest.get('anon_mb')),
                    shmem=_bytes(guest.get('shmem_mb')))
    return libvirt_root, cgroup_root


def guest(name, domain_id, size_mb, **kwargs):
    """A guest dict (see the module docstring)."""
    spec = {'name': name, 'id': domain_id, 'size_mb': size_mb}
    spec.update(kwargs)
    return spec


def _bytes(mb_by_node):
    return {node: mb * MIB for node, mb in (mb_by_node or {}).items()}


def _write(path, name, text):
    if text is None:
        return
    with open(os.path.join(path, name), 'w') as handle:
        handle.write(text)


class FakeDomain:
    """What the agent uses of a ``libvirt.virDomain``."""

    def __init__(self, xml, name=None, error=None):
        self.xml = xml
        self._name = name or xml.split('<name>')[1].split('<')[0]
        self.error = error

    def name(self):
        return self._name

    def XMLDesc(self, flags):
        if flags != 0:
            raise AssertionError('XMLDesc(%r)' % flags)
        if self.error is not None:
            raise self.error
        return self.xml


class FakeConnection:
    """What the agent uses of a read-only ``libvirt.virConnect``."""

    def __init__(self, domains, list_error=None):
        self.domains = domains
        self.list_error = list_error
        self.flags = []
        self.closed = False

    def listAllDomains(self, flags=0):
        self.flags.append(flags)
        if self.list_error is not None:
            raise self.list_error
        return list(self.domains)

    def close(self):
        self.closed = True
        return 0


class FakeLibvirt(fixtures.Fixture):
    """A ``libvirt`` module in ``sys.modules`` serving fake domains.

    :ivar opened: the URIs ``openReadOnly`` was called with.
    """

    VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1

    def __init__(self, domains=(), open_error=None, list_error=None):
        super().__init__()
        self.connection = FakeConnection(domains, list_error)
        self.open_error = open_error
        self.opened = []

    def _setUp(self):
        module = types.ModuleType('libvirt')
        module.libvirtError = LibvirtError
        module.VIR_CONNECT_LIST_DOMAINS_ACTIVE = \
            self.VIR_CONNECT_LIST_DOMAINS_ACTIVE
        module.openReadOnly = self.open_read_only
        patcher = mock.patch.dict(sys.modules, {'libvirt': module})
        patcher.start()
        self.addCleanup(patcher.stop)

    def open_read_only(self, uri=None):
        self.opened.append(uri)
        if self.open_error is not None:
            raise self.open_error
        return self.connection


class LibvirtError(Exception):
    """Stands for ``libvirt.libvirtError``."""
