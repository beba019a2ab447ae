"""portmap config keys match as Go's encoding/json: what go-cni sends works."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.portmap.config import PortMapConf, PortMapping
from cni_plugins.spec import ip as ipa
from cni_plugins.spec.errors import InvalidConfig


def parse(**raw: Any) -> PortMapConf:
    return PortMapConf.from_json({"name": "cbr0", **raw}, iptables_usable=True)


def test_go_cni_runtime_config() -> None:
    # containerd 1.6 CRI through go-cni: its PortMapping struct has no JSON tags.
    c = parse(
        runtimeConfig={
            "portMappings": [
                {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
                {"HostPort": 53, "ContainerPort": 53, "Protocol": "udp", "HostIP": "10.0.0.1"},
            ]
        }
    )
    assert c.mappings == (
        PortMapping(18080, 80, "tcp"),
        PortMapping(53, 53, "udp", ipa.ip_address("10.0.0.1")),
    )


def test_top_level_and_runtime_config_keys_fold() -> None:
    c = parse(
        SNAT=False,
        MasqAll=True,
        MARKMASQBIT=5,
        ConditionsV4=["-s", "10.0.0.0/8"],
        RuntimeConfig={"PortMappings": [{"hostport": 1, "containerport": 2}]},
    )
    assert (c.snat, c.masq_all, c.mark_masq_bit) == (False, True, 5)
    assert c.conditions_v4 == ("-s", "10.0.0.0/8")
    assert c.mappings == (PortMapping(1, 2, "tcp"),)


def test_later_key_wins_like_go() -> None:
    entry = {"hostPort": 1, "HostPort": 2, "containerPort": 3}
    assert parse(runtimeConfig={"portMappings": [entry]}).mappings == (PortMapping(2, 3, "tcp"),)


def test_bad_value_names_the_canonical_key_and_the_spelling() -> None:
    with pytest.raises(InvalidConfig) as exc:
        parse(runtimeConfig={"portMappings": [{"HostPort": 80, "ContainerPort": 0}]})
    assert exc.value.msg == (
        'runtimeConfig.portMappings[0].containerPort (given as "ContainerPort"):'
        " Invalid container port number: 0 (1-65535)"
    )


def test_a_key_that_is_not_a_fold_is_ignored() -> None:
    # Go ignores unknown keys: "Host_Port" names no field, so hostPort is 0.
    with pytest.raises(InvalidConfig, match=r"hostPort: Invalid host port number: 0"):
        parse(runtimeConfig={"portMappings": [{"Host_Port": 80, "containerPort": 80}]})
