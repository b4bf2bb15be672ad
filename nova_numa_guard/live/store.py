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

"""The memcached store of live payloads, shared by the agent and scheduler.

A small client of our own, configured from the ``[cache]`` options nova
already has (``memcache_servers`` and the ``tls_*`` options), so that nothing
of dogpile's or oslo.cache's internals runs inside nova-scheduler:

* Keys are spread over the servers by rendezvous hashing (pymemcache's
  ``RendezvousHash`` with zlib's crc32); agent and scheduler agree on each
  key's server.
* It speaks memcached's text protocol itself: ``get`` with many keys,
  pipelined (every batch is sent before the replies are read, so memcached
  works on the next batch while this one is parsed), and ``set``. Values are
  raw bytes both ways: nothing is ever unpickled, whatever flags a writer
  set. pymemcache's reader cost 4 to 6 microseconds per key, more than the
  scheduler can spend per host. Replies are read key by key in the order
  asked (:meth:`MemcacheStore.get_list`), and a value that reads as the one
  the caller already holds is handed back as that object; after such a
  value, the next one is first compared whole with what the caller holds
  (one comparison instead of parsing its line), which halves the reading of
  unchanged values.
* Every call has **one deadline** for all its socket operations, not a
  timeout per read: a server that trickles one byte at a time cannot hold a
  request longer than the deadline.
* Every fetch has a **byte budget**: whatever is planted in memcached, a
  request reads at most that many bytes (each server a share in proportion
  to its keys), and no value larger than ``max_value``: such a value is
  refused from its ``VALUE`` line (:class:`TooLarge`), and its bytes are
  skipped unread when the budget affords them, else the connection is
  closed and the keys not read yet are reported as over budget. No byte of
  a reply is copied more than twice, whatever the sizes of the reads.
* A value for a key the call did not ask for (a misbehaving server) is
  skipped; only a reply that is not memcached's protocol fails the server.
* The servers of a fetch are read at the same time (a thread per server
  but the first), so a server that hangs costs only its own keys.
* A server that fails (refused, timed out, reset, garbled) is left alone
  for ``DEAD_SECONDS``; its keys are reported as unreachable meanwhile, so
  an outage costs one request at most one deadline. A pooled connection the
  server closed while it was idle (memcached restarted) is retried once on
  a new one first.
* Server names are resolved off the request's thread, at first use and
  again after the server failed, and a call waits for that no longer than
  its deadline; numeric addresses never wait. The address family is what
  ``getaddrinfo`` gives (``host:port``, ``[v6addr]:port``,
  ``inet6:[v6addr]:port``, ``unix:/path``, as oslo.cache and pymemcache
  take them), every address it gives is tried in turn, and TLS (``[cache]
  tls_enabled``) applies to TCP servers only, as in pymemcache: a unix
  socket is local and has no host name to check.

redis is not supported: memcached is what OpenStack deployments already run
for keystonemiddleware and oslo.cache, and one store whose every byte and
second is bounded is worth more than two.
"""

import hashlib
import re
import socket
import ssl
import threading
import time
import zlib

from oslo_cache import core as cache_core
from pymemcache.client import rendezvous

# Payload keys: "<prefix><host>".
FULL_PREFIX = 'nova_numa_guard:live:'
RECORD_PREFIX = 'nova_numa_guard:mem:'
DEAD_SECONDS = 10.0
# Keys per "get" command: bounds the command line memcached must buffer.
BATCH = 100
# Bytes asked of the socket per read.
RECV_SIZE = 256 * 1024
# The longest reply line: "VALUE <key of 250> <flags> <bytes>".
_MAX_LINE = 512
# A reply's value line, as memcached writes it for a "get".
_VALUE_LINE = re.compile(
    rb'VALUE ([^ \r\n]{1,250}) [0-9]{1,10} ([0-9]{1,10})\r\n')
