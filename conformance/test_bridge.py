"""bridge specifics (reference doc section 2.1): bridge + veth pair, addresses, gateway,
masquerade rules, and a clean DEL.  Runs in the node netns, pods in their own netns."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.checks import assert_result, assert_silent_success
from conformance.convert import to_canonical
from conformance.harness import Harness
from conformance.profiles import BRIDGE_NAME, CLUSTER_NET, GATEWAY, NETWORK_NAME
from conformance.versions import has_check

pytestmark = pytest.mark.plugins("bridge")


def _addresses(link: dict[str, Any] | None) -> set[str]:
    assert link is not None
    return {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])}


def test_add_wires_pod_to_bridge(harness: Harness, version: str) -> None:
    result = to_canonical(assert_result(harness.add(version), version, shape=False))
    node, pod = harness.world.node, harness.world.pod
    address = result["ips"][0]["address"]
    assert address.startswith("10.250.0."), result
    assert address in _addresses(pod.link("eth0")), "pod eth0 lacks the result address"
    assert f"{GATEWAY}/24" in _addresses(node.link(BRIDGE_NAME)), "gateway not on the bridge"
    bridged = node.ip_json("link", "show", "master", BRIDGE_NAME)
    assert len(bridged) == 1, f"expected one port on {BRIDGE_NAME}: {bridged}"
    if "interfaces" in result:  # not in 0.1.0/0.2.0 results
        names = [i["name"] for i in result["interfaces"]]
        assert names[0] == BRIDGE_NAME and names[1] == bridged[0]["ifname"], names
        assert result["interfaces"][2] == {**result["interfaces"][2], "name": "eth0"}
        assert result["interfaces"][2].get("sandbox") == pod.path


def test_masquerade_rules_added_and_removed(harness: Harness, version: str) -> None:
    result = to_canonical(assert_result(harness.add(version), version, shape=False))
    ip = result["ips"][0]["address"].split("/")[0]
    comment = f'name: \\"{NETWORK_NAME}\\" id: \\"{harness.container_id}\\"'
    rules = "\n".join(harness.world.node.nat_rules())
    assert f"-s {ip}/32" in rules and comment in rules, f"no masquerade rules:\n{rules}"
    assert_silent_success(harness.run("DEL", harness.config(version)))
    rules = "\n".join(harness.world.node.nat_rules())
    assert ip not in rules and harness.container_id not in rules, f"rules left:\n{rules}"


def test_del_removes_veth_and_releases_ip(harness: Harness, version: str) -> None:
    assert_result(harness.add(version), version, shape=False)
    assert_silent_success(harness.run("DEL", harness.config(version)))
    assert harness.world.pod.link("eth0") is None, "pod eth0 still exists"
    assert not harness.world.node.ip_json("link", "show", "master", BRIDGE_NAME)
    store = harness.world.tmp / "ipam" / NETWORK_NAME
    assert not [p for p in store.iterdir() if p.name[0].isdigit()], "IP not released"


@pytest.mark.requires(has_check, "CHECK exists from 0.4.0")
def test_check_with_gwless_routes(harness: Harness, version: str) -> None:
    """flannel-style IPAM routes without a gw must pass CHECK."""
    config = harness.config(version)
    config["ipam"]["routes"] = [{"dst": CLUSTER_NET}]
    add = harness.run("ADD", config)
    result = assert_result(add, version, shape=False)
    assert_silent_success(harness.run("CHECK", {**config, "prevResult": result}))
