"""``linux.nfmsg`` without a kernel: request bytes and rule replies.

Rule replies are built here the way the kernel lays them out (nested
attributes flagged NLA_F_NESTED, big-endian integers), from the expressions
``nft --debug=netlink`` shows for the rules iptables-nft writes.
"""

from __future__ import annotations

import struct

import pytest

from cni_plugins.linux import nfmsg as n
from cni_plugins.linux import nlmsg as m


def be32(value: int) -> bytes:
    return struct.pack(">I", value & 0xFFFFFFFF)


def expr(name: str, *attrs: bytes) -> bytes:
    return m.nest(
        n.NFTA_LIST_ELEM, m.attr_str(n.NFTA_EXPR_NAME, name), m.nest(n.NFTA_EXPR_DATA, *attrs)
    )


def meta_l4proto(reg: int = 1) -> bytes:
    return expr("meta", m.attr(n.NFTA_META_DREG, be32(reg)), m.attr(n.NFTA_META_KEY, be32(16)))


def payload(base: int, offset: int, length: int, reg: int = 1) -> bytes:
    return expr(
        "payload",
        m.attr(n.NFTA_PAYLOAD_DREG, be32(reg)),
        m.attr(n.NFTA_PAYLOAD_BASE, be32(base)),
        m.attr(n.NFTA_PAYLOAD_OFFSET, be32(offset)),
        m.attr(n.NFTA_PAYLOAD_LEN, be32(length)),
    )


def cmp_eq(data: bytes, reg: int = 1, op: int = n.NFT_CMP_EQ) -> bytes:
    return expr(
        "cmp",
        m.attr(n.NFTA_CMP_SREG, be32(reg)),
        m.attr(n.NFTA_CMP_OP, be32(op)),
        m.nest(n.NFTA_CMP_DATA, m.attr(n.NFTA_DATA_VALUE, data)),
    )


def jump(chain: str, code: int = n.NFT_JUMP) -> bytes:
    verdict = m.nest(
        n.NFTA_DATA_VERDICT,
        m.attr(n.NFTA_VERDICT_CODE, be32(code)),
        m.attr_str(n.NFTA_VERDICT_CHAIN, chain),
    )
    return expr(
        "immediate",
        m.attr(n.NFTA_IMMEDIATE_DREG, be32(n.NFT_REG_VERDICT)),
        m.nest(n.NFTA_IMMEDIATE_DATA, verdict),
    )


def target(name: str) -> bytes:
    return expr("target", m.attr_str(n.NFTA_TARGET_NAME, name), m.attr(2, be32(2)))


def counter() -> bytes:
    return expr("counter", m.attr(1, b"\0" * 8), m.attr(2, b"\0" * 8))


def rule_body(chain: str, handle: int, *exprs: bytes, family: int = 2) -> bytes:
    return (
        struct.pack(">BBH", family, 0, 0)
        + m.attr_str(n.NFTA_RULE_TABLE, "nat")
        + m.attr_str(n.NFTA_RULE_CHAIN, chain)
        + m.attr(n.NFTA_RULE_HANDLE, struct.pack(">Q", handle))
        + m.nest(n.NFTA_RULE_EXPRESSIONS, *exprs)
    )


def test_gettable_and_getchain_request_bytes() -> None:
    body = n.gettable_request("ip6", "cni_hostport")
    assert body[:4] == bytes([10, 0, 0, 0])
    assert body[4:] == m.attr_str(n.NFTA_TABLE_NAME, "cni_hostport")
    body = n.getchain_request("ip", "nat", "CNI-HOSTPORT-DNAT")
    assert body[:4] == bytes([2, 0, 0, 0])
    assert list(m.iter_attrs(body, 4)) == [
        (n.NFTA_CHAIN_TABLE, b"nat\0"),
        (n.NFTA_CHAIN_NAME, b"CNI-HOSTPORT-DNAT\0"),
    ]


