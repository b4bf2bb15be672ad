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

"""Configuration options of nova-numa-guard (the ``[numa_guard]`` group)."""

from oslo_config import cfg
from oslo_config import types

GROUP_NAME = 'numa_guard'

numa_guard_group = cfg.OptGroup(
    GROUP_NAME,
    title='NUMA guard options',
    help="""
Options of the nova-numa-guard scheduler plugin: ``NUMACellFitFilter`` keeps
guests without a NUMA topology inside one host NUMA cell.
""")

NON_NUMA_ESTIMATES = ('spread', 'worst_case', 'ignore')


class NodeMemoryReserve(types.ConfigType):
    """Per-node memory reserve: ``MB`` for every node or ``node:MB,...``.

    The parsed value is a ``(default_mb, {node: mb})`` tuple.
    """

    def __init__(self, type_name='node memory reserve'):
        super().__init__(type_name=type_name)

    def __call__(self, value):
        if isinstance(value, tuple):
            return value
        return parse_node_reserve(value)

    def __repr__(self):
        return 'NodeMemoryReserve'

    def __eq__(self, other):
        return self.__class__ == other.__class__

    def _formatter(self, value):
        if isinstance(value, tuple):
            default, per_node = value
            if not per_node:
                return str(default)
            return ','.join('%d:%d' % item for item in sorted(per_node.items()))
        return str(value)


def parse_node_reserve(text):
    """Parse ``"512"`` or ``"0:1024,1:512"`` into ``(default, {node: mb})``.

    :raises ValueError: with a one-line reason on anything else.
    """
    text = str(text).strip()
    if not text:
        return 0, {}
    if ':' not in text:
        return _non_negative_int(text, text), {}
    per_node = {}
    for item in text.split(','):
        node, sep, mb = item.strip().partition(':')
        if not sep:
            raise ValueError(
                "%r: expected node:MB, got %r" % (text, item.strip()))
        node_id = _non_negative_int(node, text)
        if node_id in per_node:
            raise ValueError("%r: node %d listed twice" % (text, node_id))
        per_node[node_id] = _non_negative_int(mb, text)
    return 0, per_node


def _non_negative_int(value, text):
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError(
            "%r: %r is not a whole number of MB or a node id" % (text, value))
    if number < 0:
        raise ValueError("%r: %d is negative" % (text, number))
    return number


numa_guard_opts = [
    cfg.StrOpt('memory_source',
        default='accounted',
        help="""
Where NUMACellFitFilter takes each host's per-cell free memory from.

The source is loaded from the ``nova_numa_guard.memory_sources`` entry point
namespace when the scheduler starts; an unknown name stops nova-scheduler with
an error.

Possible values:

* ``accounted``: only what nova already knows: each cell's capacity minus the
  memory of NUMA guests nova placed on it, minus an estimate of the memory used
  by guests without a NUMA topology (see ``non_numa_memory_estimate``). Needs
  no agent and no service.

Related options:

* ``[numa_guard] non_numa_memory_estimate``
"""),
    cfg.Opt('reserved_node_memory_mb',
        type=NodeMemoryReserve(),
        default='0',
        help="""
Memory in MB kept free on each host NUMA node for the host itself.

Nova's ``[DEFAULT] reserved_host_memory_mb`` is host-wide; the kernel, QEMU
overhead and host services also use memory per node. This reserve is taken off
each cell's capacity before a guest is fitted into it.

This setting only affects scheduling if ``NUMACellFitFilter`` is enabled.

Possible values:

* A whole number of MB for every node, e.g. ``1024``.
* A comma separated ``node:MB`` list, e.g. ``0:2048,1:1024``; nodes not
  listed reserve nothing.

A malformed value stops nova-scheduler at start with an error.

Related options:

* ``[DEFAULT] reserved_host_memory_mb``
"""),
    cfg.BoolOpt('cpu_fit',
        default=True,
        help="""
Require a cell with at least as many CPUs as the flavor has vCPUs.

When enabled, a guest fits a cell only if the cell's shared CPU set (the host
CPUs that floating guests may run on) has at least as many CPUs as the guest
has vCPUs, so the guest can run without reaching into another node.

This setting only affects scheduling if ``NUMACellFitFilter`` is enabled.

Possible values:

* True: check memory and vCPUs per cell.
* False: check memory only.
"""),
    cfg.BoolOpt('dry_run',
        default=False,
        help="""
Log what NUMACellFitFilter would reject, but reject nothing.

Use it to roll the filter out safely: every host it would have removed is
logged at DEBUG with the numbers compared, and each request that would have
lost hosts gets one INFO line.

This setting only affects scheduling if ``NUMACellFitFilter`` is enabled.
"""),
    cfg.StrOpt('non_numa_memory_estimate',
        default='spread',
        choices=[
            ('spread', 'The host-wide memory used by guests without a NUMA '
                       'topology (and the host reserve) is split over the '
                       'cells in proportion to their capacity.'),
            ('worst_case', 'All of that memory is assumed to sit on each '
                           'cell: safest, rejects the most.'),
            ('ignore', 'Count NUMA guests only, as nova itself does.'),
        ],
        help="""
How accounted free memory estimates the usage of guests without a NUMA topology.

Nova accounts per cell only for guests that have a NUMA topology. Everything
else (guests without ``hw:numa_nodes``, plus ``[DEFAULT]
reserved_host_memory_mb``) is known only host-wide, as the host's used memory
minus the memory of its NUMA guests. This option says how that amount is
charged to the cells when a live memory source has no data for the host. The
estimate uses the host's ``ram_allocation_ratio``, as nova's own per-cell check
does.

This setting only affects scheduling if ``NUMACellFitFilter`` is enabled.

Related options:

* ``[numa_guard] memory_source``
"""),
]


def register_opts(conf):
    conf.register_group(numa_guard_group)
    conf.register_opts(numa_guard_opts, group=numa_guard_group)


def list_opts():
    """Return the options for oslo-config-generator and the docs.

    :returns: a list of (group, options) tuples.
    """
    return [(numa_guard_group, numa_guard_opts)]
