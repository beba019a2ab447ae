"""Byte-level tests of the rtnetlink packing/parsing (no root, no kernel)."""

from __future__ import annotations

import struct

import pytest

from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.nltypes import parse_address, parse_link, parse_route
from cni_plugins.spec.ip import ip_interface, ip_network


def test_attr_pads_to_four_bytes_but_length_excludes_padding() -> None:
    assert m.attr(3, b"lo\0") == struct.pack("=HH", 7, 3) + b"lo\0" + b"\0"
    assert m.attr_u32(4, 1500) == struct.pack("=HHI", 8, 4, 1500)
    assert m.attr_u8(33, 1) == struct.pack("=HHB", 5, 33, 1) + b"\0\0\0"
    assert m.attr_u16(1, 100) == struct.pack("=HHH", 6, 1, 100) + b"\0\0"
    assert m.attr_str(3, "eth0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0" * 3
    assert m.attr(1, b"") == struct.pack("=HH", 4, 1)


@pytest.mark.parametrize("n", range(0, 13))
def test_align4(n: int) -> None:
    assert m.align4(n) % 4 == 0
    assert 0 <= m.align4(n) - n < 4


def test_nest_sets_nested_flag_and_wraps_children() -> None:
    inner = m.attr_str(m.IFLA_INFO_KIND, "veth")
    packed = m.nest(m.IFLA_LINKINFO, inner)
    assert packed[:4] == struct.pack("=HH", 4 + len(inner), m.IFLA_LINKINFO | m.NLA_F_NESTED)
    assert packed[4:] == inner
    assert m.nest(12, flag=False) == struct.pack("=HH", 4, 12)


def test_parse_attrs_roundtrip_masks_flags_and_keeps_repeats() -> None:
    buf = (
        m.attr_str(m.IFLA_IFNAME, "veth1234abcd")
        + m.nest(m.IFLA_AF_SPEC, m.attr(2, b"\1\0\2\0"), m.attr(2, b"\3\0\4\0"))
        + m.attr_u32(m.IFLA_MTU, 9000)
    )
    attrs = m.parse_attrs(buf)
    assert m.get_str(attrs[m.IFLA_IFNAME]) == "veth1234abcd"
    assert m.get_u32(attrs[m.IFLA_MTU]) == 9000
    spec = list(m.iter_attrs(attrs[m.IFLA_AF_SPEC]))
    assert spec == [(2, b"\1\0\2\0"), (2, b"\3\0\4\0")]


def test_parse_attrs_rejects_truncation() -> None:
    with pytest.raises(ValueError, match="truncated"):
        m.parse_attrs(struct.pack("=HH", 12, 1) + b"ab")


def test_pack_msg_and_iter_msgs_handle_several_messages_per_datagram() -> None:
    one = m.pack_msg(m.RTM_NEWLINK, m.NLM_F_MULTI, 7, b"abc\0")
    two = m.pack_msg(m.NLMSG_DONE, m.NLM_F_MULTI, 7, struct.pack("=i", 0))
    assert one[:16] == struct.pack("=IHHII", 20, m.RTM_NEWLINK, m.NLM_F_MULTI, 7, 0)
    msgs = list(m.iter_msgs(one + two))
    assert msgs == [
        (m.RTM_NEWLINK, m.NLM_F_MULTI, 7, b"abc\0"),
        (m.NLMSG_DONE, m.NLM_F_MULTI, 7, b"\0\0\0\0"),
    ]


def test_parse_error_plain_ack_and_extended_ack() -> None:
    echoed = struct.pack("=IHHII", 40, m.RTM_NEWLINK, 0x605, 3, 0)
    assert m.parse_error(0, struct.pack("=i", 0) + echoed) == (0, "")
    body = struct.pack("=i", -95) + echoed + m.attr_str(m.NLMSGERR_ATTR_MSG, "Unknown device type")
    flags = m.NLM_F_CAPPED | m.NLM_F_ACK_TLVS
    assert m.parse_error(flags, body) == (95, "Unknown device type")
    # not capped: the whole request is echoed before the TLVs
    full = struct.pack("=IHHII", 24, m.RTM_NEWLINK, 0x605, 3, 0) + b"\0" * 8
    body = struct.pack("=i", -17) + full + m.attr_str(m.NLMSGERR_ATTR_MSG, "File exists")
    assert m.parse_error(m.NLM_F_ACK_TLVS, body) == (17, "File exists")


def test_mac_format_and_parse() -> None:
    assert m.parse_mac("0a:58:0A:f4:01:02") == bytes([0x0A, 0x58, 0x0A, 0xF4, 1, 2])
    assert m.format_mac(bytes([0x0A, 0x58, 0x0A, 0xF4, 1, 2])) == "0a:58:0a:f4:01:02"
    for bad in ("0a:58", "zz:00:00:00:00:00", "0a580af40102"):
        with pytest.raises(ValueError):
            m.parse_mac(bad)


def test_parse_link_reads_kind_master_and_operstate() -> None:
    body = (
        m.IFINFOMSG.pack(0, 1, 5, m.IFF_UP | m.IFF_PROMISC, 0)
        + m.attr_str(m.IFLA_IFNAME, "veth0")
        + m.attr_u32(m.IFLA_MTU, 1450)
        + m.attr(m.IFLA_ADDRESS, bytes.fromhex("0a580af40102"))
        + m.attr_u32(m.IFLA_MASTER, 3)
        + m.attr_u8(m.IFLA_OPERSTATE, m.IF_OPER_UP)
        + m.attr_u32(m.IFLA_LINK, 2)
        + m.attr(m.IFLA_LINK_NETNSID, struct.pack("=i", 0))
        + m.nest(
            m.IFLA_LINKINFO,
            m.attr_str(m.IFLA_INFO_KIND, "veth"),
            m.attr_str(m.IFLA_INFO_SLAVE_KIND, "bridge"),
        )
    )
    link = parse_link(body)
    assert (link.index, link.name, link.mtu, link.mac) == (5, "veth0", 1450, "0a:58:0a:f4:01:02")
    assert (link.kind, link.slave_kind, link.master, link.link) == ("veth", "bridge", 3, 2)
    assert link.is_up and link.promisc and link.oper_up and link.operstate_name == "up"
    assert link.link_netnsid == 0


def test_parse_address_prefers_ifa_local_and_ifa_flags() -> None:
    v4 = (
        m.IFADDRMSG.pack(m.AF_INET, 24, 0, 0, 4)
        + m.attr(m.IFA_ADDRESS, bytes([10, 0, 0, 9]))
        + m.attr(m.IFA_LOCAL, bytes([10, 0, 0, 1]))
        + m.attr_u32(m.IFA_FLAGS, m.IFA_F_NOPREFIXROUTE | m.IFA_F_PERMANENT)
    )
    a = parse_address(v4)
    assert (a.index, a.interface, a.family) == (4, ip_interface("10.0.0.1/24"), m.AF_INET)
    assert a.flags == m.IFA_F_NOPREFIXROUTE | m.IFA_F_PERMANENT
    v6 = m.IFADDRMSG.pack(m.AF_INET6, 64, m.IFA_F_NODAD, 0, 4) + m.attr(
        m.IFA_ADDRESS, ip_interface("fd00::1/64").ip.packed
    )
    b = parse_address(v6)
    assert (b.interface, b.flags, b.family) == (ip_interface("fd00::1/64"), m.IFA_F_NODAD, 10)


def test_parse_route_default_with_metrics_and_big_table() -> None:
    body = (
        m.RTMSG.pack(m.AF_INET, 0, 0, 0, m.RT_TABLE_UNSPEC, 3, 0, m.RTN_UNICAST, 0)
        + m.attr_u32(m.RTA_TABLE, 1000)
        + m.attr(m.RTA_GATEWAY, bytes([10, 0, 0, 1]))
        + m.attr_u32(m.RTA_OIF, 2)
        + m.attr_u32(m.RTA_PRIORITY, 100)
        + m.nest(m.RTA_METRICS, m.attr_u32(m.RTAX_MTU, 1400), m.attr_u32(m.RTAX_ADVMSS, 1360))
    )
    r = parse_route(body)
    assert r.dst == ip_network("0.0.0.0/0")
    assert (str(r.gateway), r.oif, r.priority, r.table) == ("10.0.0.1", 2, 100, 1000)
    assert (r.mtu, r.advmss, r.protocol) == (1400, 1360, 3)
    v6 = m.RTMSG.pack(m.AF_INET6, 64, 0, 0, 254, 2, 0, 1, 0) + m.attr(
        m.RTA_DST, ip_network("fd00:1::/64").network_address.packed
    )
    assert parse_route(v6).dst == ip_network("fd00:1::/64")
    assert parse_route(v6).gateway is None


def test_bridge_vlan_message_single_range_and_self() -> None:
    from cni_plugins.linux.netlink import _bridge_vlan_msg, _parse_vlans

    pu = m.BRIDGE_VLAN_INFO_PVID | m.BRIDGE_VLAN_INFO_UNTAGGED
    one = _bridge_vlan_msg(7, 100, None, pu, False)
    assert one[: m.IFINFOMSG.size] == m.IFINFOMSG.pack(m.AF_BRIDGE, 0, 7, 0, 0)
    (kind, spec), *rest = m.iter_attrs(one, m.IFINFOMSG.size)
    assert kind == m.IFLA_AF_SPEC and rest == []
    assert list(m.iter_attrs(spec)) == [(m.IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", pu, 100))]
    assert one[m.IFINFOMSG.size + 2 : m.IFINFOMSG.size + 4] == struct.pack(
        "=H", m.IFLA_AF_SPEC | m.NLA_F_NESTED
    )

    rng = _bridge_vlan_msg(7, 200, 203, 0, True)
    spec = m.parse_attrs(rng, m.IFINFOMSG.size)[m.IFLA_AF_SPEC]
    assert list(m.iter_attrs(spec)) == [
        (m.IFLA_BRIDGE_FLAGS, struct.pack("=H", m.BRIDGE_FLAGS_SELF)),
        (m.IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", m.BRIDGE_VLAN_INFO_RANGE_BEGIN, 200)),
        (m.IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", m.BRIDGE_VLAN_INFO_RANGE_END, 203)),
    ]
    # what a dump returns parses back, ranges expanded
    assert _parse_vlans(spec) == [(200, 0), (201, 0), (202, 0), (203, 0)]
    assert _parse_vlans(m.parse_attrs(one, m.IFINFOMSG.size)[m.IFLA_AF_SPEC]) == [(100, pu)]


def test_sysctl_paths() -> None:
    from cni_plugins.linux import sysctl

    assert sysctl.path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
    assert sysctl.path("net/ipv4/conf/cni0.100/rp_filter") == (
        "/proc/sys/net/ipv4/conf/cni0.100/rp_filter"
    )
    assert sysctl.path(sysctl.conf_key("eth0.5", "accept_ra", family=6)) == (
        "/proc/sys/net/ipv6/conf/eth0.5/accept_ra"
    )
    for bad in ("net..ipv4", "net/../../etc/passwd", ("net", "a/b"), ("net", ".."), ""):
        with pytest.raises(ValueError):
            sysctl.path(bad)


def test_errors_are_classified_by_errno_and_map_to_cni_errors() -> None:
    import errno

    from cni_plugins.linux.netlink import (
        NetlinkError,
        NetlinkExistsError,
        NetlinkNotFoundError,
        map_netlink_errors,
    )
    from cni_plugins.linux.nlsock import _error
    from cni_plugins.spec.errors import InternalError

    exists = _error(errno.EEXIST, "create veth veth1/eth0", "")
    assert isinstance(exists, NetlinkExistsError) and exists.errno == errno.EEXIST
    assert str(exists) == "[Errno 17] create veth veth1/eth0: File exists"
    for code in (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL):
        assert type(_error(code, "x", "")) is NetlinkNotFoundError
    other = _error(errno.EOPNOTSUPP, "create bridge br0", "Unknown device type")
    assert type(other) is NetlinkError and isinstance(other, OSError)
    assert other.strerror == "create bridge br0: Operation not supported (Unknown device type)"

    with pytest.raises(InternalError) as info, map_netlink_errors("failed to set up lo"):
        raise _error(errno.ENODEV, "set link 'lo' up", "")
    assert info.value.code == 999
    assert info.value.msg == "failed to set up lo: set link 'lo' up: No such device"
    assert isinstance(info.value.__cause__, NetlinkNotFoundError)
    with pytest.raises(KeyError), map_netlink_errors("untouched"):
        raise KeyError("other errors pass through")
