"""Ours vs the Go reference plugins, side by side, in one run (issue 8).

Scenarios (each implementation in its own throwaway node namespace; every
iteration alternates which one goes first; warm-up iterations are discarded):

- ``ip netns exec`` alone: the constant every in-namespace row below includes;
- VERSION of each binary (whole process, no namespace);
- host-local ADD/DEL alone (IPAM only);
- bridge + host-local ADD/DEL on a fresh pod netns (without and with ipMasq);
- the flannel + portmap conflist ADD/DEL on a fresh pod netns, driven like libcni.
  Go has no flannel: its chain starts with Go bridge given the very config our
  flannel renders, so "step 1" compares flannel>bridge>host-local with
  bridge>host-local (one process fewer for Go);
- the bare start of our bundled interpreter (bench/bare.py), VERSION's floor;
- cold: the first VERSION and the first pod ADD after install (fresh copies,
  evicted from the page cache, ours with an empty unpack cache);
- 20 concurrent pod ADDs, then 20 concurrent DELs (batch wall time);
- a burst of ``--burst`` (100) pods: batch wall and each pod's latency;
- one more pod on a full node of 110, then 250 pods (``--pods``; bench/fullnode.py);
- the conflist with portmap's nftables backend (where the implementation has one);
- the conflist again with 2,000 unrelated rules in the node's nat table;
- peak RSS per process kind, and binary sizes.

``--repeat N`` runs all of it N times, each in a fresh world; the report adds
issue 18's goal table (bench/goals.py) and, for a missed goal, the trace
breakdown of ours in its rows, from traced execs run apart from the timed ones.

portmap is optional on our side: without it the conflist is flannel alone for
both implementations and the portmap rows say n/a.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench import bare, goals, stats
from bench.cni import (
    STEP_SEP,
    SUBNET_ENV,
    Impl,
    Json,
    Pod,
    Recorder,
    Step,
    StepFailed,
    bridge_conf,
    chain_add,
    chain_del,
    flannel_conf,
    host_local_conf,
    new_pod,
    portmap_conf,
    rendered_delegate,
    step_label,
    total_label,
)
from bench.fullnode import FullNode
from bench.proc import BASE_ENV, run, run_checked
from bench.world import IP, World, filler_rules, leftover_namespaces, which

REPO = Path(__file__).resolve().parent.parent
PLUGINS = ("flannel", "bridge", "host-local", "loopback", "portmap")
FAILURES_BEFORE_GIVING_UP = 3
CONCURRENT_PODS = 20
FILLER_RULES = 2000
# Issue 18's scale: a node with 110 (kubelet's default maxPods) then 250 pods,
# and a burst of 100 concurrent pods.  FLANNEL_SUBNET is a /24: at most 252 pods.
FULL_NODE_PODS = (110, 250)
MAX_FULL_NODE_PODS = 250
BURST_PODS = 100
FILL_THREADS = 4
COLD_RUNS = 3  # each a fresh install: few, and said so in the table's n
BARE_LABEL = "bare start of our bundled interpreter (`python -S -I -c pass`, bench/bare.py)"


@dataclass(frozen=True, slots=True)
class Options:
    ours: Path
    go: Path
    runs: int
    warmup: int
    batches: int
    quick: bool
    out: Path | None
    source_tree: bool
    command: str
    full_node: tuple[int, ...] = FULL_NODE_PODS
    burst: int = BURST_PODS
    repeat: int = 1
    cold: int = COLD_RUNS
    traces: int = 3  # traced (untimed) execs per row, for the breakdowns


@dataclass
class Bench:
    opts: Options
    world: World
    rec: Recorder = field(default_factory=Recorder)
    impls: list[Impl] = field(default_factory=list)
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)
    _pods: int = 0

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        ours_dir = self.opts.ours
        if self.opts.source_tree:
            ours_dir = write_source_wrappers(self.world.tmp / "source-bin")
        self.impls = [Impl("ours", ours_dir), Impl("go", self.opts.go)]
        for impl in self.impls:
            impl.node = self.world.add_netns(f"{impl.key}-node")
            impl.work = self.world.tmp / impl.key
            impl.work.mkdir()
            (impl.work / "subnet.env").write_text(SUBNET_ENV)

    @property
    def ours(self) -> Impl:
        return self.impls[0]

    @property
    def has_portmap(self) -> bool:
        return all(impl.has("portmap") for impl in self.impls)

    # -- iteration machinery ---------------------------------------------------------------

    def iterate(
        self, scenario: str, body: Callable[[Impl], None], runs: int, warmup: int | None = None
    ) -> None:
        """Warm-up then ``runs`` measured iterations, alternating A/B order."""
        started = time.monotonic()
        try:
            self._iterate(scenario, body, runs, self.opts.warmup if warmup is None else warmup)
        finally:
            took = time.monotonic() - started
            print(f"bench: {scenario}: {took:.1f} s", file=sys.stderr, flush=True)

    def _iterate(self, scenario: str, body: Callable[[Impl], None], runs: int, warmup: int) -> None:
        for i in range(-warmup, runs):
            self.rec.warmup = i < 0
            order = self.impls if i % 2 == 0 else list(reversed(self.impls))
            for impl in order:
                key = (scenario, impl.key)
                if self._failures.get(key, 0) >= FAILURES_BEFORE_GIVING_UP:
                    continue
                try:
                    body(impl)
                except (StepFailed, RuntimeError) as exc:
                    self._failures[key] = self._failures.get(key, 0) + 1
                    self.rec.errors.append(f"{scenario} [{impl.key}]: {exc}")
        self.rec.warmup = False

    def next_pod(self, impl: Impl, netns_name: str) -> Pod:
        self._pods += 1
        cid = f"cnib{self.world.token}{impl.key}{self._pods:05d}"
        return new_pod(cid, netns_name, 30000 + self._pods % 20000)

    @contextmanager
    def pod_netns(self, impl: Impl) -> Iterator[str]:
        name = self.world.add_netns(f"{impl.key}-pod")
        try:
            yield name
        finally:
            self.world.del_netns(name)

    def traced(self, impl: Impl, prefix: str, steps: Callable[[Impl], list[Step]]) -> None:
        """A few ADD/DELs of ours with CNI_PLUGINS_TRACE=1, apart from the timed
        ones: their trace lines go to ``rec.traces`` (for a missed goal's breakdown)."""
        if impl.key != "ours" or self.opts.source_tree:
            return
        env = dict(impl.extra_env, CNI_PLUGINS_TRACE="1")
        traced = Impl(impl.key, impl.bin_dir, node=impl.node, work=impl.work, extra_env=env)
        scratch = Recorder(enabled=False)
        try:
            for _ in range(self.opts.traces):
                self.cycle(traced, steps(traced), prefix, scratch)
        except StepFailed as exc:
            self.rec.errors.append(f"traced {prefix}: {exc}")
        for label, lines in scratch.traces.items():
            self.rec.traces.setdefault(label, []).extend(lines)

    def cycle(
        self, impl: Impl, steps: Sequence[Step], prefix: str, rec: Recorder | None = None
    ) -> None:
        """ADD then DEL on a fresh pod netns; on failure, clean up unmeasured."""
        rec = self.rec if rec is None else rec
        with self.pod_netns(impl) as ns:
            pod = self.next_pod(impl, ns)
            cached: Json | None = None
            try:
                cached = chain_add(impl, steps, pod, rec, prefix=prefix)
                chain_del(impl, steps, pod, cached, rec, prefix=prefix)
            except StepFailed:
                try:
                    chain_del(impl, steps, pod, cached, Recorder(enabled=False), prefix=prefix)
                except StepFailed:
                    pass
                raise

    # -- scenarios ---------------------------------------------------------------------------

    def conflist(self, impl: Impl, backend: str = "") -> list[Step]:
        first_label = "flannel>bridge>host-local (Go: bridge>host-local)"
        if impl.key == "ours":
            steps = [Step("flannel", flannel_conf(impl.work), first_label)]
        else:
            steps = [Step("bridge", rendered_delegate(impl.work), first_label)]
        if self.has_portmap:
            steps.append(Step("portmap", portmap_conf(backend), "portmap"))
        return steps

    def conflist_prefix(self, extra: str = "") -> str:
        what = "flannel+portmap" if self.has_portmap else "flannel; portmap n/a"
        return f"pod {{verb}} ({what}{extra})"

    def declare_conflist(self, prefix: str) -> None:
        first = Step("-", {}, "flannel>bridge>host-local (Go: bridge>host-local)")
        port = Step("portmap", {}, "portmap")
        for verb in ("ADD", "DEL"):
            if self.has_portmap:
                self.rec.declare(
                    total_label(prefix, verb),
                    step_label(prefix, verb, first),
                    step_label(prefix, verb, port),
                )
                continue
            # One step only: its row is the total; say why portmap is missing.
            missing = total_label(prefix, verb) + STEP_SEP + port.label
            self.rec.declare(total_label(prefix, verb), missing)
            for impl in self.impls:
                why = "not built yet" if not impl.has("portmap") else "not run: ours has none"
                self.rec.note(missing, impl.key, why)

    def scenario_baseline(self) -> None:
        label = "harness: `ip netns exec <node> true` (part of every ADD/DEL row)"
        true = which("true")

        def body(impl: Impl) -> None:
            m = run([IP, "netns", "exec", impl.node, true], b"", BASE_ENV)
            if not m.ok:
                raise RuntimeError(m.describe())
            self.rec.add(label, impl.key, m.wall_ms)

        self.iterate("baseline", body, self.opts.runs)

    def scenario_version(self) -> None:
        for plugin in PLUGINS:
            self.rec.declare(f"VERSION {plugin}")
            for impl in self.impls:
                if not impl.has(plugin):
                    why = "no Go flannel" if impl.key == "go" else "not built yet"
                    self.rec.note(f"VERSION {plugin}", impl.key, why)

        def body(impl: Impl) -> None:
            for plugin in PLUGINS:
                if impl.has(plugin):
                    m = impl.version(plugin, rss=self.rec.want_rss)
                    if not m.ok:
                        raise RuntimeError(m.describe())
                    self.rec.add(f"VERSION {plugin}", impl.key, m.wall_ms, m.maxrss_kib)

        self.iterate("VERSION", body, self.opts.runs)
        if not self.opts.source_tree:
            traced = Impl("ours", self.ours.bin_dir, extra_env={"CNI_PLUGINS_TRACE": "1"})
            for _ in range(self.opts.traces):
                for plugin in PLUGINS:
                    if traced.has(plugin):
                        self.rec.trace(f"VERSION {plugin}", traced, traced.version(plugin))

    def scenario_bare_interpreter(self) -> None:
        """Our interpreter's bare start (bench/bare.py), after VERSION warmed the cache."""
        self.rec.declare(BARE_LABEL)
        self.rec.note(BARE_LABEL, "go", "no interpreter")
        if self.opts.source_tree:
            self.rec.note(BARE_LABEL, "ours", "source tree")
            return
        argv, why = bare.bare_argv(self.ours.bin_dir, self.world.tmp)
        if argv is None:
            self.rec.note(BARE_LABEL, "ours", why)
            return
        command = argv

        def body(impl: Impl) -> None:
            if impl.key != "ours":
                return
            m = run(command, b"", BASE_ENV)
            if not m.ok:
                raise RuntimeError(m.describe())
            self.rec.add(BARE_LABEL, impl.key, m.wall_ms)

        self.iterate("bare interpreter", body, self.opts.runs)

    def scenario_host_local(self) -> None:
        prefix = "host-local {verb} (IPAM only)"

        def body(impl: Impl) -> None:
            steps = [Step("host-local", host_local_conf(impl.work), "host-local")]
            pod = self.next_pod(impl, "-")
            pod = Pod(pod.container_id, "/dev/null", pod.host_port)
            cached = chain_add(impl, steps, pod, self.rec, prefix=prefix)
            chain_del(impl, steps, pod, cached, self.rec, prefix=prefix)

        self.iterate("host-local", body, self.opts.runs)

    def scenario_bridge(self, *, ip_masq: bool) -> None:
        prefix = "bridge+host-local {verb}" + (", ipMasq" if ip_masq else "")
        bridge, subnet = ("cnib-brm", "10.246.0.0/24") if ip_masq else ("cnib-br", "10.245.0.0/24")

        def body(impl: Impl) -> None:
            conf = bridge_conf(impl.work, bridge=bridge, subnet=subnet, ip_masq=ip_masq)
            self.cycle(impl, [Step("bridge", conf, "bridge>host-local")], prefix)

        self.iterate(total_label(prefix, "ADD/DEL"), body, self.opts.runs)

    def scenario_conflist(self, extra: str = "") -> None:
        prefix = self.conflist_prefix(extra)
        self.declare_conflist(prefix)
        self.iterate(
            total_label(prefix, "ADD/DEL"),
            lambda impl: self.cycle(impl, self.conflist(impl), prefix),
            self.opts.runs,
        )
        if not extra:
            self.traced(self.ours, prefix, self.conflist)

    def scenario_concurrent(self, count: int, *, per_pod: bool = False) -> None:
        """``count`` pod ADDs at once, then ``count`` DELs: batch wall time, and
        with ``per_pod`` each pod's own ADD/DEL latency inside the burst."""
        what = "flannel+portmap" if self.has_portmap else "flannel; portmap n/a"
        add_label = f"{count} concurrent pod ADDs ({what}), batch wall"
        del_label = f"{count} concurrent pod DELs ({what}), batch wall"
        per_add = f"{count} concurrent pod ADDs: each pod's ADD"
        per_del = f"{count} concurrent pod DELs: each pod's DEL"
        self.rec.declare(add_label, del_label, *((per_add, per_del) if per_pod else ()))

        def body(impl: Impl) -> None:
            steps = self.conflist(impl)
            names: list[str] = []
            try:
                for _ in range(count):
                    names.append(self.world.add_netns(f"{impl.key}-cp"))
                pods = [self.next_pod(impl, n) for n in names]
                results: list[Json | None] = [None] * len(pods)
                scratch = Recorder(enabled=False)
                add_ms: list[float] = [0.0] * len(pods)
                del_ms: list[float] = [0.0] * len(pods)

                def add(j: int) -> None:
                    t = time.perf_counter_ns()
                    results[j] = chain_add(impl, steps, pods[j], scratch, prefix="")
                    add_ms[j] = (time.perf_counter_ns() - t) / 1e6

                def delete(j: int) -> None:
                    t = time.perf_counter_ns()
                    chain_del(impl, steps, pods[j], results[j], scratch, prefix="")
                    del_ms[j] = (time.perf_counter_ns() - t) / 1e6

                add_wall, add_errors = run_parallel(add, len(pods))
                del_wall, del_errors = run_parallel(delete, len(pods))
                if add_errors or del_errors:
                    raise RuntimeError("; ".join((add_errors + del_errors)[:3]))
                self.rec.add(add_label, impl.key, add_wall)
                self.rec.add(del_label, impl.key, del_wall)
                if per_pod:
                    # A pod's latency: its chain's execs, start to end, as its runtime sees it.
                    for ms in add_ms:
                        self.rec.add(per_add, impl.key, ms)
                    for ms in del_ms:
                        self.rec.add(per_del, impl.key, ms)
            finally:
                for name in names:
                    self.world.del_netns(name)

        # The scenarios before warmed every cache; a batch is long enough as it is.
        self.iterate(f"{count} concurrent", body, self.opts.batches, warmup=0)

    def scenario_full_node(self) -> None:
        """One more pod's ADD/DEL on a node already holding N pods, for each N of
        ``--pods`` (growing the same node): host-local store, nat rules and
        conntrack entries of that many pods, each with its own hostPort."""
        if not self.opts.full_node:
            return
        nodes = {impl.key: FullNode(self, impl) for impl in self.impls}
        try:
            for impl in self.impls:
                nodes[impl.key].setup()
            for size in self.opts.full_node:
                for impl in self.impls:
                    started = time.monotonic()
                    try:
                        nodes[impl.key].fill(size)
                    except (StepFailed, RuntimeError) as exc:
                        self.rec.errors.append(f"full node, {size} pods [{impl.key}]: {exc}")
                        return
                    took = time.monotonic() - started
                    print(
                        f"bench: full node {impl.key}: {size} pods ({took:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
                prefix = self.conflist_prefix(f", {size} pods on the node")
                self.declare_conflist(prefix)
                self.iterate(
                    total_label(prefix, "ADD/DEL"),
                    lambda impl, p=prefix: nodes[impl.key].cycle(p),  # type: ignore[misc]
                    self.opts.runs,
                )
                self.traced(nodes["ours"].impl, prefix, self.conflist)
        finally:
            for node in nodes.values():
                node.teardown()

    def fresh_install(self, impl: Impl, name: str) -> Impl:
        """``impl``'s binaries copied into a fresh directory and evicted from the
        page cache (only these files: fsync, then POSIX_FADV_DONTNEED); ours with a
        fresh, empty unpack cache.  The first exec from it is a cold start."""
        directory = self.world.tmp / name
        directory.mkdir()
        for plugin in PLUGINS:
            if impl.has(plugin):
                copied = directory / plugin
                shutil.copy2(impl.bin_dir / plugin, copied)
                fd = os.open(copied, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        extra: dict[str, str] = {}
        if impl.key == "ours":
            cache = directory / ".unpack-cache"
            cache.mkdir(mode=0o700)
            extra["CNI_PLUGINS_CACHE_DIR"] = str(cache)
        return Impl(impl.key, directory, node=impl.node, work=impl.work, extra_env=extra)

    def scenario_cold(self) -> None:
        """The first VERSION and the first pod ADD after install (each from its own
        fresh install), ``cold`` times; the rows before are all warm."""
        if not self.opts.cold or self.opts.source_tree:
            return
        version_label = "cold: first VERSION bridge after install"
        prefix = "cold: first pod {verb} after install"
        self.rec.declare(version_label, total_label(prefix, "ADD"))
        rounds = 0

        def body(impl: Impl) -> None:
            nonlocal rounds
            rounds += 1
            installed = self.fresh_install(impl, f"cold-{impl.key}-{rounds}-v")
            m = installed.version("bridge")
            if not m.ok:
                raise RuntimeError(m.describe())
            self.rec.add(version_label, impl.key, m.wall_ms)
            installed = self.fresh_install(impl, f"cold-{impl.key}-{rounds}-a")
            steps = self.conflist(installed)
            with self.pod_netns(installed) as ns:
                pod = self.next_pod(installed, ns)
                cached = chain_add(installed, steps, pod, self.rec, prefix=prefix)
                chain_del(installed, steps, pod, cached, Recorder(enabled=False), prefix="")

        self.iterate("cold", body, self.opts.cold, warmup=0)

    def scenario_nftables(self) -> None:
        """The pod rows with portmap's nftables backend, each implementation on a
        fresh node.  Go's portmap before v1.5.0 has no such backend and ignores the
        key (it would measure iptables): probed, and then not measured."""
        if not self.has_portmap:
            return
        prefix = self.conflist_prefix(", portmap nftables backend")
        self.declare_conflist(prefix)
        nodes: dict[str, Impl] = {}
        for impl in self.impls:
            work = self.world.tmp / f"{impl.key}-nft"
            work.mkdir()
            (work / "subnet.env").write_text(SUBNET_ENV)
            node = self.world.add_netns(f"{impl.key}-nft")
            nodes[impl.key] = Impl(impl.key, impl.bin_dir, node=node, work=work)
        skip: set[str] = set()
        for impl in nodes.values():
            why = self.nft_backend_missing(impl)
            if why:
                skip.add(impl.key)
                for verb in ("ADD", "DEL"):
                    self.rec.note(total_label(prefix, verb), impl.key, why)

        def body(impl: Impl) -> None:
            if impl.key not in skip:
                node = nodes[impl.key]
                self.cycle(node, self.conflist(node, "nftables"), prefix)

        self.iterate(total_label(prefix, "ADD/DEL"), body, self.opts.runs)

    def nft_backend_missing(self, impl: Impl) -> str:
        """ "" when a pod ADD with ``"backend": "nftables"`` leaves portmap's nftables
        table in the node; else why not."""
        steps = self.conflist(impl, "nftables")
        scratch = Recorder(enabled=False)
        with self.pod_netns(impl) as ns:
            pod = self.next_pod(impl, ns)
            try:
                cached = chain_add(impl, steps, pod, scratch, prefix="")
            except StepFailed as exc:
                return f"ADD failed: {str(exc)[:120]}"
            try:
                listed = run_checked(
                    [IP, "netns", "exec", impl.node, which("nft"), "list", "tables"]
                )
            finally:
                chain_del(impl, steps, pod, cached, scratch, prefix="")
        if b"cni_hostport" not in listed:
            return "this portmap has no nftables backend, ignores the key"
        return ""

    def load_filler(self) -> None:
        restore = which("iptables-restore")
        iptables = which("iptables")
        script = filler_rules(FILLER_RULES)
        for impl in self.impls:
            run_checked([IP, "netns", "exec", impl.node, restore, "--noflush"], script)
            listed = run_checked([IP, "netns", "exec", impl.node, iptables, "-t", "nat", "-S"])
            rules = sum(1 for line in listed.splitlines() if line.startswith(b"-A CNIB-FILLER"))
            if rules != FILLER_RULES:
                raise RuntimeError(
                    f"{impl.node}: expected {FILLER_RULES} filler rules, got {rules}"
                )

    def check_delegate_matches(self) -> None:
        """Our flannel's saved delegate config must equal what Go bridge is given."""
        impl = self.ours
        steps = self.conflist(impl)[:1]
        with self.pod_netns(impl) as ns:
            pod = self.next_pod(impl, ns)
            scratch = Recorder(enabled=False)
            cached = chain_add(impl, steps, pod, scratch, prefix="")
            try:
                saved = json.loads((impl.work / "flannel" / pod.container_id).read_bytes())
                expected = rendered_delegate(impl.work)
                saved.pop("prevResult", None)
                if saved != expected:
                    self.rec.errors.append(
                        f"our flannel saved {saved!r}, but the Go chain is given {expected!r}"
                    )
            finally:
                chain_del(impl, steps, pod, cached, scratch, prefix="")

    def run(self) -> None:
        self.setup()
        try:
            self.check_delegate_matches()
        except StepFailed as exc:
            self.rec.errors.append(f"delegate check: {exc}")
        self.scenario_baseline()
        self.scenario_version()
        self.scenario_bare_interpreter()
        self.scenario_host_local()
        self.scenario_bridge(ip_masq=False)
        if not self.opts.quick:
            self.scenario_bridge(ip_masq=True)
        self.scenario_conflist()
        self.scenario_cold()
        self.scenario_concurrent(CONCURRENT_PODS)
        if self.opts.burst:
            self.scenario_concurrent(self.opts.burst, per_pod=True)
        self.scenario_full_node()
        self.scenario_nftables()
        self.load_filler()
        self.scenario_conflist(f", {FILLER_RULES:,} nat rules")


def run_parallel(fn: Callable[[int], None], count: int) -> tuple[float, list[str]]:
    """Run fn(0..count-1) in threads at once; (wall ms, error texts)."""
    errors: list[str] = []

    def wrapped(j: int) -> None:
        try:
            fn(j)
        except (StepFailed, OSError, ValueError) as exc:  # reported; the batch goes on
            errors.append(str(exc))

    threads = [threading.Thread(target=wrapped, args=(j,), daemon=True) for j in range(count)]
    start = time.perf_counter_ns()
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        # Let the running plugins finish before the namespaces go away.
        for t in threads:
            t.join(timeout=60)
        raise
    return (time.perf_counter_ns() - start) / 1e6, errors


def write_source_wrappers(directory: Path) -> Path:
    """Executables running the plugins of this source tree (no build needed)."""
    from tests.conftest import write_script_plugins

    return write_script_plugins(directory)


# -- report ----------------------------------------------------------------------------------


def machine_info(opts: Options, started: datetime.datetime, load: tuple[str, str]) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    about = ""
    flannel = opts.ours / "flannel"
    if flannel.exists() and not opts.source_tree:
        m = run([str(flannel)], b"", BASE_ENV)  # its about text: the build's version
        about = m.stderr.decode(errors="replace").splitlines()[0] if m.stderr else ""
    go_version = _dpkg_version("containernetworking-plugins")
    ours = "source tree (script wrappers)" if opts.source_tree else f"{opts.ours} {about}".strip()
    return [
        f"- date: {started.isoformat(timespec='seconds')}",
        f"- command: `{opts.command}`",
        f"- CPU: {cpu}; cores: {os.cpu_count()}; kernel: {platform.release()}",
        f"- load average (1 min) at start / end: {load[0]} / {load[1]}",
        f"- ours: {ours}",
        f"- Go: {opts.go} (containernetworking-plugins {go_version})",
        f"- python: {platform.python_version()}; runs: {opts.runs} (+{opts.warmup} warm-up), "
        f"concurrent batches: {opts.batches}; burst: {opts.burst}; full node: "
        f"{','.join(map(str, opts.full_node)) or 'skipped'}; cold starts: {opts.cold}; "
        f"repeat: {opts.repeat}{'; --quick' if opts.quick else ''}",
    ]


def _dpkg_version(package: str) -> str:
    try:
        dpkg = which("dpkg-query")
    except RuntimeError:
        return "?"
    m = run([dpkg, "-W", "-f", "${Version}", package], b"", BASE_ENV)
    return m.stdout.decode().strip() if m.ok else "?"


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def display_label(label: str) -> str:
    """A step row is shown under its total row as ``↳ step``."""
    if STEP_SEP in label:
        return "↳ " + label.split(STEP_SEP, 1)[1]
    return label


def timing_table(rec: Recorder) -> str:
    rows = []
    for label in rec.rows:
        ours = stats.summarize(rec.times.get((label, "ours"), []))
        go = stats.summarize(rec.times.get((label, "go"), []))
        rows.append(
            stats.timing_row(
                display_label(label),
                ours,
                go,
                ours_note=rec.notes.get((label, "ours"), "failed, see errors"),
                reference_note=rec.notes.get((label, "go"), "failed, see errors"),
            )
        )
    return stats.markdown_table(stats.TIMING_HEADERS, rows)


def memory_table(rec: Recorder) -> str:
    rows = []
    for label in rec.rows:
        ours = rec.rss.get((label, "ours"))
        go = rec.rss.get((label, "go"))
        if ours is None and go is None:
            continue
        r = stats.ratio(float(ours) if ours else None, float(go) if go else None)
        shown = label.replace(STEP_SEP, ": ")
        rows.append([shown, stats.fmt_mib(ours), stats.fmt_mib(go), stats.fmt_ratio(r)])
    headers = ("process (tree)", "ours max RSS MiB", "Go max RSS MiB", "ours/Go")
    return stats.markdown_table(headers, rows)


def size_table(impls: Sequence[Impl]) -> str:
    rows = []
    for plugin in PLUGINS:
        sizes: list[int | None] = []
        for impl in impls:
            path = impl.bin_dir / plugin
            sizes.append(path.stat().st_size // 1024 if path.is_file() else None)
        ours, go = sizes
        r = stats.ratio(float(ours) if ours else None, float(go) if go else None)
        rows.append([plugin, stats.fmt_mib(ours), stats.fmt_mib(go), stats.fmt_ratio(r)])
    return stats.markdown_table(("binary", "ours MiB", "Go MiB", "ours/Go"), rows)


def goal_section(benches: Sequence[Bench]) -> list[str]:
    bench = benches[0]
    what = "flannel+portmap" if bench.has_portmap else "flannel; portmap n/a"
    wanted = goals.issue18_goals(what, CONCURRENT_PODS, bench.opts.full_node)
    wanted += [
        goals.Goal(f"VERSION {p} / bare interpreter", f"VERSION {p}", 1.2, against=BARE_LABEL)
        for p in PLUGINS
    ]
    runs = [b.rec.times for b in benches]
    parts = [
        f"Goals of issue 18 (ratios of medians, ours/Go, each run's; {len(runs)} run(s)).",
        "",
        goals.goal_table(wanted, runs),
    ]
    missed = goals.missed(wanted, runs)
    for goal in missed:
        parts += missed_goal_breakdown(goal, benches)
    if any(goal.name.startswith("VERSION") for goal in missed):
        parts += version_floor(bench)
    return parts


def version_floor(bench: Bench) -> list[str]:
    """A missed VERSION goal's breakdown: the exec's floor layer by layer
    (bench/floor.py), where the trace can only say "start"."""
    from bench.floor import floor

    if bench.opts.source_tree:
        return []
    parts = [
        "VERSION / bare interpreter missed: the floor of one exec, layer by layer "
        "(bench/floor.py, loopback, measured now):",
        "",
    ]
    try:
        parts += [floor(bench.ours.bin_dir / "loopback", bench.opts.runs), ""]
    except RuntimeError as exc:
        parts += [f"(not measured: {exc})", ""]
    return parts


def missed_goal_breakdown(goal: goals.Goal, benches: Sequence[Bench]) -> list[str]:
    """The trace breakdown of ours in the rows of ``goal``, from the first run that
    missed it (traced execs of that run, not the timed ones)."""
    from bench.breakdown import execs, table

    index, bench = next((i, b) for i, b in enumerate(benches) if goal.missed_in(b.rec.times))
    parts = [f"Missed: {goal.name} (run {index + 1}); where ours' execs spend their time:", ""]
    found = False
    for label, lines in bench.rec.traces.items():
        if any(label == row or label.startswith(row + STEP_SEP) for row in goal.trace_rows):
            traced = execs(lines)
            if traced:
                parts.append(table(label.replace(STEP_SEP, ": "), traced))
                found = True
    if not found:
        parts += ["(no traced execs of these rows)", ""]
    return parts


def render_report(benches: Sequence[Bench], info: list[str]) -> str:
    bench = benches[0]
    rec = bench.rec
    parts = [
        "# CNI plugin benchmark: ours vs Go reference",
        "",
        *info,
        "",
        "Wall time of whole processes, milliseconds: median (p50), p90 (where n >= 10) and "
        "p99 (where n >= 100; `-` below that), ratio of medians ours/Go. A full node's rows "
        "measure one more pod on a node already holding that many (each with a hostPort, "
        "nat rules and a conntrack entry); a burst's per-pod rows are each pod's own chain "
        "inside the batch. Conflist rows are the sum of their steps; each step is one "
        "runtime-level exec under `ip netns exec` (see the harness row).",
        "",
        timing_table(rec),
        *goal_section(benches),
    ]
    for i, later in enumerate(benches[1:], start=2):
        parts += [f"Run {i} of {len(benches)}.", "", timing_table(later.rec)]
    parts += [
        "Peak RSS (`ru_maxrss` from wait4: the largest process of the tree, e.g. the "
        "onefile bootloader or its Python child, a delegate, iptables; not a sum).",
        "",
        memory_table(rec),
        "Binary sizes.",
        "",
        size_table(bench.impls),
    ]
    errors = [e for b in benches for e in b.rec.errors]
    if errors:
        parts += ["Errors (first 10):", ""]
        parts += [f"- {e}" for e in errors[:10]]
        parts.append("")
    return "\n".join(parts)


# -- CLI ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="CNI plugins: ours vs the Go reference, as ratios."
    )
    parser.add_argument("--ours", type=Path, default=REPO / "dist" / "bin")
    parser.add_argument("--go", type=Path, default=Path("/usr/lib/cni"))
    parser.add_argument("--runs", type=int, help="measured iterations (default 15, quick 2)")
    parser.add_argument("--quick", action="store_true", help="few runs, one warm-up (CI)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument(
        "--pods",
        help="full-node sizes, comma-separated, growing (default 110,250; quick 2,4; 0: skip)",
    )
    parser.add_argument(
        "--cold", type=int, help="cold starts (fresh installs; default 3, quick 1; 0: skip)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="whole runs, each in a fresh world (default 1)"
    )
    parser.add_argument(
        "--burst", type=int, help="pods of the concurrent burst (default 100, quick 5; 0: skip)"
    )
    parser.add_argument(
        "--source-tree",
        action="store_true",
        help="benchmark this source tree via script wrappers instead of --ours",
    )
    ns = parser.parse_args(argv)
    runs = ns.runs if ns.runs is not None else (2 if ns.quick else 15)
    if runs < 1:
        parser.error("--runs must be at least 1")
    pods_text = ns.pods if ns.pods is not None else ("2,4" if ns.quick else "110,250")
    try:
        full_node = tuple(int(p) for p in pods_text.split(",") if int(p) > 0)
    except ValueError:
        parser.error(f"--pods: not a comma-separated list of numbers: {pods_text!r}")
    if list(full_node) != sorted(set(full_node)) or any(p > MAX_FULL_NODE_PODS for p in full_node):
        parser.error(f"--pods: growing sizes of at most {MAX_FULL_NODE_PODS} (a /24 per node)")
    burst = ns.burst if ns.burst is not None else (5 if ns.quick else BURST_PODS)
    if burst < 0:
        parser.error("--burst must not be negative")
    if ns.repeat < 1:
        parser.error("--repeat must be at least 1")
    return Options(
        ours=ns.ours.resolve(),
        go=ns.go.resolve(),
        runs=runs,
        warmup=1 if ns.quick else 2,
        batches=1 if ns.quick else min(runs, 2),
        quick=ns.quick,
        out=ns.out,
        source_tree=ns.source_tree,
        command=shlex.join(["python", *(sys.argv if argv is None else ["bench/run.py", *argv])]),
        full_node=full_node,
        burst=burst,
        repeat=ns.repeat,
        traces=1 if ns.quick else 3,
        cold=max(0, ns.cold if ns.cold is not None else (1 if ns.quick else COLD_RUNS)),
    )


def preflight(opts: Options) -> str | None:
    if os.geteuid() != 0:
        return "needs root (it creates network namespaces)"
    needed = [("go", opts.go, p) for p in ("bridge", "host-local")]
    if not opts.source_tree:
        needed += [("ours", opts.ours, p) for p in ("flannel", "bridge", "host-local")]
    missing = [f"{who}: {d / p}" for who, d, p in needed if not (d / p).is_file()]
    if missing:
        hint = " (build ours with .venv/bin/python build/build.py, or use --source-tree)"
        return "missing binaries: " + ", ".join(missing) + hint
    return None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_once(opts: Options) -> tuple[Bench, str, list[str]]:
    """One whole bench in a fresh world: (bench, world token, namespaces left)."""
    world = World()
    token = world.token
    try:
        with world:
            bench = Bench(opts, world)
            bench.run()
    finally:
        left = leftover_namespaces(token)
        if left:
            print(f"bench: namespaces left behind: {', '.join(left)}", file=sys.stderr)
    return bench, token, left


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    problem = preflight(opts)
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started = datetime.datetime.now(datetime.UTC)
    load_start = loadavg()
    t0 = time.monotonic()
    benches: list[Bench] = []
    tokens: list[str] = []
    left: list[str] = []
    try:
        for i in range(opts.repeat):
            if opts.repeat > 1:
                print(f"bench: run {i + 1} of {opts.repeat}", file=sys.stderr, flush=True)
            bench, token, run_left = run_once(opts)
            benches.append(bench)
            tokens.append(token)
            left += run_left
    except KeyboardInterrupt:
        print("bench: interrupted; namespaces and files removed", file=sys.stderr)
        return 130
    info = machine_info(opts, started, (load_start, loadavg()))
    info.append(
        f"- harness wall time: {time.monotonic() - t0:.0f} s; namespaces: `cnib-{tokens[0]}-*`"
        + "".join(f", `cnib-{t}-*`" for t in tokens[1:])
    )
    report = render_report(benches, info)
    print(report)
    if opts.out:
        opts.out.write_text(report)
    return 1 if left else 0
