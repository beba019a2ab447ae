"""RouteSocket against a real kernel, inside throwaway namespaces; pyroute2 checks.

Run as root: ``.venv/bin/pytest tests/integration/linux``.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from typing import Any

import pytest

from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.netlink import (
    NetlinkError,
    NetlinkExistsError,
    NetlinkNotFoundError,
    RouteSocket,
)
from cni_plugins.spec.ip import ip_address, ip_interface, ip_network

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.linux.conftest import TestNS

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces"),
]


def _oracle_link(t: TestNS, name: str) -> Any:
    """pyroute2's view of link ``name`` in ``t``."""
    ipr = t.oracle()
    (index,) = ipr.link_lookup(ifname=name)
    return ipr.get_links(index)[0]


def _oracle_addrs(t: TestNS, name: str) -> dict[str, Any]:
    ipr = t.oracle()
    (index,) = ipr.link_lookup(ifname=name)
    return {f"{a.get('address')}/{a['prefixlen']}": a for a in ipr.get_addr(index=index)}


def _oracle_routes(t: TestNS, family: int, table: int = 254) -> dict[str, Any]:
    out = {}
    for r in t.oracle().get_routes(family=family, table=table):
        dst = r.get("dst") or ("0.0.0.0" if family == m.AF_INET else "::")
        out[f"{dst}/{r['dst_len']}"] = r
    return out


