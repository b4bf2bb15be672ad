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

"""The ``accounted`` memory source: nova's own numbers only."""

from nova_numa_guard.live import source


class AccountedSource(source.MemorySource):
    """No live data: every host is judged on what nova accounts.

    See :func:`nova_numa_guard.fit.accounted_free_mb` for the estimate.
    """

    def live_data(self, host_names):
        return source.LiveData()
