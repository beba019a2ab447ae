"""Every module portmap loads on its ADD/DEL paths stays lean (DESIGN.md section 4):
the handlers import the apply layer lazily, so the layering test alone would
not see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FORBIDDEN = ("pyroute2", "jsonschema", "netaddr", "dataclasses", "typing", "subprocess")
RUNTIME = (
    "cni_plugins.plugins.portmap",
    "cni_plugins.portmap.apply",
    "cni_plugins.portmap.chains",
    "cni_plugins.portmap.nft",
    "cni_plugins.linux.iptables",
    "cni_plugins.linux.nftables",
    "cni_plugins.linux.netlink",
    "cni_plugins.linux.sysctl",
)


def test_add_and_del_paths_load_no_heavy_modules() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); "
        + "".join(f"import {m}; " for m in RUNTIME)
        + "print('\\n'.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(m for m in out if m.split(".")[0] in FORBIDDEN) == []
