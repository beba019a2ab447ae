"""portmap DEL's tool use with fakes: what it asks the kernel, what it lists, what it restores."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.linux import iptables, nftables
from cni_plugins.portmap import apply, chains
from tests.fakes.nat_tools import NatTools

DNAT = chains.dnat_chain_name("cbr0", "pod1")
SNAT = chains.old_snat_chain_name("cbr0", "pod1")
TOP = chains.TOP_LEVEL_DNAT_CHAIN
NOTE = '"dnat name: \\"cbr0\\" id: \\"pod1\\""'
ENTRY_TCP = f"-A {TOP} -p tcp -m comment --comment {NOTE} -m multiport --dports 8080 -j {DNAT}"
ENTRY_UDP = f"-A {TOP} -p udp -m comment --comment {NOTE} -m multiport --dports 5353 -j {DNAT}"
OTHER = f"-A {TOP} -p tcp -m comment --comment x -m multiport --dports 9090 -j CNI-DN-other"
DNAT_RULES = (
    f"-N {DNAT}\n-A {DNAT} -p udp -m udp --dport 5353 -j DNAT --to-destination 10.244.1.2:53\n"
)


class Calls(NatTools):
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch)
        self.listed: dict[str, str] = {TOP: f"-N {TOP}\n{ENTRY_TCP}\n{OTHER}\n", DNAT: DNAT_RULES}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    c = Calls(monkeypatch)

    def list_chains(self: iptables.Iptables, table: str, chains: list[str]) -> list[str]:
        c.log.extend(("list", self.family, chain) for chain in chains)
        return [c.listed[chain] for chain in chains]

    def nft_list(self: nftables.Nft, family: str, table: str) -> list[nftables.NftRule]:
        c.log.append(("nft-list", family))
        return []

    monkeypatch.setattr(iptables.Iptables, "list_chains", list_chains)
    monkeypatch.setattr(nftables.Nft, "list_table_rules", nft_list)
    monkeypatch.setattr(nftables.Nft, "apply", lambda self, cmds: list(cmds))
    monkeypatch.setattr(apply, "_flush_udp_ports", lambda ports: c.log.append(("flush", ports)))
    return c


def kinds(c: Calls) -> list[tuple[Any, ...]]:
    return [entry[:2] if entry[0] != "list" else entry for entry in c.log]


def test_nothing_anywhere_costs_no_exec(calls: Calls) -> None:
    apply.unforward("cbr0", "pod1")
    assert calls.sockets == 1  # one netfilter socket for every probe
    assert kinds(calls) == [
        ("probe", 4),
        ("probe", 6),
        ("nft-probe", "ip"),
        ("nft-probe", "ip6"),
        ("flush", {4: set(), 6: set()}),
    ]


def test_one_transaction_when_the_kernel_can_do_it(calls: Calls) -> None:
    """nf_tables backend, rules understood: no tool runs at all."""
    calls.present[4] = {DNAT, TOP}
    calls.removed = {5353}
    apply.unforward("cbr0", "pod1")
    assert [e for e in calls.log if e[0] in ("nfremove", "list", "restore", "save")] == [
        ("nfremove", 4, (DNAT,), (TOP,))
    ]
    assert calls.log[-1] == ("flush", {4: {5353}, 6: set()})


def test_no_entry_chain_no_referrer(calls: Calls) -> None:
    calls.present[6] = {DNAT}
    calls.removed = set()
    apply.unforward("cbr0", "pod1")
    assert ("nfremove", 6, (DNAT,), ()) in calls.log


def test_lists_the_entry_chain_and_its_own_only(calls: Calls) -> None:
    """The transaction cannot do it (e.g. legacy backend): list and restore."""
    calls.present[4] = {DNAT, TOP}
    apply.unforward("cbr0", "pod1")
    assert ("nfremove", 4, (DNAT,), (TOP,)) in calls.log
    assert [e for e in calls.log if e[0] == "list"] == [("list", 4, TOP), ("list", 4, DNAT)]
    (restore,) = [e for e in calls.log if e[0] == "restore"]
    body = restore[2].splitlines()
    assert body == ["*nat", "-D" + ENTRY_TCP[2:], f"-F {DNAT}", f"-X {DNAT}", "COMMIT"]
    assert ("save", 4) not in calls.log and ("save", 6) not in calls.log


@pytest.mark.parametrize("entries", [ENTRY_UDP, ""], ids=["entry rule", "entry rule lost"])
def test_udp_ports_to_flush_come_from_its_own_chain(calls: Calls, entries: str) -> None:
    calls.present[4] = {DNAT, TOP}
    calls.listed[TOP] = f"-N {TOP}\n{entries}\n"
    apply.unforward("cbr0", "pod1")
    assert calls.log[-1] == ("flush", {4: {5353}, 6: set()})


@pytest.mark.parametrize(
    "present",
    [None, {DNAT, SNAT, TOP}, {SNAT}],
    ids=["unknown (legacy backend)", "old SNAT chain too", "old SNAT chain only"],
)
def test_full_save_when_the_probe_cannot_settle_it(calls: Calls, present: set[str] | None) -> None:
    calls.present[6] = present
    apply.unforward("cbr0", "pod1")
    assert ("save", 6) in calls.log and ("save", 4) not in calls.log
    assert not [e for e in calls.log if e[0] == "list"]


def test_a_failed_restore_falls_back_to_the_full_save(calls: Calls) -> None:
    calls.present[4] = {DNAT, TOP}
    calls.restore_error = iptables.ToolFailed("iptables-restore failed", "chain in use")
    with pytest.raises(iptables.ToolFailed):  # the full way fails the same way here
        apply.unforward("cbr0", "pod1")
    assert [e[0] for e in calls.log if e[0] in ("list", "restore", "save")] == [
        "list",
        "list",
        "restore",
        "save",
        "restore",
    ]


def test_nft_is_never_run_on_del(calls: Calls) -> None:
    """The nftables tables are read over netlink (tests/integration/portmap/
    test_del_paths.py runs it for real): whatever the probe says, no nft."""
    options: list[dict[str, bool | None]] = [{"ip": None, "ip6": True}, {"ip": False, "ip6": True}]
    for tables in options:
        calls.nft_tables = tables
        apply.unforward("cbr0", "pod1")
        assert [e for e in calls.log if e[0] == "nft-list"] == []
