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

"""The ``nova-numa-guard-agent`` command."""

import argparse
import signal
import socket
import sys
import threading
import time

from oslo_cache import core as cache_core
from oslo_config import cfg
from oslo_log import log as logging

from nova_numa_guard.agent import collect
from nova_numa_guard import conf as guard_conf
from nova_numa_guard.live import payload
from nova_numa_guard.live import store as live_store

LOG = logging.getLogger(__name__)

DESCRIPTION = """\
NAME
    nova-numa-guard-agent - publish this compute host's live NUMA memory

DESCRIPTION
    Reads per-node memory, CPUs, distances and hugepages from
    <sysfs-root>/devices/system/node/node*/ and the NUMA node of PCI devices
    and NICs from <sysfs-root>/bus/pci/devices and <sysfs-root>/class/net,
    and publishes one JSON payload for this host every
    [numa_guard_agent] interval seconds to memcached ([cache]
    memcache_servers), with a TTL of [numa_guard_agent] ttl.
    With [numa_guard_agent] physnet_interfaces (physnet:interface,...) it
    also publishes the nodes of each physnet's NICs, which the
    scheduler's NUMALocalityWeigher uses where nova has no
    [neutron_physnet_<name>] numa_nodes.
    The key is nova's compute host name: --host, else [DEFAULT] host of the
    given configuration files (nova.conf), else the hostname. The
    nova-scheduler's NUMACellFitFilter reads it with
    [numa_guard] memory_source = cache.

    Per node the payload carries mem_total_mb (MemTotal), mem_free_mb
    (MemFree: what a guest without a NUMA topology gets locally now),
    mem_available_mb (MemFree + Inactive(file) + SReclaimable: what a guest
    bound to the node can get before the kernel swaps or OOM-kills) and
    guest_untouched_mb (memory running guests were given but have not
    touched yet, charged to the node), all in MiB, and guests_mb, the total
    size of the running guests. The guest figures come from libvirt (the
    libvirt Python binding, else the runtime XML under
    [numa_guard_agent] libvirt_runtime_dir) and cgroup v2 (memory.numa_stat
    of each guest's scope under [numa_guard_agent] cgroup_root); without
    them the payload leaves them out. The agent stores the payload under
    nova_numa_guard:live:<host> and its memory record (what the scheduler
    reads) under nova_numa_guard:mem:<host>.

    With [numa_guard_agent] host_signing_key or [numa_guard]
    payload_signing_key set, both carry an HMAC-SHA256 signature made with
    this host's own key: HMAC-SHA256(payload_signing_key, host) as 64 hex
    characters (the scheduler derives the same key per host, so a payload
    signed for one host never counts for another).

    Unreadable sysfs files leave their node or device out; an unreachable
    cache is retried with a doubling wait up to [numa_guard_agent]
    max_backoff seconds. Each change of state is logged once."""

