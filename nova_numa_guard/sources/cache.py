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
with one ``get_multi`` and keeps what it fetched for ``[numa_guard]
live_data_memo_seconds``, so the instances of a multi-create and requests that
follow each other closely cost no round trip. The age of a payload is checked
at every use.

Supported backends are ``dogpile.cache.pymemcache`` and the backends that move
raw bytes (redis); :class:`Store` refuses the other memcached backends, whose
clients unpickle what they read and have no timeout. On the pymemcache
backend, the client is replaced by one with socket timeouts (``[numa_guard]
cache_timeout``) and a server that fails left alone for ``DEAD_SECONDS`` (so
an unreachable cache costs a request at most one timeout), and a serializer
that never unpickles (so a value planted in the cache cannot run code in
nova-scheduler). With one server it is pymemcache's plain ``Client``; with
several, a ``HashClient``, and the hosts whose server is down are reported as
unreachable (judged on accounted data), not as missing.
"""

import time
import zlib

from dogpile.cache import api as dogpile_api
from oslo_cache import core as cache_core

from nova_numa_guard import payload
from nova_numa_guard.sources import live

KEY_PREFIX = 'nova_numa_guard:live:'
DEAD_SECONDS = 10
NULL_BACKEND = 'dogpile.cache.null'
PYMEMCACHE_BACKEND = 'dogpile.cache.pymemcache'
SUPPORTED_BACKENDS = ('dogpile.cache.pymemcache', 'dogpile.cache.redis',
                      'dogpile.cache.redis_sentinel')
# Backends whose clients unpickle what they read and have no timeouts.
REFUSED_BACKENDS = frozenset((
    'oslo_cache.memcache_pool', 'dogpile.cache.memcached',
    'dogpile.cache.pylibmc', 'dogpile.cache.bmemcached'))


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
    :raises ValueError: when ``[cache]`` enables no backend, or one that
        unpickles what it reads (see ``SUPPORTED_BACKENDS``).
    """

    def __init__(self, conf, timeout):
        cache_core.configure(conf)
        backend = conf.cache.backend
        if not conf.cache.enabled or backend == NULL_BACKEND:
            raise ValueError('the cache memory store needs [cache] enabled = '
                             'True and a memcached or redis [cache] backend')
        if backend in REFUSED_BACKENDS:
            _refuse(backend)
        self._conf = conf
        self._timeout = timeout
        self._keys = {}
        self.reconnect()

    def reconnect(self):
        """Drop the connections; the next call opens new ones."""
        region = cache_core.create_region()
        cache_core.configure_cache_region(self._conf, region)
        self.backend = region.backend
        self._mangle = region.key_mangler or _same
        self._keys = {}
        self._pymemcache = _is_pymemcache(self.backend)
        # Backends that serialize themselves (redis) have *_serialized
        # methods that move raw bytes; of the memcached ones, only
        # pymemcache can be given a serializer that does not unpickle.
        self._raw = (not self._pymemcache and
                     getattr(self.backend, 'serializer', None) is not None)
        if not (self._pymemcache or self._raw):
            _refuse(self._conf.cache.backend)
        if self._pymemcache:
            _harden_pymemcache(self.backend, self._timeout)

    def key(self, host):
        """The mangled cache key of ``host``, memoised."""
        key = self._keys.get(host)
        if key is None:
            key = self._keys[host] = self._mangle(cache_key(host))
        return key

    def get_multi(self, hosts):
        """``{host: bytes}`` of the hosts that have a value; one round trip.

        Hosts whose memcached server is marked down (several servers) map
        to :data:`live.UNREACHABLE_HOST`.

        :raises Exception: whatever the client raises when the store cannot
            be reached.
        """
        keys = [self.key(host) for host in hosts]
        if self._pymemcache:
            client = self.backend.client
            found = client.get_many(keys)
            values = {host: found[key] for host, key in zip(hosts, keys)
                      if key in found}
            dead = getattr(client, 'dead_servers', None)
            if dead:
                for host, key in zip(hosts, keys):
                    if host not in values and client.server_of(key) in dead:
                        values[host] = live.UNREACHABLE_HOST
            return values
        if self._raw:
            found = self.backend.get_serialized_multi(keys)
        else:
            found = self.backend.get_multi(keys)
        return {host: value for host, value in zip(hosts, found)
                if value is not dogpile_api.NO_VALUE and value is not None}

    def set(self, host, raw):
        """Store the bytes of a payload under the host's key (with TTL)."""
        key = self.key(host)
        if self._raw:
            self.backend.set_serialized(key, raw)
        else:
            self.backend.set(key, raw)


def _refuse(backend):
    raise ValueError(
        '[cache] backend = %s cannot hold live memory payloads (its client '
        'unpickles what it reads); use one of %s' %
        (backend, ', '.join(SUPPORTED_BACKENDS)))


