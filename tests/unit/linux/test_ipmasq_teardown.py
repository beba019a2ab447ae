"""``ipmasq`` setup/teardown tool use with fakes: kernel probe first, tools only for what exists."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.linux import ipmasq, iptables, nftables
from cni_plugins.spec.errors import CNIError
from cni_plugins.spec.ip import ip_interface
from tests.fakes.nat_tools import NatTools

CHAIN = ipmasq.chain_name("cbr0", "pod1")
NOTE = '"name: \\"cbr0\\" id: \\"pod1\\""'
JUMP = f"-A POSTROUTING -s 10.244.1.2/32 -m comment --comment {NOTE} -j {CHAIN}"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> NatTools:
    c = NatTools(
        monkeypatch, f"*nat\n:POSTROUTING ACCEPT [0:0]\n:{CHAIN} - [0:0]\n{JUMP}\nCOMMIT\n"
    )

    def list_chain(self: iptables.Iptables, table: str, chain: str) -> str:
        c.log.append(("list", self.family, chain))
        return f"-P POSTROUTING ACCEPT\n{JUMP}\n-A POSTROUTING -j OTHER\n"

    def nft_rules(self: nftables.Nft, family: str, table: str, chain: str) -> list[Any]:
        c.log.append(("nft-list",))
        return []

    monkeypatch.setattr(iptables.Iptables, "list_chain", list_chain)
    monkeypatch.setattr(nftables.Nft, "list_rules", nft_rules)
    return c


def test_nothing_anywhere_costs_no_exec(calls: NatTools) -> None:
    ipmasq.teardown("cbr0", "eth0", "pod1")
    assert calls.tools() == []
    calls.nft_tables["inet"] = None  # the kernel could not tell: still no nft
    ipmasq.teardown("cbr0", "eth0", "pod1")
    assert calls.tools() == []


def test_present_chain_goes_in_one_transaction(calls: NatTools) -> None:
    calls.present[4] = {CHAIN, "POSTROUTING"}
    calls.nft_tables["inet"] = True
    calls.removed = True
    ipmasq.teardown("cbr0", "eth0", "pod1")
    assert calls.tools() == [("nfremove", 4, (CHAIN,), ("POSTROUTING",))]  # no tool, no nft


def test_present_chain_lists_postrouting_only(calls: NatTools) -> None:
    """The transaction cannot do it (e.g. legacy backend): list and restore."""
    calls.present[4] = {CHAIN, "POSTROUTING"}
    calls.nft_tables["inet"] = True
    ipmasq.teardown("cbr0", "eth0", "pod1")
    assert calls.tools() == [
        ("nfremove", 4, (CHAIN,), ("POSTROUTING",)),
        ("list", 4, "POSTROUTING"),
        ("restore", 4, f"*nat\n-D{JUMP[2:]}\n-F {CHAIN}\n-X {CHAIN}\nCOMMIT\n"),
    ]  # and no nft: iptables had the attachment


def test_unknown_or_failed_takes_the_full_way(calls: NatTools) -> None:
    calls.present = {4: {CHAIN, "POSTROUTING"}, 6: None}
    calls.restore_error = iptables.ToolFailed("iptables-restore failed")
    with pytest.raises(CNIError, match="iptables-restore failed; iptables-restore failed"):
        ipmasq.teardown("cbr0", "eth0", "pod1")  # the full way's errors, both families
    assert [e[:2] for e in calls.tools()] == [
        ("nfremove", 4),
        ("list", 4),
        ("restore", 4),
        ("save", 4),
        ("restore", 4),
        ("save", 6),
        ("restore", 6),
    ]


@pytest.mark.parametrize(
    ("present", "listed"),
    [
        (set(), False),  # a new attachment: nothing can jump to its chain yet
        ({CHAIN}, False),  # no POSTROUTING (iptables-nft makes it on first use)
        ({CHAIN, "POSTROUTING"}, True),
        (None, True),  # the kernel cannot tell (legacy backend)
    ],
)
def test_setup_reads_postrouting_only_when_a_jump_can_exist(
    calls: NatTools, present: set[str] | None, listed: bool
) -> None:
    calls.present[4] = present
    ipmasq.setup("iptables", [ip_interface("10.244.1.2/24")], "cbr0", "eth0", "pod1")
    lists = [e for e in calls.tools() if e[0] == "list"]
    assert lists == ([("list", 4, "POSTROUTING")] if listed else [])
    assert not [e for e in calls.tools() if e[0] == "save"]
    (restore,) = [e for e in calls.tools() if e[0] == "restore"]
    assert (JUMP in restore[2]) is not listed  # a listed jump is not added again
