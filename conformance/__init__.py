"""Black-box CNI conformance suite.

Point it at a directory of CNI plugin binaries (``python -m conformance --bin-dir DIR``)
and it tells you, per plugin and per spec version the plugin reports, whether the
binaries follow the CNI specification 0.1.0-1.1.0.  It only execs binaries with an
environment and stdin, and inspects stdout/stderr/exit status plus what they change in
throwaway network namespaces, files and the firewall.  It deliberately imports nothing
from ``cni_plugins``: the suite must judge our plugins and the Go reference alike.
"""
