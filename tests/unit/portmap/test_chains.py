# ruff: noqa: E501 - tables of expected rules read best one per line
"""portmap's iptables layout as data, against what Go portmap 1.1.1 produced.

The expected lines below were recorded from ``iptables-save -t nat`` after
``/usr/lib/cni/portmap`` ADD (net ``cbr0``, cid ``pod1``, pod 10.244.1.2/24 and
fd00:10:244:1::2/64); ``test_differential.py`` re-checks them against the binary.
"""

from __future__ import annotations

from typing import Any

from cni_plugins.linux.iptables import parse_save, split_rule
from cni_plugins.portmap import chains
from cni_plugins.portmap.config import PortMapConf
from cni_plugins.spec import ip as ipa

CHAIN = "CNI-DN-1acd23a563d6b73ddfb74"
V4 = ipa.ip_interface("10.244.1.2/24")
V6 = ipa.ip_interface("fd00:10:244:1::2/64")
MAPPINGS = [
    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
    {"hostPort": 9090, "containerPort": 90, "protocol": "tcp", "hostIP": "127.0.0.1"},
    {"hostPort": 9091, "containerPort": 91, "protocol": "sctp", "hostIP": "::1"},
]
COMMENT = '"dnat name: \\"cbr0\\" id: \\"pod1\\""'
GO_V4 = f"""
-A CNI-DN-1acd23a563d6b73ddfb74 -s 10.244.1.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.1.2:80
-A CNI-DN-1acd23a563d6b73ddfb74 -s 10.244.1.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -s 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.244.1.2:53
-A CNI-DN-1acd23a563d6b73ddfb74 -s 10.244.1.0/24 -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.244.1.2:90
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment {COMMENT} -m multiport --dports 9091 -j CNI-DN-1acd23a563d6b73ddfb74
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment {COMMENT} -m multiport --dports 8080,9090 -j CNI-DN-1acd23a563d6b73ddfb74
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment {COMMENT} -m multiport --dports 5353 -j CNI-DN-1acd23a563d6b73ddfb74
"""
GO_V6 = f"""
-A CNI-DN-1acd23a563d6b73ddfb74 -s fd00:10:244:1::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:10:244:1::2]:80
-A CNI-DN-1acd23a563d6b73ddfb74 -s fd00:10:244:1::/64 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00:10:244:1::2]:53
-A CNI-DN-1acd23a563d6b73ddfb74 -s fd00:10:244:1::/64 -d ::1/128 -p sctp -m sctp --dport 9091 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-1acd23a563d6b73ddfb74 -d ::1/128 -p sctp -m sctp --dport 9091 -j DNAT --to-destination [fd00:10:244:1::2]:91
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment {COMMENT} -m multiport --dports 9091 -j CNI-DN-1acd23a563d6b73ddfb74
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment {COMMENT} -m multiport --dports 8080,9090 -j CNI-DN-1acd23a563d6b73ddfb74
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment {COMMENT} -m multiport --dports 5353 -j CNI-DN-1acd23a563d6b73ddfb74
"""
GO_SHARED = """
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
"""


def conf(mappings: list[dict[str, Any]] | None = None, **extra: Any) -> PortMapConf:
    raw = {"name": "cbr0", "runtimeConfig": {"portMappings": mappings or MAPPINGS}, **extra}
    return PortMapConf.from_json(raw, iptables_usable=True)


def lines(text: str) -> list[list[str]]:
    return [split_rule(ln) for ln in text.strip().splitlines()]


def generated(address: Any, c: PortMapConf | None = None) -> list[list[str]]:
    chain = chains.dnat_chain(c or conf(), "cbr0", "pod1", address)
    return chain.full_rules() + chain.entries()


def test_chain_name_is_the_reference_hash() -> None:
    assert chains.dnat_chain_name("cbr0", "pod1") == CHAIN
    assert chains.old_snat_chain_name("cbr0", "pod1").startswith("CNI-SN-")
    assert len(chains.dnat_chain_name("x" * 300, "y")) == 28


def test_v4_rules_equal_go_save_output() -> None:
    assert generated(V4) == lines(GO_V4)


def test_v6_rules_equal_go_save_output() -> None:
    """No localhost rule on IPv6; the v4 hostIP mapping is skipped in the chain
    but its port stays in the entry rule (as Go)."""
    assert generated(V6) == lines(GO_V6)


