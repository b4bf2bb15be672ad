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

"""What the live sources (``cache``, ``file``) share: the trust rules.

A subclass only fetches the stored bytes of a batch of hosts
(:meth:`PayloadSource.fetch_raw`); this class checks each payload with
:func:`nova_numa_guard.payload.verify` (once per distinct payload of a host,
whether it was trusted or not: the same bytes coming back at the next request
cost a comparison and the time rules), builds the
:class:`~nova_numa_guard.sources.base.LiveData` and logs what it ignores:
one warning per reason at most every ``WARN_INTERVAL`` seconds, and one
line each time the store becomes unreachable or reachable again.
"""

import abc
import hashlib
import time

from oslo_config import cfg
from oslo_log import log as logging

from nova_numa_guard import conf as guard_conf
from nova_numa_guard import payload
from nova_numa_guard.sources import base

LOG = logging.getLogger(__name__)

WARN_INTERVAL = 60.0
MISSING = 'missing'
UNREACHABLE = 'store unreachable'
# Payloads up to this size are remembered as they are; a larger one (only
# garbage is that large) by a digest, so that what a writer plants in the
# store cannot fill the scheduler's memory.
_REMEMBER_BYTES = 16384


class _Unreachable:
    """Marks a host whose part of the store cannot be read right now."""

    def __repr__(self):
        return 'UNREACHABLE_HOST'


# fetch_raw() value of a host whose store server is down: the host is judged
# on accounted data, as when the whole store is down (whatever
# [numa_guard] on_missing_live_data says).
UNREACHABLE_HOST = _Unreachable()


class Unavailable(Exception):
    """The store cannot be read at all (one line: why)."""


