"""Config keys as Go callers write them (reference doc: Go's encoding/json matches object
keys to struct fields case-insensitively).

containerd's CRI plugin (the kubelet path) hands runtimeConfig to libcni through go-cni,
whose structs carry no JSON tags: ``{"HostPort": 18080, "ContainerPort": 80, ...}`` and
dns as ``{"Servers": [...], "Searches": [...], "Options": [...]}``.  The Go plugins decode
their config into structs, so these keys and mixed-case user keys (``"IsGateway"``,
``"IPMasq"``, ``"Ranges"``, ``"ResolvConf"``) work there; every plugin must accept them.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.checks import assert_result, assert_silent_success
from conformance.convert import to_canonical
from conformance.harness import Harness
from conformance.profiles import (
    BRIDGE_NAME,
    GATEWAY,
    HOST_PORT,
    NETWORK_NAME,
    SUBNET,
    synthetic_prev_result,
)
from conformance.versions import has_check

TARGET = "10.250.0.2:80"
# go-cni's PortMapping and DNS, marshalled by encoding/json without tags.
GO_CNI_PORT_MAPPINGS = [
    {"HostPort": HOST_PORT, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}
]
GO_CNI_DNS = {"Servers": ["10.96.0.10"], "Searches": ["svc.cluster.local"], "Options": ["ndots:5"]}


def _firewall(harness: Harness) -> str:
    """The node namespace's nat rules and nftables ruleset."""
    node = harness.world.node
    nft = node.run("nft", "list", "ruleset", check=False).stdout
    return "\n".join(node.nat_rules()) + "\n" + nft


def _go_cni_portmap_config(harness: Harness, version: str) -> dict[str, Any]:
    return harness.config(
        version,
        capabilities={"portMappings": True, "dns": True},
        runtimeConfig={"portMappings": GO_CNI_PORT_MAPPINGS, "dns": GO_CNI_DNS},
    )


