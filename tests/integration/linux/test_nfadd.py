"""Rules added over netlink (``nfadd``/``nfrule``) against the ones iptables-nft
writes, inside throwaway namespaces (root only).

Two namespaces go through the same sequence of portmap ADDs, one with the
iptables-restore way and one with the netlink batch: ``iptables-save`` and
``nft list ruleset`` must print exactly the same text in both after every
step (chains, rules, their order, built-in chains created on demand).
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from cni_plugins.linux import ipmasq, nfprobe
from cni_plugins.portmap import apply, chains
from cni_plugins.portmap.config import PortMapConf
from cni_plugins.spec.ip import ip_interface

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.linux.conftest import TestNS

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces"),
]

ADDRESS = {4: "10.244.1.{}/24", 6: "fd00:10:244:1::{}/64"}


def _conf(mappings: list[dict[str, Any]], **extra: Any) -> PortMapConf:
    raw = {"name": "cbr0", "runtimeConfig": {"portMappings": mappings}, **extra}
    return PortMapConf.from_json(raw, iptables_usable=True)


def _layout(family: int, conf: PortMapConf, cid: str, host: int) -> list[chains.Chain]:
    address = ip_interface(ADDRESS[family].format(host))
    return chains.layout(conf, "cbr0", cid, address)


def _listing(t: TestNS, family: int) -> tuple[list[str], str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    save = subprocess.run(
        ["ip", "netns", "exec", t.name, tool, "-t", "nat"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    ruleset = subprocess.run(
        ["ip", "netns", "exec", t.name, "nft", "list", "ruleset"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [ln for ln in save.splitlines() if not ln.startswith("#")], ruleset


HOST = {4: "192.168.99.1", 6: "fd00:99::1"}


def _steps(family: int) -> list[tuple[str, PortMapConf, int]]:
    """(container, config, host part of its address): a node's first ADD, a
    second pod with a hostIP, the first one re-added with other ports, masqAll,
    no snat."""

    def tcp(host: int, port: int, **extra: Any) -> dict[str, Any]:
        return {"hostPort": host, "containerPort": port, "protocol": "tcp", **extra}

    udp = {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}
    return [
        ("first", _conf([tcp(8080, 80), udp]), 2),
        ("second", _conf([tcp(9090, 90, hostIP=HOST[family])]), 3),
        ("first", _conf([tcp(8081, 81)]), 2),
        ("third", _conf([tcp(7070, 70)], masqAll=True), 4),
        ("fourth", _conf([{**udp, "hostPort": 6060}], snat=False), 5),
    ]


@pytest.mark.parametrize("family", [4, 6])
def test_netlink_adds_what_the_restore_adds(make_netns: Callable[[], TestNS], family: int) -> None:
    restored, batched = make_netns(), make_netns()
    for cid, conf, host in _steps(family):
        layout = _layout(family, conf, cid, host)
        with restored.ns.entered():
            apply.restore_forward(family, layout)
        with batched.ns.entered(), nfprobe.Netfilter() as nf:
            assert apply.netlink_forward(nf, family, layout)
        assert _listing(batched, family) == _listing(restored, family), cid
    save, ruleset = _listing(batched, family)
    assert "fib daddr type local counter packets 0 bytes 0 jump CNI-HOSTPORT-DNAT" in ruleset
    entries = [ln for ln in save if ln.startswith("-A CNI-HOSTPORT-DNAT")]
    assert len(entries) == 4, entries  # the re-added first pod: its old two replaced


def test_an_unencodable_rule_leaves_it_to_the_restore(netns: TestNS) -> None:
    conf = _conf([{"hostPort": 8080, "containerPort": 80, "protocol": "sctp"}])
    with netns.ns.entered(), nfprobe.Netfilter() as nf:
        assert not apply.netlink_forward(nf, 4, _layout(4, conf, "c1", 2))
    _save, ruleset = _listing(netns, 4)
    assert ruleset == ""  # nothing was written, not even the shared chains


@pytest.mark.parametrize("family", [4, 6])
def test_ipmasq_netlink_adds_what_the_restore_adds(
    make_netns: Callable[[], TestNS], family: int
) -> None:
    """bridge's ipMasq: a first pod on a fresh node, a second, the first re-added
    (flushed and refilled, its jump not doubled)."""
    restored, batched = make_netns(), make_netns()
    for cid, host in (("first", 2), ("second", 3), ("first", 2)):
        address = ip_interface(ADDRESS[family].format(host))
        rules = ipmasq.iptables_rules([address], "cbr0", cid)[family]
        chain = ipmasq.chain_name("cbr0", cid)
        with restored.ns.entered():
            ipmasq.restore_setup(family, rules, chain)
        with batched.ns.entered(), nfprobe.Netfilter() as nf:
            assert ipmasq.netlink_setup(nf, family, rules, chain)
        assert _listing(batched, family) == _listing(restored, family), cid
    save, _ruleset = _listing(batched, family)
    assert sum(ln.startswith("-A POSTROUTING") for ln in save) == 2
    assert sum(ln.startswith("-A CNI-") for ln in save) == 4
