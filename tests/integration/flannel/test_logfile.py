"""The per-invocation log through a real flannel -> bridge -> host-local chain.

One node namespace and one pod namespace per test; the binaries are ours
(built, else the script plugins), and on "the Go node" Debian's Go bridge and
host-local, which ignore ``logFile``: only flannel's line then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.spec import logfile
from tests.conftest import GO_PLUGINS, built_bin_dir, run_plugin

pytestmark = pytest.mark.privileged


def chain(tmp: Path, side: str, script_bin_dir: Path) -> Path:
    ours = built_bin_dir() or script_bin_dir
    if side == "ours":
        return ours
    if not (GO_PLUGINS / "bridge").exists():
        pytest.skip("needs Debian's Go plugins")
    go = tmp / "go-node-bin"
    go.mkdir()
    os.symlink(ours / "flannel", go / "flannel")
    for name in ("bridge", "host-local"):
        os.symlink(GO_PLUGINS / name, go / name)
    return go


@pytest.mark.parametrize("side", ["ours", "go"])
def test_one_line_per_plugin_and_verb(
    tmp_path: Path, make_netns: Callable[[], str], script_bin_dir: Path, side: str
) -> None:
    bin_dir = chain(tmp_path, side, script_bin_dir)
    node, pod = make_netns(), make_netns()
    log = tmp_path / "cni.log"
    (tmp_path / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
    )
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "flannel",
        "subnetFile": str(tmp_path / "subnet.env"),
        "dataDir": str(tmp_path / "flannel"),
        "ipam": {"dataDir": str(tmp_path / "ipam")},
        "LogFile": str(log),  # keys match as Go's do
    }
    env = {
        "CNI_CONTAINERID": "log-pod",
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
        "CNI_PLUGINS_CACHE_DIR": str(tmp_path / "bundle-cache"),
    }
    for command in ("ADD", "DEL"):
        proc = run_plugin(
            bin_dir / "flannel", command, json.dumps(conf), env=env, netns_exec=Path(node).name
        )
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    # Delegates finish first: host-local inside bridge inside flannel.
    plugins = ["host-local", "bridge", "flannel"] if side == "ours" else ["flannel"]
    assert [(e["plugin"], e["verb"]) for e in entries] == [
        *((p, "ADD") for p in plugins),
        *((p, "DEL") for p in plugins),
    ]
    for e in entries:
        assert (e["containerID"], e["netns"], e["ifname"], e["level"]) == (
            "log-pod",
            pod,
            "eth0",
            "info",
        )
        if e["verb"] == "ADD":
            assert e["addresses"] == ["10.244.5.2/24"]
    assert logfile.last_failures(str(log)) == []

    # A failure: flanneld's lease is gone (code 11), logged at the error level.
    (tmp_path / "subnet.env").unlink()
    conf["logLevel"] = "error"
    proc = run_plugin(
        bin_dir / "flannel", "ADD", json.dumps(conf), env=env, netns_exec=Path(node).name
    )
    assert proc.returncode == 1
    [failure] = logfile.last_failures(str(log))
    assert (failure["plugin"], failure["code"]) == ("flannel", 11)
    assert failure["msg"] == json.loads(proc.stdout)["msg"]
    assert len(log.read_text().splitlines()) == len(entries) + 1
