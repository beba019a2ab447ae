from __future__ import annotations

import pytest

from cni_plugins.spec.args import parse_cni_args
from cni_plugins.spec.errors import InvalidEnvironment


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
