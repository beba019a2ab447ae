"""``cnitool``: run a network configuration list against a network namespace,
the way containernetworking/cni's cnitool (and the libcni it is built on) does.

    conflist  find the list by name in NETCONFPATH, negotiate cniVersion
    cache     the result cache under /var/lib/cni/results, libcni's format
    runner    per-plugin stdin (name, cniVersion, prevResult, runtimeConfig), exec
    ops       ADD/CHECK/DEL/GC/STATUS over a list
    main      the command line
"""
