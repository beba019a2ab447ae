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

from cni_plugins.linux import nfmsg
from cni_plugins.linux.nlsock import NetlinkNotFoundError, NetlinkSocket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Self

# Where the legacy backend lists the x_tables tables of the calling thread's namespace.
_LEGACY_NAMES = {
    4: "/proc/thread-self/net/ip_tables_names",
    6: "/proc/thread-self/net/ip6_tables_names",
}


class Netfilter:
    """One NETLINK_NETFILTER socket, in the calling thread's namespace, for a run
    of probes (and ``nfremove`` removals) in that namespace.

    Close it last.  Once a batch changed the ruleset, closing any netfilter
    socket waits until the kernel has freed what the batch removed (the
    NETLINK_URELEASE handler flushes nf_tables' destroy work, which waits for
    an RCU grace period: 4-14 ms measured here).  One socket closed after the
    rest of the work lets that work hide the wait; a socket per probe would
    pay it at the first close after the change.
    """

    __slots__ = ("sock",)

    def __init__(self) -> None:
        try:
            self.sock: NetlinkSocket | None = NetlinkSocket(protocol=nfmsg.NETLINK_NETFILTER)
        except OSError:
            self.sock = None  # no nfnetlink here: every answer is "unknown"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def nft_table_exists(self, family: str, table: str) -> bool | None:
        """Whether nf_tables table ``family table`` exists; None when unknown."""
        if self.sock is None:
            return None
        return _exists(self.sock, nfmsg.NFT_MSG_GETTABLE, nfmsg.gettable_request(family, table))

    def iptables_chains(self, family: int, table: str, chains: Iterable[str]) -> set[str] | None:
        """Which of ``chains`` exist in iptables table ``table`` of ``family`` (4
        or 6); None when unknown: the legacy backend has that table here, or
        nf_tables cannot be asked."""
        if self.sock is None or legacy_table_exists(family, table) is not False:
            return None
        nft_family = nfmsg.iptables_family(family)
        found: set[str] = set()
        for chain in chains:
            exists = _exists(
                self.sock,
                nfmsg.NFT_MSG_GETCHAIN,
                nfmsg.getchain_request(nft_family, table, chain),
            )
            if exists is None:
                return None
            if exists:
                found.add(chain)
        return found


def nft_table_exists(family: str, table: str) -> bool | None:
    """``Netfilter.nft_table_exists`` on a socket of its own."""
    with Netfilter() as nf:
        return nf.nft_table_exists(family, table)


def iptables_chains(family: int, table: str, chains: Iterable[str]) -> set[str] | None:
    """``Netfilter.iptables_chains`` on a socket of its own."""
    with Netfilter() as nf:
        return nf.iptables_chains(family, table, chains)


def _exists(sock: NetlinkSocket, msg: int, body: bytes) -> bool | None:
    try:
        sock.request(nfmsg.message_type(msg), body, what="nf_tables lookup")
    except NetlinkNotFoundError as exc:
        # ENOENT: no such table/chain.  The others of that class mean something else.
        return False if exc.errno == errno.ENOENT else None
    except OSError:
        return None  # another refusal, or the socket itself failed
    return True


def legacy_table_exists(family: int, table: str) -> bool | None:
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
