"""dist/bin/cni-doctor on a throwaway node: the problems flannel users report,
seeded into a node namespace, found, repaired where that is safe, and a live
pod's state never touched.

Each test makes a node namespace (the doctor, cnitool and the plugins run in it
through ``ip netns exec``) and pod namespaces, and points every path into its
tmp dir: the conf dir, the bin dir (a copy of dist/bin), libcni's cache,
host-local's and flannel's dataDirs, the subnet file and the bundle's unpack
cache.  Namespaces go at teardown, also on failure.

The pod subnets (10.213.0.0/16, 10.214.88.0/24) are ones no other test uses:
the doctor counts an address configured in *any* namespace of the machine as
its pod alive, and other tests' namespaces are on this machine too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.linux.ipmasq import chain_name, comment
from cni_plugins.portmap.chains import dnat_chain_name
from cni_plugins.tools.cnitool.runtime import container_id_for
from tests.conftest import GO_PLUGINS, built_bin_dir

BIN = built_bin_dir()
pytestmark = [
    pytest.mark.privileged,
    pytest.mark.binaries,
    pytest.mark.skipif(
        BIN is None or not (BIN / "cni-doctor").exists(), reason="dist/bin not built"
    ),
]

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PORTS = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
OLD = time.time() - 3600  # older than the default grace (600 s)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)


class Node:
    def __init__(self, tmp: Path, node: str, make_netns: Callable[[], str]) -> None:
        self.tmp = tmp
        self.ns = Path(node).name
        self.make_netns = make_netns
        self.conf = tmp / "net.d"
        self.conf.mkdir()
        self.bin = tmp / "bin"
        self.bin.mkdir()
        assert BIN is not None
        for binary in BIN.iterdir():
            shutil.copy2(binary, self.bin / binary.name)
        self.cache = tmp / "libcni"
        self.ipam = tmp / "ipam"
        self.flannel = tmp / "flannel"
        self.run_flannel = tmp / "run-flannel"
        self.run_flannel.mkdir()
        self.subnet_env = self.run_flannel / "subnet.env"
        self.subnet_env.write_text(
            "FLANNEL_NETWORK=10.213.0.0/16\nFLANNEL_SUBNET=10.213.71.1/24\n"
            "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"  # ipMasq chains per pod
        )
        conflist = {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "plugins": [
                {
                    "type": "flannel",
                    "subnetFile": str(self.subnet_env),
                    "dataDir": str(self.flannel),
                    "delegate": {"hairpinMode": True, "isDefaultGateway": True},
                    "ipam": {"dataDir": str(self.ipam)},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.conf / "10-flannel.conflist").write_text(json.dumps(conflist, indent=2))
        self.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")

    def env(self) -> dict[str, str]:
        return {
            "PATH": PATH,
            "NETCONFPATH": str(self.conf),
            "CNI_PATH": str(self.bin),
            "CNITOOL_CACHE_DIR": str(self.cache),
            "CNI_PLUGINS_CACHE_DIR": str(self.tmp / "bundle-cache"),
            "CAP_ARGS": json.dumps(PORTS),
        }

    def exec(self, *argv: str) -> str:
        return sh("ip", "netns", "exec", self.ns, *argv).stdout

    def add_pod(self) -> str:
        pod = self.make_netns()
        self.cnitool("add", pod)
        return pod

    def cnitool(self, verb: str, pod: str) -> None:
        argv = ["ip", "netns", "exec", self.ns, str(self.bin / "cnitool"), verb, "cbr0", pod]
        proc = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, (verb, pod, proc.stdout, proc.stderr)

    def doctor(self, *flags: str) -> tuple[int, list[dict[str, Any]], str]:
        argv = [
            "ip", "netns", "exec", self.ns, str(self.bin / "cni-doctor"), "--json",
            "--conf-dir", str(self.conf), "--bin-dir", str(self.bin),
            "--cache-dir", str(self.cache), *flags,
        ]  # fmt: skip
        proc = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
        return proc.returncode, json.loads(proc.stdout)["findings"], proc.stderr

    def reservations(self) -> dict[str, str]:
        """address -> container ID in host-local's store."""
        store = self.ipam / "cbr0"
        if not store.exists():
            return {}
        return {
            p.name: p.read_bytes().decode().split("\r\n")[0]
            for p in store.iterdir()
            if p.name[0].isdigit() and p.name != "lock"
        }

    def age(self, container_id: str) -> None:
        """Make a pod's reservation and saved config older than the grace."""
        for address, owner in self.reservations().items():
            if owner == container_id:
                os.utime(self.ipam / "cbr0" / address, (OLD, OLD))
        saved = self.flannel / container_id
        if saved.exists():
            os.utime(saved, (OLD, OLD))

    def nat(self) -> str:
        return self.exec("iptables-save", "-t", "nat")