# Idle connections kept per server.
POOL_SIZE = 4
# How long a call waits past its deadline for a server's reader thread
# (which stops at its next socket operation after the deadline).
_JOIN_GRACE = 0.1
MEMCACHED_BACKENDS = frozenset((
    'dogpile.cache.pymemcache', 'oslo_cache.memcache_pool',
    'dogpile.cache.memcached', 'dogpile.cache.pylibmc',
    'dogpile.cache.bmemcached'))
_MAX_KEY = 250
# The largest value memcached stores by default (1 MiB items).
_MAX_VALUE = 1024 * 1024
# What a pooled connection that the server closed meanwhile raises.
_STALE = (ConnectionResetError, BrokenPipeError)


class StoreError(Exception):
    """The store cannot serve a call (one line: why)."""


class BudgetExceeded(OSError):
    """A fetch read more bytes than its budget allows."""


class ProtocolError(OSError):
    """A server answered something memcached does not say."""


class TooLarge:
    """A value larger than the call's ``max_value``, refused unread.

    :meth:`MemcacheStore.get_list` returns it instead of the bytes.

    :ivar size: the size the server announced, in bytes.
    """

    __slots__ = ('size',)

    def __init__(self, size):
        self.size = size

    def __repr__(self):
        return 'TooLarge(%d)' % self.size


class _Gap:
    """Why :meth:`MemcacheStore.get_list` has no value for a key."""

    __slots__ = ('reason',)

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return '<%s>' % self.reason


# get_list() values: the key's server failed or is left alone; the byte
# budget ran out before the key was read.
UNREACHABLE = _Gap('unreachable')
OVER_BUDGET = _Gap('over budget')


def key(prefix, host):
    """The memcached key of ``host``'s value under ``prefix``.

    Host names that memcached cannot take as keys (spaces, control
    characters, non-ASCII, too long) are replaced by their SHA-1.
    """
    text = prefix + host
    if (len(text) <= _MAX_KEY and text.isascii() and text.isprintable()
            and ' ' not in text):
        return text
    return prefix + 'sha1:' + hashlib.sha1(host.encode('utf-8',
                                                       'replace')).hexdigest()


def _crc32(text, seed=0):
    return zlib.crc32(text.encode('utf-8'), seed)


class _Limits:
    """The deadline and byte budget of the call in progress."""

    __slots__ = ('deadline', 'budget')

    def __init__(self):
        self.deadline = float('inf')
        self.budget = float('inf')

    def remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout('deadline reached')
        return left


class _BoundedSocket:
    """A socket whose every operation respects the call's ``_Limits``."""

    def __init__(self, sock, limits):
        self._sock = sock
        self._limits = limits

    def connect(self, address):
        self._sock.settimeout(self._limits.remaining())
        self._sock.connect(address)

    def sendall(self, data):
        self._sock.settimeout(self._limits.remaining())
        self._sock.sendall(data)

    def recv(self, size):
        """At most ``size`` bytes, and never more than the budget left."""
        limits = self._limits
        budget = limits.budget
        if budget < size:
            if budget <= 0:
                raise BudgetExceeded('byte budget of the fetch exceeded')
            size = int(budget)
        self._sock.settimeout(limits.remaining())
        data = self._sock.recv(size)
        if not data:
            raise ConnectionResetError('the server closed the connection')
        limits.budget = budget - len(data)
        return data

    def close(self):
        self._sock.close()


