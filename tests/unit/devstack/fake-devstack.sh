#!/bin/bash
# Stand-ins for the devstack functions that devstack/settings and
# devstack/plugin.sh call, behaving like devstack's own (inc/ini-config,
# functions-common, inc/python). Service and install calls are recorded,
# one line each, in $FAKE_DEVSTACK_LOG instead of being carried out.
# Needs FAKE_DEVSTACK_DIR, FAKE_PYTHON, FAKE_DEVSTACK_LOG and FAKE_BIN_DIR.

function _fake_ini {
    "$FAKE_PYTHON" "$FAKE_DEVSTACK_DIR/fake_ini.py" "$@"
}

function _fake_record {
    echo "$*" >> "$FAKE_DEVSTACK_LOG"
}

function iniset {
    [[ "$1" == "-sudo" ]] && shift
    _fake_ini set "$1" "$2" "$3" "$4"
}

function iniget {
    _fake_ini get "$1" "$2" "$3"
}

function iniget_multiline {
    _fake_ini get_multiline "$1" "$2" "$3"
}

function inidelete {
    [[ "$1" == "-sudo" ]] && shift
    _fake_ini delete "$1" "$2" "$3"
}

# Values are word-split, as devstack passes them on unquoted.
function iniset_multiline {
    [[ "$1" == "-sudo" ]] && shift
    local file=$1 section=$2 option=$3
    shift 3
    _fake_ini set_multiline "$file" "$section" "$option" $@
}

function iniadd {
    [[ "$1" == "-sudo" ]] && shift
    local file=$1 section=$2 option=$3
    shift 3
    local values
    values="$(iniget_multiline $file $section $option) $@"
    iniset_multiline $file $section $option $values
}

function die {
    shift
    echo "[ERROR] $*" >&2
    exit 1
}

function trueorfalse {
    local default=$1
    [[ -z "$2" ]] && die $LINENO "variable to normalize required"
    case "${!2:-}" in
        1 | [yY]es | YES | [tT]rue | TRUE) echo True ;;
        0 | [nN]o | NO | [fF]alse | FALSE) echo False ;;
        *) echo "$default" ;;
    esac
}

function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ",$ENABLED_SERVICES," == *",$service,"* ]] && return 0
    done
    return 1
}

function enable_service {
    local service
    for service in "$@"; do
        is_service_enabled $service || \
            ENABLED_SERVICES="${ENABLED_SERVICES:+$ENABLED_SERVICES,}$service"
    done
}

function define_plugin {
    _fake_record "define_plugin $*"
}

function get_python_exec_prefix {
    echo "$FAKE_BIN_DIR"
}

function setup_develop {
    _fake_record "setup_develop $*"
}

function pip_uninstall {
    _fake_record "pip_uninstall $*"
}

function restart_service {
    _fake_record "restart_service $*"
}

# devstack starts a systemd unit devstack@<service> only for an enabled
# service; the test reads the command line from the record.
function run_process {
    if is_service_enabled $1; then
        _fake_record "run_process $1|$2|$3"
    fi
}

function stop_process {
    if is_service_enabled $1; then
        _fake_record "stop_process $1"
    fi
}

# The plugin's sudo edits files the test owns.
function sudo {
    "$@"
}
