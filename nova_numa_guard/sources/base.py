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


class LiveData(dict):
    """What a live source returns: ``{host: {node_id: free_mb}}`` and more.

    A plain dict of the hosts with trusted live data (the non-NUMA figure,
    ``mem_free_mb``), plus:

    :ivar available: ``{host: {node_id: mem_available_mb}}`` for the same
        hosts (the figure for NUMA guests bound to their cells).
    :ivar missing: ``{host: reason}`` for candidate hosts without trusted
        live data; the filter applies ``[numa_guard] on_missing_live_data``
        to them.
    :ivar unavailable: None, or why the store could not be read at all; then
        every host is judged on accounted data, whatever the policy.
    """

    def __init__(self, free=(), available=None, missing=None,
                 unavailable=None):
        super().__init__(free)
        self.available = available or {}
        self.missing = missing or {}
        self.unavailable = unavailable


class MemorySource(metaclass=abc.ABCMeta):
    """Supplies live per-node free memory for the hosts of one request.

    The filter calls :meth:`live_free_mb` once per scheduling request with
    every candidate host, never once per host, so a source backed by a
    network store can fetch them all in one batch.

    Sources with live data (``live = True``) return a :class:`LiveData`;
    the ``accounted`` source returns an empty dict and no host is "missing".
    """

    live = False

    @abc.abstractmethod
    def live_free_mb(self, host_names):
        """Return fresh, trusted live free memory for the given hosts.

        :param host_names: nova compute ``host`` names.
        :returns: ``{host: {node_id: free_mb}}`` for the hosts that have
            usable live data (a :class:`LiveData` for live sources); hosts
            left out are judged on accounted data unless they are listed in
            ``LiveData.missing``. Never raises.
        """
