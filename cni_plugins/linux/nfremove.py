"""Remove iptables chains in one nf_tables transaction, without exec'ing a tool.

With the nf_tables backend every ``iptables-restore`` that changes something
first fetches the whole table into its cache: with 2,000 unrelated nat rules a
DEL's restore of three lines costs ~15-18 ms, an ``iptables -S`` of one chain
~4.4 ms.  The kernel can do the same removal from a few small messages: dump the
chains involved (NFT_MSG_GETRULE, one chain each), then one batch deleting the
jump rules by handle, flushing the doomed chains and deleting them.

It is what ``iptables-nft -D``/``-F``/``-X`` themselves send, with the same
guarantees:

* the batch is atomic: any refusal (a jump from a chain not looked at makes
  DELCHAIN fail with EBUSY, a rule already gone ENOENT) aborts all of it;
* it carries the generation the dumps were read at, so the kernel refuses it
  (ERESTART) if anything changed the ruleset in between; we then read again,
  as iptables-nft does;
* rules are deleted by handle, never by position.

Only rules and chains are removed; nothing is added, so the tables stay as
iptables-nft expects them.  Every case this does not cover (the legacy
backend, no nf_tables netlink, a kernel refusal, a caller that does not
understand what it saw) answers None with nothing changed, and the caller
takes the iptables-restore way.
"""

from __future__ import annotations

import errno

from cni_plugins.linux import nfmsg, nfprobe
from cni_plugins.linux import nlmsg as m

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    from cni_plugins.linux.nlsock import NetlinkSocket

    T = TypeVar("T")

# Another writer between our dumps and our batch: read again, a few times.
_ATTEMPTS = 3
_DONE, _CHANGED, _REFUSED = "done", "changed", "refused"


def remove_chains(
    nf: nfprobe.Netfilter,
    family: int,
    table: str,
    doomed: Sequence[str],
    *,
    referrers: Sequence[str],
    inspect: Callable[[list[nfmsg.Rule]], T | None],
) -> T | None:
    """Delete chains ``doomed`` of iptables table ``table`` (family 4 or 6) and
    every rule of ``referrers`` that jumps to one of them, through ``nf``'s
    socket (its namespace; close it after the caller's remaining work).

    ``inspect`` sees the doomed chains' rules before anything is removed and
    returns what the caller needs from them (e.g. the ports they mapped), or
    None to give up.  Returns that answer once the chains are gone, or None
    when this way cannot do it: then nothing was changed, except in the one
    case where the kernel's verdict on a sent batch went missing, so the
    caller's fallback must be idempotent (it re-reads what is left).
    """
    sock = nf.sock
    if sock is None or nfprobe.legacy_table_exists(family, table) is not False:
        return None
    nft_family = nfmsg.iptables_family(family)
    names = set(doomed)
    try:
        for _ in range(_ATTEMPTS):
            genid = generation(sock)
            own = [rule for chain in doomed for rule in chain_rules(sock, nft_family, table, chain)]
            answer = inspect(own)
            if answer is None:
                return None
            jumps = [
                rule
                for chain in referrers
                if chain not in names
                for rule in chain_rules(sock, nft_family, table, chain)
                if rule.jump_target() in names
            ]
            outcome = _commit(sock, nft_family, table, genid, jumps=jumps, doomed=doomed)
            if outcome == _DONE:
                return answer
            if outcome == _REFUSED:
                return None
    except (OSError, ValueError):
        # No nfnetlink, a refused dump, a chain already gone, a reply we cannot
        # parse: all mean "not this way".
        return None
    return None


def generation(sock: NetlinkSocket) -> int:
    replies = sock.request(
        nfmsg.message_type(nfmsg.NFT_MSG_GETGEN),
        nfmsg.getgen_request(),
        what="nf_tables generation",
    )
    if len(replies) != 1:
        raise ValueError(f"expected one generation reply, got {len(replies)}")
    return nfmsg.parse_genid(replies[0])


def chain_rules(sock: NetlinkSocket, family: str, table: str, chain: str) -> list[nfmsg.Rule]:
    bodies = sock.dump(
        nfmsg.message_type(nfmsg.NFT_MSG_GETRULE),
        nfmsg.getrule_dump_request(family, table, chain),
        what=f"nf_tables rules of {chain}",
    )
    return nfmsg.parse_rules(bodies, chain)


def _commit(
    sock: NetlinkSocket,
    family: str,
    table: str,
    genid: int,
    *,
    jumps: Sequence[nfmsg.Rule],
    doomed: Sequence[str],
) -> str:
    """Send the batch; _DONE, _CHANGED (generation moved: read again) or _REFUSED."""
    ack = m.NLM_F_REQUEST | m.NLM_F_ACK
    delrule = nfmsg.message_type(nfmsg.NFT_MSG_DELRULE)
    commands = [
        (delrule, ack, nfmsg.delrule_request(family, table, r.chain, r.handle)) for r in jumps
    ]
    for chain in doomed:
        commands.append((delrule, ack, nfmsg.delrule_request(family, table, chain)))
        commands.append(
            (
                nfmsg.message_type(nfmsg.NFT_MSG_DELCHAIN),
                ack,
                nfmsg.delchain_request(family, table, chain),
            )
        )
    verdicts = sock.batch(
        [
            (nfmsg.NFNL_MSG_BATCH_BEGIN, m.NLM_F_REQUEST, nfmsg.batch_begin(genid)),
            *commands,
            (nfmsg.NFNL_MSG_BATCH_END, m.NLM_F_REQUEST, nfmsg.batch_end()),
        ]
    )
    begin = verdicts[0]
    if begin is not None and begin[0] == errno.ERESTART:
        return _CHANGED
    if begin is not None and begin[0] != 0:
        return _REFUSED
    # Success only when the kernel acknowledged every command: an error on any
    # of them aborted the whole batch, a missing verdict leaves doubt.
    if all(v is not None and v[0] == 0 for v in verdicts[1:-1]):
        return _DONE
    return _REFUSED
