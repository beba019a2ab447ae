"""portmap against the real kernel, exec'd inside a throwaway node namespace.

Traffic goes to real listeners in pod namespaces: from an outside host through
the node address, from another pod, from the pod itself (hairpin), from
127.0.0.1 on the node, over IPv4 and IPv6, with both backends.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cni_plugins.portmap.chains import dnat_chain_name
from tests.integration.portmap.conftest import (
    NODE_V4,
    NODE_V4_EXTRA,
    NODE_V6,
    NODE_V6_EXTRA,
    Pod,
    World,
)

pytestmark = pytest.mark.privileged

BACKENDS = ["iptables", "nftables"]


def tcp_udp(host_port: int, container_port: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"hostPort": host_port, "containerPort": container_port, "protocol": p, **extra}
        for p in ("tcp", "udp")
    ]


def leftovers(world: World, pod: Pod) -> list[str]:
    """Anything of ``pod`` left in the node's firewall."""
    chain = dnat_chain_name("cbr0", pod.cid)
    lines = [ln for fam in (4, 6) for ln in world.nat(fam) if chain in ln or pod.cid in ln]
    ruleset = world.nft_ruleset()
    lines += [ln for ln in ruleset.splitlines() if f'"{pod.cid}"' in ln]
    return lines


def answers(world: World, ns: str, host: str, port: int) -> dict[str, str | None]:
    return {proto: world.ask(ns, proto, host, port) for proto in ("tcp", "udp")}


@pytest.mark.parametrize("backend", BACKENDS)
def test_v4_dnat_from_outside_and_del(world: World, backend: str) -> None:
    pod = world.add_pod(listen=80)
    out = world.portmap_add(pod, tcp_udp(8080, 80), backend=backend)
    assert out == pod.result  # prevResult passes through unchanged
    got = answers(world, world.client, NODE_V4, 8080)
    assert got["tcp"] is not None and got["tcp"].startswith(pod.cid)
    assert got["udp"] is not None and got["udp"].startswith(pod.cid)
    # Not masqueraded: the pod sees the outside client's address.
    assert got["tcp"].split()[1] == "192.168.99.2"
    world.portmap_del(pod, tcp_udp(8080, 80), backend=backend)
    assert answers(world, world.client, NODE_V4, 8080) == {"tcp": None, "udp": None}
    assert leftovers(world, pod) == []
    world.portmap_del(pod, tcp_udp(8080, 80), backend=backend)  # twice is fine


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_paths_dual_stack(world: World, backend: str) -> None:
    """Outside host, another pod, the pod itself (hairpin), 127.0.0.1 on the node;
    IPv4 and IPv6 (no ::1, like the reference)."""
    pod = world.add_pod(v6=True, listen=80)
    other = world.add_pod(v6=True)
    world.portmap_add(pod, tcp_udp(8080, 80), backend=backend)
    assert pod.v4 is not None and pod.v6 is not None
    sources = {
        "outside": (world.client, [NODE_V4, NODE_V6]),
        "other pod": (other.ns, [NODE_V4, NODE_V6]),
        "hairpin": (pod.ns, [NODE_V4, NODE_V6]),
        "node localhost": (world.node.name, ["127.0.0.1"]),
    }
    failures = []
    for what, (ns, hosts) in sources.items():
        for host in hosts:
            for proto, reply in answers(world, ns, host, 8080).items():
                if reply is None or not reply.startswith(pod.cid):
                    failures.append(f"{what} -> {host}:8080/{proto}: {reply}")
    assert failures == []
    # Hairpin and localhost traffic is masqueraded (the pod answers its gateway).
    reply = world.ask(pod.ns, "tcp", NODE_V4, 8080)
    assert reply is not None and reply.split()[1] == "10.244.1.1"
    reply = world.ask(world.node.name, "tcp", "127.0.0.1", 8080)
    assert reply is not None and reply.split()[1] == "10.244.1.1"
    assert world.node.sh("cat", "/proc/sys/net/ipv4/conf/cni0/route_localnet").strip() == "1"
    world.portmap_del(pod, None, backend=backend)  # no mappings on DEL: still removed
    assert leftovers(world, pod) == []
    for ns, hosts in sources.values():
        for host in hosts:
            assert answers(world, ns, host, 8080) == {"tcp": None, "udp": None}


