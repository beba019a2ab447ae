"""``portmap.nfrules``: UDP host ports read from rules as nf_tables holds them,
and "unknown" for every shape not read (then DEL lists the chain instead)."""

from __future__ import annotations

import pytest

from cni_plugins.linux import nfmsg as n
from cni_plugins.linux import nlmsg as m
from cni_plugins.portmap import nfrules
from tests.unit.linux.test_nfmsg import (
    cmp_eq,
    counter,
    expr,
    jump,
    meta_l4proto,
    payload,
    rule_body,
    target,
)

UDP, TCP = b"\x11", b"\x06"


def dport(port: int, reg: int = 1) -> tuple[bytes, bytes]:
    return payload(n.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg), cmp_eq(port.to_bytes(2, "big"), reg)


def rule(*exprs: bytes) -> n.Rule:
    return n.parse_rule(rule_body("CNI-DN-x", 1, *exprs))


def dnat(proto: bytes, port: int) -> n.Rule:
    """``-p <proto> -m <proto> --dport <port> -j DNAT`` as iptables-nft 1.8.9 writes it."""
    return rule(meta_l4proto(), cmp_eq(proto), *dport(port), counter(), target("DNAT"))


def test_udp_dnat_ports_are_read_and_tcp_ignored() -> None:
    rules = [
        dnat(UDP, 5353),
        dnat(TCP, 8080),
        dnat(UDP, 53),
        # the hairpin mark: a jump, not a DNAT
        rule(meta_l4proto(), cmp_eq(UDP), *dport(5353), counter(), jump("CNI-HOSTPORT-SETMARK")),
    ]
    assert nfrules.udp_ports(rules) == {5353, 53}
    assert nfrules.udp_ports([]) == set()


def test_ipv4_protocol_byte_and_other_registers() -> None:
    """Older iptables-nft compares the IPv4 header's protocol byte; registers
    other than 1 (the 32-bit ones) work the same."""
    proto = payload(n.NFT_PAYLOAD_NETWORK_HEADER, 9, 1, reg=8)
    got = nfrules.udp_ports([rule(proto, cmp_eq(UDP, reg=8), *dport(5000, reg=9), target("DNAT"))])
    assert got == {5000}


def test_a_destination_address_compare_does_not_confuse_the_port() -> None:
    daddr = payload(n.NFT_PAYLOAD_NETWORK_HEADER, 16, 4)
    r = rule(
        daddr,
        cmp_eq(bytes([10, 0, 0, 1])),
        meta_l4proto(),
        cmp_eq(UDP),
        *dport(7000),
        target("DNAT"),
    )
    assert nfrules.udp_ports([r]) == {7000}


@pytest.mark.parametrize(
    "exprs",
    [
        # the port as a compat "udp" match (iptables-nft before native translation)
        (
            meta_l4proto(),
            cmp_eq(UDP),
            expr("match", m.attr_str(1, "udp")),
            target("DNAT"),
        ),
        # no protocol at all
        (*dport(53), target("DNAT")),
        # a port range: not an equality
        (meta_l4proto(), cmp_eq(UDP), payload(2, 2, 2), cmp_eq(b"\x00\x35", op=5), target("DNAT")),
        # an expression not understood here, between load and compare
        (
            meta_l4proto(),
            cmp_eq(UDP),
            payload(2, 2, 2),
            expr("bitwise", n.attr_be32(1, 1), n.attr_be32(2, 1)),
            cmp_eq(b"\x00\x35"),
            target("DNAT"),
        ),
        # a native nat expression with a protocol but no port
        (
            meta_l4proto(),
            cmp_eq(UDP),
            expr("nat"),
        ),
    ],
    ids=["compat udp match", "no protocol", "port range", "bitwise", "nat without port"],
)
def test_dnat_rules_in_other_shapes_are_unknown(exprs: tuple[bytes, ...]) -> None:
    assert nfrules.udp_ports([dnat(UDP, 1), rule(*exprs)]) is None


def test_meta_keys_other_than_l4proto_are_not_the_protocol() -> None:
    iifname = expr("meta", n.attr_be32(n.NFTA_META_DREG, 1), n.attr_be32(n.NFTA_META_KEY, 6))
    r = rule(iifname, cmp_eq(UDP + b"\0" * 15), *dport(53), target("DNAT"))
    assert nfrules.udp_ports([r]) is None
