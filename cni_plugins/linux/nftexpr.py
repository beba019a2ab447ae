"""Native nf_tables expressions: encoded as ``nft`` 1.0.6 sends them, decoded by meaning.

The expression primitives (``payload``, ``cmp``, ``meta``, ``bitwise``,
``immediate`` ...) are shared with ``nfrule`` (iptables-nft's rules); on top
of them the statements the nftables backends of portmap and ipMasq write, in
the shapes nft 1.0.6 gives the same text (read from the kernel's dumps; the
goldens of tests/unit/linux/test_nftexpr.py are those dumps, byte for byte):

* ``ip|ip6 saddr|daddr [!=] X``: a network-header load of the prefix's whole
  bytes and a compare; a prefix that ends inside a byte (and ``/0``) loads the
  whole address and masks it with ``bitwise``.  In an ``inet`` table a
  ``meta nfproto`` compare comes first.
* ``tcp|udp|sctp dport N``: ``meta l4proto`` compare, then a 2-byte
  transport-header load at offset 2.
* ``fib daddr type local``: a ``fib`` into register 1, compared to RTN_LOCAL.
* ``dnat to A:P``: two ``immediate`` loads (address, port) and a ``nat`` expression;
  ``masquerade``: a ``masq`` expression; ``jump``/``goto``/``return``: an
  ``immediate`` into the verdict register.
* a comment: the rule's userdata, libnftnl's TLV (type 0, length with the NUL).

``decode`` reads a dumped rule back into what it means (matches and its
action), so a rule written by Go's ``nft`` is recognised like ours; any
expression or attribute it does not know makes the whole rule unknown (None).

Attributes are laid out as the kernel dumps them (nests without NLA_F_NESTED),
which is also what it accepts.
"""

from __future__ import annotations

import struct

from cni_plugins.linux import nfmsg as n
from cni_plugins.linux import nlmsg as m
from cni_plugins.spec.ip import IPAddress, IPNetwork

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

NFTA_BITWISE_SREG = 1
NFTA_BITWISE_DREG = 2
NFTA_BITWISE_LEN = 3
NFTA_BITWISE_MASK = 4
NFTA_BITWISE_XOR = 5
NFTA_BITWISE_OP = 6
NFT_BITWISE_BOOL = 0
NFT_CMP_NEQ = 1
NFT_REG_1 = 1
NFT_REG_2 = 2
NFT_RETURN = -5
NFT_META_NFPROTO = 15
NFTA_FIB_DREG = 1
NFTA_FIB_RESULT = 2
NFTA_FIB_FLAGS = 3
NFT_FIB_RESULT_ADDRTYPE = 3
NFTA_FIB_F_DADDR = 2
RTN_LOCAL = 2
NFTA_NAT_TYPE = 1
NFTA_NAT_FAMILY = 2
NFTA_NAT_REG_ADDR_MIN = 3
NFTA_NAT_REG_ADDR_MAX = 4
NFTA_NAT_REG_PROTO_MIN = 5
NFTA_NAT_REG_PROTO_MAX = 6
NFTA_NAT_FLAGS = 7
NFT_NAT_DNAT = 1
NF_NAT_RANGE_MAP_IPS = 1
NF_NAT_RANGE_PROTO_SPECIFIED = 2
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10
# libnftnl's userdata: one TLV type for the comment of a table, chain or rule.
UDATA_COMMENT = 0
COMMENT_MAX = 128  # NFTNL_UDATA_COMMENT_MAXLEN: bytes, the NUL not counted

PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
_PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
# Where the addresses sit in the network header: (saddr, daddr) offsets.
ADDR_OFFSET = {4: (12, 16), 6: (8, 24)}
_NFPROTO = {4: NFPROTO_IPV4, 6: NFPROTO_IPV6}
_FAMILY_OF_NFPROTO = {NFPROTO_IPV4: 4, NFPROTO_IPV6: 6}

_BE16 = struct.Struct(">H")
_BE32S = struct.Struct(">i")


class TooLong(ValueError):
    """A comment longer than nft allows (``COMMENT_MAX`` bytes)."""


# -- primitives (also iptables-nft's, see nfrule) ---------------------------------------------


def expr(name: str, *attrs: bytes) -> bytes:
    return m.nest(
        n.NFTA_LIST_ELEM,
        m.attr_str(n.NFTA_EXPR_NAME, name),
        m.nest(n.NFTA_EXPR_DATA, *attrs, flag=False),
        flag=False,
    )


def data(kind: int, value: bytes) -> bytes:
    return m.nest(kind, m.attr(n.NFTA_DATA_VALUE, value), flag=False)


def cmp(value: bytes, op: int = n.NFT_CMP_EQ) -> bytes:
    return expr(
        "cmp",
        n.attr_be32(n.NFTA_CMP_SREG, NFT_REG_1),
        n.attr_be32(n.NFTA_CMP_OP, op),
        data(n.NFTA_CMP_DATA, value),
    )


