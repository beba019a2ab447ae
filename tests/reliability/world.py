"""A throwaway flannel node for reliability runs, and a libcni-like driver.

    node ns  cnit-rel-<tag>-node   cni0 10.244.1.1/24, iptables/nft/conntrack state
    pod ns   cnit-rel-<tag>-p<n>   eth0 from flannel -> bridge -> host-local, then portmap

Plugins run under ``ip netns exec <node>`` from any bin dir holding the five
binaries (dist/bin, or the source tree's script plugins).  ``dataDir``
(flannel), ``ipam.dataDir`` (host-local), ``subnetFile`` and the built
binaries' unpack cache (``CNI_PLUGINS_CACHE_DIR``, shared by the worlds of one
run when the caller passes one) live under tmp directories, never under
/var/lib/cni.
``leftovers()`` lists everything of ours still on the node: links, addresses,
reservations, saved flannel files, per-pod iptables/nft rules and chains,
conntrack entries to our host ports, plugin processes.  Shared objects that
stay by design (``cni0`` and its gateway address, the ``CNI-HOSTPORT-*``
chains and the jumps to them, nft base chains) are not leftovers.

``close()`` deletes every namespace the world made (and with them their links,
rules and conntrack state); nothing in the root namespace is touched.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Json = dict[str, Any]

SHARED_CHAINS = frozenset(
    {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SNAT"}
)
_CHAIN_TOKEN = re.compile(r"CNI-[A-Za-z0-9_.-]+")
# Error codes a plugin may answer with: the spec's, Go skel's 8, 999 (internal).
ALLOWED_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999})
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def sh(*argv: str, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Answer:
    """One plugin exec: exit status, stdout, stderr, and what kind of answer it was."""

    plugin: str
    command: str
    status: int
    stdout: bytes
    stderr: bytes
    killed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 0

    def problem(self) -> str | None:
        """Why this answer is not a clean CNI answer, or None."""
        return answer_problem(self.command, self.status, self.stdout)

    def code(self) -> int | None:
        try:
            obj = json.loads(self.stdout)
        except ValueError:
            return None
        return obj.get("code") if isinstance(obj, dict) else None

    def describe(self) -> str:
        return (
            f"{self.plugin} {self.command} exit {self.status}: "
            f"{self.stdout.decode(errors='replace').strip()} "
            f"{self.stderr.decode(errors='replace').strip()[-2000:]}"
        )


def answer_problem(command: str, status: int, stdout: bytes) -> str | None:
    """The protocol check every answer must pass: exit 0 with a result (ADD,
    VERSION) or nothing, or exit 1 with exactly one well-formed error object."""
    text = stdout.decode(errors="replace")
    if "Traceback" in text:
        return "traceback on stdout"
    if status == 0:
        if command in ("ADD", "VERSION"):
            try:
                obj = json.loads(stdout)
            except ValueError:
                return "exit 0 without a JSON result"
            if not isinstance(obj, dict) or "cniVersion" not in obj:
                return "exit 0 with a result that is not an object with cniVersion"
            return None
        return None if not stdout.strip() else f"exit 0 with output on {command}"
    if status != 1:
        return f"exit status {status}"
    try:
        obj = json.loads(stdout)
    except ValueError:
        return "exit 1 without exactly one JSON object on stdout"
    if not isinstance(obj, dict):
        return "error is not a JSON object"
    code, msg = obj.get("code"), obj.get("msg")
    if not isinstance(code, int) or isinstance(code, bool) or code not in ALLOWED_CODES:
        return f"error code {code!r} not in the allowed set"
    if not isinstance(msg, str) or not msg:
        return "error without a string msg"
    if "details" in obj and not isinstance(obj["details"], str):
        return "error details not a string"
    return None


@dataclass
class Pod:
    n: int
    ns: str
    cid: str
    host_ports: tuple[int, int]
    result: Json | None = None
    answers: list[Answer] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.ns}"

    @property
    def address(self) -> str | None:
        if not self.result:
            return None
        return str(self.result["ips"][0]["address"]).split("/")[0]


class World:
    """One node namespace with a flannel + portmap conflist and its state dirs."""

    def __init__(
        self,
        tmp: Path,
        bin_dir: Path,
        *,
        subnet: str = "10.244.1.1/24",
        ipmasq: bool = False,
        port_base: int = 30000,
        tag: str | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.tag = tag or secrets.token_hex(3)
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.bin = bin_dir
        # Where the built binaries unpack their bundle: not a plugin's state.
        self.cache_dir = cache_dir or tmp / "unpack-cache"
        self.subnet = subnet
        self.port_base = port_base
        self.namespaces: list[str] = []
        self._lock = threading.Lock()
        self._next = 0
        self.subnet_file = tmp / "subnet.env"
        self.flannel_dir = tmp / "flannel"
        self.ipam_dir = tmp / "ipam"
        self.extra_env: dict[str, str] = {}
        # Kills hit the plugin's whole process group (delegates, iptables too), or
        # only the plugin, leaving its children to finish as orphans (what a
        # runtime's exec timeout does).
        self.kill_group = True
        # Prepended to every plugin exec (e.g. strace) by tests that watch the plugins.
        self.wrapper: list[str] = []
        self.write_subnet_env(ipmasq=ipmasq)
        self.node = self.netns("node")
        sh("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    # -- namespaces ---------------------------------------------------------------------------

    def netns(self, role: str) -> str:
        name = f"cnit-rel-{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        with self._lock:
            self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def del_netns(self, name: str) -> None:
        sh("ip", "netns", "del", name, check=False)
        with self._lock:
            if name in self.namespaces:
                self.namespaces.remove(name)

    def reset_node(self) -> None:
        """A reboot: the node namespace (links, rules, conntrack) is gone and
        comes back empty; the state on disk stays."""
        self.del_netns(self.node)
        self.node = self.netns("node")
        sh("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def close(self) -> None:
        with self._lock:
            names = list(reversed(self.namespaces))
            self.namespaces.clear()
        for name in names:
            sh("ip", "netns", "del", name, check=False)

    def write_subnet_env(self, *, ipmasq: bool = False) -> None:
        self.subnet_file.write_text(
            f"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET={self.subnet}\n"
            f"FLANNEL_MTU=1450\nFLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n"
        )

    # -- configs ------------------------------------------------------------------------------

    def flannel_conf(self) -> Json:
        return {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "flannel",
            "subnetFile": str(self.subnet_file),
            "dataDir": str(self.flannel_dir),
            "ipam": {"dataDir": str(self.ipam_dir)},
            "delegate": {"hairpinMode": True, "isDefaultGateway": True},
        }

    def portmap_conf(self, pod: Pod, *, with_prev: bool = True) -> Json:
        tcp, udp = pod.host_ports
        conf: Json = {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "snat": True,
            "runtimeConfig": {
                "portMappings": [
                    {"hostPort": tcp, "containerPort": 80, "protocol": "tcp"},
                    {"hostPort": udp, "containerPort": 53, "protocol": "udp"},
                ]
            },
        }
        if with_prev and pod.result is not None:
            conf["prevResult"] = pod.result
        return conf

    def env(self, pod: Pod, command: str) -> dict[str, str]:
        return {
            "PATH": PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.cid,
            "CNI_NETNS": pod.path,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.bin),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=rel;K8S_POD_NAME=p{pod.n}",
            "CNI_PLUGINS_CACHE_DIR": str(self.cache_dir),
            **self.extra_env,
        }

    # -- pods and the driver ------------------------------------------------------------------

    def new_pod(self, *, make_netns: bool = True) -> Pod:
        with self._lock:
            self._next += 1
            n = self._next
        ns = f"cnit-rel-{self.tag}-p{n}"
        if make_netns:
            ns = self.netns(f"p{n}")
        ports = (self.port_base + 2 * n, self.port_base + 2 * n + 1)
        return Pod(n, ns, f"rel-{self.tag}-{n}", ports)

    def start(self, plugin: str, command: str, pod: Pod, conf: Json) -> subprocess.Popen[bytes]:
        """Start one plugin exec in the node namespace, in its own process group."""
        proc = subprocess.Popen(
            [*self.wrapper, "ip", "netns", "exec", self.node, str(self.bin / plugin)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(pod, command),
            start_new_session=True,
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(conf).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.stdin = None  # written and closed: communicate() must not touch it
        return proc

    def finish(
        self,
        plugin: str,
        command: str,
        proc: subprocess.Popen[bytes],
        *,
        kill_after: float | None = None,
    ) -> Answer:
        killed = False
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                if self.kill_group:
                    kill_group(proc.pid)
                else:
                    proc.kill()
                killed = True
        out, err = proc.communicate(timeout=120)
        return Answer(plugin, command, proc.returncode, out, err, killed)

    def call(
        self, plugin: str, command: str, pod: Pod, conf: Json, *, kill_after: float | None = None
    ) -> Answer:
        answer = self.finish(
            plugin, command, self.start(plugin, command, pod, conf), kill_after=kill_after
        )
        pod.answers.append(answer)
        return answer

    def add(self, pod: Pod, *, kill: tuple[str, float] | None = None) -> Answer:
        """libcni ADD of the list: flannel, then portmap with prevResult."""
        after = kill[1] if kill and kill[0] == "flannel" else None
        first = self.call("flannel", "ADD", pod, self.flannel_conf(), kill_after=after)
        if not first.ok:
            return first
        pod.result = json.loads(first.stdout)
        after = kill[1] if kill and kill[0] == "portmap" else None
        second = self.call("portmap", "ADD", pod, self.portmap_conf(pod), kill_after=after)
        if second.ok:
            pod.result = json.loads(second.stdout)
        return second

    def delete(self, pod: Pod, *, kill: tuple[str, float] | None = None) -> Answer:
        """libcni DEL of the list: portmap, then flannel, both with the cached result."""
        after = kill[1] if kill and kill[0] == "portmap" else None
        first = self.call("portmap", "DEL", pod, self.portmap_conf(pod), kill_after=after)
        if not first.ok:
            return first
        conf = self.flannel_conf()
        if pod.result is not None:
            conf["prevResult"] = pod.result
        after = kill[1] if kill and kill[0] == "flannel" else None
        return self.call("flannel", "DEL", pod, conf, kill_after=after)

    def gc(self, valid: list[Pod]) -> list[Answer]:
        """libcni GC: every plugin with ``cni.dev/valid-attachments``."""
        attachments = [{"containerID": p.cid, "ifname": "eth0"} for p in valid]
        dummy = Pod(0, "", "gc", (0, 0))
        out = []
        for plugin, base in (
            ("flannel", self.flannel_conf()),
            ("portmap", self.portmap_conf(dummy)),
        ):
            conf = dict(base, cniVersion="1.1.0")
            conf.pop("runtimeConfig", None)
            conf["cni.dev/valid-attachments"] = attachments
            conf["cni.dev/attachments"] = attachments
            env = {"PATH": PATH, "CNI_COMMAND": "GC", "CNI_PATH": str(self.bin)}
            proc = subprocess.run(
                ["ip", "netns", "exec", self.node, str(self.bin / plugin)],
                input=json.dumps(conf).encode(),
                env=env,
                capture_output=True,
                check=False,
                timeout=120,
            )
            out.append(Answer(plugin, "GC", proc.returncode, proc.stdout, proc.stderr))
        return out

    # -- traffic ------------------------------------------------------------------------------

    def poke_udp(self, ports: list[int]) -> None:
        """One UDP datagram from the node to each host port of the gateway
        address: DNATed to the pods, leaving conntrack entries portmap must flush."""
        if not ports:
            return
        gateway = self.subnet.split("/")[0]
        code = (
            "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for p in sys.argv[2:]:\n    s.sendto(b'x',(sys.argv[1],int(p)))\n"
        )
        sh(
            "ip",
            "netns",
            "exec",
            self.node,
            "python3",
            "-I",
            "-c",
            code,
            gateway,
            *map(str, ports),
        )

    # -- state ------------------------------------------------------------------------------

    def leftovers(self, *, udp_ports: set[int] | None = None) -> list[str]:
        """Everything of ours on the node that should not be there."""
        found: list[str] = []
        node = self.node
        for line in sh("ip", "-n", node, "-o", "link", "show").splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name not in ("lo", "cni0"):
                found.append(f"link {name}")
        gateway = self.subnet.split("/")[0]
        for line in sh("ip", "-n", node, "-o", "addr", "show").splitlines():
            parts = line.split()
            dev, addr = parts[1], parts[3]
            if (
                dev == "lo"
                or addr.startswith("fe80:")
                or (dev == "cni0" and addr.split("/")[0] == gateway)
            ):
                continue
            found.append(f"address {addr} on {dev}")
        netdir = self.ipam_dir / "cbr0"
        if netdir.is_dir():
            for p in sorted(netdir.iterdir()):
                if p.name != "lock" and not p.name.startswith("last_reserved_ip."):
                    found.append(f"reservation file {p.name}")
        if self.flannel_dir.is_dir():
            found += [f"flannel file {p.name}" for p in sorted(self.flannel_dir.iterdir())]
        for tool in (
            "iptables-save",
            "ip6tables-save",
            "iptables-legacy-save",
            "ip6tables-legacy-save",
        ):
            found += [f"{tool}: {r}" for r in our_rules(sh("ip", "netns", "exec", node, tool))]
        found += [f"nft: {r}" for r in our_nft_rules(node)]
        if udp_ports:
            out = sh("ip", "netns", "exec", node, "conntrack", "-L", "-p", "udp", check=False)
            for line in out.splitlines():
                m = re.search(r"dport=(\d+)", line)
                if m and int(m.group(1)) in udp_ports:
                    found.append(f"conntrack {line.strip()}")
        found += [f"process {p}" for p in plugin_processes(self.bin, self.cache_dir)]
        return found


def our_rules(save: str) -> list[str]:
    """Per-pod chains and rules in ``iptables-save`` output (shared chains excluded)."""
    out = []
    for line in save.splitlines():
        if line.startswith("#") or line.startswith("*") or line == "COMMIT":
            continue
        tokens = set(_CHAIN_TOKEN.findall(line))
        if tokens - SHARED_CHAINS or ' id: \\"' in line or 'id: "' in line:
            out.append(line)
    return out


def our_nft_rules(node: str) -> list[str]:
    """Per-pod rules (they carry comments) in our nft tables."""
    out = sh("ip", "netns", "exec", node, "nft", "-j", "list", "ruleset", check=False)
    try:
        items = json.loads(out).get("nftables", []) if out.strip() else []
    except ValueError:
        return [f"unparsable nft output {out[:200]!r}"]
    found = []
    for item in items:
        rule = item.get("rule")
        if (
            isinstance(rule, dict)
            and rule.get("table")
            in (
                "cni_hostport",
                "cni_plugins_masquerade",
            )
            and rule.get("comment")
        ):
            found.append(f"{rule.get('family')} {rule.get('table')} {rule.get('comment')}")
    return found


def plugin_processes(bin_dir: Path, cache_dir: Path | None = None) -> list[str]:
    """Processes still running one of the plugins of ``bin_dir``, told by what
    they execute, not by their command line (the runner's own parents carry
    ``--bin-dir dist/bin`` in theirs): a built binary's executable is in
    ``bin_dir`` (the launcher) or in ``cache_dir`` (the unpacked bundle it
    execs); a script plugin is its interpreter with the script, a file of
    ``bin_dir``, as an argument."""
    roots = [bin_dir.resolve()] + ([cache_dir.resolve()] if cache_dir else [])
    scripts = {str(p) for p in bin_dir.iterdir()} | {str(p.resolve()) for p in bin_dir.iterdir()}
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            exe = Path(os.readlink(f"/proc/{pid}/exe"))
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or a kernel thread
        words = [w.decode(errors="replace") for w in argv if w]
        if any(exe.is_relative_to(root) for root in roots) or scripts.intersection(words[1:3]):
            found.append(f"{pid} {' '.join(words)}")
    return found


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_no_processes(world: World, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while plugin_processes(world.bin, world.cache_dir) and time.monotonic() < deadline:
        time.sleep(0.05)


def script_plugins(directory: Path) -> Path:
    """The source-tree executables (as ``tests.conftest.write_script_plugins``)."""
    from tests.conftest import write_script_plugins

    return write_script_plugins(directory)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
