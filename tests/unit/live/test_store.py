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

"""MemcacheStore against a real memcached and misbehaving fake servers.

The fake servers listen on 127.0.0.1 on a port the kernel picks and count
the connections they accept. Time bounds are asserted only where the bound
is the behaviour itself, and generously (five times the deadline).
"""

import logging
import os
import pickle
import socket
import ssl
import subprocess
import threading
import time

import fixtures
import hypothesis
from hypothesis import strategies as st
from oslo_cache import core as cache_core
from oslo_config import fixture as config_fixture
from pymemcache.client import base as pymemcache_base
from pymemcache import serde as pymemcache_serde

from nova_numa_guard.live import store
from tests import fake_memcached
from tests import memcached_fixture
from tests import testcase
from tests.unit.live import base

# The deadline of the tests that wait for a bad server, in seconds: a
# healthy memcached on loopback answers well within it, even on a busy
# machine.
TIMEOUT = 1.0
# The deadline of calls that must succeed, whatever the machine's load.
SAFE_TIMEOUT = 10.0
MIB = 1024 * 1024

SPRUNG = []


def _spring():
    SPRUNG.append(True)
    return 'sprung'


class _Trap:
    """Unpickling this calls _spring(): proof that something unpickled."""

    def __reduce__(self):
        return (_spring, ())


def wait_for(predicate, what, timeout=10.0):
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(0.01)


