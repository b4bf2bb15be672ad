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

"""Stand-ins for devstack's ``inc/ini-config``, line for line in effect.

``fake-devstack.sh`` calls ``python fake_ini.py <verb> FILE SECTION OPTION
[VALUE...]``; the tests read files with the same functions. What devstack
does, and so what this does:

* a section is the lines after a ``[section]`` header up to the next header;
  an option line is ``option = value`` (spaces or tabs around ``=``);
* ``iniset`` appends ``\\n[section]`` to the file when the section is
  missing, inserts ``option = value`` right after the header when the
  option is missing, else replaces the value of every such line; the value
  is word-split and joined by single spaces (``echo $value``);
* ``iniset_multiline`` removes every line of the option and inserts one line
  per value right after the header, in the order given;
* ``iniget`` prints what follows the first ``=`` of the option's lines and
  ``iniget_multiline`` every value, each word-split and space-joined
  (``echo ${values}``);
* ``inidelete`` removes every line of the option.
"""

import re
import sys

_ANY_HEADER = re.compile(r'^\[.*\]')


def _members(lines, section):
    """Indexes of the lines inside ``section``, headers excluded."""
    header = re.compile(r'^\[%s\]' % section)
    inside = False
    for i, line in enumerate(lines):
        if _ANY_HEADER.match(line):
            inside = bool(header.match(line))
        elif inside:
            yield i


def _option_lines(lines, section, option):
    match = re.compile(r'^%s[ \t]*=' % option).match
    return [i for i in _members(lines, section) if match(lines[i])]


def _has_header(lines, section):
    header = re.compile(r'^\[%s\]' % section)
    return any(header.match(line) for line in lines)


def _insert_after_headers(lines, section, new):
    header = re.compile(r'^\[%s\]' % section)
    out = []
    for line in lines:
        out.append(line)
        if header.match(line):
            out.extend(new)
    return out


def read(path):
    try:
        with open(path) as f:
            return f.read().split('\n')[:-1]
    except FileNotFoundError:
        return []


def get(lines, section, option):
    text = '\n'.join(lines[i] for i in _option_lines(lines, section, option))
    return ' '.join(text.partition('=')[2].split() if '=' in text
                    else text.split())


def get_multiline(lines, section, option):
    strip = re.compile(r'^%s[ \t]*=[ \t]*' % option)
    return [word for i in _option_lines(lines, section, option)
            for word in strip.sub('', lines[i]).split()]


def delete(lines, section, option):
    drop = set(_option_lines(lines, section, option))
    return [line for i, line in enumerate(lines) if i not in drop]


def set_(lines, section, option, value=''):
    value = ' '.join(value.split())
    if not _has_header(lines, section):
        lines = lines + ['', '[%s]' % section]
    found = _option_lines(lines, section, option)
    if not found:
        return _insert_after_headers(
            lines, section, ['%s = %s' % (option, value)])
    prefix = re.compile(r'^(%s[ \t]*=[ \t]*).*$' % option)
    lines = list(lines)
    for i in found:
        lines[i] = prefix.sub(lambda m: m.group(1) + value, lines[i])
    return lines


def set_multiline(lines, section, option, *values):
    if not _has_header(lines, section):
        lines = lines + ['', '[%s]' % section]
    else:
        lines = delete(lines, section, option)
    return _insert_after_headers(
        lines, section, ['%s = %s' % (option, v) for v in values])


def main(argv):
    verb, path, section, option = argv[:4]
    values = argv[4:]
    lines = read(path)
    if verb == 'get':
        print(get(lines, section, option))
        return
    if verb == 'get_multiline':
        print(' '.join(get_multiline(lines, section, option)))
        return
    if verb == 'set':
        lines = set_(lines, section, option, values[0] if values else '')
    elif verb == 'set_multiline':
        lines = set_multiline(lines, section, option, *values)
    elif verb == 'delete':
        if not section or not option:
            return
        lines = delete(lines, section, option)
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))


if __name__ == '__main__':
    main(sys.argv[1:])
