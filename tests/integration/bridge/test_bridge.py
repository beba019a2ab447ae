"""bridge against the real kernel, exec'd as a process inside a throwaway node namespace.

Kernel state is read back independently: pyroute2, ``bridge -j``, ``iptables-save``,
``nft -j``, ``/proc/sys`` inside the namespaces.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from cni_plugins.linux.ipmasq import chain_name
from tests.integration.bridge.conftest import Node, net_conf, ping

pytestmark = pytest.mark.privileged

CHAIN = "CNI-1acd23a563d6b73ddfb74ccf"  # cbr0 + pod1


def oracle(netns_path: str) -> Any:
    return IPRoute(netns=Path(netns_path).name, flags=0)


def link(netns_path: str, name: str) -> Any:
    with oracle(netns_path) as ipr:
        found = ipr.link_lookup(ifname=name)
        return ipr.get_links(found[0])[0] if found else None


def addrs(netns_path: str, name: str) -> set[str]:
    with oracle(netns_path) as ipr:
        idx = ipr.link_lookup(ifname=name)[0]
        return {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx)}


def routes(netns_path: str, family: int = 2) -> set[tuple[str, str | None]]:
    with oracle(netns_path) as ipr:
        out = set()
        for r in ipr.get_routes(family=family, table=254):
            dst = r.get_attr("RTA_DST")
            dst = f"{dst}/{r['dst_len']}" if dst else ("0.0.0.0/0" if family == 2 else "::/0")
            out.add((dst, r.get_attr("RTA_GATEWAY")))
        return out


def sysctl(netns_path: str, key: str) -> str:
    name = Path(netns_path).name
    return subprocess.run(
        ["ip", "netns", "exec", name, "cat", f"/proc/sys/{key}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def bridge_ports(node: Node) -> dict[str, dict[str, Any]]:
    return {p["ifname"]: p for p in json.loads(node.sh("bridge", "-j", "-d", "link", "show"))}


def port_vlans(node: Node, port: str) -> dict[int, list[str]]:
    for entry in json.loads(node.sh("bridge", "-j", "vlan", "show")):
        if entry["ifname"] == port:
            return {v["vlan"]: v.get("flags", []) for v in entry["vlans"]}
    return {}


# -- ADD / DEL basics ---------------------------------------------------------------------------


def test_two_pods_reach_each_other_and_the_gateway(
    node: Node, make_netns: Callable[[], str]
) -> None:
    pod1, pod2 = make_netns(), make_netns()
    conf = net_conf(node, ipMasq=True, mtu=1400, hairpinMode=True)
    r1 = node.add(conf, pod1, cid="pod1")
    r2 = node.add(conf, pod2, cid="pod2")

    assert [i["name"] for i in r1["interfaces"]][::2] == ["cni0", "eth0"]
    assert r1["interfaces"][1]["name"].startswith("veth") and len(r1["interfaces"][1]["name"]) == 12
    assert r1["interfaces"][2]["sandbox"] == pod1
    assert r1["ips"] == [{"interface": 2, "address": "10.244.1.2/24", "gateway": "10.244.1.1"}]
    assert r2["ips"][0]["address"] == "10.244.1.3/24"
    assert r1["routes"] == [{"dst": "10.244.0.0/16"}]

    # Kernel state: MTU on bridge and both veth ends, MACs as reported, gateway on the bridge.
    br = link(node.path, "cni0")
    assert br.get_attr("IFLA_MTU") == 1400
    assert br.get_attr("IFLA_ADDRESS") == r2["interfaces"][0]["mac"]
    eth0 = link(pod1, "eth0")
    assert eth0.get_attr("IFLA_MTU") == 1400
    assert eth0.get_attr("IFLA_ADDRESS") == r1["interfaces"][2]["mac"]
    host = link(node.path, r1["interfaces"][1]["name"])
    assert host.get_attr("IFLA_MTU") == 1400 and host.get_attr("IFLA_MASTER") == br["index"]
    assert "10.244.1.1/24" in addrs(node.path, "cni0")
    assert addrs(pod1, "eth0") >= {"10.244.1.2/24"}
    assert ("10.244.0.0/16", "10.244.1.1") in routes(pod1)
    assert bridge_ports(node)[r1["interfaces"][1]["name"]]["hairpin"] is True
    assert sysctl(node.path, "net/ipv4/ip_forward") == "1"
    assert sysctl(node.path, "net/ipv6/conf/cni0/accept_ra") == "0"
    assert sysctl(pod1, "net/ipv4/conf/eth0/arp_notify") == "1"
    assert sysctl(pod1, "net/ipv6/conf/eth0/accept_dad") == "0"

    assert ping(pod1, "10.244.1.1")
    assert ping(pod1, "10.244.1.3")
    assert ping(pod2, "10.244.1.2")

    # Masquerade: exactly the reference rules, per pod.
    comment = '"name: \\"cbr0\\" id: \\"pod1\\""'
    nat = node.nat()
    assert f":{CHAIN} - [0:0]" in nat
    assert f"-A POSTROUTING -s 10.244.1.2/32 -m comment --comment {comment} -j {CHAIN}" in nat
    assert f"-A {CHAIN} -d 10.244.1.0/24 -m comment --comment {comment} -j ACCEPT" in nat
    assert f"-A {CHAIN} ! -d 224.0.0.0/4 -m comment --comment {comment} -j MASQUERADE" in nat
    assert any(chain_name("cbr0", "pod2") in ln for ln in nat)

    node.delete(conf, pod1, cid="pod1")
    assert link(pod1, "eth0") is None
    assert link(node.path, r1["interfaces"][1]["name"]) is None
    assert not any(CHAIN in ln for ln in node.nat())
    assert node.reservations() == ["10.244.1.3"]
    node.delete(conf, pod1, cid="pod1")  # twice is fine
    assert ping(pod2, "10.244.1.1")


def test_del_with_netns_gone_releases_address_and_rules(
    node: Node, make_netns: Callable[[], str]
) -> None:
    pod = make_netns()
    conf = net_conf(node, ipMasq=True)
    node.add(conf, pod)
    assert node.reservations() == ["10.244.1.2"] and node.nat()
    subprocess.run(["ip", "netns", "del", Path(pod).name], check=True)
    node.delete(conf, pod)
    assert node.reservations() == []
    assert node.nat() == []
    node.delete(conf, "")  # empty CNI_NETNS, again: still fine


def test_del_with_empty_netns_removes_rules(node: Node, make_netns: Callable[[], str]) -> None:
    """plugins#810: nerdctl/ctr pass CNI_NETNS="" on DEL; the reference leaks the chain."""
    pod = make_netns()
    conf = net_conf(node, ipMasq=True)
    node.add(conf, pod)
    node.delete(conf, "")
    assert node.nat() == [] and node.reservations() == []


