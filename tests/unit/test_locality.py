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

"""Table-driven and property tests of the pure locality scores."""

import itertools

import ddt
import hypothesis
from hypothesis import strategies as st

from nova_numa_guard import locality
from tests import testcase

PROPERTY = hypothesis.settings(max_examples=300, deadline=None,
                               derandomize=True)


@ddt.ddt
class DeviceScoreTest(testcase.TestCase):
    """A guest that needs devices: its best cells decide."""

    @ddt.named_data(
        # name, holds, fits, local, wanted, spans, score
        ('all-local-on-the-fitting-cell',
         [True, False], True, [[2], [0]], [2], 1, 1.0),
        ('devices-only-on-the-full-cell',
         [True, False], True, [[0], [2]], [2], 1, 0.5),
        ('devices-on-both-cells-tie-with-the-free-cell',
         [True, False], True, [[1], [1]], [1], 1, 1.0),
        ('half-of-the-devices-local',
         [True, False], True, [[1], [1]], [2], 1, 0.75),
        ('vf-local-nic-remote',
         [True, True], True, [[1, 0], [0, 1]], [1, 1], 1, 0.75),
        ('nothing-fits-devices-on-a-cell',
         [False, False], False, [[1], [0]], [1], 1, 0.25),
        ('nothing-fits-nothing-local',
         [False, False], False, [[0], [0]], [1], 1, 0.0),
        ('more-devices-than-wanted-count-once',
         [True], True, [[8]], [2], 1, 1.0),
        ('two-guest-cells-cover-both-nics',
         [True, True, True], True, [[1, 0], [0, 1], [0, 0]], [1, 1], 2,
         1.0),
        ('two-guest-cells-one-nic-each-side-of-a-full-cell',
         [True, True, False], True, [[1, 0], [0, 0], [0, 1]], [1, 1], 2,
         0.75),
        ('nothing-offered',
         [True, False], True, None, [1], 1, 0.5),
    )
    def test_scores(self, holds, fits, local, wanted, spans, score):
        """Ensures that each row of the table gets its documented score."""
        self.assertEqual(score, locality.device_score(holds, fits, local,
                                                      wanted, spans))


@ddt.ddt
class PlainScoreTest(testcase.TestCase):
    """A guest that needs no device keeps off busy cells."""

    @ddt.named_data(
        # name, fits, busy host, idle spans, spans, score
        ('device-less-host', True, False, 1, 1, 1.0),
        ('fits-a-device-free-cell', True, True, 1, 1, 0.75),
        ('fits-only-device-cells', True, True, 0, 1, 0.25),
        ('fits-nowhere', False, False, 0, 1, 0.0),
        ('fits-nowhere-on-a-device-host', False, True, 0, 1, 0.0),
        ('numa-guest-half-on-idle-cells', True, True, 1, 2, 0.5),
        ('numa-guest-all-on-idle-cells', True, True, 2, 2, 0.75),
    )
    def test_scores(self, fits, busy, idle, spans, score):
        """Ensures that each row of the table gets its documented score."""
        self.assertEqual(score, locality.plain_score(fits, busy, idle,
                                                     spans))

    def test_order_of_the_issue(self):
        """Ensures device-less host > device-free fitting cell > neither."""
        self.assertGreater(locality.plain_score(True, False, 1),
                           locality.plain_score(True, True, 1))
        self.assertGreater(locality.plain_score(True, True, 1),
                           locality.plain_score(True, True, 0))
        self.assertGreater(locality.plain_score(True, True, 0),
                           locality.plain_score(False, True, 0))

    def test_idle_spans(self):
        """Ensures that only holding cells that are not busy count."""
        self.assertEqual(1, locality.idle_spans([True, True, False],
                                                [True, False, False]))
        self.assertEqual(2, locality.idle_spans([True, True, False], None))