def _capitalised(obj: Any) -> Any:
    """Every key with an uppercase first letter ("ips" -> "Ips"), as a Go caller
    that marshals untagged structs would write them."""
    if isinstance(obj, dict):
        return {k[:1].upper() + k[1:]: _capitalised(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_capitalised(v) for v in obj]
    return obj


def _ips(outcome_result: dict[str, Any]) -> list[str]:
    return [ip["address"] for ip in to_canonical(outcome_result).get("ips", [])]


# -- portmap --------------------------------------------------------------------------------------


@pytest.mark.plugins("portmap")
def test_go_cni_port_mappings_add_and_del(harness: Harness, version: str) -> None:
    """go-cni's runtimeConfig: the DNAT rules appear on ADD and go away on DEL."""
    config = _go_cni_portmap_config(harness, version)
    assert_result(harness.run("ADD", config), version, shape=False)
    rules = _firewall(harness)
    assert TARGET in rules and str(HOST_PORT) in rules, f"no DNAT to {TARGET}:\n{rules}"
    assert_silent_success(harness.run("DEL", config))
    rules = _firewall(harness)
    assert TARGET not in rules, f"DNAT to {TARGET} left after DEL:\n{rules}"


@pytest.mark.plugins("portmap")
@pytest.mark.requires(has_check, "CHECK exists from 0.4.0")
def test_go_cni_port_mappings_check(harness: Harness, version: str) -> None:
    config = _go_cni_portmap_config(harness, version)
    result = assert_result(harness.run("ADD", config), version, shape=False)
    assert_silent_success(harness.run("CHECK", {**config, "prevResult": result}))
    assert_silent_success(harness.run("DEL", {**config, "prevResult": result}))
    assert TARGET not in _firewall(harness)


@pytest.mark.plugins("portmap")
def test_prev_result_keys_fold(harness: Harness, version: str) -> None:
    """prevResult is decoded into Go's result structs: "Ips", "Interfaces" work."""
    prev = _capitalised(synthetic_prev_result(harness.world.pod.path, version))
    config = harness.config(version, prevResult=prev)
    harness.run("ADD", config)  # the result echoes prevResult as given; rules tell
    rules = _firewall(harness)
    assert TARGET in rules, f"no DNAT to {TARGET} from a capitalised prevResult:\n{rules}"
    assert_silent_success(harness.run("DEL", config))
    assert TARGET not in _firewall(harness)


# -- host-local -----------------------------------------------------------------------------------


@pytest.mark.plugins("host-local")
def test_runtime_ip_ranges_with_go_field_names(harness: Harness, version: str) -> None:
    """runtimeConfig.ipRanges as ``[[{"Subnet": ...}]]``: an address from that range
    (the only range: versions before 0.3.0 allow one address per family)."""
    config = harness.config(
        version,
        capabilities={"ipRanges": True},
        runtimeConfig={"ipRanges": [[{"Subnet": "10.250.7.0/24", "RangeStart": "10.250.7.9"}]]},
    )
    del config["ipam"]["ranges"]
    result = assert_result(harness.run("ADD", config), version, shape=False)
    assert "10.250.7.9/24" in _ips(result), result
    assert_silent_success(harness.run("DEL", config))
    store = harness.world.tmp / "ipam" / NETWORK_NAME
    assert not (store / "10.250.7.9").exists(), "address not released"


@pytest.mark.plugins("host-local")
def test_mixed_case_ipam_keys(harness: Harness, version: str) -> None:
    resolv = harness.world.tmp / "resolv.conf"
    resolv.write_text("nameserver 10.96.0.10\nsearch svc.cluster.local\n")
    store = harness.world.tmp / "ipam-mixed"
    config = {
        "cniVersion": version,
        "Name": NETWORK_NAME,
        "type": "host-local",
        "IPAM": {
            "Type": "host-local",
            "Ranges": [[{"Subnet": SUBNET, "RangeStart": "10.250.0.20", "Gateway": GATEWAY}]],
            "DataDir": str(store),
            "ResolvConf": str(resolv),
        },
    }
    result = assert_result(harness.run("ADD", config), version, shape=False)
    assert _ips(result) == ["10.250.0.20/24"], result
    assert "10.96.0.10" in result.get("dns", {}).get("nameservers", []), result
    assert (store / NETWORK_NAME / "10.250.0.20").exists(), "reservation not under DataDir"
    assert_silent_success(harness.run("DEL", config))
    assert not (store / NETWORK_NAME / "10.250.0.20").exists(), "address not released"


# -- bridge ---------------------------------------------------------------------------------------


@pytest.mark.plugins("bridge")
def test_mixed_case_bridge_keys(harness: Harness, version: str) -> None:
    """ "Bridge", "IsGateway", "IPMasq" and the IPAM keys as Go folds them; go-cni's dns
    capability (no bridge field: ignored, as in Go) rides along."""
    config = {
        "cniVersion": version,
        "name": NETWORK_NAME,
        "type": "bridge",
        "Bridge": BRIDGE_NAME,
        "IsGateway": True,
        "IPMasq": True,
        "IPAM": {
            "Type": "host-local",
            "Ranges": [[{"Subnet": SUBNET}]],
            "DataDir": str(harness.world.tmp / "ipam"),
        },
        "capabilities": {"dns": True},
        "runtimeConfig": {"dns": GO_CNI_DNS},
    }
    result = assert_result(harness.run("ADD", config), version, shape=False)
    node = harness.world.node
    bridge = node.link(BRIDGE_NAME)
    assert bridge is not None, f"no bridge {BRIDGE_NAME}"
    gateways = {f"{a['local']}/{a['prefixlen']}" for a in bridge.get("addr_info", [])}
    assert f"{GATEWAY}/24" in gateways, "IsGateway: no gateway address on the bridge"
    ip = _ips(result)[0].split("/")[0]
    rules = "\n".join(node.nat_rules())
    assert f"-s {ip}/32" in rules, f"IPMasq: no masquerade rule for {ip}:\n{rules}"
    assert_silent_success(harness.run("DEL", config))
    assert ip not in "\n".join(node.nat_rules()), "masquerade rule left after DEL"
    assert harness.world.pod.link("eth0") is None, "pod eth0 still exists"
