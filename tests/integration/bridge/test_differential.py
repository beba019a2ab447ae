"""Differential: our bridge vs Debian's Go bridge 1.1.1 (/usr/lib/cni) on identical input.

Each side gets its own node namespace (same names inside, so the same chain
names), the same stdin and env; results are compared with MACs and veth names
masked, and ``iptables-save`` lines of our chains compared verbatim.

Deliberate differences (asserted below, not hidden):
* invalid config values: Go answers 999 (``failed to load netconf`` / plain
  errors), we answer 7 (invalid network config) naming the key;
* Go 1.1.1 prints ``"dns": {}`` in 1.x results, we omit an empty ``dns`` (as Go HEAD);
* an existing CNI_IFNAME: same message, but we refuse before creating a veth,
  so the "peer provided" name is ``(none)``;
* a bridge carrying another subnet's gateway: Go refuses (999); we replace the
  stale address when no port is attached, else refuse with code 7.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import GO_PLUGINS
from tests.integration.bridge.conftest import Node, net_conf

pytestmark = [pytest.mark.privileged, pytest.mark.reference]

GO_BRIDGE = GO_PLUGINS / "bridge"
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
VETH = re.compile(r"veth[0-9a-f]{8}")


def masked(result: dict[str, Any]) -> dict[str, Any]:
    text = VETH.sub("vethXXXXXXXX", MAC.sub("MAC", json.dumps(result, sort_keys=True)))
    out: dict[str, Any] = json.loads(text)
    if out.get("dns") == {}:
        del out["dns"]
    return out


def sandbox_masked(result: dict[str, Any], pod: str) -> dict[str, Any]:
    return json.loads(json.dumps(result).replace(pod, "POD"))  # type: ignore[no-any-return]


@pytest.fixture
def pair(make_node: Callable[..., Node]) -> tuple[Node, Node]:
    return make_node("go"), make_node("go")


CASES: dict[str, dict[str, Any]] = {
    "v4-masq-hairpin-mtu": {"ipMasq": True, "hairpinMode": True, "mtu": 1450},
    "default-gateway": {"isDefaultGateway": True, "ipMasq": True},
    "no-gateway": {"isGateway": False},
    "promisc": {"promiscMode": True},
    "dns-override": {"dns": {"nameservers": ["10.96.0.10"], "search": ["svc.local"]}},
}


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_add_del_same_as_go(
    pair: tuple[Node, Node], make_netns: Callable[[], str], case: str, version: str
) -> None:
    go, ours = pair
    pods = make_netns(), make_netns()
    results = []
    for node, pod, binary in ((go, pods[0], GO_BRIDGE), (ours, pods[1], None)):
        conf = net_conf(node, cniVersion=version, **CASES[case])
        proc = node.run("ADD", conf, netns=pod, binary=binary)
        assert proc.returncode == 0, (binary, proc.stdout, proc.stderr)
        results.append(sandbox_masked(masked(json.loads(proc.stdout)), pod))
    assert results[1] == results[0]
    assert ours.nat() == go.nat()
    assert ours.nat(6) == go.nat(6)
    for node, pod, binary in ((go, pods[0], GO_BRIDGE), (ours, pods[1], None)):
        conf = net_conf(node, cniVersion=version, **CASES[case])
        assert node.run("DEL", conf, netns=pod, binary=binary).returncode == 0
    assert ours.nat() == go.nat() == []
    assert ours.reservations() == go.reservations() == []


def test_dual_stack_same_as_go(pair: tuple[Node, Node], make_netns: Callable[[], str]) -> None:
    go, ours = pair
    pods = make_netns(), make_netns()
    out = []
    for node, pod, binary in ((go, pods[0], GO_BRIDGE), (ours, pods[1], None)):
        conf = net_conf(node, v6=True, ipMasq=True, isDefaultGateway=True)
        proc = node.run("ADD", conf, netns=pod, binary=binary)
        assert proc.returncode == 0, proc.stdout
        out.append(sandbox_masked(masked(json.loads(proc.stdout)), pod))
    assert out[1] == out[0]
    assert ours.nat(6) == go.nat(6) and ours.nat(6)


def test_go_adds_ours_deletes_and_back(
    pair: tuple[Node, Node], make_netns: Callable[[], str]
) -> None:
    """Drop-in: a pod added by one implementation is deleted cleanly by the other."""
    node, _ = pair
    pod1, pod2 = make_netns(), make_netns()
    conf = net_conf(node, ipMasq=True)
    assert node.run("ADD", conf, netns=pod1, cid="a", binary=GO_BRIDGE).returncode == 0
    node.add(conf, pod2, cid="b")
    node.delete(conf, pod1, cid="a")
    assert node.run("DEL", conf, netns=pod2, cid="b", binary=GO_BRIDGE).returncode == 0
    assert node.nat() == [] and node.reservations() == []


ERROR_CASES: dict[str, tuple[dict[str, Any], int, int]] = {
    # name: (config extra, Go code, our code)
    "mtu-string": ({"mtu": "1500"}, 999, 7),
    "vlan-range": ({"vlan": 5000}, 999, 7),
    "hairpin-promisc": ({"hairpinMode": True, "promiscMode": True}, 999, 7),
}
# (1.1.1 predates vlanTrunk/portIsolation/disableContainerInterface: it ignores them.)


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_codes(pair: tuple[Node, Node], make_netns: Callable[[], str], case: str) -> None:
    go, ours = pair
    extra, go_code, our_code = ERROR_CASES[case]
    pod = make_netns()
    for node, binary, code in ((go, GO_BRIDGE, go_code), (ours, None, our_code)):
        proc = node.run("ADD", net_conf(node, **extra), netns=pod, binary=binary)
        assert proc.returncode == 1
        assert json.loads(proc.stdout)["code"] == code, (binary, proc.stdout)


STALE = 'failed to set bridge addr: "cni0" already has an IP address different from 10.244.1.1/24'


@pytest.mark.parametrize("ports", [False, True], ids=["no-port", "port-attached"])
def test_stale_gateway_go_always_refuses_we_replace_it_when_unused(
    pair: tuple[Node, Node], make_netns: Callable[[], str], ports: bool
) -> None:
    """The deliberate difference: Go refuses a bridge carrying another gateway
    (999) even when no pod uses it; we replace the address then, and refuse
    with code 7 only when a port is attached."""
    outcome = {}
    for node, binary in zip(pair, (GO_BRIDGE, None), strict=True):
        node.ip("link", "add", "cni0", "type", "bridge")
        node.ip("addr", "add", "10.99.0.1/24", "dev", "cni0")
        if ports:
            node.ip("link", "add", "oldport", "type", "veth", "peer", "name", "oldpeer")
            node.ip("link", "set", "oldport", "master", "cni0")
        proc = node.run("ADD", net_conf(node), netns=make_netns(), binary=binary)
        outcome[binary is None] = (proc.returncode, json.loads(proc.stdout))
    go_rc, go_out = outcome[False]
    assert (go_rc, go_out["code"], go_out["msg"]) == (1, 999, STALE)
    ours_rc, ours_out = outcome[True]
    go, ours = pair
    if not ports:
        assert ours_rc == 0 and ours_out["ips"][0]["address"] == "10.244.1.2/24"
        assert "10.99.0.1/24" not in ours.ip("-4", "-o", "addr", "show", "cni0")
        assert "10.99.0.1/24" in go.ip("-4", "-o", "addr", "show", "cni0")
    else:
        assert (ours_rc, ours_out["code"]) == (1, 7)
        assert ours_out["msg"].startswith(STALE)  # the wording users grep for stays
        assert "attached ports: oldport" in ours_out["details"]
        assert ours.reservations() == go.reservations() == []
