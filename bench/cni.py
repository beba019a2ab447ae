"""Driving CNI plugins like a runtime (libcni) does, and recording what it costs.

A conflist is a list of ``Step``s.  ADD runs them in order, each after the first
with the previous result as ``prevResult``; the final result is cached; DEL runs
them in reverse with the cached result as ``prevResult`` (reference doc
sections 1.5-1.6).  ``portMappings`` reach a plugin as ``runtimeConfig`` only
when its config declares the capability, as libcni does.  Plugins run under
``ip netns exec <node>`` with ``CNI_NETNS`` naming a pod namespace.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.proc import BASE_ENV, Measured, run
from bench.world import IP, netns_path

CNI_VERSION = "1.0.0"
NETWORK = "cbr0"
Json = dict[str, Any]


class StepFailed(Exception):
    def __init__(self, label: str, measured: Measured) -> None:
        super().__init__(f"{label}: {measured.describe()}")
        self.measured = measured


@dataclass
class Recorder:
    """Wall-time samples and peak RSS per (row label, implementation)."""

    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    rss: dict[tuple[str, str], int] = field(default_factory=dict)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # CNI_PLUGINS_TRACE=1 stderr lines per row label, from traced execs only
    traces: dict[str, list[str]] = field(default_factory=dict)
    enabled: bool = True
    warmup: bool = False

    @property
    def want_rss(self) -> bool:
        """RSS runs carry a launcher's overhead: only in discarded warm-ups."""
        return self.enabled and self.warmup

    def declare(self, *labels: str) -> None:
        """Fix the table's row order (a row appears even if nothing ran)."""
        self.rows += [label for label in labels if label not in self.rows]

    def note(self, label: str, impl: str, why: str) -> None:
        self.declare(label)
        self.notes.setdefault((label, impl), why)

    def trace(self, label: str, impl: Impl, measured: Measured) -> None:
        if impl.extra_env.get("CNI_PLUGINS_TRACE") == "1":
            lines = measured.stderr.decode(errors="replace").splitlines()
            self.traces.setdefault(label, []).extend(lines)

    def add(self, label: str, impl: str, ms: float, rss_kib: int | None = None) -> None:
        if not self.enabled:
            return
        self.declare(label)
        if rss_kib is not None:
            key = (label, impl)
            self.rss[key] = max(self.rss.get(key, 0), rss_kib)
        if not self.warmup:
            self.times.setdefault((label, impl), []).append(ms)


@dataclass(frozen=True, slots=True)
class Step:
    """One plugin of a conflist, and the row label its timings go under."""

    plugin: str
    conf: Json
    label: str


@dataclass(frozen=True, slots=True)
class Pod:
    container_id: str
    netns: str
    host_port: int

    @property
    def port_mappings(self) -> list[Json]:
        return [{"hostPort": self.host_port, "containerPort": 80, "protocol": "tcp"}]


@dataclass
class Impl:
    """One implementation under test: its binaries and its node namespace."""

    key: str  # "ours" or "go"
    bin_dir: Path
    node: str = ""
    work: Path = Path()
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. a cold run's unpack cache

    def has(self, plugin: str) -> bool:
        return (self.bin_dir / plugin).is_file()

    def env(self, command: str, pod: Pod | None) -> dict[str, str]:
        env = dict(BASE_ENV, **self.extra_env)
        env["CNI_COMMAND"] = command
        env["CNI_PATH"] = str(self.bin_dir)
        if pod is not None:
            env["CNI_CONTAINERID"] = pod.container_id
            env["CNI_NETNS"] = pod.netns
            env["CNI_IFNAME"] = "eth0"
            env["CNI_ARGS"] = (
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;"
                f"K8S_POD_NAME={pod.container_id};K8S_POD_INFRA_CONTAINER_ID={pod.container_id}"
            )
        return env

    def exec_in_node(
        self, plugin: str, command: str, conf: Json, pod: Pod | None, *, rss: bool = False
    ) -> Measured:
        argv = [IP, "netns", "exec", self.node, str(self.bin_dir / plugin)]
        return run(argv, json.dumps(conf).encode(), self.env(command, pod), rss=rss)

    def version(self, plugin: str, *, rss: bool = False) -> Measured:
        """VERSION outside any namespace: the bare cost of one process."""
        argv = [str(self.bin_dir / plugin)]
        stdin = json.dumps({"cniVersion": CNI_VERSION}).encode()
        return run(argv, stdin, self.env("VERSION", None), rss=rss)


def _request(step: Step, pod: Pod, prev: Json | None) -> Json:
    conf = copy.deepcopy(step.conf)
    conf["name"] = NETWORK
    conf["cniVersion"] = CNI_VERSION
    if (conf.get("capabilities") or {}).get("portMappings"):
        conf["runtimeConfig"] = {"portMappings": pod.port_mappings}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