def test_del_of_nothing_succeeds(node: Node) -> None:
    node.delete(net_conf(node, ipMasq=True, macspoofchk=True), "/run/netns/does-not-exist")


def test_failed_add_leaves_nothing_behind(node: Node, make_netns: Callable[[], str]) -> None:
    pod = make_netns()
    node.ip("link", "add", "cni0", "type", "bridge")
    node.ip("addr", "add", "10.99.0.1/24", "dev", "cni0")
    # An attached port says a pod still uses the stale address: refused.
    node.ip("link", "add", "oldport", "type", "veth", "peer", "name", "oldpeer")
    node.ip("link", "set", "oldport", "master", "cni0")
    conf = net_conf(node, ipMasq=True)
    proc = node.run("ADD", conf, netns=pod)
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 7
    assert err["msg"] == (
        'failed to set bridge addr: "cni0" already has an IP address different from'
        " 10.244.1.1/24 (10.99.0.1/24), and pods still use it"
    )
    assert link(pod, "eth0") is None
    assert [ln for ln in node.ip("-o", "link").splitlines() if "veth" in ln] == []
    assert node.reservations() == []
    assert node.nat() == []
    assert addrs(node.path, "cni0") >= {"10.99.0.1/24"}

    # forceAddress replaces the old address.
    node.add({**conf, "forceAddress": True}, pod)
    v4 = {a for a in addrs(node.path, "cni0") if ":" not in a}
    assert v4 == {"10.244.1.1/24"}


