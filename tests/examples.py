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

"""The example files of ``examples/``, which the tests read too."""

import os

DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'examples')


def path(name):
    """The path of ``examples/<name>``."""
    return os.path.join(DIR, name)


# The motivating host: virsh capabilities and numastat -m.
TWO_NODE_XML = path('two-node-64g-capabilities.xml')
TWO_NODE_NUMASTAT = path('two-node-64g-numastat.txt')
TWO_NODE_FLEET = path('two-node-64g.yaml')
FLEET = path('fleet.yaml')
FLAVORS = path('flavors.json')
