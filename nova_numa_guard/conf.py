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

import math
import os
import re

from oslo_config import cfg
from oslo_config import types

GROUP_NAME = 'numa_guard'

numa_guard_group = cfg.OptGroup(
    GROUP_NAME,
    title='NUMA guard options',
    help="""
Options of the nova-numa-guard scheduler plugin: ``NUMACellFitFilter`` keeps
guests without a NUMA topology inside one host NUMA cell, and
``NUMALocalityWeigher`` ranks hosts by how local the guest's devices and NICs
would be to its memory.
""")

NON_NUMA_ESTIMATES = ('spread', 'worst_case', 'ignore')
# A node of more than 64 TiB, or more than 4096 nodes, is not a machine.
MAX_NODE_MB = 64 * 1024 * 1024
MAX_NODES = 4096


class ConfigError(ValueError):
    """A bad option value, in one line that names the option."""


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
            return ','.join('%d:%d' % item
                            for item in sorted(per_node.items()))
        return str(value)


class PhysnetInterfaces(types.ConfigType):
    """``physnet:interface,...``: the interfaces of each physnet.

    The parsed value is ``{physnet: (interface, ...)}`` in the order given.
    """

    def __init__(self, type_name='physnet interfaces'):
        super().__init__(type_name=type_name)

    def __call__(self, value):
        if isinstance(value, dict):
            return value
        return parse_physnet_interfaces(value)

    def __repr__(self):
        return 'PhysnetInterfaces'

    def __eq__(self, other):
        return self.__class__ == other.__class__

    def _formatter(self, value):
        if isinstance(value, dict):
            return ','.join('%s:%s' % (physnet, interface)
                            for physnet, interfaces in value.items()
                            for interface in interfaces)
        return str(value)


# Neutron names a physical network in at most 64 characters; Linux names an
# interface in at most 15 (IFNAMSIZ - 1), without "/", ":" or white space.
MAX_PHYSNET_NAME = 64
MAX_IFNAME = 15
_PHYSNET_RE = re.compile(r'[^\s:,]{1,%d}' % MAX_PHYSNET_NAME)
_IFNAME_RE = re.compile(r'[^\s:/,]{1,%d}' % MAX_IFNAME)


def parse_physnet_interfaces(text):
    """Parse ``"physnet1:ens2f0,physnet1:ens2f1,physnet2:ens3f0"``.

    :returns: ``{physnet: (interface, ...)}``, in the order given.
    :raises ValueError: with a one-line reason on anything else.
    """
    text = str(text).strip()
    mapping = {}
    if not text:
        return mapping
    for item in text.split(','):
        item = item.strip()
        physnet, sep, interface = item.partition(':')
        physnet, interface = physnet.strip(), interface.strip()
        if not sep or not physnet or not interface:
            raise ValueError("%r is not physnet:interface" % item[:80])
        if not _PHYSNET_RE.fullmatch(physnet):
            raise ValueError("physnet %r is not a physical network name (at "
                             "most %d characters, no white space, ':' or "
                             "',')" % (physnet[:80], MAX_PHYSNET_NAME))
        if not _IFNAME_RE.fullmatch(interface) or interface in ('.', '..'):
            raise ValueError("%r is not a network interface name (at most %d "
                             "characters, no white space, '/' or ':')" % (
                                 interface[:80], MAX_IFNAME))
        interfaces = mapping.setdefault(physnet, ())
        if interface in interfaces:
            raise ValueError("%s:%s is listed twice" % (physnet, interface))
        mapping[physnet] = interfaces + (interface,)
    return mapping


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
        node_id = _non_negative_int(node, text, MAX_NODES - 1)
        if node_id in per_node:
            raise ValueError("%r: node %d listed twice" % (text, node_id))
        per_node[node_id] = _non_negative_int(mb, text)
    return 0, per_node


def _non_negative_int(value, text, limit=MAX_NODE_MB):
    """A whole number in ASCII digits, at most ``limit``."""
    digits = value.strip()
    negative = digits.startswith('-')
    if negative:
        digits = digits[1:]
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 12:
        raise ValueError(
            "%r: %r is not a whole number of MB or a node id" % (text, value))
    number = int(digits)
    if negative:
        raise ValueError("%r: -%d is negative" % (text, number))
    if number > limit:
        raise ValueError("%r: %d is more than %d" % (text, number, limit))
    return number


