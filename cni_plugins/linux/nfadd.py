"""Add iptables chains and rules in one nf_tables transaction, without exec'ing a tool.

The counterpart of ``nfremove`` for ADD: where iptables runs on the nf_tables
backend (iptables-nft), a caller reads the chains it cares about (``Reader``:
a few NFT_MSG_GETCHAIN probes and per-chain rule dumps), says what to change
(``Plan``: chains to create or flush, rules to append, insert or delete by
handle), and the plan goes to the kernel as one batch.  The rules are the
ones iptables-nft itself writes (``nfrule``), so ``iptables-save`` cannot
tell who wrote them.

The guarantees are those of ``nfremove``: the batch is atomic; it carries the
generation the reads were made at, so a concurrent writer in between makes
the kernel refuse it (ERESTART) and everything is read and planned again;
rules are deleted by handle.  Creating a chain that exists is a no-op
(NEWCHAIN without NLM_F_EXCL), never a flush, so concurrent first ADDs cannot
empty each other's shared chains.  A missing table or built-in chain is
created as iptables-nft creates it (the hook and priority of the iptables
table), only the ones used.

Which backend: a legacy table in the namespace means legacy; else the
``iptables-restore`` on PATH says (``xtables-nft-multi`` or
``xtables-legacy-multi``, resolved without an exec); when it cannot (a
wrapper script), an existing nf_tables table says nf_tables, and no table
anywhere leaves the first ADD to the tool.

Every case this does not cover (the legacy backend, no nf_tables netlink, a
rule ``nfrule`` cannot encode, a planner that does not understand what it
read, a kernel refusal) answers False, normally with nothing changed: the
caller then takes the iptables-restore way for the whole invocation.  As in
``nfremove``, a batch whose verdict went missing may have been applied, so
that fallback must be idempotent.
"""

from __future__ import annotations

import errno
import os

from cni_plugins.linux import nfmsg, nfprobe, nfremove, nfrule
from cni_plugins.linux import nlmsg as m

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from cni_plugins.linux.nlsock import NetlinkSocket

NFT_MSG_NEWTABLE = 0
NFT_MSG_NEWCHAIN = 3
NLM_F_APPEND = 0x800
NFTA_CHAIN_HOOK = 4
NFTA_CHAIN_POLICY = 5
NFTA_CHAIN_TYPE = 7
NFTA_HOOK_HOOKNUM = 1
NFTA_HOOK_PRIORITY = 2
NF_ACCEPT = 1
# iptables' built-in chains of the nat table: netfilter hook and priority
# (NF_IP_PRI_NAT_DST / _SRC), as iptables-nft declares them.
NAT_BUILTINS = {"PREROUTING": (0, -100), "INPUT": (1, 100), "OUTPUT": (3, -100),
                "POSTROUTING": (4, 100)}  # fmt: skip
_ATTEMPTS = 3


class Unplannable(Exception):
    """The planner cannot say what to do from what it read: not this way."""


