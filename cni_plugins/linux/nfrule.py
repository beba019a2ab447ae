"""iptables rules as iptables-nft 1.8.9 stores them in nf_tables: encoded here,
so a rule can be added over netlink without exec'ing ``iptables-restore``.

A rule comes in the form ``iptables-save`` prints it (the argument lists of
``portmap.chains`` and ``ipmasq``, after ``-A <chain>``) and leaves as the
expressions iptables-nft would make of it, so ``iptables-save`` and
``nft list ruleset`` show the same text whichever wrote it, and either side's
DEL finds the other's rules.  The shapes were read from iptables-nft 1.8.9
(``nft --debug=netlink list ruleset`` and the kernel's rule dumps); the unit
goldens in tests/unit/linux/test_nfrule.py are those dumps, byte for byte:

* ``-p P``: ``meta l4proto`` compared to P's number (first, whatever its
  place in the arguments), then ``-s``/``-d``: a network-header load of the
  prefix's whole bytes compared to them, or, when the prefix ends inside a
  byte, of the whole address with a ``bitwise`` mask; ``!`` makes the compare
  ``neq``; a ``/0`` prefix matches all and adds nothing.
* ``-m tcp|udp --dport N``: a 2-byte transport-header load at offset 2.
  ``-m mark --mark V/M``: ``meta mark``, ``bitwise`` M, compare V.
* ``-m comment``, ``-m multiport``, ``-m addrtype`` stay x_tables matches, and
  ``DNAT``, ``MASQUERADE``, ``MARK`` x_tables targets (``match``/``target``
  expressions carrying the extension's struct in host byte order, XT_ALIGNed).
* a ``counter`` before the verdict; ``-j CHAIN``/``-g CHAIN``, ``ACCEPT``,
  ``RETURN``, ``DROP``: an ``immediate`` into the verdict register.

Anything else (another extension, an option of one not listed, a negated
match other than an address) answers None: the caller then writes the whole
invocation with ``iptables-restore``, never half of it over netlink.

Attributes are laid out as the kernel dumps them (nests without
NLA_F_NESTED, as nfnetlink's dumps do), which is also what it accepts.
"""

from __future__ import annotations

import struct

from cni_plugins.linux import nfmsg as n
from cni_plugins.linux import nftexpr as x
from cni_plugins.linux import nlmsg as m
from cni_plugins.spec.ip import ip_address, ip_network

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from cni_plugins.spec.ip import IPAddress

NFTA_COUNTER_BYTES = 1
NFTA_COUNTER_PACKETS = 2
NFTA_XT_NAME = 1
NFTA_XT_REV = 2
NFTA_XT_INFO = 3
NFT_META_MARK = 3
NF_DROP, NF_ACCEPT = 0, 1
NFT_RETURN = -5
NFTA_RULE_COMPAT = 5
NFTA_RULE_COMPAT_PROTO = 1
NFTA_RULE_COMPAT_FLAGS = 2

PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
# Matches whose options are native payload compares in iptables-nft.
_NATIVE_PORT_MATCHES = ("tcp", "udp")
_VERDICTS = {"ACCEPT": NF_ACCEPT, "DROP": NF_DROP, "RETURN": NFT_RETURN}
XT_COMMENT_SIZE = 256
XT_MULTIPORT_SIZE = 15
XT_MULTIPORT_DESTINATION = 1
XT_ADDRTYPE_LOCAL = 1 << 2  # 1 << RTN_LOCAL
NF_NAT_RANGE_MAP_IPS = 1
NF_NAT_RANGE_PROTO_SPECIFIED = 2

_BE32 = struct.Struct(">I")
_BE32S = struct.Struct(">i")
_BE16 = struct.Struct(">H")
# x_tables structs are in host byte order (the plugins run on the node itself).
_MARK_TGINFO2 = struct.Struct("=II")
_ADDRTYPE_V1 = struct.Struct("=HHI")
_MULTIPORT_V1 = struct.Struct("=BB15H15BB")


class Unsupported(ValueError):
    """The rule uses something not encoded here: the caller falls back to a tool."""


