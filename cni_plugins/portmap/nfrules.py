"""Portmap's DNAT rules read back from an nf_tables dump (``linux.nfmsg``).

DEL flushes the conntrack entries of the UDP host ports a container's chain
mapped.  When the chain goes in one nf_tables transaction (``linux.nfremove``),
those ports come from the rules as iptables-nft stores them: ``-p udp`` is a
``meta l4proto`` (or, from older versions, the IPv4 header's protocol byte)
compared to 17, ``--dport N`` a 2-byte load at transport offset 2 compared to
N, and the DNAT a ``target`` (or a native ``nat`` expression).  A DNAT rule in
any other shape makes the answer "unknown", and the caller lists the chain with
``iptables -S`` instead: a port is never guessed.
"""

from __future__ import annotations

from cni_plugins.linux import nfmsg as n

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

IPPROTO_UDP = 17
# Expressions whose effect on the match is understood (or irrelevant to it:
# counters, compat matches like comment/multiport); any other one in a DNAT
# rule (a bitwise, a range, a set lookup) may change what a compare means.
_KNOWN = frozenset(("meta", "payload", "cmp", "counter", "match", "target", "immediate", "nat"))


def udp_ports(rules: Iterable[n.Rule]) -> set[int] | None:
    """UDP host ports that the DNAT rules among ``rules`` map; None when one of
    them is not in a shape read here."""
    ports: set[int] = set()
    for rule in rules:
        if not _is_dnat(rule):
            continue
        if any(e.name not in _KNOWN for e in rule.exprs):
            return None
        proto, port = _l4_match(rule)
        if proto is None:
            return None
        if proto != IPPROTO_UDP:
            continue
        if port is None:
            return None
        ports.add(port)
    return ports


def _is_dnat(rule: n.Rule) -> bool:
    return any(
        (e.name == "target" and e.text(n.NFTA_TARGET_NAME) == "DNAT") or e.name == "nat"
        for e in rule.exprs
    )


def _l4_match(rule: n.Rule) -> tuple[int | None, int | None]:
    """(protocol, destination port) that ``rule`` requires, each None if absent."""
    loaded: dict[int, str] = {}  # register -> what was loaded into it
    proto = port = None
    for e in rule.exprs:
        if e.name == "meta":
            key = e.u32(n.NFTA_META_KEY)
            _load(
                loaded, e.u32(n.NFTA_META_DREG), "proto" if key == n.NFT_META_L4PROTO else "other"
            )
        elif e.name == "payload":
            where = (
                e.u32(n.NFTA_PAYLOAD_BASE),
                e.u32(n.NFTA_PAYLOAD_OFFSET),
                e.u32(n.NFTA_PAYLOAD_LEN),
            )
            if where == (n.NFT_PAYLOAD_NETWORK_HEADER, 9, 1):  # IPv4 protocol
                _load(loaded, e.u32(n.NFTA_PAYLOAD_DREG), "proto")
            elif where == (n.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2):  # destination port
                _load(loaded, e.u32(n.NFTA_PAYLOAD_DREG), "dport")
            else:
                _load(loaded, e.u32(n.NFTA_PAYLOAD_DREG), "other")
        elif e.name == "cmp" and e.u32(n.NFTA_CMP_OP) == n.NFT_CMP_EQ:
            sreg = e.u32(n.NFTA_CMP_SREG)
            what = loaded.get(sreg) if sreg is not None else None
            data = e.value(n.NFTA_CMP_DATA)
            if data is None:
                continue
            if what == "proto" and len(data) >= 1:
                proto = data[0]
            elif what == "dport" and len(data) >= 2:
                port = int.from_bytes(data[:2], "big")
    return proto, port


def _load(loaded: dict[int, str], register: int | None, what: str) -> None:
    if register is not None:
        loaded[register] = what
