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

"""The command line, run in-process."""

import io
import os
import sys

import fixtures

from nova_numa_guard.cli import app
from tests import testcase


class CLITestCase(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        # argparse writes usage errors and --help to sys.stdout/stderr.
        self.sys_stdout = io.StringIO()
        self.sys_stderr = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', self.sys_stdout))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.sys_stderr))

    def run_cli(self, *argv):
        """Run the app; returns (exit code, stdout, stderr)."""
        stdout, stderr = io.StringIO(), io.StringIO()
        cli = app.NovaNumaGuardApp(stdout=stdout, stderr=stderr)
        try:
            code = cli.run(list(argv))
        except SystemExit as e:
            code = e.code
        return (code, stdout.getvalue() + self.sys_stdout.getvalue(),
                stderr.getvalue() + self.sys_stderr.getvalue())

    def hide_nova(self):
        """Make nova and its modules look uninstalled until the test ends.

        The import system reads the dict itself, not the ``sys.modules``
        name: the entries are blanked in place.
        """
        hidden = {name: module for name, module in sys.modules.items()
                  if name == 'nova' or name.startswith('nova.')}
        self.addCleanup(sys.modules.update, hidden)
        sys.modules.update(dict.fromkeys(hidden))

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def assert_one_line_error(self, code, out, err, expected):
        """Exit 1, nothing on stdout, one line on stderr that starts so."""
        self.assertEqual(1, code)
        self.assertEqual('', out)
        self.assertTrue(err.startswith(expected), err)
        self.assertTrue(err.endswith('\n'), err)
        self.assertEqual(1, err.count('\n'), err)
