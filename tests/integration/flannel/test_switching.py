"""Switching a node between the Go binaries and ours with a pod running.

Debian ships no Go flannel, so "the Go node" is our flannel in front of Debian's
Go bridge and host-local (what flannel delegates to); the saved delegate config
in dataDir is what must carry over.  ADD on one side, DEL on the other: the
node must end clean either way.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GO_PLUGINS, built_bin_dir, run_plugin

pytestmark = [pytest.mark.privileged, pytest.mark.reference]


def bin_dirs(tmp: Path, ours: Path) -> dict[str, Path]:
    go = tmp / "go-node-bin"
    go.mkdir()
    os.symlink(ours / "flannel", go / "flannel")
    for name in ("bridge", "host-local"):
        os.symlink(GO_PLUGINS / name, go / name)
    return {"ours": ours, "go": go}


@pytest.mark.parametrize(("add_with", "del_with"), [("ours", "go"), ("go", "ours")])
def test_pod_added_by_one_side_is_deleted_cleanly_by_the_other(
    tmp_path: Path,
    make_netns: Callable[[], str],
    script_bin_dir: Path,
    add_with: str,
    del_with: str,
) -> None:
    dirs = bin_dirs(tmp_path, built_bin_dir() or script_bin_dir)
    node, pod = make_netns(), make_netns()
    node_name = Path(node).name
    (tmp_path / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
    )
    conf = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "flannel",
            "subnetFile": str(tmp_path / "subnet.env"),
            "dataDir": str(tmp_path / "flannel"),
            "ipam": {"dataDir": str(tmp_path / "ipam")},
            "delegate": {"hairpinMode": True, "isDefaultGateway": True},
        }
    )

    def cni(command: str, side: str) -> subprocess.CompletedProcess[bytes]:
        env = {
            "CNI_CONTAINERID": "switch-pod",
            "CNI_NETNS": pod,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(dirs[side]),
        }
        return run_plugin(dirs[side] / "flannel", command, conf, env=env, netns_exec=node_name)

    added = cni("ADD", add_with)
    assert added.returncode == 0, added.stdout.decode() + added.stderr.decode()
    nat = subprocess.run(
        ["ip", "netns", "exec", node_name, "iptables-save", "-t", "nat"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert ":CNI-" in nat

    deleted = cni("DEL", del_with)
    assert deleted.returncode == 0, deleted.stdout.decode() + deleted.stderr.decode()

    links = subprocess.run(
        ["ip", "-n", node_name, "-o", "link"], check=True, capture_output=True, text=True
    ).stdout
    assert "veth" not in links
    pod_links = subprocess.run(
        ["ip", "-n", Path(pod).name, "-o", "link"], check=True, capture_output=True, text=True
    ).stdout
    assert "eth0" not in pod_links
    nat = subprocess.run(
        ["ip", "netns", "exec", node_name, "iptables-save", "-t", "nat"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert ":CNI-" not in nat
    assert list((tmp_path / "flannel").iterdir()) == []
    left = [
        p.name
        for p in (tmp_path / "ipam" / "cbr0").iterdir()
        if p.name != "lock" and not p.name.startswith("last_reserved_ip")
    ]
    assert left == []
