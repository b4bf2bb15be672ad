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

"""The README's simulator output is what the simulator prints."""

import os
import textwrap

import fixtures

from tests import examples
from tests.unit.cli import base

README = os.path.join(os.path.dirname(examples.DIR), 'README.rst')


def _block(marker):
    """The literal block after ``marker`` in the README, as chunks.

    Chunks are split at ``...`` lines; the command lines ($ and their
    continuations) are left out.
    """
    with open(README) as f:
        text = f.read()
    lines = text[text.index(marker) + len(marker):].splitlines()[1:]
    block = []
    for line in lines:
        if line and not line.startswith('    '):
            break
        block.append(line)
    block = textwrap.dedent('\n'.join(block)).strip('\n').splitlines()
    while block and (block[0].startswith('$') or block[0].startswith(' ')):
        block.pop(0)
    chunks, chunk = [], []
    for line in block:
        if line.strip() == '...':
            chunks.append('\n'.join(chunk))
            chunk = []
        else:
            chunk.append(line)
    chunks.append('\n'.join(chunk))
    return [chunk for chunk in chunks if chunk.strip()]


class ReadmeTest(base.CLITestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_numa_guard.simulation.guard_weighers_installed',
            lambda: False))

    def _assert_shown(self, marker, *argv):
        code, out, _ = self.run_cli(*argv)
        self.assertEqual(0, code)
        chunks = _block(marker)
        self.assertTrue(chunks)
        for chunk in chunks:
            self.assertIn(chunk, out)

    def test_main_job_output(self):
        """Ensures the README shows what tox -e simulate prints."""
        self._assert_shown('(tox adds a few lines of its own)::',
                           'simulate', '--fleet', examples.FLEET,
                           '--flavor-file', examples.FLAVORS)

    def test_two_node_example_output(self):
        """Ensures the README shows what the two-node example prints."""
        self._assert_shown('gets::', 'simulate', '--fleet',
                           examples.TWO_NODE_FLEET, '--flavor',
                           'name=x1.70g,vcpus=4,ram=70000')
