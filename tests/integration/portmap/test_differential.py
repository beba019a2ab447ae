"""Differential: our portmap vs Debian's Go portmap 1.1.1 (/usr/lib/cni) on identical input.

Each side gets its own throwaway node namespace (a ``cni0`` veth with the pod
gateway address, so ``route_localnet`` has an interface to land on), the same
stdin and env; ``iptables-save -t nat`` / ``ip6tables-save -t nat`` are compared
rule for rule (counters and comments normalised).  Then each implementation's
DEL is run on the other's rules: nothing of the container may be left.

Deliberate differences (asserted, not hidden):
* invalid values: Go answers 999 (``failed to parse config: ...``), we answer 7
  naming the key;
* Go 1.1.1 prints ``"dns": {}`` in 1.x results, we omit an empty ``dns`` (Go HEAD);
* Go 1.1.1 CHECK checks the IPv4 rules in ip6tables too and fails ("could not
  check ipv6 dnat", fixed upstream in v1.6.0); ours checks each family's own;
* Go DEL with no ``portMappings`` does nothing (leaks); ours removes by name.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GO_PLUGINS, built_bin_dir, run_plugin

pytestmark = [pytest.mark.privileged, pytest.mark.reference]

GO_PORTMAP = GO_PLUGINS / "portmap"
CID = "pod1"


def prev_result(v6: bool = True) -> dict[str, Any]:
    ips = [{"interface": 2, "address": "10.244.1.2/24", "gateway": "10.244.1.1"}]
    if v6:
        ips.append(
            {"interface": 2, "address": "fd00:10:244:1::2/64", "gateway": "fd00:10:244:1::1"}
        )
    return {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "6a:00:00:00:00:01"},
            {"name": "veth0123abcd", "mac": "6a:00:00:00:00:02"},
            {"name": "eth0", "mac": "6a:00:00:00:00:03", "sandbox": "/run/netns/somepod"},
        ],
        "ips": ips,
    }


class NodeNS:
    __test__ = False

    def __init__(self, name: str) -> None:
        self.name = name

    def sh(self, *argv: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], check=True, capture_output=True, text=True
        ).stdout

    def run(
        self,
        binary: Path,
        command: str,
        conf: dict[str, Any],
        cid: str = CID,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        env = {
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/run/netns/somepod",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(binary.parent),
            **(extra_env or {}),
        }
        return run_plugin(binary, command, json.dumps(conf), env=env, netns_exec=self.name)

    def ok(self, binary: Path, command: str, conf: dict[str, Any], cid: str = CID) -> bytes:
        proc = self.run(binary, command, conf, cid)
        assert proc.returncode == 0, (binary, command, proc.stdout.decode(), proc.stderr.decode())
        return proc.stdout

    def nat(self) -> dict[int, list[str]]:
        """Both families' nat tables, normalised: no comment lines, no counters."""
        out = {}
        for family, tool in ((4, "iptables-save"), (6, "ip6tables-save")):
            lines = self.sh(tool, "-t", "nat").splitlines()
            out[family] = [
                re.sub(r"\[\d+:\d+\]", "[0:0]", ln) for ln in lines if not ln.startswith("#")
            ]
        return out

    def container_lines(self, cid: str = CID) -> list[str]:
        return [ln for fam in self.nat().values() for ln in fam if "CNI-DN-" in ln or cid in ln]


@pytest.fixture
def make_node() -> Iterator[Callable[[], NodeNS]]:
    made: list[str] = []

    def make() -> NodeNS:
        name = f"cnit-pmd-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        node = NodeNS(name)
        node.sh("ip", "link", "set", "lo", "up")
        node.sh("ip", "link", "add", "cni0", "type", "veth", "peer", "name", "cni0peer")
        node.sh("ip", "link", "set", "cni0peer", "up")
        node.sh("ip", "addr", "add", "10.244.1.1/24", "dev", "cni0")
        node.sh("ip", "addr", "add", "fd00:10:244:1::1/64", "dev", "cni0", "nodad")
        node.sh("ip", "link", "set", "cni0", "up")
        return node

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def pair(make_node: Callable[[], NodeNS]) -> tuple[NodeNS, NodeNS]:
    return make_node(), make_node()


@pytest.fixture
def ours(script_bin_dir: Path) -> Path:
    return script_bin_dir / "portmap"


def conf(mappings: list[dict[str, Any]], v6: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "portmap",
        "capabilities": {"portMappings": True},
        "runtimeConfig": {"portMappings": mappings},
        "prevResult": prev_result(v6),
        **extra,
    }


