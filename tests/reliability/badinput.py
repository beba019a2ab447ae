"""Bad input: hypothesis mutates configs, CNI_* variables and CNI_ARGS for every
plugin, and every answer must be clean and harmless.

Clean: exit 0 with a valid result (ADD, VERSION) or nothing, or exit 1 with one
JSON error object (int ``code`` from the allowed set, str ``msg``), never a
traceback on stdout.  Harmless: after a failed call the node is as it was
(links and addresses of the node and the pod, the node's iptables and nft
rule sets, every file under the state directory); after a successful ADD, its
DEL brings it back (shared objects excepted: bridges and their addresses).

The bulk runs in-process (``skel.run`` with injected environ/stdin/stdout, ~100x
cheaper than an exec) in a worker that lives in the throwaway node namespace,
in a private mount namespace where ``/var/lib/cni`` is an empty tmpfs (so even
a default ``dataDir`` lands in a throwaway place); every ``EXEC_EVERY``-th
example is exec'd through the real executable instead.  Every environment
points the built binaries' unpack cache at the world's
(``CNI_PLUGINS_CACHE_DIR``; in-process runs exec real delegates too): the
unpacked bundle is not the plugins' state, and files that still land in the
default cache under /var/lib/cni are counted apart from the plugins' own.  Path-valued keys only
ever get values inside the world's tmp directory (or relative ones, resolved in
a tmp working directory), CNI_NETNS only the pod, the node itself, or things
that are not a namespace, and CNI_PATH only the plugin directory: the fuzzer
must not be able to point a plugin at the host.

    ip netns exec <node> unshare -m --propagation private \\
        python -m tests.reliability.badinput --worker SPEC.json   # prints a summary
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from tests.reliability.world import PATH, World, answer_problem, our_rules, sh

Json = dict[str, Any]
PLUGINS = ("host-local", "loopback", "bridge", "flannel", "portmap")
EXEC_EVERY = 10
PATH_KEYS = frozenset({"dataDir", "subnetFile", "resolvConf"})
MODULES = {
    "bridge": "bridge",
    "flannel": "flannel",
    "host-local": "host_local",
    "loopback": "loopback",
    "portmap": "portmap",
}


# -- the worker's world -----------------------------------------------------------------------


class Spec:
    """What the worker needs to know (passed as JSON)."""

    def __init__(self, raw: Json) -> None:
        self.tmp = Path(raw["tmp"])
        self.bin = Path(raw["bin"])
        self.cache = Path(raw["cache"])
        self.node = str(raw["node"])
        self.pod = str(raw["pod"])
        self.subnet_file = Path(raw["subnet_file"])
        self.examples = int(raw["examples"])
        self.seed = int(raw["seed"])
        self.plugins = tuple(raw["plugins"])

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    def safe_paths(self) -> list[str]:
        s = self.state
        return [
            str(s / "a"),
            str(s / "b" / "deep" / "er"),
            str(s / ".." / "state" / "c"),
            str(s / "a" / ".." / "d"),
            str(s / "file"),
            str(s / "nonexistent" / "x"),
            str(self.subnet_file),
            "relative",
            "rel/../rel2",
            "",
            str(s / "nul\0byte"),
        ]


def base_config(plugin: str, spec: Spec) -> Json:
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.1.0/24"}]],
        "routes": [{"dst": "10.244.0.0/16"}],
        "dataDir": str(spec.state / "ipam"),
    }
    if plugin == "flannel":
        return {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "flannel",
            "subnetFile": str(spec.subnet_file),
            "dataDir": str(spec.state / "flannel"),
            "ipam": {"dataDir": str(spec.state / "ipam")},
            "delegate": {"hairpinMode": True, "isDefaultGateway": True},
        }
    if plugin == "bridge":
        return {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": True,
            "ipMasq": True,
            "ipam": ipam,
        }
    if plugin == "host-local":
        return {"cniVersion": "1.0.0", "name": "cbr0", "type": "host-local", "ipam": ipam}
    if plugin == "portmap":
        return {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "snat": True,
            "runtimeConfig": {
                "portMappings": [
                    {"hostPort": 31080, "containerPort": 80, "protocol": "tcp"},
                    {"hostPort": 31053, "containerPort": 53, "protocol": "udp"},
                ]
            },
            "prevResult": {
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "sandbox": f"/run/netns/{spec.pod}"}],
                "ips": [{"address": "10.244.1.50/24", "gateway": "10.244.1.1", "interface": 0}],
            },
        }
    return {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}


def pin_paths(plugin: str, conf: object, spec: Spec) -> None:
    """Put back the state directories a mutation removed: a missing ``dataDir``
    means the plugin's default under /var/lib/cni, which the fuzzer must not use."""
    if not isinstance(conf, dict):
        return
    if plugin == "flannel" and "dataDir" not in conf:
        conf["dataDir"] = str(spec.state / "flannel")
    if plugin in ("flannel", "bridge", "host-local"):
        ipam = conf.get("ipam")
        if ipam is None or (isinstance(ipam, dict) and ipam == {}):
            conf["ipam"] = ipam = {}
        if isinstance(ipam, dict) and not ipam.get("dataDir"):
            ipam["dataDir"] = str(spec.state / "ipam")


