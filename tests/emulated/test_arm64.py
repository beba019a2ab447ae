"""The arm64 binaries (build.py --arch arm64) run on this amd64 machine through
qemu-user: VERSION of each, host-local, loopback and flannel -> bridge ->
host-local ADD/DEL in namespaces the tests make.  scripts/arm64.sh runs this file under
scripts/with-binfmt-arm64.sh; elsewhere it skips unless an aarch64 binfmt
handler is enabled and dist/bin-arm64 (or ``CNI_DIST_BIN_ARM64``) is built.

Under qemu-user NS_GET_NSTYPE answers ENOSYS: these tests are what proves the
netns check's fallback (cni_plugins/linux/netns.py) in the real binaries.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_plugin

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CNI_DIST_BIN_ARM64", REPO / "dist" / "bin-arm64"))
BINFMT = Path("/proc/sys/fs/binfmt_misc")
AARCH64_MAGIC = "magic 7f454c460201010000000000000000000200b700"
PLUGINS = ("bridge", "flannel", "host-local", "loopback", "portmap")
EM_AARCH64 = 0xB7


def _aarch64_handler() -> bool:
    if not BINFMT.is_dir():
        return False
    for entry in BINFMT.iterdir():
        if entry.name in ("register", "status"):
            continue
        lines = entry.read_text().splitlines()
        if "enabled" in lines and AARCH64_MAGIC in lines:
            return True
    return False


def _missing() -> str | None:
    if not all((BIN / p).exists() for p in PLUGINS):
        return f"{BIN} not built (build.py --arch arm64)"
    if not _aarch64_handler():
        return "no aarch64 binfmt handler (run under scripts/with-binfmt-arm64.sh)"
    return None


MISSING = _missing()
if MISSING and os.environ.get("CNI_PLUGINS_ARM64_REQUIRED"):  # scripts/arm64.sh: no silent skip
    raise RuntimeError(MISSING)

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.binaries,
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
    pytest.mark.timeout(600),
]


def _env(cache: Path, netns: str = "", **extra: str) -> dict[str, str]:
    env = {
        "CNI_PLUGINS_CACHE_DIR": str(cache),
        "CNI_CONTAINERID": "arm64-pod",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(BIN),
    }
    env.update(extra)
    return env


def _ok(proc: Any) -> Any:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout) if proc.stdout.strip() else None


@pytest.mark.parametrize("plugin", PLUGINS)
def test_version(plugin: str, tmp_path: Path) -> None:
    header = (BIN / plugin).read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64
    conf = json.dumps({"cniVersion": "1.0.0"})
    result = _ok(run_plugin(BIN / plugin, "VERSION", conf, env=_env(tmp_path / "cache")))
    assert "1.0.0" in result["supportedVersions"]


def test_host_local_add_del(tmp_path: Path, netns: str) -> None:
    data = tmp_path / "ipam"
    conf = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "arm64",
            "type": "host-local",
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.99.0.0/24"}]],
                "dataDir": str(data),
            },
        }
    )
    env = _env(tmp_path / "cache", netns)
    result = _ok(run_plugin(BIN / "host-local", "ADD", conf, env=env))
    address = result["ips"][0]["address"]
    assert address.startswith("10.99.0.") and address.endswith("/24")
    lease = data / "arm64" / address.split("/")[0]
    assert lease.read_text().startswith("arm64-pod")
    _ok(run_plugin(BIN / "host-local", "DEL", conf, env=env))
    assert not lease.exists()


def test_loopback_refuses_a_file_as_netns(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-netns"
    bogus.write_text("x")
    conf = json.dumps({"cniVersion": "1.0.0", "name": "t", "type": "loopback"})
    proc = run_plugin(BIN / "loopback", "ADD", conf, env=_env(tmp_path / "cache", str(bogus)))
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 8 and "not a network namespace" in err["msg"], err


def _lo_up(name: str) -> bool:
    out = subprocess.run(
        ["ip", "-n", name, "-j", "link", "show", "lo"], capture_output=True, text=True, check=True
    ).stdout
    return "UP" in json.loads(out)[0]["flags"]


def test_loopback_add_del(tmp_path: Path, netns: str) -> None:
    """Needs setns(2) and rtnetlink through qemu-user."""
    name = Path(netns).name
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "down"], check=True)
    conf = json.dumps({"cniVersion": "1.0.0", "name": "t", "type": "loopback"})
    env = _env(tmp_path / "cache", netns, CNI_IFNAME="lo")
    result = _ok(run_plugin(BIN / "loopback", "ADD", conf, env=env))
    assert result["interfaces"][0]["name"] == "lo"
    assert _lo_up(name)
    _ok(run_plugin(BIN / "loopback", "DEL", conf, env=env))
    assert not _lo_up(name)


def test_flannel_bridge_add_del(tmp_path: Path, make_netns: Callable[[], str]) -> None:
    """flannel -> bridge -> host-local, run in a node namespace: setns, veth
    moves, sysctls and rtnetlink all through qemu-user."""
    node, pod = Path(make_netns()).name, make_netns()
    (tmp_path / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    conf = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "flannel",
            "subnetFile": str(tmp_path / "subnet.env"),
            "dataDir": str(tmp_path / "flannel"),
            "ipam": {"dataDir": str(tmp_path / "ipam")},
            "delegate": {"isDefaultGateway": True},
        }
    )
    env = _env(tmp_path / "cache", pod)
    result = _ok(run_plugin(BIN / "flannel", "ADD", conf, env=env, netns_exec=node))
    address = result["ips"][0]["address"]
    assert address.startswith("10.244.9.")
    shown = subprocess.run(
        ["ip", "-n", Path(pod).name, "-j", "addr", "show", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert address.split("/")[0] in shown
    lease = tmp_path / "ipam" / "cbr0" / address.split("/")[0]
    assert lease.exists()
    _ok(run_plugin(BIN / "flannel", "DEL", conf, env=env, netns_exec=node))
    gone = subprocess.run(
        ["ip", "-n", Path(pod).name, "link", "show", "eth0"], capture_output=True, check=False
    )
    assert gone.returncode != 0
    assert not lease.exists()
