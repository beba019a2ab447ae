"""A throwaway world for portmap: a node, an outside host, pods with listeners.

    client ns  eth0 192.168.99.2/24 fd00:99::2/64
       |  veth
    node ns    eth0 192.168.99.1/24 (+ .10) fd00:99::1/64 (+ ::10)
               cni0 10.244.1.1/24 fd00:10:244:1::1/64 (our bridge, hairpin on)
       |
    pod ns     eth0 10.244.1.x, fd00:10:244:1::x   TCP + UDP listener on one port

Plugins run under ``ip netns exec <node>``.  Every namespace is made here and
deleted at teardown (which also removes its links, routes, iptables and nft
state), and every listener process is killed, also on failure.  Traffic only
goes to addresses inside these namespaces.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_plugin
from tests.integration.bridge.conftest import Node, default_ipam, net_conf, plugin_dir_for

NODE_V4 = "192.168.99.1"
NODE_V4_EXTRA = "192.168.99.10"
CLIENT_V4 = "192.168.99.2"
NODE_V6 = "fd00:99::1"
NODE_V6_EXTRA = "fd00:99::10"
CLIENT_V6 = "fd00:99::2"

# Answers "<name> <peer address>" on TCP and UDP, IPv4 and IPv6, at one port.
SERVER = r"""
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
def sock(kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    return s
def peer(addr):
    return addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
def tcp(s):
    s.listen(16)
    while True:
        c, a = s.accept()
        c.sendall(f"{name} {peer(a)}\n".encode())
        c.close()
def udp(s):
    while True:
        data, a = s.recvfrom(2048)
        s.sendto(f"{name} {peer(a)}".encode(), a)
t, u = sock(socket.SOCK_STREAM), sock(socket.SOCK_DGRAM)
for fn, s in ((tcp, t), (udp, u)):
    threading.Thread(target=fn, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Prints the server's answer; exit status 1 when none comes.
CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sport = int(sys.argv[4]) if len(sys.argv) > 4 else 0
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
for attempt in range(3):
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=2)
            data = s.recv(200)
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", sport))
            s.settimeout(1)
            s.sendto(b"hello", (host, port))
            data, _ = s.recvfrom(200)
        if data:
            print(data.decode().strip())
            sys.exit(0)
    except ConnectionRefusedError:
        sys.exit(1)
    except OSError:
        continue
sys.exit(1)
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


class Pod:
    __test__ = False

    def __init__(self, ns: str, cid: str, result: dict[str, Any]) -> None:
        self.ns = ns
        self.path = f"/run/netns/{ns}"
        self.cid = cid
        self.result = result
        ips = [ip["address"].split("/")[0] for ip in result["ips"]]
        self.v4 = next((ip for ip in ips if ":" not in ip), None)
        self.v6 = next((ip for ip in ips if ":" in ip), None)


class World:
    """A node with an outside client; pods get our bridge and then portmap."""

    __test__ = False

    def __init__(self, tmp: Path, script_bin_dir: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.tmp = tmp
        self.portmap = script_bin_dir / "portmap"
        self.namespaces: list[str] = []
        self.servers: list[subprocess.Popen[str]] = []
        self.pods: list[Pod] = []
        self.script_bin_dir = script_bin_dir

    def setup(self) -> None:
        node_name = self.netns("node")
        script_bin_dir = self.script_bin_dir
        tmp = self.tmp
        self.node = Node(node_name, tmp, plugin_dir_for(tmp, script_bin_dir, default_ipam()))
        self.client = self.netns("client")
        sh(
            "ip",
            "-n",
            node_name,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            self.client,
        )
        for ns, v4, v6 in ((node_name, NODE_V4, NODE_V6), (self.client, CLIENT_V4, CLIENT_V6)):
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", node_name, "addr", "add", f"{NODE_V4_EXTRA}/24", "dev", "eth0")
        sh("ip", "-n", node_name, "addr", "add", f"{NODE_V6_EXTRA}/64", "dev", "eth0", "nodad")

    def netns(self, role: str) -> str:
        name = f"cnit-pm{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait(timeout=10)
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)

    # -- plugins --------------------------------------------------------------------------------

    def bridge_conf(self, *, v6: bool = False) -> dict[str, Any]:
        return net_conf(self.node, v6=v6, hairpinMode=True, isDefaultGateway=True)

    def add_pod(self, *, v6: bool = False, listen: int | None = None) -> Pod:
        n = len(self.pods) + 1
        ns = self.netns(f"pod{n}")
        cid = f"pod{n}-{self.tag}"
        result = self.node.add(self.bridge_conf(v6=v6), f"/run/netns/{ns}", cid=cid)
        pod = Pod(ns, cid, result)
        self.pods.append(pod)
        if listen is not None:
            self.serve(pod, listen)
        return pod

    def portmap_conf(
        self, pod: Pod, mappings: list[dict[str, Any]] | None, **extra: Any
    ) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "prevResult": pod.result,
            **extra,
        }
        if mappings is not None:
            conf["runtimeConfig"] = {"portMappings": mappings}
        return conf

    def run(
        self,
        command: str,
        pod: Pod,
        conf: dict[str, Any],
        *,
        binary: Path | None = None,
        netns: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        env = {
            "CNI_CONTAINERID": pod.cid,
            "CNI_NETNS": pod.path if netns else "",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.node.plugin_dir),
        }
        exe = binary if binary is not None else self.portmap
        return run_plugin(exe, command, json.dumps(conf), env=env, netns_exec=self.node.name)

    def portmap_add(self, pod: Pod, mappings: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        proc = self.run("ADD", pod, self.portmap_conf(pod, mappings, **extra))
        assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    def portmap_del(self, pod: Pod, mappings: list[dict[str, Any]] | None, **extra: Any) -> None:
        proc = self.run("DEL", pod, self.portmap_conf(pod, mappings, **extra))
        assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
        assert proc.stdout == b""

    # -- traffic --------------------------------------------------------------------------------

    def serve(self, pod: Pod, port: int) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", pod.ns, sys.executable, "-c", SERVER, pod.cid, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.servers.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    def ask(self, ns: str, proto: str, host: str, port: int, sport: int = 0) -> str | None:
        """The listener's answer ("<cid> <peer>") to a request from ``ns`` (UDP from
        source port ``sport`` if given), or None."""
        argv = [sys.executable, "-c", CLIENT, proto, host, str(port), str(sport)]
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    # -- node state -----------------------------------------------------------------------------

    def nat(self, family: int = 4) -> list[str]:
        return self.node.nat(family)

    def nft_ruleset(self) -> str:
        return self.node.sh("nft", "list", "ruleset")


@pytest.fixture
def make_world(tmp_path: Path, script_bin_dir: Path) -> Iterator[Callable[[], World]]:
    made: list[World] = []

    def make() -> World:
        sub = tmp_path / f"world{len(made)}"
        sub.mkdir()
        world = World(sub, script_bin_dir)
        made.append(world)
        world.setup()
        return world

    try:
        yield make
    finally:
        for world in made:
            world.close()


@pytest.fixture
def world(make_world: Callable[[], World]) -> World:
    return make_world()
