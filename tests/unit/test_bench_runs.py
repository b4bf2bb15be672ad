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

"""benchmarks/runs.py: the medians of several runs of a benchmark."""

import importlib.util
import os

import hypothesis
from hypothesis import strategies as st

from tests import testcase

_PATH = os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks',
                     'runs.py')
_SPEC = importlib.util.spec_from_file_location('bench_runs', _PATH)
runs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(runs)


class SummariseTest(testcase.TestCase):

    def test_figures_are_medians_and_ranges_in_their_format(self):
        """Ensures every number is the median of its runs, as written."""
        head = 'hosts   filter     us/host   ratio'
        outputs = [[head, '10000   guard  5.50    0.90'],
                   [head, '10000   guard  7.25    1.10'],
                   [head, '10000   guard 12.00    0.95']]
        medians, ranges = runs.summarise(outputs)
        self.assertEqual([head, '10000   guard  7.25    0.95'], medians)
        self.assertEqual([head, '10000   guard  5.50-12.00    0.90-1.10'],
                         ranges)

    def test_lines_whose_words_differ_are_marked(self):
        """Ensures a line that is not the same table line in every run is
        shown as the first run gave it, marked, never mixed with others.
        """
        outputs = [['cells memo: 1000 entries', 'done'],
                   ['WARNING: slow', 'done'],
                   ['cells memo: 1000 entries']]
        medians, ranges = runs.summarise(outputs)
        self.assertEqual(['! cells memo: 1000 entries', '! done'], medians)
        self.assertEqual(medians, ranges)

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(st.lists(st.floats(0, 1e4), min_size=1,
                                        max_size=5),
                               min_size=1, max_size=7))
    def test_median_lies_within_the_range(self, values):
        """Ensures each median is within the runs' range, for any figures."""
        width = min(len(row) for row in values)
        outputs = [[' '.join('%.2f' % v for v in row[:width])]
                   for row in values]
        medians, ranges = runs.summarise(outputs)
        for median, spread in zip(medians[0].split(), ranges[0].split()):
            low, _, high = spread.partition('-')
            self.assertLessEqual(float(low), float(median))
            self.assertLessEqual(float(median), float(high or low))