numa_guard_opts = [
    cfg.StrOpt('memory_source',
        default='accounted',
        help="""
Where NUMACellFitFilter takes each host's per-cell free memory from.

The source is loaded from the ``nova_numa_guard.memory_sources`` entry point
namespace when the scheduler starts; an unknown name stops nova-scheduler
with an error.

Possible values:

* ``accounted``: only what nova already knows: each cell's capacity minus
  the memory of NUMA guests nova placed on it, minus an estimate of the
  memory used by guests without a NUMA topology (see
  ``non_numa_memory_estimate``). Needs no agent and no service.
* ``cache``: live per-node memory that ``nova-numa-guard-agent`` publishes
  on every compute host to memcached (``[cache] memcache_servers``). All
  candidate hosts of a request are fetched in one batch; hosts without
  trusted, fresh data are handled per ``on_missing_live_data``; when
  memcached cannot be reached every host is judged on accounted data.
* ``file``: the same payloads read from ``<live_data_path>/<host>.json`` at
  every request (as ``nova-numa-guard-agent --once --print`` writes them):
  for simulation, tests and deployments without a shared cache.

Related options:

* ``[numa_guard] non_numa_memory_estimate``
* ``[numa_guard] live_data_path``
* ``[numa_guard] max_data_age``
* ``[numa_guard] on_missing_live_data``
* ``[numa_guard] payload_signing_key``
* ``[cache] backend``, ``[cache] memcache_servers``
"""),
    cfg.Opt('reserved_node_memory_mb',
        type=NodeMemoryReserve(),
        default='0',
        help="""
Memory in MB kept free on each host NUMA node for the host itself.

Nova's ``[DEFAULT] reserved_host_memory_mb`` is host-wide; the kernel, QEMU
overhead and host services also use memory per node. This reserve is taken
off each cell's capacity before a guest is fitted into it, and off each
cell's live free memory when a live memory source has data for the host.
With accounted memory, ``[DEFAULT] reserved_host_memory_mb`` also counts, as
part of the host-wide usage that ``non_numa_memory_estimate`` charges to the
cells.

This setting only affects scheduling if ``NUMACellFitFilter`` is enabled.

Possible values:

* A whole number of MB for every node, e.g. ``1024``.
* A comma separated ``node:MB`` list, e.g. ``0:2048,1:1024``; nodes not
  listed reserve nothing. A node that a host does not have is ignored on
  that host, with one warning.

A malformed value stops nova-scheduler at start with an error.

Related options:

* ``[DEFAULT] reserved_host_memory_mb``
* ``[numa_guard] non_numa_memory_estimate``
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

Related options:

* ``[numa_guard] reserved_node_memory_mb``
"""),
    cfg.BoolOpt('dry_run',
        default=False,
        help="""
Log what NUMACellFitFilter would reject, but reject nothing.

Use it to roll the filter out safely: every host it would have removed is
logged at DEBUG with the numbers compared, and each request that would have
lost hosts gets one INFO line.

This setting only affects scheduling if ``NUMACellFitFilter`` is enabled.

Possible values:

* True: log the hosts that would be removed; remove none.
* False: remove them.

Related options:

* ``[filter_scheduler] enabled_filters``
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
How accounted free memory estimates what guests without a NUMA topology use.

Nova accounts per cell only for guests that have a NUMA topology. Everything
else (guests without ``hw:numa_nodes``, plus ``[DEFAULT]
reserved_host_memory_mb``) is known only host-wide, as the host's used
memory minus the memory of its NUMA guests. This option says how that amount
is charged to the cells when a live memory source has no data for the host.
The estimate uses the host's ``ram_allocation_ratio``, as nova's own
per-cell check does, so with overcommit a cell's estimated free memory can
exceed its size; whether a guest can be local at all is always judged on the
physical size.

This setting only affects scheduling if ``NUMACellFitFilter`` is enabled.

Related options:

* ``[numa_guard] memory_source``
* ``[numa_guard] reserved_node_memory_mb``
"""),
    cfg.StrOpt(
        'live_data_path',
        default='/var/lib/nova-numa-guard/live',
        help="""
Directory of live memory payloads for the ``file`` memory source.

The ``file`` source reads ``<live_data_path>/<host>.json`` for every
candidate host at every scheduling request, where ``<host>`` is nova's
compute ``host`` name. Each file holds one payload as
``nova-numa-guard-agent --once --print`` prints it.

This setting only affects scheduling if ``[numa_guard] memory_source`` is
``file``.

Possible values:

* An absolute directory path readable by nova-scheduler.

Related options:

* ``[numa_guard] memory_source``
"""),
    cfg.IntOpt(
        'max_data_age',
        default=30,
        min=1,
        max=86400,
        help="""
Age in seconds after which a live memory payload is no longer trusted.

A payload older than this (by its ``timestamp`` against the scheduler's
clock) is ignored with a warning and the host is handled per
``on_missing_live_data``. Keep it a few times ``[numa_guard_agent] interval``
(plus ``live_data_memo_seconds``) so that one late publication does not drop
the host to the fallback.

This setting only affects scheduling if ``[numa_guard] memory_source`` is
``cache`` or ``file``.

Possible values:

* A number of seconds, at least 1.

Related options:

* ``[numa_guard_agent] interval``
* ``[numa_guard] live_data_memo_seconds``
* ``[numa_guard] on_missing_live_data``
"""),
    cfg.StrOpt(
        'on_missing_live_data',
        default='accounted',
        choices=[
            ('accounted', 'Judge the host on nova\'s accounted data, as '
                          'the ``accounted`` memory source does.'),
            ('pass', 'Let the host pass NUMACellFitFilter.'),
            ('reject', 'Reject the host: only hosts with trusted live data '
                       'take guests.'),
        ],
        help="""
What NUMACellFitFilter does with a host that has no trusted live data.

A host has no trusted live data when the memory source holds nothing for it,
or its payload is stale, unsigned or wrongly signed, names another host, does
not match the schema or carries implausible numbers (each is logged as a
rate-limited warning with the reason). When the cache itself cannot be
reached, every host is judged on accounted data whatever this option says,
so that scheduling goes on. With several memcached servers in ``[cache]
memcache_servers``, the hosts whose server is down are judged on accounted
data too (not handled as missing), until the server answers again.

This setting only affects scheduling if ``[numa_guard] memory_source`` is
``cache`` or ``file``.

Related options:

* ``[numa_guard] memory_source``
* ``[numa_guard] max_data_age``
"""),
    cfg.StrOpt(
        'payload_signing_key',
        secret=True,
        help="""
Shared secret that signs and verifies live memory payloads.

Payloads are not signed with this secret itself but with a key of their own
host, derived from it: ``HMAC-SHA256(payload_signing_key, host)`` as 64 hex
characters (``nova-numa-guard-agent --print-host-key`` prints it). The
scheduler derives the key of every host it fetches and ignores payloads
without a valid signature, so a party that can write to the cache cannot
steer scheduling, and a payload signed for one host never counts for
another. Set this secret on the scheduler. On a compute host, set either
``[numa_guard_agent] host_signing_key`` (recommended: a compromised compute
host can then sign only its own payloads) or this secret (the agent derives
its host's key; any host holding the secret can sign for every host). Keep
both out of world-readable files.

Possible values:

* Unset (default): payloads are neither signed nor checked.
* Any string; use a long random one.

Related options:

* ``[numa_guard] memory_source``
* ``[numa_guard] on_missing_live_data``
* ``[numa_guard_agent] host_signing_key``
"""),
    cfg.FloatOpt(
        'cache_timeout',
        default=0.5,
        min=0.01,
        max=60,
        help="""
How long, in seconds, one call to memcached may take in all.

The deadline covers every socket operation of the call (connecting,
sending, every read), so a server that answers slowly or one byte at a
time cannot hold a scheduling request longer than this: the request then
judges the hosts of that server on accounted data. A server that fails is
not tried again for 10 seconds, so later requests do not wait at all. The
agent uses the same deadline for each publication.

The ``cache`` memory source and the agent talk to the servers of ``[cache]
memcache_servers`` (with the ``[cache] tls_*`` options) through a client of
their own that moves raw bytes and never unpickles, whatever memcached
``[cache] backend`` is named; redis is not supported.

Possible values:

* A number of seconds, e.g. ``0.5``.

Related options:

* ``[numa_guard] memory_source``
* ``[cache] backend``
"""),
    cfg.FloatOpt(
        'live_data_memo_seconds',
        default=2.0,
        min=0,
        max=3600,
        help="""
Seconds the ``cache`` memory source reuses what it fetched.

Scheduling requests that follow each other within this time (the instances
of a multi-create, a burst of boots) are served from memory without a round
trip to the cache. The age of every payload is still checked against
``max_data_age`` at every use. A payload the agent publishes reaches the
scheduler up to ``[numa_guard_agent] interval`` plus this time after the
agent read it: keep ``live_data_memo_seconds + [numa_guard_agent] interval``
well below ``max_data_age``.

This setting only affects scheduling if ``[numa_guard] memory_source`` is
``cache``.

Possible values:

* ``0``: fetch every candidate host at every request.
* A number of seconds below ``max_data_age``, e.g. ``2``; a larger one
  stops nova-scheduler at start.

Related options:

* ``[numa_guard] max_data_age``
* ``[numa_guard_agent] interval``
"""),
    cfg.FloatOpt(
        'locality_weight_multiplier',
        default=1.0,
        help="""
Multiplier of the weight ``NUMALocalityWeigher`` gives a host.

``NUMALocalityWeigher`` scores each host that passed the filters between 0
and 1 by how local the guest would be there. For a guest that needs devices
or NICs (a ``pci_passthrough:alias``, SR-IOV ports, networks on physnets or
tunnels with NUMA affinity), the best host has a cell that can hold the
guest's memory and vCPUs and also holds all its devices and NICs; partial
locality scores in between, and devices only on cells that cannot hold the
guest score low. For a guest that needs none, the best host has no cell with
free devices or affined NICs, then a host where the guest fits a cell
without them, so that the memory next to devices stays free for the guests
that need it.

Nova normalises the scores of each weigher over the candidate hosts to
[0, 1] and adds them up, each times its multiplier. ``RAMWeigher``
(``[filter_scheduler] ram_weight_multiplier``, default 1.0) favours the hosts
with the most free memory, and ``PCIWeigher`` (``[filter_scheduler]
pci_weight_multiplier``, default 1.0) the hosts with the fewest free PCI
devices, whatever NUMA node they sit on. With all three at 1.0, locality
outweighs neither alone: a host with local devices can lose to one with much
more free memory. To make locality decide between hosts that differ in free
memory, set this multiplier above the sum of the other two (e.g. 3.0); to
make it only break ties, set it well below them (e.g. 0.1).

It can be overridden per host aggregate with the aggregate metadata key
``numa_locality_weight_multiplier`` (the smallest value wins when a host is
in several).

This setting only affects scheduling if
``nova_numa_guard.scheduler.weights.all_weighers`` is in ``[filter_scheduler]
weight_classes``.

Possible values:

* A positive number: prefer hosts where the guest's devices and NICs are
  local to its cell, and keep guests that need none off device-local cells.
* 0: ``NUMALocalityWeigher`` has no effect.
* A negative number: the opposite (rarely useful).

Related options:

* ``[filter_scheduler] weight_classes``
* ``[filter_scheduler] ram_weight_multiplier``
* ``[filter_scheduler] pci_weight_multiplier``
* ``[numa_guard] memory_source``
* ``[numa_guard_agent] physnet_interfaces``
"""),
]
agent_group = cfg.OptGroup(
    'numa_guard_agent',
    title='nova-numa-guard-agent options',
    help="""
Options of ``nova-numa-guard-agent``, which publishes each compute host's
live per-node memory for the ``cache`` memory source, and the NUMA nodes of
its physnets' NICs for ``NUMALocalityWeigher``.
""")