class Encoded:
    """A rule's expressions (NFTA_RULE_EXPRESSIONS' payload) and its compat protocol."""

    __slots__ = ("exprs", "proto")

    def __init__(self, exprs: bytes, proto: int) -> None:
        self.exprs = exprs
        self.proto = proto

    def newrule(self, family: str, table: str, chain: str) -> bytes:
        """Body of the NFT_MSG_NEWRULE adding it to ``chain`` (the message's
        flags say where: NLM_F_APPEND at the end, else at the head)."""
        body = (
            n.nfgenmsg(n.NFPROTO[family])
            + m.attr_str(n.NFTA_RULE_TABLE, table)
            + m.attr_str(n.NFTA_RULE_CHAIN, chain)
            + m.nest(n.NFTA_RULE_EXPRESSIONS, self.exprs, flag=False)
        )
        if self.proto:
            # What x_tables extensions see as the rule's protocol (multiport
            # refuses a rule without one); not part of the stored rule.
            body += m.nest(
                NFTA_RULE_COMPAT,
                n.attr_be32(NFTA_RULE_COMPAT_PROTO, self.proto),
                n.attr_be32(NFTA_RULE_COMPAT_FLAGS, 0),
                flag=False,
            )
        return body


def encode(family: int, args: Sequence[str]) -> Encoded | None:
    """The expressions iptables-nft makes of rule ``args`` (family 4 or 6), or
    None when the rule uses something not encoded here."""
    try:
        return _encode(family, list(args))
    except (Unsupported, ValueError, IndexError, struct.error):
        return None


def _encode(family: int, args: list[str]) -> Encoded:
    proto = 0
    addrs: list[bytes] = []
    matches: list[bytes] = []
    verdict = b""
    i = 0
    negate = False
    while i < len(args):
        arg = args[i]
        if arg == "!":
            negate = True
            i += 1
            continue
        if arg in ("-s", "-d"):
            addrs.append(_address(family, arg == "-d", args[i + 1], negate))
            i += 2
        elif negate:
            raise Unsupported(f"negated {arg}")
        elif arg == "-p":
            proto = PROTOCOLS[args[i + 1]]
            i += 2
        elif arg == "-m":
            i = _match(family, args, i + 1, proto, matches)
        elif arg in ("-j", "-g"):
            if verdict:
                raise Unsupported("two targets")
            verdict, i = _target(family, args, i + 1, goto=arg == "-g")
        else:
            raise Unsupported(arg)
        negate = False
    if negate or not verdict:
        raise Unsupported("dangling ! or no target")
    head = _l4proto(proto) if proto else b""
    return Encoded(head + b"".join(addrs) + b"".join(matches) + _counter() + verdict, proto)


# -- expressions (the primitives are nftexpr's: nft and iptables-nft share them) ------------

_expr, _cmp, _payload, _meta, _bitwise = x.expr, x.cmp, x.payload, x.meta, x.bitwise
_immediate = x.verdict


def _l4proto(proto: int) -> bytes:
    return _meta(n.NFT_META_L4PROTO) + _cmp(bytes([proto]))


def _counter() -> bytes:
    return _expr(
        "counter", n.attr_be64(NFTA_COUNTER_BYTES, 0), n.attr_be64(NFTA_COUNTER_PACKETS, 0)
    )


def _xt(kind: str, name: str, revision: int, info: bytes) -> bytes:
    padded = info + bytes(-len(info) % 8)  # XT_ALIGN
    return _expr(
        kind,
        m.attr_str(NFTA_XT_NAME, name),
        n.attr_be32(NFTA_XT_REV, revision),
        m.attr(NFTA_XT_INFO, padded),
    )


# -- the parts of a rule -----------------------------------------------------------------------


def _address(family: int, destination: bool, text: str, negate: bool) -> bytes:
    net = ip_network(text)
    if net.version != family:
        raise Unsupported(f"IPv{net.version} address in an IPv{family} rule")
    if net.prefixlen == 0:
        if negate:
            raise Unsupported("! of everything")
        return b""
    return x.address(net, destination=destination, negate=negate)