class UnixMemcached(fixtures.Fixture):
    """A real memcached listening on a unix socket only."""

    def _setUp(self):
        if not os.access(memcached_fixture.BINARY, os.X_OK):
            raise memcached_fixture.MemcachedMissing(
                '%s not found: install memcached' % memcached_fixture.BINARY)
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'memcached.sock')
        command = [memcached_fixture.BINARY, '-s', self.path, '-U', '0',
                   '-m', '16']
        if os.geteuid() == 0:
            command += ['-u', 'root']
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        wait_for(lambda: self._answers() or process.poll() is not None,
                 'memcached on %s' % self.path)
        if process.poll() is not None:
            raise RuntimeError('memcached on %s exited' % self.path)

    def _answers(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(self.path)
                sock.sendall(b'version\r\n')
                return sock.recv(64).startswith(b'VERSION')
        except OSError:
            return False


class StoreTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_numa_guard', level=logging.DEBUG))
        self.connects = []
        real_connect = store._BoundedSocket.connect

        def counting(sock, address):
            self.connects.append(address)
            return real_connect(sock, address)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.live.store._BoundedSocket.connect', counting))

    def keys(self, count, prefix=store.RECORD_PREFIX):
        return [store.key(prefix, 'compute%d' % i) for i in range(count)]

    def split(self, mstore, keys, url):
        """``(keys on url, keys elsewhere)``, both non-empty."""
        there = [k for k in keys if mstore.server_of(k) == url]
        elsewhere = [k for k in keys if mstore.server_of(k) != url]
        self.assertTrue(there and elsewhere, 'keys all on one server')
        return there, elsewhere

    def later(self, seconds):
        """Move time.monotonic ``seconds`` ahead for the rest of the test."""
        real = time.monotonic
        self.useFixture(fixtures.MockPatch(
            'time.monotonic', new=lambda: real() + seconds))


class RoundTripTest(StoreTestCase):
    """Raw bytes in and out of one real memcached."""

    def setUp(self):
        super().setUp()
        self.memcached = self.useFixture(memcached_fixture.Memcached())
        self.store = store.MemcacheStore([self.memcached.url], SAFE_TIMEOUT)

    def test_bytes_round_trip(self):
        """Ensures set_many then get_multi gives back the same bytes."""
        items = {'k1': b'{"schema": 1}', 'k2': b'\x00\xff\r\nEND\r\n',
                 'k3': b''}
        self.store.set_many(items, 60)
        values, unreachable, over_budget = self.store.get_multi(
            ['k1', 'k2', 'k3', 'absent'], MIB)
        self.assertEqual(items, values)
        self.assertEqual(([], []), (unreachable, over_budget))

    def test_only_bytes_are_stored(self):
        """Ensures a value that is not bytes is refused, not pickled."""
        self.assertRaises(TypeError, self.store.set_many,
                          {'k1': {'schema': 1}}, 60)
        self.assertEqual({}, self.store.get_multi(['k1'], MIB)[0])

    def test_pickled_values_come_back_as_stored_bytes(self):
        """Ensures values flagged as pickles by other clients stay bytes."""
        del SPRUNG[:]
        # As python-memcached and pymemcache's pickle serde store objects.
        writer = pymemcache_base.Client(
            (memcached_fixture.HOST, self.memcached.port),
            serde=pymemcache_serde.pickle_serde)
        self.addCleanup(writer.close)
        writer.set('by-pymemcache', _Trap())
        stored, flags = pymemcache_serde.python_memcache_serializer(
            'by-pymemcache', _Trap())
        self.assertEqual(pymemcache_serde.FLAG_PICKLE, flags)
        raw = pickle.dumps(_Trap())
        for flag in (1, 2, 4, 16):
            reply = self.memcached.command(
                b'set flag%d %d 60 %d\r\n%s\r\n' % (flag, flag, len(raw),
                                                   raw))
            self.assertEqual(b'STORED\r\n', reply)
        values = self.store.get_multi(
            ['by-pymemcache', 'flag1', 'flag2', 'flag4', 'flag16'], MIB)[0]
        self.assertEqual({'by-pymemcache': stored, 'flag1': raw,
                          'flag2': raw, 'flag4': raw, 'flag16': raw}, values)
        self.assertEqual([], SPRUNG)
        # The trap works: unpickling the value would have sprung it.
        self.assertEqual('sprung', pickle.loads(values['flag1']))

    def test_get_list_gives_values_in_the_order_of_keys(self):
        """Ensures get_list answers key by key, known values as themselves.
        """
        items = {'k1': b'one', 'k2': b'two', 'k3': b'three'}
        self.store.set_many(items, 60)
        known = [None, bytes(bytearray(b'two')), b'old', None]
        values = self.store.get_list(['k1', 'k2', 'k3', 'absent'], MIB,
                                     known=known)
        self.assertEqual([b'one', b'two', b'three', None], values)
        self.assertIs(known[1], values[1])
        self.assertIsInstance(
            self.store.get_list(['k1'], MIB, max_value=2)[0], store.TooLarge)

    def test_keys_in_batches(self):
        """Ensures more keys than one command takes still come back."""
        keys = self.keys(store.BATCH * 2 + 5)
        self.store.set_many({k: k.encode() for k in keys}, 60)
        values = self.store.get_multi(keys, 10 * MIB)[0]
        self.assertEqual({k: k.encode() for k in keys}, values)

    def test_idle_connections_are_reused(self):
        """Ensures calls that follow each other reuse one connection."""
        for _ in range(5):
            self.store.get_multi(['k1'], MIB)
        self.store.set_many({'k1': b'v'}, 60)
        self.assertEqual(1, len(self.connects))

    def test_unix_socket_server(self):
        """Ensures unix:/path in [cache] memcache_servers is a unix socket."""
        server = self.useFixture(UnixMemcached())
        mstore = store.MemcacheStore(['unix:' + server.path], SAFE_TIMEOUT)
        mstore.set_many({'k1': b'over a unix socket'}, 60)
        self.assertEqual({'k1': b'over a unix socket'},
                         mstore.get_multi(['k1'], MIB)[0])
        self.assertEqual([server.path], self.connects)

    def test_unix_socket_server_with_tls_enabled(self):
        """Ensures TLS is for TCP servers: a unix socket is spoken plainly.

        As pymemcache does: a unix socket has no host name to check, and
        memcached serves TLS over TCP.
        """
        server = self.useFixture(UnixMemcached())
        mstore = store.MemcacheStore(['unix:' + server.path], SAFE_TIMEOUT,
                                     ssl.create_default_context())
        mstore.set_many({'k1': b'over a unix socket'}, 60)
        self.assertEqual({'k1': b'over a unix socket'},
                         mstore.get_multi(['k1'], MIB)[0])


class _Wire:
    """A socket whose replies come from a script, ``chunk`` bytes a read.

    :ivar read: the bytes handed out so far.
    """

    def __init__(self, reply, chunk=store.RECV_SIZE):
        self.reply, self.chunk, self.read = reply, chunk, 0

    def settimeout(self, timeout):
        pass

    def sendall(self, data):
        pass

    def recv(self, size):
        data = self.reply[self.read:self.read + min(size, self.chunk)]
        self.read += len(data)
        return data

    def close(self):
        pass


def _value(key, value):
    return b'VALUE %s 0 %d\r\n%s\r\n' % (key.encode(), len(value), value)


def parse(reply, keys, max_value=MIB, budget=float('inf'),
          chunk=store.RECV_SIZE):
    """``(found, error, bytes read)`` of one reply to a get of ``keys``."""
    connection = store._Connection(store._Server('127.0.0.1:1', None))
    wire = _Wire(reply, chunk)
    connection._sock = store._BoundedSocket(wire, connection.limits)
    connection.limits.budget = budget
    out = [None] * len(keys)
    error = None
    try:
        connection.get_many(keys, max_value, out)
    except OSError as exc:
        error = exc
    found = {k: v for k, v in zip(keys, out) if v is not None}
    return found, error, wire.read


class ParserTest(testcase.TestCase):
    """The reply parser against scripted replies (no network)."""

    def assert_found(self, expected, found):
        """``found`` is ``expected``, where a TooLarge is given as its size.
        """
        self.assertEqual(expected, {
            k: v.size if isinstance(v, store.TooLarge) else v
            for k, v in found.items()})

    def test_values_over_max_value_are_refused_unread(self):
        """Ensures a value over max_value is refused from its header.

        Its bytes are skipped unread when the budget affords them (the keys
        after it are read); otherwise the parser stops before them and the
        budget is not exceeded. Either way only its size is kept.
        """
        big = b'x' * 5000
        reply = (_value('k1', b'small') + _value('k2', big) +
                 _value('k3', b'after') + b'END\r\n')
        header = len(_value('k1', b'small')) + len(b'VALUE k2 0 5000\r\n')
        cases = [
            # (max_value, budget, chunk, found, stopped)
            (4999, float('inf'), 7, {'k1': b'small', 'k2': 5000,
                                     'k3': b'after'}, False),
            (4999, len(reply), store.RECV_SIZE, {
                'k1': b'small', 'k2': 5000, 'k3': b'after'}, False),
            (4999, header + 100, 7, {'k1': b'small', 'k2': 5000}, True),
            (4999, header + 100, store.RECV_SIZE, {'k1': b'small',
                                                   'k2': 5000}, True),
            (5000, len(reply), 7, {'k1': b'small', 'k2': big,
                                   'k3': b'after'}, False),
        ]
        for max_value, budget, chunk, expected, stopped in cases:
            found, error, read = parse(reply, ['k1', 'k2', 'k3'],
                                       max_value, budget, chunk)
            self.assert_found(expected, found)
            self.assertLessEqual(read, budget)
            if stopped:
                self.assertIsInstance(error, store.BudgetExceeded)
                self.assertLess(read, header + len(big))
            else:
                self.assertIsNone(error)

    def test_keys_not_asked_for_are_skipped(self):
        """Ensures a value for a key not asked for is skipped, not kept."""
        cases = [
            _value('other', b'planted') + _value('k1', b'v1') + b'END\r\n',
            _value('k1', b'v1') + _value('other', b'planted') + b'END\r\n',
            _value('k\xff', b'planted') + _value('k1', b'v1') + b'END\r\n',
            _value('other', b'x' * 3000) + _value('k1', b'v1') +
            b'END\r\n',
        ]
        for reply in cases:
            for chunk in (1, 5, store.RECV_SIZE):
                found, error, _ = parse(reply, ['k1'], chunk=chunk)
                self.assertIsNone(error)
                self.assertEqual({'k1': b'v1'}, found)

    def test_values_are_placed_by_their_key(self):
        """Ensures each value lands at its key's place, whatever the order.

        memcached answers in the order asked, leaving out what it does not
        hold; a reply in another order is still read key by key.
        """
        keys = ['k1', 'k2', 'k3', 'k4']
        cases = [
            ['k1', 'k2', 'k3', 'k4'],
            ['k2', 'k4'],
            ['k4', 'k1', 'k3'],
            ['k3', 'k3', 'k1'],
            [],
        ]
        for answered in cases:
            reply = b''.join(_value(k, k.encode() * 3) for k in answered)
            for chunk in (1, 7, store.RECV_SIZE):
                found, error, _ = parse(reply + b'END\r\n', keys,
                                        chunk=chunk)
                self.assertIsNone(error)
                self.assertEqual({k: k.encode() * 3 for k in answered},
                                 found, (answered, chunk))

    def test_known_values_come_back_as_themselves(self):
        """Ensures a value that reads as its known one is that object."""
        connection = store._Connection(store._Server('127.0.0.1:1', None))
        keys = ['k1', 'k2', 'k3', 'k4', 'k5']
        reply = b''.join(_value(k, b'same ' + k.encode()) for k in keys)
        known = [
            b'same k1',       # the same bytes: kept
            b'same k2 ',      # longer
            b'same k3'[:-1],  # shorter
            b'other k',       # as long, other bytes
            (7, b'digest'),   # not bytes: ignored
        ]
        known = [bytes(bytearray(k)) if type(k) is bytes else k
                 for k in known]
        for chunk in (1, 4, store.RECV_SIZE):
            wire = _Wire(reply + b'END\r\n', chunk)
            connection._sock = store._BoundedSocket(wire, connection.limits)
            out = [None] * len(keys)
            connection.get_many(keys, MIB, out, known)
            self.assertIs(known[0], out[0])
            self.assertEqual([b'same ' + k.encode() for k in keys], out)
            for index in range(1, 4):
                self.assertIsNot(known[index], out[index])

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(
        st.lists(st.tuples(
            st.binary(max_size=40),
            st.sampled_from(['same', 'other', 'unknown', 'absent']),
            st.sampled_from([0, 0, 0, 7])), min_size=1, max_size=8),
        st.integers(min_value=0, max_value=50),
        st.sampled_from([1, 5, 17, 64, store.RECV_SIZE]))
    # Known, and too large to read, after a known one.
    @hypothesis.example([(b'a', 'same', 0), (b'b' * 10, 'same', 0)], 5,
                        store.RECV_SIZE)
    def test_known_values_read_as_unknown_ones_do(self, items, max_value,
                                                  chunk):
        """Ensures the caller's known values change no value read.

        Whatever of them reads the same, changed, is unknown or not stored,
        in any order, with any flags and read sizes: the values are those
        read without them, and a value is its known object exactly when it
        reads the same.
        """
        keys = ['k%d' % i for i in range(len(items))]
        reply = b''.join(b'VALUE %s %d %d\r\n%s\r\n' % (
            k.encode(), flags, len(value), value)
            for k, (value, mode, flags) in zip(keys, items)
            if mode != 'absent') + b'END\r\n'
        known = [bytes(bytearray(value)) if mode in ('same', 'absent')
                 else value + b'x' if mode == 'other' else None
                 for value, mode, flags in items]
        found = []
        for given in (None, known):
            connection = store._Connection(store._Server('127.0.0.1:1',
                                                         None))
            wire = _Wire(reply, chunk)
            connection._sock = store._BoundedSocket(wire, connection.limits)
            out = [None] * len(keys)
            connection.get_many(keys, max_value, out, given)
            found.append(out)
        plain, with_known = found
        self.assertEqual([v.size if isinstance(v, store.TooLarge) else v
                          for v in plain],
                         [v.size if isinstance(v, store.TooLarge) else v
                          for v in with_known])
        for (value, mode, flags), old, out in zip(items, known, with_known):
            self.assertEqual(mode == 'same' and len(value) <= max_value,
                             out is old)

    def test_replies_that_are_not_memcached_s_fail(self):
        """Ensures an unparseable reply raises ProtocolError, one line."""
        cases = [
            b'VALUE k1 0 notanumber\r\nxx\r\nEND\r\n',
            b'VALUE k1 0 -1\r\nEND\r\n',
            b'VALUE k1 0 1_0\r\n0123456789\r\nEND\r\n',
            b'VALUE k1 0\r\nEND\r\n',
            b'SERVER_ERROR out of memory\r\n',
            b'VALUE k1 0 2\r\nabcEND\r\n',
            b'VALUE k1 0 2' + b' ' * 1000,
            b'\r\n',
        ]
        for reply in cases:
            found, error, read = parse(reply, ['k1'], chunk=3)
            self.assertIsInstance(error, store.ProtocolError, reply)
            self.assertEqual(1, len(str(error).splitlines()))
            self.assertLessEqual(read, 1024)

    def test_budget_is_never_exceeded(self):
        """Ensures the bytes read never pass the budget, not even by a read.
        """
        reply = b''.join(_value('k%d' % i, b'v' * 1000) for i in range(100))
        for budget in (0, 1, 999, 5000, 50000):
            found, error, read = parse(reply + b'END\r\n',
                                       ['k%d' % i for i in range(100)],
                                       budget=budget)
            self.assertLessEqual(read, budget)
            self.assertIsInstance(error, store.BudgetExceeded)
            self.assertEqual(
                {'k%d' % i: b'v' * 1000 for i in range(len(found))}, found)

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(
        st.lists(st.one_of(
            st.tuples(st.sampled_from(['k1', 'k2', 'k3', 'other', 'k\xe9']),
                      st.binary(max_size=300)).map(lambda kv: _value(*kv)),
            st.just(b'END\r\n'),
            st.binary(max_size=40),
            st.builds(lambda key, size, tail: b'VALUE %s 0 %s\r\n%s' % (
                key, size, tail),
                st.sampled_from([b'k1', b'k2', b'\xff']),
                st.sampled_from([b'0', b'10', b'200', b'99999999', b'-3',
                                 b'1e3', b'\xd9\xa3', b'']),
                st.binary(max_size=20))),
            max_size=12),
        st.integers(min_value=0, max_value=400),
        st.integers(min_value=0, max_value=3000),
        st.integers(min_value=1, max_value=600))
    def test_bad_replies_never_escape_nor_overread(self, parts, max_value,
                                                   budget, chunk):
        """Ensures any reply yields only asked keys or an OSError, in budget.
        """
        found, error, read = parse(b''.join(parts), ['k1', 'k2', 'k3'],
                                   max_value, budget, chunk)
        self.assertLessEqual(read, budget)
        self.assertLessEqual(set(found), {'k1', 'k2', 'k3'})
        for value in found.values():
            if isinstance(value, store.TooLarge):
                self.assertGreater(value.size, max_value)
            else:
                self.assertIs(bytes, type(value))
                self.assertLessEqual(len(value), max_value)


class DeadlineTest(StoreTestCase):
    """One deadline per call; a failed server is left alone."""

    def setUp(self):
        super().setUp()
        self.healthy = self.useFixture(memcached_fixture.Memcached())

    def check_bad_server(self, bad_url, bad_first):
        """Reads keys from the healthy server and ``bad_url`` at once.

        :returns: the keys on the bad server.
        """
        mstore = store.MemcacheStore([self.healthy.url, bad_url], TIMEOUT)
        bad, good = self.split(mstore, self.keys(40), bad_url)
        writer = store.MemcacheStore([self.healthy.url], SAFE_TIMEOUT)
        writer.set_many({k: k.encode() for k in good}, 60)
        started = time.monotonic()
        values, unreachable, over_budget = mstore.get_multi(
            bad + good if bad_first else good + bad, MIB)
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 5 * TIMEOUT)
        self.assertEqual({k: k.encode() for k in good}, values)
        self.assertEqual(sorted(bad), sorted(unreachable))
        self.assertEqual([], over_budget)
        self.mstore, self.good = mstore, good
        return bad

    def check_left_alone(self, bad, server=None):
        """The bad server is not tried again before DEAD_SECONDS."""
        connects = len(self.connects)
        values, unreachable, _ = self.mstore.get_multi(bad + self.good, MIB)
        self.assertEqual(sorted(bad), sorted(unreachable))
        self.assertEqual({k: k.encode() for k in self.good}, values)
        if server is not None:
            self.assertEqual(1, server.connections)
        # Only the healthy server's pooled connection is used.
        self.assertEqual(connects, len(self.connects))
        self.later(store.DEAD_SECONDS + 1)
        values, unreachable, _ = self.mstore.get_multi(bad + self.good, MIB)
        self.assertEqual(sorted(bad), sorted(unreachable))
        self.assertEqual(connects + 1, len(self.connects))
        if server is not None:
            wait_for(lambda: server.connections == 2, 'second connection')

    def test_trickling_server_is_bounded_by_one_deadline(self):
        """Ensures a server sending a byte every 0.3 s is cut at the deadline.

        Each read gets its byte well within the deadline: only a deadline
        for the whole call stops it before its 12 s reply is done.
        """
        server = self.useFixture(
            fake_memcached.FakeServer(fake_memcached.trickle))
        bad = self.check_bad_server(server.url, bad_first=True)
        wait_for(lambda: server.connections == 1, 'first connection')
        self.check_left_alone(bad, server)

    def test_silent_server_is_bounded(self):
        """Ensures a server that accepts and never answers is bounded."""
        server = self.useFixture(
            fake_memcached.FakeServer(fake_memcached.hang))
        bad = self.check_bad_server(server.url, bad_first=False)
        wait_for(lambda: server.connections == 1, 'first connection')
        self.check_left_alone(bad, server)

    def test_silent_server_read_first_spares_the_others(self):
        """Ensures a hung server read first costs only its own keys.

        The healthy server is not left alone because the hung one used the
        call's time: its keys come back in the same call and the next.
        """
        server = self.useFixture(
            fake_memcached.FakeServer(fake_memcached.hang))
        bad = self.check_bad_server(server.url, bad_first=True)
        self.check_left_alone(bad)

    def test_refused_port_is_bounded(self):
        """Ensures a refused connection fails fast and is left alone."""
        url = '%s:%d' % (memcached_fixture.HOST, memcached_fixture.free_port())
        bad = self.check_bad_server(url, bad_first=True)
        self.check_left_alone(bad)

    def test_spent_deadline_fails_without_waiting(self):
        """Ensures a call whose deadline is spent does not wait any longer.

        The clock jumps past the deadline at the first socket operation:
        no operation may then wait on the silent server.
        """
        server = self.useFixture(
            fake_memcached.FakeServer(fake_memcached.hang))
        mstore = store.MemcacheStore([server.url], 30)
        real = time.monotonic
        calls = []

        def clock():
            calls.append(True)
            return real() + (7200 if len(calls) > 1 else 0)
        self.useFixture(fixtures.MockPatch('time.monotonic', new=clock))
        started = real()
        self.assertRaises(store.StoreError, mstore.get_multi, ['k1'], MIB)
        self.assertLess(real() - started, 5 * TIMEOUT)

    def test_all_servers_down_raises(self):
        """Ensures a call no server can serve raises StoreError."""
        urls = ['%s:%d' % (memcached_fixture.HOST,
                           memcached_fixture.free_port()) for _ in range(2)]
        mstore = store.MemcacheStore(urls, TIMEOUT)
        keys = self.keys(20)
        self.split(mstore, keys, urls[0])
        exc = self.assertRaises(store.StoreError, mstore.get_multi, keys,
                                MIB)
        self.assertIn(urls[0], str(exc))
        self.assertIn(urls[1], str(exc))
        self.assertEqual(1, len(str(exc).splitlines()))
        # Left alone: the next call raises without trying them.
        connects = len(self.connects)
        exc = self.assertRaises(store.StoreError, mstore.get_multi, keys,
                                MIB)
        self.assertIn('failed less than', str(exc))
        self.assertEqual(connects, len(self.connects))

    def test_set_many_to_a_refused_port_raises(self):
        """Ensures set_many raises StoreError when its server is down."""
        mstore = store.MemcacheStore(
            ['%s:%d' % (memcached_fixture.HOST,
                        memcached_fixture.free_port())], TIMEOUT)
        exc = self.assertRaises(store.StoreError, mstore.set_many,
                                {'k1': b'v'}, 60)
        self.assertIn('ConnectionRefusedError', str(exc))

    def test_set_many_to_a_silent_server_is_bounded(self):
        """Ensures set_many to a server that never answers is bounded."""
        server = self.useFixture(
            fake_memcached.FakeServer(fake_memcached.hang))
        mstore = store.MemcacheStore([server.url], TIMEOUT)
        started = time.monotonic()
        self.assertRaises(store.StoreError, mstore.set_many,
                          {'k1': b'v'}, 60)
        self.assertLess(time.monotonic() - started, 5 * TIMEOUT)

    def test_set_many_to_a_trickling_server_is_bounded(self):
        """Ensures set_many to a trickling server is bounded likewise."""
        server = self.useFixture(
            fake_memcached.FakeServer(fake_memcached.trickle))
        mstore = store.MemcacheStore([server.url], TIMEOUT)
        started = time.monotonic()
        self.assertRaises(store.StoreError, mstore.set_many,
                          {'k1': b'v'}, 60)
        self.assertLess(time.monotonic() - started, 5 * TIMEOUT)


