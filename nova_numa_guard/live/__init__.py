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

"""Live per-node memory: the payload, its store and the memory sources.

What the agent and the scheduler share lives here: the payload contract
(:mod:`.payload`), the memcached store (:mod:`.store`) and the memory
sources the scheduler loads by name from the ``nova_numa_guard.memory_sources``
entry point namespace (``[numa_guard] memory_source``): ``accounted``,
``cache`` and ``file``. Nothing here imports nova.
"""

from stevedore import driver
from stevedore import extension

NAMESPACE = 'nova_numa_guard.memory_sources'


class MemorySourceError(ValueError):
    """The configured memory source cannot be used (one line: why)."""


def load(name):
    """Load and instantiate the memory source called ``name``.

    :raises MemorySourceError: when no such source is installed (naming the
        ones that are), or the source refuses its configuration.
    """
    known = sorted(extension.ExtensionManager(NAMESPACE).names())
    if name not in known:
        raise MemorySourceError(
            "[numa_guard] memory_source = %r is not installed; installed "
            "sources: %s" % (name, ', '.join(known) or 'none'))
    try:
        manager = driver.DriverManager(NAMESPACE, name, invoke_on_load=True,
                                       on_load_failure_callback=_reraise)
    except Exception as exc:
        raise MemorySourceError(
            "[numa_guard] memory_source = %r: %s" % (name, _one_line(exc)))
    return manager.driver


def _reraise(manager, entry_point, exc):
    raise exc


def _one_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
