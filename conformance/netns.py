"""Throwaway network namespaces: a "node" namespace where bridges and firewall rules
live, and "pod" namespaces inside which plugins configure interfaces.

Every namespace is named ``cnf-<random>`` and is deleted in ``World.close`` even when a
test fails; deleting the node namespace also removes its bridges, veth ends and
iptables rules, so nothing leaks into the root namespace.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/run/netns")
PREFIX = "cnf-"


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


@dataclass(frozen=True, slots=True)
class Netns:
    name: str

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)

    def exists(self) -> bool:
        return bool(self.name) and Path(self.path).exists()

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside this namespace."""
        return _run(["ip", "netns", "exec", self.name, *argv], check=check)

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        """``ip -j`` output for this namespace (e.g. ``ip_json("addr", "show", "lo")``)."""
        proc = _run(["ip", "-j", "-n", self.name, *args], check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            return []
        data: list[dict[str, Any]] = json.loads(proc.stdout)
        return data

    def link(self, name: str) -> dict[str, Any] | None:
        """The ``ip -j addr show`` record of a link, or None when it does not exist."""
        links = self.ip_json("addr", "show", "dev", name)
        return links[0] if links else None

    def nat_rules(self) -> list[str]:
        """``iptables-save -t nat`` in this namespace, counters and comments lines stripped."""
        proc = self.run("iptables-save", "-t", "nat", check=False)
        rules = []
        for line in proc.stdout.splitlines():
            if line.startswith("#"):
                continue
            # ":CHAIN POLICY [pkts:bytes]" -> ":CHAIN POLICY"
            rules.append(line.rsplit(" [", 1)[0] if line.startswith(":") else line)
        return rules


def create_netns() -> Netns:
    ns = Netns(PREFIX + secrets.token_hex(5))
    _run(["ip", "netns", "add", ns.name])
    # lo up like a real pod sandbox / host would have it; plugins (loopback aside)
    # expect it, and portmap's localhost rules only make sense with it.
    _run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
    return ns


def delete_netns(ns: Netns) -> None:
    if ns.exists():
        _run(["ip", "netns", "del", ns.name], check=False)


@dataclass
class World:
    """One test's private universe: a node netns, pod netns and a temp directory."""

    node: Netns
    tmp: Path
    pods: list[Netns] = field(default_factory=list)

    def new_pod(self) -> Netns:
        pod = create_netns()
        # A fresh pod sandbox has lo down; the loopback plugin is what brings it up.
        _run(["ip", "-n", pod.name, "link", "set", "lo", "down"])
        self.pods.append(pod)
        return pod

    @property
    def pod(self) -> Netns:
        """The first pod namespace, created on demand."""
        return self.pods[0] if self.pods else self.new_pod()

    def close(self) -> None:
        for pod in self.pods:
            delete_netns(pod)
        delete_netns(self.node)
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def world() -> Iterator[World]:
    """A fresh World, always torn down (also when the body raises)."""
    tmp = Path(tempfile.mkdtemp(prefix="cnf-"))
    w = World(node=Netns(""), tmp=tmp)
    try:
        w.node = create_netns()
        yield w
    finally:
        w.close()