def payload(base: int, offset: int, length: int) -> bytes:
    return expr(
        "payload",
        n.attr_be32(n.NFTA_PAYLOAD_DREG, NFT_REG_1),
        n.attr_be32(n.NFTA_PAYLOAD_BASE, base),
        n.attr_be32(n.NFTA_PAYLOAD_OFFSET, offset),
        n.attr_be32(n.NFTA_PAYLOAD_LEN, length),
    )


def meta(key: int) -> bytes:
    return expr("meta", n.attr_be32(n.NFTA_META_KEY, key), n.attr_be32(n.NFTA_META_DREG, NFT_REG_1))


def bitwise(mask: bytes) -> bytes:
    return expr(
        "bitwise",
        n.attr_be32(NFTA_BITWISE_SREG, NFT_REG_1),
        n.attr_be32(NFTA_BITWISE_DREG, NFT_REG_1),
        n.attr_be32(NFTA_BITWISE_LEN, len(mask)),
        n.attr_be32(NFTA_BITWISE_OP, NFT_BITWISE_BOOL),
        data(NFTA_BITWISE_MASK, mask),
        data(NFTA_BITWISE_XOR, bytes(len(mask))),
    )


def verdict(code: int, chain: str | None = None) -> bytes:
    """An ``immediate`` into the verdict register (accept, return, jump CHAIN ...)."""
    fields = m.attr(n.NFTA_VERDICT_CODE, _BE32S.pack(code))
    if chain is not None:
        fields += m.attr_str(n.NFTA_VERDICT_CHAIN, chain)
    return expr(
        "immediate",
        n.attr_be32(n.NFTA_IMMEDIATE_DREG, n.NFT_REG_VERDICT),
        m.nest(n.NFTA_IMMEDIATE_DATA, m.nest(n.NFTA_DATA_VERDICT, fields, flag=False), flag=False),
    )


def immediate(reg: int, value: bytes) -> bytes:
    return expr(
        "immediate",
        n.attr_be32(n.NFTA_IMMEDIATE_DREG, reg),
        data(n.NFTA_IMMEDIATE_DATA, value),
    )


# -- nft statements -----------------------------------------------------------------------------


def nfproto(family: int) -> bytes:
    """``meta nfproto ipv4|ipv6``: what nft puts before an ``ip``/``ip6`` match in inet."""
    return meta(NFT_META_NFPROTO) + cmp(bytes([_NFPROTO[family]]))


def address(net: IPNetwork, *, destination: bool, negate: bool = False) -> bytes:
    """``ip|ip6 saddr|daddr [!=] net`` (without the inet ``nfproto`` guard)."""
    packed = net.network_address.packed
    offset = ADDR_OFFSET[net.version][destination]
    op = NFT_CMP_NEQ if negate else n.NFT_CMP_EQ
    if net.prefixlen % 8 == 0 and net.prefixlen:
        size = net.prefixlen // 8
        return payload(n.NFT_PAYLOAD_NETWORK_HEADER, offset, size) + cmp(packed[:size], op)
    bits = net.max_prefixlen
    mask = ((1 << bits) - 1) ^ ((1 << (bits - net.prefixlen)) - 1)
    return (
        payload(n.NFT_PAYLOAD_NETWORK_HEADER, offset, len(packed))
        + bitwise(mask.to_bytes(len(packed), "big"))
        + cmp(packed, op)
    )


def dport(protocol: str, port: int) -> bytes:
    """``tcp|udp|sctp dport N``."""
    return (
        meta(n.NFT_META_L4PROTO)
        + cmp(bytes([PROTOCOLS[protocol]]))
        + payload(n.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)
        + cmp(_BE16.pack(port))
    )


def fib_daddr_local() -> bytes:
    """``fib daddr type local``."""
    return expr(
        "fib",
        n.attr_be32(NFTA_FIB_DREG, NFT_REG_1),
        n.attr_be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE),
        n.attr_be32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR),
    ) + cmp(struct.pack("=I", RTN_LOCAL))


def dnat(to: IPAddress, port: int) -> bytes:
    """``dnat to A:P`` (IPv6: ``[A]:P``)."""
    return (
        immediate(NFT_REG_1, to.packed)
        + immediate(NFT_REG_2, _BE16.pack(port))
        + expr(
            "nat",
            n.attr_be32(NFTA_NAT_TYPE, NFT_NAT_DNAT),
            n.attr_be32(NFTA_NAT_FAMILY, _NFPROTO[to.version]),
            n.attr_be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1),
            n.attr_be32(NFTA_NAT_REG_ADDR_MAX, NFT_REG_1),
            n.attr_be32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2),
            n.attr_be32(NFTA_NAT_REG_PROTO_MAX, NFT_REG_2),
            n.attr_be32(NFTA_NAT_FLAGS, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED),
        )
    )


