"""Fixtures for bridge integration tests: a throwaway "node" namespace per test.

Every bridge, veth and firewall rule lives inside a test-made node namespace:
the plugin runs under ``ip netns exec <node>`` and gets the pod namespace path
as CNI_NETNS.  Deleting the node namespace at teardown removes all of it (links,
routes, iptables and nftables state are per namespace), also on failure.  The
root namespace is never touched.  IPAM is host-local: Debian's Go binary by
default (a known-good delegate), ours with ``BRIDGE_TEST_IPAM=ours`` or where a
test needs CNI 1.1.0 (STATUS/GC).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GO_PLUGINS, run_plugin

PING = r"""
import os, socket, struct, sys, time
dst = sys.argv[1]
v6 = ":" in dst
if v6:
    fam, proto, typ = socket.AF_INET6, socket.IPPROTO_ICMPV6, 128
else:
    fam, proto, typ = socket.AF_INET, socket.IPPROTO_ICMP, 8
s = socket.socket(fam, socket.SOCK_RAW, proto)
s.settimeout(1.0)
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
for attempt in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
    pkt = struct.pack("!BBHHH", typ, 0, 0, os.getpid() & 0xFFFF, attempt) + b"cni-test"
    if not v6:
        pkt = pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]
    s.sendto(pkt, (dst, 0))
    try:
        while True:
            data = s.recv(2048)
            icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
            if icmp[0] == (129 if v6 else 0):
                sys.exit(0)
    except socket.timeout:
        continue
sys.exit(1)
"""


class Node:
    """A node namespace with helpers to run the bridge plugin in it."""

    __test__ = False

    def __init__(self, name: str, tmp: Path, plugin_dir: Path) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"
        self.tmp = tmp
        self.plugin_dir = plugin_dir  # CNI_PATH: bridge + host-local
        self.data_dir = tmp / "ipam-data"

    def sh(self, *argv: str, check: bool = True) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], check=check, capture_output=True, text=True
        ).stdout

    def ip(self, *args: str) -> str:
        return subprocess.run(
            ["ip", "-n", self.name, *args], check=True, capture_output=True, text=True
        ).stdout

    def nat(self, family: int = 4) -> list[str]:
        """Our lines of ``iptables-save -t nat`` (chains and rules naming CNI-)."""
        tool = "iptables-save" if family == 4 else "ip6tables-save"
        return [ln for ln in self.sh(tool, "-t", "nat").splitlines() if "CNI-" in ln]

    def run(
        self,
        command: str,
        conf: dict[str, Any],
        *,
        netns: str = "",
        cid: str = "pod1",
        ifname: str = "eth0",
        env: dict[str, str] | None = None,
        binary: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        full = {
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.plugin_dir),
            **(env or {}),
        }
        exe = binary if binary is not None else self.plugin_dir / "bridge"
        return run_plugin(exe, command, json.dumps(conf), env=full, netns_exec=self.name)

    def add(self, conf: dict[str, Any], netns: str, **kw: Any) -> dict[str, Any]:
        proc = self.run("ADD", conf, netns=netns, **kw)
        assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def delete(self, conf: dict[str, Any], netns: str = "", **kw: Any) -> None:
        proc = self.run("DEL", conf, netns=netns, **kw)
        assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
        assert proc.stdout == b""

    def reservations(self, network: str = "cbr0") -> list[str]:
        d = self.data_dir / network
        if not d.exists():
            return []
        return sorted(
            p.name for p in d.iterdir() if p.name != "lock" and not p.name.startswith("last_")
        )


def ping(netns_path: str, dst: str, attempts: int = 5) -> bool:
    """ICMP echo from inside ``netns_path`` (no ping binary needed)."""
    name = Path(netns_path).name
    proc = subprocess.run(
        ["ip", "netns", "exec", name, sys.executable, "-c", PING, dst, str(attempts)],
        check=False,
        capture_output=True,
        timeout=30,
    )
    return proc.returncode == 0


def plugin_dir_for(tmp: Path, script_bin_dir: Path, ipam: str) -> Path:
    d = tmp / f"cni-bin-{ipam}"
    d.mkdir(exist_ok=True)
    (d / "bridge").symlink_to(script_bin_dir / "bridge")
    if ipam == "go":
        (d / "host-local").symlink_to(GO_PLUGINS / "host-local")
    else:
        (d / "host-local").symlink_to(script_bin_dir / "host-local")
    return d


def default_ipam() -> str:
    wanted = os.environ.get("BRIDGE_TEST_IPAM", "go")
    if wanted == "go" and not (GO_PLUGINS / "host-local").exists():
        return "ours"
    return wanted


@pytest.fixture
def make_node(tmp_path: Path, script_bin_dir: Path) -> Iterator[Callable[..., Node]]:
    made: list[str] = []

    def make(ipam: str | None = None) -> Node:
        name = f"cnib-node-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        sub = tmp_path / name
        sub.mkdir()
        return Node(name, sub, plugin_dir_for(sub, script_bin_dir, ipam or default_ipam()))

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def node(make_node: Callable[..., Node]) -> Node:
    return make_node()


def net_conf(node: Node, *, v4: bool = True, v6: bool = False, **extra: Any) -> dict[str, Any]:
    """A flannel-like bridge config with host-local ranges in the node's data dir."""
    ranges = []
    routes = []
    if v4:
        ranges.append([{"subnet": "10.244.1.0/24"}])
        routes.append({"dst": "10.244.0.0/16"})
    if v6:
        ranges.append([{"subnet": "fd00:10:244:1::/64"}])
        routes.append({"dst": "fd00:10:244::/48"})
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": True,
        "ipam": {
            "type": "host-local",
            "ranges": ranges,
            "routes": routes,
            "dataDir": str(node.data_dir),
        },
    }
    conf.update(extra)
    return conf