class BudgetTest(StoreTestCase):
    """A fetch reads no more bytes than its budget."""

    def setUp(self):
        super().setUp()
        self.memcached = self.useFixture(memcached_fixture.Memcached())
        self.received = []
        real_recv = store._BoundedSocket.recv

        def counting(sock, size):
            data = real_recv(sock, size)
            self.received.append(len(data))
            return data
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.live.store._BoundedSocket.recv', counting))

    def test_planted_values_are_read_up_to_the_budget(self):
        """Ensures 1 MiB values cost at most the budget, the rest skipped."""
        mstore = store.MemcacheStore([self.memcached.url], SAFE_TIMEOUT)
        keys = self.keys(8)
        planted = {k: k.encode().ljust(MIB, b'x') for k in keys}
        mstore.set_many(planted, 60)
        max_bytes = 2 * MIB + MIB // 2
        del self.received[:]
        values, unreachable, over_budget = mstore.get_multi(keys, max_bytes)
        self.assertLessEqual(sum(self.received), max_bytes)
        self.assertEqual([], unreachable)
        self.assertTrue(over_budget)
        self.assertEqual(set(keys), set(values) | set(over_budget))
        self.assertEqual({k: planted[k] for k in values}, values)
        # Running out of budget is not a server failure.
        values = mstore.get_multi(keys, 10 * MIB)[0]
        self.assertEqual(planted, values)

    def test_budget_bounds_every_server(self):
        """Ensures values planted on two servers cost at most the budget."""
        other = self.useFixture(memcached_fixture.Memcached())
        mstore = store.MemcacheStore([self.memcached.url, other.url],
                                     SAFE_TIMEOUT)
        keys = self.keys(16)
        self.split(mstore, keys, other.url)
        mstore.set_many({k: k.encode().ljust(MIB, b'x') for k in keys}, 60)
        max_bytes = 4 * MIB
        del self.received[:]
        values, unreachable, over_budget = mstore.get_multi(keys, max_bytes)
        self.assertLessEqual(sum(self.received), max_bytes)
        self.assertEqual([], unreachable)
        self.assertEqual(set(keys), set(values) | set(over_budget))

    def test_values_over_max_value_are_refused(self):
        """Ensures get_multi refuses values over max_value, unread."""
        mstore = store.MemcacheStore([self.memcached.url], SAFE_TIMEOUT)
        keys = self.keys(3)
        mstore.set_many({keys[0]: b'x' * MIB, keys[1]: b'small',
                         keys[2]: b'y' * 1000}, 60)
        del self.received[:]
        values, unreachable, over_budget = mstore.get_multi(
            keys, 64 * 1024, max_value=1000)
        self.assertLessEqual(sum(self.received), 64 * 1024)
        self.assertEqual(([], [keys[1], keys[2]]), (unreachable,
                                                    over_budget))
        self.assertEqual([keys[0]], list(values))
        self.assertEqual(MIB, values[keys[0]].size)
        # With a budget that affords skipping it, the others are read.
        values = mstore.get_multi(keys, 2 * MIB, max_value=1000)[0]
        self.assertEqual(b'small', values[keys[1]])
        self.assertEqual(b'y' * 1000, values[keys[2]])
        self.assertIsInstance(values[keys[0]], store.TooLarge)

    def test_small_values_fit_the_budget(self):
        """Ensures values within the budget all come back."""
        mstore = store.MemcacheStore([self.memcached.url], SAFE_TIMEOUT)
        keys = self.keys(100)
        mstore.set_many({k: b'x' * 300 for k in keys}, 60)
        values, unreachable, over_budget = mstore.get_multi(
            keys, len(keys) * 1024)
        self.assertEqual(100, len(values))
        self.assertEqual(([], []), (unreachable, over_budget))