def masquerade() -> bytes:
    return expr("masq")


def jump(chain: str) -> bytes:
    return verdict(n.NFT_JUMP, chain)


def goto(chain: str) -> bytes:
    return verdict(n.NFT_GOTO, chain)


def return_() -> bytes:
    return verdict(NFT_RETURN)


def comment(text: str) -> bytes:
    """The userdata holding comment ``text``; TooLong past nft's limit."""
    raw = text.encode() + b"\0"
    if len(raw) > COMMENT_MAX + 1:
        raise TooLong(f"comment of {len(raw) - 1} bytes, nft allows at most {COMMENT_MAX}")
    return bytes([UDATA_COMMENT, len(raw)]) + raw


def parse_comment(userdata: bytes) -> str:
    """The comment among userdata TLVs, or ""."""
    i = 0
    while i + 2 <= len(userdata):
        kind, size = userdata[i], userdata[i + 1]
        value = userdata[i + 2 : i + 2 + size]
        if kind == UDATA_COMMENT:
            return value.split(b"\0", 1)[0].decode(errors="replace")
        i += 2 + size
    return ""


# -- decoding -------------------------------------------------------------------------------------


class Decoded:
    """What a rule means: its matches and its action, in order.

    ``matches``: (field, op, value) with field ``l4proto`` (a protocol name),
    ``dport`` (int), ``ip saddr``/``ip daddr``/``ip6 ...`` (an IPNetwork),
    ``fib daddr type`` (int), op ``==`` or ``!=``.  ``action``: ("dnat",
    address, port), ("masquerade",), ("jump"|"goto", chain), ("return",).
    """

    __slots__ = ("action", "matches")

    def __init__(self) -> None:
        self.matches: list[tuple[str, str, object]] = []
        self.action: tuple[object, ...] | None = None

    def __repr__(self) -> str:
        return f"Decoded({self.matches!r}, {self.action!r})"


def decode(exprs: Sequence[n.Expr], family: int | None) -> Decoded | None:
    """``exprs`` of a rule in a table of ``family`` (4, 6, None: inet) by
    meaning, or None when any part is not one of the shapes above."""
    try:
        return _decode(exprs, family)
    except (ValueError, KeyError, IndexError, struct.error):
        return None


def _decode(exprs: Sequence[n.Expr], family: int | None) -> Decoded | None:
    out = Decoded()
    loaded: tuple[object, ...] | None = None  # what register 1 holds
    mask: bytes | None = None
    regs: dict[int, bytes] = {}
    l4 = False
    for e in exprs:
        if out.action is not None:
            return None  # nothing after the action
        a = e.attrs
        if e.name == "counter":
            continue
        if e.name == "meta" and e.u32(n.NFTA_META_DREG) == NFT_REG_1 and len(a) == 2:
            loaded, mask = ("meta", e.u32(n.NFTA_META_KEY)), None
        elif e.name == "payload" and e.u32(n.NFTA_PAYLOAD_DREG) == NFT_REG_1 and len(a) == 4:
            loaded = ("payload", e.u32(n.NFTA_PAYLOAD_BASE), e.u32(n.NFTA_PAYLOAD_OFFSET),
                      e.u32(n.NFTA_PAYLOAD_LEN))  # fmt: skip
            mask = None
        elif e.name == "fib" and e.u32(NFTA_FIB_DREG) == NFT_REG_1 and len(a) == 3:
            if (e.u32(NFTA_FIB_RESULT), e.u32(NFTA_FIB_FLAGS)) != (
                NFT_FIB_RESULT_ADDRTYPE,
                NFTA_FIB_F_DADDR,
            ):
                return None
            loaded, mask = ("fib",), None
        elif e.name == "bitwise":
            if loaded is None or mask is not None or not _is_and_mask(e):
                return None
            mask = e.value(NFTA_BITWISE_MASK)
        elif e.name == "cmp":
            if loaded is None or e.u32(n.NFTA_CMP_SREG) != NFT_REG_1:
                return None
            op = {n.NFT_CMP_EQ: "==", NFT_CMP_NEQ: "!="}[e.u32(n.NFTA_CMP_OP) or 0]
            value = e.value(n.NFTA_CMP_DATA)
            if value is None:
                return None
            found = _match(loaded, mask, op, value, family=family, l4=l4)
            if found is None:
                return None
            if found[0] == "nfproto":
                family = found[2]  # type: ignore[assignment]
            else:
                l4 = l4 or found[0] == "l4proto"
                out.matches.append(found)
            loaded, mask = None, None
        elif e.name == "immediate":
            reg = e.u32(n.NFTA_IMMEDIATE_DREG)
            if reg == n.NFT_REG_VERDICT:
                out.action = _verdict(e)
                if out.action is None:
                    return None
            elif reg in (NFT_REG_1, NFT_REG_2) and (v := e.value(n.NFTA_IMMEDIATE_DATA)):
                regs[reg] = v
            else:
                return None
        elif e.name == "nat":
            out.action = _nat(e, regs)
            if out.action is None:
                return None
        elif e.name == "masq" and not a:
            out.action = ("masquerade",)
        else:
            return None
    return out if out.action is not None and loaded is None else None


