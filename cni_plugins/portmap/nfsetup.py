"""Portmap's ADD on the nf_tables backend: ``chains.setup`` as one netlink batch.

The same changes as the two restores of the iptables way (``chains.create``
for missing shared chains, then ``chains.setup``), in the same order, so the
chains and rules come out identical, handles and listing order included: the
per-container chain created or flushed and refilled, the shared chains' rules
and entry rules added when missing (MASQ's entry at the head of POSTROUTING),
old entry rules to the per-container chain deleted by handle, the new ones
appended.  Built-in chains (and the table) are created where iptables-nft
creates them, just before their first rule.

What cannot be told apart from the rules as the kernel holds them makes the
plan give up (``nfadd.Unplannable``) and the caller restores instead: a
shared chain holding rules other than ours (they may be ours written by
another iptables version), an entry rule to a shared chain in another shape.
Unlike the restore, jumps to the per-container chain are looked for in
CNI-HOSTPORT-DNAT only (where the reference and we put them).
"""

from __future__ import annotations

from cni_plugins.linux import nfadd
from cni_plugins.portmap import chains

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from cni_plugins.linux import nfmsg, nfrule


def planner(
    family: int, layout: Sequence[chains.Chain]
) -> Callable[[nfadd.Reader], nfadd.Plan] | None:
    """The planner of ``layout``'s setup, or None when one of its rules cannot
    be encoded (the operator's conditions, an SCTP mapping)."""
    *shared, own = layout
    # Per chain name: its own rules, and its entry rules (in the entry chains).
    body: dict[str, list[nfrule.Encoded]] = {}
    entries: dict[str, list[nfrule.Encoded]] = {}
    for chain in layout:
        found = nfadd.encode_all(family, [rule[2:] for rule in chain.full_rules()])
        jumps = nfadd.encode_all(family, [rule[2:] for rule in chain.entries()])
        if found is None or jumps is None:
            return None
        body[chain.name] = found
        entries[chain.name] = jumps

    def plan(reader: nfadd.Reader) -> nfadd.Plan:
        builtins = [c for c in nfadd.NAT_BUILTINS if any(c in ch.entry_chains for ch in shared)]
        present = reader.chains([*builtins, *(c.name for c in layout)])
        out = nfadd.Plan(family, "nat")
        if not present and not reader.table_exists():
            out.new_table()
        for chain in shared:
            if chain.name not in present:
                out.new_chain(chain.name)
        if own.name in present:
            out.flush(own.name)
        else:
            out.new_chain(own.name)
        rules = {name: reader.rules(name) for name in present if name != own.name}
        for chain in shared:
            have = rules.get(chain.name, [])
            for rule in body[chain.name]:
                if any(nfadd.same(r, rule) for r in have):
                    continue
                if have:
                    raise nfadd.Unplannable(f"{chain.name} holds rules not recognised")
                out.append(chain.name, rule)
        for rule in body[own.name]:
            out.append(own.name, rule)
        created = set(present)
        for chain in shared:
            for (_a, entry_chain, *_rest), rule in zip(
                chain.entries(), entries[chain.name], strict=True
            ):
                have = rules.get(entry_chain, [])
                if any(nfadd.same(r, rule) for r in have):
                    continue
                if any(r.jump_target() == chain.name for r in have):
                    raise nfadd.Unplannable(f"an entry rule to {chain.name} not recognised")
                if entry_chain not in created:
                    out.new_builtin(entry_chain)
                    created.add(entry_chain)
                if chain.prepend_entry:
                    out.insert(entry_chain, rule)
                else:
                    out.append(entry_chain, rule)
        for old in _jumps(rules.get(chains.TOP_LEVEL_DNAT_CHAIN, []), own.name):
            out.delete(old)
        for (_a, entry_chain, *_rest), rule in zip(own.entries(), entries[own.name], strict=True):
            out.append(entry_chain, rule)
        return out

    return plan


def _jumps(rules: Sequence[nfmsg.Rule], target: str) -> list[nfmsg.Rule]:
    return [r for r in rules if r.jump_target() == target]
