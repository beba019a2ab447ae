"""Version conversion goldens: every version, every pair, and the lossy edges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_plugins.spec import ip as ipa
from cni_plugins.spec.convert import result_from_wire, result_to_wire
from cni_plugins.spec.errors import IncompatibleVersion, InvalidConfig
from cni_plugins.spec.types import Interface, IPConfig, Result
from cni_plugins.spec.version import SUPPORTED_VERSIONS, shape
from tests.unit.spec._sample import sample_result

GOLDEN = Path(__file__).parent / "golden"


def golden(version: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((GOLDEN / f"result-{version}.json").read_text())
    return data


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_canonical_to_each_version_matches_golden(version: str) -> None:
    assert result_to_wire(sample_result(), version) == golden(version)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_golden_parses_back(version: str) -> None:
    parsed = result_from_wire(golden(version), "1.1.0")
    # Printing what we parsed gives the same bytes back, in every version.
    assert result_to_wire(parsed, version) == golden(version)


@pytest.mark.parametrize("source", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("target", SUPPORTED_VERSIONS)
def test_every_version_pair(source: str, target: str) -> None:
    converted = result_to_wire(result_from_wire(golden(source), source), target)
    if shape(source) == "0.2" or shape(target) == "0.2":
        # Lossy either way: go through the legacy form.
        legacy = result_to_wire(result_from_wire(golden(source), source), "0.2.0")
        expected = result_to_wire(result_from_wire(legacy, "0.2.0"), target)
    elif source != "1.1.0" and target == "1.1.0":
        # 1.1-only fields were never in the source.
        expected = result_to_wire(result_from_wire(golden("1.0.0"), "1.0.0"), target)
    else:
        expected = golden(target)
    assert converted == expected
    assert converted["cniVersion"] == target


def test_legacy_keeps_first_address_per_family_and_routes_by_family() -> None:
    wire = result_to_wire(sample_result(), "0.2.0")
    assert wire["ip4"] == {
        "ip": "10.244.1.2/24",
        "gateway": "10.244.1.1",
        "routes": [{"dst": "10.244.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
    }
    assert wire["ip6"] == {
        "ip": "fd00:1::2/64",
        "gateway": "fd00:1::1",
        "routes": [{"dst": "fd00::/48", "gw": "fd00:1::1"}],
    }
    assert "interfaces" not in wire and "ips" not in wire


def test_legacy_up_conversion_has_versions_and_no_interfaces() -> None:
    parsed = result_from_wire(
        {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.5/8", "routes": [{"dst": "0.0.0.0/0"}]}},
        "0.2.0",
    )
    assert result_to_wire(parsed, "0.4.0") == {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.0.0.5/8"}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_result_without_ips_cannot_be_legacy(version: str) -> None:
    result = Result(interfaces=[Interface("lo")])
    with pytest.raises(IncompatibleVersion, match="no valid IP addresses"):
        result_to_wire(result, version)


def test_empty_dns_is_omitted() -> None:
    result = Result(ips=[IPConfig(ipa.ip_interface("10.0.0.2/24"))])
    assert "dns" not in result_to_wire(result, "1.0.0")
    assert "dns" not in result_to_wire(result, "0.2.0")


def test_prev_result_without_version_uses_default() -> None:
    parsed = result_from_wire({"ips": [{"address": "10.1.0.2/16"}]}, "1.0.0")
    assert parsed.ips[0].address == ipa.ip_interface("10.1.0.2/16")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("x", "must be a JSON object"),
        ({"cniVersion": "1.0.0", "ips": "x"}, "ips must be a list"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}, "prefix length"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.300/24"}]}, "address"),
        (
            {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "interface": 3}]},
            "out of range",
        ),
        (
            {"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.1/24"}]},
            "does not match",
        ),
        ({"cniVersion": "1.0.0", "routes": [{"dst": "nope"}]}, "routes\\[0\\].dst"),
        ({"cniVersion": "1.0.0", "interfaces": [{"mac": "x"}]}, "name is missing"),
        ({"cniVersion": "1.0.0", "dns": {"nameservers": "8.8.8.8"}}, "list of strings"),
    ],
)
def test_malformed_results_name_the_field(raw: object, problem: str) -> None:
    with pytest.raises(InvalidConfig, match=problem):
        result_from_wire(raw, "1.0.0", "prevResult")


def test_unknown_result_version_is_code_1() -> None:
    with pytest.raises(IncompatibleVersion):
        result_from_wire({"cniVersion": "7.0.0"}, "1.0.0")