agent_opts = [
    cfg.IntOpt(
        'interval',
        default=10,
        min=1,
        max=3600,
        help="""
Seconds between two publications of the host's live memory.

Possible values:

* A number of seconds, at least 1.

Related options:

* ``[numa_guard] max_data_age``: keep it a few times this interval.
* ``[numa_guard_agent] ttl``
"""),
    cfg.IntOpt(
        'ttl',
        default=60,
        min=1,
        max=86400,
        help="""
Seconds the cache keeps a payload before it expires.

When the agent stops, its host's payload disappears after this time. Keep it
longer than ``[numa_guard] max_data_age``: the scheduler then logs a stale
payload as stale rather than as missing.

Possible values:

* A number of seconds, at least 1.

Related options:

* ``[numa_guard_agent] interval``
* ``[numa_guard] max_data_age``
"""),
    cfg.StrOpt(
        'sysfs_root',
        default='/sys',
        help="""
Where the agent reads sysfs from.

Possible values:

* ``/sys`` on a real host; a copy of a sysfs tree for tests and simulation.
  The ``--sysfs-root`` command line flag overrides it.
"""),
    cfg.StrOpt(
        'libvirt_runtime_dir',
        default='/run/libvirt/qemu',
        help="""
Where libvirt keeps the runtime XML of running QEMU guests.

The agent reads every running guest's memory size and backing from libvirt:
through the ``libvirt`` Python binding (``libvirt_uri``) when it is installed
and can connect, else from the ``<name>.xml`` files in this directory. With
what cgroup v2 shows resident of each guest (``cgroup_root``) it publishes
the memory guests were given but have not touched yet, per node
(``guest_untouched_mb``), and the total size of the guests (``guests_mb``).
Without libvirt or cgroup v2 data it publishes neither, and the scheduler
takes the lower of the live and the accounted estimates.

Possible values:

* ``/run/libvirt/qemu`` on a real host; a copy for tests and simulation.
  The ``--libvirt-root`` command line flag overrides it and skips the
  binding.

Related options:

* ``[numa_guard_agent] libvirt_uri``
* ``[numa_guard_agent] cgroup_root``
"""),
    cfg.StrOpt(
        'libvirt_uri',
        default='qemu:///system',
        help="""
The libvirt connection URI the agent reads running guests through.

Used read-only when the ``libvirt`` Python binding is installed; when it is
not, or the connection fails, the agent reads ``libvirt_runtime_dir``.

Possible values:

* A libvirt URI, ``qemu:///system`` for the hypervisor nova uses.
* Empty: never use the binding.

Related options:

* ``[numa_guard_agent] libvirt_runtime_dir``
"""),
    cfg.StrOpt(
        'cgroup_root',
        default='/sys/fs/cgroup',
        help="""
Where the cgroup v2 hierarchy is mounted.

The agent reads ``memory.numa_stat`` of each guest's scope under
``machine.slice`` to learn how much of the guest's memory is resident on
each node. Without a cgroup v2 hierarchy it publishes no guest figures.

Possible values:

* ``/sys/fs/cgroup`` on a real host; a copy for tests. The
  ``--cgroup-root`` command line flag overrides it.

Related options:

* ``[numa_guard_agent] libvirt_runtime_dir``
"""),
    cfg.StrOpt(
        'host_signing_key',
        secret=True,
        regex='^[0-9a-fA-F]{64}$',
        help="""
This compute host's own key for signing live memory payloads.

The key the scheduler expects for this host: ``HMAC-SHA256([numa_guard]
payload_signing_key, host)`` as 64 hex characters. Print it where the shared
secret is kept with ``nova-numa-guard-agent --print-host-key --host HOST
--config-file FILE``. With it, the shared secret never has to reach the
compute hosts, and a compromised host can sign payloads for itself only.
When set, it is used instead of ``[numa_guard] payload_signing_key``.

Possible values:

* Unset (default): sign with the key derived from ``[numa_guard]
  payload_signing_key`` when that is set; else do not sign.
* 64 hex characters.

Related options:

* ``[numa_guard] payload_signing_key``
"""),
    cfg.IntOpt(
        'max_backoff',
        default=60,
        min=1,
        max=3600,
        help="""
Longest wait in seconds between two attempts to reach an unreachable cache.

After a failed publication the agent retries after 1 second, then doubles the
wait up to this value (and never waits longer than ``interval`` once the
cache is back).

Possible values:

* A number of seconds, at least 1.

Related options:

* ``[numa_guard_agent] interval``
"""),
    cfg.Opt(
        'physnet_interfaces',
        type=PhysnetInterfaces(),
        default='',
        help="""
The network interfaces of each neutron physical network on this host.

Nova learns which NUMA node the NICs of a physnet sit on only from
``[neutron_physnet_<name>] numa_nodes``, written by hand on every compute
host. With this option the agent finds the nodes itself: it follows each
interface to its PCI device (through the interfaces below a bond or a VLAN
interface) and publishes the devices' nodes per physnet.
``NUMALocalityWeigher`` then prefers hosts where a cell that can hold the
guest is local to the NICs of the physnets its virtio or vhost ports are on,
for the physnets nova affines to no node of the host. The scheduler reads
the data with ``NUMACellFitFilter`` enabled and a live ``[numa_guard]
memory_source``.

Possible values:

* Empty (default): publish no physnets.
* A comma separated list of ``<physnet>:<interface>`` pairs, as neutron's
  ``physical_device_mappings`` spells them; list a physnet once per
  interface, e.g. ``physnet1:ens2f0,physnet1:ens2f1,physnet2:ens3f0``. A
  malformed value stops the agent at start with an error that names the
  option; an interface that cannot be found is logged and left out.

Related options:

* ``[neutron_physnet_<name>] numa_nodes`` (nova, on the compute host): when
  set, nova's affinity is used instead.
* ``[numa_guard] locality_weight_multiplier``
"""),
]


