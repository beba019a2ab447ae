"""nftables through ``nft``: one ``nft -f -`` transaction per change.

A script in nft's own syntax is applied atomically (all commands or none).
Reading uses ``nft -j list ...`` (JSON), which gives each rule's handle and
comment: deleting by handle is how rules are removed without racing others.

    nft = Nft()
    rules = nft.list_rules("inet", "cni_plugins_masquerade", "masq_checks")
    nft.apply(["add table inet t", "delete rule inet t c handle 7"])

The portmap and ipMasq nftables backends do without it (``nftnl``); it stays
for portmap's ``conditionsV4/V6`` (nft syntax), the doctor and macspoofchk.
Imported lazily, like ``iptables``; it reuses that module's exec helper (no shell,
clean environment, memfds).
"""

from __future__ import annotations

from cni_plugins.linux.iptables import ToolFailed, ToolNotFound, find_tool, run_tool
from cni_plugins.spec import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# nft's limit on rule comments (NFT_USERDATA_MAXLEN is 256 bytes; knftables uses 128).
COMMENT_MAX = 128


class NftRule:
    """A listed rule: where it is, its handle, its comment and its JSON expression."""

    __slots__ = ("chain", "comment", "expr", "family", "handle", "table")

    def __init__(
        self, family: str, table: str, chain: str, *, handle: int, comment: str, expr: list[Any]
    ) -> None:
        self.family = family
        self.table = table
        self.chain = chain
        self.handle = handle
        self.comment = comment
        self.expr = expr

    def delete_command(self) -> str:
        return f"delete rule {self.family} {self.table} {self.chain} handle {self.handle}"

    def __repr__(self) -> str:
        return f"NftRule({self.chain!r}, handle={self.handle}, comment={self.comment!r})"


def quote(text: str) -> str:
    """A double-quoted nft string (nft strings cannot contain a double quote)."""
    return '"' + text.replace('"', "") + '"'


class Nft:
    """The ``nft`` command."""

    __slots__ = ()

    def available(self) -> bool:
        try:
            find_tool("nft")
        except ToolNotFound:
            return False
        return True

    def apply(self, commands: Iterable[str]) -> None:
        """Run ``commands`` (one nft command each) as one atomic transaction."""
        script = "".join(c + "\n" for c in commands)
        if not script:
            return
        status, _out, err = run_tool(["nft", "-f", "-"], script.encode())
        if status != 0:
            text = err.decode(errors="replace").strip()
            raise ToolFailed(f"nft failed (exit status {status})", f"{text}\ninput:\n{script}")

    def list_json(self, *what: str) -> list[dict[str, Any]] | None:
        """``nft -j list <what>`` as the ``nftables`` array; None if the object
        does not exist."""
        status, out, err = run_tool(["nft", "-j", "list", *what])
        if status != 0:
            text = err.decode(errors="replace")
            if "No such file or directory" in text or "does not exist" in text:
                return None
            raise ToolFailed(f"nft list {' '.join(what)} failed", text.strip())
        try:
            items = jsonio.loads(out).get("nftables", [])
        except (ValueError, AttributeError) as exc:
            raise ToolFailed("nft printed invalid JSON", str(exc)) from None
        return [i for i in items if isinstance(i, dict)]

    def list_rules(self, family: str, table: str, chain: str) -> list[NftRule]:
        """Rules of one chain; empty when the table or chain does not exist."""
        items = self.list_json("chain", family, table, chain)
        return rules_from_json(items or [])

    def list_table_rules(self, family: str, table: str) -> list[NftRule] | None:
        """Every rule of a table; None when the table does not exist."""
        items = self.list_json("table", family, table)
        return None if items is None else rules_from_json(items)


def rules_from_json(items: list[dict[str, Any]]) -> list[NftRule]:
    out = []
    for item in items:
        rule = item.get("rule")
        if isinstance(rule, dict):
            out.append(
                NftRule(
                    str(rule.get("family", "")),
                    str(rule.get("table", "")),
                    str(rule.get("chain", "")),
                    handle=int(rule.get("handle", 0)),
                    comment=str(rule.get("comment", "")),
                    expr=list(rule.get("expr", [])),
                )
            )
    return out
