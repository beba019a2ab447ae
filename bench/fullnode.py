"""A full node: one implementation's node namespace holding N pods (issue 18).

The pods are added through the same conflist the other rows measure, each with
its own hostPort, so the node's host-local store, its nat rules and its
conntrack table hold that many.  Conntrack: one ESTABLISHED entry per pod, as
if the node had connected to the pod's hostPort (``conntrack -I`` inside the
node namespace: no packet leaves it, and the entry outlives the run, unlike
the 10 s of a refused connection's).  The measured pod is one more, added and
deleted on top; the filling pods are never deleted through CNI: deleting their
namespaces and the node's at the end removes everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.cni import SUBNET_ENV, Impl, Json, Pod, Recorder, chain_add
from bench.proc import run_checked
from bench.world import IP, which

if TYPE_CHECKING:
    from bench.harness import Bench

NODE_IP = "10.244.1.1"  # cni0's address for FLANNEL_SUBNET=10.244.1.1/24


@dataclass
class FullNode:
    bench: Bench
    base: Impl
    impl: Impl = field(init=False)
    pods: list[Pod] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)

    def setup(self) -> None:
        world = self.bench.world
        work = world.tmp / f"{self.base.key}-full"
        work.mkdir()
        (work / "subnet.env").write_text(SUBNET_ENV)
        node = world.add_netns(f"{self.base.key}-full")
        self.impl = Impl(self.base.key, self.base.bin_dir, node=node, work=work)

    def fill(self, size: int) -> None:
        """Add pods until the node holds ``size``; check conntrack holds them."""
        from bench.harness import run_parallel

        new: list[Pod] = []
        while len(self.pods) + len(new) < size:
            name = self.bench.world.add_netns(f"{self.impl.key}-fp")
            self.netns.append(name)
            new.append(self.bench.next_pod(self.impl, name))
        steps = self.bench.conflist(self.impl)
        scratch = Recorder(enabled=False)
        results: list[Json | None] = [None] * len(new)

        def add(j: int) -> None:
            results[j] = chain_add(self.impl, steps, new[j], scratch, prefix="")

        from bench.harness import FILL_THREADS

        # The first pod alone: Go portmap's concurrent first ADDs race to create
        # the shared chains ("CHAIN_USER_ADD failed (File exists)").
        first = 1 if not self.pods and new else 0
        if first:
            add(0)
        for start in range(first, len(new), FILL_THREADS):
            chunk = range(start, min(start + FILL_THREADS, len(new)))
            _, errors = run_parallel(lambda k, c=chunk: add(c[k]), len(chunk))  # type: ignore[misc]
            if errors:
                raise RuntimeError(f"filling {self.impl.node}: {errors[0]}")
        conntrack = which("conntrack")
        for offset, (pod, result) in enumerate(zip(new, results, strict=True)):
            assert result is not None
            self._conntrack_entry(conntrack, pod, result, len(self.pods) + offset)
        self.pods += new
        count = run_checked([IP, "netns", "exec", self.impl.node, conntrack, "-C"])
        if int(count.strip() or b"0") < size:
            raise RuntimeError(f"{self.impl.node}: conntrack holds {count!r}, expected {size}")

    def _conntrack_entry(self, conntrack: str, pod: Pod, result: Json, index: int) -> None:
        pod_ip = str(result["ips"][0]["address"]).split("/", 1)[0]
        sport = str(20000 + index)
        run_checked(
            [IP, "netns", "exec", self.impl.node, conntrack, "-I", "-p", "tcp",
             "-s", NODE_IP, "-d", NODE_IP, "--sport", sport, "--dport", str(pod.host_port),
             "-r", pod_ip, "-q", NODE_IP, "--reply-port-src", "80", "--reply-port-dst", sport,
             "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "3600"]
        )  # fmt: skip

    def cycle(self, prefix: str) -> None:
        """ADD then DEL of one more pod (timed like the empty node's rows)."""
        self.bench.cycle(self.impl, self.bench.conflist(self.impl), prefix)

    def teardown(self) -> None:
        world = self.bench.world
        for name in self.netns:
            world.del_netns(name)
        self.netns.clear()
        if getattr(self, "impl", None) is not None:
            world.del_netns(self.impl.node)