# The float options that are not a number of seconds.
_NOT_SECONDS = frozenset(('locality_weight_multiplier',))


def check(conf, group, names=None):
    """Read the options of ``group`` now, as one-line errors.

    oslo.config checks a value only when it is read; reading every option at
    start makes a bad value stop the service there, with one line that
    names the option, not fail later with another error.

    :param names: the options to read; all of the group's when None.
    :returns: ``{name: value}``.
    :raises ConfigError: for the first bad value.
    """
    opts = {GROUP_NAME: numa_guard_opts, agent_group.name: agent_opts}[group]
    values = {}
    for opt in opts:
        if names is not None and opt.dest not in names:
            continue
        try:
            value = getattr(conf[group], opt.dest)
        except (cfg.Error, ValueError) as exc:
            # A secret's value is never echoed, not even a wrong one.
            reason = _reason(exc)
            if opt.secret:
                reason = 'must be %s (the value is secret: not shown)' % (
                    'the 64 hex characters --print-host-key prints'
                    if opt.name == 'host_signing_key' else 'valid')
            raise ConfigError('[%s] %s: %s' % (group, opt.name, reason))
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError('[%s] %s = %s is not a %s' % (
                group, opt.name, value, 'finite number'
                if opt.name in _NOT_SECONDS else 'number of seconds'))
        values[opt.dest] = value
    return values


