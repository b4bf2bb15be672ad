#!/usr/bin/env bash
# Run every test suite of nova-numa-guard from a fresh machine: flake8 (pep8),
# the unit tests (py3) and the functional tests through a real in-process
# nova (functional). Installs what is missing: tox from PyPI, memcached from
# the distribution (the live-memory tests start their own memcached on
# 127.0.0.1). Prints one closing line "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v memcached >/dev/null 2>&1 && [ ! -x /usr/bin/memcached ]; then
    if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq memcached \
        >/dev/null
fi
python3 -m pip install -q 'tox>=4.0.0'

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
python3 -m tox -e pep8,py3,functional "$@" 2>&1 | tee "$log" || status=$?

# stestr prints " - Passed: N" etc. for each suite; add them up.
awk '/^ - Passed: /{p+=$3} /^ - Failed: /{f+=$3} /^ - Skipped: /{s+=$3}
     END{printf "%d passed, %d failed, %d skipped\n", p, f, s}' "$log"
exit $status
