"""Execution-protocol checks every plugin binary must pass, per spec version:
VERSION, environment validation, config decoding, version negotiation, result shape.
(SPEC.md sections 2 and 5; reference doc sections 1.3, 1.13, 1.15.)"""

from __future__ import annotations

import pytest

from conformance.checks import (
    assert_error,
    assert_result,
    assert_silent_success,
    one_json_object,
    validate,
)
from conformance.discovery import PluginInfo
from conformance.harness import Harness
from conformance.proc import run_plugin
from conformance.versions import ALL_VERSIONS, has_check, has_status_gc

# Required variables per verb (SPEC.md "Parameters"); CNI_PATH is optional in the spec
# except for GC, so it is always provided here and never asserted as missing.
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
}
# Container ID: ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$ (SPEC.md 1.0.0+).
BAD_CONTAINER_IDS = ("a/b", "a:b", "a b", "a\tb", "-abc", ".", "..")
# Interface name: at most 15 bytes, not "." or "..", no "/", ":" or whitespace.
BAD_IFNAMES = ("e123456789abcdef", "e/0", "e:0", "e 0", "e\t0", ".", "..")
BAD_NETWORK_NAMES = ("a/b", "a b", "-net", "../x")


def supports_1_1(info: PluginInfo) -> bool:
    return info.supports("1.1.0")


def test_version_without_stdin(plugin: PluginInfo) -> None:
    """VERSION needs only CNI_COMMAND; stdin may be empty."""
    assert plugin.path is not None
    outcome = run_plugin(plugin.path, {"CNI_COMMAND": "VERSION"}, b"")
    assert outcome.rc == 0, f"VERSION failed{outcome.describe()}"
    reply = one_json_object(outcome)
    validate(reply, "version", outcome)
    assert set(reply["supportedVersions"]) & set(ALL_VERSIONS), (
        f"no known spec version in supportedVersions{outcome.describe()}"
    )


def test_version_with_stdin(plugin: PluginInfo, version: str) -> None:
    """VERSION with {"cniVersion": v}.  The reply's cniVersion may echo v (spec) or be the
    plugin's own current version (Go skel); both are accepted (reference doc 1.13/6)."""
    assert plugin.path is not None
    outcome = run_plugin(plugin.path, {"CNI_COMMAND": "VERSION"}, {"cniVersion": version})
    assert outcome.rc == 0, f"VERSION failed{outcome.describe()}"
    reply = one_json_object(outcome)
    validate(reply, "version", outcome)
    assert version in reply["supportedVersions"], f"{version} missing{outcome.describe()}"
    assert reply["cniVersion"] in (version, *reply["supportedVersions"]), outcome.describe()
    assert tuple(reply["supportedVersions"]) == plugin.supported or set(
        reply["supportedVersions"]
    ) == set(plugin.supported), f"VERSION answer depends on input{outcome.describe()}"


def test_no_command(plugin: PluginInfo) -> None:
    """No CNI_COMMAND: exit 0 and nothing on stdout (an about text may go to stderr)."""
    assert plugin.path is not None
    outcome = run_plugin(plugin.path, {}, b"")
    assert outcome.rc == 0, f"expected exit 0{outcome.describe()}"
    assert not outcome.stdout.strip(), f"expected empty stdout{outcome.describe()}"


def test_unknown_command(harness: Harness, version: str) -> None:
    outcome = harness.run("FROB", harness.config(version))
    assert_error(outcome, {4})


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_missing_env_all_named(harness: Harness, version: str, command: str) -> None:
    """Every missing required variable is named in one code-4 error."""
    if command == "CHECK" and not has_check(version):
        pytest.skip("not applicable: CHECK needs spec >= 0.4.0")
    required = REQUIRED_ENV[command]
    outcome = harness.run(command, harness.config(version), **dict.fromkeys(required))
    assert_error(outcome, {4}, mentions=required)


