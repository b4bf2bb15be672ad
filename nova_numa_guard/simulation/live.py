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

"""The fleet's live memory, as a memory source kept in memory.

The guarded run hands ``NUMACellFitFilter`` this source instead of the one
``[numa_guard] memory_source`` names. It serves what a fleet file gives of
each host's live memory (``numastat``, the cells' ``free_mb`` or an agent
payload) as the agents' memory records, signed with a key of the run, and
goes through the same trust rules and per-host memo as the ``cache`` and
``file`` sources (:class:`nova_numa_guard.live.source.PayloadSource`); only
the bytes come from memory instead of memcached or files. Payloads are
stamped when the simulation starts: a captured payload counts as fresh.
Hosts without live figures are judged on nova's accounted data without a
warning: the fleet file says nothing live of them.
"""

import time

from nova_numa_guard.live import payload
from nova_numa_guard.live import source


class FleetSource(source.PayloadSource):
    """Live per-node memory of the fleet's hosts, from memory.

    :param fleet_hosts: :class:`nova_numa_guard.inputs.fleet.FleetHost`.
    :param conf: the ``ConfigOpts`` with ``[numa_guard]``; nova's ``CONF``
        when None.
    """

    def __init__(self, fleet_hosts, conf=None):
        super().__init__(conf)
        now = time.time()
        self._stored = {fh.host.name: record(fh, now, self._key)
                        for fh in fleet_hosts if fh.host.live is not None}

    def live_data(self, host_names):
        stored = self._stored
        return super().live_data([h for h in host_names if h in stored])

    def fetch_raw(self, entries):
        stored = self._stored
        return [stored.get(entry.host) for entry in entries]


def record(fleet_host, timestamp, signing_key=None):
    """The memory record an agent would store for a fleet host, as bytes.

    :param signing_key: ``[numa_guard] payload_signing_key``; the record is
        signed with the host's key derived from it.
    """
    host = fleet_host.host
    live = host.live
    with_guests = (fleet_host.guests_mb is not None and
                   live.untouched_mb is not None)
    nodes = []
    for cell in host.cells:
        free = live.free_mb[cell.id]
        available = max(free, live.available_mb[cell.id])
        node = {'id': cell.id, 'mem_free_mb': free,
                'mem_available_mb': available,
                'mem_total_mb': max(cell.memory_mb, available)}
        if with_guests:
            node['guest_untouched_mb'] = live.untouched_mb[cell.id]
        nodes.append(node)
    built = payload.build(host.name, timestamp, nodes,
                          guests_mb=fleet_host.guests_mb if with_guests
                          else None)
    key = payload.host_key(signing_key, host.name) if signing_key else None
    return payload.encode_record(built, key)
