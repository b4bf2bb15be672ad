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

import os

import fixtures

from nova_numa_guard import inputs
from tests import testcase


class ReadBytesTest(testcase.TestCase):

    def test_files_over_the_limit(self):
        """Ensures a file over the limit raises TooLarge, by_size unread."""
        path = os.path.join(self.useFixture(fixtures.TempDir()).path, 'f')
        cases = [
            # (file size, by_size, result: bytes or (size, read))
            (100, False, b'x' * 100),
            (100, True, b'x' * 100),
            (5000, False, (5000, 101)),
            (5000, True, (5000, 0)),
        ]
        for size, by_size, expected in cases:
            with open(path, 'wb') as handle:
                handle.write(b'x' * size)
            if isinstance(expected, bytes):
                self.assertEqual(expected, inputs.read_bytes(
                    path, 100, by_size=by_size))
                continue
            exc = self.assertRaises(inputs.TooLarge, inputs.read_bytes,
                                    path, 100, by_size=by_size)
            self.assertEqual(expected, (exc.size, exc.read))
            self.assertEqual(path + ': larger than 100 bytes', str(exc))
