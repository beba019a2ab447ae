"""A bridge left with another subnet's gateway (the node got a new flannel
subnet): replaced when no port is attached, refused with code 7 naming the
ports and the pods when some are.  The Go bridge refuses both (see
test_differential.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.bridge.conftest import Node, net_conf, ping
from tests.integration.bridge.test_bridge import addrs, link

pytestmark = pytest.mark.privileged


def subnet_conf(node: Node, third_octet: int) -> dict[str, Any]:
    conf = net_conf(node)
    conf["ipam"]["ranges"] = [[{"subnet": f"10.244.{third_octet}.0/24"}]]
    return conf


def v4(node: Node) -> set[str]:
    return {a for a in addrs(node.path, "cni0") if ":" not in a}


def test_unused_bridge_gets_the_new_gateway(node: Node, make_netns: Callable[[], str]) -> None:
    node.ip("link", "add", "cni0", "type", "bridge")
    node.ip("addr", "add", "10.244.7.1/24", "dev", "cni0")
    node.ip("addr", "add", "10.99.0.1/16", "dev", "cni0")
    pod = make_netns()
    proc = node.run("ADD", subnet_conf(node, 1), netns=pod)
    assert proc.returncode == 0, proc.stdout
    assert v4(node) == {"10.244.1.1/24"}  # every stale v4 address went
    stderr = proc.stderr.decode()
    assert (
        'replacing stale address 10.244.7.1/24, 10.99.0.1/16 of "cni0" by 10.244.1.1/24' in stderr
    )
    assert ping(pod, "10.244.1.1")


def test_bridge_with_pods_refuses_naming_ports_and_containers(
    node: Node, make_netns: Callable[[], str]
) -> None:
    old_pods = make_netns(), make_netns()
    veths = []
    for i, pod in enumerate(old_pods):
        result = node.add(subnet_conf(node, 1), pod, cid=f"old-pod-{i}")
        veths.append(result["interfaces"][1]["name"])
    before = node.reservations()
    new_pod = make_netns()
    proc = node.run("ADD", subnet_conf(node, 2), netns=new_pod, cid="new-pod")
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 7
    assert err["msg"] == (
        'failed to set bridge addr: "cni0" already has an IP address different from'
        " 10.244.2.1/24 (10.244.1.1/24), and pods still use it"
    )
    assert err["details"] == (
        f"attached ports: {', '.join(sorted(veths))};"
        " containers with addresses in the old subnet: old-pod-0, old-pod-1;"
        ' delete those pods, or the bridge "cni0" once they are gone, then retry'
    )
    # Nothing of the refused ADD stays; the old pods keep their gateway.
    assert link(new_pod, "eth0") is None
    assert node.reservations() == before
    assert v4(node) == {"10.244.1.1/24"}
    assert ping(old_pods[0], "10.244.1.1")

    # Once the old pods are gone the new subnet takes over.
    for i, pod in enumerate(old_pods):
        node.delete(subnet_conf(node, 1), pod, cid=f"old-pod-{i}")
    node.add(subnet_conf(node, 2), new_pod, cid="new-pod")
    assert v4(node) == {"10.244.2.1/24"}
    assert ping(new_pod, "10.244.2.1")


def test_force_address_still_replaces_with_ports_attached(
    node: Node, make_netns: Callable[[], str]
) -> None:
    node.add(subnet_conf(node, 1), make_netns(), cid="old-pod")
    node.add({**subnet_conf(node, 2), "forceAddress": True}, make_netns(), cid="new-pod")
    assert v4(node) == {"10.244.2.1/24"}
