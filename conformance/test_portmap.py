"""portmap specifics (reference doc section 2.4): host-port DNAT rules appear on ADD and
disappear on DEL, in the node namespace's firewall (iptables or nftables)."""

from __future__ import annotations

import pytest

from conformance.checks import assert_error, assert_result, assert_silent_success
from conformance.harness import Harness
from conformance.profiles import HOST_PORT

pytestmark = pytest.mark.plugins("portmap")

TARGET = "10.250.0.2:80"


def _firewall(harness: Harness) -> str:
    node = harness.world.node
    nft = node.run("nft", "list", "ruleset", check=False).stdout
    return "\n".join(node.nat_rules()) + "\n" + nft


def test_dnat_rules_added_and_removed(harness: Harness, version: str) -> None:
    assert_result(harness.add(version), version, shape=False)
    rules = _firewall(harness)
    assert TARGET in rules and str(HOST_PORT) in rules, f"no DNAT to {TARGET}:\n{rules}"
    assert_silent_success(harness.run("DEL", harness.config(version)))
    rules = _firewall(harness)
    assert TARGET not in rules, f"DNAT to {TARGET} left after DEL:\n{rules}"


def test_add_without_prev_result_fails(harness: Harness, version: str) -> None:
    """portmap only works chained: it needs prevResult to find the container IP."""
    config = harness.config(version)
    del config["prevResult"]
    assert_error(harness.run("ADD", config), range(1, 1000))
