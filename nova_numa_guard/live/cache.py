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

"""The ``cache`` memory source: the agents' memory records in memcached.

:class:`CacheSource` fetches the memory record
(:func:`nova_numa_guard.live.payload.encode_record`) of every candidate host
of a request with one batched ``get`` per memcached server
(:class:`nova_numa_guard.live.store.MemcacheStore`), and keeps what it
fetched for ``[numa_guard] live_data_memo_seconds``, so the instances of a
multi-create and requests that follow each other closely cost no round trip.
The age of a payload is checked at every use.

A request waits at most ``[numa_guard] cache_timeout`` for memcached and
reads at most its byte budget (:meth:`PayloadSource.byte_budget`: 4 KiB per
candidate host, at least 64 KiB, at most 32 MiB). A value larger than
``payload.MAX_RECORD_BYTES`` is refused from its header, unread: its host is
missing live data (too large). Hosts whose server is down, or whose values
could not be read within the budget, are judged on accounted data (the store
failed, not their agents).
"""

import time

from nova_numa_guard.live import payload
from nova_numa_guard.live import source
from nova_numa_guard.live import store


_GAPS = {store.UNREACHABLE: source.UNREACHABLE_HOST,
         store.OVER_BUDGET: source.OVER_BUDGET_HOST}


class CacheSource(source.PayloadSource):
    """Live per-node memory that the agents publish in memcached."""

    max_bytes = payload.MAX_RECORD_BYTES
    # A memory record is about 85 bytes for a 4-node host.
    bytes_per_host = 4 * 1024

    def __init__(self, conf=None):
        super().__init__(conf)
        opts = self._conf.numa_guard
        try:
            self.store = store.MemcacheStore.from_conf(self._conf,
                                                       opts.cache_timeout)
        except store.StoreError as exc:
            raise ValueError(str(exc))
        self._memo_seconds = opts.live_data_memo_seconds

    def fetch_raw(self, entries):
        now = time.monotonic()
        window = self._memo_seconds
        values = []
        wanted = []
        keys = []
        known = []
        for entry in entries:
            fetched = entry.fetched_at
            if fetched is not None and now - fetched < window:
                values.append(entry.value)
                continue
            key = entry.key
            if key is None:
                key = entry.key = store.key(store.RECORD_PREFIX, entry.host)
            wanted.append(len(values))
            values.append(None)
            keys.append(key)
            # The bytes verified last: the same bytes come back as this
            # object, which the source then knows by identity.
            known.append(entry.mark)
        if not keys:
            return values
        try:
            found = self.store.get_list(keys, self.byte_budget(len(keys)),
                                        self.max_bytes, known)
        except store.StoreError as exc:
            raise source.Unavailable(str(exc))
        for index, value in zip(wanted, found):
            if value is not None and type(value) is not bytes:
                value = _GAPS.get(value) or payload.Untrusted(
                    # Kept instead of the bytes, which were never read.
                    payload.TOO_LARGE, '%d bytes, more than %d' % (
                        value.size, self.max_bytes))
            entry = entries[index]
            entry.fetched_at, entry.value = now, value
            values[index] = value
        return values

    def forget(self, verified=True):
        """Drop the memo, and what was verified (tests, benchmarks)."""
        if verified:
            super().forget()
        for entry in list(self._hosts.values()):
            entry.fetched_at = entry.value = None
