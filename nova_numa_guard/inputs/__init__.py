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

"""Parsers that turn host descriptions into the pure topology model."""

import os
import stat


class InputError(ValueError):
    """Bad input, with a one-line message that names its source.

    :param source: a file name or other label of where the input came from.
    :param problem: what is wrong, one line.
    """

    def __init__(self, source, problem):
        self.source = source
        self.problem = problem
        super().__init__('%s: %s' % (source, problem))


def read_bytes(path, limit, cut=False):
    """Read a regular file of at most ``limit`` bytes, never blocking.

    The file is opened without blocking and must be a regular file: a FIFO,
    socket or device in its place is refused, not waited on.

    :param cut: return the first ``limit + 1`` bytes of a larger file
        instead of raising (the caller tells "too large" itself).
    :raises FileNotFoundError: when it does not exist.
    :raises InputError: when it cannot be read, is not a regular file, or
        is larger than ``limit``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InputError(path, 'cannot read: %s' % (exc.strerror or exc))
    with os.fdopen(fd, 'rb') as handle:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InputError(path, 'not a regular file')
            data = handle.read(limit + 1)
        except OSError as exc:
            raise InputError(path, 'cannot read: %s' % (exc.strerror or exc))
    if len(data) > limit and not cut:
        raise InputError(path, 'larger than %d bytes' % limit)
    return data
