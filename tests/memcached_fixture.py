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

"""A real memcached on 127.0.0.1 for the tests that need one.

The binary is ``/usr/bin/memcached`` (Debian/Ubuntu package ``memcached``),
or ``$NUMA_GUARD_MEMCACHED``. A missing binary fails the test with a message
saying how to install it: these tests are never skipped.
"""

import os
import socket
import subprocess
import time

import fixtures

BINARY = os.environ.get('NUMA_GUARD_MEMCACHED', '/usr/bin/memcached')
HOST = '127.0.0.1'


class MemcachedMissing(RuntimeError):
    pass


class PortTaken(RuntimeError):
    pass


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Memcached(fixtures.Fixture):
    """Runs memcached on 127.0.0.1:``port`` until cleanup (or :meth:`stop`).

    :ivar url: ``127.0.0.1:PORT`` for ``[cache] memcache_servers``.
    """

    def __init__(self, port=None, item_size='2m'):
        super().__init__()
        self.port = port
        self.item_size = item_size
        self.process = None

    def _setUp(self):
        if not os.access(BINARY, os.X_OK):
            raise MemcachedMissing(
                '%s not found: these tests need a real memcached on '
                '127.0.0.1; install it (apt-get install memcached) or point '
                '$NUMA_GUARD_MEMCACHED at the binary' % BINARY)
        chosen = self.port is None
        for attempt in range(3):
            if chosen:
                self.port = free_port()
            self.url = '%s:%d' % (HOST, self.port)
            try:
                self.start()
                break
            except PortTaken:
                # Another test process took the port between free_port()
                # and memcached's bind: pick another one.
                if not chosen or attempt == 2:
                    raise
        self.addCleanup(self.stop)

    def start(self):
        """Start (or restart) memcached and wait until it answers."""
        command = [BINARY, '-l', HOST, '-p', str(self.port), '-U', '0',
                   '-m', '64', '-I', self.item_size]
        if os.geteuid() == 0:
            command += ['-u', 'root']
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode('utf-8', 'replace')
                self.process.stderr.close()
                self.process = None
                kind = PortTaken if 'in use' in error else RuntimeError
                raise kind('memcached on %s exited: %s' % (self.url,
                                                           error.strip()))
            try:
                with socket.create_connection((HOST, self.port), 0.2) as sock:
                    sock.sendall(b'version\r\n')
                    if sock.recv(64).startswith(b'VERSION'):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError('memcached did not listen on %s' % self.url)

    def stop(self):
        """Kill memcached (the outage tests call it mid-test).

        SIGKILL: nothing of it needs to survive, and memcached takes about
        a second to exit on SIGTERM. SIGKILL also ends a stopped process.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()
        self.process = None

    def command(self, line):
        """Send one raw text-protocol command; returns the reply bytes."""
        with socket.create_connection((HOST, self.port), 2) as sock:
            sock.sendall(line)
            reply = b''
            while not reply.endswith(b'\r\n'):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply
