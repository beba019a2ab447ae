"""portmap.nfsetup's plans from what a (fake) kernel holds: shared chains are
never flushed or re-created exclusively, and what it cannot recognise makes
it give up rather than guess."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.linux import nfadd, nfmsg, nfrule
from cni_plugins.linux import nlmsg as m
from cni_plugins.portmap import chains, nfsetup
from cni_plugins.portmap.config import PortMapConf
from cni_plugins.spec.ip import ip_interface

NEWCHAIN = nfmsg.message_type(nfadd.NFT_MSG_NEWCHAIN)
DELRULE = nfmsg.message_type(nfmsg.NFT_MSG_DELRULE)
NEWRULE = nfmsg.message_type(nfmsg.NFT_MSG_NEWRULE)


class FakeReader:
    """Chains and their rules (argument lists, encoded as iptables-nft would)."""

    family = 4

    def __init__(self, held: dict[str, list[list[str]]]) -> None:
        self.held = held

    def chains(self, names: Any) -> set[str]:
        return set(names) & set(self.held)

    def table_exists(self) -> bool:
        return bool(self.held)

    def rules(self, chain: str) -> list[nfmsg.Rule]:
        out = []
        for handle, args in enumerate(self.held[chain], 1):
            encoded = nfrule.encode(4, args)
            assert encoded is not None, args
            out.append(nfmsg.Rule(chain, handle, nfmsg.parse_exprs(encoded.exprs)))
        return out


def layout() -> list[chains.Chain]:
    raw = {
        "name": "cbr0",
        "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 8080}]},
    }
    conf = PortMapConf.from_json(raw, iptables_usable=True)
    return chains.layout(conf, "cbr0", "c1", ip_interface("10.244.1.2/24"))


def kinds(plan: nfadd.Plan) -> list[tuple[int, str]]:
    """(message type, chain) of each message of ``plan``."""
    out = []
    for kind, _flags, body in plan.messages():
        attrs = m.parse_attrs(body, 4)
        out.append((kind, m.get_str(attrs.get(nfmsg.NFTA_RULE_CHAIN) or attrs[3])))
    return out


def full_node() -> dict[str, list[list[str]]]:
    """A node where another pod's ADD made every shared chain and rule."""
    held: dict[str, list[list[str]]] = {}
    for chain in layout()[:-1]:
        held[chain.name] = [rule[2:] for rule in chain.full_rules()]
        for entry in chain.entries():
            held.setdefault(entry[1], []).append(entry[2:])
    return held


def test_existing_shared_chains_are_left_alone() -> None:
    planner = nfsetup.planner(4, layout())
    assert planner is not None
    plan = planner(FakeReader(full_node()))  # type: ignore[arg-type]
    own = chains.dnat_chain_name("cbr0", "c1")
    shared = {c.name for c in layout()[:-1]}
    touched = kinds(plan)
    # Only the container's chain is created; nothing shared is flushed or refilled.
    assert (NEWCHAIN, own) in touched
    assert not [t for t in touched if t[1] in shared and t[0] in (NEWCHAIN, DELRULE)]
    assert [t for t in touched if t[0] == NEWRULE and t[1] != own] == [
        (NEWRULE, chains.TOP_LEVEL_DNAT_CHAIN)  # its entry rule
    ]


def test_a_fresh_node_gets_chains_created_without_exclusivity() -> None:
    planner = nfsetup.planner(4, layout())
    assert planner is not None
    plan = planner(FakeReader({}))  # type: ignore[arg-type]
    for kind, flags, _body in plan.messages():
        if kind == NEWCHAIN:
            assert flags & m.NLM_F_CREATE and not flags & m.NLM_F_EXCL


@pytest.mark.parametrize(
    ("chain", "rule"),
    [
        # SETMARK holds something else (perhaps ours, written by another version).
        (chains.SETMARK_CHAIN, ["-j", "MARK", "--set-xmark", "0x4000/0x4000"]),
        # An entry rule to the DNAT chain in another shape.
        ("PREROUTING", ["-d", "10.0.0.1/32", "-j", chains.TOP_LEVEL_DNAT_CHAIN]),
    ],
)
def test_what_it_cannot_recognise_makes_it_give_up(chain: str, rule: list[str]) -> None:
    held = full_node()
    held[chain] = [rule]
    planner = nfsetup.planner(4, layout())
    assert planner is not None
    with pytest.raises(nfadd.Unplannable):
        planner(FakeReader(held))  # type: ignore[arg-type]


def test_conditions_not_encoded_mean_no_planner() -> None:
    raw = {
        "name": "cbr0",
        "conditionsV4": ["-m", "conntrack", "--ctstate", "NEW"],
        "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 8080}]},
    }
    conf = PortMapConf.from_json(raw, iptables_usable=True)
    assert (
        nfsetup.planner(4, chains.layout(conf, "cbr0", "c1", ip_interface("10.244.1.2/24"))) is None
    )
