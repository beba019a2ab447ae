"""Per-pod iptables chains (nat table) of containers that are gone.

Two families, both named by a hash of (network, container ID) and both owned
through a rule comment that names the pair (so a chain is attributed only when
the comment hashes to that very chain):

* bridge/ipMasq: ``CNI-<hash>``, jumped to from POSTROUTING with the comment
  ``name: "<net>" id: "<cid>"``;
* portmap: ``CNI-DN-<hash>``, jumped to from CNI-HOSTPORT-DNAT with the comment
  ``dnat name: "<net>" id: "<cid>"``.

A chain whose container nothing shows alive (``evidence``; a reservation or a
saved flannel config of the container counts too: the leak check releases
those through DEL, which removes the chains itself) is removed with the rules
that jump to it, in one ``iptables-restore``.  Per-pod-named chains that no rule
references cannot be attributed and are only reported.

With the nftables backends the per-pod state is rules, not chains: portmap's
in ``ip``/``ip6 cni_hostport`` (comment: the container ID) and ipMasq's in
``inet cni_plugins_masquerade`` (comment ending ``id: <container ID>``); the
rules of dead containers are deleted by handle in one ``nft`` transaction.
"""

from __future__ import annotations

from cni_plugins.linux import ipmasq
from cni_plugins.linux.iptables import Iptables, Restore, parse_save
from cni_plugins.linux.nftables import NftRule
from cni_plugins.portmap import chains as portmap_chains
from cni_plugins.portmap import nft as portmap_nft
from cni_plugins.spec.errors import CNIError
from cni_plugins.tools.doctor.findings import ERROR, WARNING, Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cni_plugins.linux.nfprobe import Netfilter
    from cni_plugins.tools.doctor.evidence import Evidence
    from cni_plugins.tools.doctor.node import Node

CHECK = "orphan-chains"


def owners(rules: list[list[str]]) -> dict[str, tuple[str, str]]:
    """chain -> (network, container ID) for every per-pod chain a comment owns."""
    out: dict[str, tuple[str, str]] = {}
    for rule in rules:
        if "--comment" not in rule:
            continue
        text = rule[rule.index("--comment") + 1]
        target = portmap_chains.jump_target(rule)
        masq = ipmasq.parse_comment(text)
        if masq is not None:
            name = ipmasq.chain_name(*masq)
            if name in (rule[1], target):
                out[name] = masq
            continue
        dnat = portmap_chains.parse_comment(text)
        if dnat is not None and target == portmap_chains.dnat_chain_name(*dnat):
            out[target] = dnat
    return out


def per_pod_name(chain: str) -> bool:
    """Names the plugins give per-pod chains (CNI-<24 hex>, CNI-DN-/CNI-SN-<21 hex>)."""
    for prefix in ("CNI-DN-", "CNI-SN-", "CNI-"):
        rest = chain[len(prefix) :]
        if (
            chain.startswith(prefix)
            and len(chain) == 28
            and all(c in "0123456789abcdef" for c in rest)
        ):
            return True
    return False


def removal(table: str, doomed: set[str], rules: list[list[str]]) -> Restore:
    """Delete every rule that jumps to a doomed chain, then flush and delete them."""
    restore = Restore(table)
    for rule in rules:
        if rule[1] not in doomed and portmap_chains.jump_target(rule) in doomed:
            restore.delete(rule[1], *rule[2:])
    for chain in sorted(doomed):
        restore.flush(chain)
    for chain in sorted(doomed):
        restore.delete_chain(chain)
    return restore


