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

"""The ``file`` memory source: payloads in ``<live_data_path>/<host>.json``.

Each file holds one payload as ``nova-numa-guard-agent --once --print``
prints it. The files are read afresh at every scheduling request (no memo),
so a test or a simulation can change them between requests. Only regular
files are read, and never with a blocking open: a FIFO or a device in their
place is refused, not waited on. A request reads at most its byte budget
(:meth:`PayloadSource.byte_budget`) over all its hosts' files; the hosts
whose files it leaves unread are judged on accounted data.
"""

import os
import re

from nova_numa_guard import inputs
from nova_numa_guard.live import payload
from nova_numa_guard.live import source

# Nova host names are DNS-ish names; anything else never becomes a path.
_SAFE_HOST = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.:-]*')


class FileSource(source.PayloadSource):
    """Live per-node memory from JSON files, one per compute host."""

    def __init__(self, conf=None):
        super().__init__(conf)
        self._path = self._conf.numa_guard.live_data_path

    def fetch_raw(self, entries):
        if not os.path.isdir(self._path):
            raise source.Unavailable('[numa_guard] live_data_path %s is not '
                                     'a directory' % self._path)
        values = []
        budget = self.byte_budget(len(entries))
        for entry in entries:
            host = entry.host
            if not _SAFE_HOST.fullmatch(host) or '..' in host:
                values.append(payload.Untrusted(
                    payload.BAD_SCHEMA, 'host name %r cannot be a file name'
                    % host[:40]))
                continue
            if budget <= 0:
                values.append(source.OVER_BUDGET_HOST)
                continue
            path = os.path.join(self._path, host + '.json')
            try:
                data = inputs.read_bytes(path, min(self.max_bytes, budget),
                                         by_size=True)
            except FileNotFoundError:
                values.append(None)
                continue
            except inputs.TooLarge as exc:
                # Refused from its size, unread (cut if it grew meanwhile).
                budget -= exc.read
                values.append(
                    source.OVER_BUDGET_HOST if exc.size <= self.max_bytes
                    else payload.Untrusted(
                        payload.TOO_LARGE, '%s: %d bytes, more than %d' % (
                            path, exc.size, self.max_bytes)))
                continue
            except inputs.InputError as exc:
                values.append(payload.Untrusted(source.MISSING, str(exc)))
                continue
            budget -= len(data)
            values.append(data)
        return values
