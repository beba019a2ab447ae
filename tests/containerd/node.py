"""A throwaway Kubernetes-like node run by a private containerd.

The node is a network namespace (``cnit-ctd-<random>``; its uplink ``eth0``,
one end of a veth pair inside the node, holds NODE_IP) plus a private mount
namespace held open by a ``sleep`` process.  In that mount namespace the paths
containerd, ``ctr`` and the plugins hard-code are covered by directories of the
node's temp dir: a tmpfs on /run (containerd's /run/containerd, flannel's
/run/flannel), binds over /etc/cni/net.d, /opt/cni/bin, /usr/lib/cni and
/var/lib/cni (/opt/cni/bin, /etc/cni/net.d and the unpack cache
/var/lib/cni/cni-plugins-py can instead be dirs an installer filled, bound as
they are), and a fresh sysfs (so /sys/class/net shows the node's links) with
the host's cgroup hierarchies moved back under it.  containerd runs in both
namespaces with its root, state and socket in the temp dir, so it can be killed
and restarted while pods run; every container goes in a cgroup under the node's
own parent.  Teardown kills what is left in the mount namespace and in those
cgroups by pid, removes the cgroups and deletes the network namespace; the
mounts go with the mount namespace, and nothing on the host changes.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.containerd.cri import PodSpec, RuntimeClient, wait_ready
from tests.containerd.image import HTTPD_CMD, IMAGE

REPO = Path(__file__).resolve().parents[2]
NODE_IP = "192.168.77.2"
POD_SUBNET = "10.244.1.0/24"
POD_PREFIX = "10.244.1."
NETWORK = "cbr0"
UPLINK_PEER = "uplink0"


def subnet_env(ipmasq: bool = True) -> str:
    """/run/flannel/subnet.env as flanneld writes it.  ipmasq true is flanneld
    --ip-masq (the shipped manifest): flanneld masquerades, so flannel turns the
    bridge delegate's ipMasq off; false makes the bridge masquerade per pod."""
    return (
        "FLANNEL_NETWORK=10.244.0.0/16\n"
        "FLANNEL_SUBNET=10.244.1.1/24\n"
        "FLANNEL_MTU=1450\n"
        f"FLANNEL_IPMASQ={str(ipmasq).lower()}\n"
    )


# Every containerd test module: needs root, and containerd + ctr + runc.
CONTAINERD_MARKS = [
    pytest.mark.containerd,
    pytest.mark.privileged,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("containerd", "ctr", "runc", "nsenter")),
        reason="needs containerd, ctr and runc (Debian packages containerd, runc)",
    ),
]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def shipped_conflist() -> str:
    """cni-conf.json of deploy/kube-flannel.yml's ConfigMap, unchanged."""
    for doc in yaml.safe_load_all((REPO / "deploy" / "kube-flannel.yml").read_text()):
        if doc and doc.get("kind") == "ConfigMap" and "cni-conf.json" in doc.get("data", {}):
            text = doc["data"]["cni-conf.json"]
            assert isinstance(text, str)
            return text
    raise AssertionError("deploy/kube-flannel.yml has no cni-conf.json")


# Runs in the node's fresh mount namespace.  cover DIR SRC binds SRC over DIR;
# a DIR the host lacks (a fresh machine may have no /etc/cni/net.d, /opt/cni or
# /var/lib/cni) is made in an overlay of its nearest existing parent, whose
# upper layer is in the temp dir, so the host's tree is never written.
_SETUP = """set -eu
n=0
cover() {
    if [ ! -d "$1" ]; then
        parent=$1
        while [ ! -d "$parent" ]; do parent=$(dirname "$parent"); done
        n=$((n + 1))
        mkdir -p "$T/overlay/$n/upper" "$T/overlay/$n/work"
        mount -t overlay overlay \
            -o "lowerdir=$parent,upperdir=$T/overlay/$n/upper,workdir=$T/overlay/$n/work" "$parent"
        mkdir -p "$1"
    fi
    mount --bind "$2" "$1"
}
mount --rbind /sys/fs/cgroup "$T/cgroup-move"
mount -t sysfs sysfs /sys
mount --move "$T/cgroup-move" /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
cover /run/flannel "$T/run-flannel"
cover /etc/cni/net.d "$NETD"
cover /opt/cni/bin "$BIN"
cover /usr/lib/cni "$T/usr-lib-cni"
cover /var/lib/cni "$T/var-lib-cni"
if [ -n "$CACHE" ]; then
    mkdir "$T/var-lib-cni/cni-plugins-py"
    mount --bind "$CACHE" /var/lib/cni/cni-plugins-py
fi
echo ready
exec sleep infinity
"""

