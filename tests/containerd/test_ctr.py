"""``ctr run --cni``: containerd's own client runs the node's conflist through
go-cni (no loopback call, CNI_ARGS empty, CNI_CONTAINERID ``<namespace>-<id>``,
CNI_NETNS ``/proc/<pid>/ns/net``) and, after the task is killed, DELs with an
empty CNI_NETNS."""

from __future__ import annotations

import ipaddress

import pytest

from tests.containerd.node import CONTAINERD_MARKS, POD_SUBNET, Node

pytestmark = CONTAINERD_MARKS


def test_ctr_run_cni_pod_serves_http_and_its_del_leaves_nothing(node: Node) -> None:
    pod = node.ctr_run("web1")
    try:
        reservations = node.reservations()
        assert list(reservations.values()) == ["default-web1"]
        (ip,) = reservations
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(POD_SUBNET)
        assert node.http_get(ip) == "web1"
        assert node.inventory()["flannel saved configs"] == ["default-web1"]
        assert node.inventory()["libcni cache"] == ["cbr0-default-web1-eth0"]
    finally:
        node.ctr_stop(pod)
    assert pod.process.returncode == 137, pod.output()  # SIGKILLed task; DEL succeeded
    node.assert_clean()


def test_ctr_pods_get_distinct_addresses_and_reach_each_other(node: Node) -> None:
    pods = [node.ctr_run(name) for name in ("web2", "web3")]
    try:
        by_owner = {owner: ip for ip, owner in node.reservations().items()}
        assert sorted(by_owner) == ["default-web2", "default-web3"]
        node.ctr(
            "tasks", "exec", "--exec-id", "probe", "web2",
            "wget", "-q", "-O", "/tmp/page", f"http://{by_owner['default-web3']}/",
        )  # fmt: skip
        page = node.ctr("tasks", "exec", "--exec-id", "probe2", "web2", "cat", "/tmp/page")
        assert page.stdout.strip() == "web3"
    finally:
        for pod in pods:
            node.ctr_stop(pod)
    node.assert_clean()


def test_ctr_run_fails_cleanly_when_a_plugin_is_missing(node: Node) -> None:
    """ADD's first plugin missing: ctr reports it and nothing is allocated."""
    (node.bin_dir / "flannel").unlink()
    with pytest.raises(AssertionError, match='failed to find plugin "flannel"'):
        node.ctr_run("web4")
    node.ctr_pods.pop("web4", None)
    node.ctr("tasks", "delete", "--force", "web4")  # ctr leaves the created task behind
    node.ctr("containers", "delete", "web4")
    node.assert_clean()