EPILOG = """\
FILES
    /etc/nova/nova.conf
        [DEFAULT] host, [cache], [numa_guard] payload_signing_key and
        cache_timeout, [numa_guard_agent] interval, ttl, sysfs_root,
        libvirt_runtime_dir, libvirt_uri, cgroup_root, max_backoff,
        host_signing_key, physnet_interfaces. Give it with
        --config-file; several are merged in order. [cache] backend must
        be a memcached backend (dogpile.cache.pymemcache,
        oslo_cache.memcache_pool...); the agent uses its own client on
        [cache] memcache_servers.

EXIT STATUS
    0   --once: published (or printed); otherwise stopped by SIGTERM/SIGINT.
    1   --once: nothing could be read from sysfs, the payload would not be
        trusted by the scheduler (implausible figures), or the cache
        refused it.
    2   bad command line or configuration.

EXAMPLES
    Look at what would be published, without a cache:
        nova-numa-guard-agent --once --print

    Publish every 10 s, as the systemd unit does:
        nova-numa-guard-agent --config-file /etc/nova/nova.conf

    The key of compute1 for its [numa_guard_agent] host_signing_key, where
    the shared [numa_guard] payload_signing_key is kept:
        nova-numa-guard-agent --print-host-key --host compute1 \\
            --config-file /etc/nova/nova.conf

    Payloads for the file memory source (simulation, tests):
        cd /var/lib/nova-numa-guard/live && nova-numa-guard-agent \\
            --once --print --host compute1 --sysfs-root ./fake-sys \\
            --libvirt-root ./fake-run --cgroup-root ./fake-cgroup \\
            > compute1.json

SEE ALSO
    numastat(8), nova-scheduler(1), [numa_guard] options of nova.conf."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog='nova-numa-guard-agent', description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--config-file', metavar='PATH', action='append', default=[],
        help='configuration file (nova.conf); repeat to merge several')
    parser.add_argument(
        '--sysfs-root', metavar='PATH',
        help='read sysfs from PATH instead of [numa_guard_agent] '
             'sysfs_root (default /sys)')
    parser.add_argument(
        '--libvirt-root', metavar='PATH',
        help='read running guests from the runtime XML under PATH instead '
             'of libvirt (default: the libvirt binding, else '
             '[numa_guard_agent] libvirt_runtime_dir)')
    parser.add_argument(
        '--cgroup-root', metavar='PATH',
        help='read cgroup v2 from PATH instead of [numa_guard_agent] '
             'cgroup_root (default /sys/fs/cgroup)')
    parser.add_argument(
        '--host', metavar='NAME',
        help="nova's compute host name to publish under (default: "
             "[DEFAULT] host, else the hostname)")
    parser.add_argument(
        '--once', action='store_true',
        help='read and publish (or print) one payload, then exit')
    parser.add_argument(
        '--print', action='store_true', dest='print_only',
        help='print the payload as JSON on standard output instead of '
             'publishing it')
    parser.add_argument(
        '--print-host-key', action='store_true',
        help="print the host's own signing key, derived from [numa_guard] "
             'payload_signing_key, for its [numa_guard_agent] '
             'host_signing_key, and exit')
    return parser


def signing_key(conf, host):
    """The key this host signs with, or None (unsigned payloads).

    ``[numa_guard_agent] host_signing_key`` when set, else the key derived
    from ``[numa_guard] payload_signing_key`` for ``host``.
    """
    if conf.numa_guard_agent.host_signing_key:
        return conf.numa_guard_agent.host_signing_key
    if conf.numa_guard.payload_signing_key:
        return payload.host_key(conf.numa_guard.payload_signing_key, host)
    return None


def load_config(files):
    """A ``ConfigOpts`` with the agent's options, loaded from ``files``."""
    conf = cfg.ConfigOpts()
    guard_conf.register_agent_opts(conf)
    conf.register_opt(cfg.StrOpt('host', default=socket.gethostname(),
                                 help="nova's compute host name"))
    cache_core.configure(conf)
    logging.register_options(conf)
    conf.set_default('use_stderr', True)
    conf([], project='nova', prog='nova-numa-guard-agent',
         default_config_files=files, use_env=False)
    return conf


def open_store(conf):
    """The memcached store of ``[cache]``."""
    try:
        return live_store.MemcacheStore.from_conf(
            conf, conf.numa_guard.cache_timeout)
    except live_store.StoreError as exc:
        raise ValueError(str(exc))


