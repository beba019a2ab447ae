"""The dist/bin binaries need nothing from the node but the kernel (issue 16).

Every binary's VERSION and a whole pod (flannel -> bridge -> host-local, then
portmap: ADD, CHECK, DEL) run with the binaries copied into a foreign root,
entered with ``chroot`` inside ``ip netns exec <node>`` (a private mount
namespace: every mount of the run dies with it), the pod's netns visible
through an rbind of /run/netns:

* ``busybox``: nothing but busybox-static and the binaries (no libc, no loader);
* ``musl``: busybox-static and Debian's ``musl`` package files (no glibc);
* ``bullseye``: a Debian 11 minbase root (glibc 2.31, older than the build
  machine's) with its own iptables, built once per session by debootstrap
  (skipped when the Debian mirror is not reachable).

The busybox and musl roots have no iptables (the node's would bring glibc in):
there flannel masquerades itself (FLANNEL_IPMASQ=true, so bridge runs no
iptables) and portmap's row is left out; the bullseye root runs both with its
iptables.  Each root first proves it lacks what a dynamic binary needs: a
glibc program built here fails in it.

A hostile loader setup in the bullseye root: /etc/ld.so.preload (bind-mounted
over the root's) names a missing library and a spy, the caller's environment
has LD_PRELOAD (another spy) and LD_LIBRARY_PATH pointing at libraries named
like the bundle's (libz, libm) that abort when loaded.  The spies abort in a
process running from a cni-plugins entry and log every other process: the
plugins must work, and iptables (a node program) must still have loaded both
spies, i.e. got the node's preload and the caller's LD_PRELOAD.

The same tests run against static (CGO_ENABLED=0) Go reference builds of
bridge, host-local, loopback and portmap, with our flannel (Debian has no Go
flannel): Debian's containernetworking-plugins source package (fetched with
``apt-get source`` through a private apt state, skipped when the mirror is not
reachable) built once per session in GOPATH mode against Debian's Go library
packages (/usr/share/gocode, scripts/setup.sh), no module download.  Or
``CNI_PLUGINS_GO_STATIC_BIN`` names a directory holding the five.
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

from tests.conftest import built_bin_dir

BIN = built_bin_dir()
GO_STATIC = os.environ.get("CNI_PLUGINS_GO_STATIC_BIN")
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = Path("/bin/busybox")
MUSL_FILES = (
    "/lib/x86_64-linux-musl/libc.so",
    "/lib/ld-musl-x86_64.so.1",
    "/etc/ld-musl-x86_64.path",
)
# the newest the Go reference flannel (containernetworking/plugins v0.9.1) speaks
CNI_VERSION = "0.4.0"
PLUGINS = ("bridge", "flannel", "host-local", "loopback", "portmap")

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.binaries,
    pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static"),
    pytest.mark.timeout(1200),  # the first bullseye test runs debootstrap
]


@pytest.fixture(params=["ours", "go"])
def plugin_dir(request: pytest.FixtureRequest) -> Path:
    if BIN is None:
        pytest.skip("dist/bin not built (python build/build.py)")
    if request.param == "ours":
        return BIN
    go_static: Path = request.getfixturevalue("go_static_bin")
    return go_static


GO_PLUGINS = {
    "bridge": "plugins/main/bridge",
    "host-local": "plugins/ipam/host-local",
    "loopback": "plugins/main/loopback",
    "portmap": "plugins/meta/portmap",
}
GO_SOURCE = "containernetworking-plugins"  # the binary package's source: Debian's Go reference
DEB_SRC = "deb-src http://deb.debian.org/debian bookworm main\n"


def _run_or_skip(argv: list[str], env: dict[str, str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        pytest.skip(f"{what} failed: {last}")


@pytest.fixture(scope="session")
def go_static_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Static Go bridge/host-local/loopback/portmap + our flannel, once per session."""
    if GO_STATIC:
        return Path(GO_STATIC)
    needs = ("go", "apt-get", "dpkg-source")
    if not all(shutil.which(t) for t in needs) or not Path("/usr/share/gocode/src").is_dir():
        pytest.skip(f"needs {', '.join(needs)} and Debian's Go library packages (scripts/setup.sh)")
    work = tmp_path_factory.mktemp("go-static")
    apt = work / "apt"
    for d in ("lists/partial", "cache/archives/partial"):
        (apt / d).mkdir(parents=True)
    (apt / "sources.list").write_text(DEB_SRC)
    options = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oDebug::NoLocking=1",  # a private state: the machine's apt lock is not ours
        "-oAPT::Sandbox::User=root",
    ]
    env = {"PATH": PATH, "HOME": str(work)}
    _run_or_skip(["apt-get", *options, "update"], env, "apt-get update (Debian mirror)")
    fetched = work / "fetched"
    fetched.mkdir()
    argv = ["apt-get", *options, "source", "--download-only", GO_SOURCE]
    _run_or_skip(argv, env, f"apt-get source {GO_SOURCE}", cwd=fetched)
    (dsc,) = fetched.glob("*.dsc")
    tree = work / "gopath" / "src" / "github.com" / "containernetworking" / "plugins"
    tree.parent.mkdir(parents=True)
    subprocess.run(
        ["dpkg-source", "--no-check", "-x", str(dsc), str(tree)],
        env=env,
        capture_output=True,
        check=True,
    )
    go_env = {
        **env,
        "GO111MODULE": "off",
        "GOPATH": f"{work / 'gopath'}:/usr/share/gocode",
        "GOCACHE": str(work / "gocache"),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    out = work / "bin"
    for name, package in GO_PLUGINS.items():
        argv = ["go", "build", "-o", str(out / name), f"./{package}"]
        proc = subprocess.run(
            argv, env=go_env, cwd=tree, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, f"go build {package}:\n{proc.stderr}"
        kind = subprocess.run(
            ["file", "-b", str(out / name)], capture_output=True, text=True, check=True
        ).stdout
        assert "statically linked" in kind, f"{name}: {kind}"
    shutil.rmtree(work / "gocache", ignore_errors=True)
    assert BIN is not None
    shutil.copy2(BIN / "flannel", out / "flannel")
    return out


@pytest.fixture(scope="session")
def bullseye_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Debian 11 minbase root with iptables, once per session."""
    if not shutil.which("debootstrap"):
        pytest.skip("needs debootstrap")
    root = tmp_path_factory.mktemp("bullseye") / "root"
    proc = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=iptables", "bullseye", str(root)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        pytest.skip(f"debootstrap bullseye failed (Debian mirror not reachable?): {last}")
    for d in ("opt/cni/bin", "opt/spy", "opt/hostile", "var/lib/cni"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "ld.so.preload").touch()  # a mount point, empty: no preload
    return root


def _busybox_root(root: Path, musl: bool) -> None:
    for d in ("bin", "etc", "proc", "sys", "dev", "run", "tmp", "opt/cni/bin", "var/lib/cni"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "env"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "ld.so.preload").touch()
    if musl:
        for name in MUSL_FILES:
            src, dest = Path(name), root / name.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                dest.symlink_to(os.readlink(src))
            else:
                shutil.copy2(src, dest)


@pytest.fixture(params=["busybox", "musl", "bullseye"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    kind = str(request.param)
    if kind == "bullseye":
        return kind, request.getfixturevalue("bullseye_base")
    if kind == "musl" and not all(Path(f).exists() for f in MUSL_FILES):
        pytest.skip("needs Debian's musl package")
    path = tmp_path / f"{kind}-root"
    _busybox_root(path, musl=kind == "musl")
    return kind, path


# Everything a run writes goes to per-test directories bind-mounted into the
# root, so the bullseye base serves every test unchanged.
CHROOT = """set -eu
root=$1 state=$2 plugin=$3
shift 3
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind "$state/bin" "$root/opt/cni/bin"
mount --bind "$state/lib" "$root/var/lib/cni"
mount --bind "$state/run" "$root/run"
mount --bind "$state/tmp" "$root/tmp"
mount --rbind /run/netns "$root/run/netns"
if [ -n "$PRELOAD" ]; then mount --bind "$PRELOAD" "$root/etc/ld.so.preload"; fi
if [ -n "$SPY" ]; then mount --bind "$SPY" "$root/opt/spy"; fi
if [ -n "$HOSTILE" ]; then mount --bind "$HOSTILE" "$root/opt/hostile"; fi
exec env -i "$@" chroot "$root" "/opt/cni/bin/$plugin"
"""


class Node:
    """A node netns, a pod netns and a root to run plugins in."""

    def __init__(self, root: Path, state: Path, node: str, pod: str) -> None:
        self.root, self.state, self.node, self.pod = root, state, node, pod
        self.mounts = {"PRELOAD": "", "SPY": "", "HOSTILE": ""}
        self.extra_env: dict[str, str] = {}
        self.go_reference = False
        for d in ("bin", "lib", "run/netns", "run/flannel", "tmp"):
            (state / d).mkdir(parents=True, exist_ok=True)
        (state / "tmp").chmod(0o1777)

    def run(
        self, plugin: str, command: str, conf: dict[str, Any], cid: str = "root-pod"
    ) -> subprocess.CompletedProcess[bytes]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": self.pod,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin",
            "PATH": PATH,
            **self.extra_env,
        }
        argv = ["ip", "netns", "exec", Path(self.node).name, "sh", "-c", CHROOT, "sh"]
        argv += [str(self.root), str(self.state), plugin, *(f"{k}={v}" for k, v in env.items())]
        return subprocess.run(
            argv,
            input=json.dumps(conf).encode(),
            env={"PATH": PATH, **self.mounts},
            capture_output=True,
            timeout=120,
            check=False,
        )

    def nat(self) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", Path(self.node).name, "iptables-save", "-t", "nat"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


@pytest.fixture
def node(
    root: tuple[str, Path], plugin_dir: Path, tmp_path: Path, make_netns: Callable[[], str]
) -> Iterator[tuple[str, Node]]:
    kind, path = root
    n = Node(path, tmp_path / "state", make_netns(), make_netns())
    n.go_reference = plugin_dir != BIN
    for name in PLUGINS:
        if (plugin_dir / name).exists():
            shutil.copy2(plugin_dir / name, n.state / "bin" / name)
    yield kind, n


def _version_ok(proc: subprocess.CompletedProcess[bytes]) -> None:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert CNI_VERSION in json.loads(proc.stdout)["supportedVersions"]


def _glibc_program() -> Path | None:
    """A dynamically linked glibc program (Debian's Go plugins are)."""
    for candidate in ("/usr/lib/cni/loopback", "/usr/bin/true"):
        out = subprocess.run(
            ["file", "-L", candidate], capture_output=True, text=True, check=False
        ).stdout
        if "dynamically linked" in out:
            return Path(candidate)
    return None


def pod_lifecycle(kind: str, n: Node) -> None:
    """VERSION of every binary, then flannel ADD/CHECK (+ portmap ADD/CHECK/DEL
    where the root has iptables) and DEL, checked in the namespaces."""
    has_iptables = kind == "bullseye"
    for name in PLUGINS:
        assert (n.state / "bin" / name).exists(), name
        _version_ok(n.run(name, "VERSION", {"cniVersion": CNI_VERSION}))
    # flannel masquerades itself (no iptables in the root) or leaves it to bridge
    ipmasq = "false" if has_iptables else "true"
    (n.state / "run" / "flannel" / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\n"
        f"FLANNEL_MTU=1450\nFLANNEL_IPMASQ={ipmasq}\n"
    )
    flannel = {
        "cniVersion": CNI_VERSION,
        "name": "cbr0",
        "type": "flannel",
        "delegate": {"hairpinMode": True, "isDefaultGateway": True},
    }
    added = n.run("flannel", "ADD", flannel)
    assert added.returncode == 0, (added.stdout, added.stderr)
    result = json.loads(added.stdout)
    address = result["ips"][0]["address"]
    assert address.startswith("10.244.9.")
    assert list((n.state / "lib" / "networks" / "cbr0").glob("10.244.9.*"))
    pod_addrs = subprocess.run(
        ["ip", "-n", Path(n.pod).name, "-j", "addr", "show", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert address.split("/")[0] in pod_addrs
    # the Go reference v1.1.1's bridge CHECK wants the flannel network's route
    # without a gateway, but installed it via one (containernetworking/plugins#886,
    # fixed in v1.3.0)
    if not n.go_reference:
        checked = n.run("flannel", "CHECK", {**flannel, "prevResult": result})
        assert checked.returncode == 0, (checked.stdout, checked.stderr)
    if has_iptables:
        assert "CNI-" in n.nat()  # bridge's ipMasq ran the root's iptables
        portmap = {
            "cniVersion": CNI_VERSION,
            "name": "cbr0",
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "runtimeConfig": {
                "portMappings": [{"hostPort": 18090, "containerPort": 80, "protocol": "tcp"}]
            },
            "prevResult": result,
        }
        # the Go reference v1.1.1's portmap CHECK of an IPv4-only pod fails on the
        # ip6tables chain it never made (containernetworking/plugins#819)
        for command in ("ADD",) if n.go_reference else ("ADD", "CHECK"):
            mapped = n.run("portmap", command, portmap)
            assert mapped.returncode == 0, (command, mapped.stdout, mapped.stderr)
            assert "18090" in n.nat()
        unmapped = n.run("portmap", "DEL", portmap)
        assert unmapped.returncode == 0, (unmapped.stdout, unmapped.stderr)
        assert "18090" not in n.nat()
    deleted = n.run("flannel", "DEL", flannel)
    assert deleted.returncode == 0, (deleted.stdout, deleted.stderr)
    assert not list((n.state / "lib" / "networks" / "cbr0").glob("10.244.9.*"))
    gone = subprocess.run(
        ["ip", "-n", Path(n.pod).name, "link", "show", "eth0"], capture_output=True, check=False
    )
    assert gone.returncode != 0
    if has_iptables:
        assert "CNI-" not in n.nat().replace("CNI-HOSTPORT", "")
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(n.root) not in mounts


def test_version_and_a_pod_in_a_foreign_root(node: tuple[str, Node]) -> None:
    kind, n = node
    # the root lacks what a dynamically linked glibc program needs
    program = _glibc_program()
    if program is not None:
        shutil.copy2(program, n.state / "bin" / "glibc-program")
        proc = n.run("glibc-program", "VERSION", {"cniVersion": CNI_VERSION})
        assert proc.returncode != 0, (proc.stdout, proc.stderr)
    if kind != "bullseye":
        glibc = [p for p in n.root.rglob("*") if p.name.startswith(("libc.so.6", "ld-linux"))]
        assert not glibc
    pod_lifecycle(kind, n)


SPY_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Aborts inside a process run by a cni-plugins entry's loader; logs any other. */
__attribute__((constructor)) static void spy(void)
{
	char line[4200] = TAG " ";
	size_t head = strlen(line);
	ssize_t n = readlink("/proc/self/exe", line + head, sizeof(line) - head - 2);
	int fd;
	if (n <= 0)
		return;
	line[head + n] = 0;
	if (ALWAYS_ABORT || strstr(line + head, "/_internal/")) {
		static const char msg[] = "hostile library " TAG " loaded into the plugin\n";
		(void)!write(2, msg, sizeof(msg) - 1);
		abort();
	}
	line[head + n] = '\n';
	fd = open("/tmp/spy.log", O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd >= 0) {
		(void)!write(fd, line, head + n + 1);
		close(fd);
	}
}
"""


def _spy(src: Path, out: Path, tag: str, always_abort: bool, soname: str | None = None) -> None:
    cmd = [
        "gcc",
        "-O2",
        "-shared",
        "-fPIC",
        f'-DTAG="{tag}"',
        f"-DALWAYS_ABORT={int(always_abort)}",
    ]
    if soname:
        cmd.append(f"-Wl,-soname,{soname}")
    subprocess.run([*cmd, "-o", str(out), str(src)], check=True, capture_output=True)


@pytest.mark.parametrize("root", ["bullseye"], indirect=True)
def test_a_hostile_preload_and_loader_environment_do_not_break_a_plugin(
    node: tuple[str, Node], tmp_path: Path
) -> None:
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    kind, n = node
    src = tmp_path / "spy.c"
    src.write_text(SPY_C)
    spy, hostile = tmp_path / "spy", tmp_path / "hostile"
    spy.mkdir()
    hostile.mkdir()
    _spy(src, spy / "libspy-etc.so", "etc-preload", False)
    _spy(src, spy / "libspy-env.so", "env-preload", False)
    for lib in ("libz.so.1", "libm.so.6"):  # named like the bundle's own
        _spy(src, hostile / lib, f"libdir-{lib}", True, soname=lib)
    preload = tmp_path / "ld.so.preload"
    preload.write_text("/opt/spy/libgone.so\n/opt/spy/libspy-etc.so\n")
    n.mounts = {"PRELOAD": str(preload), "SPY": str(spy), "HOSTILE": str(hostile)}
    n.extra_env = {"LD_PRELOAD": "/opt/spy/libspy-env.so", "LD_LIBRARY_PATH": "/opt/hostile"}
    pod_lifecycle(kind, n)
    log = (n.state / "tmp" / "spy.log").read_text().splitlines()
    # iptables, a node program we exec, got the node's preload and the caller's
    # LD_PRELOAD; nothing ran from our entry's loader (the spies abort there)
    tools = [line for line in log if "xtables" in line or "iptables" in line]
    assert any(line.startswith("etc-preload ") for line in tools), log
    assert any(line.startswith("env-preload ") for line in tools), log
    assert not [line for line in log if "/_internal/" in line]