def check(node: Node, evidence_now: Callable[[], tuple[set[str], Evidence]]) -> list[Finding]:
    """``evidence_now()``: the container IDs with a reservation or saved config
    left, and the liveness evidence, read *after* the table (a chain an ADD made
    since is then seen with its reservation)."""
    findings: list[Finding] = []
    for family in (4, 6):
        tables = Iptables(family)
        if not tables.available():
            continue
        try:
            chains, rules = parse_save(tables.save("nat"), ("CNI-",))
        except CNIError:
            continue  # no nat table in this family (module not loaded)
        owned = owners(rules)
        held, evidence = evidence_now()
        doomed: dict[str, tuple[str, str]] = {}
        for chain, (network, container_id) in owned.items():
            if chain not in chains or container_id in held:
                continue
            if evidence.alive(container_id, []):
                continue
            doomed[chain] = (network, container_id)
        referenced = {portmap_chains.jump_target(r) for r in rules}
        loose = sorted(
            c for c in chains if per_pod_name(c) and c not in owned and c not in referenced
        )
        if doomed:
            f = Finding(
                CHECK,
                ERROR,
                f"{tables.prefix} nat",
                "per-pod chains of containers nothing shows alive: "
                + ", ".join(f"{c} ({n}/{cid[:12]})" for c, (n, cid) in sorted(doomed.items()))
                + "; their DEL never came (or the network was renamed), and their DNAT rules"
                " still catch traffic for the old pod addresses",
                "remove the chains and the rules jumping to them: cni-doctor --repair",
            )
            if node.options.repair:
                try:
                    tables.restore(removal("nat", set(doomed), rules))
                    f.repaired = True
                    node.log(f"removed {tables.prefix} nat chains {', '.join(sorted(doomed))}")
                except CNIError as exc:
                    f.message += f"; removal failed: {exc.msg} {exc.details}"
            findings.append(f)
        if loose:
            findings.append(
                Finding(
                    CHECK,
                    WARNING,
                    f"{tables.prefix} nat",
                    "per-pod-named chains no rule uses and no comment attributes: "
                    + ", ".join(loose),
                    f"if no plugin is mid-ADD, delete them: {tables.prefix} -t nat -X <chain>",
                )
            )
    return findings


# (family, table, how a rule's comment names its container)
NFT_TABLES = (
    ("ip", "cni_hostport"),
    ("ip6", "cni_hostport"),
    (ipmasq.NFT_FAMILY, ipmasq.NFT_TABLE),
)


def nft_owner(rule: NftRule) -> str | None:
    """The container a per-pod nftables rule belongs to, None for shared rules."""
    if rule.table == ipmasq.NFT_TABLE:
        head, sep, container_id = rule.comment.rpartition(", id: ")
        return container_id if sep and head else None
    if rule.chain in portmap_nft.CONTAINER_CHAINS and rule.comment:
        return rule.comment
    return None


def check_nft(node: Node, evidence_now: Callable[[], tuple[set[str], Evidence]]) -> list[Finding]:
    from cni_plugins.linux.nfprobe import Netfilter

    with Netfilter() as nf:
        if nf.sock is None:
            return []  # no nfnetlink: no nftables tables either
        return _check_nft(node, nf, evidence_now)


def read_nft_rules(nf: Netfilter) -> list[NftRule]:
    """The rules of ``NFT_TABLES`` over netlink, as listed rules (handle, comment)."""
    from cni_plugins.linux import nftnl

    rules: list[NftRule] = []
    for family, table in NFT_TABLES:
        try:
            listed = nftnl.read(nf, family, table) or []
        except CNIError:
            continue
        rules += [
            NftRule(family, table, r.chain, handle=r.handle, comment=nftnl.comment_of(r), expr=[])
            for r in listed
        ]
    return rules


def delete_nft_rules(nf: Netfilter, rules: list[NftRule]) -> None:
    """Delete ``rules`` by handle, one nf_tables batch per table."""
    from cni_plugins.linux import nfmsg, nftnl

    for family, table in sorted({(r.family, r.table) for r in rules}):
        mine = [r for r in rules if (r.family, r.table) == (family, table)]

        def plan(
            _now: object, family: str = family, table: str = table, mine: list[NftRule] = mine
        ) -> nftnl.Batch:
            batch = nftnl.Batch(family, table)
            for r in mine:
                batch.delete(nfmsg.Rule(r.chain, r.handle, []))
            return batch

        nftnl.apply(nf, family, table, plan)


def _check_nft(
    node: Node, nf: Netfilter, evidence_now: Callable[[], tuple[set[str], Evidence]]
) -> list[Finding]:
    rules = read_nft_rules(nf)
    owned = [(r, owner) for r in rules if (owner := nft_owner(r)) is not None]
    if not owned:
        return []
    held, evidence = evidence_now()
    dead = [(r, cid) for r, cid in owned if cid not in held and not evidence.alive(cid, [])]
    if not dead:
        return []
    tables = sorted({f"{r.family} {r.table}" for r, _ in dead})
    containers = sorted({cid for _, cid in dead})
    f = Finding(
        CHECK,
        ERROR,
        "nftables " + ", ".join(tables),
        f"{len(dead)} per-pod rule(s) of containers nothing shows alive:"
        f" {', '.join(c[:12] for c in containers)}; their DEL never came",
        "delete the rules: cni-doctor --repair",
    )
    if node.options.repair:
        try:
            delete_nft_rules(nf, [r for r, _ in dead])
            f.repaired = True
            node.log(f"deleted {len(dead)} nftables rules of {', '.join(containers)}")
        except CNIError as exc:
            f.message += f"; deletion failed: {exc.msg}"
    return [f]