@pytest.mark.parametrize("backend", BACKENDS)
def test_host_ip_binds_to_that_address_only(world: World, backend: str) -> None:
    pod = world.add_pod(v6=True, listen=80)
    mappings = [
        *tcp_udp(9090, 80, hostIP=NODE_V4_EXTRA),
        *tcp_udp(9090, 80, hostIP=NODE_V6_EXTRA),
    ]
    world.portmap_add(pod, mappings, backend=backend)
    for host in (NODE_V4_EXTRA, NODE_V6_EXTRA):
        got = answers(world, world.client, host, 9090)
        assert all(r is not None and r.startswith(pod.cid) for r in got.values()), (host, got)
    for host in (NODE_V4, NODE_V6):
        assert answers(world, world.client, host, 9090) == {"tcp": None, "udp": None}
    world.portmap_del(pod, mappings, backend=backend)
    assert leftovers(world, pod) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_pods_different_ports(world: World, backend: str) -> None:
    pod1 = world.add_pod(listen=80)
    pod2 = world.add_pod(listen=80)
    world.portmap_add(pod1, tcp_udp(8081, 80), backend=backend)
    world.portmap_add(pod2, tcp_udp(8082, 80), backend=backend)
    for pod, port in ((pod1, 8081), (pod2, 8082)):
        got = answers(world, world.client, NODE_V4, port)
        assert all(r is not None and r.startswith(pod.cid) for r in got.values()), got
    world.portmap_del(pod1, None, backend=backend)
    assert answers(world, world.client, NODE_V4, 8081) == {"tcp": None, "udp": None}
    got = answers(world, world.client, NODE_V4, 8082)
    assert all(r is not None and r.startswith(pod2.cid) for r in got.values()), got
    assert leftovers(world, pod1) == []
    world.portmap_del(pod2, None, backend=backend)
    assert leftovers(world, pod2) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_readd_replaces_and_check(world: World, backend: str) -> None:
    pod = world.add_pod(v6=True, listen=80)
    world.portmap_add(pod, tcp_udp(8080, 80), backend=backend)
    world.portmap_add(pod, tcp_udp(8090, 80), backend=backend)  # re-ADD: new set only
    assert answers(world, world.client, NODE_V4, 8080) == {"tcp": None, "udp": None}
    got = answers(world, world.client, NODE_V4, 8090)
    assert all(r is not None for r in got.values()), got
    conf = world.portmap_conf(pod, tcp_udp(8090, 80), backend=backend)
    proc = world.run("CHECK", pod, conf)
    assert proc.returncode == 0, proc.stdout.decode()
    stale = world.portmap_conf(pod, tcp_udp(8080, 80), backend=backend)
    proc = world.run("CHECK", pod, stale)
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 999
    world.portmap_del(pod, None, backend=backend)
    proc = world.run("CHECK", pod, conf)
    assert proc.returncode == 1
    assert leftovers(world, pod) == []


def test_del_without_netns_or_prev_result(world: World) -> None:
    pod = world.add_pod(listen=80)
    world.portmap_add(pod, tcp_udp(8080, 80))
    conf = world.portmap_conf(pod, None)
    del conf["prevResult"]
    proc = world.run("DEL", pod, conf, netns=False)
    assert proc.returncode == 0 and proc.stdout == b"", proc.stdout
    assert leftovers(world, pod) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_gc_removes_invalid_attachments(world: World, backend: str) -> None:
    keep, drop = world.add_pod(), world.add_pod()
    for pod, port in ((keep, 8081), (drop, 8082)):
        world.portmap_add(pod, tcp_udp(port, 80), backend=backend)
    conf = {
        "cniVersion": "1.1.0",
        "name": "cbr0",
        "type": "portmap",
        "cni.dev/valid-attachments": [{"containerID": keep.cid, "ifname": "eth0"}],
    }
    proc = world.run("GC", keep, conf)
    assert proc.returncode == 0, proc.stdout.decode()
    assert leftovers(world, drop) == []
    assert leftovers(world, keep) != []


@pytest.mark.parametrize("backend", BACKENDS)
def test_status(world: World, backend: str) -> None:
    conf = {"cniVersion": "1.1.0", "name": "cbr0", "type": "portmap", "backend": backend}
    proc = world.run("STATUS", world.add_pod(), conf)
    assert proc.returncode == 0 and proc.stdout == b"", proc.stdout


def test_bad_config_touches_nothing(world: World) -> None:
    pod = world.add_pod()
    before = world.nat(4) + world.nat(6)
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([{"hostPort": 70000, "containerPort": 80}], "hostPort"),
        ([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}], "protocol"),
        ([{"hostPort": 80, "containerPort": 80, "hostIP": "nope"}], "hostIP"),
    ]
    for bad, key in cases:
        proc = world.run("ADD", pod, world.portmap_conf(pod, bad))
        err = json.loads(proc.stdout)
        assert err["code"] == 7 and key in err["msg"], err
    proc = world.run("ADD", pod, world.portmap_conf(pod, tcp_udp(80, 80), conditionsV4=["-s\n-A"]))
    assert json.loads(proc.stdout)["code"] == 7
    assert world.nat(4) + world.nat(6) == before
    assert "cni_hostport" not in world.nft_ruleset()


@pytest.mark.parametrize("backend", BACKENDS)
def test_udp_conntrack_flushed_on_add(world: World, backend: str) -> None:
    """plugins#123: a UDP flow that hit the node before the mapping existed keeps
    its (un-NATed) conntrack entry; ADD must flush it or the pod never sees it."""
    pod = world.add_pod(listen=80)
    # A real node has NAT rules already (kube-proxy, masquerading), so conntrack
    # tracks flows before portmap runs; a fresh namespace needs one to start it.
    world.node.sh(
        "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "203.0.113.0/24", "-j", "MASQUERADE"
    )
    assert world.ask(world.client, "udp", NODE_V4, 5353, sport=40001) is None
    assert "dport=5353" in world.node.sh("conntrack", "-L", "-p", "udp")
    world.portmap_add(
        pod, [{"hostPort": 5353, "containerPort": 80, "protocol": "udp"}], backend=backend
    )
    reply = world.ask(world.client, "udp", NODE_V4, 5353, sport=40001)
    assert reply is not None and reply.startswith(pod.cid)


@pytest.mark.parametrize("backend", BACKENDS)
def test_udp_conntrack_flushed_on_del(world: World, backend: str) -> None:
    """After DEL the old flow must not keep reaching the pod through its stale
    DNAT entry (the mappings come from the rules: none are sent on DEL here)."""
    pod = world.add_pod(listen=80)
    world.portmap_add(
        pod, [{"hostPort": 5353, "containerPort": 80, "protocol": "udp"}], backend=backend
    )
    assert world.ask(world.client, "udp", NODE_V4, 5353, sport=40002) is not None
    world.portmap_del(pod, None, backend=backend)
    assert world.ask(world.client, "udp", NODE_V4, 5353, sport=40002) is None
