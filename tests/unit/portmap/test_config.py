# ruff: noqa: E501 - tables of expected rules read best one per line
"""portmap config parsing: defaults, every bad value is code 7 naming its key."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.portmap.config import PortMapConf, PortMapping, container_addresses
from cni_plugins.spec import ip as ipa
from cni_plugins.spec.convert import result_from_wire
from cni_plugins.spec.errors import InvalidConfig


def parse(iptables_usable: bool = True, **raw: Any) -> PortMapConf:
    return PortMapConf.from_json({"name": "cbr0", **raw}, iptables_usable=iptables_usable)


def maps(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"portMappings": list(entries)}


def test_defaults() -> None:
    c = parse()
    assert (c.backend, c.snat, c.masq_all, c.mark_masq_bit) == ("iptables", True, False, 13)
    assert c.external_set_mark_chain is None and c.mappings == ()
    assert c.conditions(4) == () and c.conditions(6) == ()


def test_mappings_parsed() -> None:
    c = parse(
        runtimeConfig=maps(
            {"hostPort": 80, "containerPort": 8080},
            {"hostPort": 53, "containerPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
            {"hostPort": 9, "containerPort": 9, "protocol": "sctp", "hostIP": "::"},
            {"hostPort": 1, "containerPort": 1, "protocol": "", "hostIP": "::ffff:1.2.3.4"},
        )
    )
    assert c.mappings == (
        PortMapping(80, 8080, "tcp"),
        PortMapping(53, 53, "udp", ipa.ip_address("10.0.0.1")),
        PortMapping(9, 9, "sctp", ipa.ip_address("::")),
        PortMapping(1, 1, "tcp", ipa.ip_address("1.2.3.4")),  # Go treats it as IPv4
    )
    assert c.mappings[2].destination() is None and c.mappings[2].applies_to(6)
    assert not c.mappings[1].applies_to(6) and c.mappings[0].applies_to(6)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"runtimeConfig": maps({"hostPort": 0, "containerPort": 80})}, "hostPort"),
    ({"runtimeConfig": maps({"hostPort": 65536, "containerPort": 80})}, "hostPort"),
    ({"runtimeConfig": maps({"hostPort": 80, "containerPort": -1})}, "containerPort"),
    ({"runtimeConfig": maps({"hostPort": 80})}, "containerPort"),
    ({"runtimeConfig": maps({"hostPort": "80", "containerPort": 80})}, "hostPort"),
    ({"runtimeConfig": maps({"hostPort": True, "containerPort": 80})}, "hostPort"),
    ({"runtimeConfig": maps({"hostPort": 80, "containerPort": 80, "protocol": "icmp"})}, "protocol"),
    ({"runtimeConfig": maps({"hostPort": 80, "containerPort": 80, "protocol": 6})}, "protocol"),
    ({"runtimeConfig": maps({"hostPort": 80, "containerPort": 80, "hostIP": "x"})}, "hostIP"),
    ({"runtimeConfig": maps({"hostPort": 80, "containerPort": 80, "hostIP": "fe80::1%eth0"})}, "hostIP"),
    ({"runtimeConfig": maps({"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.0/8"})}, "hostIP"),
    ({"runtimeConfig": {"portMappings": {"hostPort": 80}}}, "portMappings"),
    ({"runtimeConfig": {"portMappings": ["80:80"]}}, "portMappings[0]"),
    ({"runtimeConfig": []}, "runtimeConfig"),
    ({"snat": "yes"}, "snat"),
    ({"masqAll": 1}, "masqAll"),
    ({"markMasqBit": 32}, "markMasqBit"),
    ({"markMasqBit": -1}, "markMasqBit"),
    ({"markMasqBit": 1.5}, "markMasqBit"),
    ({"markMasqBit": 13, "externalSetMarkChain": "KUBE-MARK-MASQ"}, "externalSetMarkChain"),
    ({"externalSetMarkChain": "-j ACCEPT"}, "externalSetMarkChain"),
    ({"externalSetMarkChain": "A" * 29}, "externalSetMarkChain"),
    ({"externalSetMarkChain": "X\n-A INPUT"}, "externalSetMarkChain"),
    ({"backend": "ebpf"}, "backend"),
    ({"backend": "nftables", "externalSetMarkChain": "KUBE-MARK-MASQ"}, "externalSetMarkChain"),
    ({"backend": "nftables", "conditionsV4": ["-s", "1.2.3.4"]}, "conditionsV4"),
    ({"backend": "iptables", "conditionsV6": ["ip6", "saddr", "::1"]}, "conditionsV6"),
    ({"conditionsV4": "-s 1.2.3.4"}, "conditionsV4"),
    ({"conditionsV4": ["-s", 1]}, "conditionsV4"),
    # injection: line breaks / NUL end the restore line or the nft command
    ({"conditionsV4": ["-s", "1.2.3.4\n-A", "INPUT", "-j", "ACCEPT"]}, "conditionsV4"),
    ({"conditionsV4": ["-s", "1.2.3.4\x00"]}, "conditionsV4"),
    ({"conditionsV4": ["-s", "1.2.3.4\rCOMMIT"]}, "conditionsV4"),
    ({"conditionsV4": ["-j", "ACCEPT"]}, "conditionsV4"),
    ({"conditionsV4": ["-s", "1.2.3.4", "--goto", "X"]}, "conditionsV4"),
    ({"backend": "nftables", "conditionsV4": ["ip saddr 1.2.3.4;", "flush ruleset"]}, "conditionsV4"),
    ({"backend": "nftables", "conditionsV4": ["ip", "saddr", "1.2.3.4", "#"]}, "conditionsV4"),
    ({"backend": "nftables", "conditionsV6": ["meta", "mark", "{", "1", "}"]}, "conditionsV6"),
    ({"backend": "nftables", "conditionsV4": ['iifname "eth0']}, "conditionsV4"),
    ({"backend": "nftables", "conditionsV4": ["accept", "jump", "x"]}, "conditionsV4"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "key"), BAD, ids=[f"{i}-{k}" for i, (_, k) in enumerate(BAD)])
def test_bad_values_name_their_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        parse(**raw)
    assert info.value.code == 7
    assert key in str(info.value)


def test_wrong_backend_message_is_the_reference_one() -> None:
    with pytest.raises(InvalidConfig, match=r"nftables backend was requested but configuration "
                       r"contains iptables-specific options \[externalSetMarkChain\]"):  # fmt: skip
        parse(backend="nftables", externalSetMarkChain="KUBE-MARK-MASQ")


def test_auto_backend() -> None:
    assert parse(iptables_usable=True).backend == "iptables"
    # nft-style conditions with iptables usable: the reference errors rather than switch.
    with pytest.raises(InvalidConfig, match="iptables backend was requested"):
        parse(conditionsV4=["ip", "saddr", "1.2.3.4"])
    c = parse(backend="nftables", conditionsV4=["ip", "saddr", "1.2.3.4", 'iifname "eth0"'])
    assert c.conditions(4) == ("ip", "saddr", "1.2.3.4", 'iifname "eth0"')


def test_valid_iptables_conditions_kept_verbatim() -> None:
    tokens = ["-m", "comment", "--comment", 'with spaces "and" quotes', "!", "-s", "10.0.0.0/8"]
    assert parse(conditionsV4=tokens).conditions_v4 == tuple(tokens)


def test_container_addresses_as_the_reference_picks_them() -> None:
    prev = result_from_wire(
        {
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "00:00:00:00:00:01"},
                {"name": "eth0", "mac": "00:00:00:00:00:02", "sandbox": "/run/netns/x"},
                {"name": "net1", "mac": "00:00:00:00:00:03", "sandbox": "/run/netns/x"},
            ],
            "ips": [
                {"address": "10.0.0.1/24", "interface": 0},  # host side: skipped
                {"address": "10.1.0.2/24", "interface": 2},  # other ifname: skipped
                {"address": "10.2.0.2/24", "interface": 1},
                {"address": "10.3.0.2/24", "interface": 1},  # second v4: ignored
                {"address": "fd00::2/64"},  # no interface index: taken
            ],
        },
        "1.0.0",
        "prevResult",
    )
    v4, v6 = container_addresses(prev, "eth0")
    assert str(v4) == "10.2.0.2/24" and str(v6) == "fd00::2/64"
    assert container_addresses(prev, "eth1") == (None, ipa.ip_interface("fd00::2/64"))
