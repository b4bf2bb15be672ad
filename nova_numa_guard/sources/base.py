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

"""The memory source interface."""

import abc


class MemorySource(metaclass=abc.ABCMeta):
    """Supplies live per-node free memory for the hosts of one request.

    The filter calls :meth:`live_free_mb` once per scheduling request with
    every candidate host, never once per host, so a source backed by a
    network store can fetch them all in one batch.
    """

    @abc.abstractmethod
    def live_free_mb(self, host_names):
        """Return fresh, trusted live free memory for the given hosts.

        :param host_names: nova compute ``host`` names.
        :returns: ``{host: {node_id: free_mb}}`` for the hosts that have
            usable live data; hosts left out are judged on accounted data.
            Never raises.
        """
