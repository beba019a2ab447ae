"""nf_tables wire format (NETLINK_NETFILTER, subsystem NFTABLES): the requests
``nfprobe`` and ``nfremove`` send and the rule replies they read.

Pure functions over ``bytes`` (no sockets), unit-tested without root.  Layout
(``linux/netfilter/nfnetlink.h``, ``nf_tables.h``): every message is
``nlmsghdr`` + ``nfgenmsg`` {u8 family, u8 version, be16 res_id} + attributes.
Unlike rtnetlink, nf_tables integers are big-endian (NLA_BE32/BE64); strings
are NUL-terminated.

A rule reads back as a list of expressions, each a name and its attributes.
``Expr`` keeps them raw and decodes on demand: the callers look at a handful of
shapes (a jump, a protocol or port compare, a target's name) and must treat
anything else as "not understood", never guess.
"""

from __future__ import annotations

import struct

from cni_plugins.linux import nlmsg as m

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNETLINK_V0 = 0
# nfnetlink's own message types frame a transaction.
NFNL_MSG_BATCH_BEGIN = 16
NFNL_MSG_BATCH_END = 17
NFNL_BATCH_GENID = 1

# enum nf_tables_msg_types
NFT_MSG_GETTABLE = 1
NFT_MSG_GETCHAIN = 4
NFT_MSG_DELCHAIN = 5
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_DELRULE = 8
NFT_MSG_GETGEN = 16

NFTA_TABLE_NAME = 1
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_HANDLE = 3
NFTA_RULE_EXPRESSIONS = 4
NFTA_RULE_USERDATA = 7
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME = 1
NFTA_EXPR_DATA = 2
NFTA_GEN_ID = 1

# nft_data: a value or a verdict
NFTA_DATA_VALUE = 1
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE = 1
NFTA_VERDICT_CHAIN = 2
NFT_JUMP = -3
NFT_GOTO = -4
NFT_REG_VERDICT = 0

# expressions' attributes
NFTA_IMMEDIATE_DREG = 1
NFTA_IMMEDIATE_DATA = 2
NFTA_META_DREG = 1
NFTA_META_KEY = 2
NFT_META_L4PROTO = 16
NFTA_PAYLOAD_DREG = 1
NFTA_PAYLOAD_BASE = 2
NFTA_PAYLOAD_OFFSET = 3
NFTA_PAYLOAD_LEN = 4
NFT_PAYLOAD_NETWORK_HEADER = 1
NFT_PAYLOAD_TRANSPORT_HEADER = 2
NFTA_CMP_SREG = 1
NFTA_CMP_OP = 2
NFTA_CMP_DATA = 3
NFT_CMP_EQ = 0
NFTA_TARGET_NAME = 1

# linux/netfilter.h
NFPROTO = {"inet": 1, "ip": 2, "ip6": 10}
NFPROTO_UNSPEC = 0

_NFGENMSG = struct.Struct(">BBH")  # family, version, res_id (big-endian)
_BE32 = struct.Struct(">I")
_BE32S = struct.Struct(">i")
_BE64 = struct.Struct(">Q")


def iptables_family(family: int) -> str:
    """The nf_tables family holding iptables' tables of IP ``family`` (4 or 6)."""
    return "ip" if family == 4 else "ip6"


def message_type(msg: int) -> int:
    """An nf_tables message's nlmsg_type: subsystem in the high byte."""
    return (NFNL_SUBSYS_NFTABLES << 8) | msg


def nfgenmsg(family: int, res_id: int = 0) -> bytes:
    return _NFGENMSG.pack(family, NFNETLINK_V0, res_id)


def attr_be32(kind: int, value: int) -> bytes:
    return m.attr(kind, _BE32.pack(value))


def attr_be64(kind: int, value: int) -> bytes:
    return m.attr(kind, _BE64.pack(value))


# --- requests ---------------------------------------------------------------------------------


def gettable_request(family: str, table: str) -> bytes:
    """Body of an NFT_MSG_GETTABLE for one table."""
    return nfgenmsg(NFPROTO[family]) + m.attr_str(NFTA_TABLE_NAME, table)


