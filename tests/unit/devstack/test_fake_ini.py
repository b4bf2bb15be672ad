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

"""The stand-ins of devstack's inc/ini-config do what devstack's do."""

import os
import subprocess
import sys

import fixtures

from tests import testcase
from tests.unit.devstack import fake_ini

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = """[default]
#handlers=commented
handlers = aa, bb

[multi]
opt = foo1
opt = foo2
other = x

[last]
opt = keep
"""


class FakeIniTestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.lines = CONF.split('\n')[:-1]

    def test_get(self):
        """Ensures that iniget gives the value after '=', words joined."""
        self.assertEqual('aa, bb', fake_ini.get(self.lines, 'default',
                                                'handlers'))
        self.assertEqual('', fake_ini.get(self.lines, 'default', 'missing'))
        self.assertEqual(['foo1', 'foo2'],
                         fake_ini.get_multiline(self.lines, 'multi', 'opt'))

    def test_set_replaces_in_place_and_adds_after_the_header(self):
        """Ensures that iniset keeps the line's spacing, adds under [s]."""
        lines = fake_ini.set_(self.lines, 'default', 'handlers', 'cc  dd')
        lines = fake_ini.set_(lines, 'default', 'new', 'v')
        self.assertEqual(['[default]', 'new = v', '#handlers=commented',
                          'handlers = cc dd'], lines[:4])

    def test_set_creates_the_section_at_the_end(self):
        """Ensures that a missing section goes at the end after a blank."""
        lines = fake_ini.set_([], 'numa_guard', 'dry_run', 'True')
        self.assertEqual(['', '[numa_guard]', 'dry_run = True'], lines)

    def test_set_multiline_and_delete_touch_one_section(self):
        """Ensures that the multi-line writers leave other sections be."""
        lines = fake_ini.set_multiline(self.lines, 'multi', 'opt', 'a', 'b')
        self.assertEqual(['[multi]', 'opt = a', 'opt = b', 'other = x'],
                         lines[4:8])
        lines = fake_ini.delete(lines, 'multi', 'opt')
        self.assertEqual(['[multi]', 'other = x', '', '[last]', 'opt = keep'],
                         lines[4:])

    def test_iniadd_appends_a_value(self):
        """Ensures that iniadd (bash) keeps the values and adds one."""
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'c')
        with open(path, 'w') as f:
            f.write(CONF)
        subprocess.run(
            ['bash', '-c', 'source "$FAKE_DEVSTACK_DIR/fake-devstack.sh"; '
             'iniadd "$1" multi opt foo3', '-', path], check=True,
            env={'FAKE_DEVSTACK_DIR': HERE, 'FAKE_PYTHON': sys.executable,
                 'PATH': os.environ.get('PATH', '/usr/bin:/bin')})
        self.assertEqual(['foo1', 'foo2', 'foo3'], fake_ini.get_multiline(
            fake_ini.read(path), 'multi', 'opt'))