def test_delrule_by_handle_is_big_endian_and_without_handle_flushes() -> None:
    body = n.delrule_request("ip", "nat", "CNI-HOSTPORT-DNAT", 0x0102030405)
    attrs = dict(m.iter_attrs(body, 4))
    assert attrs[n.NFTA_RULE_HANDLE] == bytes([0, 0, 0, 1, 2, 3, 4, 5])
    assert attrs[n.NFTA_RULE_CHAIN] == b"CNI-HOSTPORT-DNAT\0"
    flush = dict(m.iter_attrs(n.delrule_request("ip6", "nat", "CNI-DN-x"), 4))
    assert n.NFTA_RULE_HANDLE not in flush
    assert n.delrule_request("ip6", "nat", "CNI-DN-x")[:1] == bytes([10])


def test_batch_frame_names_nftables_and_the_generation() -> None:
    begin = n.batch_begin(0x01020304)
    assert begin[:4] == bytes([0, 0, 0, 10])  # res_id: subsystem 10, big-endian
    assert dict(m.iter_attrs(begin, 4)) == {n.NFNL_BATCH_GENID: bytes([1, 2, 3, 4])}
    assert n.batch_begin(None) == n.batch_end() == bytes([0, 0, 0, 10])
    assert n.message_type(n.NFT_MSG_DELRULE) == (10 << 8) | 8


def test_parse_genid() -> None:
    assert n.parse_genid(bytes(4) + m.attr(n.NFTA_GEN_ID, be32(77))) == 77
    with pytest.raises(ValueError, match="NFTA_GEN_ID"):
        n.parse_genid(bytes(4))


def test_parse_rule_reads_handle_chain_and_a_jump() -> None:
    body = rule_body(
        "CNI-HOSTPORT-DNAT",
        2**40 + 3,
        meta_l4proto(),
        cmp_eq(b"\x06"),
        counter(),
        jump("CNI-DN-abc"),
    )
    rule = n.parse_rule(body)
    assert (rule.chain, rule.handle) == ("CNI-HOSTPORT-DNAT", 2**40 + 3)
    assert [e.name for e in rule.exprs] == ["meta", "cmp", "counter", "immediate"]
    assert rule.jump_target() == "CNI-DN-abc"
    assert n.parse_rule(rule_body("X", 1, jump("Y", n.NFT_GOTO))).jump_target() == "Y"


@pytest.mark.parametrize(
    "exprs",
    [
        (target("DNAT"),),  # a target, no verdict
        (expr("immediate", m.attr(n.NFTA_IMMEDIATE_DREG, be32(1))),),  # data register
        (
            expr(  # accept: a verdict without a chain
                "immediate",
                m.attr(n.NFTA_IMMEDIATE_DREG, be32(0)),
                m.nest(
                    n.NFTA_IMMEDIATE_DATA,
                    m.nest(n.NFTA_DATA_VERDICT, m.attr(n.NFTA_VERDICT_CODE, be32(1))),
                ),
            ),
        ),
        (),
    ],
)
def test_rules_without_a_jump(exprs: tuple[bytes, ...]) -> None:
    assert n.parse_rule(rule_body("X", 1, *exprs)).jump_target() is None


def test_parse_rules_keeps_only_the_asked_chain() -> None:
    bodies = [rule_body("A", 1, counter()), rule_body("B", 2), rule_body("A", 3)]
    assert [r.handle for r in n.parse_rules(bodies, "A")] == [1, 3]


@pytest.mark.parametrize(
    "body",
    [
        struct.pack(">BBH", 2, 0, 0) + m.attr_str(n.NFTA_RULE_CHAIN, "A"),  # no handle
        struct.pack(">BBH", 2, 0, 0) + m.attr(n.NFTA_RULE_HANDLE, bytes(8)),  # no chain
        struct.pack(">BBH", 2, 0, 0)  # truncated attribute
        + m.attr_str(n.NFTA_RULE_CHAIN, "A")
        + m.attr(n.NFTA_RULE_HANDLE, bytes(8))[:-3],
        rule_body("A", 1, m.nest(n.NFTA_LIST_ELEM, m.nest(n.NFTA_EXPR_DATA))),  # unnamed
    ],
)
def test_malformed_rules_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        n.parse_rule(body)
