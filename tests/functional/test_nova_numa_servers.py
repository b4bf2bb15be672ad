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

"""Nova's own NUMA functional tests, run with NUMACellFitFilter enabled.

The filter must not change what nova does for guests with a NUMA topology,
nor for the guests without one that nova's tests boot. Each class below is
nova's test class with the plugin loaded and the filter added to the enabled
filters; nova's classes themselves are reached through the module, so the
test loader does not run them a second time.
"""

from nova.tests.functional.libvirt import test_numa_servers as nova_numa

from tests.functional import base


def _with_guard(nova_class):
    return type(nova_class.__name__, (base.GuardPluginMixin, nova_class), {
        '__module__': __name__,
        '__doc__': 'nova %s with NUMACellFitFilter.' % nova_class.__name__,
        'ADDITIONAL_FILTERS': (list(nova_class.ADDITIONAL_FILTERS) +
                               ['NUMACellFitFilter']),
    })


NUMAServersTest = _with_guard(nova_numa.NUMAServersTest)
NUMAServerTestWithCountingQuotaFromPlacement = _with_guard(
    nova_numa.NUMAServerTestWithCountingQuotaFromPlacement)
ReshapeForPCPUsTest = _with_guard(nova_numa.ReshapeForPCPUsTest)
NUMAServersWithNetworksTest = _with_guard(
    nova_numa.NUMAServersWithNetworksTest)
NUMAServersRebuildTests = _with_guard(nova_numa.NUMAServersRebuildTests)


class GuardIsEnabledTest(base.GuardPluginMixin,
                         nova_numa.NUMAServersTestBase):
    """Checks that the classes above really run with the filter."""

    ADDITIONAL_FILTERS = NUMAServersTest.ADDITIONAL_FILTERS

    def test_filter_is_loaded_and_enabled(self):
        """Ensures nova's scheduler built NUMACellFitFilter."""
        host_manager = self.scheduler.manager.host_manager
        names = [type(f).__name__ for f in host_manager.enabled_filters]
        self.assertIn('NUMACellFitFilter', names)
        self.assertIn('NUMATopologyFilter', names)
