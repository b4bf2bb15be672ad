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

"""Misbehaving memcached stand-ins on 127.0.0.1 for fault injection.

:class:`FakeServer` serves every connection with one behaviour:
:func:`hang` (reads the command, never answers), :func:`trickle` (a
well-formed reply, one byte every ``TRICKLE_SECONDS``), :func:`garbage`
(bytes that are not memcached's protocol), :func:`huge` (a 1 MiB value for
every key asked) or :func:`impostor` (each key asked, and keys not asked,
with their names as values).
"""

import os
import socket
import socketserver
import threading

import fixtures

from tests import memcached_fixture

# One byte every TRICKLE_SECONDS, TRICKLE_BYTES in all (about 12 s): long
# enough that a call bounded per read only would blow every bound.
TRICKLE_SECONDS = 0.3
TRICKLE_BYTES = 40
HUGE_BYTES = 1024 * 1024


def _read_command(sock, stopping):
    """Read up to the end of the first command line, or give up."""
    sock.settimeout(0.1)
    data = b''
    while b'\r\n' not in data and not stopping.is_set():
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def hang(sock, stopping):
    """Accept and read the command, never answer."""
    _read_command(sock, stopping)
    stopping.wait()


def trickle(sock, stopping):
    """Answer a well-formed reply, one byte every TRICKLE_SECONDS."""
    if _read_command(sock, stopping) is None:
        return
    reply = (b'VALUE nova_numa_guard:mem:compute1 0 1000\r\n' +
             b'x' * 1000 + b'\r\nEND\r\n')
    for byte in reply[:TRICKLE_BYTES]:
        if stopping.wait(TRICKLE_SECONDS):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def garbage(sock, stopping):
    """Answer random bytes that are not memcached's protocol."""
    if _read_command(sock, stopping) is None:
        return
    try:
        sock.sendall(b'VALUE key 0 notanumber\r\n' + os.urandom(4096))
    except OSError:
        return
    stopping.wait()


def huge(sock, stopping):
    """Answer a value of ``HUGE_BYTES`` for every key of every get."""
    data = _read_command(sock, stopping)
    if data is None:
        return
    for line in data.split(b'\r\n'):
        if not line.startswith(b'get '):
            continue
        reply = b''.join(b'VALUE %s 0 %d\r\n%s\r\n' % (
            key, HUGE_BYTES, b'x' * HUGE_BYTES) for key in line.split()[1:])
        try:
            sock.sendall(reply + b'END\r\n')
        except OSError:
            return
    stopping.wait()


def impostor(foreign):
    """Answer every key asked, after the ``foreign`` keys, name as value."""
    def behaviour(sock, stopping):
        data = _read_command(sock, stopping)
        if data is None:
            return
        reply = b''
        for line in data.split(b'\r\n'):
            if line.startswith(b'get '):
                keys = [k.encode() for k in foreign] + line.split()[1:]
                reply += b''.join(b'VALUE %s 0 %d\r\n%s\r\n' % (
                    key, len(key), key) for key in keys) + b'END\r\n'
        try:
            sock.sendall(reply)
        except OSError:
            return
        stopping.wait()
    return behaviour


class _CountingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    connections = 0

    def get_request(self):
        # Runs in the serving thread only, right at accept().
        request = super().get_request()
        self.connections += 1
        return request


class _CountingServer6(_CountingServer):
    address_family = socket.AF_INET6


class FakeServer(fixtures.Fixture):
    """A misbehaving memcached on 127.0.0.1 (or ``host``).

    :param behaviour: ``behaviour(sock, stopping)`` serves one connection;
        ``stopping`` (a ``threading.Event``) is set at cleanup.
    :ivar url: ``127.0.0.1:PORT`` (``[::1]:PORT`` on ``::1``).
    :ivar port: the port.
    """

    def __init__(self, behaviour, host=memcached_fixture.HOST):
        super().__init__()
        self.behaviour = behaviour
        self.host = host

    def _setUp(self):
        stopping = threading.Event()
        behaviour = self.behaviour

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                behaviour(self.request, stopping)

        if ':' in self.host:
            self.server = _CountingServer6((self.host, 0), Handler)
            self.url = '[%s]:%d' % self.server.server_address[:2]
        else:
            self.server = _CountingServer((self.host, 0), Handler)
            self.url = '%s:%d' % self.server.server_address[:2]
        self.port = self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.addCleanup(stopping.set)

    @property
    def connections(self):
        """Connections accepted so far."""
        return self.server.connections
