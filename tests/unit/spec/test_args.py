from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.spec.args import parse_cni_args, valid_attachments
from cni_plugins.spec.errors import INVALID_CONFIG, CNIError, InvalidEnvironment


def test_empty() -> None:
    assert parse_cni_args("", ("IP",)) == {}


def test_known_keys() -> None:
    assert parse_cni_args("IP=10.0.0.5", ("IP",)) == {"IP": "10.0.0.5"}


@pytest.mark.parametrize("flag", ["1", "true", "TRUE", "True"])
def test_ignore_unknown_kubelet_style(flag: str) -> None:
    raw = f"IgnoreUnknown={flag};K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;IP=10.0.0.9"
    assert parse_cni_args(raw, ("IP",)) == {"IP": "10.0.0.9"}


@pytest.mark.parametrize("raw", ["K8S_POD_NAME=x", "IgnoreUnknown=0;K8S_POD_NAME=x"])
def test_unknown_without_ignore_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidEnvironment, match="unknown args"):
        parse_cni_args(raw, ("IP",))


@pytest.mark.parametrize("raw", ["IP", "=x", "IP=1=2", "IP=1;;"])
def test_malformed_pairs(raw: str) -> None:
    with pytest.raises(InvalidEnvironment, match="invalid pair"):
        parse_cni_args(raw, ("IP",))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, set()),
        ({"cni.dev/valid-attachments": None}, set()),
        ({"cni.dev/valid-attachments": []}, set()),
        (
            {"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]},
            {("a", "eth0")},
        ),
        ({"cni.dev/attachments": [{"containerID": "b", "ifname": "net1"}]}, {("b", "net1")}),
        (
            {
                "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
                "cni.dev/attachments": [{"containerID": "zzz", "ifname": "eth0"}],
            },
            {("a", "eth0")},
        ),
    ],
)
def test_valid_attachments(config: dict[str, Any], expected: set[tuple[str, str]]) -> None:
    assert valid_attachments(config) == expected


@pytest.mark.parametrize(
    "value",
    ["x", [1], [{"containerID": "a"}], [{"containerID": 1, "ifname": "eth0"}], [{"ifname": "e"}]],
)
def test_malformed_attachments_are_code_7(value: object) -> None:
    with pytest.raises(CNIError) as info:
        valid_attachments({"cni.dev/valid-attachments": value})
    assert info.value.code == INVALID_CONFIG
    assert "cni.dev/valid-attachments" in info.value.msg
