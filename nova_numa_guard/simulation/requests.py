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

"""A simulated flavor as nova's API turns it into a ``RequestSpec``.

The guest's NUMA topology from ``numa_get_constraints``, its PCI requests
from the flavor's ``pci_passthrough:alias`` (``[pci] alias``, which the
simulation sets from the fleet's ``pci_aliases``) and from its SR-IOV ports,
the physnets of its ports as ``network_metadata``, and the resources placement
is asked for, as nova computes them for a server booted from a volume (disks
are not simulated).
"""

import re
import uuid

from nova import exception
from nova import objects
from nova.pci import request as pci_request
from nova.scheduler import utils as scheduler_utils
from nova.virt import hardware

from nova_numa_guard.inputs import InputError

_PROJECT = 'nova-numa-guard-simulate'
# A flavor's trait extra specs: trait:NAME, trait1:NAME...
_TRAIT = re.compile(r'^trait[\w-]*:')


class Request:
    """What nova makes of one flavor: the spec and the placement request.

    :ivar flavor: the :data:`nova_numa_guard.inputs.flavors.Flavor`.
    :ivar resources: ``{resource class: amount}`` asked of placement.
    :ivar has_topology: whether nova gives the guest a NUMA topology.
    """

    def __init__(self, flavor, index):
        self.flavor = flavor
        self.index = index
        self._flavor = objects.Flavor(
            id=index, flavorid='simulated-%d' % index, name=flavor.name,
            vcpus=flavor.vcpus, memory_mb=flavor.ram, root_gb=0,
            ephemeral_gb=0, swap=0, rxtx_factor=1.0, is_public=True,
            disabled=False, extra_specs=dict(flavor.extra_specs))
        self._image = objects.ImageMeta.from_dict({'properties': {}})
        try:
            self._numa = hardware.numa_get_constraints(self._flavor,
                                                       self._image)
            self._policy = hardware.get_pci_numa_policy_constraint(
                self._flavor, self._image)
            # Checks the aliases now: one error, not one per host.
            pci_request.get_pci_requests_from_flavor(
                self._flavor, affinity_policy=self._policy)
            self.resources = dict(
                scheduler_utils.resources_from_flavor_and_bfv(self._flavor,
                                                              True))
        except (exception.NovaException, ValueError) as e:
            raise InputError('flavor %s' % flavor.name, 'nova rejects it: %s'
                             % ' '.join(str(e).split()))
        self.has_topology = self._numa is not None
        for key, value in self._flavor.extra_specs.items():
            if _TRAIT.match(key) and value == 'required':
                raise InputError('flavor %s' % flavor.name, '%s=%s: hosts '
                                 'have no traits in a fleet file: placement '
                                 'cannot be simulated for it' % (key, value))

    def spec(self):
        """A new ``RequestSpec``; nova changes it as it places guests."""
        physnets = set()
        tunneled = False
        requests = pci_request.get_pci_requests_from_flavor(
            self._flavor, affinity_policy=self._policy).requests
        for number, port in enumerate(self.flavor.ports):
            if port.physnet is None:
                tunneled = True
                continue
            physnets.add(port.physnet)
            if port.direct:
                requests.append(_sriov_request(port.physnet, self._policy,
                                               self.index, number))
        return objects.RequestSpec(
            flavor=self._flavor, image=self._image,
            numa_topology=(self._numa.obj_clone() if self._numa is not None
                           else None),
            pci_requests=objects.InstancePCIRequests(requests=requests),
            network_metadata=objects.NetworkMetadata(physnets=physnets,
                                                     tunneled=tunneled),
            instance_uuid=_uuid('instance', self.index),
            instance_group=None, scheduler_hints={}, project_id=_PROJECT,
            user_id=_PROJECT, num_instances=1, ignore_hosts=None,
            force_hosts=None, force_nodes=None, is_bfv=True,
            requested_destination=None, requested_resources=[])


def _sriov_request(physnet, policy, index, number):
    """The PCI request nova's network API makes for a direct port."""
    request = objects.InstancePCIRequest(
        count=1,
        spec=[{pci_request.PCI_NET_TAG: physnet,
               pci_request.PCI_REMOTE_MANAGED_TAG: 'False'}],
        request_id=_uuid('pci-request', index, number),
        requester_id=_uuid('port', index, number))
    if policy:
        request.numa_policy = policy
    return request


def _uuid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, 'nova-numa-guard/simulate/' +
                          '/'.join(map(str, parts))))
