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
        super().__init__(_one_line('%s: %s' % (source, problem)))


def _one_line(text):
    """``text`` with its unprintable characters (line breaks) escaped."""
    if text.isprintable():
        return text
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class TooLarge(InputError):
    """A file larger than the limit of its reader.

    :ivar size: its size in bytes, or at least what was read of it.
    :ivar read: the bytes read of it before it was refused.
    """

    def __init__(self, source, limit, size, read):
        super().__init__(source, 'larger than %d bytes' % limit)
        self.size = size
        self.read = read


def read_bytes(path, limit, by_size=False):
    """Read a regular file of at most ``limit`` bytes, never blocking.

    The file is opened without blocking and must be a regular file: a FIFO,
    socket or device in its place is refused, not waited on.

    :param by_size: refuse a file whose size is over ``limit`` without
        reading it (not for sysfs or procfs, whose sizes are made up).
    :raises FileNotFoundError: when it does not exist.
    :raises TooLarge: when it is larger than ``limit``.
    :raises InputError: when it cannot be read or is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InputError(path, 'cannot read: %s' % (exc.strerror or exc))
    with os.fdopen(fd, 'rb') as handle:
        try:
            size = os.fstat(fd)
            if not stat.S_ISREG(size.st_mode):
                raise InputError(path, 'cannot read: not a regular file')
            size = size.st_size
            if by_size and size > limit:
                raise TooLarge(path, limit, size, 0)
            data = handle.read(limit + 1)
        except OSError as exc:
            raise InputError(path, 'cannot read: %s' % (exc.strerror or exc))
    if len(data) > limit:
        raise TooLarge(path, limit, max(size, len(data)), len(data))
    return data


# The largest input file the tools read (a capabilities XML of a large host
# is well under a megabyte).
MAX_FILE_BYTES = 16 * 1024 * 1024


def read_file(path, limit=MAX_FILE_BYTES):
    """The bytes of an input file the user named, never blocking.

    :raises InputError: when it cannot be read, is not a regular file or is
        larger than ``limit``, naming the file.
    """
    try:
        return read_bytes(path, limit)
    except FileNotFoundError as exc:
        raise InputError(path, 'cannot read: %s' % (exc.strerror or exc))