class _Connection:
    """One connection to a memcached server, opened when first used.

    :ivar limits: the :class:`_Limits` of the call in progress; every socket
        operation checks them.
    """

    def __init__(self, server):
        self._server = server
        self.limits = _Limits()
        self._sock = None

    def _socket(self):
        if self._sock is None:
            self._sock = self._server.connect(self.limits)
        return self._sock

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def get_many(self, keys, max_value, out, known=None):
        """Fill ``out`` (a list of ``None``, one per key) with the values of
        ``keys`` found; one pipelined round trip.

        A value larger than ``max_value`` bytes is not read: ``out`` gets a
        :class:`TooLarge` for it. Values of keys not asked for are skipped.
        A reply line that is not exactly as memcached writes it (a key over
        250 bytes, other spacing) is a protocol error.

        :param known: None, or a list aligned with ``keys`` of the values
            the caller holds: a value that reads the same as its known one
            is given as that very object.
        :raises BudgetExceeded: when the byte budget ran out; ``out`` holds
            what was read before.
        :raises OSError: on any socket or protocol failure (the connection
            is then closed).
        """
        try:
            self._get_many(keys, max_value, out, known)
        except BaseException:
            self.close()
            raise

    def _get_many(self, keys, max_value, out, known):
        sock = self._socket()
        names = [k.encode('ascii') for k in keys]
        batches = range(0, len(names), BATCH)
        sock.sendall(b''.join(b'get ' + b' '.join(names[i:i + BATCH]) +
                              b'\r\n' for i in batches))
        # memcached answers in the order asked, leaving out the keys it does
        # not hold: the next key asked for is found by one comparison, any
        # other (a key left out before it, one not asked for) by the index
        # of every key, built when first needed.
        at = 0
        index = None
        match = _VALUE_LINE.match
        ends = 0
        # The reply from ``pos`` on. A read appends to what is left of a
        # line (at most _MAX_LINE bytes); the reads of a value are joined
        # once: no byte is copied more than twice, whatever the read sizes.
        buf = b''
        pos = 0
        # Whether the value read last was the one the caller knows: the
        # next one then likely is too, and is tried first as one comparison
        # with its value as memcached writes it (the store writes flags 0).
        same = known is not None
        while ends < len(batches):
            if same and at < len(names):
                old = known[at]
                if type(old) is bytes and len(old) <= max_value:
                    expected = b'VALUE %s 0 %d\r\n%s\r\n' % (
                        names[at], len(old), old)
                    if buf.startswith(expected, pos):
                        out[at] = old
                        at += 1
                        pos += len(expected)
                        continue
                same = False
            header = match(buf, pos)
            if header is None:
                line_end = buf.find(b'\r\n', pos)
                if line_end < 0:
                    buf, pos = _more(sock, buf, pos), 0
                    continue
                if line_end == pos + 3 and buf.startswith(b'END', pos):
                    ends += 1
                    pos = line_end + 2
                    continue
                raise ProtocolError('unexpected reply %r' %
                                    buf[pos:line_end][:40])
            name, size = header.groups()
            if at < len(names) and names[at] == name:
                position = at
            else:
                if index is None:
                    index = {n: i for i, n in enumerate(names)}
                position = index.get(name)
            size = int(size)
            start = header.end()
            end = start + size
            missing = end + 2 - len(buf)
            if size > max_value or position is None:
                # Too large, or not asked for: skipped unread, and only if
                # the budget affords it.
                if position is not None:
                    out[position] = TooLarge(size)
                    at = position + 1
                if missing > self.limits.budget:
                    raise BudgetExceeded('a value of %d bytes past the byte '
                                         'budget' % size)
                pos = end + 2
                if missing > 0:
                    buf, pos = b'', 0
                    while missing > 0:
                        missing -= len(sock.recv(min(missing, RECV_SIZE)))
                continue
            if missing > 0:
                chunks = [buf[start:]]
                while missing > 0:
                    chunks.append(sock.recv(max(missing, RECV_SIZE)))
                    missing -= len(chunks[-1])
                buf = b''.join(chunks)
                start, end = 0, size
            if not buf.startswith(b'\r\n', end):
                raise ProtocolError('a value of %d bytes not followed by '
                                    'CRLF' % size)
            old = known[position] if known is not None else None
            same = (type(old) is bytes and len(old) == size and
                    buf.startswith(old, start))
            out[position] = old if same else buf[start:end]
            at = position + 1
            pos = end + 2

    def set_many(self, items, ttl):
        """Store ``{key: bytes}``; returns the keys not stored.

        :raises OSError: on any socket or protocol failure.
        """
        try:
            sock = self._socket()
            sock.sendall(b''.join(
                b'set %s 0 %d %d\r\n%s\r\n' % (k.encode('ascii'), ttl,
                                                len(value), value)
                for k, value in items.items()))
            failed = []
            buf = b''
            pos = 0
            for k in items:
                line_end = buf.find(b'\r\n', pos)
                while line_end < 0:
                    buf, pos = _more(sock, buf, pos, 4096), 0
                    line_end = buf.find(b'\r\n')
                line = buf[pos:line_end]
                pos = line_end + 2
                if line != b'STORED':
                    if not line.startswith(b'NOT_STORED'):
                        raise ProtocolError('unexpected reply %r' % line[:40])
                    failed.append(k)
            return failed
        except BaseException:
            self.close()
            raise


