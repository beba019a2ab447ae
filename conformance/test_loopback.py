"""loopback specifics (reference doc section 2.3): lo UP after ADD, DOWN after DEL."""

from __future__ import annotations

import pytest

from conformance.checks import assert_error, assert_result, assert_silent_success
from conformance.convert import to_canonical
from conformance.harness import Harness
from conformance.versions import has_check

pytestmark = pytest.mark.plugins("loopback")


def _lo_up(harness: Harness) -> bool:
    link = harness.world.pod.link("lo")
    assert link is not None
    return "UP" in link.get("flags", [])


def test_lo_up_after_add_down_after_del(harness: Harness, version: str) -> None:
    assert not _lo_up(harness)
    assert_result(harness.add(version), version, shape=False)
    assert _lo_up(harness), "lo not UP after ADD"
    assert_silent_success(harness.run("DEL", harness.config(version)))
    assert not _lo_up(harness), "lo still UP after DEL"


def test_result_names_loopback_addresses(harness: Harness, version: str) -> None:
    result = to_canonical(assert_result(harness.add(version), version, shape=False))
    addresses = {ip["address"] for ip in result.get("ips", [])}
    assert "127.0.0.1/8" in addresses, f"result lacks 127.0.0.1/8: {result}"


@pytest.mark.requires(has_check, "CHECK exists from 0.4.0")
def test_check_fails_when_lo_down(harness: Harness, version: str) -> None:
    result = assert_result(harness.add(version), version, shape=False)
    config = {**harness.config(version), "prevResult": result}
    harness.world.pod.run("ip", "link", "set", "lo", "down")
    assert_error(harness.run("CHECK", config), range(1, 1000))