def _match(family: int, args: list[str], i: int, proto: int, out: list[bytes]) -> int:
    """Encode the match ``-m args[i]`` with its options; the index after them."""
    name = args[i]
    options, i = _options(args, i + 1)
    if name in _NATIVE_PORT_MATCHES:
        if PROTOCOLS[name] != proto or list(options) != ["--dport"]:
            raise Unsupported(f"-m {name} {options}")
        port = _port(options["--dport"])
        out.append(_payload(n.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) + _cmp(_BE16.pack(port)))
    elif name == "comment" and list(options) == ["--comment"]:
        text = options["--comment"].encode()
        if len(text) >= XT_COMMENT_SIZE:
            raise Unsupported("comment too long")
        out.append(_xt("match", "comment", 0, text.ljust(XT_COMMENT_SIZE, b"\0")))
    elif name == "multiport" and list(options) == ["--dports"] and proto:
        ports = [_port(p) for p in options["--dports"].split(",")]
        if not 0 < len(ports) <= XT_MULTIPORT_SIZE:
            raise Unsupported("multiport count")
        padded = ports + [0] * (XT_MULTIPORT_SIZE - len(ports))
        info = _MULTIPORT_V1.pack(
            XT_MULTIPORT_DESTINATION, len(ports), *padded, *([0] * XT_MULTIPORT_SIZE), 0
        )
        out.append(_xt("match", "multiport", 1, info))
    elif name == "addrtype" and options == {"--dst-type": "LOCAL"}:
        out.append(_xt("match", "addrtype", 1, _ADDRTYPE_V1.pack(0, XT_ADDRTYPE_LOCAL, 0)))
    elif name == "mark" and list(options) == ["--mark"]:
        value, mask = _value_mask(options["--mark"])
        if mask == 0xFFFFFFFF:
            raise Unsupported("mark without a mask")  # a shape not captured
        out.append(_meta(NFT_META_MARK) + _bitwise(_native32(mask)) + _cmp(_native32(value)))
    else:
        raise Unsupported(f"-m {name}")
    return i


def _target(family: int, args: list[str], i: int, *, goto: bool) -> tuple[bytes, int]:
    name = args[i]
    options, i = _options(args, i + 1)
    if name in _VERDICTS and not options and not goto:
        return _immediate(_VERDICTS[name]), i
    if name == "DNAT" and list(options) == ["--to-destination"] and not goto:
        return _xt("target", "DNAT", 2, _nat_range2(family, options["--to-destination"])), i
    if name == "MASQUERADE" and not options and not goto:
        # nf_nat_ipv4_multi_range_compat with one empty range; IPv6: nf_nat_range.
        info = struct.pack("=I20x", 1) if family == 4 else bytes(40)
        return _xt("target", "MASQUERADE", 0, info), i
    if name == "MARK" and list(options) == ["--set-xmark"] and not goto:
        value, mask = _value_mask(options["--set-xmark"])
        return _xt("target", "MARK", 2, _MARK_TGINFO2.pack(value, mask)), i
    if options or not _is_chain(name):
        raise Unsupported(f"-j {name}")
    return _immediate(n.NFT_GOTO if goto else n.NFT_JUMP, name), i


def _options(args: list[str], i: int) -> tuple[dict[str, str], int]:
    """The ``--opt value`` pairs from ``args[i]`` on (an extension's options)."""
    found: dict[str, str] = {}
    while i < len(args) and args[i].startswith("--"):
        if args[i] in found or i + 1 >= len(args):
            raise Unsupported(args[i])
        found[args[i]] = args[i + 1]
        i += 2
    return found, i


def _is_chain(name: str) -> bool:
    """A user chain: extension targets are bare capitals (DNAT, LOG, CT), the
    chains jumped to here have a dash (CNI-...)."""
    return "-" in name or not name.isupper()


def _port(text: str) -> int:
    port = int(text, 10)
    if not 0 <= port <= 0xFFFF or not text.isdigit():
        raise Unsupported(f"port {text}")
    return port


def _value_mask(text: str) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return int(value, 0) & 0xFFFFFFFF, int(mask, 0) & 0xFFFFFFFF if mask else 0xFFFFFFFF


def _native32(value: int) -> bytes:
    """A 32-bit register value as the kernel holds ``meta mark``: host order."""
    return struct.pack("=I", value)


def _nat_range2(family: int, text: str) -> bytes:
    """struct nf_nat_range2 of ``--to-destination ADDR[:PORT]`` (IPv6 in brackets)."""
    if family == 6:
        if not text.startswith("["):
            address, port = ip_address(text), None
        else:
            host, _, rest = text[1:].partition("]")
            address = ip_address(host)
            port = _port(rest[1:]) if rest.startswith(":") else None
            if rest and port is None:
                raise Unsupported(text)
    else:
        host, colon, rest = text.partition(":")
        address = ip_address(host)
        port = _port(rest) if colon else None
    if address.version != family or "-" in text:
        raise Unsupported(text)
    flags = NF_NAT_RANGE_MAP_IPS | (NF_NAT_RANGE_PROTO_SPECIFIED if port is not None else 0)
    addr = _inet_addr(address)
    ports = _BE16.pack(port or 0) * 2
    return struct.pack("=I", flags) + addr + addr + ports + b"\0\0"


def _inet_addr(address: IPAddress) -> bytes:
    """union nf_inet_addr: 16 bytes, an IPv4 address in the first four."""
    return address.packed.ljust(16, b"\0")
