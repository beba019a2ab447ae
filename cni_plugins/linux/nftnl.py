"""nftables tables changed and read over nf_tables netlink, without the ``nft`` program.

The nftables backends (portmap's ``cni_hostport``, ipMasq's
``cni_plugins_masquerade``) read a table's rules with one GETRULE dump
(``table_rules``) and make every change as one batch (``Batch``, ``apply``):
tables and chains ensured (NEWTABLE/NEWCHAIN without NLM_F_EXCL: an existing
one is left as it is), chains flushed, rules added (``nftexpr``'s
expressions, the comment as nft's userdata) or deleted by handle.  As in
``nfadd``, the batch carries the generation its reads were made at; a
concurrent writer makes the kernel refuse it (ERESTART) and the caller's
planner runs again on a fresh read.  A refusal is a CNIError naming the errno.
"""

from __future__ import annotations

import errno
import os

from cni_plugins.linux import nfmsg, nfremove
from cni_plugins.linux import nftexpr as x
from cni_plugins.linux import nlmsg as m
from cni_plugins.spec.errors import CNIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cni_plugins.linux.nfprobe import Netfilter
    from cni_plugins.linux.nlsock import NetlinkSocket

NFT_MSG_NEWTABLE = 0
NFT_MSG_NEWCHAIN = 3
NLM_F_APPEND = 0x800
NFTA_TABLE_USERDATA = 6
NFTA_CHAIN_HOOK = 4
NFTA_CHAIN_TYPE = 7
NFTA_CHAIN_USERDATA = 12
NFTA_HOOK_HOOKNUM = 1
NFTA_HOOK_PRIORITY = 2
HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}
_ATTEMPTS = 3


class Batch(nfmsg.Transaction):
    """One transaction on one table, in order."""

    __slots__ = ()

    def _head(self) -> bytes:
        return nfmsg.nfgenmsg(nfmsg.NFPROTO[self.family])

    def new_table(self, comment: str | None = None) -> None:
        body = self._head() + m.attr_str(nfmsg.NFTA_TABLE_NAME, self.table)
        if comment is not None:
            body += m.attr(NFTA_TABLE_USERDATA, x.comment(comment))
        self._add(NFT_MSG_NEWTABLE, m.NLM_F_CREATE, body)

    def new_chain(
        self,
        name: str,
        *,
        comment: str | None = None,
        hook: tuple[str, int] | None = None,
    ) -> None:
        """``add chain``: a regular chain, or with ``hook`` (hook name,
        priority) a base chain of type nat."""
        body = nfmsg.getchain_request(self.family, self.table, name)
        if hook is not None:
            body += m.nest(
                NFTA_CHAIN_HOOK,
                nfmsg.attr_be32(NFTA_HOOK_HOOKNUM, HOOKS[hook[0]]),
                nfmsg.attr_be32(NFTA_HOOK_PRIORITY, hook[1] & 0xFFFFFFFF),
                flag=False,
            ) + m.attr_str(NFTA_CHAIN_TYPE, "nat")
        if comment is not None:
            body += m.attr(NFTA_CHAIN_USERDATA, x.comment(comment))
        self._add(NFT_MSG_NEWCHAIN, m.NLM_F_CREATE, body)

    def add_rule(self, chain: str, exprs: bytes, comment: str | None = None) -> None:
        """``add rule`` (appended) of expressions ``exprs``."""
        body = (
            self._head()
            + m.attr_str(nfmsg.NFTA_RULE_TABLE, self.table)
            + m.attr_str(nfmsg.NFTA_RULE_CHAIN, chain)
            + m.nest(nfmsg.NFTA_RULE_EXPRESSIONS, exprs, flag=False)
        )
        if comment is not None:
            body += m.attr(nfmsg.NFTA_RULE_USERDATA, x.comment(comment))
        self._add(nfmsg.NFT_MSG_NEWRULE, m.NLM_F_CREATE | NLM_F_APPEND, body)


def comment_of(rule: nfmsg.Rule) -> str:
    return x.parse_comment(rule.userdata)


def table_rules(sock: NetlinkSocket, family: str, table: str) -> list[nfmsg.Rule] | None:
    """Every rule of ``family table``; None when the table does not exist."""
    try:
        sock.request(
            nfmsg.message_type(nfmsg.NFT_MSG_GETTABLE),
            nfmsg.gettable_request(family, table),
            what=f"nf_tables table {family} {table}",
        )
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    bodies = sock.dump(
        nfmsg.message_type(nfmsg.NFT_MSG_GETRULE),
        nfmsg.getrule_table_dump_request(family, table),
        what=f"nf_tables rules of {family} {table}",
    )
    return [nfmsg.parse_rule(body) for body in bodies]


def read(nf: Netfilter, family: str, table: str) -> list[nfmsg.Rule] | None:
    """``table_rules`` through ``nf``'s socket, failures as CNIError."""
    sock = _sock(nf)
    try:
        return table_rules(sock, family, table)
    except (OSError, ValueError) as exc:
        raise CNIError(f"could not read nftables table {family} {table}: {exc}") from None


def apply(
    nf: Netfilter,
    family: str,
    table: str,
    planner: Callable[[list[nfmsg.Rule] | None], Batch],
) -> None:
    """Run ``planner`` on the table's rules as the kernel holds them now (None:
    no table) and commit its batch, again on a fresh read if the ruleset
    changed in between.  A refusal: CNIError."""
    sock = _sock(nf)
    what = f"nftables table {family} {table}"
    try:
        for _ in range(_ATTEMPTS):
            genid = nfremove.generation(sock)
            batch = planner(table_rules(sock, family, table))
            if not batch:
                return
            failure = _commit(sock, genid, batch)
            if failure is None:
                return
            if failure != errno.ERESTART:
                raise CNIError(f"could not change {what}: {os.strerror(failure)}")
    except x.TooLong as exc:
        raise CNIError(f"could not change {what}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CNIError(f"could not change {what}: {exc}") from None
    raise CNIError(f"could not change {what}: the ruleset kept changing")


def _sock(nf: Netfilter) -> NetlinkSocket:
    if nf.sock is None:
        raise CNIError("nf_tables netlink is not available (no nfnetlink in this kernel?)")
    return nf.sock


def _commit(sock: NetlinkSocket, genid: int, batch: Batch) -> int | None:
    """None: applied; else the errno that refused it (ERESTART: read again)."""
    verdicts = sock.batch(
        [
            (nfmsg.NFNL_MSG_BATCH_BEGIN, m.NLM_F_REQUEST, nfmsg.batch_begin(genid)),
            *batch.messages(),
            (nfmsg.NFNL_MSG_BATCH_END, m.NLM_F_REQUEST, nfmsg.batch_end()),
        ]
    )
    for verdict in verdicts:
        if verdict is not None and verdict[0] != 0:
            return verdict[0]
    if any(v is None for v in verdicts[1:-1]):
        return errno.EPROTO  # a verdict went missing: not known to be applied
    return None