def getchain_request(family: str, table: str, chain: str) -> bytes:
    """Body of an NFT_MSG_GETCHAIN for one chain of one table."""
    return (
        nfgenmsg(NFPROTO[family])
        + m.attr_str(NFTA_CHAIN_TABLE, table)
        + m.attr_str(NFTA_CHAIN_NAME, chain)
    )


def getgen_request() -> bytes:
    """Body of an NFT_MSG_GETGEN: the ruleset's generation, for the batch's check."""
    return nfgenmsg(NFPROTO_UNSPEC)


def getrule_dump_request(family: str, table: str, chain: str) -> bytes:
    """Body of an NFT_MSG_GETRULE dump of one chain's rules."""
    return (
        nfgenmsg(NFPROTO[family])
        + m.attr_str(NFTA_RULE_TABLE, table)
        + m.attr_str(NFTA_RULE_CHAIN, chain)
    )


def getrule_table_dump_request(family: str, table: str) -> bytes:
    """Body of an NFT_MSG_GETRULE dump of every rule of one table."""
    return nfgenmsg(NFPROTO[family]) + m.attr_str(NFTA_RULE_TABLE, table)


def delrule_request(family: str, table: str, chain: str, handle: int | None = None) -> bytes:
    """Body of an NFT_MSG_DELRULE: the rule ``handle``, or without one every rule
    of ``chain`` (what ``iptables -F`` / ``nft flush chain`` send)."""
    body = (
        nfgenmsg(NFPROTO[family])
        + m.attr_str(NFTA_RULE_TABLE, table)
        + m.attr_str(NFTA_RULE_CHAIN, chain)
    )
    if handle is not None:
        body += attr_be64(NFTA_RULE_HANDLE, handle)
    return body


def delchain_request(family: str, table: str, chain: str) -> bytes:
    """Body of an NFT_MSG_DELCHAIN (the chain must be empty and unreferenced
    once the batch's earlier messages are applied)."""
    return getchain_request(family, table, chain)


def batch_begin(genid: int | None) -> bytes:
    """Body of NFNL_MSG_BATCH_BEGIN for nf_tables.  With ``genid`` the kernel
    refuses the whole batch (ERESTART) if the ruleset changed since that
    generation was read, so the batch acts only on what was looked at."""
    body = nfgenmsg(NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES)
    if genid is not None:
        body += attr_be32(NFNL_BATCH_GENID, genid)
    return body


def batch_end() -> bytes:
    return nfgenmsg(NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES)


# --- replies ----------------------------------------------------------------------------------


def parse_genid(body: bytes) -> int:
    """The generation from an NFT_MSG_NEWGEN reply body; ValueError if absent."""
    found = m.parse_attrs(body, _NFGENMSG.size).get(NFTA_GEN_ID)
    if found is None or len(found) < 4:
        raise ValueError("generation reply without NFTA_GEN_ID")
    return int(_BE32.unpack_from(found)[0])


class Transaction:
    """The messages of one batch on one table, in order (``nfadd.Plan`` and
    ``nftnl.Batch`` add what each writes)."""

    __slots__ = ("_messages", "family", "table")

    def __init__(self, family: str, table: str) -> None:
        self.family = family
        self.table = table
        self._messages: list[tuple[int, int, bytes]] = []

    def __bool__(self) -> bool:
        return bool(self._messages)

    def _add(self, msg: int, flags: int, body: bytes) -> None:
        self._messages.append((message_type(msg), m.NLM_F_REQUEST | m.NLM_F_ACK | flags, body))

    def flush(self, chain: str) -> None:
        self._add(NFT_MSG_DELRULE, 0, delrule_request(self.family, self.table, chain))

    def delete(self, rule: Rule) -> None:
        body = delrule_request(self.family, self.table, rule.chain, rule.handle)
        self._add(NFT_MSG_DELRULE, 0, body)

    def messages(self) -> list[tuple[int, int, bytes]]:
        return list(self._messages)