class Agent:
    """Reads sysfs and publishes the payload, keeping the state logs quiet.

    :param conf: the loaded ``ConfigOpts``.
    :param host: the compute host name.
    :param sysfs_root: where sysfs is.
    :param guest_roots: ``(libvirt_root, cgroup_root, libvirt_uri)``, see
        :func:`nova_numa_guard.agent.collect.collect`.
    :param store: a :class:`nova_numa_guard.live.store.MemcacheStore`, or
        None for ``--print``.
    """

    def __init__(self, conf, host, sysfs_root, guest_roots=None, store=None,
                 out=None):
        self.conf = conf
        self.host = host
        self.sysfs_root = sysfs_root
        self.guest_roots = guest_roots
        self.store = store
        self.out = out
        self._key = signing_key(conf, host)
        self._physnet_interfaces = conf.numa_guard_agent.physnet_interfaces
        self._sysfs_problems = frozenset()
        self._cache_down = None
        self._refused = None

    def read(self):
        """Build a payload now; None when no node could be read."""
        data, problems = collect.collect(self.sysfs_root, self.host,
                                         round(time.time(), 3), self._key,
                                         self.guest_roots,
                                         self._physnet_interfaces)
        state = frozenset(str(p) for p in problems)
        if state != self._sysfs_problems:
            if state:
                LOG.warning("Cannot read part of this host's state; "
                            "publishing what can be read: %s",
                            '; '.join(sorted(state)))
            else:
                LOG.info("sysfs, libvirt and cgroups read cleanly again")
            self._sysfs_problems = state
        return data

    def publish_once(self):
        """Read and publish (or print) one payload.

        :returns: True on success.
        """
        data = self.read()
        if data is None:
            return False
        raw = payload.encode(data)
        record = payload.encode_record(data, self._key)
        if not self._trusted(raw, record):
            return False
        if self.store is None:
            self.out.write(raw.decode('utf-8') + '\n')
            self.out.flush()
            return True
        try:
            self.store.set_many(
                {live_store.key(live_store.FULL_PREFIX, self.host): raw,
                 live_store.key(live_store.RECORD_PREFIX, self.host): record},
                self.conf.numa_guard_agent.ttl)
        except Exception as exc:
            reason = '%s: %s' % (type(exc).__name__, str(exc)[:200])
            if self._cache_down is None:
                LOG.warning("Cannot publish to the cache (%s); retrying with "
                            "backoff", reason)
            self._cache_down = reason
            return False
        if self._cache_down is not None:
            LOG.info("Publishing to the cache again")
            self._cache_down = None
        LOG.debug("Published %d bytes for %s", len(raw), self.host)
        return True

    def why_not(self):
        """Why the last payload was not published, in one line."""
        if self._refused is not None:
            return 'the scheduler would refuse it: %s' % self._refused
        if self._cache_down is not None:
            return self._cache_down
        return '; '.join(sorted(self._sysfs_problems)) or 'unknown'

    def _trusted(self, raw, record):
        """Whether the scheduler would trust what is about to be published.

        The agent checks its own payload and memory record with the
        scheduler's rules (and the full check of the elements the scheduler
        does not read), so that it never publishes what would be refused.
        """
        try:
            payload.verify(raw, self.host, self._key, full=True)
            payload.verify(record, self.host, self._key,
                           max_bytes=payload.MAX_RECORD_BYTES)
        except payload.Untrusted as exc:
            if self._refused != str(exc):
                LOG.error("Not publishing: the scheduler would refuse this "
                          "host's payload (%s)", exc)
            self._refused = str(exc)
            return False
        if self._refused is not None:
            LOG.info("The payload passes the scheduler's checks again")
            self._refused = None
        return True

    def run(self, stop):
        """Publish every interval until ``stop`` (a threading.Event) is set.

        After a failure the next attempt comes after 1 s, then 2, 4...
        seconds, at most ``[numa_guard_agent] max_backoff``.
        """
        opts = self.conf.numa_guard_agent
        backoff = 1
        while not stop.is_set():
            started = time.monotonic()
            if self.publish_once():
                backoff = 1
                wait = opts.interval - (time.monotonic() - started)
            else:
                wait = min(backoff, opts.max_backoff)
                backoff = min(backoff * 2, opts.max_backoff)
            stop.wait(max(0.0, wait))


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        conf = load_config(args.config_file)
        opts = conf.numa_guard_agent
        # Read every option now: a bad value is a start-up error, in one
        # line that names the option.
        guard_conf.check(conf, 'numa_guard_agent')
        guard_conf.check(conf, 'numa_guard',
                         ('payload_signing_key', 'cache_timeout'))
        sysfs_root = args.sysfs_root or opts.sysfs_root
        guest_roots = (args.libvirt_root or opts.libvirt_runtime_dir,
                       args.cgroup_root or opts.cgroup_root,
                       None if args.libvirt_root else opts.libvirt_uri)
        host = args.host or conf.host
        if args.print_host_key:
            if not conf.numa_guard.payload_signing_key:
                raise ValueError('--print-host-key needs [numa_guard] '
                                 'payload_signing_key')
            sys.stdout.write(payload.host_key(
                conf.numa_guard.payload_signing_key, host) + '\n')
            return 0
        store = None
        if not args.print_only:
            store = open_store(conf)
    except (cfg.Error, ValueError) as exc:
        sys.stderr.write('nova-numa-guard-agent: %s\n' % _one_line(exc))
        return 2
    logging.setup(conf, 'nova-numa-guard-agent')
    agent = Agent(conf, host, sysfs_root, guest_roots, store,
                  out=sys.stdout)
    if args.once:
        if agent.publish_once():
            return 0
        sys.stderr.write('nova-numa-guard-agent: nothing published: %s\n' %
                         agent.why_not())
        return 1
    stop = threading.Event()

    def _stop(signum, frame):
        LOG.info("Signal %d received, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    LOG.info("Publishing live NUMA memory of %(host)s from %(root)s every "
             "%(interval)d s", {'host': host, 'root': sysfs_root,
                                'interval': opts.interval})
    agent.run(stop)
    return 0


def _one_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == '__main__':
    sys.exit(main())
