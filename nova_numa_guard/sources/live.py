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
:func:`nova_numa_guard.payload.verify`, builds the
:class:`~nova_numa_guard.sources.base.LiveData` and logs what it ignores:
one warning per reason at most every ``WARN_INTERVAL`` seconds, and one
line each time the store becomes unreachable or reachable again.
"""

import abc
import time

from oslo_config import cfg
from oslo_log import log as logging

from nova_numa_guard import conf as guard_conf
from nova_numa_guard import payload
from nova_numa_guard.sources import base

LOG = logging.getLogger(__name__)

WARN_INTERVAL = 60.0
MISSING = 'missing'


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
        self._max_age = opts.max_data_age
        self._policy = opts.on_missing_live_data
        self._last_warned = {}
        self._down = None
        # host -> (payload bytes, payload.Trusted) of the last good payload.
        self._verified = {}

    @abc.abstractmethod
    def fetch_raw(self, host_names):
        """Fetch the stored payloads of the hosts in one batch.

        :returns: ``{host: value}`` with bytes, or a
            :class:`nova_numa_guard.payload.Untrusted` saying why the host's
            value cannot be used; hosts with nothing stored may be left out.
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
        for host in host_names:
            value = raw.get(host)
            try:
                if value is None:
                    raise payload.Untrusted(MISSING, 'no live data stored')
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
        return base.LiveData(free, available, missing)

    def _verify(self, host, value, now):
        """:func:`payload.verify`, once per distinct payload of a host.

        The agent publishes a new payload every interval; until then the
        same bytes come back at every request and only the time rules are
        checked again.
        """
        seen = self._verified.get(host)
        if seen is not None and seen[0] == value:
            payload.check_age(seen[1].timestamp, self._max_age, now)
            return seen[1]
        trusted = payload.verify(value, host, self._key, self._max_age, now)
        self._verified[host] = (value, trusted)
        return trusted

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
