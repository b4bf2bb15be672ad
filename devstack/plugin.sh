#!/bin/bash
# devstack plugin of nova-numa-guard: dispatch only, the work is in
# lib/nova-numa-guard.

source $(dirname ${BASH_SOURCE[0]})/lib/nova-numa-guard

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    install_nova_numa_guard
elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    configure_nova_numa_guard
elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
    start_nova_numa_guard
elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
    configure_tempest_nova_numa_guard
fi

if [[ "$1" == "unstack" ]]; then
    unconfigure_nova_numa_guard
fi

if [[ "$1" == "clean" ]]; then
    cleanup_nova_numa_guard
fi
