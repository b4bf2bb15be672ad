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

"""Memory sources: where live per-node free memory comes from.

A source is loaded by name from the ``nova_numa_guard.memory_sources``
entry point namespace (``[numa_guard] memory_source``).
"""

from stevedore import driver

NAMESPACE = 'nova_numa_guard.memory_sources'


class UnknownMemorySource(ValueError):
    """The configured memory source is not installed."""


def load(name):
    """Load and instantiate the memory source called ``name``.

    :raises UnknownMemorySource: when no such source is installed, with the
        names that are.
    """
    try:
        manager = driver.DriverManager(NAMESPACE, name, invoke_on_load=True)
    except Exception as exc:
        from stevedore import extension
        known = sorted(extension.ExtensionManager(NAMESPACE).names())
        raise UnknownMemorySource(
            "[numa_guard] memory_source = %r cannot be loaded (%s); "
            "installed sources: %s" % (name, exc, ', '.join(known) or 'none'))
    return manager.driver