class Reader:
    """What a planner may ask of one family's table, at the batch's generation."""

    __slots__ = ("_sock", "family", "nft_family", "table")

    def __init__(self, sock: NetlinkSocket, family: int, table: str) -> None:
        self._sock = sock
        self.family = family
        self.nft_family = nfmsg.iptables_family(family)
        self.table = table

    def chains(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` exist (an unclear answer: Unplannable)."""
        found: set[str] = set()
        for name in names:
            try:
                self._sock.request(
                    nfmsg.message_type(nfmsg.NFT_MSG_GETCHAIN),
                    nfmsg.getchain_request(self.nft_family, self.table, name),
                    what="nf_tables chain lookup",
                )
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                raise Unplannable(str(exc)) from exc
            found.add(name)
        return found

    def table_exists(self) -> bool:
        try:
            self._sock.request(
                nfmsg.message_type(nfmsg.NFT_MSG_GETTABLE),
                nfmsg.gettable_request(self.nft_family, self.table),
                what="nf_tables table lookup",
            )
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise Unplannable(str(exc)) from exc
        return True

    def rules(self, chain: str) -> list[nfmsg.Rule]:
        return nfremove.chain_rules(self._sock, self.nft_family, self.table, chain)


class Plan(nfmsg.Transaction):
    """One transaction on one family's table, in order."""

    __slots__ = ()

    def __init__(self, family: int, table: str) -> None:
        super().__init__(nfmsg.iptables_family(family), table)

    def new_table(self) -> None:
        body = nfmsg.nfgenmsg(nfmsg.NFPROTO[self.family]) + m.attr_str(
            nfmsg.NFTA_TABLE_NAME, self.table
        )
        self._add(NFT_MSG_NEWTABLE, m.NLM_F_CREATE, body)

    def new_chain(self, name: str) -> None:
        """Create user chain ``name`` unless it exists (then: unchanged)."""
        self._add(NFT_MSG_NEWCHAIN, m.NLM_F_CREATE, self._chain(name))

    def new_builtin(self, name: str) -> None:
        """Create built-in chain ``name`` of the nat table as iptables-nft does."""
        hooknum, priority = NAT_BUILTINS[name]
        hook = m.nest(
            NFTA_CHAIN_HOOK,
            nfmsg.attr_be32(NFTA_HOOK_HOOKNUM, hooknum),
            nfmsg.attr_be32(NFTA_HOOK_PRIORITY, priority & 0xFFFFFFFF),
            flag=False,
        )
        body = (
            self._chain(name)
            + hook
            + nfmsg.attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            + m.attr_str(NFTA_CHAIN_TYPE, "nat")
        )
        self._add(NFT_MSG_NEWCHAIN, m.NLM_F_CREATE, body)

    def append(self, chain: str, rule: nfrule.Encoded) -> None:
        body = rule.newrule(self.family, self.table, chain)
        self._add(nfmsg.NFT_MSG_NEWRULE, m.NLM_F_CREATE | NLM_F_APPEND, body)

    def insert(self, chain: str, rule: nfrule.Encoded) -> None:
        """At the head of ``chain`` (``iptables -I``)."""
        self._add(
            nfmsg.NFT_MSG_NEWRULE, m.NLM_F_CREATE, rule.newrule(self.family, self.table, chain)
        )

    def _chain(self, name: str) -> bytes:
        return nfmsg.getchain_request(self.family, self.table, name)


def encode_all(family: int, rules: Iterable[Sequence[str]]) -> list[nfrule.Encoded] | None:
    """``nfrule.encode`` of every rule, or None if one of them cannot be."""
    out = []
    for rule in rules:
        encoded = nfrule.encode(family, rule)
        if encoded is None:
            return None
        out.append(encoded)
    return out


def same(rule: nfmsg.Rule, encoded: nfrule.Encoded) -> bool:
    """Whether the kernel's ``rule`` is ``encoded`` (counters aside)."""
    return _shape(rule.exprs) == _shape(nfmsg.parse_exprs(encoded.exprs))


def _shape(exprs: Sequence[nfmsg.Expr]) -> list[tuple[str, list[tuple[int, bytes]]]]:
    return [(e.name, [] if e.name == "counter" else sorted(e.attrs.items())) for e in exprs]


def apply(
    nf: nfprobe.Netfilter, family: int, table: str, planner: Callable[[Reader], Plan]
) -> bool:
    """Run ``planner`` on what the kernel holds now and commit its plan in one
    batch through ``nf``'s socket; True once the kernel has applied it (or
    there was nothing to do), False: not this way (see the module's doc)."""
    sock = nf.sock
    if sock is None or nfprobe.legacy_table_exists(family, table) is not False:
        return False
    try:
        tool = tool_backend(family)
        if tool in ("legacy", "nft-other") or (
            tool is None and not Reader(sock, family, table).table_exists()
        ):
            return False
        for _ in range(_ATTEMPTS):
            genid = nfremove.generation(sock)
            plan = planner(Reader(sock, family, table))
            if not plan:
                return True
            outcome = _commit(sock, genid, plan)
            if outcome is not None:
                return outcome
    except (OSError, ValueError, Unplannable):
        return False
    return False


def tool_backend(family: int) -> str | None:
    """``nft``, ``nft-other`` or ``legacy``: the backend of the ``iptables-restore``
    the iptables way would run (its multi-call binary's name, no exec), or None
    when that does not tell (a wrapper, no tool).  With no table on either
    side yet, only the tool knows where the node's rules belong.

    ``nft-other`` is an iptables-nft of another release than the one whose
    encoding linux.nfrule reproduces: its own ``-S``/``-save`` (portmap CHECK,
    a Go plugin's DEL on this node) may not read rules we encoded the same way
    (iptables 1.8.7 does not), so those nodes keep the tool."""
    from cni_plugins.linux.iptables import ToolNotFound, find_tool

    try:
        real = os.path.realpath(find_tool(f"{_PREFIX[family]}-restore"))
    except (ToolNotFound, OSError):
        return None
    name = os.path.basename(real)
    if "legacy" in name:
        return "legacy"
    if "nft" not in name:
        return None
    return "nft" if _is_release(real, ENCODED_RELEASE) else "nft-other"


# The iptables-nft release nfrule's encoding is taken from, as its binary names itself.
ENCODED_RELEASE = b"1.8.9 (nf_tables)"


def _is_release(path: str, marker: bytes) -> bool:
    """Whether the executable at ``path`` holds ``marker`` (its version string;
    a read of ~200 KiB from the page cache, no exec).  Read once per process:
    iptables-restore and ip6tables-restore are one multi-call binary."""
    key = (path, marker)
    if key not in _RELEASES:
        try:
            with open(path, "rb") as f:
                _RELEASES[key] = marker in f.read(4 << 20)
        except OSError:
            _RELEASES[key] = False
    return _RELEASES[key]


_RELEASES: dict[tuple[str, bytes], bool] = {}


_PREFIX = {4: "iptables", 6: "ip6tables"}


def _commit(sock: NetlinkSocket, genid: int, plan: Plan) -> bool | None:
    """True: applied; False: refused; None: the ruleset moved, plan again."""
    messages = plan.messages()
    verdicts = sock.batch(
        [
            (nfmsg.NFNL_MSG_BATCH_BEGIN, m.NLM_F_REQUEST, nfmsg.batch_begin(genid)),
            *messages,
            (nfmsg.NFNL_MSG_BATCH_END, m.NLM_F_REQUEST, nfmsg.batch_end()),
        ]
    )
    begin = verdicts[0]
    if begin is not None and begin[0] == errno.ERESTART:
        return None
    if begin is not None and begin[0] != 0:
        return False
    return all(v is not None and v[0] == 0 for v in verdicts[1:-1])