def test_shared_chains_equal_go_save_output() -> None:
    c = conf()
    shared = chains.layout(c, "cbr0", "pod1", V4)[:-1]
    got = [r for ch in shared for r in ch.entries()] + [r for ch in shared for r in ch.full_rules()]
    assert sorted(got) == sorted(lines(GO_SHARED))


def test_layout_order_and_external_mark_chain() -> None:
    names = [c.name for c in chains.layout(conf(), "cbr0", "pod1", V4)]
    assert names == ["CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-DNAT", CHAIN]
    ext = conf(externalSetMarkChain="KUBE-MARK-MASQ")
    layout = chains.layout(ext, "cbr0", "pod1", V4)
    assert [c.name for c in layout] == ["CNI-HOSTPORT-DNAT", CHAIN]
    targets = {r[-1] for r in layout[-1].rules if "DNAT" not in r}
    assert targets == {"KUBE-MARK-MASQ"}


def test_snat_off_gives_only_dnat_rules() -> None:
    chain = chains.dnat_chain(conf(snat=False), "cbr0", "pod1", V4)
    assert all("DNAT" in r for r in chain.rules)
    assert [c.name for c in chains.layout(conf(snat=False), "cbr0", "pod1", V4)] == [
        "CNI-HOSTPORT-DNAT",
        CHAIN,
    ]


def test_masq_all_marks_every_source_and_skips_localhost() -> None:
    m = [{"hostPort": 8080, "containerPort": 80}]
    rules = chains.dnat_chain(conf(m, masqAll=True), "cbr0", "pod1", V4).rules
    assert rules == [
        ["-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.244.1.2:80"],
    ]  # fmt: skip


def test_mark_bit() -> None:
    assert conf().mark == "0x2000/0x2000"
    assert conf(markMasqBit=0).mark == "0x1/0x1"
    assert conf(markMasqBit=31).mark == "0x80000000/0x80000000"
    assert chains.setmark_chain("0x1/0x1").rules[0][-1] == "0x1/0x1"


def test_multiport_groups_of_fifteen_per_protocol() -> None:
    m = [{"hostPort": 1000 + i, "containerPort": 80, "protocol": "udp"} for i in range(17)]
    m += [{"hostPort": 80, "containerPort": 80, "protocol": "TCP"}]
    groups = chains.group_ports(conf(m).mappings)
    assert [(p, len(specs)) for p, specs in groups] == [("tcp", 1), ("udp", 2)]
    assert groups[1][1][0].count(",") == 14 and groups[1][1][1] == "1015,1016"


def test_conditions_go_into_entry_rules_only() -> None:
    c = conf([{"hostPort": 80, "containerPort": 80}], conditionsV4=["-s", "192.168.0.0/16"])
    chain = chains.dnat_chain(c, "cbr0", "pod1", V4)
    assert chain.entry_rules[0][-2:] == ["-s", "192.168.0.0/16"]
    assert all("192.168.0.0/16" not in r for r in chain.rules)
    v6 = chains.dnat_chain(c, "cbr0", "pod1", V6)
    assert "192.168.0.0/16" not in v6.entry_rules[0]


def test_comment_parse_and_trim() -> None:
    assert chains.parse_comment(chains.comment("cbr0", "pod1")) == ("cbr0", "pod1")
    assert chains.parse_comment('name: "cbr0" id: "pod1"') is None
    long = chains.comment("n", "c" * 300)
    assert len(long) == 256 and long.endswith("...")


# -- restores ---------------------------------------------------------------------------------


def saved(text: str) -> tuple[set[str], list[list[str]]]:
    return parse_save(text)


def test_setup_on_a_fresh_table_creates_shared_chains_apart() -> None:
    """Declaring a shared chain (``:NAME``) in setup's restore would empty it if a
    concurrent ADD made it first; ``create`` uses ``-N``, which fails instead."""
    layout = chains.layout(conf(), "cbr0", "pod1", V4)
    shared = ["CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-DNAT"]
    assert chains.missing_shared(layout, set()) == shared
    assert chains.missing_shared(layout, {"CNI-HOSTPORT-MASQ", CHAIN}) == [shared[0], shared[2]]
    assert chains.create(shared).text().splitlines()[1:-1] == [f"-N {n}" for n in shared]
    text = chains.setup(layout, set(), []).text()
    decl = [ln for ln in text.splitlines() if ln.startswith(":")]
    assert decl == [f":{CHAIN} - [0:0]"]
    assert '-I POSTROUTING -m comment --comment "CNI portfwd requiring masquerade"' in text
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in text
    assert text.startswith("*nat\n") and text.endswith("COMMIT\n")


