"""Delegation (SPEC.md section 4): the upper plugin execs the delegate found first in
CNI_PATH with the same environment (CNI_COMMAND aside) and - for IPAM - the same stdin,
forwards DEL/CHECK/STATUS/GC, and undoes a failed ADD with a delegate DEL.

A recording test double stands in for the delegate: bridge -> "host-local",
flannel -> "bridge"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.checks import assert_error, assert_result, assert_silent_success
from conformance.convert import to_version
from conformance.harness import Harness
from conformance.proc import passed_env
from conformance.profiles import CLUSTER_NET, GATEWAY, NETWORK_NAME, SUBNET, synthetic_prev_result
from conformance.recorder import Recorder, env_difference, install_recorder
from conformance.versions import has_check, has_status_gc

DELEGATE = {"bridge": "host-local", "flannel": "bridge"}
pytestmark = pytest.mark.plugins(*DELEGATE)

MARKER_ENV = {"CNF_MARKER": "passed-through"}


def _ipam_result(version: str) -> dict[str, Any]:
    result = {"cniVersion": version, "ips": [{"address": "10.250.0.9/24", "gateway": GATEWAY}]}
    return to_version(result, version)


def _setup(harness: Harness, version: str) -> Recorder:
    """Put the recorder first in CNI_PATH and script a successful ADD."""
    directory = harness.world.tmp / "delegates"
    recorder = install_recorder(directory, DELEGATE[harness.info.name])
    harness.cni_path = [directory, harness.bin_dir]
    if harness.info.name == "bridge":
        reply = _ipam_result(version)
    else:
        reply = synthetic_prev_result(harness.world.pod.path, version)
    recorder.script("ADD", stdout=json.dumps(reply))
    return recorder


def _assert_delegated(
    harness: Harness, recorder: Recorder, command: str, sent_env: dict[str, str], stdin: Any
) -> dict[str, Any]:
    records = recorder.records(command)
    assert records, f"{command} never reached the delegate; it saw {recorder.commands()}"
    record = records[-1]
    # The upper plugin also got the suite's CNF_PASS_ENV variables, and passes them on.
    diff = env_difference({**passed_env(), **sent_env}, record["env"])
    assert not diff, f"delegate {command} environment differs (sent, received): {diff}"
    delegated: dict[str, Any] = json.loads(record["stdin"])
    if harness.info.name == "bridge":
        # IPAM delegates receive the complete network configuration of the upper plugin.
        assert delegated == stdin, f"delegate stdin differs:\n{delegated}\n!=\n{stdin}"
    else:
        _assert_flannel_delegate_config(delegated, stdin["cniVersion"])
    return delegated


def _assert_flannel_delegate_config(delegated: dict[str, Any], version: str) -> None:
    """flannel's generated delegate config (reference doc section 2.5)."""
    assert delegated["name"] == NETWORK_NAME
    assert delegated.get("cniVersion") == version
    assert delegated["ipam"]["ranges"] == [[{"subnet": SUBNET}]]
    assert {"dst": CLUSTER_NET} in delegated["ipam"]["routes"]
    assert delegated["ipam"].get("type") == "host-local"
    assert delegated["mtu"] == 1450
    assert delegated["ipMasq"] is False  # FLANNEL_IPMASQ=true: flanneld masquerades
    assert delegated["isGateway"] is True
    for key in ("bridge", "hairpinMode", "isDefaultGateway"):
        assert key in delegated, f"delegate key {key} dropped"


