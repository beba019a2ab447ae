"""Does a netfilter table or chain exist?  Asked of the kernel, without exec'ing a tool.

A DEL mostly finds nothing to remove in most places it must look (the other
family, the other backend), and asking ``nft`` or ``iptables-save`` costs an exec
each, which grows with the size of the ruleset: ``nft -j list tables`` reads every
rule of every table (~45 ms with 2,000 unrelated nat rules), ``iptables-save -t
nat`` prints them all.  One NETLINK_NETFILTER request (NFT_MSG_GETTABLE /
NFT_MSG_GETCHAIN) answers in microseconds whatever the ruleset holds.

iptables with the nf_tables backend keeps its tables as nf_tables tables of
family ``ip`` / ``ip6`` with the same table and chain names, so the same request
answers for it.  The legacy backend (x_tables) is invisible to netlink; when its
table exists in this namespace (``/proc/net/ip{,6}_tables_names``) the answer is
"unknown" (None) and the caller asks the tool as before.  Every doubt (no
netfilter netlink, a refused request) is "unknown" too: a probe only ever saves
an exec, it never decides that something is absent without proof.
"""

from __future__ import annotations

import errno
import struct

from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.nlsock import NetlinkError, NetlinkNotFoundError, NetlinkSocket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNETLINK_V0 = 0
NFT_MSG_GETTABLE = 1
NFT_MSG_GETCHAIN = 4
NFTA_TABLE_NAME = 1
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
# linux/netfilter.h
NFPROTO = {"inet": 1, "ip": 2, "ip6": 10}

_NFGENMSG = struct.Struct("=BBH")  # family, version, res_id (big-endian; always 0 here)
# Where the legacy backend lists the x_tables tables of the calling thread's namespace.
_LEGACY_NAMES = {
    4: "/proc/thread-self/net/ip_tables_names",
    6: "/proc/thread-self/net/ip6_tables_names",
}


def _message_type(msg: int) -> int:
    return (NFNL_SUBSYS_NFTABLES << 8) | msg


def gettable_request(family: str, table: str) -> bytes:
    """Body of an NFT_MSG_GETTABLE for one table (nfgenmsg + name)."""
    return _NFGENMSG.pack(NFPROTO[family], NFNETLINK_V0, 0) + m.attr_str(NFTA_TABLE_NAME, table)


def getchain_request(family: str, table: str, chain: str) -> bytes:
    """Body of an NFT_MSG_GETCHAIN for one chain of one table."""
    return (
        _NFGENMSG.pack(NFPROTO[family], NFNETLINK_V0, 0)
        + m.attr_str(NFTA_CHAIN_TABLE, table)
        + m.attr_str(NFTA_CHAIN_NAME, chain)
    )


def nft_table_exists(family: str, table: str) -> bool | None:
    """Whether nf_tables table ``family table`` exists; None when unknown."""
    try:
        with NetlinkSocket(protocol=NETLINK_NETFILTER) as sock:
            return _exists(sock, NFT_MSG_GETTABLE, gettable_request(family, table))
    except OSError:
        return None


def iptables_chains(family: int, table: str, chains: Iterable[str]) -> set[str] | None:
    """Which of ``chains`` exist in iptables table ``table`` of ``family`` (4 or 6);
    None when unknown: the legacy backend has that table here, or nf_tables
    cannot be asked."""
    if _legacy_table_exists(family, table) is not False:
        return None
    nft_family = "ip" if family == 4 else "ip6"
    found: set[str] = set()
    try:
        with NetlinkSocket(protocol=NETLINK_NETFILTER) as sock:
            for chain in chains:
                exists = _exists(sock, NFT_MSG_GETCHAIN, getchain_request(nft_family, table, chain))
                if exists is None:
                    return None
                if exists:
                    found.add(chain)
    except OSError:
        return None
    return found


def _exists(sock: NetlinkSocket, msg: int, body: bytes) -> bool | None:
    try:
        sock.request(_message_type(msg), body, what="nf_tables lookup")
    except NetlinkNotFoundError as exc:
        # ENOENT: no such table/chain.  The others of that class mean something else.
        return False if exc.errno == errno.ENOENT else None
    except NetlinkError:
        return None
    return True


def _legacy_table_exists(family: int, table: str) -> bool | None:
    """Whether x_tables (legacy iptables) has ``table`` in this namespace: the
    kernel lists a table there once anything has used it; no file means the
    x_tables module is not even loaded."""
    try:
        with open(_LEGACY_NAMES[family], "rb") as f:  # bytes: no codec import
            return table.encode() in f.read().split()
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return None
