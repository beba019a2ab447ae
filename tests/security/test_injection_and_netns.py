"""Config values cannot inject iptables or nft arguments, and CNI_NETNS naming
the plugin's own namespace is refused (code 8) with nothing changed there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.world import World
from tests.security.conftest import exec_plugin, node_state

pytestmark = pytest.mark.privileged


def bridge_conf(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": True,
        "ipMasq": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.244.1.0/24"}]],
            "dataDir": str(world.ipam_dir),
        },
        **extra,
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"bridge": "cni0 -j ACCEPT"},
        {"bridge": "cni0\n-A INPUT"},
        {"name": 'cbr0" -j ACCEPT'},
        {"name": "cbr0\n-A INPUT -j ACCEPT"},
        {"ipMasqBackend": "iptables; nft flush ruleset"},
    ],
)
def test_bridge_values_cannot_inject(world: World, extra: dict[str, Any]) -> None:
    pod = world.new_pod()
    before = node_state(world)
    status, out = exec_plugin(world, "bridge", "ADD", bridge_conf(world, **extra), netns=pod.path)
    assert status == 1 and out is not None and out["code"] == 7, out
    assert node_state(world) == before


@pytest.mark.parametrize("name", ["br;x", "-jACC", "br$(id)"])
def test_odd_but_valid_bridge_names_are_only_interface_names(world: World, name: str) -> None:
    """Names Linux accepts for an interface are used as one; they never reach
    iptables (the masquerade rules name the network and container, not the bridge)."""
    pod = world.new_pod()
    status, out = exec_plugin(
        world, "bridge", "ADD", bridge_conf(world, bridge=name), netns=pod.path
    )
    assert status == 0, out
    state = node_state(world)
    assert f" {name}:" in state["links"] or f": {name}:" in state["links"]
    assert name not in state["iptables"] and name not in state["nft"]
    status, out = exec_plugin(
        world, "bridge", "DEL", bridge_conf(world, bridge=name), netns=pod.path
    )
    assert status == 0, out
    assert "CNI-" not in node_state(world)["iptables"]


def portmap_conf(world: World, mappings: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "portmap",
        "capabilities": {"portMappings": True},
        "runtimeConfig": {"portMappings": mappings},
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.244.1.5/24", "interface": 0}],
        },
        **extra,
    }


TCP = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]


@pytest.mark.parametrize(
    ("mappings", "extra"),
    [
        ([{**TCP[0], "hostIP": "1.2.3.4 -j ACCEPT"}], {}),
        ([{**TCP[0], "hostIP": "1.2.3.4/0"}], {}),
        ([{**TCP[0], "protocol": "tcp -j ACCEPT"}], {}),
        ([{**TCP[0], "hostPort": "8080 -j ACCEPT"}], {}),
        ([{**TCP[0], "containerPort": "80,81"}], {}),
        (TCP, {"conditionsV4": ["-j", "ACCEPT"]}),
        (TCP, {"conditionsV4": ["-s", "1.2.3.4\n-A INPUT -j ACCEPT"]}),
        (TCP, {"conditionsV4": ["--goto", "INPUT"]}),
        (TCP, {"externalSetMarkChain": "X -j ACCEPT"}),
        (TCP, {"externalSetMarkChain": "X\nCOMMIT"}),
        (TCP, {"backend": "nftables", "conditionsV4": ["ip saddr 1.2.3.4; flush ruleset"]}),
        (TCP, {"backend": "nftables", "conditionsV4": ["ip saddr 1.2.3.4 #"]}),
        (TCP, {"backend": "nftables", "conditionsV4": ['meta mark "1']}),
        (TCP, {"backend": "nftables", "conditionsV4": ["jump", "x"]}),
        (TCP, {"markMasqBit": "13 -j ACCEPT"}),
    ],
)
def test_portmap_values_cannot_inject(
    world: World, mappings: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    before = node_state(world)
    status, out = exec_plugin(world, "portmap", "ADD", portmap_conf(world, mappings, **extra))
    assert status == 1 and out is not None and out["code"] == 7, out
    assert node_state(world) == before


def test_quotes_in_conditions_stay_one_argument(world: World) -> None:
    """A token that would end a quoted iptables-restore argument is passed as
    one argument: the rule set gets that literal comment and no ACCEPT rule."""
    evil = 'x" -j ACCEPT -A INPUT "'
    conf = portmap_conf(world, TCP, conditionsV4=["-m", "comment", "--comment", evil])
    status, out = exec_plugin(world, "portmap", "ADD", conf, cid="quoted")
    assert status == 0, out
    state = node_state(world)
    (entry,) = [ln for ln in state["iptables"].splitlines() if '--comment "x' in ln]
    assert entry.endswith("-j CNI-DN-" + entry.rsplit("CNI-DN-", 1)[1])  # its own target
    assert '--comment "x\\" -j ACCEPT -A INPUT \\""' in entry
    assert "-A INPUT" not in state["iptables"].replace(entry, "")
    status, out = exec_plugin(world, "portmap", "DEL", conf, cid="quoted")
    assert status == 0, out
    assert "CNI-DN-" not in node_state(world)["iptables"]


@pytest.mark.parametrize("plugin", ["bridge", "loopback", "flannel"])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_own_netns_is_refused(world: World, plugin: str, command: str) -> None:
    """CNI_NETNS naming the namespace the plugin runs in (a reused
    /proc/<pid>/ns/net, plugins#714) is refused before anything changes."""
    pod = world.new_pod()
    assert world.add(pod).ok  # a live pod, so DEL/CHECK have something to act on
    conf: dict[str, Any] = {
        "bridge": bridge_conf(world),
        "loopback": {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"},
        "flannel": world.flannel_conf(),
    }[plugin]
    if command == "CHECK":
        conf = dict(conf, prevResult=pod.result)
    before = node_state(world)
    files = sorted(str(p) for p in world.tmp.rglob("*"))
    own = f"/run/netns/{world.node}"
    for netns in (own, "/proc/self/ns/net", "/proc/thread-self/ns/net"):
        status, out = exec_plugin(world, plugin, command, conf, cid=pod.cid, netns=netns)
        assert status == 1 and out is not None and out["code"] == 8, (netns, out)
    assert node_state(world) == before
    assert sorted(str(p) for p in world.tmp.rglob("*")) == files
    assert world.delete(pod).ok
