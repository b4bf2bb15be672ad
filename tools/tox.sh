#!/usr/bin/env bash
# Run tox from a private virtualenv (.tox-venv), creating it on first use:
# a fresh machine may have no tox, and distributions that mark their Python
# as externally managed (PEP 668) refuse "pip install" outside a venv.
# Usage: tools/tox.sh -e simulate
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tox-venv
# The tox these scripts are tested with; a run leaves the clone as it was.
TOX_VERSION=4.67.15
if [ ! -x "$venv/bin/tox" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian and Ubuntu ship venv separately.
        sudo=sudo
        if [ "$(id -u)" = 0 ]; then
            sudo=
        fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            python3-venv >/dev/null
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q "tox==$TOX_VERSION"
fi
exec "$venv/bin/tox" "$@"
