"""One module per binary.  ``BINARIES`` maps each binary's (upstream) name to its
module here; the build, the multicall entry, the tests and the benchmark use it."""

BINARIES = {
    "bridge": "bridge",
    "flannel": "flannel",
    "host-local": "host_local",
    "loopback": "loopback",
    "portmap": "portmap",
}