@pytest.fixture
def node(tmp_path: Path, make_netns: Callable[[], str]) -> Iterator[Node]:
    yield Node(tmp_path, make_netns(), make_netns)


def checks(findings: list[dict[str, Any]]) -> set[str]:
    return {f["check"] for f in findings if not f["repaired"]}


def seed_orphan_chains(node: Node, container_id: str) -> tuple[str, str]:
    """A pod's ipMasq and portmap chains whose pod (and every other trace of
    it) is gone, as a DEL that never came leaves them."""
    masq, dnat = chain_name("cbr0", container_id), dnat_chain_name("cbr0", container_id)
    note = comment("cbr0", container_id).replace('"', '\\"')
    rules = (
        "*nat\n"
        f":{masq} - [0:0]\n:{dnat} - [0:0]\n"
        f'-A POSTROUTING -s 10.213.71.77/32 -m comment --comment "{note}" -j {masq}\n'
        f'-A {masq} -d 10.213.71.0/24 -m comment --comment "{note}" -j ACCEPT\n'
        f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"cbr0\\" id: '
        f'\\"{container_id}\\"" -m multiport --dports 9090 -j {dnat}\n'
        f"-A {dnat} -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.213.71.77:80\n"
        "COMMIT\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", node.ns, "iptables-restore", "--noflush"],
        input=rules, text=True, check=True, capture_output=True,
    )  # fmt: skip
    return masq, dnat


def test_a_healthy_node_is_clean(node: Node) -> None:
    pod = node.add_pod()
    node.age(container_id_for(pod))  # an old live pod stays a live pod
    status, findings, _ = node.doctor("--repair")
    assert [f for f in findings if f["check"] != "sysctls"] == []
    assert status in (0, 1)  # br_netfilter is the host's (a warning at most)
    assert {f["subject"] for f in findings} <= {
        "br_netfilter",
        "net.bridge.bridge-nf-call-iptables",
    }


def test_seeded_problems_are_found_repaired_and_the_live_pod_is_untouched(node: Node) -> None:
    live = node.add_pod()
    leaked = node.add_pod()
    live_id, leaked_id = container_id_for(live), container_id_for(leaked)
    # a reboot for one pod: its netns is gone, its reservation, saved flannel
    # config, cache entry and chains are left
    sh("ip", "netns", "del", Path(leaked).name)
    node.age(leaked_id)
    node.age(live_id)
    orphan = seed_orphan_chains(node, "f" * 64)
    shutil.copy2(node.bin / "loopback", node.conf / "loopback")  # host-cni-bin at the conf dir
    node.subnet_env.unlink()  # flanneld not up
    node.exec("sysctl", "-qw", "net.ipv4.ip_forward=0")
    before_live = {a: c for a, c in node.reservations().items() if c == live_id}
    live_nat = [ln for ln in node.nat().splitlines() if live_id in ln]
    assert before_live and live_nat

    status, findings, _ = node.doctor()
    assert status == 1
    found = checks(findings)
    assert {"leaked-reservation", "orphan-chains", "binaries", "subnet-file", "sysctls"} <= found
    leak = next(f for f in findings if f["check"] == "leaked-reservation")
    assert leak["subject"] == f"container {leaked_id}" and leak["severity"] == "error"
    assert not any(live_id in f["subject"] for f in findings)
    subnet = next(f for f in findings if f["check"] == "subnet-file")
    assert "flanneld is not up yet" in subnet["message"]
    assert any(f["subject"] == "net.ipv4.ip_forward" for f in findings)
    assert any(f["subject"] == str(node.conf) and "loopback" in f["message"] for f in findings)

    status, findings, log = node.doctor("--repair")
    assert status == 1  # what needs a person is left
    repaired = {f["check"] for f in findings if f["repaired"]}
    assert {"leaked-reservation", "orphan-chains"} <= repaired, findings
    assert f"released {leaked_id}" in log
    assert leaked_id not in node.reservations().values()
    assert not (node.flannel / leaked_id).exists()
    assert not any(leaked_id in p.name for p in (node.cache / "results").iterdir())
    nat = node.nat()
    assert leaked_id not in nat and orphan[0] not in nat and orphan[1] not in nat
    # the live pod: reservation, saved config, cache entry, chains, address
    assert {a: c for a, c in node.reservations().items() if c == live_id} == before_live
    assert (node.flannel / live_id).exists()
    assert any(live_id in p.name for p in (node.cache / "results").iterdir())
    assert [ln for ln in nat.splitlines() if live_id in ln] == live_nat
    pod_addrs = sh("ip", "-n", Path(live).name, "-o", "-4", "addr").stdout
    assert next(iter(before_live)) in pod_addrs

    status, findings, _ = node.doctor("--repair")
    assert status == 1
    assert checks(findings) <= {"binaries", "subnet-file", "sysctls"}
    assert not any(f["repaired"] for f in findings)  # idempotent: nothing more to do