def test_lo_up_down_and_lookup(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        lo = rt.link("lo")
        assert (lo.index, lo.name, lo.is_up) == (1, "lo", False)
        assert "lo" in [link.name for link in rt.links()]

        rt.set_up("lo")
        assert _oracle_link(netns, "lo")["flags"] & m.IFF_UP
        assert rt.link(1).is_up

        rt.set_down(1)
        assert not _oracle_link(netns, "lo")["flags"] & m.IFF_UP


def test_missing_link_is_enodev(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        with pytest.raises(NetlinkNotFoundError) as info:
            rt.link("nope0")
        assert info.value.errno == errno.ENODEV
        assert "nope0" in str(info.value)
        assert rt.find_link("nope0") is None
        with pytest.raises(NetlinkNotFoundError):
            rt.set_up("nope0")


def test_lo_addresses_listed_per_family(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.set_up("lo")
        netns.ip("addr", "add", "127.0.0.5/8", "dev", "lo")
        got = {str(a.interface) for a in rt.addresses("lo")}
        assert got == {"127.0.0.1/8", "127.0.0.5/8", "::1/128"}
        assert {str(a.interface) for a in rt.addresses("lo", m.AF_INET6)} == {"::1/128"}
        v4 = rt.addresses(1, m.AF_INET)
        assert [a.interface for a in v4][:1] == [ip_interface("127.0.0.1/8")]
        assert all(a.scope == m.RT_SCOPE_HOST and a.family == m.AF_INET for a in v4)


def test_socket_stays_in_its_namespace(make_netns: Callable[[], TestNS]) -> None:
    """Two sockets in two namespaces see their own ``lo``, not the root one."""
    a, b = make_netns(), make_netns()
    with RouteSocket(a.ns) as ra, RouteSocket(b.ns) as rb:
        ra.set_up("lo")
        assert ra.link("lo").is_up
        assert not rb.link("lo").is_up


# -- stage 2: bridge, veth, master, addresses, routes -------------------------------------------


def test_bridge_created_with_mtu_and_eexist_on_repeat(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.create_bridge("cni0", mtu=1450)
        br = _oracle_link(netns, "cni0")
        assert br.get(("linkinfo", "kind")) == "bridge"
        assert br.get("mtu") == 1450
        ours = rt.link("cni0")
        assert (ours.kind, ours.mtu, ours.mac) == ("bridge", 1450, br.get("address"))
        with pytest.raises(NetlinkExistsError) as info:
            rt.create_bridge("cni0")
        assert info.value.errno == errno.EEXIST


def test_bridge_vlan_filtering(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        try:
            rt.create_bridge("cni0", vlan_filtering=True)
        except NetlinkError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                pytest.skip("kernel built without CONFIG_BRIDGE_VLAN_FILTERING")
            raise
        br = _oracle_link(netns, "cni0")
        assert br.get(("linkinfo", "data", "br_vlan_filtering")) == 1


def test_unknown_kind_reports_kernel_extack(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt, pytest.raises(NetlinkError) as info:
        rt._newlink("x0", "nosuchkind", b"")
    assert info.value.errno == errno.EOPNOTSUPP
    assert "create nosuchkind x0" in str(info.value)
    assert "Unknown device type" in str(info.value)


def test_veth_peer_created_directly_in_other_netns(make_netns: Callable[[], TestNS]) -> None:
    node, pod = make_netns(), make_netns()
    with RouteSocket(node.ns) as rt:
        # an eth0 on the node side too: the peer name is only checked in the pod netns
        rt.create_veth("eth0", "ignored0")
        rt.create_veth(
            "veth1a2b3c4d", "eth0", peer_netns_fd=pod.ns.fd, mtu=1400, peer_mac="0a:58:0a:f4:01:02"
        )
        host = _oracle_link(node, "veth1a2b3c4d")
        assert host.get(("linkinfo", "kind")) == "veth"
        assert host.get("mtu") == 1400
        assert host.get("link_netnsid") is not None  # the peer lives elsewhere
        ctr = _oracle_link(pod, "eth0")
        assert ctr.get(("linkinfo", "kind")) == "veth"
        assert (ctr.get("mtu"), ctr.get("address")) == (1400, "0a:58:0a:f4:01:02")
        assert ctr.get("link") == host["index"]  # peer ifindex (in the other netns)
        assert not pod.oracle().link_lookup(ifname="veth1a2b3c4d")
        assert not pod.oracle().link_lookup(ifname="ignored0")

        ours = rt.link("veth1a2b3c4d")
        assert (ours.kind, ours.mtu, ours.link) == ("veth", 1400, ctr["index"])
        assert ours.link_netnsid is not None

        with pytest.raises(NetlinkExistsError):
            rt.create_veth("veth1a2b3c4d", "eth1", peer_netns_fd=pod.ns.fd)
        with pytest.raises(NetlinkExistsError):  # peer name taken in the pod netns
            rt.create_veth("vethfresh", "eth0", peer_netns_fd=pod.ns.fd)

        rt.delete_link("veth1a2b3c4d")  # deletes the pod end too
        assert not pod.oracle().link_lookup(ifname="eth0")
        with pytest.raises(NetlinkNotFoundError) as info:
            rt.delete_link("veth1a2b3c4d")
        assert info.value.errno == errno.ENODEV


def test_master_nomaster_and_link_settings(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.create_bridge("cni0")
        rt.create_veth("vethA", "vethB", mac="0a:58:00:00:00:01")
        rt.set_master("vethA", "cni0")
        br_index = _oracle_link(netns, "cni0")["index"]
        assert _oracle_link(netns, "vethA").get("master") == br_index
        assert rt.link("vethA").master == br_index
        assert rt.link("vethA").slave_kind == "bridge"
        rt.set_master("vethA", None)
        assert not _oracle_link(netns, "vethA").get("master")

        rt.set_mtu("vethB", 1300)
        rt.set_mac("vethB", "0a:58:00:00:00:02")
        rt.set_promisc("vethB", True)
        b = _oracle_link(netns, "vethB")
        assert (b.get("mtu"), b.get("address")) == (1300, "0a:58:00:00:00:02")
        assert b["flags"] & m.IFF_PROMISC
        assert rt.link("vethB").promisc
        rt.set_promisc("vethB", False)
        assert not _oracle_link(netns, "vethB")["flags"] & m.IFF_PROMISC

        rt.rename("vethB", "renamed0")
        assert netns.oracle().link_lookup(ifname="renamed0")
        assert rt.find_link("vethB") is None


def test_set_netns_moves_link(make_netns: Callable[[], TestNS]) -> None:
    a, b = make_netns(), make_netns()
    with RouteSocket(a.ns) as rt:
        rt.create_veth("mv0", "mv1")
        rt.set_netns("mv1", b.ns.fd)
        assert rt.find_link("mv1") is None
    assert b.oracle().link_lookup(ifname="mv1")


def test_addresses_v4_v6_add_list_delete(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.create_veth("eth0", "peer0")
        idx = rt.link("eth0").index
        rt.add_address(idx, ip_interface("10.244.1.2/24"))
        rt.add_address("eth0", ip_interface("fd00:1::2/64"), nodad=True)
        rt.add_address("eth0", ip_interface("10.9.9.9/32"))

        seen = _oracle_addrs(netns, "eth0")
        assert seen["10.244.1.2/24"].get("broadcast") == "10.244.1.255"
        assert seen["10.9.9.9/32"].get("broadcast") is None
        assert seen["fd00:1::2/64"]["flags"] & m.IFA_F_NODAD

        v4 = {str(a.interface) for a in rt.addresses("eth0", m.AF_INET)}
        assert v4 == {"10.244.1.2/24", "10.9.9.9/32"}
        v6 = {str(a.interface) for a in rt.addresses(idx, m.AF_INET6)}
        assert "fd00:1::2/64" in v6

        with pytest.raises(NetlinkExistsError):
            rt.add_address("eth0", ip_interface("10.244.1.2/24"))
        rt.add_address("eth0", ip_interface("10.244.1.2/24"), replace=True)

        rt.delete_address("eth0", ip_interface("10.244.1.2/24"))
        rt.delete_address(idx, ip_interface("fd00:1::2/64"))
        assert set(_oracle_addrs(netns, "eth0")) >= {"10.9.9.9/32"}
        assert "10.244.1.2/24" not in _oracle_addrs(netns, "eth0")
        assert "fd00:1::2/64" not in _oracle_addrs(netns, "eth0")
        with pytest.raises(NetlinkNotFoundError):
            rt.delete_address("eth0", ip_interface("10.244.1.2/24"))


def _up_veth_with_addrs(rt: RouteSocket) -> int:
    rt.create_veth("eth0", "peer0")
    rt.set_up("peer0")
    rt.set_up("eth0")
    rt.add_address("eth0", ip_interface("10.244.1.2/24"))
    rt.add_address("eth0", ip_interface("fd00:1::2/64"), nodad=True)
    return rt.link("eth0").index


def test_routes_gateway_metric_table_mtu_and_delete(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        idx = _up_veth_with_addrs(rt)
        gw = ip_address("10.244.1.1")
        rt.add_route(ip_network("10.244.0.0/16"), gateway=gw, priority=100)
        rt.add_route(ip_network("0.0.0.0/0"), gateway=gw, oif="eth0")
        rt.add_route(ip_network("10.96.0.0/12"), oif=idx, table=1000, mtu=1400, advmss=1360)
        rt.add_route(ip_network("fd00:2::/64"), gateway=ip_address("fd00:1::1"), priority=7)

        main = _oracle_routes(netns, m.AF_INET)
        assert main["10.244.0.0/16"].get("gateway") == "10.244.1.1"
        assert main["10.244.0.0/16"].get("priority") == 100
        assert main["0.0.0.0/0"].get("oif") == idx
        t1000 = _oracle_routes(netns, m.AF_INET, table=1000)
        r = t1000["10.96.0.0/12"]
        assert (r.get(("metrics", "mtu")), r.get(("metrics", "advmss"))) == (1400, 1360)
        assert r.get("oif") == idx and r["scope"] == m.RT_SCOPE_LINK
        v6 = _oracle_routes(netns, m.AF_INET6)
        assert v6["fd00:2::/64"].get("gateway") == "fd00:1::1"
        assert v6["fd00:2::/64"].get("priority") == 7

        ours = {str(r.dst): r for r in rt.routes(m.AF_INET)}
        assert ours["0.0.0.0/0"].gateway == gw and ours["0.0.0.0/0"].oif == idx
        assert ours["10.244.0.0/16"].priority == 100
        assert "10.96.0.0/12" not in ours  # not in main
        (big,) = rt.routes(m.AF_INET, table=1000)
        assert (str(big.dst), big.mtu, big.advmss, big.table) == ("10.96.0.0/12", 1400, 1360, 1000)
        assert any(str(r.dst) == "fd00:2::/64" for r in rt.routes(m.AF_INET6))

        with pytest.raises(NetlinkExistsError):
            rt.add_route(ip_network("10.244.0.0/16"), gateway=gw, priority=100)
        rt.add_route(ip_network("0.0.0.0/0"), gateway=ip_address("10.244.1.254"), replace=True)
        assert _oracle_routes(netns, m.AF_INET)["0.0.0.0/0"].get("gateway") == "10.244.1.254"

        rt.delete_route(ip_network("10.244.0.0/16"), priority=100)
        rt.delete_route(ip_network("10.96.0.0/12"), table=1000)
        rt.delete_route(ip_network("0.0.0.0/0"))
        rt.delete_route(ip_network("fd00:2::/64"))
        assert "10.244.0.0/16" not in _oracle_routes(netns, m.AF_INET)
        assert "0.0.0.0/0" not in _oracle_routes(netns, m.AF_INET)
        assert not _oracle_routes(netns, m.AF_INET, table=1000)
        assert "fd00:2::/64" not in _oracle_routes(netns, m.AF_INET6)
        with pytest.raises(NetlinkNotFoundError) as info:
            rt.delete_route(ip_network("10.244.0.0/16"))
        assert info.value.errno == errno.ESRCH


# -- stage 3: bridge ports, VLANs, route get, waiting, sysctl -------------------------------------


def _slave_data(t: TestNS, name: str) -> Any:
    return _oracle_link(t, name).get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA")


def test_bridge_port_hairpin_and_isolation(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.create_bridge("cni0")
        rt.create_veth("vethA", "vethB")
        rt.set_master("vethA", "cni0")
        rt.set_bridge_port("vethA", hairpin=True)
        data = _slave_data(netns, "vethA")
        assert (data.get("IFLA_BRPORT_MODE"), data.get("IFLA_BRPORT_ISOLATED")) == (1, 0)
        rt.set_bridge_port("vethA", isolated=True)
        data = _slave_data(netns, "vethA")
        assert (data.get("IFLA_BRPORT_MODE"), data.get("IFLA_BRPORT_ISOLATED")) == (1, 1)
        rt.set_bridge_port("vethA", hairpin=False, isolated=False)
        data = _slave_data(netns, "vethA")
        assert (data.get("IFLA_BRPORT_MODE"), data.get("IFLA_BRPORT_ISOLATED")) == (0, 0)
        with pytest.raises(NetlinkError):  # not a bridge port
            rt.set_bridge_port("vethB", hairpin=True)


def _vlan_bridge(rt: RouteSocket) -> None:
    try:
        rt.create_bridge("cni0", vlan_filtering=True)
    except NetlinkError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            pytest.skip("kernel built without CONFIG_BRIDGE_VLAN_FILTERING")
        raise


def test_bridge_vlans_pvid_untagged_range_and_default_removed(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        _vlan_bridge(rt)
        rt.create_veth("vethA", "vethB")
        rt.set_master("vethA", "cni0")
        rt.add_bridge_vlan("vethA", 100, pvid=True, untagged=True)
        rt.add_bridge_vlan("vethA", 200, vid_end=203)
        rt.delete_bridge_vlan("vethA", 1)
        got = dict(rt.bridge_vlans("vethA"))
        pu = m.BRIDGE_VLAN_INFO_PVID | m.BRIDGE_VLAN_INFO_UNTAGGED
        assert got == {100: pu, 200: 0, 201: 0, 202: 0, 203: 0}
        shown = subprocess.run(
            ["bridge", "-n", netns.name, "-j", "vlan", "show", "dev", "vethA"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout  # iproute2 as a second opinion
        vids = {v["vlan"]: v.get("flags", []) for e in json.loads(shown) for v in e["vlans"]}
        assert set(vids) == {100, 200, 201, 202, 203} or set(vids) == {100, 200}
        assert set(vids[100]) == {"PVID", "Egress Untagged"}
        rt.delete_bridge_vlan("vethA", 200, vid_end=203)
        assert dict(rt.bridge_vlans("vethA")) == {100: pu}


def test_vlan_interface_on_bridge(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        _vlan_bridge(rt)
        rt.add_bridge_vlan("cni0", 100, bridge_self=True)
        try:
            rt.create_vlan("cni0.100", "cni0", 100)
        except NetlinkError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                pytest.skip("kernel built without CONFIG_VLAN_8021Q")
            raise
        link = _oracle_link(netns, "cni0.100")
        assert link.get(("linkinfo", "kind")) == "vlan"
        assert link.get(("linkinfo", "data", "vlan_id")) == 100


def test_vlan_unsupported_kernel_reports_eopnotsupp_or_works(netns: TestNS) -> None:
    """Whatever the kernel config, VLAN calls either work or fail as NetlinkError."""
    with RouteSocket(netns.ns) as rt:
        rt.create_bridge("cni0")
        rt.create_veth("vethA", "vethB")
        rt.set_master("vethA", "cni0")
        try:
            rt.add_bridge_vlan("vethA", 10, pvid=True, untagged=True)
        except NetlinkError as exc:
            assert exc.errno in (errno.EOPNOTSUPP, errno.EINVAL)
            assert "add vlan 10 to 'vethA'" in str(exc)


def test_route_get_returns_oif(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        idx = _up_veth_with_addrs(rt)
        r = rt.route_get(ip_address("10.244.1.77"))
        assert (r.oif, str(r.prefsrc)) == (idx, "10.244.1.2")
        assert rt.route_get(ip_address("fd00:1::77")).oif == idx
        with pytest.raises(NetlinkError) as info:
            rt.route_get(ip_address("192.0.2.1"))
        assert info.value.errno == errno.ENETUNREACH
        rt.set_up("lo")
        assert rt.route_get(ip_address("127.0.0.1")).oif == 1


def test_wait_oper_up(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.create_veth("vethA", "vethB")
        rt.set_up("vethA")
        # peer still down: never comes up, all delays are spent
        down = rt.wait_oper_up("vethA", delays=(0, 0.01, 0.01))
        assert not down.oper_up and down.operstate_name == "lowerlayerdown"
        rt.set_up("vethB")
        up = rt.wait_oper_up("vethA")
        assert up.oper_up and up.name == "vethA"
