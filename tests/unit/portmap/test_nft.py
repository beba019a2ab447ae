# ruff: noqa: E501 - tables of expected rules read best one per line
"""portmap's nftables layout as data (the reference's portmap_nftables.go at HEAD)."""

from __future__ import annotations

from typing import Any

from cni_plugins.linux.nftables import NftRule, rules_from_json
from cni_plugins.portmap import nft
from cni_plugins.portmap.config import PortMapConf
from cni_plugins.spec import ip as ipa

V4 = ipa.ip_interface("10.244.1.2/24")
V6 = ipa.ip_interface("fd00:10:244:1::2/64")


def conf(**extra: Any) -> PortMapConf:
    raw = {
        "name": "cbr0",
        "backend": "nftables",
        "runtimeConfig": {
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.1"},
                {"hostPort": 9091, "containerPort": 91, "hostIP": "::1"},
            ]
        },
        **extra,
    }
    return PortMapConf.from_json(raw)


SKELETON = [
    'add table ip cni_hostport { comment "CNI portmap plugin" ; }',
    "add chain ip cni_hostport hostports",
    "add chain ip cni_hostport hostip_hostports",
    "add chain ip cni_hostport hostports_all",
    "flush chain ip cni_hostport hostports_all",
    "add rule ip cni_hostport hostports_all jump hostip_hostports",
    "add rule ip cni_hostport hostports_all jump hostports",
    "add chain ip cni_hostport prerouting { type nat hook prerouting priority dstnat ; }",
    "flush chain ip cni_hostport prerouting",
    "add rule ip cni_hostport prerouting fib daddr type local jump hostports_all",
    "add chain ip cni_hostport output { type nat hook output priority -100 ; }",
    "flush chain ip cni_hostport output",
    "add rule ip cni_hostport output fib daddr type local jump hostports_all",
    "add chain ip cni_hostport masquerading { type nat hook postrouting priority srcnat ; }",
]


def test_v4_commands() -> None:
    assert nft.setup_commands(conf(), "pod1", V4) == [
        *SKELETON,
        'add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.244.1.2:80 comment "pod1"',
        "add rule ip cni_hostport hostports ip daddr 192.0.2.1 udp dport 5353"
        ' dnat to 10.244.1.2:53 comment "pod1"',
        "add rule ip cni_hostport masquerading ip saddr 10.244.1.2 ip daddr 10.244.1.2"
        ' masquerade comment "pod1"',
        "add rule ip cni_hostport masquerading ip saddr 127.0.0.1 ip daddr 10.244.1.2"
        ' masquerade comment "pod1"',
    ]


def test_v6_commands_masq_all_and_conditions() -> None:
    c = conf(masqAll=True, conditionsV6=["iifname", '"eth0"'])
    cmds = nft.setup_commands(c, "pod1", V6)
    assert (
        'add rule ip6 cni_hostport prerouting iifname "eth0" fib daddr type local jump hostports_all'
        in cmds
    )
    mine = [x for x in cmds if 'comment "pod1"' in x]
    assert mine == [
        "add rule ip6 cni_hostport hostports tcp dport 8080"
        ' dnat to [fd00:10:244:1::2]:80 comment "pod1"',
        "add rule ip6 cni_hostport hostports ip6 daddr ::1 tcp dport 9091"
        ' dnat to [fd00:10:244:1::2]:91 comment "pod1"',
        "add rule ip6 cni_hostport masquerading ip6 saddr ::/0 ip6 daddr fd00:10:244:1::2"
        ' masquerade comment "pod1"',
    ]


def test_snat_off_has_no_masquerading() -> None:
    cmds = nft.setup_commands(conf(snat=False), "pod1", V4)
    assert not any("masquerad" in c for c in cmds)
    assert nft.expected_counts(conf(snat=False), 4) == (2, 0)
    assert nft.expected_counts(conf(), 4) == (2, 2)
    assert nft.expected_counts(conf(masqAll=True), 4) == (2, 1)
    assert nft.expected_counts(conf(), 6) == (2, 1)


def test_stale_rules_deleted_first() -> None:
    stale = NftRule("ip", "cni_hostport", "hostports", handle=7, comment="pod1", expr=[])
    cmds = nft.setup_commands(conf(), "pod1", V4, [stale])
    assert cmds[len(SKELETON)] == "delete rule ip cni_hostport hostports handle 7"


LISTED: list[dict[str, Any]] = [
    {"chain": {"family": "ip", "table": "cni_hostport", "name": "hostports", "handle": 1}},
    {
        "rule": {
            "family": "ip", "table": "cni_hostport", "chain": "hostports", "handle": 13,
            "comment": "pod1",
            "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                           "right": "192.0.2.1"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                           "right": 5353}},
                {"dnat": {"addr": "10.244.1.2", "port": 53}},
            ],
        }
    },
    {
        "rule": {
            "family": "ip", "table": "cni_hostport", "chain": "hostports_all", "handle": 3,
            "expr": [{"jump": {"target": "hostports"}}],
        }
    },
    {
        "rule": {
            "family": "ip", "table": "cni_hostport", "chain": "masquerading", "handle": 20,
            "comment": "pod2", "expr": [{"masquerade": None}],
        }
    },
]  # fmt: skip


def test_listed_rules_and_signatures() -> None:
    rules = rules_from_json(LISTED)
    assert [r.handle for r in nft.rules_of(rules)] == [13, 20]
    assert [r.handle for r in nft.rules_of(rules, ["pod1"])] == [13]
    assert nft.dnat_signature(rules[0].expr) == ("udp", 5353, "192.0.2.1", "10.244.1.2", 53)
    assert nft.dnat_signature(rules[2].expr) is None
    assert ("udp", 5353, "192.0.2.1", "10.244.1.2", 53) in nft.expected_dnats(conf(), V4)
    assert ("tcp", 8080, None, "10.244.1.2", 80) in nft.expected_dnats(conf(), V4)
