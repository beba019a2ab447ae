"""One module per binary.  ``BINARIES`` maps each plugin binary's (upstream) name
to its module here; the build, the multicall entry, the tests, the conformance
suite and the benchmark use it.  ``TOOLS`` maps the operator tools shipped from
the same payload to their entry modules (each has a ``main()``): they are not
plugins, so nothing that iterates over plugins sees them."""

BINARIES = {
    "bridge": "bridge",
    "flannel": "flannel",
    "host-local": "host_local",
    "loopback": "loopback",
    "portmap": "portmap",
}

TOOLS = {
    "cnitool": "cni_plugins.tools.cnitool.main",
    "cni-doctor": "cni_plugins.tools.doctor.main",
}
