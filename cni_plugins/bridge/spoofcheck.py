"""``macspoofchk``: drop frames from the pod whose source MAC is not the pod's.

The reference layout (``pkg/link/spoofcheck.go``), so either implementation can
tear down the other's rules: table ``bridge nat``, base chain ``PREROUTING``
(filter, prerouting, priority -300), a jump per host veth to
``cni-br-iface-<cid>-<ifname>``, which jumps to ``...-mac``: ``ether saddr <mac>
return`` then ``drop``; every rule commented ``macspoofchk-<cid>-<ifname>``.
One ``nft -f -`` transaction to set up, one list + one transaction to tear down.
"""

from __future__ import annotations

from cni_plugins.linux.nftables import Nft, quote

FAMILY = "bridge"
TABLE = "nat"
BASE_CHAIN = "PREROUTING"
_BASE_CHAIN_SPEC = "type filter hook prerouting priority -300 ; policy accept ;"


def ref_id(container_id: str, ifname: str) -> str:
    return f"{container_id}-{ifname}"


def iface_chain(ref: str) -> str:
    return "cni-br-iface-" + ref


def mac_chain(ref: str) -> str:
    return iface_chain(ref) + "-mac"


def rule_comment(ref: str) -> str:
    return "macspoofchk-" + ref


def setup_commands(host_iface: str, mac: str, ref: str) -> list[str]:
    t = f"{FAMILY} {TABLE}"
    ic, mc, note = iface_chain(ref), mac_chain(ref), quote(rule_comment(ref))
    return [
        f"add table {t}",
        f"add chain {t} {BASE_CHAIN} {{ {_BASE_CHAIN_SPEC} }}",
        f"add chain {t} {ic}",
        f"add chain {t} {mc}",
        f"flush chain {t} {ic}",
        f"flush chain {t} {mc}",
        f"add rule {t} {BASE_CHAIN} iifname {quote(host_iface)} jump {ic} comment {note}",
        f"add rule {t} {ic} jump {mc} comment {note}",
        f"add rule {t} {mc} ether saddr {mac} return comment {note}",
        f"add rule {t} {mc} drop comment {note}",
    ]


def setup(host_iface: str, mac: str, ref: str) -> None:
    Nft().apply(setup_commands(host_iface, mac, ref))


def teardown(ref: str) -> None:
    """Remove the jump(s) and both chains; absent ones are fine."""
    nft = Nft()
    items = nft.list_json("table", FAMILY, TABLE)
    if items is None:
        return
    chains = {str(i["chain"].get("name")) for i in items if isinstance(i.get("chain"), dict)}
    from cni_plugins.linux.nftables import rules_from_json

    commands = [
        r.delete_command()
        for r in rules_from_json(items)
        if r.chain == BASE_CHAIN and r.comment == rule_comment(ref)
    ]
    mine = [c for c in (iface_chain(ref), mac_chain(ref)) if c in chains]
    commands += [f"flush chain {FAMILY} {TABLE} {c}" for c in mine]
    commands += [f"delete chain {FAMILY} {TABLE} {c}" for c in mine]
    nft.apply(commands)