def check_scheduler(conf):
    """Read and cross-check ``[numa_guard]`` for nova-scheduler.

    :returns: ``{name: value}`` of every option.
    :raises ConfigError: with one line naming the option.
    """
    values = check(conf, GROUP_NAME)
    if values['live_data_memo_seconds'] >= values['max_data_age']:
        raise ConfigError(
            '[numa_guard] live_data_memo_seconds = %s must be less than '
            '[numa_guard] max_data_age = %d: payloads would go stale inside '
            'the memo window' % (values['live_data_memo_seconds'],
                                 values['max_data_age']))
    path = values['live_data_path']
    if values['memory_source'] == 'file' and not (
            path and os.path.isabs(path) and os.path.isdir(path)):
        raise ConfigError(
            '[numa_guard] live_data_path = %r must be an absolute path to an '
            'existing directory with memory_source = file' % path)
    return values


def _reason(exc):
    """The useful last line of an oslo.config error."""
    text = str(exc).strip()
    for marker in ('is not valid: ', 'Value: '):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return text.splitlines()[0] if text else type(exc).__name__


def register_opts(conf):
    conf.register_group(numa_guard_group)
    conf.register_opts(numa_guard_opts, group=numa_guard_group)


def register_agent_opts(conf):
    """Register the options ``nova-numa-guard-agent`` reads.

    ``[numa_guard]`` (for ``payload_signing_key`` and ``cache_timeout``) and
    ``[numa_guard_agent]``; the agent registers ``[cache]`` itself.
    """
    register_opts(conf)
    conf.register_group(agent_group)
    conf.register_opts(agent_opts, group=agent_group)


def list_opts():
    """Return the options for oslo-config-generator and the docs.

    :returns: a list of (group, options) tuples.
    """
    return [(numa_guard_group, numa_guard_opts),
            (agent_group, agent_opts)]