def test_setup_is_idempotent_on_shared_chains_and_replaces_own_entries() -> None:
    layout = chains.layout(conf(), "cbr0", "pod1", V4)
    existing = "\n".join(
        [
            ":CNI-HOSTPORT-SETMARK - [0:0]",
            ":CNI-HOSTPORT-MASQ - [0:0]",
            ":CNI-HOSTPORT-DNAT - [0:0]",
            f":{CHAIN} - [0:0]",
            *GO_SHARED.strip().splitlines(),
            *GO_V4.strip().splitlines(),
        ]
    )
    chain_names, rules = saved(existing)
    r = chains.setup(layout, chain_names, rules)
    text = r.text()
    assert [ln for ln in text.splitlines() if ln.startswith(":")] == [f":{CHAIN} - [0:0]"]
    assert "-I POSTROUTING" not in text and "-A PREROUTING" not in text
    deletes = [ln for ln in r.lines if ln[0] == "-D"]
    assert len(deletes) == 3 and all(ln[1] == "CNI-HOSTPORT-DNAT" for ln in deletes)
    appends = [ln for ln in r.lines if ln[:2] == ["-A", "CNI-HOSTPORT-DNAT"]]
    assert len(appends) == 3


def test_teardown_removes_references_and_chains() -> None:
    existing = "\n".join(
        [":CNI-HOSTPORT-DNAT - [0:0]", f":{CHAIN} - [0:0]", *GO_V4.strip().splitlines()]
    )
    chain_names, rules = saved(existing)
    r = chains.teardown(chain_names, rules, {CHAIN, chains.old_snat_chain_name("cbr0", "pod1")})
    assert [ln[0] for ln in r.lines] == ["-D", "-D", "-D", "-F", "-X"]
    assert r.lines[-1] == ["-X", CHAIN]
    assert not chains.teardown(chain_names, rules, {"CNI-DN-other"})


def test_gc_recognises_chains_by_comment_hash() -> None:
    other = chains.dnat_chain_name("cbr0", "pod2")
    foreign = chains.dnat_chain_name("other-net", "pod3")
    text = "\n".join(
        [
            *GO_V4.strip().splitlines(),
            f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"cbr0\\" id: \\"pod2\\"" -m multiport --dports 1 -j {other}',
            f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"other-net\\" id: \\"pod3\\"" -m multiport --dports 2 -j {foreign}',
            '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"cbr0\\" id: \\"pod4\\"" -m multiport --dports 3 -j CNI-DN-not-the-hash',
        ]
    )
    _, rules = saved(text)
    assert chains.stale_chains(rules, "cbr0", {"pod1"}) == {other}
    assert chains.stale_chains(rules, "cbr0", set()) == {CHAIN, other}
    assert chains.stale_chains(rules, "other-net", set()) == {foreign}


def test_check_finds_missing_rules_and_tolerates_reordered_conditions() -> None:
    c = conf(conditionsV4=["-m", "comment", "--comment", "x", "-s", "192.168.0.0/16"])
    layout = chains.layout(c, "cbr0", "pod1", V4)
    nothing = chains.check(layout, set(), [])
    assert sum(p.startswith("chain ") for p in nothing) == 4 and len(nothing) == 10
    present = [r for ch in layout for r in ch.full_rules() + ch.entries()]
    # iptables-save moves -s to the front of the entry rules.
    reordered = [
        ["-A", r[1], "-s", "192.168.0.0/16", *r[2:-4], *r[-2:]]
        if r[1] == "CNI-HOSTPORT-DNAT" and r[-1] == CHAIN
        else r
        for r in present
    ]
    names = {ch.name for ch in layout}
    assert chains.check(layout, names, reordered) == []
    missing = [r for r in reordered if "DNAT" not in r or r[1] != CHAIN]
    assert chains.check(layout, names, missing)[0].startswith(f"rule -A {CHAIN}")


def test_udp_ports_read_back_from_the_rules() -> None:
    _, rules = saved(GO_V4 + GO_V6)
    assert chains.udp_ports(rules, {CHAIN}) == {5353}
    assert chains.udp_ports(rules, {"CNI-DN-other"}) == set()