# -- node state -------------------------------------------------------------------------------


def snapshot(spec: Spec) -> Json:
    """What must not change: links/addresses (bridges aside), rule sets, files."""
    node_links = sh("ip", "-o", "link", "show").splitlines()
    bridges = set(os.listdir("/sys/class/net")) and {
        n for n in os.listdir("/sys/class/net") if os.path.isdir(f"/sys/class/net/{n}/bridge")
    }
    links = sorted(
        ln.split(":")[1].strip().split("@")[0]
        for ln in node_links
        if ln.split(":")[1].strip().split("@")[0] not in bridges
    )
    addrs = sorted(
        f"{p[1]} {p[3]}"
        for p in (ln.split() for ln in sh("ip", "-o", "addr", "show").splitlines())
        if p[1] not in bridges and not p[3].startswith("fe80:")
    )
    pod = sorted(
        " ".join(ln.split()[1:3])
        for ln in sh("ip", "-n", spec.pod, "-o", "addr", "show").splitlines()
    ) + [ln.split(":")[1].strip() for ln in sh("ip", "-n", spec.pod, "-o", "link").splitlines()]
    rules = []
    for tool in ("iptables-save", "ip6tables-save"):
        rules += [
            ln for ln in sh(tool).splitlines() if not ln.startswith("#") and not ln.startswith(":")
        ]
        rules += our_rules(sh(tool))
    nft = sh("nft", "-s", "list", "ruleset", check=False)  # -s: without counters
    return {
        "links": links,
        "addresses": addrs,
        "pod": pod,
        "iptables": sorted(rules),
        "nft": nft,
        "files": tree(spec.state),
    }


