"""Load: waves of pods added and then deleted concurrently on one node.

Each wave starts ``pods`` pod operations through a pool of ``concurrency``
workers: make the pod namespace, ADD (flannel, then portmap with prevResult
and two distinct host ports).  With every pod of the wave up, the addresses must
all differ and a UDP datagram goes to each pod's UDP host port (conntrack
entries that portmap's DEL must flush).  Then every pod is DELeted (portmap,
then flannel, as libcni; also after a failed ADD, as runtimes do) and its
namespace removed, again concurrently.  After each wave the node must hold
nothing of ours.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tests.reliability.world import Answer, Pod, World


@dataclass
class LoadStats:
    waves: int = 0
    pods_added: int = 0
    add_failures: Counter[int | None] = field(default_factory=Counter)
    pods_deleted: int = 0
    del_failures: int = 0
    plugin_calls: int = 0
    peak_in_flight: int = 0
    concurrency: int = 0
    duplicates: list[str] = field(default_factory=list)
    unclean: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Gauge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def run_load(world: World, *, pods: int, waves: int, concurrency: int) -> LoadStats:
    stats = LoadStats(concurrency=concurrency)
    gauge = _Gauge()
    started = time.monotonic()

    def check(answer: Answer) -> None:
        problem = answer.problem()
        if problem:
            stats.unclean.append(f"{problem}: {answer.describe()}")

    def add(pod: Pod) -> Pod:
        world.netns(pod.ns.removeprefix(f"cnit-rel-{world.tag}-"))
        with gauge:
            answer = world.add(pod)
        check(answer)
        if not answer.ok:
            pod.result = None
            stats.add_failures[answer.code()] += 1
        return pod

    def delete(pod: Pod) -> None:
        with gauge:
            answer = world.delete(pod)
        check(answer)
        if not answer.ok:
            stats.del_failures += 1
            stats.unclean.append(f"DEL failed: {answer.describe()}")
        world.del_netns(pod.ns)

    udp_ports: set[int] = set()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _wave in range(waves):
            wave = [world.new_pod(make_netns=False) for _ in range(pods)]
            added = list(pool.map(add, wave))
            up = [p for p in added if p.result is not None]
            stats.pods_added += len(up)
            seen: dict[str, str] = {}
            for pod in up:
                address = pod.address or ""
                if address in seen:
                    stats.duplicates.append(f"{address}: {seen[address]} and {pod.cid}")
                seen[address] = pod.cid
            ports = [p.host_ports[1] for p in up]
            udp_ports.update(ports)
            world.poke_udp(ports)
            list(pool.map(delete, added))
            stats.pods_deleted += sum(1 for p in added if p.answers and p.answers[-1].ok)
            stats.plugin_calls += sum(len(p.answers) for p in added)
            stats.waves += 1
            stats.leftovers += world.leftovers(udp_ports=udp_ports)
    stats.peak_in_flight = gauge.peak
    stats.seconds = time.monotonic() - started
    return stats