def without_empty_dns(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(raw)
    if out.get("dns") == {}:
        del out["dns"]
    return out


BASIC = [
    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
]
HOST_IPS = [
    *BASIC,
    {"hostPort": 9090, "containerPort": 90, "protocol": "tcp", "hostIP": "127.0.0.1"},
    {"hostPort": 9091, "containerPort": 91, "protocol": "sctp", "hostIP": "::1"},
    {"hostPort": 9092, "containerPort": 92, "protocol": "tcp", "hostIP": "0.0.0.0"},
]
MANY = [{"hostPort": 20000 + i, "containerPort": 80, "protocol": "udp"} for i in range(17)]

CASES: dict[str, dict[str, Any]] = {
    "v4-only": {"mappings": BASIC, "v6": False},
    "dual-stack-host-ips": {"mappings": HOST_IPS},
    "snat-off": {"mappings": BASIC, "extra": {"snat": False}},
    "mark-bit-5": {"mappings": BASIC, "extra": {"markMasqBit": 5}},
    "external-mark-chain": {"mappings": BASIC, "extra": {"externalSetMarkChain": "KUBE-MARK-MASQ"}},
    "conditions": {
        "mappings": BASIC,
        "extra": {
            "conditionsV4": ["-s", "192.168.0.0/16", "-m", "comment", "--comment", "two words"],
            "conditionsV6": ["!", "-s", "fd00:99::/64"],
        },
    },
    "more-than-15-ports": {"mappings": MANY},
}


def prepare(node: NodeNS, case: dict[str, Any]) -> None:
    if "externalSetMarkChain" in case.get("extra", {}):
        for tool in ("iptables", "ip6tables"):
            node.sh(tool, "-t", "nat", "-N", "KUBE-MARK-MASQ")


@pytest.mark.parametrize("name", list(CASES))
def test_same_rules_and_result(pair: tuple[NodeNS, NodeNS], ours: Path, name: str) -> None:
    case = CASES[name]
    go_node, our_node = pair
    c = conf(case["mappings"], case.get("v6", True), **case.get("extra", {}))
    for node in pair:
        prepare(node, case)
    go_out = go_node.ok(GO_PORTMAP, "ADD", c)
    our_out = our_node.ok(ours, "ADD", c)
    assert without_empty_dns(our_out) == without_empty_dns(go_out)
    assert our_node.nat() == go_node.nat()
    localnet = "1" if c.get("snat", True) else "0"
    for node in pair:
        assert node.sh("cat", "/proc/sys/net/ipv4/conf/cni0/route_localnet").strip() == localnet
    # Re-ADD: Go appends nothing new (InsertUnique), ours replaces: same table.
    go_node.ok(GO_PORTMAP, "ADD", c)
    our_node.ok(ours, "ADD", c)
    assert our_node.nat() == go_node.nat()


def test_reference_chain_hash(make_node: Callable[[], NodeNS]) -> None:
    node = make_node()
    node.ok(GO_PORTMAP, "ADD", conf(BASIC, v6=False))
    assert ":CNI-DN-1acd23a563d6b73ddfb74 - [0:0]" in node.nat()[4]


@pytest.mark.parametrize("name", ["v4-only", "dual-stack-host-ips", "conditions", "snat-off"])
def test_cross_del(pair: tuple[NodeNS, NodeNS], ours: Path, name: str) -> None:
    """Go ADD + our DEL, our ADD + Go DEL: nothing of the container is left, and
    both tables end up identical (the shared chains stay, as the reference)."""
    case = CASES[name]
    c = conf(case["mappings"], case.get("v6", True), **case.get("extra", {}))
    go_added, ours_added = pair
    go_added.ok(GO_PORTMAP, "ADD", c)
    ours_added.ok(ours, "ADD", c)
    assert go_added.container_lines() != []
    assert go_added.run(ours, "DEL", c).returncode == 0
    assert ours_added.run(GO_PORTMAP, "DEL", c).returncode == 0
    assert go_added.container_lines() == []
    assert ours_added.container_lines() == []
    assert go_added.nat() == ours_added.nat()


def test_our_del_without_mappings_cleans_go_rules(
    make_node: Callable[[], NodeNS], ours: Path
) -> None:
    node = make_node()
    c = conf(HOST_IPS)
    node.ok(GO_PORTMAP, "ADD", c)
    bare = {"cniVersion": "1.0.0", "name": "cbr0", "type": "portmap"}
    node.ok(GO_PORTMAP, "DEL", bare)  # the reference does nothing here
    assert node.container_lines() != []
    assert node.ok(ours, "DEL", bare) == b""
    assert node.container_lines() == []


def test_check_each_way(pair: tuple[NodeNS, NodeNS], ours: Path) -> None:
    """Our CHECK accepts Go's rules and ours.  Go 1.1.1's CHECK checks the rules
    of the pod's IPv4 address in ip6tables as well (its known bug, fixed in
    v1.6.0), so it fails on every node where both families work."""
    go_node, our_node = pair
    for c in (conf(HOST_IPS), conf(BASIC, v6=False)):
        for node, binary in ((go_node, GO_PORTMAP), (our_node, ours)):
            node.ok(ours, "DEL", c)
            node.ok(binary, "ADD", c)
        for node in pair:
            assert node.run(ours, "CHECK", c).returncode == 0, node.name
            proc = node.run(GO_PORTMAP, "CHECK", c)
            assert proc.returncode == 1 and "could not check ipv6 dnat" in proc.stdout.decode()
    # And ours notices a rule gone missing.
    our_node.sh("iptables", "-t", "nat", "-F", "CNI-DN-1acd23a563d6b73ddfb74")
    proc = our_node.run(ours, "CHECK", conf(BASIC, v6=False))
    assert proc.returncode == 1 and "could not check ipv4 dnat" in proc.stdout.decode()


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"markMasqBit": 40}, "markMasqBit"),
        ({"markMasqBit": 1, "externalSetMarkChain": "X"}, "externalSetMarkChain"),
        ({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 1}]}}, "hostPort"),
    ],
)
def test_config_errors_code_7_where_go_says_999(
    make_node: Callable[[], NodeNS], ours: Path, extra: dict[str, Any], key: str
) -> None:
    node = make_node()
    c = {**conf(BASIC), **extra}
    go = json.loads(node.run(GO_PORTMAP, "ADD", c).stdout)
    mine = json.loads(node.run(ours, "ADD", c).stdout)
    assert go["code"] == 999 and mine["code"] == 7 and key in mine["msg"]
    assert node.container_lines() == []


