"""bridge ipMasq's nftables backend with no ``nft`` and no ``iptables*`` installed.

ADD, CHECK and DEL read and change ``inet cni_plugins_masquerade`` over
nf_tables netlink (linux.nftnl).  The real programs are hidden (bind-mounted
/dev/null in a mount namespace of each run) and the PATH holds only logging
wrappers that fail; the test runs ``nft`` itself to see the ruleset, which must
be exactly what nft makes of the reference's text (ipmasq.nft_setup_commands).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.linux import ipmasq
from cni_plugins.spec.ip import ip_interface
from tests.conftest import unpack_cache_dir
from tests.integration.bridge.conftest import Node, net_conf
from tests.integration.portmap.test_nft_paths import IP, MOUNT, SH, UNSHARE, installed_tools
from tests.integration.portmap.test_nft_paths import refusing_wrappers as wrappers_in

pytestmark = pytest.mark.privileged
TABLE = ["inet", ipmasq.NFT_TABLE]
REPO = Path(__file__).resolve().parents[3]


def run(
    node: Node, command: str, conf: dict[str, Any], netns: str, cid: str, *, path: Path
) -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": str(path),
        "CNI_COMMAND": command,
        "CNI_PLUGINS_CACHE_DIR": unpack_cache_dir(),
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(node.plugin_dir),
    }
    hide = " ".join(f"{MOUNT} --bind /dev/null {t} &&" for t in installed_tools())
    exe = str((node.plugin_dir / "bridge").resolve())
    argv = [IP, "netns", "exec", node.name, UNSHARE, "-m", SH, "-c", f'{hide} exec "$0"', exe]
    data = json.dumps(conf).encode()
    return subprocess.run(argv, check=False, input=data, env=env, capture_output=True, timeout=60)


def nft_reference(result: dict[str, Any], cid: str) -> str:
    """``nft list table`` after nft ran the reference's text in a throwaway namespace."""
    ns = "cnit-masqref"
    addresses = [ip_interface(ip["address"]) for ip in result["ips"]]
    script = "".join(c + "\n" for c in ipmasq.nft_setup_commands(addresses, "cbr0", "eth0", cid))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        exec_in = ["ip", "netns", "exec", ns]
        subprocess.run([*exec_in, "nft", "-f", "-"], input=script.encode(), check=True)
        return subprocess.run(
            [*exec_in, "nft", "list", "table", *TABLE], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


def test_add_check_del_without_nft_or_iptables(
    node: Node, make_netns: Callable[[], str], tmp_path: Path
) -> None:
    path, logged = wrappers_in(tmp_path)
    conf = net_conf(node, v6=True, ipMasq=True, ipMasqBackend="nftables")
    pod = make_netns()
    proc = run(node, "ADD", conf, pod, "nftpod", path=path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    result = json.loads(proc.stdout)
    assert not logged.exists(), logged.read_text()
    assert node.sh("nft", "list", "table", *TABLE) == nft_reference(result, "nftpod")
    check = dict(conf, prevResult=result)
    proc = run(node, "CHECK", check, pod, "nftpod", path=path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    # "auto" (no ipMasqBackend) with neither iptables nor nft: nftables, over netlink.
    for wrapper in path.iterdir():
        wrapper.unlink()  # nothing installed at all now (the wrappers count as iptables)
    auto = net_conf(node, v6=True, ipMasq=True)
    other = make_netns()
    proc = run(node, "ADD", auto, other, "autopod", path=path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "id: autopod" in node.sh("nft", "list", "table", *TABLE)
    # DEL of the first: its rules go, the other's stay; its CHECK now fails.
    proc = run(node, "DEL", conf, pod, "nftpod", path=path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    table = node.sh("nft", "list", "table", *TABLE)
    assert "id: nftpod" not in table and table.count("id: autopod") == 2
    proc = run(node, "DEL", auto, "", "autopod", path=path)  # no netns, no backend: found anyway
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "id: " not in node.sh("nft", "list", "table", *TABLE)
    assert not logged.exists(), logged.read_text()


def test_rules_nft_wrote_are_deleted(
    node: Node, make_netns: Callable[[], str], tmp_path: Path
) -> None:
    """The reference's text applied by nft itself (as Go's plugin writes it):
    our DEL and GC find the attachment's rules by their comment and delete
    them by handle over netlink, no nft run."""
    path, logged = wrappers_in(tmp_path)
    conf = net_conf(node, v6=True, ipMasq=True, ipMasqBackend="nftables")
    pod = make_netns()
    result = json.loads(run(node, "ADD", conf, pod, "gopod", path=path).stdout)
    proc = run(node, "DEL", conf, pod, "gopod", path=path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "id: gopod" not in node.sh("nft", "list", "table", *TABLE)
    addresses = [ip_interface(ip["address"]) for ip in result["ips"]]
    commands = ipmasq.nft_setup_commands(addresses, "cbr0", "eth0", "gopod")
    script = "".join(c + "\n" for c in commands)
    subprocess.run(
        ["ip", "netns", "exec", node.name, "nft", "-f", "-"], input=script.encode(), check=True
    )
    assert node.sh("nft", "list", "table", *TABLE).count("id: gopod") == 2
    # GC (ipmasq.gc, run in the node namespace) keeping gopod keeps them ...
    gc = "import sys; from cni_plugins.linux import ipmasq; ipmasq.gc('cbr0', eval(sys.argv[1]))"
    in_node = ["ip", "netns", "exec", node.name, sys.executable, "-c", gc]
    subprocess.run([*in_node, "[('gopod', 'eth0')]"], check=True, cwd=REPO)
    assert node.sh("nft", "list", "table", *TABLE).count("id: gopod") == 2
    proc = run(node, "DEL", conf, "", "gopod", path=path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "id: gopod" not in node.sh("nft", "list", "table", *TABLE)
    # ... and keeping nothing removes them.
    subprocess.run(
        ["ip", "netns", "exec", node.name, "nft", "-f", "-"], input=script.encode(), check=True
    )
    subprocess.run([*in_node, "[]"], check=True, cwd=REPO)
    assert "id: gopod" not in node.sh("nft", "list", "table", *TABLE)
    assert not logged.exists(), logged.read_text()