def tree(root: Path) -> list[str]:
    """Files under ``root`` with mode and content hash; directories, host-local's
    lock and its round-robin cursors (benign bookkeeping) are left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name == "lock" or name.startswith("last_reserved_ip."):
                continue
            st = path.lstat()
            digest = ""
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            out.append(f"{path.relative_to(root)} {st.st_mode:o} {digest}")
    return out


def diff(before: Json, after: Json) -> list[str]:
    out = []
    for key in before:
        if before[key] != after[key]:
            if isinstance(before[key], list):
                gone = sorted(set(before[key]) - set(after[key]))
                new = sorted(set(after[key]) - set(before[key]))
                out.append(f"{key}: new {new[:5]} gone {gone[:5]}")
            else:
                out.append(f"{key} changed")
    return out


# -- running one input ------------------------------------------------------------------------


class Outcome:
    def __init__(self, status: int, stdout: bytes, mode: str) -> None:
        self.status = status
        self.stdout = stdout
        self.mode = mode


class _Timeout(Exception):
    pass


def _alarm(_sig: int, _frame: object) -> None:
    raise _Timeout


def run_inprocess(plugin: str, environ: dict[str, str], stdin: bytes) -> Outcome:
    import importlib

    from cni_plugins.spec import skel

    module = importlib.import_module(f"cni_plugins.plugins.{MODULES[plugin]}")
    out, err = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            status = skel.run(
                module.PLUGIN, environ=environ, stdin=io.BytesIO(stdin), stdout=out, stderr=err
            )
    finally:
        signal.alarm(0)
    return Outcome(status, out.getvalue().encode(), "in-process")


def run_exec(spec: Spec, plugin: str, environ: dict[str, str], stdin: bytes) -> Outcome:
    env = {k: v for k, v in environ.items() if "\0" not in k + v and "=" not in k and k}
    proc = subprocess.run(
        [str(spec.bin / plugin)],
        input=stdin,
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    return Outcome(proc.returncode, proc.stdout, "exec")


class Tally:
    def __init__(self) -> None:
        self.tried = 0
        self.execd = 0
        self.ok = 0
        self.codes: Counter[str] = Counter()
        self.unclean: list[str] = []
        self.changed: list[str] = []
        self.internal: list[str] = []

    def as_json(self) -> Json:
        return {
            "tried": self.tried,
            "execd": self.execd,
            "ok": self.ok,
            "codes": dict(self.codes),
            "unclean": self.unclean,
            "changed": self.changed,
            "internal": self.internal,
        }


def judge(
    spec: Spec,
    *,
    tally: Tally,
    baseline: list[Json],
    plugin: str,
    environ: dict[str, str],
    stdin: bytes,
) -> None:
    """Run one input and check the answer and the node; ``baseline[0]`` is the
    state every input starts from (re-taken after a reported change)."""
    tally.tried += 1
    use_exec = tally.tried % EXEC_EVERY == 0
    command = environ.get("CNI_COMMAND", "")
    try:
        if use_exec:
            tally.execd += 1
            outcome = run_exec(spec, plugin, environ, stdin)
        else:
            outcome = run_inprocess(plugin, environ, stdin)
    except _Timeout:
        tally.unclean.append(f"{plugin} {command}: hung > 60 s: {environ} {stdin[:300]!r}")
        return
    what = f"{plugin} {command} ({outcome.mode}) env={environ} stdin={stdin[:400]!r}"
    if not command:
        problem = None if outcome.status == 0 and not outcome.stdout else "no CNI_COMMAND"
    else:
        problem = answer_problem(command, outcome.status, outcome.stdout)
    if problem:
        tally.unclean.append(f"{problem}: {what} -> {outcome.stdout[:300]!r}")
    if outcome.status == 0:
        tally.ok += 1
        tally.codes["ok"] += 1
    else:
        try:
            code = json.loads(outcome.stdout).get("code")
        except (ValueError, AttributeError):
            code = None
        tally.codes[str(code)] += 1
        if code == 999:
            tally.internal.append(f"{what} -> {outcome.stdout[:300]!r}")
    if outcome.status == 0 and command == "ADD":
        undo = dict(environ, CNI_COMMAND="DEL")
        undone = run_inprocess(plugin, undo, stdin)
        if undone.status != 0:
            tally.changed.append(f"DEL after ADD failed {undone.stdout[:200]!r}: {what}")
    if plugin == "loopback" and outcome.status == 0:
        sh("ip", "-n", spec.pod, "link", "set", "lo", "up")  # DEL downs lo: its job
    after = snapshot(spec)
    changes = diff(baseline[0], after)
    if changes:
        kind = "after a failed call" if outcome.status else "after ADD+DEL or a successful call"
        tally.changed.append(f"{kind}: {changes}: {what}")
        baseline[0] = after


# -- hypothesis strategies --------------------------------------------------------------------


def strategies(spec: Spec) -> Any:
    from hypothesis import strategies as st

    text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=40)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
        | st.sampled_from(["", "0", "-1", "1.1.0", "10.244.1.7", "::1", "tcp", "eth0", "a" * 300])
    )
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )
    keys = st.sampled_from(
        [
            "cniVersion",
            "name",
            "type",
            "bridge",
            "ipam",
            "ranges",
            "subnet",
            "routes",
            "ipMasq",
            "isGateway",
            "mtu",
            "vlan",
            "hairpinMode",
            "delegate",
            "runtimeConfig",
            "portMappings",
            "hostPort",
            "containerPort",
            "protocol",
            "hostIP",
            "prevResult",
            "ips",
            "interfaces",
            "address",
            "gateway",
            "args",
            "cni",
            "capabilities",
            "conditionsV4",
            "conditionsV6",
            "backend",
            "markMasqBit",
            "externalSetMarkChain",
            "snat",
            "masqAll",
            "rangeStart",
            "rangeEnd",
            "cni.dev/valid-attachments",
            "ipMasqBackend",
            "promiscMode",
            "macspoofchk",
            "forceAddress",
            "dns",
        ]
    ) | text.filter(lambda k: k not in PATH_KEYS)
    safe = st.sampled_from(spec.safe_paths())
    identifiers = (
        st.sampled_from(
            ["ctr1", "ctr-2.x_y", "..", ".hidden", "../../etc", "/abs", "a/b", "a" * 256, "-x", "é"]
        )
        | text
    )
    ifnames = st.sampled_from(["eth0", "eth1", "lo", "", ".", "..", "a/b", "a:b", "a b", "x" * 16])
    netns = st.sampled_from(
        [
            f"/run/netns/{spec.pod}",
            f"/run/netns/{spec.node}",
            "/proc/self/ns/net",
            "/proc/thread-self/ns/net",
            "/proc/self/ns/mnt",
            "/run/netns/cnit-does-not-exist",
            "/dev/null",
            "/run/netns",
            "relative/ns",
            "",
        ]
    )
    cni_path = st.sampled_from(
        [str(spec.bin), "", str(spec.tmp / "nothing-here"), f"{spec.tmp / 'none'}:{spec.bin}", "."]
    )
    cni_args = (
        st.sampled_from(
            [
                "",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
                "IP=10.244.1.9",
                "IgnoreUnknown=1;IP=10.244.1.300",
                "IgnoreUnknown=true;MAC=zz:zz",
                "MAC=02:42:ac:11:00:02",
                "=;=;",
                ";;;",
                "a=b=c",
                "IgnoreUnknown",
            ]
        )
        | st.lists(st.tuples(text, text), max_size=4).map(
            lambda kv: ";".join(f"{k}={v}" for k, v in kv)
        )
        | text
    )
    commands = st.sampled_from(["ADD"] * 6 + ["DEL"] * 3 + ["CHECK", "STATUS", "GC", "VERSION"]) | (
        st.sampled_from(["", "add", "Del", "FOO", "VERSION "])
    )
    return st, values, keys, safe, identifiers, ifnames, netns, cni_path, cni_args, commands


def mutate(draw: Any, st: Any, conf: Any, *, values: Any, keys: Any, safe: Any) -> Any:
    """One random mutation somewhere in the JSON tree: replace, delete, add a key,
    change a type, wrap in a list."""
    path: list[Any] = []
    node = conf
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "replace"]))
    if not path:
        if op == "add" and isinstance(conf, dict):
            key = draw(keys)
            conf[key] = draw(values)
            return conf
        return conf if op != "replace" else draw(values)
    parent = conf
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if isinstance(last, str) and last in PATH_KEYS:
        parent[last] = draw(safe | st.integers() | st.lists(safe, max_size=2))
    elif op == "replace":
        parent[last] = draw(values)
    elif op == "delete":
        del parent[last]
    elif op == "wrap":
        parent[last] = [parent[last]]
    elif isinstance(parent[last], dict):
        parent[last][draw(keys)] = draw(values)
    else:
        parent[last] = draw(values)
    return conf


def fuzz(spec: Spec, tally: Tally, plugin: str) -> None:
    from hypothesis import HealthCheck, given, seed, settings

    st, values, keys, safe, identifiers, ifnames, netns, cni_path, cni_args, commands = strategies(
        spec
    )
    base = base_config(plugin, spec)
    snapshot(spec)  # the first listing may instantiate tables; compare from the second
    baseline = [snapshot(spec)]

    @seed(spec.seed)
    @settings(
        max_examples=spec.examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(st.data())
    def one(data: Any) -> None:
        draw = data.draw
        conf: Any = copy.deepcopy(base)
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            conf = mutate(draw, st, conf, values=values, keys=keys, safe=safe)
        pin_paths(plugin, conf, spec)
        raw = draw(
            st.sampled_from(["json"] * 8 + ["junk", "truncated", "deep", "notobject", "nan"])
        )
        if raw == "json":
            stdin = json.dumps(conf).encode()
        elif raw == "junk":
            stdin = draw(st.binary(max_size=200))
        elif raw == "truncated":
            whole = json.dumps(conf).encode()
            stdin = whole[: draw(st.integers(min_value=0, max_value=len(whole)))]
        elif raw == "deep":
            stdin = b"[" * 100000 + b"]" * 100000
        elif raw == "notobject":
            stdin = json.dumps(draw(values)).encode()
        else:
            stdin = json.dumps(conf).encode().replace(b'"1.0.0"', b"NaN", 1)
        environ = {"PATH": PATH, "CNI_PLUGINS_CACHE_DIR": str(spec.cache)}
        fuzz_env = draw(st.sampled_from([False, False, True]))
        for name, strategy, default in (
            ("CNI_COMMAND", commands, "ADD"),
            ("CNI_CONTAINERID", identifiers, "fuzz-ctr"),
            ("CNI_NETNS", netns, f"/run/netns/{spec.pod}"),
            ("CNI_IFNAME", ifnames, "eth0"),
            ("CNI_PATH", cni_path, str(spec.bin)),
            ("CNI_ARGS", cni_args, "IgnoreUnknown=1;K8S_POD_NAME=p"),
        ):
            choice = (
                draw(st.sampled_from(["default"] * 4 + ["fuzz", "absent"]))
                if fuzz_env
                else "default"
            )
            if choice == "default":
                environ[name] = default
            elif choice == "fuzz":
                environ[name] = draw(strategy)
        if draw(st.booleans()):
            environ["CNI_NETNS_OVERRIDE"] = draw(st.sampled_from(["1", "true", "0", ""]))
        judge(spec, tally=tally, baseline=baseline, plugin=plugin, environ=environ, stdin=stdin)

    one()


def worker(spec: Spec) -> Json:
    """Runs inside the node namespace and a private mount namespace."""
    os.environ["PATH"] = PATH
    sh("mount", "-t", "tmpfs", "-o", "size=16m", "cnit-rel-varlibcni", "/var/lib/cni")
    cwd = spec.tmp / "cwd" / "a"
    cwd.mkdir(parents=True, exist_ok=True)
    os.chdir(cwd)
    (spec.state / "file").parent.mkdir(parents=True, exist_ok=True)
    (spec.state / "file").write_text("a file where a directory is expected\n")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    summary: Json = {}
    started = time.monotonic()
    for plugin in spec.plugins:
        tally = Tally()
        try:
            fuzz(spec, tally, plugin)
        except Exception:  # noqa: BLE001 - report, never hide
            tally.unclean.append(f"fuzzer crashed: {traceback.format_exc()[-3000:]}")
        summary[plugin] = tally.as_json()
    summary["seconds"] = time.monotonic() - started
    written = [p for p in Path("/var/lib/cni").rglob("*") if p.is_file()]
    # The launcher's default unpack cache: the binaries' bundle, not plugin state.
    cache = Path("/var/lib/cni/cni-plugins-py")
    summary["default_dirs_written"] = [str(p) for p in written if not p.is_relative_to(cache)]
    summary["default_cache_written"] = [str(p) for p in written if p.is_relative_to(cache)]
    return summary


# -- the driver's side ------------------------------------------------------------------------


def run_bad_input(world: World, *, examples: int, seed: int = 0) -> Json:
    """Warm the node up (bridge and shared chains exist, as on a live node),
    then run the worker in the node namespace; returns its summary plus the
    exec'd stdin-size checks."""
    pod = world.netns("fuzzpod")
    warm = world.new_pod()
    world.add(warm)
    world.delete(warm)
    world.del_netns(warm.ns)
    spec = {
        "tmp": str(world.tmp / "fuzz"),
        "bin": str(world.bin),
        "cache": str(world.cache_dir),
        "node": world.node,
        "pod": pod,
        "subnet_file": str(world.subnet_file),
        "examples": examples,
        "seed": seed,
        "plugins": list(PLUGINS),
    }
    (world.tmp / "fuzz").mkdir(exist_ok=True)
    spec_file = world.tmp / "fuzz" / "spec.json"
    spec_file.write_text(json.dumps(spec))
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            world.node,
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            "-m",
            "tests.reliability.badinput",
            "--worker",
            str(spec_file),
        ],
        capture_output=True,
        check=False,
        timeout=3600,
        cwd=repo,
        env={"PATH": PATH, "PYTHONPATH": str(repo)},
    )
    try:
        summary: Json = json.loads(proc.stdout)
    except ValueError:
        summary = {"worker_failed": proc.stderr.decode(errors="replace")[-3000:]}
    summary["stdin_limit"] = stdin_limit(world)
    world.del_netns(pod)
    return summary


def stdin_limit(world: World) -> Json:
    """Every binary, exec'd: a config over 1 MiB is refused with code 7, one just
    under it is read (and then judged on its content)."""
    out: Json = {}
    from cni_plugins.spec.skel import MAX_STDIN

    for plugin in PLUGINS:
        big = b'{"cniVersion":"1.0.0","name":"x","pad":"' + b"a" * MAX_STDIN + b'"}'
        proc = subprocess.run(
            ["ip", "netns", "exec", world.node, str(world.bin / plugin)],
            input=big,
            env={
                "PATH": PATH,
                "CNI_COMMAND": "STATUS",
                "CNI_PATH": str(world.bin),
                "CNI_PLUGINS_CACHE_DIR": str(world.cache_dir),
            },
            capture_output=True,
            check=False,
            timeout=60,
        )
        try:
            code = json.loads(proc.stdout).get("code")
        except (ValueError, AttributeError):
            code = None
        out[plugin] = {"status": proc.returncode, "code": code}
    return out


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        spec = Spec(json.loads(Path(sys.argv[2]).read_text()))
        print(json.dumps(worker(spec)))
        return
    raise SystemExit("usage: python -m tests.reliability.badinput --worker SPEC.json")


if __name__ == "__main__":
    main()
