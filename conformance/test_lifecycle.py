"""Lifecycle and idempotency obligations (SPEC.md section 3 / reference doc 1.14):
ADD -> CHECK -> DEL, repeated DEL, DEL without netns / prevResult / prior ADD,
ADD onto an existing interface, prevResult pass-through of chained plugins."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from conformance.checks import assert_error, assert_result, assert_silent_success
from conformance.convert import normalise, to_canonical
from conformance.harness import Harness
from conformance.profiles import synthetic_prev_result
from conformance.versions import has_check, has_prev_result_on_del, has_status_gc


def _add(harness: Harness, version: str) -> dict[str, Any]:
    return assert_result(harness.add(version), version, shape=False)


def _del_config(harness: Harness, version: str, result: dict[str, Any]) -> dict[str, Any]:
    """DEL gets the final ADD result as prevResult from 0.4.0 on (SPEC.md section 3)."""
    config = harness.config(version)
    if has_prev_result_on_del(version):
        config["prevResult"] = result
    return config


def test_add_del(harness: Harness, version: str) -> None:
    result = _add(harness, version)
    assert_silent_success(harness.run("DEL", _del_config(harness, version, result)))


@pytest.mark.requires(has_check, "CHECK exists from 0.4.0")
def test_check_after_add(harness: Harness, version: str) -> None:
    result = _add(harness, version)
    outcome = harness.run("CHECK", {**harness.config(version), "prevResult": result})
    assert_silent_success(outcome)
    assert_silent_success(harness.run("DEL", _del_config(harness, version, result)))


def test_del_twice(harness: Harness, version: str) -> None:
    """Plugins MUST accept multiple DELs for the same (container, ifname)."""
    result = _add(harness, version)
    config = _del_config(harness, version, result)
    assert_silent_success(harness.run("DEL", config))
    assert_silent_success(harness.run("DEL", config))


def test_del_with_netns_gone(harness: Harness, version: str) -> None:
    """DEL succeeds when the netns has already been deleted (kubernetes#43014)."""
    result = _add(harness, version)
    pod_path = harness.world.pod.path
    subprocess.run(["ip", "netns", "del", harness.world.pod.name], check=True)
    outcome = harness.run("DEL", _del_config(harness, version, result), CNI_NETNS=pod_path)
    assert_silent_success(outcome)


def test_del_without_netns(harness: Harness, version: str) -> None:
    """CNI_NETNS is optional for DEL."""
    result = _add(harness, version)
    outcome = harness.run("DEL", _del_config(harness, version, result), CNI_NETNS=None)
    assert_silent_success(outcome)
    # Now clean up properly; must also succeed (DEL is repeatable).
    assert_silent_success(harness.run("DEL", _del_config(harness, version, result)))


def test_del_without_prev_result(harness: Harness, version: str) -> None:
    """Plugins must still succeed on DEL when prevResult is missing."""
    _add(harness, version)
    config = harness.config(version)
    config.pop("prevResult", None)
    assert_silent_success(harness.run("DEL", config))


def test_del_never_added(harness: Harness, version: str) -> None:
    config = harness.config(version)
    config.pop("prevResult", None)
    assert_silent_success(harness.run("DEL", config))


@pytest.mark.plugins("bridge", "flannel")
def test_add_existing_interface_fails(harness: Harness, version: str) -> None:
    """'If an interface of the requested name already exists in the container, the CNI
    plugin MUST return with an error.'"""
    pod = harness.world.pod
    subprocess.run(
        ["ip", "-n", pod.name, "link", "add", "eth0", "type", "veth", "peer", "name", "cnfpeer0"],
        check=True,
    )
    outcome = harness.add(version)
    assert_error(outcome, range(0, 1000))
    assert pod.link("eth0") is not None, "the pre-existing interface was removed"
    assert_silent_success(harness.run("DEL", harness.config(version)))


@pytest.mark.plugins("loopback", "portmap")
def test_chained_passes_prev_result_through(harness: Harness, version: str) -> None:
    """A chained plugin that changes nothing reflected in the result outputs prevResult
    (JSON-equal after conversion to the request version)."""
    prev = synthetic_prev_result(harness.world.pod.path, version, harness.profile.ifname)
    config = {**harness.config(version), "prevResult": prev}
    outcome = harness.run("ADD", config)
    result = assert_result(outcome, version, shape=False)
    assert normalise(to_canonical(result)) == normalise(to_canonical(prev)), (
        f"prevResult not passed through{outcome.describe()}"
    )
    assert normalise(result) == normalise(prev), f"prevResult altered{outcome.describe()}"
    assert_silent_success(harness.run("DEL", config))


@pytest.mark.requires(has_status_gc, "STATUS exists from 1.1.0")
def test_status_ready(harness: Harness, version: str) -> None:
    """A plugin able to service ADD answers STATUS with exit 0 and no output."""
    config = harness.config(version)
    config.pop("prevResult", None)
    outcome = harness.run("STATUS", config, CNI_CONTAINERID=None, CNI_NETNS=None, CNI_IFNAME=None)
    assert_silent_success(outcome)


@pytest.mark.requires(has_status_gc, "GC exists from 1.1.0")
def test_gc_empty(harness: Harness, version: str) -> None:
    """GC with an empty valid-attachments list succeeds silently."""
    config = harness.config(version)
    config.pop("prevResult", None)
    config["cni.dev/valid-attachments"] = []
    config["cni.dev/attachments"] = []
    outcome = harness.run("GC", config, CNI_CONTAINERID=None, CNI_NETNS=None, CNI_IFNAME=None)
    assert_silent_success(outcome)
