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

"""The ``nova-numa-guard`` cliff application.

Commands are loaded from the ``nova_numa_guard.cli`` entry point namespace,
like openstackclient's plugins, and accept the usual ``-f
table|json|yaml|value`` output options.
"""

import logging
import sys
import warnings

from cliff import app
from cliff import commandmanager
import pbr.version

LOG = logging.getLogger('nova_numa_guard.cli')


def _version():
    try:
        return pbr.version.VersionInfo('nova-numa-guard').version_string()
    except Exception:
        return 'unknown'


class CommandManager(commandmanager.CommandManager):
    """Commands by their whole names: ``flavor-spec`` is no command."""

    def find_command(self, argv):
        factory, name, args = super().find_command(argv)
        if name not in self.commands:
            raise ValueError('Unknown command %r; the commands are %s' % (
                name, ', '.join(sorted(n for n in self.commands
                                       if n not in ('complete', 'help')))))
        return factory, name, args


class NovaNumaGuardApp(app.App):
    """``nova-numa-guard``: NUMA tools for nova operators."""

    NAME = 'nova-numa-guard'
    LOG = LOG

    def __init__(self, **kwargs):
        super().__init__(
            description='NUMA tools for OpenStack Nova operators: plan vNUMA '
                        'flavor extra specs from a host\'s topology, and '
                        'simulate where flavors land with and without '
                        'NUMACellFitFilter.',
            version=_version(),
            command_manager=CommandManager('nova_numa_guard.cli'),
            deferred_help=True,
            **kwargs)

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.allow_abbrev = False
        return parser

    def run(self, argv):
        """Run a command; with none, print the help (no interactive shell)."""
        if not any(not arg.startswith('-') for arg in argv) and not any(
                arg in ('-h', '--help', '--version') for arg in argv):
            argv = list(argv) + ['help']
        return super().run(argv)

    def configure_logging(self):
        """Send the CLI's messages (not the library's) to stderr.

        Unlike cliff's default this leaves the root logger alone, so nova's
        modules, imported to check plans, stay quiet.
        """
        for handler in list(LOG.handlers):
            if getattr(handler, 'nova_numa_guard_cli', False):
                LOG.removeHandler(handler)
        level = {0: logging.WARNING, 1: logging.INFO}.get(
            self.options.verbose_level, logging.DEBUG)
        console = logging.StreamHandler(self.stderr)
        console.nova_numa_guard_cli = True
        console.setFormatter(logging.Formatter(self.CONSOLE_MESSAGE_FORMAT))
        LOG.addHandler(console)
        LOG.setLevel(level)
        LOG.propagate = False


def main(argv=None):
    """Run ``nova-numa-guard``; returns the exit code."""
    # nova's imports warn about eventlet's deprecation: nothing a user of
    # these commands can act on.
    warnings.filterwarnings('ignore', message=r'(?s).*[Ee]ventlet')
    return NovaNumaGuardApp().run(sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