def test_stale_bridge_address_without_pods_is_readdressed(node: Node) -> None:
    node.exec("ip", "link", "add", "cni0", "type", "bridge")
    node.exec("ip", "addr", "add", "10.213.79.1/24", "dev", "cni0")
    status, findings, _ = node.doctor()
    assert status == 1
    stale = next(f for f in findings if f["check"] == "bridge")
    assert "10.213.79.1/24" in stale["message"] and stale["severity"] == "error"
    status, findings, _ = node.doctor("--repair")
    assert next(f for f in findings if f["check"] == "bridge")["repaired"]
    assert "10.213.79.1" not in node.exec("ip", "-o", "addr", "show", "cni0")
    node.add_pod()  # the ADD that failed before works now
    _, findings, _ = node.doctor()
    assert "bridge" not in checks(findings)


def test_stale_bridge_address_with_pods_names_them(node: Node) -> None:
    pod = node.add_pod()
    node.subnet_env.write_text(  # the node got a new lease
        "FLANNEL_NETWORK=10.213.0.0/16\nFLANNEL_SUBNET=10.213.72.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    status, findings, _ = node.doctor("--repair")
    assert status == 1
    stale = next(f for f in findings if f["check"] == "bridge")
    assert not stale["repaired"]
    assert container_id_for(pod)[:12] in stale["message"] and "port(s)" in stale["message"]
    assert "10.213.71.1/24" in node.exec("ip", "-o", "addr", "show", "cni0")


def test_plugins_in_the_conf_dir_are_named(node: Node) -> None:
    shutil.move(node.bin / "portmap", node.conf / "portmap")
    status, findings, _ = node.doctor("--repair")
    assert status == 1
    missing = next(f for f in findings if f["subject"] == "portmap")
    assert "failed to find plugin" in missing["message"] and str(node.conf) in missing["message"]
    assert not missing["repaired"]


def test_missing_subnet_dir_means_the_mount(node: Node) -> None:
    shutil.rmtree(node.run_flannel)
    _, findings, _ = node.doctor()
    subnet = next(f for f in findings if f["check"] == "subnet-file")
    assert "not mounted" in subnet["message"]


def test_young_leaks_are_kept_until_the_grace_passes(node: Node) -> None:
    pod = node.add_pod()
    cid = container_id_for(pod)
    sh("ip", "netns", "del", Path(pod).name)
    _, findings, _ = node.doctor("--repair")
    assert "leaked-reservation" not in {f["check"] for f in findings}
    assert cid in node.reservations().values()
    _, findings, _ = node.doctor("--repair", "--grace", "0")
    assert "leaked-reservation" in {f["check"] for f in findings if f["repaired"]}
    assert cid not in node.reservations().values()


def test_cri_socket_without_a_sandbox_list_releases_nothing(node: Node) -> None:
    pod = node.add_pod()
    cid = container_id_for(pod)
    sh("ip", "netns", "del", Path(pod).name)
    node.age(cid)
    socket = str(node.tmp / "no.sock")
    _, findings, _ = node.doctor("--repair", "--cri-socket", socket)
    [leak] = [f for f in findings if f["check"] == "leaked-reservation"]
    assert leak["subject"] == socket and leak["severity"] == "warning"
    assert "nothing is released" in leak["message"] and not leak["repaired"]
    assert cid in node.reservations().values()


def test_usage_errors_exit_2(node: Node) -> None:
    for flags in (["--grace", "soon"], ["--bogus"], ["--conf-dir"]):
        proc = subprocess.run(
            [str(node.bin / "cni-doctor"), *flags], capture_output=True, text=True,
            env=node.env(), check=False, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 2, (flags, proc.stderr)
        assert "usage: cni-doctor" in proc.stderr


PODS = 100


def test_reclaim_never_releases_a_live_pod_with_100_adds_in_flight(node: Node) -> None:
    """A simulated reboot leaves 5 pods' state behind; then 100 pod ADDs are
    started in batches of 10, each batch once the reclaim (running over and
    over with --grace 0) has finished another pass, so passes overlap ADDs in
    flight: every leak goes, every pod that
    was added keeps its address."""
    dead = [node.add_pod() for _ in range(5)]
    for pod in dead:
        sh("ip", "netns", "del", Path(pod).name)
    dead_ids = {container_id_for(p) for p in dead}
    pods = [node.make_netns() for _ in range(PODS)]
    stop = threading.Event()
    runs: list[int] = []
    logs: list[tuple[list[dict[str, Any]], str]] = []

    def reclaim_loop() -> None:
        while not stop.is_set():
            status, found, log = node.doctor("--reclaim-only", "--repair", "--grace", "0")
            runs.append(status)
            logs.append((found, log))

    reclaimer = threading.Thread(target=reclaim_loop)
    reclaimer.start()
    failed = []
    try:
        argv = [str(node.bin / "cnitool"), "add", "cbr0"]
        procs = []
        for i, pod in enumerate(pods):
            if i % 10 == 0:  # a new batch once the reclaim has run again
                seen = len(runs)
                deadline = time.monotonic() + 60
                while len(runs) == seen and time.monotonic() < deadline:
                    time.sleep(0.05)
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", node.ns, *argv, pod],
                    env=node.env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        for proc, pod in zip(procs, pods, strict=True):
            _out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                failed.append((pod, err.decode()))
        during = len(runs)
    finally:
        stop.set()
        reclaimer.join(timeout=600)
    assert not failed, failed[:3]
    assert during >= 10, runs  # the reclaim ran again and again while ADDs were in flight
    held = node.reservations()
    owners = set(held.values())
    assert not owners & dead_ids
    for pod in pods:
        cid = container_id_for(pod)
        assert cid in owners, (cid, [log for _f, log in logs if cid in log])
        mine = [a for a, c in held.items() if c == cid]
        addrs = sh("ip", "-n", Path(pod).name, "-o", "-4", "addr").stdout
        assert all(a in addrs for a in mine)
        assert (node.flannel / cid).exists()
    # one more pass after the storm: nothing of a live pod is reclaimable
    status, findings, _ = node.doctor("--reclaim-only", "--repair", "--grace", "0")
    assert findings == [] and status == 0
    assert set(node.reservations().values()) == owners


@pytest.mark.reference
def test_leaks_of_the_go_plugins_are_found_and_released(
    tmp_path: Path, make_netns: Callable[[], str]
) -> None:
    """The same contract on Debian's Go bridge, host-local and portmap (Debian
    has no Go flannel): a reboot's leak is found, released through the Go
    plugins' own DEL (plus the chains the Go bridge leaves on a DEL without
    netns), and the live pod keeps everything."""
    node = Node(tmp_path, make_netns(), make_netns)
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        (node.bin / plugin).unlink()
        shutil.copy2(GO_PLUGINS / plugin, node.bin / plugin)
    conflist = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "subnet": "10.214.88.0/24",
                    "dataDir": str(node.ipam),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (node.conf / "10-flannel.conflist").write_text(json.dumps(conflist))
    live, leaked = node.add_pod(), node.add_pod()
    live_id, leaked_id = container_id_for(live), container_id_for(leaked)
    sh("ip", "netns", "del", Path(leaked).name)
    node.age(leaked_id)
    node.age(live_id)
    live_nat = sorted(ln for ln in node.nat().splitlines() if live_id in ln)
    assert live_nat

    status, findings, _ = node.doctor()
    assert status == 1
    assert [f["subject"] for f in findings] == [f"container {leaked_id}"]

    status, findings, _ = node.doctor("--repair")
    assert all(f["repaired"] for f in findings) and status == 0, findings
    assert set(node.reservations().values()) == {live_id}
    nat = node.nat()
    assert leaked_id not in nat
    assert sorted(ln for ln in nat.splitlines() if live_id in ln) == live_nat
    assert node.doctor() == (0, [], "")


def test_orphan_nftables_rules_are_removed(node: Node) -> None:
    """portmap's and ipMasq's nftables backends keep per-pod rules, not chains."""
    live = node.add_pod()
    live_id = container_id_for(live)
    dead = "d" * 64
    hostports = "add rule ip cni_hostport hostports tcp dport"
    script = (
        "add table ip cni_hostport\n"
        "add chain ip cni_hostport hostports\n"
        f'{hostports} 9091 dnat to 10.213.71.78:80 comment "{dead}"\n'
        f'{hostports} 9092 dnat to 10.213.71.2:80 comment "{live_id}"\n'
        "add table inet cni_plugins_masquerade\n"
        "add chain inet cni_plugins_masquerade masq_checks\n"
        "add rule inet cni_plugins_masquerade masq_checks ip saddr 10.213.71.78 masquerade"
        f' comment "0123-4567, net: cbr0, if: eth0, id: {dead}"\n'
    )
    subprocess.run(
        ["ip", "netns", "exec", node.ns, "nft", "-f", "-"],
        input=script, text=True, check=True, capture_output=True,
    )  # fmt: skip
    status, findings, _ = node.doctor()
    assert status == 1
    [orphan] = [f for f in findings if f["subject"].startswith("nftables")]
    assert "2 per-pod rule(s)" in orphan["message"] and dead[:12] in orphan["message"]
    status, findings, _ = node.doctor("--repair")
    assert status == 0 and all(f["repaired"] for f in findings), findings
    ruleset = node.exec("nft", "list", "ruleset")
    assert dead not in ruleset and live_id in ruleset
    assert node.doctor() == (0, [], "")