@ddt.ddt
class FitCellsTest(testcase.TestCase):

    @ddt.named_data(
        # name, room per host cell, need per guest cell, holds, fits
        ('one-guest-cell', [(10, 4), (2, 4)], [(4, 2)], [True, False], True),
        ('cpus-too-few', [(10, 1), (10, 1)], [(4, 2)], [False, False],
         False),
        ('two-guest-cells-two-host-cells', [(10, 4), (10, 4)],
         [(6, 2), (6, 2)], [True, True], True),
        ('two-guest-cells-one-roomy-cell', [(20, 8), (2, 8)],
         [(6, 2), (6, 2)], [True, False], False),
        ('asymmetric-needs-the-right-pairing', [(30, 2), (10, 2)],
         [(8, 1), (25, 1)], [True, True], True),
    )
    def test_fit(self, room, need, holds, fits):
        """Ensures that each guest cell needs a host cell of its own."""
        self.assertEqual((holds, fits), locality.fit_cells(room, need))


def _cells(max_cells=6, needs=3):
    """``(holds, fits, local, wanted, spans)`` of a random host."""
    return st.integers(1, max_cells).flatmap(lambda n: st.integers(
        1, needs).flatmap(lambda k: st.tuples(
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.booleans(),
            st.lists(st.lists(st.integers(0, 9), min_size=k, max_size=k),
                     min_size=n, max_size=n),
            st.lists(st.integers(1, 4), min_size=k, max_size=k),
            st.integers(1, n))))


class ScorePropertyTest(testcase.TestCase):

    @PROPERTY
    @hypothesis.given(_cells())
    def test_device_scores_stay_in_their_bands(self, case):
        """Ensures scores are in [0, 1]: >= 0.5 when it fits, else <= 0.25.
        """
        holds, fits, local, wanted, spans = case
        fits = fits and any(holds)
        score = locality.device_score(holds, fits, local, wanted, spans)
        self.assertTrue(0.0 <= score <= 1.0)
        if fits:
            self.assertGreaterEqual(score, locality.FIT)
        else:
            self.assertLessEqual(score, locality.NO_FIT)

    @PROPERTY
    @hypothesis.given(_cells(), st.integers(0, 5), st.integers(0, 3))
    def test_more_local_devices_never_lower_the_score(self, case, cell,
                                                      need):
        """Ensures a device added on any cell never lowers the score.

        For one span, where the best cell is found exactly.
        """
        holds, fits, local, wanted, _ = case
        fits = fits and any(holds)
        before = locality.device_score(holds, fits, local, wanted)
        cell %= len(local)
        need %= len(wanted)
        local[cell][need] += 1
        self.assertGreaterEqual(
            locality.device_score(holds, fits, local, wanted), before)

    @PROPERTY
    @hypothesis.given(_cells(needs=2))
    def test_one_span_takes_the_best_cell(self, case):
        """Ensures one span's share is the best single cell's, exactly."""
        holds, _, local, wanted, _ = case
        candidates = [c for c, ok in enumerate(holds) if ok] or [0]
        best = max(locality.coverage([c], local, wanted) for c in candidates)
        self.assertEqual(best, locality.best_cells(candidates, local,
                                                   wanted, 1)[1])

    @PROPERTY
    @hypothesis.given(st.booleans(), st.booleans(), st.integers(0, 4),
                      st.integers(1, 4))
    def test_plain_scores_stay_in_range(self, fits, busy, idle, spans):
        """Ensures plain scores are in [0, 1], and 1 only off busy hosts."""
        score = locality.plain_score(fits, busy, idle, spans)
        self.assertTrue(0.0 <= score <= 1.0)
        self.assertEqual(score == 1.0, fits and not busy)

    @PROPERTY
    @hypothesis.given(st.integers(1, 4).flatmap(lambda n: st.tuples(
        st.lists(st.tuples(st.integers(0, 9), st.integers(0, 3)),
                 min_size=n, max_size=n),
        st.lists(st.tuples(st.integers(0, 9), st.integers(0, 3)),
                 min_size=1, max_size=n))))
    def test_fits_exactly_when_a_distinct_assignment_exists(self, case):
        """Ensures the matching agrees with trying every assignment."""
        room, need = case
        _, fits = locality.fit_cells(room, need)
        brute = any(
            all(all(h >= w for h, w in zip(room[c], n))
                for c, n in zip(chosen, need))
            for chosen in itertools.permutations(range(len(room)),
                                                 len(need)))
        self.assertEqual(brute, fits)