def _more(sock, buf, pos, size=RECV_SIZE):
    """What is left of ``buf`` from ``pos``, and the next read of ``sock``.

    :raises ProtocolError: when what is left, part of one reply line, is
        already longer than a line can be.
    """
    if len(buf) - pos > _MAX_LINE:
        raise ProtocolError('a reply line longer than %d bytes' % _MAX_LINE)
    return buf[pos:] + sock.recv(size)


class _Server:
    """One memcached server: its addresses, a small pool of connections and
    its health.

    :ivar address: ``(host, port)``, or the path of a unix socket.
    """

    def __init__(self, name, tls_context):
        self.name = name
        self._family = socket.AF_UNSPEC
        self._numeric = True
        if name.startswith('unix:'):
            self.address = name[len('unix:'):]
            self._resolved = [(socket.AF_UNIX, self.address)]
            # pymemcache too speaks plainly to a unix socket.
            tls_context = None
        else:
            if name.startswith('inet6:'):
                name = name[len('inet6:'):]
                self._family = socket.AF_INET6
            host, _, port = name.rpartition(':')
            host = host.strip('[]')
            if not host:
                raise ValueError(name)
            self.address = (host, int(port))
            try:
                # An address, not a name: no lookup, nothing to wait for.
                self._resolved = _addresses(self, socket.AI_NUMERICHOST)
            except (OSError, UnicodeError):
                self._resolved = None
                self._numeric = False
        self.tls = tls_context
        self._idle = []
        self._lock = threading.Lock()
        self._lookup = None
        self._lookup_error = None
        self.dead_until = 0.0

    def connect(self, limits):
        """A new connected :class:`_BoundedSocket`, within ``limits``.

        :raises OSError: when no address of the server can be connected.
        """
        error = None
        for family, sockaddr in self._addresses(limits):
            raw = socket.socket(family, socket.SOCK_STREAM)
            sock = _BoundedSocket(raw, limits)
            try:
                if family != socket.AF_UNIX:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    sock = _BoundedSocket(self.tls.wrap_socket(
                        raw, server_hostname=self.address[0]), limits)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
            except BaseException:
                sock.close()
                raise
        raise error

    def _addresses(self, limits):
        """``[(family, sockaddr)]``, looked up off this thread if need be.

        The lookup runs in a thread of its own (one at a time per server),
        so that a resolver that hangs holds no call past its deadline.
        """
        resolved = self._resolved
        if resolved is not None:
            return resolved
        with self._lock:
            done = self._lookup
            if done is None:
                done = self._lookup = threading.Event()
                threading.Thread(target=self._resolve, args=(done,),
                                 daemon=True).start()
        if not done.wait(limits.remaining()):
            raise socket.timeout('%s not resolved by the deadline' %
                                 self.address[0])
        resolved = self._resolved
        if resolved is None:
            raise OSError(self._lookup_error)
        return resolved

    def _resolve(self, done):
        try:
            self._resolved = _addresses(self)
        except Exception as exc:
            self._lookup_error = 'cannot resolve %s: %s' % (
                self.address[0], _one_line(exc))
        finally:
            with self._lock:
                self._lookup = None
            done.set()

    def failed(self):
        """Leave the server alone for a while; look its name up again."""
        self.dead_until = time.monotonic() + DEAD_SECONDS
        if not self._numeric and isinstance(self.address, tuple):
            self._resolved = None

    def connection(self):
        """``(connection, pooled)``: an idle connection, or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return _Connection(self), False

    def release(self, connection):
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(connection)
                return
        connection.close()


class MemcacheStore:
    """Live payloads in memcached.

    :param servers: ``["host:port", ...]`` (``[cache] memcache_servers``).
    :param timeout: seconds; the deadline of every call.
    :param tls_context: an ``ssl.SSLContext``, or None.
    :raises StoreError: when ``servers`` is empty or malformed.
    """

    def __init__(self, servers, timeout, tls_context=None):
        if not servers:
            raise StoreError('no memcached server in [cache] '
                             'memcache_servers')
        self._servers = {}
        for name in servers:
            name = name.strip()
            try:
                self._servers[name] = _Server(name, tls_context)
            except ValueError:
                raise StoreError('[cache] memcache_servers: %r is not '
                                 'host:port' % name)
        self._ring = rendezvous.RendezvousHash(list(self._servers),
                                               hash_function=_crc32)
        self.timeout = timeout

    @classmethod
    def from_conf(cls, conf, timeout):
        """The store of the ``[cache]`` options of ``conf``.

        :raises StoreError: when ``[cache] backend`` is not a memcached one.
        """
        cache_core.configure(conf)  # registers [cache]; idempotent
        opts = conf.cache
        if opts.backend not in MEMCACHED_BACKENDS:
            raise StoreError(
                '[cache] backend = %s: live memory payloads are kept in '
                'memcached only; set one of %s and [cache] memcache_servers'
                % (opts.backend, ', '.join(sorted(MEMCACHED_BACKENDS))))
        return cls(opts.memcache_servers, timeout, _tls_context(opts))

    def server_of(self, key):
        return self._ring.get_node(key)

    def _positions(self, keys):
        """``{server name: [position in keys, ...]}``; None for all."""
        if len(self._servers) == 1:
            return {next(iter(self._servers)): None}
        positions = {}
        get_node = self._ring.get_node
        for position, k in enumerate(keys):
            positions.setdefault(get_node(k), []).append(position)
        return positions

    def get_multi(self, keys, max_bytes, max_value=_MAX_VALUE):
        """:meth:`get_list` as maps.

        :returns: ``(values, unreachable, over_budget)``: ``{key: bytes}``
            of the keys found (a :class:`TooLarge` for a value larger than
            ``max_value``); the keys whose server failed or is left alone;
            the keys not read because the byte budget ran out.
        :raises StoreError: when no server could be read at all.
        """
        values, unreachable, over_budget = {}, [], []
        for k, value in zip(keys, self.get_list(keys, max_bytes, max_value)):
            if value is UNREACHABLE:
                unreachable.append(k)
            elif value is OVER_BUDGET:
                over_budget.append(k)
            elif value is not None:
                values[k] = value
        return values, unreachable, over_budget

    def get_list(self, keys, max_bytes, max_value=_MAX_VALUE, known=None):
        """Fetch ``keys`` within one deadline and ``max_bytes``.

        The servers are read at the same time, each until the call's
        deadline and with a share of ``max_bytes`` in proportion to its
        keys: a server that hangs, trickles or serves planted values costs
        its own keys only.

        :param keys: distinct keys.
        :param max_value: the largest value read; a larger one is refused
            from its header, unread.
        :param known: None, or a list aligned with ``keys`` of the values
            the caller holds: a value that reads the same as its known one
            comes back as that very object, so that the caller tells it
            unchanged by identity.
        :returns: a list aligned with ``keys``: bytes, None when nothing is
            stored, a :class:`TooLarge` for a value larger than
            ``max_value``, :data:`UNREACHABLE` when the key's server failed
            or is left alone, :data:`OVER_BUDGET` when the byte budget ran
            out before it was read.
        :raises StoreError: when no server could be read at all.
        """
        deadline = time.monotonic() + self.timeout
        by_server = self._positions(keys)
        values = [None] * len(keys)
        results = {}
        jobs = []
        now = time.monotonic()
        for name, positions in by_server.items():
            if now < self._servers[name].dead_until:
                results[name] = StoreError('failed less than %d s ago' %
                                           DEAD_SECONDS)
            else:
                jobs.append((name, positions))

        def fetch(name, positions):
            if positions is None:
                server_keys, server_known, out = keys, known, values
            else:
                server_keys = [keys[p] for p in positions]
                server_known = (None if known is None else
                                [known[p] for p in positions])
                out = [None] * len(positions)
            share = max_bytes * len(server_keys) // max(1, len(keys))
            try:
                results[name] = out, self._fetch(
                    self._servers[name], server_keys, deadline, share,
                    max_value, out, server_known)
            except Exception as exc:
                results[name] = exc

        threads = [threading.Thread(target=fetch, args=job, daemon=True)
                   for job in jobs[1:]]
        for thread in threads:
            thread.start()
        if jobs:
            fetch(*jobs[0])
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + _JOIN_GRACE)
        failures = []
        for name, positions in by_server.items():
            result = results.get(name)
            mine = range(len(keys)) if positions is None else positions
            if type(result) is tuple:
                out, cut = result
                if positions is not None:
                    for position, value in zip(positions, out):
                        values[position] = value
                if cut:
                    for position in mine:
                        if values[position] is None:
                            values[position] = OVER_BUDGET
            else:
                failures.append('%s: %s' % (name, 'no answer by the deadline'
                                            if result is None
                                            else _one_line(result)))
                for position in mine:
                    values[position] = UNREACHABLE
        if failures and len(failures) == len(by_server):
            raise StoreError('; '.join(failures))
        return values

    def _fetch(self, server, keys, deadline, max_bytes, max_value, out,
               known):
        """Fill ``out``; True when the byte budget ran out first.

        :raises StoreError: when the server failed (it is left alone).
        """
        connection, pooled = server.connection()
        limits = connection.limits
        limits.deadline = deadline
        limits.budget = max_bytes
        try:
            try:
                connection.get_many(keys, max_value, out, known)
            except _STALE:
                # A pooled connection the server closed while it was idle
                # (memcached restarted): once more, on a new one.
                if not pooled or limits.budget < max_bytes:
                    raise
                connection.get_many(keys, max_value, out, known)
        except BudgetExceeded:
            return True
        except (OSError, ValueError) as exc:
            server.failed()
            raise StoreError(_one_line(exc))
        finally:
            limits.deadline = limits.budget = float('inf')
        server.release(connection)
        return False

    def set_many(self, items, ttl):
        """Store ``{key: bytes}`` with a TTL in seconds; one deadline.

        :raises StoreError: when a server cannot store its part.
        """
        deadline = time.monotonic() + self.timeout
        keys = list(items)
        by_server = {}
        for name, positions in self._positions(keys).items():
            by_server[name] = (items if positions is None else
                               {keys[p]: items[keys[p]] for p in positions})
        for name, values in by_server.items():
            server = self._servers[name]
            connection, _ = server.connection()
            connection.limits.deadline = deadline
            try:
                failed = connection.set_many(values, ttl)
            except OSError as exc:
                raise StoreError('%s: %s' % (name, _one_line(exc)))
            finally:
                connection.limits.deadline = float('inf')
            server.release(connection)
            if failed:
                raise StoreError('%s did not store %s' % (
                    name, ', '.join(sorted(failed))))


def _addresses(server, flags=0):
    """``[(family, sockaddr)]`` of a TCP server, as getaddrinfo gives them.

    :raises OSError: when it cannot be resolved.
    """
    host, port = server.address
    found = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(
            host, port, server._family, socket.SOCK_STREAM, 0, flags):
        if (family, sockaddr) not in found:
            found.append((family, sockaddr))
    return found


def _tls_context(opts):
    """An ``ssl.SSLContext`` from ``[cache] tls_*``, or None."""
    if not opts.tls_enabled:
        return None
    context = ssl.create_default_context(cafile=opts.tls_cafile)
    if opts.tls_certfile:
        context.load_cert_chain(opts.tls_certfile, opts.tls_keyfile)
    if opts.tls_allowed_ciphers:
        context.set_ciphers(opts.tls_allowed_ciphers)
    return context


def _one_line(exc):
    text = str(exc).strip()
    name = type(exc).__name__
    return '%s: %s' % (name, text.splitlines()[0][:200]) if text else name
