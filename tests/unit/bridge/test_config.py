"""bridge config parsing: defaults, every key's type/range errors (code 7 naming the key)."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.bridge.config import BridgeConf, parse_vlan_trunk
from cni_plugins.spec.errors import INVALID_CONFIG, INVALID_ENVIRONMENT, CNIError, InvalidConfig


def conf(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "net", "type": "bridge", **extra}


def test_defaults() -> None:
    c = BridgeConf.from_json(conf())
    assert c.bridge == "cni0"
    assert (c.is_gateway, c.ip_masq, c.mtu, c.vlan, c.vlan_trunk) == (False, False, 0, 0, None)
    assert c.ipam_type == "" and c.mac == "" and c.dns is None
    assert c.ip_masq_backend is None and not c.vlan_filtering


def test_default_gateway_implies_gateway() -> None:
    assert BridgeConf.from_json(conf(isDefaultGateway=True)).is_gateway


def test_null_means_default() -> None:
    c = BridgeConf.from_json(conf(isGateway=None, mtu=None, bridge=None, vlan=None))
    assert (c.is_gateway, c.mtu, c.bridge, c.vlan) == (False, 0, "cni0", 0)


BOOL_KEYS = [
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "hairpinMode",
    "promiscMode",
    "preserveDefaultVlan",
    "enabledad",
    "macspoofchk",
    "disableContainerInterface",
    "portIsolation",
]


@pytest.mark.parametrize("key", BOOL_KEYS)
@pytest.mark.parametrize("value", ["true", 1, [], {}])
def test_bool_keys_reject_non_booleans(key: str, value: object) -> None:
    with pytest.raises(InvalidConfig) as exc:
        BridgeConf.from_json(conf(**{key: value}))
    assert exc.value.code == INVALID_CONFIG
    assert str(exc.value).startswith(f"{key}:")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mtu", "1500"),
        ("mtu", 1450.5),
        ("mtu", True),
        ("mtu", 20),
        ("mtu", 70000),
        ("mtu", -1),
        ("vlan", -1),
        ("vlan", 4095),
        ("vlan", "5"),
        ("bridge", 7),
        ("bridge", "a-very-long-bridge-name"),
        ("bridge", "br/0"),
        ("bridge", "br 0"),
        ("ipMasqBackend", "ebtables"),
        ("ipMasqBackend", 1),
        ("ipam", "host-local"),
        ("ipam", {"type": 5}),
        ("ipam", {"type": "../x"}),
        ("dns", []),
        ("dns", {"nameservers": "8.8.8.8"}),
        ("dns", {"domain": 1}),
        ("vlanTrunk", {}),
        ("vlanTrunk", [5]),
    ],
)
def test_bad_values_name_their_key(key: str, value: object) -> None:
    with pytest.raises(InvalidConfig) as exc:
        BridgeConf.from_json(conf(**{key: value}))
    assert str(exc.value).split(":", maxsplit=1)[0].split(".", maxsplit=1)[0] == key


def test_vlan_error_text_is_the_references() -> None:
    with pytest.raises(InvalidConfig, match=r"invalid VLAN ID 4095 \(must be between 0 and 4094\)"):
        BridgeConf.from_json(conf(vlan=4095))


@pytest.mark.parametrize(
    ("trunk", "vids"),
    [
        ([{"id": 5}], (5,)),
        ([{"minID": 10, "maxID": 12}, {"id": 11}, {"id": 3}], (3, 10, 11, 12)),
        ([], None),
    ],
)
def test_vlan_trunk(trunk: list[dict[str, int]], vids: tuple[int, ...] | None) -> None:
    assert parse_vlan_trunk(trunk) == vids


@pytest.mark.parametrize(
    ("trunk", "message"),
    [
        ([{"id": 0}], "incorrect trunk id parameter"),
        ([{"id": 4095}], "incorrect trunk id parameter"),
        ([{"minID": 0, "maxID": 3}], "incorrect trunk minID parameter"),
        ([{"minID": 3, "maxID": 5000}], "incorrect trunk maxID parameter"),
        ([{"minID": 9, "maxID": 3}], "minID is greater than maxID in trunk parameter"),
        ([{"maxID": 3}], "minID and maxID should be configured simultaneously, minID is missing"),
        ([{"minID": 3}], "minID and maxID should be configured simultaneously, maxID is missing"),
    ],
)
def test_vlan_trunk_errors(trunk: list[dict[str, int]], message: str) -> None:
    with pytest.raises(InvalidConfig, match="vlanTrunk: " + message):
        parse_vlan_trunk(trunk)


def test_vlan_trunk_turns_on_vlan_filtering() -> None:
    assert BridgeConf.from_json(conf(vlanTrunk=[{"id": 7}])).vlan_filtering
    assert BridgeConf.from_json(conf(vlan=7)).vlan_filtering


def test_hairpin_and_promisc_conflict_only_on_add() -> None:
    with pytest.raises(InvalidConfig, match="cannot set hairpin mode and promiscuous mode"):
        BridgeConf.from_json(conf(hairpinMode=True, promiscMode=True))
    BridgeConf.from_json(conf(hairpinMode=True, promiscMode=True), for_add=False)


def test_ipam_with_disabled_container_interface() -> None:
    with pytest.raises(InvalidConfig, match="cannot use IPAM when DisableContainerInterface"):
        BridgeConf.from_json(conf(disableContainerInterface=True, ipam={"type": "host-local"}))
    assert BridgeConf.from_json(conf(disableContainerInterface=True, ipam={})).ipam_type == ""


def test_vlan_gateway_name_length() -> None:
    with pytest.raises(InvalidConfig, match="longer than 15"):
        BridgeConf.from_json(conf(bridge="bridge-name-12", vlan=100, isGateway=True))


def test_mac_precedence() -> None:
    raw = conf(
        args={"cni": {"mac": "0a:00:00:00:00:02"}}, runtimeConfig={"mac": "0A:00:00:00:00:03"}
    )
    assert BridgeConf.from_json(raw, cni_args="MAC=0a:00:00:00:00:01").mac == "0a:00:00:00:00:03"
    raw = conf(args={"cni": {"mac": "0a:00:00:00:00:02"}})
    assert BridgeConf.from_json(raw, cni_args="MAC=0a:00:00:00:00:01").mac == "0a:00:00:00:00:02"
    assert BridgeConf.from_json(conf(), cni_args="MAC=0a-00-00-00-00-01").mac == "0a:00:00:00:00:01"


def test_cni_args_unknown_keys() -> None:
    with pytest.raises(CNIError) as exc:
        BridgeConf.from_json(conf(), cni_args="K8S_POD_NAME=x")
    assert exc.value.code == INVALID_ENVIRONMENT
    c = BridgeConf.from_json(
        conf(), cni_args="IgnoreUnknown=1;K8S_POD_NAME=x;MAC=0a:00:00:00:00:09"
    )
    assert c.mac == "0a:00:00:00:00:09"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (conf(runtimeConfig={"mac": "zz:00:00:00:00:01"}), "runtimeConfig.mac"),
        (conf(args={"cni": {"mac": "01:00:00:00:00:01"}}), "args.cni.mac"),
        (conf(args={"cni": {"mac": 5}}), "args.cni.mac"),
    ],
)
def test_bad_mac(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidConfig, match=key):
        BridgeConf.from_json(raw)


def test_dns_replaces_ipam_dns_only_when_set() -> None:
    assert BridgeConf.from_json(conf(dns={})).dns is None
    dns = BridgeConf.from_json(conf(dns={"nameservers": ["10.0.0.10"], "search": ["a"]})).dns
    assert dns is not None and dns.nameservers == ("10.0.0.10",) and dns.search == ("a",)