class PayloadSource(base.MemorySource, metaclass=abc.ABCMeta):
    """A source of agent payloads, checked against the trust rules.

    :param conf: an oslo.config ``ConfigOpts``; nova's global ``CONF`` when
        None (the scheduler).
    """

    live = True

    def __init__(self, conf=None):
        self._conf = cfg.CONF if conf is None else conf
        guard_conf.register_opts(self._conf)
        opts = self._conf.numa_guard
        self._key = opts.payload_signing_key
        # host -> the host's own signing key, derived once.
        self._host_keys = {}
        self._max_age = opts.max_data_age
        self._policy = opts.on_missing_live_data
        self._last_warned = {}
        self._down = None
        # host -> (payload bytes or digest, payload.Trusted or
        # payload.Untrusted) of the last payload seen.
        self._verified = {}

    @abc.abstractmethod
    def fetch_raw(self, host_names):
        """Fetch the stored payloads of the hosts in one batch.

        :returns: ``{host: value}`` with bytes, a
            :class:`nova_numa_guard.payload.Untrusted` saying why the host's
            value cannot be used, or :data:`UNREACHABLE_HOST` when the part
            of the store that holds the host's value cannot be read; hosts
            with nothing stored may be left out.
        :raises Unavailable: when the store cannot be read at all.
        """

    def live_free_mb(self, host_names):
        try:
            return self._live(list(host_names))
        except Exception as exc:
            self._set_down('%s: %s' % (type(exc).__name__, exc))
            return base.LiveData(unavailable=str(exc))

    def _live(self, host_names):
        try:
            raw = self.fetch_raw(host_names)
        except Unavailable as exc:
            self._set_down(str(exc))
            return base.LiveData(unavailable=str(exc))
        self._set_up()
        now = time.time()
        free, available, missing = {}, {}, {}
        ignored = {}
        unreachable = []
        for host in host_names:
            value = raw.get(host)
            try:
                if value is None:
                    raise payload.Untrusted(MISSING, 'no live data stored')
                if value is UNREACHABLE_HOST:
                    unreachable.append(host)
                    continue
                if isinstance(value, payload.Untrusted):
                    raise value
                trusted = self._verify(host, value, now)
            except payload.Untrusted as exc:
                missing[host] = str(exc)
                ignored.setdefault(exc.code, []).append((host, exc))
                continue
            free[host] = trusted.free_mb
            available[host] = trusted.available_mb
        if ignored:
            self._warn(ignored, len(host_names))
        if unreachable:
            self._warn_unreachable(unreachable, len(host_names))
        return base.LiveData(free, available, missing)

    def _verify(self, host, value, now):
        """:func:`payload.verify`, once per distinct payload of a host.

        The agent publishes a new payload every interval; until then the
        same bytes come back at every request: a payload trusted before gets
        only the time rules checked again, one refused before is refused
        again without being parsed or its signature checked.
        """
        if isinstance(value, str):
            value = value.encode('utf-8', 'surrogatepass')
        elif not isinstance(value, bytes):
            raise payload.Untrusted(payload.NOT_JSON, 'stored value is a %s, '
                                    'not JSON bytes' % type(value).__name__)
        if len(value) > payload.MAX_BYTES:
            raise payload.Untrusted(payload.TOO_LARGE, '%d bytes, more than '
                                    '%d' % (len(value), payload.MAX_BYTES))
        seen = self._verified.get(host)
        mark = value
        if len(value) > _REMEMBER_BYTES:
            mark = (len(value),
                    hashlib.blake2b(value, digest_size=16).digest())
        if seen is not None and seen[0] == mark:
            result = seen[1]
        else:
            try:
                result = payload.verify(value, host, self._host_key(host))
            except payload.Untrusted as exc:
                result = exc
            self._verified[host] = (mark, result)
        if type(result) is not payload.Trusted:
            raise result.with_traceback(None)
        payload.check_age(result.timestamp, self._max_age, now)
        return result

    def _host_key(self, host):
        """The host's own signing key (None without a key), memoised."""
        if not self._key:
            return None
        key = self._host_keys.get(host)
        if key is None:
            key = self._host_keys[host] = payload.host_key(self._key, host)
        return key

    def forget(self):
        """Drop what was fetched and verified (tests, benchmarks)."""
        self._verified = {}

    def _warn(self, ignored, total):
        now = time.monotonic()
        for code, hosts in ignored.items():
            last = self._last_warned.get(code)
            if last is not None and now - last < WARN_INTERVAL:
                continue
            self._last_warned[code] = now
            host, exc = hosts[0]
            LOG.warning("%(source)s memory source: ignoring the live data of "
                        "%(count)d of %(total)d host(s) (%(code)s), e.g. "
                        "%(host)s: %(detail)s; they are handled per "
                        "[numa_guard] on_missing_live_data = %(policy)s. "
                        "Next such warning in %(interval)d s at the "
                        "earliest.",
                        {'source': self.name, 'count': len(hosts),
                         'total': total, 'code': code, 'host': host,
                         'detail': exc.detail, 'policy': self._policy,
                         'interval': WARN_INTERVAL})

    def _warn_unreachable(self, hosts, total):
        now = time.monotonic()
        last = self._last_warned.get(UNREACHABLE)
        if last is not None and now - last < WARN_INTERVAL:
            return
        self._last_warned[UNREACHABLE] = now
        LOG.warning("%(source)s memory source: the store server of "
                    "%(count)d of %(total)d host(s) cannot be reached (e.g. "
                    "%(host)s); judging them on accounted memory. Next such "
                    "warning in %(interval)d s at the earliest.",
                    {'source': self.name, 'count': len(hosts),
                     'total': total, 'host': hosts[0],
                     'interval': WARN_INTERVAL})

    def _set_down(self, reason):
        if self._down is None:
            LOG.warning("%(source)s memory source cannot be read "
                        "(%(reason)s); judging every host on accounted "
                        "memory until it can.",
                        {'source': self.name, 'reason': reason})
        self._down = reason

    def _set_up(self):
        if self._down is not None:
            LOG.info("%(source)s memory source can be read again.",
                     {'source': self.name})
        self._down = None

    @property
    def name(self):
        return type(self).__name__
