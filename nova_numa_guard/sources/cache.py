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

"""The ``cache`` memory source: agent payloads in oslo.cache.

The agent and the scheduler open the same store through :class:`Store`, an
oslo.cache region configured from the ``[cache]`` section (memcached or
redis). Payloads are stored as raw JSON bytes under
``nova_numa_guard:live:<host>`` (mangled by the region's key mangler).

Scheduler side, :class:`CacheSource` fetches every candidate host of a request
with one ``get_multi`` and keeps what it fetched for ``MEMO_SECONDS``, so the
instances of a multi-create and requests that follow each other closely cost
no round trip. The age of a payload is checked at every use.

Two things are set on the ``dogpile.cache.pymemcache`` backend, which has
neither by itself: socket timeouts (``[numa_guard] cache_timeout``) with a
server that fails left alone for ``DEAD_SECONDS``, so an unreachable cache
costs a request at most one timeout; and a serializer that never unpickles,
so a value planted in the cache cannot run code in nova-scheduler.
"""

import time
import zlib

from dogpile.cache import api as dogpile_api
from oslo_cache import core as cache_core
from pymemcache.client import rendezvous

from nova_numa_guard import payload
from nova_numa_guard.sources import live

KEY_PREFIX = 'nova_numa_guard:live:'
MEMO_SECONDS = 1.0
DEAD_SECONDS = 10
NULL_BACKEND = 'dogpile.cache.null'


def cache_key(host):
    """The (unmangled) cache key of a host's payload."""
    return KEY_PREFIX + host


class RawSerde:
    """pymemcache serde that stores bytes as they are and never unpickles.

    Whatever flags a writer set, values come back as the bytes stored.
    """

    @staticmethod
    def serialize(key, value):
        if isinstance(value, str):
            value = value.encode('utf-8')
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError('only bytes are stored, not %s' %
                            type(value).__name__)
        return bytes(value), 0

    @staticmethod
    def deserialize(key, value, flags):
        return value


class Store:
    """The payload store behind oslo.cache, shared by agent and scheduler.

    :param conf: ``ConfigOpts`` with the ``[cache]`` options registered.
    :param timeout: socket timeout for pymemcache (seconds).
    :raises ValueError: when ``[cache]`` enables no backend.
    """

    def __init__(self, conf, timeout):
        cache_core.configure(conf)
        if not conf.cache.enabled or conf.cache.backend == NULL_BACKEND:
            raise ValueError('the cache memory store needs [cache] enabled = '
                             'True and a memcached or redis [cache] backend')
        self._conf = conf
        self._timeout = timeout
        self.reconnect()

    def reconnect(self):
        """Drop the connections; the next call opens new ones."""
        region = cache_core.create_region()
        cache_core.configure_cache_region(self._conf, region)
        self.backend = region.backend
        self._mangle = region.key_mangler or _same
        # Backends that serialize themselves (redis) have *_serialized
        # methods that move raw bytes; memcached clients serialize inside.
        self._raw = getattr(self.backend, 'serializer', None) is not None
        _harden_pymemcache(self.backend, self._timeout)

    def get_multi(self, hosts):
        """``{host: bytes}`` of the hosts that have a value; one round trip.

        :raises Exception: whatever the client raises when the store cannot
            be reached.
        """
        keys = [self._mangle(cache_key(host)) for host in hosts]
        if self._raw:
            values = self.backend.get_serialized_multi(keys)
        else:
            values = self.backend.get_multi(keys)
        return {host: value for host, value in zip(hosts, values)
                if value is not dogpile_api.NO_VALUE and value is not None}

    def set(self, host, raw):
        """Store the bytes of a payload under the host's key (with TTL)."""
        key = self._mangle(cache_key(host))
        if self._raw:
            self.backend.set_serialized(key, raw)
        else:
            self.backend.set(key, raw)


def _same(key):
    return key


def _crc32(text, seed=0):
    return zlib.crc32(text.encode('utf-8'), seed)


class _Rendezvous(rendezvous.RendezvousHash):
    """pymemcache's rendezvous hashing with zlib's crc32 (C code).

    pymemcache's default murmur3 is pure Python and cost ~15 us per key, more
    than checking the payload. With one server there is nothing to hash.
    Agent and scheduler both use it, so they agree on each key's server.
    """

    def __init__(self):
        super().__init__(hash_function=_crc32)

    def get_node(self, key):
        if len(self.nodes) == 1:
            return self.nodes[0]
        return super().get_node(key)


def _harden_pymemcache(backend, timeout):
    """Timeouts and a raw serializer for dogpile's pymemcache backend."""
    try:
        from dogpile.cache.backends import memcached
        from pymemcache.client import hash as pymemcache_hash
    except ImportError:
        return
    if not isinstance(backend, memcached.PyMemcacheBackend):
        return

    def create_client():
        kwargs = {'serde': RawSerde(), 'connect_timeout': timeout,
                  'timeout': timeout, 'retry_attempts': 0,
                  'dead_timeout': DEAD_SECONDS, 'default_noreply': False,
                  'hasher': _Rendezvous,
                  'tls_context': backend.tls_context}
        if backend.socket_keepalive is not None:
            kwargs['socket_keepalive'] = backend.socket_keepalive
        return pymemcache_hash.HashClient(backend.url, **kwargs)

    # dogpile builds one client per thread through this factory.
    backend._create_client = create_client


class CacheSource(live.PayloadSource):
    """Live per-node memory that the agents publish through oslo.cache."""

    def __init__(self, conf=None):
        super().__init__(conf)
        self._store = Store(self._conf, self._conf.numa_guard.cache_timeout)
        self._memo = {}

    def fetch_raw(self, host_names):
        now = time.monotonic()
        memo = self._memo
        values = {}
        wanted = []
        for host in host_names:
            entry = memo.get(host)
            if entry is not None and now - entry[0] < MEMO_SECONDS:
                if entry[1] is not None:
                    values[host] = entry[1]
            else:
                wanted.append(host)
        if not wanted:
            return values
        try:
            fetched = self._store.get_multi(wanted)
        except Exception as exc:
            raise live.Unavailable('%s: %s' % (type(exc).__name__,
                                               str(exc)[:200]))
        if len(memo) > 4 * len(host_names) + 1000:
            memo = self._memo = {h: e for h, e in memo.items()
                                 if now - e[0] < MEMO_SECONDS}
        for host in wanted:
            value = fetched.get(host)
            if value is not None and not isinstance(value, (bytes, str)):
                value = payload.Untrusted(
                    payload.NOT_JSON, 'cache holds a %s, not JSON bytes' %
                    type(value).__name__)
            memo[host] = (now, value)
            if value is not None:
                values[host] = value
        return values

    def forget(self, verified=True):
        """Drop the memo, and what was verified (tests, benchmarks)."""
        if verified:
            super().forget()
        self._memo = {}
