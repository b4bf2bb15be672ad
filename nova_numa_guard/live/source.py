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

"""The memory source interface, and the trust rules the live sources share.

Every source returns a :class:`LiveData` for the candidate hosts of one
request; the ``accounted`` source returns an empty one.

The live sources (``cache``, ``file``) only fetch the stored bytes of a batch
of hosts, in their order (:meth:`PayloadSource.fetch_raw`);
:class:`PayloadSource` checks each payload with
:func:`nova_numa_guard.live.payload.verify` once per distinct payload of a
host, whether it was trusted or not (the same bytes coming back at the next
request cost a comparison and the time rules), and logs what it
ignores: one warning per reason at most every ``WARN_INTERVAL`` seconds, and
one line each time the store becomes unreachable or reachable again.

What a source keeps per host is bounded by the hosts nova still asks about.
When it holds more than twice the hosts of the largest request of the last
``_KEEP_AGES`` times ``max_data_age`` (plus ``_SPARE_HOSTS``), it drops the
hosts no request asked about in that time, then, if nova replaced that many
compute nodes within it, the hosts asked about least recently. A small
request (a forced host, a rebuild) evicts nothing the large ones need.
Requests may run on several native threads: the per-host map is only ever
read by key, inserted into, popped from, or copied; a thread that reads a
:class:`HostEntry` field another one just wrote gets the other request's
data of the same host, which is as good.
"""

import abc
import hashlib
import time

from oslo_config import cfg
from oslo_log import log as logging

from nova_numa_guard import conf as guard_conf
from nova_numa_guard.live import payload

LOG = logging.getLogger(__name__)

WARN_INTERVAL = 60.0
MISSING = 'missing'
# The most a request may read from a store in all, whatever its hosts.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
# Payloads up to this size are remembered as they are; a larger one (only
# garbage is that large) by a digest.
_REMEMBER_BYTES = 16384
_SPARE_HOSTS = 1000
# A host no request asked about for this many max_data_age is forgotten: its
# payload has long been replaced.
_KEEP_AGES = 2


class LiveData:
    """What a memory source knows of the hosts of one request.

    :ivar hosts: ``{host: payload.Trusted}`` for the hosts with trusted,
        fresh live data.
    :ivar missing: ``{host: reason}`` for candidate hosts without trusted
        live data; the filter applies ``[numa_guard] on_missing_live_data``
        to them. Hosts in neither map are judged on accounted data.
    :ivar unavailable: None, or why the store could not be read at all.
    """

    __slots__ = ('hosts', 'missing', 'unavailable')

    def __init__(self, hosts=None, missing=None, unavailable=None):
        self.hosts = hosts or {}
        self.missing = missing or {}
        self.unavailable = unavailable


class MemorySource(metaclass=abc.ABCMeta):
    """Supplies live per-node memory for the hosts of one request.

    The filter calls :meth:`live_data` once per scheduling request with
    every candidate host, never once per host, so a source backed by a
    network store fetches them all in one batch.

    :ivar live: whether the source can have live data at all.
    """

    live = False

    @abc.abstractmethod
    def live_data(self, host_names):
        """Return what is known live of the given hosts; never raises.

        :param host_names: nova compute ``host`` names.
        :returns: :class:`LiveData`.
        """


class Throttle:
    """Lets one log line per key through every ``interval`` seconds."""

    def __init__(self, interval=WARN_INTERVAL):
        self.interval = interval
        self._last = {}

    def __call__(self, key):
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True


class Unavailable(Exception):
    """The store cannot be read at all (one line: why)."""


class StoreGap:
    """Marks a host whose part of the store could not be read this time.

    Such hosts are judged on accounted data, as when the whole store is
    down, whatever ``[numa_guard] on_missing_live_data`` says: the store
    failed, not the host's agent.

    :ivar reason: why, for the warning.
    """

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return 'StoreGap(%r)' % self.reason


# fetch_raw() values: the host's store server is down or too slow; the
# values read before it used the request's byte budget (someone planted
# large values).
UNREACHABLE_HOST = StoreGap('their store server cannot be reached')
OVER_BUDGET_HOST = StoreGap('the store holds values too large to read '
                            'within the byte budget of the request')


