#!/usr/bin/env bash
# Run every test suite of nova-numa-guard from a fresh machine: flake8 and
# bashate (pep8), the unit tests (py3), the functional tests through a real
# in-process nova (functional), and the documentation and release notes
# builds with warnings as errors (docs, releasenotes). Installs what is
# missing: tox in a private virtualenv (tools/tox.sh), memcached from the
# distribution (the live-memory tests start their own memcached on
# 127.0.0.1).
#
# The output stays short: one character per test, the output and logs of a
# test only when it fails, and a closing summary
#   N passed, N failed, N skipped
# followed by the failed tests by name, and by the environments that failed
# without a failing test (flake8, a docs build, an install), each counted as
# one failure. The docs builds print their output only when they fail.
# Extra arguments go to stestr (e.g. a test name filter).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v memcached >/dev/null 2>&1 && [ ! -x /usr/bin/memcached ]; then
    echo "Installing memcached (apt-get)..."
    sudo=sudo
    if [ "$(id -u)" = 0 ]; then
        sudo=
    fi
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq memcached \
        >/dev/null || echo "could not install memcached" >&2
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
passed=0 failed=0 skipped=0 status=0
failures=()
for env in pep8 py3 functional docs releasenotes; do
    echo "== $env"
    case $env in
        pep8)
            tools/tox.sh -q -e "$env" 2>&1 | tee "$log"
            rc=${PIPESTATUS[0]}
            ;;
        docs | releasenotes)
            tools/tox.sh -q -e "$env" >"$log" 2>&1
            rc=$?
            if [ "$rc" != 0 ]; then
                tail -n 40 "$log"
            fi
            ;;
        *)
            tools/tox.sh -q -e "$env" -- --abbreviate --suppress-attachments \
                "$@" 2>&1 | tee "$log"
            rc=${PIPESTATUS[0]}
            ;;
    esac
    # stestr prints " - Passed: N", " - Failed: N", " - Skipped: N".
    read -r p f s < <(awk '/^ - Passed: /{p+=$3} /^ - Failed: /{f+=$3}
        /^ - Skipped: /{s+=$3} END{print p+0, f+0, s+0}' "$log")
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    if [ "$rc" != 0 ]; then
        status=1
        if [ "$f" = 0 ]; then
            failed=$((failed + 1))
            failures+=("$env (no test failed: see its output above)")
        elif [ -x ".tox/$env/bin/stestr" ]; then
            while read -r test; do
                [ -n "$test" ] && failures+=("$env: $test")
            done < <(".tox/$env/bin/stestr" failing --list 2>/dev/null)
        fi
    fi
done
echo "$passed passed, $failed failed, $skipped skipped"
for failure in "${failures[@]}"; do
    echo "FAILED $failure"
done
exit $status
