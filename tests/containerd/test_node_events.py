"""What a node lives through: a burst of pod starts, containerd crashing under
running pods, ADDs that fail half-way and the kubelet's retries, and an upgrade
or rollback of the plugin binaries while pods run."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tests.containerd.conftest import other_set, plugin_set
from tests.containerd.cri import SANDBOX_READY, PodSpec
from tests.containerd.node import (
    CONTAINERD_MARKS,
    CriPod,
    Node,
    shipped_conflist,
)

pytestmark = CONTAINERD_MARKS

# A plugin that fails every ADD and accepts every DEL: put second in a conflist,
# the ADD fails after flannel has set the pod up, and the runtime must undo it.
FAIL_ADD = """#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":100,"msg":"fail-add: refusing ADD"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}' ;;
esac
"""


def conflist_with_second_plugin(plugin: dict[str, object]) -> str:
    conf = json.loads(shipped_conflist())
    conf["plugins"][1] = plugin
    return json.dumps(conf)


def test_twenty_sandboxes_started_concurrently(node: Node) -> None:
    specs = [PodSpec(name=f"burst-{i}") for i in range(20)]
    with ThreadPoolExecutor(len(specs)) as pool:
        pods = list(pool.map(lambda spec: node.run_pod(spec, app=False), specs))
    try:
        ips = [pod.ip for pod in pods]
        assert len(set(ips)) == 20, ips
        assert node.reservations() == {pod.ip: pod.sandbox_id for pod in pods}
        assert len(node.inventory()["veths"]) == 20
    finally:
        with ThreadPoolExecutor(len(pods)) as pool:
            list(pool.map(node.remove_pod, pods))
    node.assert_clean()


def test_containerd_killed_and_restarted_with_pods_running(node: Node) -> None:
    pods = [node.run_pod(PodSpec(name=name)) for name in ("survivor-a", "survivor-b")]
    try:
        node.kill_containerd()
        # the pods' network does not depend on containerd running
        assert [node.http_get(pod.ip) for pod in pods] == ["survivor-a", "survivor-b"]
        node.start_containerd()
        assert node.cri is not None
        for pod in pods:
            status = node.cri.pod_sandbox_status(pod.sandbox_id)
            assert (status.state, status.ip) == (SANDBOX_READY, pod.ip)
        assert node.reservations() == {pod.ip: pod.sandbox_id for pod in pods}
        assert [node.http_get(pod.ip) for pod in pods] == ["survivor-a", "survivor-b"]
    finally:
        for pod in pods:
            node.remove_pod(pod)
    node.assert_clean()


def _retry_until_the_config_is_fixed(node: Node, spec: PodSpec, error: str) -> None:
    """Three kubelet attempts against the broken conflist: each fails, and the
    runtime's DEL after the failed ADD leaves nothing.  Then the conflist is
    fixed and the next attempt gets exactly one address."""
    assert node.cri is not None
    for attempt in range(3):
        spec.attempt = attempt
        with pytest.raises(grpc.RpcError) as failure:
            node.run_pod(spec, app=False)
        assert error in str(failure.value.details())
        # the failed sandbox stays listed (NOTREADY) until the kubelet removes it
        for sandbox in node.cri.list_pod_sandboxes():
            node.cri.stop_pod_sandbox(sandbox)
            node.cri.remove_pod_sandbox(sandbox)
        node.assert_clean()
    node.write_conflist(shipped_conflist())
    node.restart_containerd()
    spec.attempt = 3
    pod = node.run_pod(spec, app=False)
    try:
        assert node.reservations() == {pod.ip: pod.sandbox_id}
    finally:
        node.remove_pod(pod)
    node.assert_clean()


def test_second_plugin_failing_add_is_rolled_back_and_retried(node: Node) -> None:
    fail_add = node.bin_dir / "fail-add"
    fail_add.write_text(FAIL_ADD)
    fail_add.chmod(0o755)
    node.write_conflist(conflist_with_second_plugin({"type": "fail-add"}))
    node.restart_containerd()
    _retry_until_the_config_is_fixed(node, PodSpec(name="retried"), "fail-add: refusing ADD")


def test_portmap_with_a_bad_condition_fails_add_and_is_rolled_back(node: Node) -> None:
    """portmap's ADD fails when iptables rejects its extra match; its DEL (and
    flannel's) must still undo the pod.  Needs CRI's Go-cased portMappings keys
    understood by our portmap."""
    node.write_conflist(
        conflist_with_second_plugin(
            {
                "type": "portmap",
                "capabilities": {"portMappings": True},
                "conditionsV4": ["-m", "cnit-no-such-match"],
            }
        )
    )
    node.restart_containerd()
    spec = PodSpec(name="badportmap", ports=[("tcp", 80, 30081, "")])
    _retry_until_the_config_is_fixed(node, spec, 'plugin type="portmap" failed (add)')


def _start_pods(node: Node, prefix: str) -> tuple[list[CriPod], list[str]]:
    cri = [node.run_pod(PodSpec(name=f"{prefix}-{i}")) for i in range(2)]
    ctr = node.ctr_run(f"{prefix}-ctr")
    return cri, [ctr.name]


def _assert_serving(node: Node, pods: list[CriPod], ctr_names: list[str]) -> None:
    for pod in pods:
        assert node.http_get(pod.ip) == pod.spec.name
    owners = {owner: ip for ip, owner in node.reservations().items()}
    for name in ctr_names:
        assert node.http_get(owners[f"default-{name}"]) == name


def _remove(node: Node, pods: list[CriPod], ctr_names: list[str]) -> None:
    for pod in pods:
        node.remove_pod(pod)
    for name in ctr_names:
        node.ctr_stop(node.ctr_pods[name])


def test_switching_binaries_under_running_pods(node: Node) -> None:
    """Pods created by one binary set are deleted by the other, both ways
    (ours -> Go on the ours node, Go -> ours on the Go node)."""
    own, other = plugin_set(node.label), plugin_set(other_set(node.label))
    first = _start_pods(node, "before")
    node.install_plugins(other)
    _assert_serving(node, *first)
    second = _start_pods(node, "after")
    _remove(node, *first)
    assert sorted(node.reservations().values()) == sorted(
        [p.sandbox_id for p in second[0]] + ["default-after-ctr"]
    )
    node.install_plugins(own)
    _assert_serving(node, *second)
    _remove(node, *second)
    node.assert_clean()