def _is_and_mask(e: n.Expr) -> bool:
    xor = e.value(NFTA_BITWISE_XOR)
    return (
        e.u32(NFTA_BITWISE_SREG) == NFT_REG_1
        and e.u32(NFTA_BITWISE_DREG) == NFT_REG_1
        and e.u32(NFTA_BITWISE_OP) in (None, NFT_BITWISE_BOOL)
        and xor is not None
        and not any(xor)
    )


def _match(
    loaded: tuple[object, ...],
    mask: bytes | None,
    op: str,
    value: bytes,
    *,
    family: int | None,
    l4: bool,
) -> tuple[str, str, object] | None:
    if loaded[0] == "meta" and mask is None and op == "==" and len(value) == 1:
        if loaded[1] == NFT_META_NFPROTO and family is None:
            return ("nfproto", op, _FAMILY_OF_NFPROTO[value[0]])
        if loaded[1] == n.NFT_META_L4PROTO:
            return ("l4proto", op, _PROTOCOL_NAMES[value[0]])
        return None
    if loaded[0] == "fib" and mask is None and len(value) == 4:
        return ("fib daddr type", op, struct.unpack("=I", value)[0])
    if loaded[0] != "payload":
        return None
    _kind, base, offset, length = loaded
    if base == n.NFT_PAYLOAD_TRANSPORT_HEADER:
        if (offset, length, mask, l4, op) != (2, 2, None, True, "==") or len(value) != 2:
            return None
        return ("dport", op, _BE16.unpack(value)[0])
    if base != n.NFT_PAYLOAD_NETWORK_HEADER or family is None:
        return None
    size = len(_ADDR_BYTES[family])
    which = {o: i for i, o in enumerate(ADDR_OFFSET[family])}.get(offset)  # type: ignore[call-overload]
    if which is None or length != len(value) or not isinstance(length, int):
        return None
    if mask is None:
        if not 0 < length <= size:
            return None
        prefix = length * 8
    else:
        if length != size or len(mask) != size:
            return None
        masked = _prefix_of(mask)
        if masked is None or (masked % 8 == 0 and masked):
            return None  # nft loads fewer bytes for a whole-byte prefix
        prefix = masked
    packed = value.ljust(size, b"\0")
    net = IPNetwork(IPAddress.from_packed(packed), prefix)
    ip = "ip" if family == 4 else "ip6"
    return (f"{ip} {'daddr' if which else 'saddr'}", op, net)


_ADDR_BYTES = {4: bytes(4), 6: bytes(16)}


def _prefix_of(mask: bytes) -> int | None:
    bits = int.from_bytes(mask, "big")
    width = len(mask) * 8
    inverted = ~bits & ((1 << width) - 1)
    if inverted & (inverted + 1):
        return None  # not a contiguous prefix
    return width - inverted.bit_length()


def _verdict(e: n.Expr) -> tuple[object, ...] | None:
    found = e.verdict(n.NFTA_IMMEDIATE_DATA)
    if found is None:
        return None
    code, chain = found
    if code == n.NFT_JUMP and chain:
        return ("jump", chain)
    if code == n.NFT_GOTO and chain:
        return ("goto", chain)
    if code == NFT_RETURN:
        return ("return",)
    return None


def _nat(e: n.Expr, regs: dict[int, bytes]) -> tuple[object, ...] | None:
    family = _FAMILY_OF_NFPROTO.get(e.u32(NFTA_NAT_FAMILY) or 0)
    addr_min, addr_max = e.u32(NFTA_NAT_REG_ADDR_MIN), e.u32(NFTA_NAT_REG_ADDR_MAX)
    port_min, port_max = e.u32(NFTA_NAT_REG_PROTO_MIN), e.u32(NFTA_NAT_REG_PROTO_MAX)
    if e.u32(NFTA_NAT_TYPE) != NFT_NAT_DNAT or family is None or addr_min != addr_max:
        return None
    if port_min != port_max or addr_min not in regs or port_min not in regs:
        return None
    flags = e.u32(NFTA_NAT_FLAGS) or 0
    if flags & ~(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED):
        return None
    packed, port = regs[addr_min], regs[port_min]
    if len(packed) != len(_ADDR_BYTES[family]) or len(port) != 2:
        return None
    return ("dnat", IPAddress.from_packed(packed), _BE16.unpack(port)[0])
