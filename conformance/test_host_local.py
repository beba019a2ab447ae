"""host-local IPAM specifics (reference doc section 2.2): the on-disk store format shared
with the Go plugin, round-robin allocation, release, requested IPs, exhaustion, GC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.checks import assert_error, assert_result, assert_silent_success
from conformance.convert import to_canonical
from conformance.harness import Harness
from conformance.proc import Outcome
from conformance.profiles import NETWORK_NAME, ipam_section
from conformance.versions import has_check, has_status_gc, is_legacy

pytestmark = pytest.mark.plugins("host-local")


def _store(harness: Harness) -> Path:
    return harness.world.tmp / "ipam" / NETWORK_NAME


def _address(outcome: Outcome, version: str) -> str:
    result = to_canonical(assert_result(outcome, version, shape=False))
    return str(result["ips"][0]["address"].split("/")[0])


def _add_as(harness: Harness, version: str, container_id: str, **env: str) -> Outcome:
    return harness.run("ADD", harness.config(version), CNI_CONTAINERID=container_id, **env)


def test_reservation_file_format(harness: Harness, version: str) -> None:
    """<dataDir>/<network>/<ip> holds "<containerID>\\r\\n<ifname>"; the round-robin
    cursor is last_reserved_ip.<rangeset index>.  Go and ours must read each other's."""
    ip = _address(harness.add(version), version)
    store = _store(harness)
    assert (store / ip).read_bytes() == f"{harness.container_id}\r\neth0".encode()
    assert (store / "last_reserved_ip.0").read_text().strip() == ip


def test_reservation_file_private(harness: Harness, version: str) -> None:
    """Reservation files are 0600 (reference HEAD); they name containers."""
    ip = _address(harness.add(version), version)
    mode = (_store(harness) / ip).stat().st_mode & 0o777
    assert mode & 0o077 == 0, f"reservation file mode {mode:o}"


def test_round_robin(harness: Harness, version: str) -> None:
    """Allocation continues after the last reserved IP, even past released ones."""
    first = _address(_add_as(harness, version, "cnf-a"), version)
    second = _address(_add_as(harness, version, "cnf-b"), version)
    assert_silent_success(harness.run("DEL", harness.config(version), CNI_CONTAINERID="cnf-a"))
    third = _address(_add_as(harness, version, "cnf-c"), version)
    assert (first, second, third) == ("10.250.0.2", "10.250.0.3", "10.250.0.4")


def test_release_on_del(harness: Harness, version: str) -> None:
    ip = _address(harness.add(version), version)
    assert (_store(harness) / ip).exists()
    assert_silent_success(harness.run("DEL", harness.config(version), CNI_NETNS=None))
    assert not (_store(harness) / ip).exists(), "reservation not released by DEL"


def test_requested_ip_cni_args(harness: Harness, version: str) -> None:
    outcome = harness.add(version, CNI_ARGS="IgnoreUnknown=1;IP=10.250.0.77;K8S_POD_NAME=x")
    assert _address(outcome, version) == "10.250.0.77"


def test_requested_ip_args_cni_ips(harness: Harness, version: str) -> None:
    config = {**harness.config(version), "args": {"cni": {"ips": ["10.250.0.78"]}}}
    assert _address(harness.run("ADD", config), version) == "10.250.0.78"


def test_duplicate_add_rejected(harness: Harness, version: str) -> None:
    """A second ADD for the same (container, ifname) must not allocate a second IP."""
    harness.add(version)
    assert_error(harness.add(version), range(1, 1000))
    assert len([p for p in _store(harness).iterdir() if p.name[0].isdigit()]) == 1


def test_exhaustion_is_an_error(harness: Harness, version: str) -> None:
    """A /30 has exactly one allocatable address besides the gateway."""
    config: dict[str, Any] = harness.config(version)
    config["ipam"] = ipam_section(harness.world, ranges=[[{"subnet": "10.250.9.0/30"}]])
    first = harness.run("ADD", config, CNI_CONTAINERID="cnf-a")
    assert_result(first, version, shape=False)
    assert_error(harness.run("ADD", config, CNI_CONTAINERID="cnf-b"), range(1, 1000))


@pytest.mark.requires(is_legacy, "multiple IPs per family are fine from 0.3.0")
def test_two_ipv4_range_sets_rejected_before_0_3_0(harness: Harness, version: str) -> None:
    config: dict[str, Any] = harness.config(version)
    config["ipam"] = ipam_section(
        harness.world, ranges=[[{"subnet": "10.250.0.0/24"}], [{"subnet": "10.251.0.0/24"}]]
    )
    assert_error(harness.run("ADD", config), range(1, 1000))


@pytest.mark.requires(has_check, "CHECK exists from 0.4.0")
def test_check_without_reservation_fails(harness: Harness, version: str) -> None:
    """CHECK should error for an untracked IP reservation (SPEC.md CHECK)."""
    result = assert_result(harness.add(version), version, shape=False)
    config = {**harness.config(version), "prevResult": result}
    assert_silent_success(harness.run("CHECK", config))
    assert_silent_success(harness.run("DEL", config))
    assert_error(harness.run("CHECK", config), range(1, 1000))


@pytest.mark.requires(has_status_gc, "GC exists from 1.1.0")
def test_gc_releases_stale_reservations(harness: Harness, version: str) -> None:
    keep = _address(_add_as(harness, version, "cnf-keep"), version)
    stale = _address(_add_as(harness, version, "cnf-stale"), version)
    config: dict[str, Any] = harness.config(version)
    config["cni.dev/valid-attachments"] = [{"containerID": "cnf-keep", "ifname": "eth0"}]
    config["cni.dev/attachments"] = config["cni.dev/valid-attachments"]
    outcome = harness.run("GC", config, CNI_CONTAINERID=None, CNI_NETNS=None, CNI_IFNAME=None)
    assert_silent_success(outcome)
    store = _store(harness)
    assert (store / keep).exists(), "GC released a valid attachment"
    assert not (store / stale).exists(), "GC kept a stale reservation"
    assert (store / "last_reserved_ip.0").exists(), "GC removed the round-robin cursor"
