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

"""Placement, emulated: would placement offer a host for a flavor?

nova-scheduler only filters the hosts placement returns as allocation
candidates, and placement is what stops a host from taking more guests
than its memory and vCPUs hold: no stock filter checks either since nova
dropped ``RamFilter`` and ``CoreFilter``. A compute node's inventories are
those the libvirt driver reports: ``MEMORY_MB`` (all of the host's memory,
``[DEFAULT] reserved_host_memory_mb`` reserved), ``VCPU`` (its shared CPUs)
and ``PCPU`` (its dedicated CPUs), each with the host's allocation ratio
and ``max_unit`` equal to the total, as placement checks them. Disks are not
simulated. Pure: nothing here imports nova.
"""

import collections

from nova_numa_guard.inputs import fleet as fleet_inputs

Inventory = collections.namedtuple('Inventory', 'total reserved ratio')


class Provider:
    """A compute node's resource provider: its inventories and usage.

    :ivar inventories: ``{resource class: Inventory}``.
    :ivar used: ``{resource class: amount}`` allocated to guests.
    """

    __slots__ = ('inventories', 'used')

    def __init__(self, inventories, used):
        self.inventories = inventories
        self.used = used

    def shortfall(self, resources):
        """Why placement would not offer the host, or None when it would.

        :param resources: ``{resource class: amount}`` of one guest.
        """
        for rc, amount in resources.items():
            inventory = self.inventories.get(rc)
            if inventory is None:
                return 'no %s inventory' % rc
            if amount > inventory.total:
                return '%s: needs %d, the host has %d' % (rc, amount,
                                                         inventory.total)
            capacity = (inventory.total - inventory.reserved) * inventory.ratio
            used = self.used.get(rc, 0)
            if used + amount > capacity:
                return '%s: needs %d, %d free of %d' % (
                    rc, amount, max(0, int(capacity - used)), int(capacity))
        return None

    def room(self, resources):
        """How many more guests of ``resources`` placement would take."""
        counts = []
        for rc, amount in resources.items():
            inventory = self.inventories.get(rc)
            if inventory is None or amount > inventory.total:
                return 0
            if amount <= 0:
                continue
            capacity = (inventory.total - inventory.reserved) * inventory.ratio
            used = self.used.get(rc, 0)
            count = max(0, int((capacity - used) // amount))
            # Placement's own test decides at the edge, whatever the float
            # division made of it.
            while count and used + count * amount > capacity:
                count -= 1
            while used + (count + 1) * amount <= capacity:
                count += 1
            counts.append(count)
        return min(counts) if counts else 0

    def claim(self, resources):
        """Allocate one guest's resources."""
        used = self.used
        for rc, amount in resources.items():
            used[rc] = used.get(rc, 0) + amount

    def copy(self):
        return Provider(self.inventories, dict(self.used))


def provider(fleet_host, reserved_host_mb=fleet_inputs.RESERVED_HOST_MB):
    """The resource provider of a :class:`fleet.FleetHost`, as used now.

    :param reserved_host_mb: ``[DEFAULT] reserved_host_memory_mb``: part of
        what nova counts as used (``used_mb``), reserved in placement.
    """
    host = fleet_host.host
    memory = sum(c.memory_mb for c in host.cells)
    vcpus = sum(len(c.cpus) for c in host.cells)
    pcpus = sum(len(c.pcpus) for c in host.cells)
    inventories = {
        'MEMORY_MB': Inventory(memory, reserved_host_mb,
                               host.ram_allocation_ratio),
        'VCPU': Inventory(vcpus, 0, fleet_host.cpu_allocation_ratio),
    }
    if pcpus:
        inventories['PCPU'] = Inventory(pcpus, 0, 1.0)
    used = {'MEMORY_MB': max(0, host.used_mb - reserved_host_mb),
            'VCPU': fleet_host.vcpus_used}
    return Provider(inventories, used)
