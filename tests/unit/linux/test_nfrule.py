"""linux.nfrule: iptables rules encoded as iptables-nft 1.8.9 stores them.

The goldens are the kernel's dumps of the same rules written by
iptables-nft-restore 1.8.9 (golden/capture_nfrule.py; counters zero): the
encoding must be those bytes exactly.  Rules the encoder does not cover
answer None, so the caller takes the iptables-restore way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.linux import nfmsg, nfrule
from cni_plugins.linux import nlmsg as m

GOLDENS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "golden" / "nfrule-iptables-nft-1.8.9.json").read_text()
)


@pytest.mark.parametrize(
    "golden", GOLDENS, ids=lambda g: f"v{g['family']} {' '.join(g['rule'])[:60]}"
)
def test_encoding_is_what_iptables_nft_stores(golden: dict[str, Any]) -> None:
    encoded = nfrule.encode(golden["family"], golden["rule"])
    assert encoded is not None
    assert encoded.exprs.hex() == golden["exprs"]


def test_goldens_cover_every_shape_portmap_and_ipmasq_write() -> None:
    text = [" ".join(g["rule"]) for g in GOLDENS]
    for needle in ("multiport", "addrtype", "MARK", "MASQUERADE", "DNAT", "! -d", "--mark"):
        assert any(needle in rule for rule in text), needle
    assert {g["family"] for g in GOLDENS} == {4, 6}


@pytest.mark.parametrize(
    "rule",
    [
        ["-p", "sctp", "-m", "sctp", "--dport", "53", "-j", "ACCEPT"],  # an x_tables sctp match
        ["-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"],
        ["-i", "eth0", "-j", "ACCEPT"],
        ["!", "-p", "tcp", "-j", "ACCEPT"],
        ["-j", "LOG"],
        ["-j", "DNAT", "--to-destination", "10.0.0.1-10.0.0.9"],
        ["-j", "DNAT", "--to-destination", "10.0.0.1:80", "--random"],
        ["-s", "fd00::1/128", "-j", "ACCEPT"],  # the other family
        ["-m", "comment", "--comment", "x" * 256, "-j", "ACCEPT"],
        ["-p", "tcp", "-m", "multiport", "--dports", ",".join(map(str, range(1, 17))), "-j", "X-Y"],
        ["-m", "multiport", "--dports", "80", "-j", "X-Y"],  # multiport needs -p
        ["-p", "tcp", "-m", "tcp", "--dport", "80:90", "-j", "ACCEPT"],
        ["-p", "tcp"],  # no target
        ["-m", "mark", "--mark", "0x1", "-j", "ACCEPT"],
    ],
)
def test_what_is_not_encoded_answers_none(rule: list[str]) -> None:
    assert nfrule.encode(4, rule) is None


def test_newrule_carries_table_chain_and_the_compat_protocol() -> None:
    encoded = nfrule.encode(4, ["-p", "udp", "-m", "multiport", "--dports", "53", "-j", "CNI-X"])
    assert encoded is not None and encoded.proto == 17
    attrs = m.parse_attrs(encoded.newrule("ip", "nat", "CNI-HOSTPORT-DNAT"), 4)
    assert m.get_str(attrs[nfmsg.NFTA_RULE_TABLE]) == "nat"
    assert m.get_str(attrs[nfmsg.NFTA_RULE_CHAIN]) == "CNI-HOSTPORT-DNAT"
    assert attrs[nfmsg.NFTA_RULE_EXPRESSIONS] == encoded.exprs
    compat = m.parse_attrs(attrs[nfrule.NFTA_RULE_COMPAT])
    assert compat == {1: (17).to_bytes(4, "big"), 2: bytes(4)}
    # A rule without -p sends no compat attribute.
    plain = nfrule.encode(4, ["-j", "ACCEPT"])
    assert plain is not None and plain.proto == 0
    assert nfrule.NFTA_RULE_COMPAT not in m.parse_attrs(plain.newrule("ip", "nat", "X"), 4)


def test_parse_rule_reads_an_encoded_jump_back() -> None:
    encoded = nfrule.encode(6, ["-s", "fd00::2/128", "-j", "CNI-abc"])
    assert encoded is not None
    body = (
        nfmsg.nfgenmsg(10)
        + m.attr_str(nfmsg.NFTA_RULE_CHAIN, "POSTROUTING")
        + nfmsg.attr_be64(nfmsg.NFTA_RULE_HANDLE, 7)
        + m.attr(nfmsg.NFTA_RULE_EXPRESSIONS, encoded.exprs)
    )
    rule = nfmsg.parse_rule(body)
    assert rule.jump_target() == "CNI-abc"
    assert [e.name for e in rule.exprs] == ["payload", "cmp", "counter", "immediate"]
