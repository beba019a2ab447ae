"""A flannel cluster simulated with namespaces: three nodes on an underlay bridge,
host-gw routes as flanneld would install them, two pods per node networked by
exec'ing ``flannel`` the way kubelet does, then a full teardown.

    underlay ns: bridge ul0 --- node1 (eth0 192.168.77.11) --- cni0 10.244.1.1/24 --- pods
                           |-- node2 (eth0 192.168.77.12) --- cni0 10.244.2.1/24 --- pods
                           |-- node3 ...
                           '-- external host 192.168.77.200

Every namespace is made by the test and deleted at the end, also on failure.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import built_bin_dir, run_plugin

pytestmark = pytest.mark.privileged

NODES = 3
PODS_PER_NODE = 2


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


class Cluster:
    def __init__(self, tmp: Path, bin_dir: Path, ipmasq: bool) -> None:
        self.tag = secrets.token_hex(3)
        self.tmp = tmp
        self.bin = bin_dir
        self.ipmasq = ipmasq
        self.namespaces: list[str] = []
        self.underlay = self.netns("ul")
        sh("ip", "-n", self.underlay, "link", "add", "ul0", "type", "bridge")
        sh("ip", "-n", self.underlay, "link", "set", "ul0", "up")
        self.nodes = [self.netns(f"n{i}") for i in range(1, NODES + 1)]
        for i, node in enumerate(self.nodes, start=1):
            self.plug(node, f"192.168.77.{10 + i}/24", f"u{i}")
            sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            (tmp / node).mkdir()
            (tmp / node / "subnet.env").write_text(
                f"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.{i}.1/24\n"
                f"FLANNEL_MTU=1450\nFLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n"
            )
            for j in range(1, NODES + 1):  # what flanneld's host-gw backend installs
                if j != i:
                    sh(
                        "ip",
                        "-n",
                        node,
                        "route",
                        "add",
                        f"10.244.{j}.0/24",
                        "via",
                        f"192.168.77.{10 + j}",
                    )
        self.external = self.netns("ext")
        self.plug(self.external, "192.168.77.200/24", "uext")
        self.pods: dict[str, tuple[str, str]] = {}  # pod ns -> (node, address)

    def netns(self, role: str) -> str:
        name = f"cnit-{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def plug(self, ns: str, address: str, port: str) -> None:
        sh(
            "ip",
            "-n",
            self.underlay,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            ns,
        )
        sh("ip", "-n", self.underlay, "link", "set", port, "master", "ul0", "up")
        sh("ip", "-n", ns, "addr", "add", address, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def conf(self, node: str) -> str:
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "cbr0",
                "type": "flannel",
                "subnetFile": str(self.tmp / node / "subnet.env"),
                "dataDir": str(self.tmp / node / "flannel"),
                "ipam": {"dataDir": str(self.tmp / node / "ipam")},
                "delegate": {"hairpinMode": True, "isDefaultGateway": True},
            }
        )

    def cni(self, command: str, node: str, pod: str) -> subprocess.CompletedProcess[bytes]:
        env = {
            "CNI_CONTAINERID": f"ctr-{pod}",
            "CNI_NETNS": f"/run/netns/{pod}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.bin),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
        }
        return run_plugin(self.bin / "flannel", command, self.conf(node), env=env, netns_exec=node)

    def add_pod(self, node: str, n: int) -> str:
        pod = self.netns(f"{node[-2:]}p{n}")
        proc = self.cni("ADD", node, pod)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        result = json.loads(proc.stdout)
        address = result["ips"][0]["address"].split("/")[0]
        self.pods[pod] = (node, address)
        return pod

    def ping(self, src_ns: str, address: str) -> bool:
        proc = sh("ip", "netns", "exec", src_ns, "ping", "-c1", "-W2", address, check=False)
        return proc.returncode == 0

    def destroy(self) -> None:
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture(params=[False, True], ids=["flannel-ipmasq-false", "flannel-ipmasq-true"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, script_bin_dir: Path
) -> Iterator[Cluster]:
    if not (script_bin_dir / "bridge").exists():
        pytest.skip("bridge plugin not available yet")
    bin_dir = built_bin_dir() or script_bin_dir
    c = Cluster(tmp_path, bin_dir, ipmasq=request.param)
    try:
        yield c
    finally:
        c.destroy()


def nat_rules(node: str) -> str:
    return sh("ip", "netns", "exec", node, "iptables-save", "-t", "nat").stdout


def test_pods_reach_each_other_across_nodes_and_teardown_is_clean(cluster: Cluster) -> None:
    for node in cluster.nodes:
        for n in range(PODS_PER_NODE):
            cluster.add_pod(node, n)
    addresses = [address for _, address in cluster.pods.values()]
    assert len(set(addresses)) == len(addresses) == NODES * PODS_PER_NODE

    for src in cluster.pods:
        for dst, (_, address) in cluster.pods.items():
            if src != dst:
                assert cluster.ping(src, address), f"{src} cannot reach {dst} ({address})"

    # Out of the cluster: masquerading is the bridge's job only when flanneld doesn't do it.
    for node in cluster.nodes:
        has_chains = ":CNI-" in nat_rules(node)
        assert has_chains == (not cluster.ipmasq)
    if not cluster.ipmasq:
        for pod in cluster.pods:
            assert cluster.ping(pod, "192.168.77.200"), f"{pod} cannot reach the external host"

    for pod, (node, _) in cluster.pods.items():
        proc = cluster.cni("DEL", node, pod)
        assert proc.returncode == 0, proc.stdout.decode()
        assert cluster.cni("DEL", node, pod).returncode == 0  # twice is fine

    for node in cluster.nodes:
        links = sh("ip", "-n", node, "-o", "link", "show").stdout
        assert "veth" not in links
        assert ":CNI-" not in nat_rules(node)
        assert list((cluster.tmp / node / "flannel").iterdir()) == []
        reservations = [
            p.name
            for p in (cluster.tmp / node / "ipam" / "cbr0").iterdir()
            if p.name != "lock" and not p.name.startswith("last_reserved_ip")
        ]
        assert reservations == []
