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

"""The ``nova-numa-guard`` command line (cliff)."""

import importlib.util


class NovaNotInstalled(Exception):
    """A command that runs nova's own code where nova is not installed."""


def require_nova(command):
    """Refuse to run ``command`` without nova, saying what to install.

    ``flavor-specs`` checks its plans and ``simulate`` schedules with nova's
    own code, which this package does not install: it runs inside the
    operator's nova.
    """
    if importlib.util.find_spec('nova') is None:
        raise NovaNotInstalled(
            '%s runs nova\'s own code, and nova is not installed in this '
            'Python environment: run nova-numa-guard where nova-scheduler '
            'runs (its virtualenv or container), or install nova there '
            '(pip install nova)' % command)