class ImpostorTest(StoreTestCase):
    """A server that answers keys it was not asked for."""

    def test_values_for_other_servers_keys_are_ignored(self):
        """Ensures a server cannot answer for another server's keys.

        The impostor answers, before its own keys, every key of the healthy
        server with a value of its own: only the healthy server's values
        are kept, and the impostor's own keys still come back.
        """
        healthy = self.useFixture(memcached_fixture.Memcached())
        keys = self.keys(40)
        foreign = []
        server = self.useFixture(fake_memcached.FakeServer(
            fake_memcached.impostor(foreign)))
        mstore = store.MemcacheStore([healthy.url, server.url], SAFE_TIMEOUT)
        theirs, mine = self.split(mstore, keys, server.url)
        foreign.extend(mine)
        writer = store.MemcacheStore([healthy.url], SAFE_TIMEOUT)
        writer.set_many({k: b'true' for k in mine}, 60)
        values, unreachable, over_budget = mstore.get_multi(keys, MIB)
        self.assertEqual(([], []), (unreachable, over_budget))
        expected = {k: b'true' for k in mine}
        expected.update({k: k.encode() for k in theirs})
        self.assertEqual(expected, values)


class ResolveTest(StoreTestCase):
    """Server names: looked up once, off the request's thread, bounded."""

    def setUp(self):
        super().setUp()
        self.lookups = []
        self.release = threading.Event()
        self.addCleanup(self.release.set)
        self.hang = False
        real = socket.getaddrinfo

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            if not host.endswith('.test') or flags & socket.AI_NUMERICHOST:
                return real(host, port, family, type, proto, flags)
            self.lookups.append((host, threading.current_thread()))
            if self.hang:
                self.release.wait()
            address = '::1' if host.startswith('v6') else '127.0.0.1'
            return real(address, port, family, type, proto, flags)
        self.useFixture(fixtures.MonkeyPatch('socket.getaddrinfo',
                                             getaddrinfo))

    def test_names_are_resolved_once_off_the_request_thread(self):
        """Ensures a name is looked up once, in a thread of its own."""
        memcached = self.useFixture(memcached_fixture.Memcached())
        mstore = store.MemcacheStore(['memcached.test:%d' % memcached.port],
                                     SAFE_TIMEOUT)
        mstore.set_many({'k1': b'v'}, 60)
        for _ in range(3):
            self.assertEqual({'k1': b'v'}, mstore.get_multi(['k1'], MIB)[0])
        self.assertEqual(['memcached.test'], [h for h, _ in self.lookups])
        self.assertIsNot(threading.current_thread(), self.lookups[0][1])

    def test_hung_resolver_is_bounded_by_the_deadline(self):
        """Ensures a lookup that hangs costs a call at most its deadline.

        While it hangs no other lookup of that name is started.
        """
        self.hang = True
        mstore = store.MemcacheStore(['memcached.test:11211'], TIMEOUT)
        started = time.monotonic()
        exc = self.assertRaises(store.StoreError, mstore.get_multi, ['k1'],
                                MIB)
        self.assertLess(time.monotonic() - started, 5 * TIMEOUT)
        self.assertIn('not resolved by the deadline', str(exc))
        self.later(store.DEAD_SECONDS + 1)
        self.assertRaises(store.StoreError, mstore.get_multi, ['k1'], MIB)
        self.assertEqual(1, len(self.lookups))
        self.assertEqual([], self.connects)

    def test_address_family_comes_from_getaddrinfo(self):
        """Ensures IPv6 servers are reached whatever their spelling."""
        server = self.useFixture(fake_memcached.FakeServer(
            fake_memcached.impostor([]), host='::1'))
        for name in ('[::1]:%d', 'inet6:[::1]:%d', 'v6.test:%d',
                     'inet6:v6.test:%d'):
            mstore = store.MemcacheStore([name % server.port], SAFE_TIMEOUT)
            self.assertEqual({'k1': b'k1'}, mstore.get_multi(['k1'], MIB)[0],
                             name)
        self.assertEqual([socket.AF_INET6] * 4,
                         [len(address) == 4 and socket.AF_INET6
                          for address in self.connects])


