"""``linux.nfremove`` against the kernel, inside throwaway namespaces (root only).

The iptables tools build the state and are the oracle: after a removal,
``iptables-save`` must show exactly the chains and jump rules that were doomed
gone and everything else as it was; after a refusal, nothing changed at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from cni_plugins.linux import nfmsg, nfprobe, nfremove
from cni_plugins.portmap import nfrules

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.linux.conftest import TestNS

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces"),
]

COMMENT = '-m comment --comment "dnat name: \\"cbr0\\" id: \\"c1\\""'
LAYOUT = f"""*nat
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-DN-one - [0:0]
:CNI-DN-two - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p udp {COMMENT} -m multiport --dports 5353,5354 -j CNI-DN-one
-A CNI-HOSTPORT-DNAT -p tcp {COMMENT} -m multiport --dports 8080 -j CNI-DN-one
-A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 8081 -j CNI-DN-two
-A CNI-DN-one -s 10.244.1.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-one -p udp -m udp --dport 5353 -j DNAT --to-destination 10.244.1.2:53
-A CNI-DN-one -p udp -m udp --dport 5354 -j DNAT --to-destination 10.244.1.2:54
-A CNI-DN-one -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.1.2:80
-A CNI-DN-two -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.244.1.3:80
COMMIT
"""


def _tool(t: TestNS, argv: list[str], stdin: str = "") -> str:
    return subprocess.run(
        ["ip", "netns", "exec", t.name, *argv],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    ).stdout


def _save(t: TestNS, family: int = 4) -> list[str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    return [ln for ln in _tool(t, [tool, "-t", "nat"]).splitlines() if ln[:1] in "-:"]


def _restore(t: TestNS, text: str, family: int = 4) -> None:
    _tool(t, ["iptables-restore" if family == 4 else "ip6tables-restore", "--noflush"], text)


def _remove(
    t: TestNS,
    family: int = 4,
    doomed: tuple[str, ...] = ("CNI-DN-one",),
    inspect: Callable[[list[nfmsg.Rule]], set[int] | None] = nfrules.udp_ports,
) -> set[int] | None:
    with t.ns.entered(), nfprobe.Netfilter() as nf:
        return nfremove.remove_chains(
            nf, family, "nat", doomed, referrers=["CNI-HOSTPORT-DNAT"], inspect=inspect
        )


def test_removes_the_chain_and_its_jumps_only(netns: TestNS) -> None:
    _restore(netns, LAYOUT)
    before = _save(netns)
    seen: list[list[nfmsg.Rule]] = []

    def inspect(rules: list[nfmsg.Rule]) -> set[int] | None:
        seen.append(rules)
        return nfrules.udp_ports(rules)

    assert _remove(netns, inspect=inspect) == {5353, 5354}
    assert _save(netns) == [ln for ln in before if "CNI-DN-one" not in ln]
    assert [len(rules) for rules in seen] == [4]  # the doomed chain's rules, read once
    assert {r.chain for r in seen[0]} == {"CNI-DN-one"}
    # The tools still work on the table afterwards, with handles they did not assign.
    _restore(
        netns,
        "*nat\n-D CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 8081 -j CNI-DN-two\n"
        "-F CNI-DN-two\n-X CNI-DN-two\nCOMMIT\n",
    )
    assert not any("CNI-DN-two" in ln for ln in _save(netns))


def test_ipv6_family(netns: TestNS) -> None:
    _restore(
        netns,
        "*nat\n:CNI-HOSTPORT-DNAT - [0:0]\n:CNI-DN-one - [0:0]\n"
        "-A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 8080 -j CNI-DN-one\n"
        "-A CNI-DN-one -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00::2]:53\n"
        "COMMIT\n",
        6,
    )
    _restore(netns, LAYOUT)
    v4, v6 = _save(netns), _save(netns, 6)
    assert _remove(netns, 6) == {5353}
    assert _save(netns, 6) == [ln for ln in v6 if "CNI-DN-one" not in ln]
    assert _save(netns) == v4  # the other family untouched


def test_a_jump_from_elsewhere_refuses_and_changes_nothing(netns: TestNS) -> None:
    _restore(netns, LAYOUT + "*nat\n-A OUTPUT -p tcp --dport 9 -j CNI-DN-one\nCOMMIT\n")
    before = _save(netns)
    assert _remove(netns) is None
    assert _save(netns) == before


def test_inspect_giving_up_changes_nothing(netns: TestNS) -> None:
    _restore(netns, LAYOUT)
    before = _save(netns)
    assert _remove(netns, inspect=lambda _rules: None) is None
    assert _save(netns) == before


def test_a_missing_chain_is_not_this_way(netns: TestNS) -> None:
    _restore(netns, LAYOUT)
    before = _save(netns)
    assert _remove(netns, doomed=("CNI-DN-none",)) is None
    assert _save(netns) == before


def test_a_change_between_reading_and_removing_is_read_again(netns: TestNS) -> None:
    """The batch carries the generation it read: a rule added meanwhile (here a
    second jump to the doomed chain) makes the kernel refuse it, and the next
    attempt sees and removes that rule too."""
    _restore(netns, LAYOUT)
    calls = 0

    def inspect(rules: list[nfmsg.Rule]) -> set[int] | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            _restore(netns, "*nat\n-A CNI-HOSTPORT-DNAT -p tcp --dport 9 -j CNI-DN-one\nCOMMIT\n")
        return nfrules.udp_ports(rules)

    assert _remove(netns, inspect=inspect) == {5353, 5354}
    assert calls == 2
    assert not any("CNI-DN-one" in ln for ln in _save(netns))
    assert any("CNI-DN-two" in ln for ln in _save(netns))


@pytest.mark.skipif(shutil.which("iptables-legacy") is None, reason="no iptables-legacy")
def test_the_legacy_backend_is_not_this_way(netns: TestNS) -> None:
    _restore(netns, LAYOUT)
    _tool(netns, ["iptables-legacy", "-t", "nat", "-N", "CNI-DN-legacy"])
    before = _save(netns)
    assert _remove(netns) is None
    assert _save(netns) == before