def _same(key):
    return key


def _is_pymemcache(backend):
    try:
        from dogpile.cache.backends import memcached
    except ImportError:
        return False
    return isinstance(backend, memcached.PyMemcacheBackend)


def _crc32(text, seed=0):
    return zlib.crc32(text.encode('utf-8'), seed)


def _harden_pymemcache(backend, timeout):
    """Timeouts, raw bytes and dead-server tracking for pymemcache."""
    from pymemcache.client import base as pymemcache_base
    from pymemcache.client import hash as pymemcache_hash
    from pymemcache.client import rendezvous
    from pymemcache import exceptions

    class Rendezvous(rendezvous.RendezvousHash):
        """pymemcache's rendezvous hashing with zlib's crc32 (C code).

        pymemcache's default murmur3 is pure Python and cost ~15 us per key.
        Agent and scheduler both use it, so they agree on each key's server.
        """

        def __init__(self, nodes=None):
            super().__init__(nodes=nodes, hash_function=_crc32)

    class OneServerClient(pymemcache_base.Client):
        """One server: no hashing; after a failure, left alone a while."""

        _dead_until = 0.0

        def get_many(self, keys, *args, **kwargs):
            if time.monotonic() < self._dead_until:
                raise ConnectionError('memcached %s failed less than %d s '
                                      'ago' % (self.server, DEAD_SECONDS))
            try:
                return super().get_many(keys, *args, **kwargs)
            except (OSError, exceptions.MemcacheUnexpectedCloseError):
                self._dead_until = time.monotonic() + DEAD_SECONDS
                raise

        get_multi = get_many

    class Client(pymemcache_hash.HashClient):
        """Several servers; knows which keys live on a server that is down.

        pymemcache drops a failed server from its hash ring, so its keys
        come back as misses; :meth:`server_of` tells them apart.
        """

        def __init__(self, servers, **kwargs):
            super().__init__(servers, hasher=Rendezvous, **kwargs)
            self._ring = Rendezvous(list(self.clients))

        @property
        def dead_servers(self):
            return {self._make_client_key(s) for s in self._dead_clients}

        def server_of(self, key):
            return self._ring.get_node(key)

    def create_client():
        kwargs = {'serde': RawSerde(), 'connect_timeout': timeout,
                  'timeout': timeout, 'default_noreply': False,
                  'tls_context': backend.tls_context}
        if backend.socket_keepalive is not None:
            kwargs['socket_keepalive'] = backend.socket_keepalive
        if len(backend.url) == 1:
            return OneServerClient(backend.url[0], **kwargs)
        return Client(backend.url, retry_attempts=0,
                      dead_timeout=DEAD_SECONDS, **kwargs)

    # dogpile builds one client per thread through this factory.
    backend._create_client = create_client


class CacheSource(live.PayloadSource):
    """Live per-node memory that the agents publish through oslo.cache."""

    def __init__(self, conf=None):
        super().__init__(conf)
        opts = self._conf.numa_guard
        self._store = Store(self._conf, opts.cache_timeout)
        self._memo_seconds = opts.live_data_memo_seconds
        self._memo = {}

    def fetch_raw(self, host_names):
        now = time.monotonic()
        memo = self._memo
        window = self._memo_seconds
        values = {}
        wanted = []
        if window > 0:
            for host in host_names:
                entry = memo.get(host)
                if entry is not None and now - entry[0] < window:
                    if entry[1] is not None:
                        values[host] = entry[1]
                else:
                    wanted.append(host)
        else:
            wanted = host_names
        if not wanted:
            return values
        try:
            fetched = self._store.get_multi(wanted)
        except Exception as exc:
            raise live.Unavailable('%s: %s' % (type(exc).__name__,
                                               str(exc)[:200]))
        if window <= 0:
            return _checked(fetched)
        if len(memo) > 4 * len(host_names) + 1000:
            memo = self._memo = {h: e for h, e in memo.items()
                                 if now - e[0] < window}
        for host in wanted:
            value = _check(fetched.get(host))
            memo[host] = (now, value)
            if value is not None:
                values[host] = value
        return values

    def forget(self, verified=True):
        """Drop the memo, and what was verified (tests, benchmarks)."""
        if verified:
            super().forget()
        self._memo = {}


def _check(value):
    """A fetched value, or an Untrusted when it is not bytes."""
    if (value is None or value is live.UNREACHABLE_HOST or
            isinstance(value, (bytes, str))):
        return value
    return payload.Untrusted(payload.NOT_JSON, 'cache holds a %s, not JSON '
                             'bytes' % type(value).__name__)


def _checked(fetched):
    return {host: _check(value) for host, value in fetched.items()}