def test_missing_prev_result_message(make_node: Callable[[], NodeNS], ours: Path) -> None:
    node = make_node()
    c = conf(BASIC)
    del c["prevResult"]
    go = json.loads(node.run(GO_PORTMAP, "ADD", c).stdout)
    mine = json.loads(node.run(ours, "ADD", c).stdout)
    assert go["msg"] == mine["msg"] == "must be called as chained plugin"
    assert (go["code"], mine["code"]) == (999, 7)


# What containerd 1.6's CRI plugin sends through go-cni: Go field names (its
# PortMapping struct has no JSON tags), and the dns capability likewise.
GO_CNI_RUNTIME_CONFIG = {
    "portMappings": [
        {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
        {"HostPort": 15353, "ContainerPort": 53, "Protocol": "udp", "HostIP": ""},
    ],
    "dns": {"Servers": ["10.96.0.10"], "Searches": ["svc.cluster.local"], "Options": []},
}


@pytest.mark.parametrize("impl", ["ours", "go"])
def test_go_cni_payload_add_check_del(
    make_node: Callable[[], NodeNS], tmp_path: Path, impl: str
) -> None:
    """The built portmap (and Go's) given go-cni's payload: ADD writes the DNAT
    rules of both mappings, CHECK accepts them, DEL leaves nothing of the
    container in the node's nat tables."""
    built = built_bin_dir()
    if impl == "ours" and built is None:
        pytest.skip("dist/bin not built")
    binary = GO_PORTMAP if impl == "go" else built / "portmap"  # type: ignore[operator]
    env = {"CNI_PLUGINS_CACHE_DIR": str(tmp_path / "cache")}
    node = make_node()
    c = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "portmap",
        "capabilities": {"portMappings": True, "dns": True},
        "runtimeConfig": GO_CNI_RUNTIME_CONFIG,
        "prevResult": prev_result(),
    }
    add = node.run(binary, "ADD", c, extra_env=env)
    assert add.returncode == 0, add.stdout.decode()
    rules = "\n".join(node.nat()[4])
    assert "--dport 18080" in rules and "10.244.1.2:80" in rules, rules
    assert "-p udp" in rules and "--dport 15353" in rules and "10.244.1.2:53" in rules, rules
    check = node.run(binary, "CHECK", c, extra_env=env)
    if impl == "go":
        # Go 1.1.1's CHECK bug (see test_check_each_way): it parsed the mappings
        # and got as far as comparing the rules.
        assert check.returncode == 1 and "could not check ipv6 dnat" in check.stdout.decode()
    else:
        assert check.returncode == 0, check.stdout.decode()
    delete = node.run(binary, "DEL", c, extra_env=env)
    assert delete.returncode == 0, delete.stdout.decode()
    assert node.container_lines() == []