class Expr:
    """One expression of a rule: its name and raw attributes (big-endian values)."""

    __slots__ = ("attrs", "name")

    def __init__(self, name: str, attrs: dict[int, bytes]) -> None:
        self.name = name
        self.attrs = attrs

    def u32(self, kind: int) -> int | None:
        data = self.attrs.get(kind)
        return int(_BE32.unpack_from(data)[0]) if data is not None and len(data) >= 4 else None

    def text(self, kind: int) -> str | None:
        data = self.attrs.get(kind)
        return m.get_str(data) if data is not None else None

    def value(self, kind: int) -> bytes | None:
        """The bytes of an nft_data attribute holding a value (a cmp's operand)."""
        data = self.attrs.get(kind)
        return None if data is None else m.parse_attrs(data).get(NFTA_DATA_VALUE)

    def verdict(self, kind: int) -> tuple[int, str | None] | None:
        """(code, chain) of an nft_data attribute holding a verdict."""
        data = self.attrs.get(kind)
        if data is None:
            return None
        verdict = m.parse_attrs(data).get(NFTA_DATA_VERDICT)
        if verdict is None:
            return None
        fields = m.parse_attrs(verdict)
        code = fields.get(NFTA_VERDICT_CODE)
        if code is None or len(code) < 4:
            return None
        chain = fields.get(NFTA_VERDICT_CHAIN)
        return int(_BE32S.unpack_from(code)[0]), m.get_str(chain) if chain is not None else None

    def __repr__(self) -> str:
        return f"Expr({self.name!r}, {sorted(self.attrs)})"


class Rule:
    """A rule as the kernel dumps it: chain, handle, expressions in order and
    its userdata (where nft keeps the comment: ``nftexpr.parse_comment``)."""

    __slots__ = ("chain", "exprs", "handle", "userdata")

    def __init__(self, chain: str, handle: int, exprs: list[Expr], userdata: bytes = b"") -> None:
        self.chain = chain
        self.handle = handle
        self.exprs = exprs
        self.userdata = userdata

    def jump_target(self) -> str | None:
        """The chain this rule jumps or goes to (iptables ``-j``/``-g`` to a
        user chain is an ``immediate`` into the verdict register), else None."""
        for expr in self.exprs:
            if expr.name != "immediate" or expr.u32(NFTA_IMMEDIATE_DREG) != NFT_REG_VERDICT:
                continue
            verdict = expr.verdict(NFTA_IMMEDIATE_DATA)
            if verdict is not None and verdict[0] in (NFT_JUMP, NFT_GOTO):
                return verdict[1]
        return None

    def __repr__(self) -> str:
        return f"Rule({self.chain!r}, {self.handle}, {[e.name for e in self.exprs]})"


def parse_rule(body: bytes) -> Rule:
    """An NFT_MSG_NEWRULE body (a dump's reply); ValueError if it lacks chain or handle."""
    attrs = m.parse_attrs(body, _NFGENMSG.size)
    chain = attrs.get(NFTA_RULE_CHAIN)
    handle = attrs.get(NFTA_RULE_HANDLE)
    if chain is None or handle is None or len(handle) < 8:
        raise ValueError("rule reply without chain or handle")
    exprs = parse_exprs(attrs.get(NFTA_RULE_EXPRESSIONS, b""))
    handle_value = int(_BE64.unpack_from(handle)[0])
    return Rule(m.get_str(chain), handle_value, exprs, attrs.get(NFTA_RULE_USERDATA, b""))


def parse_exprs(payload: bytes) -> list[Expr]:
    """The expressions of an NFTA_RULE_EXPRESSIONS payload, in order."""
    exprs = []
    for kind, elem in m.iter_attrs(payload):
        if kind != NFTA_LIST_ELEM:
            continue
        fields = m.parse_attrs(elem)
        name = fields.get(NFTA_EXPR_NAME)
        if name is None:
            raise ValueError("rule expression without a name")
        exprs.append(Expr(m.get_str(name), m.parse_attrs(fields.get(NFTA_EXPR_DATA, b""))))
    return exprs


def parse_rules(bodies: Iterable[bytes], chain: str) -> list[Rule]:
    """The rules of ``chain`` among dump replies (a kernel that ignores the
    dump's chain filter sends the whole table)."""
    return [rule for rule in map(parse_rule, bodies) if rule.chain == chain]
