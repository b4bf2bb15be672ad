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

"""Run a benchmark in several processes and print the median of each figure.

On a shared machine the same ratio moves by up to 0.3 from one process to
the next (where the allocator puts the hosts, what else runs), more than
the repetitions within one process tell. This runs the benchmark ``--runs``
times, one process after the other, and prints its table once with every
number the median of the runs (in the same format), then again with each
number that moved as ``lowest-highest``.

The benchmarks print the same lines in every run but for their figures;
a line whose words differ between runs (a warning) is printed as the first
run gave it, marked with ``!``.

Usage: python benchmarks/runs.py [--runs 3] SCRIPT [ARGUMENTS...]
"""

import argparse
import re
import statistics
import subprocess
import sys

_NUMBER = re.compile(r'-?\d+(?:\.\d+)?')
_SPLIT = re.compile(r'(\s+)')


def _combined(lines, pick):
    """One line from the same line of every run, numbers given by ``pick``.

    :param pick: ``pick(token, numbers)``: the text of a numeric token from
        the first run's token and the numbers of all the runs.
    :returns: the line, or None when the runs' words differ.
    """
    runs = [_SPLIT.split(line) for line in lines]
    if len({len(tokens) for tokens in runs}) != 1:
        return None
    out = []
    for tokens in zip(*runs):
        first = tokens[0]
        if _NUMBER.fullmatch(first) and all(
                _NUMBER.fullmatch(t) for t in tokens):
            out.append(pick(first, [float(t) for t in tokens]))
        elif len(set(tokens)) == 1 or first.isspace():
            out.append(first)
        else:
            return None
    return ''.join(out)


def _format(token, value):
    """``value`` as ``token`` is written: its decimals, at least its width."""
    decimals = len(token.split('.')[1]) if '.' in token else 0
    return ('%.*f' % (decimals, value)).rjust(len(token))


def median(token, numbers):
    return _format(token, statistics.median(numbers))


def spread(token, numbers):
    low, high = min(numbers), max(numbers)
    if low == high:
        return _format(token, low)
    return ('%s-%s' % (_format(token, low).strip(),
                       _format(token, high).strip())).rjust(len(token))


def summarise(outputs):
    """The medians and the ranges of the runs' ``outputs`` (lists of lines).

    :returns: ``(median lines, range lines)``.
    """
    medians, ranges = [], []
    for index, first in enumerate(outputs[0]):
        lines = [out[index] if index < len(out) else '' for out in outputs]
        for pick, into in ((median, medians), (spread, ranges)):
            line = _combined(lines, pick)
            into.append('! ' + first if line is None else line)
    return medians, ranges


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('script')
    parser.add_argument('arguments', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error('--runs must be at least 1')
    outputs = []
    for run in range(args.runs):
        print('run %d of %d: %s' % (run + 1, args.runs, ' '.join(
            [args.script] + args.arguments)), file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, args.script] + args.arguments,
                              stdout=subprocess.PIPE, text=True)
        if done.returncode:
            sys.stdout.write(done.stdout)
            return done.returncode
        outputs.append(done.stdout.splitlines())
    medians, ranges = summarise(outputs)
    print('median of %d runs, each in its own process:' % args.runs)
    print('\n'.join(medians))
    print('\nlowest-highest of the %d runs:' % args.runs)
    print('\n'.join(ranges))
    return 0


if __name__ == '__main__':
    sys.exit(main())