def test_existing_interface_in_pod_is_an_error(node: Node, make_netns: Callable[[], str]) -> None:
    pod = make_netns()
    subprocess.run(
        ["ip", "-n", Path(pod).name, "link", "add", "eth0", "type", "veth", "peer", "name", "x0"],
        check=True,
    )
    proc = node.run("ADD", net_conf(node), netns=pod)
    assert proc.returncode == 1
    assert 'container veth name ("eth0")' in json.loads(proc.stdout)["msg"]
    assert node.reservations() == []
    assert link(node.path, "cni0") is None  # checked before the bridge is made


def test_del_leaves_a_foreign_interface_alone(node: Node, make_netns: Callable[[], str]) -> None:
    # flannel undoes a failed ADD with a delegate DEL (SPEC section 4); when ADD
    # failed because eth0 already existed, that DEL must not delete it.
    pod = make_netns()
    subprocess.run(
        ["ip", "-n", Path(pod).name, "link", "add", "eth0", "type", "veth", "peer", "name", "x0"],
        check=True,
    )
    assert node.run("ADD", net_conf(node), netns=pod).returncode == 1
    node.delete(net_conf(node), netns=pod)
    assert link(pod, "eth0") is not None
    # Our own veth is still deleted by DEL.
    other = make_netns()
    node.add(net_conf(node), other, cid="pod2")
    node.delete(net_conf(node), netns=other, cid="pod2")
    assert link(other, "eth0") is None


def test_existing_non_bridge_link(node: Node, make_netns: Callable[[], str]) -> None:
    pod = make_netns()
    node.ip("link", "add", "cni0", "type", "veth", "peer", "name", "x0")
    proc = node.run("ADD", net_conf(node), netns=pod)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["msg"] == (
        'failed to create bridge "cni0": "cni0" already exists but is not a bridge'
    )
    assert node.reservations() == [] and link(pod, "eth0") is None