_CONFIG = """version = 2
root = "{t}/containerd-root"
state = "{t}/containerd-state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{t}/containerd.sock"
[ttrpc]
  address = "{t}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{t}/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
"""


class Node:
    def __init__(
        self,
        root: Path,
        plugins: Mapping[str, Path],
        label: str,
        *,
        installed: InstalledDirs | None = None,
    ) -> None:
        """``plugins`` are copied into the node's own /opt/cni/bin and the
        shipped conflist written, unless ``installed`` names the dirs an
        installer filled: those are bound as /opt/cni/bin and /etc/cni/net.d
        as they are (later changes there show through), and its unpack cache
        as /var/lib/cni/cni-plugins-py, the plugins' default cache dir (no
        CNI_PLUGINS_CACHE_DIR: as on a node the manifest set up)."""
        self.root = root
        self.label = label
        self.netns = f"cnit-ctd-{secrets.token_hex(4)}"
        self.cgroup_parent = f"/cnit-ctd-{secrets.token_hex(4)}"
        self.socket = str(root / "containerd.sock")
        self.var_lib_cni = root / "var-lib-cni"
        self.bin_dir = installed.bin_dir if installed else root / "bin"
        self.conf_dir = installed.conf_dir if installed else root / "net.d"
        self.installed_cache = installed.cache_dir if installed else None
        self.log = root / "containerd.log"
        self.timings: list[tuple[str, float]] = []
        self._holder: subprocess.Popen[bytes] | None = None
        self._containerd: subprocess.Popen[bytes] | None = None
        self.cri: RuntimeClient | None = None
        self.ctr_pods: dict[str, CtrPod] = {}
        self.env = {"PATH": PATH}
        if installed is None:
            self.env["CNI_PLUGINS_CACHE_DIR"] = str(root / "unpack-cache")
        for d in (
            "cgroup-move", "run-flannel", "net.d", "bin", "usr-lib-cni", "var-lib-cni",
            "unpack-cache",
        ):  # fmt: skip
            (root / d).mkdir()
        self.subnet_env = root / "run-flannel" / "subnet.env"
        self.subnet_env.write_text(subnet_env())
        if installed is None:
            self.install_plugins(plugins)
            self.write_conflist(shipped_conflist())
        (root / "containerd.toml").write_text(_CONFIG.format(t=root, image=IMAGE))

    # -- plugins and config ------------------------------------------------
    def install_plugins(self, plugins: Mapping[str, Path]) -> None:
        """Replace /opt/cni/bin's content (rename over, like an installer does)."""
        for name, source in plugins.items():
            staged = self.bin_dir / f".{name}.new"
            shutil.copy2(source, staged)
            staged.rename(self.bin_dir / name)

    def write_conflist(self, text: str) -> None:
        """Replace the node's conflist; containerd's CRI plugin reads it on
        (re)start, so callers restart containerd to be sure it is in use."""
        staged = self.conf_dir / ".10-flannel.conflist.new"
        staged.write_text(text)
        staged.rename(self.conf_dir / "10-flannel.conflist")

    def restart_containerd(self) -> None:
        self.kill_containerd()
        self.start_containerd()

    def reset(self, plugins: Mapping[str, Path], conflist: str) -> None:
        """Back to a node with no pods, ``conflist`` in use and ``plugins`` installed."""
        if self._containerd is None:
            self.start_containerd()
        self._remove_all_pods()
        for extra in set(p.name for p in self.bin_dir.iterdir()) - set(plugins):
            (self.bin_dir / extra).unlink()
        self.install_plugins(plugins)
        current = self.conf_dir / "10-flannel.conflist"
        if current.read_text() != conflist:
            self.write_conflist(conflist)
            self.restart_containerd()
            self._remove_all_pods()
        self.subnet_env.write_text(subnet_env())
        if any(self.inventory().values()):
            self._wipe_network_state()

    def _wipe_network_state(self) -> None:
        """After a test whose pods could not be torn down (their DEL fails):
        drop what they hold so the next test starts from a clean node."""
        for sub in ("flannel", "results"):
            for f in (self.var_lib_cni / sub).glob("*"):
                f.unlink()
        for f in (self.var_lib_cni / "networks" / NETWORK).glob("*"):
            if re.fullmatch(r"[0-9.]+", f.name):
                f.unlink()
        for veth in self.inventory()["veths"]:
            self.in_netns("ip", "link", "del", veth, check=False)
        self.in_netns("nft", "flush", "ruleset")

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        ip("netns", "add", self.netns)
        ip("-n", self.netns, "link", "set", "lo", "up")
        # The node's uplink: a veth pair inside the node (the kernel here has no dummy links).
        ip("-n", self.netns, "link", "add", "eth0", "type", "veth", "peer", "name", UPLINK_PEER)
        ip("-n", self.netns, "link", "set", UPLINK_PEER, "up")
        ip("-n", self.netns, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        argv = ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount"]
        argv += ["--propagation", "private", "sh", "-c", _SETUP]
        self._holder = subprocess.Popen(
            argv,
            env={
                "PATH": PATH,
                "T": str(self.root),
                "BIN": str(self.bin_dir),
                "NETD": str(self.conf_dir),
                "CACHE": str(self.installed_cache or ""),
            },
            stdout=subprocess.PIPE,
        )
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"node mount namespace setup failed (exit {self._holder.wait()})")
        self.start_containerd()

    def start_containerd(self) -> None:
        with self.log.open("ab") as log:
            self._containerd = subprocess.Popen(
                self._in_node(["containerd", "--config", str(self.root / "containerd.toml")]),
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.cri = RuntimeClient(self.socket)
        wait_ready(self.cri)

    def kill_containerd(self) -> None:
        """SIGKILL containerd (shims and pods keep running), like a crash."""
        assert self._containerd is not None
        if self.cri is not None:
            self.cri.close()
            self.cri = None
        self._containerd.send_signal(signal.SIGKILL)
        self._containerd.wait()
        self._containerd = None

    def stop(self) -> None:
        try:
            if self._containerd is not None:
                self._remove_all_pods()
                self._containerd.terminate()
                try:
                    self._containerd.wait(20)
                except subprocess.TimeoutExpired:
                    self._containerd.kill()
                    self._containerd.wait()
            if self.cri is not None:
                self.cri.close()
        finally:
            if self._holder is not None:
                self._kill_mount_namespace()
            self._remove_cgroups()
            subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)

    def _remove_all_pods(self) -> None:
        if self.cri is not None:
            for sandbox in self.cri.list_pod_sandboxes():
                try:
                    self.cri.stop_pod_sandbox(sandbox)
                    self.cri.remove_pod_sandbox(sandbox)
                except Exception:  # noqa: BLE001 - best effort; the kill below finishes it
                    pass
        for pod in list(self.ctr_pods.values()):
            self.ctr("tasks", "kill", "-s", "SIGKILL", pod.name, check=False)
            try:
                pod.process.wait(30)
            except subprocess.TimeoutExpired:
                pod.process.kill()
                pod.process.wait()
        self.ctr_pods.clear()

    def _kill_mount_namespace(self) -> None:
        """SIGKILL every process in the node's mount namespace (shims, pods, the holder)."""
        assert self._holder is not None
        mnt = os.readlink(f"/proc/{self._holder.pid}/ns/mnt")
        for _ in range(50):
            pids = [p for p in _pids() if _mount_ns(p) == mnt]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        self._holder.wait()

    def _remove_cgroups(self) -> None:
        """Kill what is left in the node's cgroups (container processes live in
        their own mount namespaces), then remove the cgroups, deepest first."""
        root = Path("/sys/fs/cgroup")  # cgroup2 itself, or a tmpfs of v1 hierarchies
        for hierarchy in (root, *(d for d in root.iterdir() if d.is_dir())):
            top = hierarchy / self.cgroup_parent.lstrip("/")
            if not top.is_dir():
                continue
            groups = [top, *(d for d in top.rglob("*") if d.is_dir())]
            for group in sorted(groups, key=lambda p: len(p.parts), reverse=True):
                for _ in range(50):
                    pids = (group / "cgroup.procs").read_text().split()
                    if not pids:
                        break
                    for pid in pids:
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.1)
                group.rmdir()

    # -- commands in the node ------------------------------------------------
    def _in_node(self, argv: Sequence[str]) -> list[str]:
        assert self._holder is not None
        return ["nsenter", "-t", str(self._holder.pid), "-m", "-n", *argv]

    def run(self, *argv: str) -> Completed:
        """Run a host tool in the node's mount and network namespaces (paths
        as containerd and the plugins see them), with the node's environment."""
        return subprocess.run(
            self._in_node(argv),
            check=False, capture_output=True, text=True, timeout=60, env=self.env,
        )  # fmt: skip

    def ctr(self, *args: str, check: bool = True, namespace: str = "default") -> Completed:
        argv = self._in_node(["ctr", "--address", self.socket, "-n", namespace, *args])
        done = subprocess.run(
            argv, check=False, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def import_image(self, archive: Path) -> None:
        for namespace in ("default", "k8s.io"):
            self.ctr("images", "import", str(archive), namespace=namespace)

    def ctr_run(self, container: str, command: Sequence[str] = HTTPD_CMD) -> CtrPod:
        """``ctr run --rm --cni`` in the foreground, as a user runs it: ctr does
        the CNI ADD between creating and starting the task, and the DEL (with an
        empty CNI_NETNS, the task being gone) after the task exits."""
        cgroup = f"{self.cgroup_parent}/{container}"
        argv = self._in_node(
            [
                "ctr", "--address", self.socket, "run", "--rm", "--cni", "--cgroup", cgroup,
                "--env", f"POD_NAME={container}", IMAGE, container, *command,
            ]
        )  # fmt: skip
        output = self.root / f"ctr-{container}.log"
        with output.open("wb") as out:
            process = subprocess.Popen(
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        pod = CtrPod(container, process, output)
        self.ctr_pods[container] = pod
        started = time.monotonic()
        for _ in range(600):
            if process.poll() is not None:
                raise AssertionError(f"ctr run {container} failed: {pod.output()}")
            if re.search(rf"^{container}\s+\d+\s+RUNNING", self.ctr("tasks", "ls").stdout, re.M):
                self.timings.append((f"ctr run --cni {container}", time.monotonic() - started))
                return pod
            time.sleep(0.05)
        raise AssertionError(f"ctr run {container}: task not running after 30 s")

    def ctr_stop(self, pod: CtrPod) -> None:
        """``ctr tasks kill`` the pod; its ``ctr run --rm`` then DELs and exits."""
        self.ctr("tasks", "kill", "-s", "SIGKILL", pod.name)
        try:
            pod.process.wait(60)
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait()
            raise AssertionError(f"ctr run {pod.name} did not exit: {pod.output()}") from None
        self.ctr_pods.pop(pod.name, None)

    def in_netns(self, *argv: str, check: bool = True, timeout: float = 20) -> Completed:
        """Run a host tool in the node's network namespace."""
        done = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", *argv],
            check=False, capture_output=True, text=True, timeout=timeout, env={"PATH": PATH},
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done

    def http_get(self, host: str, port: int = 80, within: float = 15) -> str:
        """GET / from the node's network namespace, retried for ``within``
        seconds while the pod's httpd starts.  (busybox wget's own -T timeout
        crashes busybox 1.35 here, so each try is bounded by its process.)"""
        url = f"http://{host}:{port}/"
        deadline = time.monotonic() + within
        error = ""
        while time.monotonic() < deadline:
            argv = ("/bin/busybox", "wget", "-q", "-O", "-", url)
            try:
                done = self.in_netns(*argv, check=False, timeout=5)
            except subprocess.TimeoutExpired:
                error = "no answer within 5 s"
                continue
            if done.returncode == 0:
                return done.stdout.strip()
            error = done.stderr.strip()
            time.sleep(0.1)
        raise AssertionError(f"GET {url} from the node failed: {error}")

    # -- CRI pods, as a kubelet runs them ---------------------------------------
    def run_pod(self, spec: PodSpec, app: bool = True) -> CriPod:
        """RunPodSandbox (timed), then an httpd app container unless ``app`` is false."""
        assert self.cri is not None
        spec.cgroup_parent = self.cgroup_parent
        started = time.monotonic()
        sandbox = self.cri.run_pod_sandbox(spec)
        self.timings.append((f"RunPodSandbox {spec.name}", time.monotonic() - started))
        container = ""
        if app:
            container = self.cri.create_container(sandbox, spec, "web", IMAGE, HTTPD_CMD)
            self.cri.start_container(container)
        return CriPod(spec, sandbox, container, self.cri.pod_sandbox_status(sandbox).ip)

    def remove_pod(self, pod: CriPod) -> None:
        """What the kubelet does: StopPodSandbox (at least once), then RemovePodSandbox."""
        assert self.cri is not None
        self.cri.stop_pod_sandbox(pod.sandbox_id)
        self.cri.remove_pod_sandbox(pod.sandbox_id)

    # -- what the plugins leave on the node -------------------------------------
    def reservations(self) -> dict[str, str]:
        """host-local: reserved IP -> container ID."""
        d = self.var_lib_cni / "networks" / NETWORK
        if not d.is_dir():
            return {}
        return {
            f.name: f.read_text().splitlines()[0]
            for f in d.iterdir()
            if re.fullmatch(r"[0-9.]+", f.name)
        }

    def inventory(self) -> dict[str, list[str]]:
        """Every per-pod trace a pod leaves; all lists are empty on a clean node."""
        flannel = self.var_lib_cni / "flannel"
        results = self.var_lib_cni / "results"
        links = self.in_netns("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()
        nat = self.in_netns("iptables-save", "-t", "nat").stdout.splitlines()
        nft = self.in_netns("nft", "list", "ruleset").stdout.splitlines()
        return {
            "host-local reservations": sorted(self.reservations()),
            "flannel saved configs": sorted(p.name for p in flannel.iterdir())
            if flannel.is_dir()
            else [],
            "libcni cache": sorted(p.name for p in results.iterdir()) if results.is_dir() else [],
            "veths": [
                name
                for line in links
                if (name := line.split(":")[1].strip().split("@")[0]) not in ("eth0", UPLINK_PEER)
            ],
            "nat rules/chains": [
                line
                for line in nat
                if POD_PREFIX in line or re.match(r":CNI-(DN-)?[0-9a-f]{16,}", line)
            ],
            "nft rules": [line.strip() for line in nft if POD_PREFIX in line],
        }

    def assert_clean(self, within: float = 10) -> None:
        """Nothing of any pod is left.  Waits up to ``within`` s: after a DEL with
        an empty CNI_NETNS (ctr, once the task is gone) the host end of the veth
        goes only when the kernel's deferred netns cleanup runs, a moment later."""
        deadline = time.monotonic() + within
        while leftovers := {k: v for k, v in self.inventory().items() if v}:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not leftovers, f"{self.label}: left on the node: {leftovers}"


Completed = subprocess.CompletedProcess[str]


@dataclass
class InstalledDirs:
    """Host dirs an installer (the install-cni image) filled."""

    bin_dir: Path
    conf_dir: Path
    cache_dir: Path


@dataclass
class CriPod:
    spec: PodSpec
    sandbox_id: str
    container_id: str
    ip: str


@dataclass
class CtrPod:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace").strip()


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None