def _run(harness: Harness, command: str, config: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    env = harness.env(command)
    outcome = harness.run(command, config, **MARKER_ENV)
    return outcome, {**env, **MARKER_ENV, "PATH": outcome.env["PATH"]}


def test_delegate_add_same_stdin_and_env(harness: Harness, version: str) -> None:
    recorder = _setup(harness, version)
    config = harness.config(version)
    outcome, env = _run(harness, "ADD", config)
    assert_result(outcome, version, shape=False)
    _assert_delegated(harness, recorder, "ADD", env, config)


def test_delegate_del(harness: Harness, version: str) -> None:
    recorder = _setup(harness, version)
    config = harness.config(version)
    add, _ = _run(harness, "ADD", config)
    assert_result(add, version, shape=False)
    outcome, env = _run(harness, "DEL", config)
    assert_silent_success(outcome)
    _assert_delegated(harness, recorder, "DEL", env, config)


@pytest.mark.requires(has_check, "CHECK exists from 0.4.0")
def test_delegate_check(harness: Harness, version: str) -> None:
    """'The plugin should call CHECK on delegated plugins' (SPEC.md CHECK)."""
    recorder = _setup(harness, version)
    config = harness.config(version)
    add, _ = _run(harness, "ADD", config)
    result = assert_result(add, version, shape=False)
    check_config = {**config, "prevResult": result}
    outcome, env = _run(harness, "CHECK", check_config)
    records = recorder.records("CHECK")
    assert records, f"CHECK never reached the delegate{outcome.describe()}"
    diff = env_difference({**passed_env(), **env}, records[-1]["env"])
    assert not diff, f"delegate CHECK environment differs: {diff}"
    assert_silent_success(outcome)


@pytest.mark.requires(has_status_gc, "STATUS/GC exist from 1.1.0")
@pytest.mark.parametrize("command", ["STATUS", "GC"])
def test_delegate_status_gc(harness: Harness, version: str, command: str) -> None:
    """STATUS and GC must reach the delegate."""
    recorder = _setup(harness, version)
    config: dict[str, Any] = harness.config(version)
    if command == "GC":
        config["cni.dev/valid-attachments"] = []
    outcome = harness.run(command, config, CNI_CONTAINERID=None, CNI_NETNS=None, CNI_IFNAME=None)
    assert_silent_success(outcome)
    assert recorder.records(command), f"{command} never reached the delegate{outcome.describe()}"


def test_delegate_add_error_is_followed_by_del(harness: Harness, version: str) -> None:
    """'If on ADD a delegated plugin fails, the upper plugin should execute the delegate
    again with DEL before returning failure' (SPEC.md section 4)."""
    recorder = _setup(harness, version)
    error = {"code": 11, "msg": "cnf: delegate says try again later"}
    recorder.script("ADD", stdout=json.dumps(error), rc=1)
    outcome = harness.add(version)
    assert_error(outcome, range(1, 1000))
    commands = recorder.commands()
    assert "ADD" in commands, f"delegate never called{outcome.describe()}"
    assert "DEL" in commands[commands.index("ADD") :], (
        f"no delegate DEL after the failed delegate ADD (saw {commands}){outcome.describe()}"
    )


@pytest.mark.plugins("bridge")
def test_delegate_error_code_preserved(harness: Harness, version: str) -> None:
    """A delegate's CNI error reaches the runtime with its code (not rewrapped as 999)."""
    recorder = _setup(harness, version)
    recorder.script("ADD", stdout=json.dumps({"code": 11, "msg": "cnf: try later"}), rc=1)
    assert_error(harness.add(version), {11})


@pytest.mark.plugins("bridge")
def test_failure_after_delegate_add_is_undone(harness: Harness, version: str) -> None:
    """IPAM returns no address: bridge must fail and release via IPAM DEL."""
    recorder = _setup(harness, version)
    recorder.script("ADD", stdout=json.dumps({"cniVersion": version, "dns": {}}))
    outcome = harness.add(version)
    assert_error(outcome, range(1, 1000))
    commands = recorder.commands()
    assert commands[:1] == ["ADD"] and "DEL" in commands, f"saw {commands}{outcome.describe()}"


@pytest.mark.plugins("flannel")
def test_flannel_del_replays_saved_config(harness: Harness, version: str) -> None:
    """flannel keeps the delegate config of ADD in dataDir and replays it on DEL, even if
    the subnet has changed since; the saved file is removed afterwards."""
    recorder = _setup(harness, version)
    config = harness.config(version)
    assert_result(harness.run("ADD", config), version, shape=False)
    Path(config["subnetFile"]).write_text(
        "FLANNEL_NETWORK=10.99.0.0/16\nFLANNEL_SUBNET=10.99.7.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n"
    )
    assert_silent_success(harness.run("DEL", config))
    add_stdin = json.loads(recorder.records("ADD")[-1]["stdin"])
    del_stdin = json.loads(recorder.records("DEL")[-1]["stdin"])
    assert del_stdin == add_stdin, "DEL did not replay the ADD-time delegate config"
    saved = Path(config["dataDir"]) / harness.container_id
    assert not saved.exists(), f"{saved} left behind after a successful DEL"
    assert_silent_success(harness.run("DEL", config))