def test_parallel_adds_on_a_new_bridge(node: Node, make_netns: Callable[[], str]) -> None:
    pods = [make_netns() for _ in range(20)]
    conf = net_conf(node, ipMasq=True, isDefaultGateway=True)

    def add(i: int) -> subprocess.CompletedProcess[bytes]:
        return node.run("ADD", conf, netns=pods[i], cid=f"par{i}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        procs = list(pool.map(add, range(20)))
    for proc in procs:
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
    addresses = [json.loads(p.stdout)["ips"][0]["address"] for p in procs]
    assert len(set(addresses)) == 20
    assert len([ln for ln in node.nat() if ln.startswith("-A POSTROUTING")]) == 20
    assert addrs(node.path, "cni0") >= {"10.244.1.1/24"}
    assert ping(pods[0], addresses[19].split("/")[0])


# -- IPv6 / dual stack --------------------------------------------------------------------------


def test_dual_stack(node: Node, make_netns: Callable[[], str]) -> None:
    pod1, pod2 = make_netns(), make_netns()
    conf = net_conf(node, v6=True, ipMasq=True, isDefaultGateway=True)
    r1 = node.add(conf, pod1, cid="pod1")
    node.add(conf, pod2, cid="pod2")
    assert [ip["address"] for ip in r1["ips"]] == ["10.244.1.2/24", "fd00:10:244:1::2/64"]
    assert [ip["gateway"] for ip in r1["ips"]] == ["10.244.1.1", "fd00:10:244:1::1"]
    assert {"dst": "0.0.0.0/0", "gw": "10.244.1.1"} in r1["routes"]
    assert {"dst": "::/0", "gw": "fd00:10:244:1::1"} in r1["routes"]
    assert addrs(node.path, "cni0") >= {"10.244.1.1/24", "fd00:10:244:1::1/64"}
    assert addrs(pod1, "eth0") >= {"10.244.1.2/24", "fd00:10:244:1::2/64"}
    assert ("fd00:10:244::/48", "fd00:10:244:1::1") in routes(pod1, 10)
    assert ("::/0", "fd00:10:244:1::1") in routes(pod1, 10)
    assert sysctl(pod1, "net/ipv6/conf/eth0/keep_addr_on_down") == "1"
    assert sysctl(pod1, "net/ipv6/conf/eth0/disable_ipv6") == "0"
    assert sysctl(node.path, "net/ipv6/conf/all/forwarding") == "1"
    assert ping(pod1, "fd00:10:244:1::1")
    assert ping(pod1, "fd00:10:244:1::3")
    v6 = node.nat(6)
    assert "-A POSTROUTING -s fd00:10:244:1::2/128 -m comment --comment" in " ".join(v6)
    assert any("! -d ff00::/8" in ln for ln in v6)
    node.delete(conf, pod1, cid="pod1")
    assert not any(CHAIN in ln for ln in node.nat(4) + node.nat(6))


def test_ipv6_only_with_dad(node: Node, make_netns: Callable[[], str]) -> None:
    pod = make_netns()
    conf = net_conf(node, v4=False, v6=True, enabledad=True)
    result = node.add(conf, pod)
    assert [ip["address"] for ip in result["ips"]] == ["fd00:10:244:1::2/64"]
    assert sysctl(pod, "net/ipv6/conf/eth0/accept_dad") == "1"
    assert sysctl(pod, "net/ipv6/conf/eth0/enhanced_dad") == "1"
    with oracle(pod) as ipr:  # settled: nothing tentative (IFA_F_TENTATIVE 0x40) but link-local
        idx = ipr.link_lookup(ifname="eth0")[0]
        for a in ipr.get_addr(index=idx, family=10):
            flags = a.get_attr("IFA_FLAGS") or a["flags"]
            if not a.get_attr("IFA_ADDRESS").startswith("fe80"):
                assert not flags & 0x40
    assert ping(pod, "fd00:10:244:1::1")


# -- layer 2 options ----------------------------------------------------------------------------


def vlan_filtering_supported(node: Node) -> bool:
    proc = subprocess.run(
        [
            "ip",
            "-n",
            node.name,
            "link",
            "add",
            "vlanprobe",
            "type",
            "bridge",
            "vlan_filtering",
            "1",
        ],
        check=False,
        capture_output=True,
    )
    if proc.returncode == 0:
        node.ip("link", "del", "vlanprobe")
    return proc.returncode == 0


@pytest.fixture
def vlan_node(node: Node) -> Node:
    if not vlan_filtering_supported(node):
        pytest.skip("kernel without CONFIG_BRIDGE_VLAN_FILTERING")
    return node


def test_vlan_unsupported_kernel_is_a_clear_error(
    node: Node, make_netns: Callable[[], str]
) -> None:
    if vlan_filtering_supported(node):
        pytest.skip("this kernel filters VLANs")
    pod = make_netns()
    proc = node.run("ADD", net_conf(node, vlan=100), netns=pod)
    assert proc.returncode == 1
    assert "CONFIG_BRIDGE_VLAN_FILTERING" in json.loads(proc.stdout)["msg"]
    assert node.reservations() == [] and link(pod, "eth0") is None


def test_vlan_with_gateway(vlan_node: Node, make_netns: Callable[[], str]) -> None:
    node = vlan_node
    pod = make_netns()
    conf = net_conf(node, vlan=100)
    result = node.add(conf, pod)
    names = [i["name"] for i in result["interfaces"]]
    assert names[3] == "cni0.100"
    assert "10.244.1.1/24" in addrs(node.path, "cni0.100")
    assert "vlan_filtering 1" in node.ip("-d", "link", "show", "cni0")
    host = result["interfaces"][1]["name"]
    vlans = port_vlans(node, host)
    assert set(vlans) == {100}
    assert {"PVID", "Egress Untagged"} <= set(vlans[100])
    assert ping(pod, "10.244.1.1")


def test_vlan_trunk(vlan_node: Node, make_netns: Callable[[], str]) -> None:
    node = vlan_node
    pod = make_netns()
    conf = net_conf(node, vlanTrunk=[{"minID": 10, "maxID": 12}, {"id": 20}], isGateway=False)
    result = node.add(conf, pod)
    vlans = port_vlans(node, result["interfaces"][1]["name"])
    assert set(vlans) == {1, 10, 11, 12, 20}
    assert "PVID" in vlans[1] and "PVID" not in vlans[10]


def test_vlan_preserve_default(vlan_node: Node, make_netns: Callable[[], str]) -> None:
    node = vlan_node
    pod = make_netns()
    conf = net_conf(node, vlan=7, isGateway=False, preserveDefaultVlan=True)
    result = node.add(conf, pod)
    assert set(port_vlans(node, result["interfaces"][1]["name"])) == {1, 7}


def test_port_isolation_and_promisc(node: Node, make_netns: Callable[[], str]) -> None:
    pod1, pod2 = make_netns(), make_netns()
    conf = net_conf(node, portIsolation=True, promiscMode=True)
    r1 = node.add(conf, pod1, cid="pod1")
    node.add(conf, pod2, cid="pod2")
    assert link(node.path, "cni0")["flags"] & 0x100  # IFF_PROMISC
    assert bridge_ports(node)[r1["interfaces"][1]["name"]]["isolated"] is True
    assert bridge_ports(node)[r1["interfaces"][1]["name"]]["hairpin"] is False
    assert ping(pod1, "10.244.1.1")
    assert not ping(pod1, "10.244.1.3", attempts=2)  # isolated ports do not talk


@pytest.mark.parametrize(
    ("where", "extra", "env"),
    [
        ("runtimeConfig", {"runtimeConfig": {"mac": "0a:58:0a:f4:01:99"}}, {}),
        ("args", {"args": {"cni": {"mac": "0a:58:0a:f4:01:99"}}}, {}),
        ("CNI_ARGS", {}, {"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=x;MAC=0a:58:0a:f4:01:99"}),
    ],
)
def test_mac(
    node: Node,
    make_netns: Callable[[], str],
    where: str,
    extra: dict[str, Any],
    env: dict[str, str],
) -> None:
    pod = make_netns()
    result = node.add(net_conf(node, **extra), pod, env=env)
    assert result["interfaces"][2]["mac"] == "0a:58:0a:f4:01:99", where
    assert link(pod, "eth0").get_attr("IFLA_ADDRESS") == "0a:58:0a:f4:01:99"


def test_layer2_only_and_disabled_container_interface(
    node: Node, make_netns: Callable[[], str]
) -> None:
    pod1, pod2 = make_netns(), make_netns()
    base = {"cniVersion": "1.0.0", "name": "l2", "type": "bridge", "bridge": "br-l2"}
    r1 = node.add({**base, "ipam": {}}, pod1, cid="l2a")
    # No addresses: Go omits "ips" (omitempty); an empty list is equivalent.
    assert not r1.get("ips") and link(pod1, "eth0")["flags"] & 1
    r2 = node.add({**base, "disableContainerInterface": True}, pod2, cid="l2b")
    assert r2["interfaces"][2]["name"] == "eth0"
    assert not link(pod2, "eth0")["flags"] & 1  # left down
    node.delete({**base, "ipam": {}}, pod1, cid="l2a")
    assert link(pod1, "eth0") is None


def test_macspoofchk(node: Node, make_netns: Callable[[], str]) -> None:
    pod = make_netns()
    conf = net_conf(node, macspoofchk=True)
    result = node.add(conf, pod)
    mac = result["interfaces"][2]["mac"]
    table = node.sh("nft", "list", "table", "bridge", "nat")
    assert "cni-br-iface-pod1-eth0" in table
    assert f"ether saddr {mac} return" in table
    assert ping(pod, "10.244.1.1")
    subprocess.run(
        ["ip", "-n", Path(pod).name, "link", "set", "eth0", "address", "0a:00:00:00:00:01"],
        check=True,
    )
    assert not ping(pod, "10.244.1.1", attempts=2)
    node.delete(conf, pod)
    assert "cni-br-iface" not in node.sh("nft", "list", "table", "bridge", "nat")


# -- nftables backend ---------------------------------------------------------------------------


def test_nftables_backend(node: Node, make_netns: Callable[[], str]) -> None:
    pod = make_netns()
    conf = net_conf(node, v6=True, ipMasq=True, ipMasqBackend="nftables")
    node.add(conf, pod)
    ruleset = node.sh("nft", "list", "table", "inet", "cni_plugins_masquerade")
    assert "type nat hook postrouting priority srcnat" in ruleset
    assert "goto masq_checks" in ruleset
    assert "ip saddr 10.244.1.2 ip daddr != 10.244.1.0/24 masquerade" in ruleset
    assert "ip6 saddr fd00:10:244:1::2 ip6 daddr != fd00:10:244:1::/64 masquerade" in ruleset
    assert "net: cbr0, if: eth0, id: pod1" in ruleset
    assert node.nat() == []
    check = node.run("CHECK", {**conf, "prevResult": node.add(conf, make_netns(), cid="pod2")})
    assert check.returncode == 1  # pod2's prevResult is checked against pod1's netns args
    node.delete(conf, pod)
    ruleset = node.sh("nft", "list", "table", "inet", "cni_plugins_masquerade")
    assert "id: pod1" not in ruleset and "id: pod2" in ruleset


# -- CHECK, GC, STATUS --------------------------------------------------------------------------


def test_check(node: Node, make_netns: Callable[[], str]) -> None:
    pod = make_netns()
    conf = net_conf(node, ipMasq=True, isDefaultGateway=True)
    result = node.add(conf, pod)
    chk = {**conf, "prevResult": result}
    proc = node.run("CHECK", chk, netns=pod)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout == b""
    subprocess.run(["ip", "-n", Path(pod).name, "route", "del", "10.244.0.0/16"], check=True)
    proc = node.run("CHECK", chk, netns=pod)
    assert proc.returncode == 1
    assert "10.244.0.0/16" in json.loads(proc.stdout)["msg"]
    subprocess.run(
        ["ip", "-n", Path(pod).name, "route", "add", "10.244.0.0/16", "via", "10.244.1.1"],
        check=True,
    )
    assert node.run("CHECK", chk, netns=pod).returncode == 0
    node.sh("iptables", "-t", "nat", "-F", CHAIN)
    proc = node.run("CHECK", chk, netns=pod)
    assert proc.returncode == 1 and "masquerade" in json.loads(proc.stdout)["msg"]
    proc = node.run("CHECK", conf, netns=pod)
    assert json.loads(proc.stdout)["msg"] == "Required prevResult missing"


@pytest.fixture
def ours_node(make_node: Callable[..., Node], script_bin_dir: Path) -> Node:
    if not (script_bin_dir / "host-local").exists():
        pytest.skip("our host-local is not there yet")
    return make_node("ours")


def test_gc_removes_stale_masquerading(ours_node: Node, make_netns: Callable[[], str]) -> None:
    node = ours_node
    conf = net_conf(node, ipMasq=True, cniVersion="1.1.0")
    pods = {cid: make_netns() for cid in ("keep", "stale")}
    for cid, pod in pods.items():
        node.add(conf, pod, cid=cid)
    nft_conf = {**conf, "ipMasqBackend": "nftables"}
    node.add(nft_conf, make_netns(), cid="stale-nft", ifname="net1")
    gc_conf = {**conf, "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    proc = node.run("GC", gc_conf)
    assert proc.returncode == 0, proc.stdout
    nat = node.nat()
    assert any(chain_name("cbr0", "keep") in ln for ln in nat)
    assert not any(chain_name("cbr0", "stale") in ln for ln in nat)
    assert "stale-nft" not in node.sh("nft", "list", "table", "inet", "cni_plugins_masquerade")


def test_status_delegates_to_ipam(ours_node: Node) -> None:
    conf = net_conf(ours_node, cniVersion="1.1.0")
    proc = ours_node.run("STATUS", conf)
    assert proc.returncode == 0, proc.stdout
    conf["ipam"]["type"] = "missing-ipam"
    proc = ours_node.run("STATUS", conf)
    assert proc.returncode == 1
    assert "missing-ipam" in json.loads(proc.stdout)["msg"]


# -- bad input: code 7 naming the key, and nothing changed --------------------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"mtu": "1500"}, "mtu"),
        ({"vlan": 5000}, "vlan"),
        ({"ipMasqBackend": "pf"}, "ipMasqBackend"),
        ({"hairpinMode": True, "promiscMode": True}, "hairpinMode"),
        ({"runtimeConfig": {"mac": "nope"}}, "runtimeConfig.mac"),
        ({"vlanTrunk": [{"id": 0}]}, "vlanTrunk"),
        ({"isGateway": "yes"}, "isGateway"),
    ],
)
def test_bad_config_changes_nothing(
    node: Node, make_netns: Callable[[], str], extra: dict[str, Any], key: str
) -> None:
    pod = make_netns()
    proc = node.run("ADD", net_conf(node, **extra), netns=pod)
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 7 and err["msg"].startswith(key)
    assert link(node.path, "cni0") is None and link(pod, "eth0") is None
    assert node.reservations() == []
