"""Pods through containerd's CRI plugin, as a kubelet runs them: RunPodSandbox
(the main network and, in parallel, containerd's own ``cni-loopback`` 0.3.1
network; CNI_ARGS with the K8S_POD_* keys; runtimeConfig portMappings with
Go-cased keys, dns and the pod annotations), an app container, PodSandboxStatus,
then StopPodSandbox/RemovePodSandbox, whose DEL gets the cached prevResult."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

from tests.containerd.cri import SANDBOX_READY, PodSpec
from tests.containerd.node import CONTAINERD_MARKS, NODE_IP, POD_SUBNET, Node, subnet_env

pytestmark = CONTAINERD_MARKS

HOST_PORT = 30080


def test_pod_gets_an_address_answers_on_it_and_stop_remove_leaves_nothing(node: Node) -> None:
    spec = PodSpec(
        name="plain",
        dns_servers=["10.96.0.10"],
        dns_searches=["default.svc.cluster.local"],
        dns_options=["ndots:5"],
        annotations={"example.com/owner": "tests"},
    )
    pod = node.run_pod(spec)
    cri = node.cri
    assert cri is not None
    try:
        status = cri.pod_sandbox_status(pod.sandbox_id)
        assert status.state == SANDBOX_READY
        assert ipaddress.ip_address(status.ip) in ipaddress.ip_network(POD_SUBNET)
        assert status.additional_ips == []
        # the address PodSandboxStatus reports is the one host-local reserved for it
        assert node.reservations() == {status.ip: pod.sandbox_id}
        assert node.inventory()["libcni cache"] == [
            f"cbr0-{pod.sandbox_id}-eth0",
            f"cni-loopback-{pod.sandbox_id}-lo",
        ]
        assert node.http_get(status.ip) == "plain"
        # containerd's separate loopback network brought lo up in the pod
        lo = cri.exec_sync(pod.container_id, ["ip", "-o", "link", "show", "lo"])
        assert lo.exit_code == 0 and ",UP," in lo.stdout.decode(), lo
    finally:
        cri.stop_pod_sandbox(pod.sandbox_id)
    # kubelet calls StopPodSandbox more than once; the repeated DEL must succeed
    cri.stop_pod_sandbox(pod.sandbox_id)
    node.assert_clean()
    cri.remove_pod_sandbox(pod.sandbox_id)
    assert pod.sandbox_id not in cri.list_pod_sandboxes()
    node.assert_clean()


def test_host_port_answers_on_node_ip_localhost_and_hairpin(node: Node) -> None:
    """CRI hands portMappings to the plugins with Go's field names (HostPort,
    ContainerPort, Protocol, HostIP): portmap matches them as Go's JSON decoding
    does (spec.gokeys; before, ADD failed with "containerPort: Invalid container
    port number: 0")."""
    spec = PodSpec(name="hostport", ports=[("tcp", 80, HOST_PORT, "")])
    pod = node.run_pod(spec)
    try:
        assert node.http_get(pod.ip) == "hostport"
        assert node.http_get(NODE_IP, HOST_PORT) == "hostport"
        assert node.http_get("127.0.0.1", HOST_PORT) == "hostport"
        assert node.cri is not None
        # hairpin: the pod reaches itself through its own hostPort
        hairpin = node.cri.exec_sync(
            pod.container_id,
            ["timeout", "10", "wget", "-q", "-O", "-", f"http://{NODE_IP}:{HOST_PORT}/"],
        )
        assert (hairpin.exit_code, hairpin.stdout.decode().strip()) == (0, "hostport"), hairpin
    finally:
        node.remove_pod(pod)
    node.assert_clean()


def test_bridge_masquerade_per_pod_is_removed_by_stop(node: Node) -> None:
    """FLANNEL_IPMASQ=false: the bridge delegate masquerades the pod's traffic
    itself; StopPodSandbox's DEL (real netns path, cached prevResult) removes it."""
    node.subnet_env.write_text(subnet_env(ipmasq=False))
    pod = node.run_pod(PodSpec(name="masq"), app=False)
    try:
        nat = node.in_netns("iptables-save", "-t", "nat").stdout.splitlines()
        masq = [line for line in nat if pod.sandbox_id in line and "-j MASQUERADE" in line]
        assert masq, f"no masquerade rule for the pod in {nat}"
    finally:
        node.remove_pod(pod)
    node.assert_clean()


def test_two_pods_reach_each_other_by_pod_ip(node: Node) -> None:
    pods = [node.run_pod(PodSpec(name=name)) for name in ("left", "right")]
    try:
        left, right = pods
        assert left.ip != right.ip
        assert node.reservations() == {left.ip: left.sandbox_id, right.ip: right.sandbox_id}
        assert node.cri is not None
        reply = node.cri.exec_sync(
            left.container_id, ["timeout", "10", "wget", "-q", "-O", "-", f"http://{right.ip}/"]
        )
        assert (reply.exit_code, reply.stdout.decode().strip()) == (0, "right"), reply
    finally:
        for pod in pods:
            node.remove_pod(pod)
    node.assert_clean()


def test_first_pod_after_an_install_unpacks_the_plugins_once(node: Node) -> None:
    """A fresh install (empty unpack cache): the first pod's execs unpack our
    bundle, the next pods reuse it.  Both timings are recorded, not judged."""
    cache = Path(node.env["CNI_PLUGINS_CACHE_DIR"])
    shutil.rmtree(cache)
    cache.mkdir()
    cold = node.run_pod(PodSpec(name="cold"), app=False)
    try:
        assert any(cache.iterdir()), "our flannel ran without filling the unpack cache"
        warm = node.run_pod(PodSpec(name="warm"), app=False)
        node.remove_pod(warm)
    finally:
        node.remove_pod(cold)
    node.assert_clean()
