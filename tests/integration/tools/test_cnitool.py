"""dist/bin/cnitool driving real plugins in throw-away namespaces, and against a
reference: tests/reference/cnitool_ref.go, upstream cnitool's command line on
Debian's libcni (golang-github-appc-cni-dev 1.1.2), built offline here.

Each test makes a node namespace (cnitool runs in it through ``ip netns exec``,
as the plugins would under a runtime there) and a pod namespace, and points
every cache at its tmp dir: the bundle's (CNI_PLUGINS_CACHE_DIR), libcni's
(CNITOOL_CACHE_DIR), host-local's and flannel's.  Namespaces go at teardown.

The plugin sets: ours through a flannel + portmap list (flannel delegating to
our bridge and host-local), and Debian's Go plugins through bridge + host-local
+ portmap (Debian has no Go flannel).  With the reference, one round is ADD by
one tool, CHECK and DEL by the other, then the other way round: both rounds
must give the same result (up to the random MACs and host veth name), the
same cache file, and a node left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.tools.cnitool.runtime import container_id_for
from tests.conftest import GO_PLUGINS, REPO, built_bin_dir

BIN = built_bin_dir()
pytestmark = [
    pytest.mark.privileged,
    pytest.mark.binaries,
    pytest.mark.skipif(BIN is None or not (BIN / "cnitool").exists(), reason="dist/bin not built"),
]

LIBCNI = Path("/usr/share/gocode/src/github.com/containernetworking/cni/libcni")
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PORTS = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}


@pytest.fixture(scope="session")
def go_cnitool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference, built with Debian's Go and libcni sources, no network."""
    go = shutil.which("go")
    if go is None or not LIBCNI.is_dir():
        pytest.skip("needs golang-go and golang-github-appc-cni-dev (scripts/setup.sh)")
    work = tmp_path_factory.mktemp("cnitool-ref")
    env = {
        "PATH": PATH,
        "HOME": str(work),
        "GO111MODULE": "off",
        "GOPATH": "/usr/share/gocode",
        "GOCACHE": str(work / "gocache"),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    out = work / "cnitool-ref"
    source = REPO / "tests" / "reference" / "cnitool_ref.go"
    subprocess.run([go, "build", "-o", str(out), str(source)], env=env, check=True)
    shutil.rmtree(work / "gocache", ignore_errors=True)
    return out


class Node:
    """A node namespace, a pod namespace and one network list file."""

    def __init__(self, tmp: Path, node: str, pod: str, conflist: dict[str, Any]) -> None:
        self.tmp = tmp
        self.name = Path(node).name
        self.pod = pod
        self.network = conflist["name"]
        self.netconf = tmp / "net.d"
        self.netconf.mkdir()
        (self.netconf / "10-test.conflist").write_text(json.dumps(conflist, indent=2))
        self.cache = tmp / "libcni"
        self.cid = container_id_for(pod)

    def cnitool(
        self, tool: Path, verb: str, cni_path: Path, **env: str
    ) -> subprocess.CompletedProcess[str]:
        full = {
            "PATH": PATH,
            "NETCONFPATH": str(self.netconf),
            "CNI_PATH": str(cni_path),
            "CNITOOL_CACHE_DIR": str(self.cache),
            "CNI_PLUGINS_CACHE_DIR": str(self.tmp / "bundle-cache"),
            "CAP_ARGS": json.dumps(PORTS),
            **env,
        }
        argv = ["ip", "netns", "exec", self.name, str(tool), verb, self.network, self.pod]
        return subprocess.run(
            argv, env=full, capture_output=True, text=True, timeout=120, check=False
        )

    def ok(self, tool: Path, verb: str, cni_path: Path) -> str:
        proc = self.cnitool(tool, verb, cni_path)
        assert proc.returncode == 0, (tool.name, verb, proc.stdout, proc.stderr)
        return proc.stdout

    def cache_files(self) -> list[str]:
        results = self.cache / "results"
        return sorted(os.listdir(results)) if results.exists() else []

    def sh(self, *argv: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], check=True, capture_output=True, text=True
        ).stdout

    def leftovers(self) -> list[str]:
        """What an attachment leaves on the node and in the pod: links, per-pod
        NAT chains and rules, host-local reservations."""
        found = [
            f"node link {ln}" for ln in self.sh("ip", "-o", "link").splitlines() if "veth" in ln
        ]
        pod_links = subprocess.run(
            ["ip", "-n", Path(self.pod).name, "-o", "link"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        found += [f"pod link {ln}" for ln in pod_links.splitlines() if "eth0" in ln]
        rules = self.sh("iptables-save", "-t", "nat") + self.sh("nft", "list", "ruleset")
        found += [ln for ln in rules.splitlines() if "CNI-DN-" in ln or self.cid in ln]
        ipam = self.tmp / "ipam"
        if ipam.exists():
            found += [
                str(p)
                for p in ipam.rglob("*")
                if p.is_file() and p.name != "lock" and not p.name.startswith("last_reserved_ip")
            ]
        return found


@pytest.fixture
def make_node(
    tmp_path: Path, make_netns: Callable[[], str]
) -> Iterator[Callable[[dict[str, Any]], Node]]:
    def make(conflist: dict[str, Any]) -> Node:
        return Node(tmp_path, make_netns(), make_netns(), conflist)

    yield make


def flannel_list(tmp: Path) -> dict[str, Any]:
    (tmp / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    return {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "plugins": [
            {
                "type": "flannel",
                "subnetFile": str(tmp / "subnet.env"),
                "dataDir": str(tmp / "flannel"),
                "delegate": {"hairpinMode": True, "isDefaultGateway": True},
                "ipam": {"dataDir": str(tmp / "ipam")},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def bridge_list(tmp: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "gonet",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "subnet": "10.88.0.0/24",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(tmp / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def normalized(result: dict[str, Any]) -> dict[str, Any]:
    """Without what differs between two ADDs of the same pod: the random MACs
    and host veth name; and without libcni 1.1.2's empty ``"dns": {}`` (current
    upstream omits it, as we do)."""
    out: dict[str, Any] = json.loads(json.dumps(result))
    for iface in out.get("interfaces", []):
        iface.pop("mac", None)
        if "sandbox" not in iface and iface["name"].startswith("veth"):
            iface["name"] = "veth*"
    if out.get("dns") == {}:
        del out["dns"]
    return out


def cached(node: Node) -> dict[str, Any]:
    (name,) = node.cache_files()
    raw: dict[str, Any] = json.loads((node.cache / "results" / name).read_text())
    raw["result"] = normalized(raw["result"])
    raw.pop("netns", None)  # current libcni writes it, 1.1.2 did not
    return raw


def assert_upstream_print(out: str) -> None:
    """Go's Result.Print: MarshalIndent with 4 spaces, no trailing newline."""
    assert out == json.dumps(json.loads(out), indent=4)


def test_our_plugins_through_flannel_and_portmap(
    tmp_path: Path, make_node: Callable[[dict[str, Any]], Node]
) -> None:
    assert BIN is not None
    node = make_node(flannel_list(tmp_path))
    out = node.ok(BIN / "cnitool", "add", BIN)
    assert_upstream_print(out)
    result = json.loads(out)
    assert result["cniVersion"] == "1.0.0"
    assert [ip["address"] for ip in result["ips"]] == ["10.244.7.2/24"]
    assert node.cache_files() == [f"cbr0-{node.cid}-eth0"]
    entry = json.loads((node.cache / "results" / node.cache_files()[0]).read_text())
    assert entry["capabilityArgs"] == PORTS and entry["netns"] == node.pod
    assert entry["result"] == json.loads(json.dumps(result, sort_keys=True))
    assert (
        node.sh("iptables-save", "-t", "nat").count("CNI-DN-")
        + node.sh("nft", "list", "ruleset").count(node.cid)
        > 0
    ), "portmap got its runtimeConfig"
    node.ok(BIN / "cnitool", "check", BIN)
    assert node.ok(BIN / "cnitool", "del", BIN) == ""
    assert node.leftovers() == []
    assert node.cache_files() == []
    assert list((tmp_path / "flannel").iterdir()) == []
    # a second DEL finds nothing to do and still succeeds, like libcni's
    assert node.ok(BIN / "cnitool", "del", BIN) == ""


def test_the_binary_passes_install_cnis_version_check(tmp_path: Path) -> None:
    """install-cni.sh installs every binary of dist/bin after a VERSION call."""
    assert BIN is not None
    env = {"PATH": PATH, "CNI_COMMAND": "VERSION", "CNI_PLUGINS_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [str(BIN / "cnitool")],
        input=b'{"cniVersion":"1.1.0"}',
        env=env,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1.1.0" in json.loads(proc.stdout)["supportedVersions"]
    usage = subprocess.run(
        [str(BIN / "cnitool")], env=env | {"CNI_COMMAND": ""}, capture_output=True, check=False
    )
    assert usage.returncode == 1 and b"<net> <netns>" in usage.stderr


def test_gc_releases_every_cached_attachment_and_status_asks_the_plugins(
    tmp_path: Path, make_node: Callable[[dict[str, Any]], Node]
) -> None:
    """libcni 1.1.2 has neither verb: these run against our plugins only."""
    assert BIN is not None
    node = make_node(dict(flannel_list(tmp_path), cniVersion="1.1.0"))
    assert node.ok(BIN / "cnitool", "status", BIN) == ""
    node.ok(BIN / "cnitool", "add", BIN)
    assert node.cache_files() == [f"cbr0-{node.cid}-eth0"]
    assert node.ok(BIN / "cnitool", "gc", BIN) == ""
    assert node.cache_files() == []
    assert node.leftovers() == []
    (tmp_path / "subnet.env").unlink()  # flanneld has not written its lease
    proc = node.cnitool(BIN / "cnitool", "status", BIN)
    assert proc.returncode == 1 and "subnet.env" in proc.stderr, proc.stderr


def test_check_without_an_add_is_the_plugins_error(
    tmp_path: Path, make_node: Callable[[dict[str, Any]], Node]
) -> None:
    assert BIN is not None
    node = make_node(flannel_list(tmp_path))
    proc = node.cnitool(BIN / "cnitool", "check", BIN)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip(), "the plugin's error is printed"
    unknown = node.cnitool(BIN / "cnitool", "add", BIN, NETCONFPATH=str(tmp_path / "none"))
    assert (unknown.returncode, unknown.stderr) == (
        1,
        f"no net configurations found in {tmp_path / 'none'}\n",
    )
    assert node.cache_files() == []


@pytest.mark.reference
@pytest.mark.parametrize("plugins", ["ours-flannel", "go-bridge"])
def test_the_reference_and_ours_agree_and_share_the_cache(
    tmp_path: Path,
    make_node: Callable[[dict[str, Any]], Node],
    go_cnitool: Path,
    plugins: str,
) -> None:
    assert BIN is not None
    if plugins == "go-bridge":
        if not (GO_PLUGINS / "bridge").exists():
            pytest.skip("needs Debian's Go plugins")
        node, cni_path = make_node(bridge_list(tmp_path)), GO_PLUGINS
    else:
        node, cni_path = make_node(flannel_list(tmp_path)), BIN
    tools = {"ours": BIN / "cnitool", "go": go_cnitool}
    results: dict[str, dict[str, Any]] = {}
    caches: dict[str, dict[str, Any]] = {}
    for adder, other in (("go", "ours"), ("ours", "go")):
        out = node.ok(tools[adder], "add", cni_path)
        results[adder] = json.loads(out)
        caches[adder] = cached(node)
        assert node.cache_files() == [f"{node.network}-{node.cid}-eth0"]
        checks = [node.cnitool(tools[t], "check", cni_path) for t in (other, adder)]
        assert checks[0].returncode == checks[1].returncode
        assert checks[0].stderr == checks[1].stderr
        if plugins == "go-bridge":
            # Debian's Go portmap (1.1.1) fails CHECK on every v4-only pod
            # (fixed upstream in v1.6.0): the error reaches the user verbatim.
            assert checks[0].returncode == 1
            assert checks[0].stderr.startswith("could not check ipv6 dnat: ")
        else:
            assert checks[0].returncode == 0, checks[0].stderr
        assert node.ok(tools[other], "del", cni_path) == ""
        assert node.cache_files() == []
        assert node.leftovers() == []
        shutil.rmtree(tmp_path / "ipam")  # the next ADD gets the same address
    assert_upstream_print(node.ok(tools["ours"], "add", cni_path))
    node.ok(tools["ours"], "del", cni_path)
    assert normalized(results["ours"]) == normalized(results["go"])
    assert caches["ours"] == caches["go"]
    assert caches["ours"]["kind"] == "cniCacheV1" and caches["ours"]["containerId"] == node.cid


@pytest.mark.reference
@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (("add", "n", "/run/netns/none"), {}),
        (("add", "zz", "/run/netns/none"), {}),
        (("check", "old", "/run/netns/none"), {}),
        (("del", "n", "/run/netns/none"), {}),
        (("add", "n", "/run/netns/none"), {"CNI_ARGS": "a=b;c"}),
        (("add", "n", "/run/netns/none"), {"CAP_ARGS": "{nope"}),
    ],
)
def test_errors_read_as_the_references(
    tmp_path: Path, go_cnitool: Path, argv: tuple[str, ...], env: dict[str, str]
) -> None:
    assert BIN is not None
    (tmp_path / "net.d").mkdir()
    for name, version in (("n", "1.0.0"), ("old", "0.3.1")):
        (tmp_path / "net.d" / f"{name}.conflist").write_text(
            json.dumps({"cniVersion": version, "name": name, "plugins": [{"type": "nosuch"}]})
        )
    full = {
        "PATH": PATH,
        "NETCONFPATH": str(tmp_path / "net.d"),
        "CNI_PATH": f"{GO_PLUGINS}:{tmp_path}",
        "CNITOOL_CACHE_DIR": str(tmp_path / "libcni"),
        "CNI_PLUGINS_CACHE_DIR": str(tmp_path / "bundle-cache"),
        **env,
    }
    procs = [
        subprocess.run([str(t), *argv], env=full, capture_output=True, text=True, check=False)
        for t in (go_cnitool, BIN / "cnitool")
    ]
    assert procs[0].returncode == procs[1].returncode == 1
    if "CAP_ARGS" in env:  # Go's and Python's JSON parsers word it differently
        assert procs[1].stderr.startswith("CAP_ARGS: ")
    else:
        assert procs[1].stderr == procs[0].stderr
    assert procs[0].stdout == procs[1].stdout == ""
    assert not (tmp_path / "libcni").exists()


@pytest.mark.reference
@pytest.mark.parametrize("case", ["folded", "mapkeys"])
def test_plugin_keys_fold_list_keys_do_not_as_in_libcni(
    tmp_path: Path, go_cnitool: Path, case: str
) -> None:
    """libcni decodes each plugin into types.PluginConf (keys fold) but the
    list into a map (keys exact): ``Type`` names the plugin, ``Plugins`` is
    not the plugin list."""
    assert BIN is not None
    (tmp_path / "net.d").mkdir()
    conf = (
        {"cniVersion": "1.0.0", "name": "n", "plugins": [{"Type": "nosuch", "NAME": "x"}]}
        if case == "folded"
        else {"cniVersion": "1.0.0", "name": "n", "Plugins": [{"type": "nosuch"}]}
    )
    (tmp_path / "net.d" / "n.conflist").write_text(json.dumps(conf))
    full = {
        "PATH": PATH,
        "NETCONFPATH": str(tmp_path / "net.d"),
        "CNI_PATH": f"{GO_PLUGINS}:{tmp_path}",
        "CNITOOL_CACHE_DIR": str(tmp_path / "libcni"),
        "CNI_PLUGINS_CACHE_DIR": str(tmp_path / "bundle-cache"),
    }
    go, ours = (
        subprocess.run(
            [str(t), "add", "n", "/run/netns/none"],
            env=full,
            capture_output=True,
            text=True,
            check=False,
        )
        for t in (go_cnitool, BIN / "cnitool")
    )
    assert go.returncode == ours.returncode == 1
    if case == "folded":
        assert ours.stderr == go.stderr
        # "Type" and "NAME" were read: libcni names the plugin by both
        assert ours.stderr.startswith('plugin type="nosuch" name="x" failed (add): failed to find')
    else:
        # Neither reads "Plugins"; libcni 1.1.2 words it as a missing key, later
        # libcni (which we follow) allows a list without inlined plugins.
        assert go.stderr == "error parsing configuration list: no 'plugins' key\n"
        assert ours.stderr == "no plugin configs found\n"
    assert not (tmp_path / "libcni").exists()
