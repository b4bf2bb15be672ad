#!/bin/bash
# Smoke test of nova-numa-guard on a running devstack (the devstack plugin
# enabled, NUMACellFitFilter in nova-scheduler), with openstackclient.
#
# Run it on the controller as the stack user after stack.sh:
#     devstack/smoke.sh
# It needs compute hosts of the controller's shape with two or more NUMA
# nodes, each with free memory for half of one node's size (the vNUMA guest
# binds half of its memory to each of two nodes). It checks that:
# 1. a flavor without a NUMA topology larger than one host cell goes to
#    ERROR with "No valid host", and nova-scheduler logs NUMACellFitFilter's
#    reason;
# 2. the same size with the vNUMA extra specs of "nova-numa-guard
#    flavor-specs" boots;
# 3. with NOVA_NUMA_GUARD_AGENT=True, every compute host's memory record is
#    in memcached and the scheduler trusts it: a flavor that fits a cell
#    but not its free memory is rejected on live figures (DEBUG line).
#
# Environment: OS_CLOUD (devstack-admin), NOVA_NUMA_GUARD_AGENT (False),
# SMOKE_IMAGE (the first active image), SMOKE_NETWORK (private),
# SMOKE_MEMCACHED (127.0.0.1:11211), SMOKE_SYSFS (/sys), SMOKE_TIMEOUT (300
# seconds per server), SMOKE_LOG_CMD (how to read nova-scheduler's log).
set -euo pipefail

export OS_CLOUD=${OS_CLOUD:-devstack-admin}
AGENT=${NOVA_NUMA_GUARD_AGENT:-False}
NETWORK=${SMOKE_NETWORK:-private}
MEMCACHED=${SMOKE_MEMCACHED:-127.0.0.1:11211}
SYSFS=${SMOKE_SYSFS:-/sys}
TIMEOUT=${SMOKE_TIMEOUT:-300}
LOG_CMD=${SMOKE_LOG_CMD:-sudo journalctl -u devstack@n-sch --no-pager -o cat}
GUARD=${NOVA_NUMA_GUARD_CLI:-$(command -v nova-numa-guard || \
    echo /opt/stack/data/venv/bin/nova-numa-guard)}
PREFIX=nng-smoke
VCPUS=2

function fail {
    echo "FAIL: $*" >&2
    exit 1
}

function cleanup {
    openstack server delete --wait $PREFIX-big $PREFIX-vnuma \
        $PREFIX-full >/dev/null 2>&1 || true
    openstack flavor delete $PREFIX-big $PREFIX-vnuma $PREFIX-full \
        >/dev/null 2>&1 || true
    rm -f "$LOG"
}

# log_has REGEX: nova-scheduler's log since the test started has a line
# that matches (read whole first: grep -q would cut the pipe short).
function log_has {
    $LOG_CMD --since "$SINCE" >"$LOG"
    grep -E -q -e "$1" "$LOG"
}

# boot NAME FLAVOR: create a server and print its final status.
function boot {
    local name=$1 flavor=$2 status waited=0
    openstack server create --flavor $flavor --image "$IMAGE" \
        --network "$NETWORK" $name >/dev/null
    while true; do
        status=$(openstack server show -f value -c status $name)
        if [[ "$status" == ACTIVE || "$status" == ERROR ]]; then
            echo "$status"
            return 0
        fi
        if ((waited >= TIMEOUT)); then
            echo "TIMEOUT($status)"
            return 0
        fi
        sleep 5
        waited=$((waited + 5))
    done
}

# flavor NAME RAM [--property K=V...]: (re)create a flavor.
function flavor {
    local name=$1 ram=$2
    shift 2
    openstack flavor delete $name >/dev/null 2>&1 || true
    openstack flavor create --vcpus $VCPUS --ram $ram --disk 1 "$@" \
        $name >/dev/null
}

# memcached_has KEY: the key is in memcached (a plain text protocol get).
function memcached_has {
    local reply
    exec 3<>/dev/tcp/${MEMCACHED%:*}/${MEMCACHED##*:}
    printf 'get %s\r\n' "$1" >&3
    read -r -t 5 reply <&3 || true
    exec 3>&-
    [[ "$reply" == "VALUE $1 "* ]]
}

nodes=("$SYSFS"/devices/system/node/node[0-9]*)
if ((${#nodes[@]} < 2)); then
    fail "this host has ${#nodes[@]} NUMA node(s); the smoke test needs two" \
        "or more (NUMACellFitFilter passes one-cell hosts)"
fi
# The largest node in MB, as nova sees it (libvirt's cell memory).
largest=0
for node in "${nodes[@]}"; do
    kb=$(awk '/MemTotal:/ {print $4}' "$node/meminfo")
    if ((kb / 1024 > largest)); then
        largest=$((kb / 1024))
    fi
done
IMAGE=${SMOKE_IMAGE:-$(openstack image list --status active -f value \
    -c ID | head -n 1)}
SINCE=$(date '+%Y-%m-%d %H:%M:%S')
LOG=$(mktemp)
trap cleanup EXIT
cleanup

big=$((largest + 1024))
echo "== ${#nodes[@]} NUMA nodes, the largest $largest MB; flavor of $big MB"

flavor $PREFIX-big $big
status=$(boot $PREFIX-big $PREFIX-big)
[[ "$status" == ERROR ]] || fail "$PREFIX-big: $status, expected ERROR"
fault=$(openstack server show -f value -c fault $PREFIX-big)
[[ "$fault" == *"No valid host"* ]] || fail "$PREFIX-big: fault $fault"
log_has "fails NUMA cell fit: needs $big MB" || \
    fail "no NUMACellFitFilter rejection of $big MB in the scheduler log"
log_has "NUMACellFitFilter removed .*needs $big MB" || \
    fail "no NUMACellFitFilter INFO line for $big MB in the scheduler log"
echo "ok: $big MB without a NUMA topology: No valid host, reason logged"

specs=$("$GUARD" flavor-specs --vcpus $VCPUS --ram $big \
    --sysfs-root "$SYSFS" -f json 2>/dev/null)
mapfile -t properties < <(python3 -c 'import json, sys
specs = json.load(sys.stdin).items()
print("\n".join("--property\n%s=%s" % spec for spec in specs))' <<<"$specs")
flavor $PREFIX-vnuma $big "${properties[@]}"
status=$(boot $PREFIX-vnuma $PREFIX-vnuma)
[[ "$status" == ACTIVE ]] || fail "$PREFIX-vnuma ($specs): $status"
echo "ok: $big MB with $(tr -d '\n ' <<<"$specs"): ACTIVE"

if [[ "$AGENT" == True ]]; then
    hosts=$(openstack compute service list --service nova-compute \
        -f value -c Host)
    for host in $hosts; do
        memcached_has "nova_numa_guard:mem:$host" || \
            fail "no memory record of $host in memcached ($MEMCACHED)"
    done
    echo "ok: every compute host's memory record is in memcached"
    # Fits the largest cell, but not its free memory: rejected on live data.
    flavor $PREFIX-full $((largest - 1))
    status=$(boot $PREFIX-full $PREFIX-full)
    [[ "$status" == ERROR ]] || fail "$PREFIX-full: $status, expected ERROR"
    log_has "fails NUMA cell fit: needs $((largest - 1)) MB free in one cell; live" || \
        fail "no rejection on live figures in the scheduler log"
    if log_has "ignoring the live data"; then
        fail "the scheduler ignored live data:" \
            "$(grep 'ignoring the live data' "$LOG" | tail -n 1)"
    fi
    echo "ok: the scheduler judged on trusted live figures"
fi
echo "nova-numa-guard smoke test passed"
