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

"""The check against nova: does nova read and place a plan as planned?

nova is imported on first use, so that the command line starts quickly and
the pure planner never needs it.
"""

import re
import warnings

from nova_numa_guard import topology
from nova_numa_guard.vnuma import planner

# Extra specs that can give a flavor a NUMA topology (nova decides): its own
# layout, hugepages, pinned CPUs, vPMEM.
TOPOLOGY_KEYS = (planner.NUMA_NODES, planner.MEM_PAGE_SIZE, 'hw:cpu_policy',
                 'hw:pmem')
TOPOLOGY_KEY_PREFIXES = ('hw:numa_cpus.', 'hw:numa_mem.')
_PCPU_KEY = re.compile(r'^resources[\w-]*:PCPU$')

_NOVA = []


def _nova():
    """nova's exception, objects and hardware modules, imported once."""
    if not _NOVA:
        with warnings.catch_warnings():
            # eventlet announces its deprecation on import.
            warnings.simplefilter('ignore')
            from nova import exception
            from nova import objects
            from nova.virt import hardware

            from nova_numa_guard import nova_hosts
        objects.register_all()
        _NOVA.append((exception, objects, hardware, nova_hosts))
    return _NOVA[0]


def _flavor(vcpus, memory_mb, extra_specs):
    _, objects, _, _ = _nova()
    return objects.Flavor(name='nova-numa-guard-plan', flavorid='plan',
                          vcpus=vcpus, memory_mb=memory_mb, root_gb=0,
                          ephemeral_gb=0, swap=0, extra_specs=extra_specs)


def _no_image():
    _, objects, _, _ = _nova()
    return objects.ImageMeta.from_dict({'properties': {}})


def topology_keys(vcpus, memory_mb, extra_specs):
    """The extra specs that give a flavor a NUMA topology of its own.

    nova's ``numa_get_constraints`` decides whether the flavor has one (a
    layout of its own, pinned CPUs, hugepages or vPMEM);
    ``hw:cpu_policy=shared`` or a mere mention of a key in a value gives
    none.

    :param extra_specs: ``{key: value}``; values are turned into strings.
    :returns: sorted keys that make the topology, empty when nova gives the
        flavor none.
    :raises: PlanError when nova rejects the extra specs.
    """
    exception, _, hardware, _ = _nova()
    specs = {str(key): str(value) for key, value in extra_specs.items()}
    try:
        guest = hardware.numa_get_constraints(
            _flavor(vcpus, memory_mb, specs), _no_image())
    except (exception.NovaException, ValueError) as e:
        # nova quotes the values, which may hold newlines: keep one line.
        raise planner.PlanError('nova rejects the flavor\'s extra specs: %s' %
                                ' '.join(str(e).split()))
    if guest is None:
        return []
    keys = sorted(key for key, value in specs.items()
                  if (key in TOPOLOGY_KEYS or
                      key.startswith(TOPOLOGY_KEY_PREFIXES) or
                      _PCPU_KEY.match(key)) and
                  (key, value.strip().lower()) != ('hw:cpu_policy', 'shared'))
    return keys or sorted(specs)


def verify(cells, specs, vcpus, memory_mb, nodes_cpus, nodes_mb):
    """Check a plan with nova.

    :param cells: the host cells, as nova is to see them.
    :param specs: the planned extra specs (empty for a guest planned on one
        cell without specs: it is checked as a one-node guest).
    :param nodes_cpus: vCPUs of each planned guest node, in spec order.
    :param nodes_mb: MiB of each planned guest node, in spec order.
    :returns: the host cells nova fitted the guest nodes on, or None when
        nova finds no placement.
    :raises: PlanError when nova rejects the specs or reads them as other
        guest nodes than planned.
    """
    exception, _, hardware, nova_hosts = _nova()
    checked = dict(specs) or {planner.NUMA_NODES: '1'}
    flavor = _flavor(vcpus, memory_mb, checked)
    image = _no_image()
    try:
        guest = hardware.numa_get_constraints(flavor, image)
        best = hardware.get_best_cpu_topology(flavor, image)
    except (exception.NovaException, ValueError) as e:
        raise planner.PlanError('nova rejects the specs %s: %s' % (
            planner.specs_text(checked), e))
    got = ([len(c.cpuset) for c in guest.cells],
           [c.memory for c in guest.cells]) if guest else None
    if got != (list(nodes_cpus), list(nodes_mb)):
        raise planner.PlanError(
            'nova reads the specs %s as guest nodes %r, not the planned %r' %
            (planner.specs_text(checked), got,
             (list(nodes_cpus), list(nodes_mb))))
    if planner.CPU_SOCKETS in specs and best.sockets != len(nodes_cpus):
        raise planner.PlanError('nova gives the guest %d sockets, not %d' % (
            best.sockets, len(nodes_cpus)))
    host = nova_hosts.numa_topology(topology.Host('plan', cells))
    try:
        fitted = hardware.numa_fit_instance_to_host(
            host, guest.obj_clone(), None)
    except (exception.NovaException, ValueError):
        # e.g. MemoryPageSizeNotSupported: no such pages on a cell.
        fitted = None
    if fitted is None:
        return None
    return [c.id for c in fitted.cells]