STEP_SEP = " :: "


def total_label(prefix: str, verb: str) -> str:
    """``prefix`` has a ``{verb}`` placeholder, e.g. ``"pod {verb} (flannel+portmap)"``."""
    return prefix.format(verb=verb)


def step_label(prefix: str, verb: str, step: Step, steps: int = 2) -> str:
    """A step's row; a one-step chain has just its total row."""
    total = total_label(prefix, verb)
    return total if steps == 1 else f"{total}{STEP_SEP}{step.label}"


def chain_add(impl: Impl, steps: Sequence[Step], pod: Pod, rec: Recorder, *, prefix: str) -> Json:
    """ADD every step in order; returns the final result (the runtime's cache).

    Records each step under ``step_label`` and the sum of the steps under
    ``total_label`` (the driver's own time between steps is not counted).
    """
    prev: Json | None = None
    total = 0.0
    for step in steps:
        conf = _request(step, pod, prev)
        m = impl.exec_in_node(step.plugin, "ADD", conf, pod, rss=rec.want_rss)
        if not m.ok:
            raise StepFailed(f"{impl.key} {step.plugin} ADD", m)
        label = step_label(prefix, "ADD", step, len(steps))
        rec.add(label, impl.key, m.wall_ms, m.maxrss_kib)
        rec.trace(label, impl, m)
        total += m.wall_ms
        prev = json.loads(m.stdout)
    if len(steps) > 1:
        rec.add(total_label(prefix, "ADD"), impl.key, total)
    assert prev is not None
    return prev


def chain_del(
    impl: Impl,
    steps: Sequence[Step],
    pod: Pod,
    cached: Json | None,
    rec: Recorder,
    *,
    prefix: str,
) -> None:
    """DEL every step in reverse, each with the cached ADD result as prevResult."""
    total = 0.0
    for step in reversed(steps):
        conf = _request(step, pod, cached)
        m = impl.exec_in_node(step.plugin, "DEL", conf, pod, rss=rec.want_rss)
        if not m.ok:
            raise StepFailed(f"{impl.key} {step.plugin} DEL", m)
        label = step_label(prefix, "DEL", step, len(steps))
        rec.add(label, impl.key, m.wall_ms, m.maxrss_kib)
        rec.trace(label, impl, m)
        total += m.wall_ms
    if len(steps) > 1:
        rec.add(total_label(prefix, "DEL"), impl.key, total)


# -- configurations ---------------------------------------------------------------------

SUBNET_ENV = (
    "FLANNEL_NETWORK=10.244.0.0/16\n"
    "FLANNEL_SUBNET=10.244.1.1/24\n"
    "FLANNEL_MTU=1450\n"
    "FLANNEL_IPMASQ=true\n"
)


def flannel_conf(work: Path) -> Json:
    """kube-flannel.yml's flannel entry, with files under ``work``."""
    return {
        "type": "flannel",
        "subnetFile": str(work / "subnet.env"),
        "dataDir": str(work / "flannel"),
        "ipam": {"dataDir": str(work / "ipam-flannel")},
        "delegate": {"hairpinMode": True, "isDefaultGateway": True},
    }


def portmap_conf(backend: str = "") -> Json:
    """``backend`` unset: the plugin picks (iptables where usable, as today)."""
    conf: Json = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    if backend:
        conf["backend"] = backend
    return conf


def rendered_delegate(work: Path) -> Json:
    """What our flannel hands its delegate for ``flannel_conf(work)``: the Go
    chain starts with exactly this bridge config (Go has no flannel binary)."""
    from cni_plugins.flannel import config, subnet_env

    raw = dict(flannel_conf(work), name=NETWORK, cniVersion=CNI_VERSION)
    conf = config.FlannelConf(raw)
    delegate: Json = config.render_delegate(conf, subnet_env.load(conf.subnet_file))
    return delegate


def bridge_conf(work: Path, *, bridge: str, subnet: str, ip_masq: bool) -> Json:
    """A stand-alone bridge + host-local config shaped like the rendered delegate."""
    return {
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "isDefaultGateway": True,
        "hairpinMode": True,
        "ipMasq": ip_masq,
        "mtu": 1450,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": subnet}]],
            "routes": [{"dst": "10.244.0.0/16"}],
            "dataDir": str(work / f"ipam-{bridge}"),
        },
    }


def host_local_conf(work: Path) -> Json:
    """host-local called directly, as a runtime would call an IPAM-only plugin."""
    return {
        "type": "host-local",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.247.0.0/16"}]],
            "dataDir": str(work / "ipam-only"),
        },
    }


def new_pod(container_id: str, netns_name: str, host_port: int) -> Pod:
    return Pod(container_id=container_id, netns=netns_path(netns_name), host_port=host_port)