class KeyTest(testcase.TestCase):

    def test_ordinary_host_names_are_kept(self):
        """Ensures DNS-ish host names are used as they are."""
        for host in ('compute1', 'compute-1.example.org', 'r1_c2:3',
                     'x' * (250 - len(store.RECORD_PREFIX))):
            self.assertEqual(store.RECORD_PREFIX + host,
                             store.key(store.RECORD_PREFIX, host))

    def test_names_memcached_cannot_take_are_hashed(self):
        """Ensures spaces, controls, non-ASCII and long names are hashed."""
        hosts = ('compute 1', 'compute1\n', 'compute\x00', 'compute\x7f',
                 'c\u00f6mpute', 'x' * (251 - len(store.RECORD_PREFIX)),
                 'y' * 1000)
        keys = [store.key(store.RECORD_PREFIX, host) for host in hosts]
        self.assertEqual(len(hosts), len(set(keys)))
        for host, key in zip(hosts, keys):
            self.assertTrue(key.startswith(store.RECORD_PREFIX + 'sha1:'))
            self.assertEqual(key, store.key(store.RECORD_PREFIX, host))
            # pymemcache, which refuses keys memcached cannot take, takes it.
            pymemcache_base.check_key_helper(key, allow_unicode_keys=False)
        self.assertNotEqual(store.key(store.RECORD_PREFIX, 'compute 1'),
                            store.key(store.FULL_PREFIX, 'compute 1'))


