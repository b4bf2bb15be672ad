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

"""The base class of the tests that do not run a nova test base class.

oslotest's base class captures every log record (``OS_LOG_CAPTURE``),
stdout and stderr (``OS_STDOUT_CAPTURE``, ``OS_STDERR_CAPTURE``), as tox
sets them: a test prints nothing, and what it logged is shown only when it
fails. Tests built on nova's ``test.NoDBTestCase`` get the same from nova.
"""

from oslotest import base


class TestCase(base.BaseTestCase):
    """A quiet test case: output and logs captured, shown on failure."""