@pytest.mark.parametrize("variable", REQUIRED_ENV["ADD"])
def test_missing_env_single(harness: Harness, version: str, variable: str) -> None:
    outcome = harness.run("ADD", harness.config(version), **{variable: None})
    assert_error(outcome, {4}, mentions=[variable])


@pytest.mark.parametrize("container_id", BAD_CONTAINER_IDS, ids=repr)
def test_bad_container_id(harness: Harness, version: str, container_id: str) -> None:
    outcome = harness.run("ADD", harness.config(version), CNI_CONTAINERID=container_id)
    assert_error(outcome, {4})


def test_empty_container_id(harness: Harness, version: str) -> None:
    outcome = harness.run("ADD", harness.config(version), CNI_CONTAINERID="")
    assert_error(outcome, {4}, mentions=["CNI_CONTAINERID"])


@pytest.mark.parametrize("ifname", BAD_IFNAMES, ids=repr)
def test_bad_ifname(harness: Harness, version: str, ifname: str) -> None:
    outcome = harness.run("ADD", harness.config(version), CNI_IFNAME=ifname)
    assert_error(outcome, {4})


@pytest.mark.parametrize("name", BAD_NETWORK_NAMES, ids=repr)
def test_bad_network_name(harness: Harness, version: str, name: str) -> None:
    outcome = harness.run("ADD", harness.config(version, name=name))
    assert_error(outcome, {7})


def test_missing_network_name(harness: Harness, version: str) -> None:
    config = harness.config(version)
    del config["name"]
    assert_error(harness.run("ADD", config), {7})


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_invalid_json(harness: Harness, version: str, command: str) -> None:
    outcome = harness.run(command, b'{"cniVersion": "' + version.encode() + b'", "name": ')
    assert_error(outcome, {6})


def test_unsupported_version(harness: Harness) -> None:
    """cniVersion 9.9.9 -> code 1, naming the versions the plugin does support."""
    outcome = harness.run("ADD", harness.config("9.9.9"))
    assert_error(outcome, {1}, mentions=harness.info.supported)


@pytest.mark.requires(lambda v: not has_check(v), "CHECK exists from 0.4.0")
def test_check_below_0_4_0_rejected(harness: Harness, version: str) -> None:
    assert_error(harness.run("CHECK", harness.config(version)), {1})


@pytest.mark.requires(lambda v: not has_status_gc(v), "STATUS/GC exist from 1.1.0")
@pytest.mark.requires_plugin(supports_1_1, "plugin does not support spec 1.1.0 (no STATUS/GC)")
@pytest.mark.parametrize("command", ["STATUS", "GC"])
def test_status_gc_below_1_1_0_rejected(harness: Harness, version: str, command: str) -> None:
    assert_error(harness.run(command, harness.config(version)), {1})


def test_add_result_version(harness: Harness, version: str) -> None:
    """ADD prints nothing but one Success result labelled with the request's version."""
    outcome = harness.add(version)
    assert_result(outcome, version, shape=False)
    assert_silent_success(harness.run("DEL", harness.config(version)))


def test_add_result_shape(harness: Harness, version: str) -> None:
    """The ADD result has the request version's shape (schemas in conformance/schemas/)."""
    outcome = harness.add(version)
    assert_result(outcome, version, ipam=harness.profile.is_ipam)
    assert_silent_success(harness.run("DEL", harness.config(version)))


def test_k8s_cni_args_accepted(harness: Harness, version: str) -> None:
    """Kubelet-style CNI_ARGS with IgnoreUnknown=1 must not break ADD."""
    cni_args = (
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=cnf-pod;"
        f"K8S_POD_INFRA_CONTAINER_ID={harness.container_id};K8S_POD_UID=0c7a4d7e-1"
    )
    outcome = harness.add(version, CNI_ARGS=cni_args)
    assert_result(outcome, version, shape=False)
    assert_silent_success(harness.run("DEL", harness.config(version), CNI_ARGS=cni_args))