class FromConfTest(testcase.TestCase):
    """MemcacheStore.from_conf and the server list."""

    def setUp(self):
        super().setUp()
        self.config = self.useFixture(config_fixture.Config(base.CONF))
        cache_core.configure(base.CONF)

    def flags(self, **kwargs):
        self.config.config(group='cache', **kwargs)

    def test_non_memcached_backends_are_refused(self):
        """Ensures redis, null and other backends are refused in one line."""
        for backend in ('dogpile.cache.redis', 'dogpile.cache.redis_sentinel',
                        'dogpile.cache.null', 'dogpile.cache.memory',
                        'oslo_cache.dict'):
            self.flags(backend=backend)
            exc = self.assertRaises(store.StoreError, store.MemcacheStore.
                                    from_conf, base.CONF, 0.5)
            self.assertEqual(1, len(str(exc).splitlines()))
            self.assertIn('[cache] backend = %s:' % backend, str(exc))
            self.assertIn('memcached only', str(exc))

    def test_every_memcached_backend_is_accepted(self):
        """Ensures any memcached [cache] backend name is accepted."""
        self.flags(memcache_servers=['127.0.0.1:11211'])
        for backend in ('dogpile.cache.pymemcache',
                        'oslo_cache.memcache_pool', 'dogpile.cache.memcached',
                        'dogpile.cache.pylibmc', 'dogpile.cache.bmemcached'):
            self.flags(backend=backend)
            mstore = store.MemcacheStore.from_conf(base.CONF, 0.5)
            self.assertEqual(0.5, mstore.timeout)
            self.assertEqual('127.0.0.1:11211', mstore.server_of('k1'))

    def test_server_addresses_are_parsed(self):
        """Ensures host:port, inet6:[addr]:port and unix:/path are parsed."""
        self.flags(backend='dogpile.cache.pymemcache', memcache_servers=[
            '127.0.0.1:11211', 'inet6:[::1]:11212', 'unix:/run/mc.sock',
            'cache.example.org:11213', '[fd00::1]:11214'])
        mstore = store.MemcacheStore.from_conf(base.CONF, 0.5)
        self.assertEqual(
            {'127.0.0.1:11211': ('127.0.0.1', 11211),
             'inet6:[::1]:11212': ('::1', 11212),
             'unix:/run/mc.sock': '/run/mc.sock',
             'cache.example.org:11213': ('cache.example.org', 11213),
             '[fd00::1]:11214': ('fd00::1', 11214)},
            {name: server.address
             for name, server in mstore._servers.items()})

    def test_malformed_servers_are_refused(self):
        """Ensures a server without a port, or no server, is refused."""
        for servers in (['localhost'], ['127.0.0.1:port'], [' '], []):
            self.flags(backend='dogpile.cache.pymemcache',
                       memcache_servers=servers)
            exc = self.assertRaises(store.StoreError,
                                    store.MemcacheStore.from_conf,
                                    base.CONF, 0.5)
            self.assertEqual(1, len(str(exc).splitlines()))

    def test_tls_enabled_speaks_tls(self):
        """Ensures [cache] tls_enabled wraps the sockets in TLS.

        A memcached without TLS cannot complete the handshake.
        """
        memcached = self.useFixture(memcached_fixture.Memcached())
        self.flags(backend='dogpile.cache.pymemcache',
                   memcache_servers=[memcached.url])
        plain = store.MemcacheStore.from_conf(base.CONF, SAFE_TIMEOUT)
        plain.set_many({'k1': b'v'}, 60)
        self.flags(tls_enabled=True)
        mstore = store.MemcacheStore.from_conf(base.CONF, SAFE_TIMEOUT)
        exc = self.assertRaises(store.StoreError, mstore.get_multi, ['k1'],
                                MIB)
        self.assertIn('SSL', str(exc))