class HostEntry:
    """What a payload source keeps of one host between requests.

    :ivar host: the compute host name.
    :ivar sign_key: the host's own signing key (derived once), or None.
    :ivar mark: the last payload seen (its bytes, or a digest when large).
    :ivar result: its :class:`payload.Trusted` or :class:`payload.Untrusted`.
    :ivar fetched_at: monotonic time of the last fetch (``cache`` memo).
    :ivar value: what that fetch returned (``cache`` memo).
    :ivar key: the host's store key (``cache``), once computed.
    :ivar seen: monotonic time of the last request that asked about it.
    """

    __slots__ = ('host', 'sign_key', 'mark', 'result', 'fetched_at', 'value',
                 'key', 'seen')

    def __init__(self, host, sign_key):
        self.host = host
        self.sign_key = sign_key
        self.mark = self.result = self.value = self.key = None
        self.fetched_at = None
        self.seen = 0.0


class PayloadSource(MemorySource, metaclass=abc.ABCMeta):
    """A source of agent payloads, checked against the trust rules.

    :param conf: an oslo.config ``ConfigOpts``; nova's global ``CONF`` when
        None (the scheduler).
    """

    live = True
    # The largest stored value a host may have.
    max_bytes = payload.MAX_BYTES
    # What a request may read per candidate host, on average (a full
    # payload lists CPUs and devices).
    bytes_per_host = 16 * 1024

    def __init__(self, conf=None):
        self._conf = cfg.CONF if conf is None else conf
        guard_conf.register_opts(self._conf)
        opts = self._conf.numa_guard
        self._key = opts.payload_signing_key
        self._max_age = opts.max_data_age
        self._policy = opts.on_missing_live_data
        self._throttle = Throttle()
        self._down = None
        self._hosts = {}
        # The largest request of the last _KEEP_AGES * max_data_age, and
        # when it came.
        self._peak = (0, 0.0)

    def byte_budget(self, hosts):
        """The bytes a request over ``hosts`` candidate hosts may read.

        ``bytes_per_host`` per host, but at least one value of
        ``max_bytes`` and at most ``MAX_REQUEST_BYTES``: a request of 10,000
        hosts reads at most 32 MiB, whatever is planted in the store.
        """
        return min(max(hosts * self.bytes_per_host, self.max_bytes),
                   MAX_REQUEST_BYTES)

    @abc.abstractmethod
    def fetch_raw(self, entries):
        """Fetch the stored payloads of a batch of hosts.

        :param entries: the :class:`HostEntry` of each host of the request.
        :returns: a list with a value per entry, in their order: bytes, None
            when nothing is stored, a
            :class:`nova_numa_guard.live.payload.Untrusted` saying why the
            host's value cannot be used, or a :class:`StoreGap` when the
            part of the store that holds the host's value could not be read.
        :raises Unavailable: when the store cannot be read at all.
        """

    def live_data(self, host_names):
        try:
            return self._live(host_names)
        except Exception as exc:
            self._set_down('%s: %s' % (type(exc).__name__, exc))
            return LiveData(unavailable=str(exc))

    def entries(self, host_names):
        """The :class:`HostEntry` of each host, keeping the map bounded.

        Each host once, however many of nova's host states name it (the
        nodes of an ironic conductor).
        """
        now = time.monotonic()
        known = self._hosts
        get = known.get
        entries = []
        for host in host_names:
            entry = get(host)
            if entry is None:
                entry = known.setdefault(host, HostEntry(host, (
                    payload.host_key(self._key, host) if self._key
                    else None)))
            elif entry.seen is now:
                # Named before in this call (this very float object).
                continue
            entry.seen = now
            entries.append(entry)
        keep = _KEEP_AGES * self._max_age
        peak, peak_at = self._peak
        if len(entries) >= peak or now - peak_at > keep:
            peak, peak_at = self._peak = (len(entries), now)
        if len(known) > 2 * peak + _SPARE_HOSTS:
            self._prune(known, now - keep, peak + _SPARE_HOSTS)
        return entries

    @staticmethod
    def _prune(known, cutoff, size):
        """Drop the hosts not asked about since ``cutoff``, then the least
        recently asked about beyond ``size``; other threads may insert.
        """
        hosts = list(known.items())
        for host, entry in hosts:
            if entry.seen < cutoff:
                known.pop(host, None)
        if len(known) > size:
            hosts = sorted(list(known.items()), key=lambda item: item[1].seen)
            for host, _ in hosts[:len(hosts) - size]:
                known.pop(host, None)

    def _live(self, host_names):
        entries = self.entries(host_names)
        try:
            raw = self.fetch_raw(entries)
        except Unavailable as exc:
            self._set_down(str(exc))
            return LiveData(unavailable=str(exc))
        self._set_up()
        now = time.time()
        trusted, missing = {}, {}
        ignored = {}
        gaps = {}
        oldest = now - self._max_age
        newest = now + payload.MAX_CLOCK_SKEW
        for entry, value in zip(entries, raw):
            host = entry.host
            # The common case first: the bytes trusted at an earlier
            # request (the cache source gives them back as that object),
            # still young enough.
            mark = entry.mark
            if value is not None and (value is mark or value == mark):
                result = entry.result
                if (type(result) is payload.Trusted and
                        oldest <= result.timestamp <= newest):
                    trusted[host] = result
                    continue
            try:
                if value is None:
                    raise payload.Untrusted(MISSING, 'no live data stored')
                if type(value) is StoreGap:
                    gaps.setdefault(value.reason, []).append(host)
                    continue
                if isinstance(value, payload.Untrusted):
                    raise _fresh(value)
                trusted[host] = self._verify(host, entry, value, now)
            except payload.Untrusted as exc:
                missing[host] = str(exc)
                ignored.setdefault(exc.code, []).append((host, exc))
        if ignored:
            self._warn(ignored, len(entries))
        for reason, hosts in gaps.items():
            self._warn_gap(reason, hosts, len(entries))
        return LiveData(trusted, missing)

    def _verify(self, host, entry, value, now):
        """:func:`payload.verify`, once per distinct payload of a host.

        A payload trusted before gets only the time rules checked again; one
        refused before is refused again without being parsed.
        """
        if type(value) is not bytes:
            raise payload.Untrusted(payload.NOT_JSON, 'stored value is a %s, '
                                    'not bytes' % type(value).__name__)
        if len(value) > self.max_bytes:
            raise payload.Untrusted(payload.TOO_LARGE, '%d bytes, more than '
                                    '%d' % (len(value), self.max_bytes))
        mark = value
        if len(value) > _REMEMBER_BYTES:
            mark = (len(value),
                    hashlib.blake2b(value, digest_size=16).digest())
        if entry.mark == mark:
            result = entry.result
        else:
            try:
                result = payload.verify(value, host, entry.sign_key)
            except payload.Untrusted as exc:
                result = _fresh(exc)
            entry.mark, entry.result = mark, result
        if type(result) is not payload.Trusted:
            raise _fresh(result)
        payload.check_age(result.timestamp, self._max_age, now)
        return result

    def forget(self):
        """Drop what was fetched and verified (tests, benchmarks).

        The hosts' keys stay, as they do when every agent publishes anew.
        """
        for entry in list(self._hosts.values()):
            entry.mark = entry.result = None

    def _warn(self, ignored, total):
        for code, hosts in ignored.items():
            if not self._throttle(code):
                continue
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

    def _warn_gap(self, reason, hosts, total):
        if not self._throttle(reason):
            return
        LOG.warning("%(source)s memory source: %(count)d of %(total)d "
                    "host(s) could not be read (e.g. %(host)s): %(reason)s; "
                    "judging them on accounted memory. Next such warning in "
                    "%(interval)d s at the earliest.",
                    {'source': self.name, 'count': len(hosts),
                     'total': total, 'host': hosts[0], 'reason': reason,
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


def _fresh(untrusted):
    """A copy of a :class:`payload.Untrusted` without traceback or context.

    A kept exception that carried them would keep the frames of the request
    that raised it (and all they hold) alive for as long as the host's
    payload stays refused; raising a kept one would chain every later
    request's frames to it too.
    """
    return payload.Untrusted(untrusted.code, untrusted.detail)
