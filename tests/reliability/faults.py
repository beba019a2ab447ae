"""Faults: kills, a full disk, corrupt state, a busy xtables lock, a deleted
bridge, a reboot.  Each scenario injects faults into a ``World``, plays the
runtime's part (DEL after a failed ADD, retry after code 11, GC after a
reboot) and then requires a clean node and a working ADD for a new pod.

Every scenario returns a ``FaultStats``: faults injected, faults survived
(the node ended clean and the next ADD worked), unclean answers and leftovers.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.world import Answer, Pod, World, sh, wait_no_processes

KILL_TARGETS = (("flannel", "ADD"), ("portmap", "ADD"), ("flannel", "DEL"), ("portmap", "DEL"))


@dataclass
class FaultStats:
    name: str
    injected: int = 0
    survived: int = 0
    notes: list[str] = field(default_factory=list)
    unclean: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def clean(self, answer: Answer) -> bool:
        """Record ``answer`` if it is not a clean CNI answer (a killed exec is exempt)."""
        if answer.killed:
            return True
        problem = answer.problem()
        if problem:
            self.unclean.append(f"{self.name}: {problem}: {answer.describe()}")
        return problem is None

    def expect_ok(self, answer: Answer, what: str) -> bool:
        self.clean(answer)
        if not answer.ok:
            self.unclean.append(f"{self.name}: {what} failed: {answer.describe()}")
        return answer.ok

    def settle(self, world: World, survived: bool, udp: set[int] | None = None) -> None:
        """Count one fault: survived if everything went right and the node is clean."""
        wait_no_processes(world)
        left = world.leftovers(udp_ports=udp)
        self.leftovers += [f"{self.name}: {item}" for item in left]
        self.injected += 1
        if survived and not left:
            self.survived += 1


def fresh_pod_works(world: World, stats: FaultStats) -> bool:
    """ADD and DEL of a new pod succeed and leave nothing behind."""
    pod = world.new_pod()
    try:
        ok = stats.expect_ok(world.add(pod), "next ADD")
        ok = stats.expect_ok(world.delete(pod), "next DEL") and ok
    finally:
        world.del_netns(pod.ns)
    return ok


# -- kills ------------------------------------------------------------------------------------


def kill_sweep(
    world: World, delays_ms: list[int], *, probe_every: int = 1, group: bool = True
) -> FaultStats:
    """SIGKILL flannel or portmap ``delay`` ms after exec, during ADD and during
    DEL; then the runtime's DEL; then a new pod's ADD.  ``group``: the whole
    process group dies (delegates and iptables too, like a crash); otherwise
    only the plugin, and its children finish as orphans before the DEL comes."""
    stats = FaultStats("kill (process group)" if group else "kill (plugin only)")
    world.kill_group = group
    landed = 0
    for target, verb in KILL_TARGETS:
        for i, delay in enumerate(delays_ms):
            pod = world.new_pod()
            ok = True
            kill = (target, delay / 1000)
            try:
                if verb == "ADD":
                    answer = world.add(pod, kill=kill)
                    stats.clean(answer)
                    landed += any(a.killed for a in pod.answers)
                    wait_no_processes(world)
                    ok = stats.expect_ok(world.delete(pod), f"DEL after {target} ADD killed")
                else:
                    ok = stats.expect_ok(world.add(pod), "ADD before a killed DEL")
                    answer = world.delete(pod, kill=kill)
                    stats.clean(answer)
                    landed += any(a.killed for a in pod.answers)
                    wait_no_processes(world)
                    ok = stats.expect_ok(world.delete(pod), f"DEL after {target} DEL killed") and ok
            finally:
                world.del_netns(pod.ns)
            if i % probe_every == 0:
                ok = fresh_pod_works(world, stats) and ok
            stats.settle(world, ok, {pod.host_ports[1]})
    stats.notes.append(
        f"{len(KILL_TARGETS)} targets x {len(delays_ms)} delays"
        f" ({delays_ms[0]}-{delays_ms[-1]} ms); the kill landed before the exec"
        f" finished in {landed} cases"
    )
    return stats


# -- full disk --------------------------------------------------------------------------------


@contextmanager
def tiny_tmpfs(path: Path, size: str = "256k") -> Iterator[Path]:
    """A small tmpfs on ``path`` (in the root mount namespace, unmounted at exit)."""
    path.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "cnit-rel-full", str(path))
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path) -> Path:
    """Fill the filesystem of ``path``; returns the filler file."""
    filler = path / "filler"
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    return filler


def full_disk(world: World) -> FaultStats:
    """flannel's dataDir, then host-local's, on a full filesystem."""
    stats = FaultStats("full disk")
    saved = world.flannel_dir, world.ipam_dir
    for which in ("flannel dataDir", "host-local dataDir"):
        with tiny_tmpfs(world.tmp / "full") as mnt:
            if which == "flannel dataDir":
                world.flannel_dir = mnt / "flannel"
            else:
                world.ipam_dir = mnt / "ipam"
            try:
                ok = fresh_pod_works(world, stats)  # creates the directories
                filler = fill(mnt)
                pod = world.new_pod()
                try:
                    answer = world.add(pod)
                    ok = stats.clean(answer) and ok
                    if answer.ok:
                        stats.notes.append(f"{which} full: ADD succeeded anyway")
                    else:
                        stats.notes.append(f"{which} full: ADD failed with code {answer.code()}")
                    ok = stats.expect_ok(world.delete(pod), f"DEL with {which} full") and ok
                finally:
                    world.del_netns(pod.ns)
                ok = not world.leftovers() and ok
                filler.unlink(missing_ok=True)
                ok = fresh_pod_works(world, stats) and ok
                stats.settle(world, ok)
            finally:
                world.flannel_dir, world.ipam_dir = saved
    return stats


# -- corrupt state ----------------------------------------------------------------------------


def corrupt_store(world: World) -> FaultStats:
    """host-local reservations that are empty (a crash between create and write),
    garbage, owned by strangers, a torn round-robin cursor: ADD still hands out
    a free address, DEL works, GC with the valid list releases the junk."""
    stats = FaultStats("corrupt host-local store")
    p1 = world.new_pod()
    ok = stats.expect_ok(world.add(p1), "ADD")
    netdir = world.ipam_dir / "cbr0"
    base = world.subnet.rsplit(".", 1)[0]
    junk = {
        f"{base}.3": b"",
        f"{base}.4": b"\xff\xfe garbage \x00\r\n\r\n",
        f"{base}.5": b"someone-else\r\neth0",
        f"{base}.6": b"   \r\n",
    }
    for name, data in junk.items():
        (netdir / name).write_bytes(data)
    (netdir / "last_reserved_ip.0").write_bytes(b"not an address\x00")
    p2 = world.new_pod()
    answer = world.add(p2)
    ok = stats.expect_ok(answer, "ADD with a corrupt store") and ok
    if p2.address in junk or p2.address == p1.address:
        stats.unclean.append(f"{stats.name}: ADD handed out {p2.address}, which is taken")
        ok = False
    for pod in (p1, p2):
        ok = stats.expect_ok(world.delete(pod), "DEL") and ok
        world.del_netns(pod.ns)
    left = {p.name for p in netdir.iterdir()} & set(junk)
    if left != set(junk):
        stats.notes.append(f"DEL removed junk it does not own: {set(junk) - left}")
    for answer in world.gc([]):
        ok = stats.expect_ok(answer, "GC") and ok
    ok = fresh_pod_works(world, stats) and ok
    stats.settle(world, ok)
    stats.injected += len(junk)  # each junk file is a fault of its own
    stats.survived += len(junk) if ok and not world.leftovers() else 0
    return stats


def corrupt_flannel_file(world: World) -> FaultStats:
    """The saved delegate config torn, empty, not an object, or naming a
    delegate that cannot exist: DEL succeeds and still releases the pod."""
    stats = FaultStats("corrupt flannel file")
    for label, data in (
        ("torn", b'{"cniVersion":"1.0.0","name":"cbr0","type":"bri'),
        ("empty", b""),
        ("not an object", b"[1, 2, 3]"),
        ("bad type", b'{"cniVersion":"1.0.0","name":"cbr0","type":"../../../bin/sh"}'),
        ("binary", os.urandom(64)),
    ):
        pod = world.new_pod()
        ok = stats.expect_ok(world.add(pod), "ADD")
        (world.flannel_dir / pod.cid).write_bytes(data)
        ok = stats.expect_ok(world.delete(pod), f"DEL with a {label} saved file") and ok
        world.del_netns(pod.ns)
        left = world.leftovers()
        if left:
            stats.notes.append(f"{label}: DEL left {left}")
        ok = fresh_pod_works(world, stats) and ok
        stats.settle(world, ok)
    return stats


# -- xtables lock -----------------------------------------------------------------------------


def legacy_iptables_dir(directory: Path) -> Path:
    """``iptables-restore`` & co. as the legacy backend (which takes the xtables lock)."""
    directory.mkdir(parents=True, exist_ok=True)
    for family in ("iptables", "ip6tables"):
        for tool in ("", "-restore", "-save"):
            link = directory / f"{family}{tool}"
            if not link.exists():
                link.symlink_to("/usr/sbin/xtables-legacy-multi")
    return directory


@contextmanager
def held_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def xtables_lock(world: World) -> FaultStats:
    """Someone holds the xtables lock (legacy backend, a lock file of our own via
    ``XTABLES_LOCKFILE``, never /run/xtables.lock): ADD answers code 11 and
    leaves nothing; the runtime's DEL and retry succeed once it is free."""
    stats = FaultStats("xtables lock held")
    lock = world.tmp / "xtables.lock"
    legacy = legacy_iptables_dir(world.tmp / "legacy-bin")
    world.extra_env = {
        "PATH": f"{legacy}:/usr/sbin:/usr/bin:/sbin:/bin",
        "XTABLES_LOCKFILE": str(lock),
    }
    try:
        pod = world.new_pod()
        with held_lock(lock):
            answer = world.add(pod)
        ok = stats.clean(answer)
        code = answer.code()
        stats.notes.append(f"ADD under a held lock: code {code}")
        if code != 11:
            stats.unclean.append(f"{stats.name}: expected code 11, got {answer.describe()}")
            ok = False
        ok = stats.expect_ok(world.delete(pod), "DEL after code 11") and ok
        ok = stats.expect_ok(world.add(pod), "retried ADD") and ok
        ok = stats.expect_ok(world.delete(pod), "DEL") and ok
        world.del_netns(pod.ns)
        ok = fresh_pod_works(world, stats) and ok
        stats.settle(world, ok)
    finally:
        world.extra_env = {}
    return stats


# -- bridge deleted, reboot -------------------------------------------------------------------


def bridge_deleted(world: World) -> FaultStats:
    """``cni0`` deleted under running pods: their DELs succeed, the next ADD
    recreates the bridge with its gateway, and nothing is left."""
    stats = FaultStats("bridge deleted")
    pods = [world.new_pod() for _ in range(3)]
    ok = all([stats.expect_ok(world.add(p), "ADD") for p in pods])
    sh("ip", "-n", world.node, "link", "del", "cni0")
    ok = stats.expect_ok(world.delete(pods[0]), "DEL without the bridge") and ok
    world.del_netns(pods[0].ns)
    fresh = world.new_pod()
    ok = stats.expect_ok(world.add(fresh), "ADD recreating the bridge") and ok
    gateway = world.subnet.split("/")[0]
    if f"inet {gateway}/" not in sh("ip", "-n", world.node, "-o", "addr", "show", "cni0"):
        stats.unclean.append(f"{stats.name}: cni0 recreated without its gateway {gateway}")
        ok = False
    for pod in (*pods[1:], fresh):
        ok = stats.expect_ok(world.delete(pod), "DEL") and ok
        world.del_netns(pod.ns)
    stats.settle(world, ok)
    return stats


def reboot(world: World) -> FaultStats:
    """Every namespace wiped (node included) while reservations and saved files
    remain: the full range refuses ADD with code 11; GC with the valid list
    releases the rest; then ADD works again."""
    stats = FaultStats("reboot")
    pods: list[Pod] = []
    while True:
        pod = world.new_pod()
        answer = world.add(pod)
        if not answer.ok:
            stats.clean(answer)
            ok = stats.expect_ok(world.delete(pod), "DEL after exhaustion")
            world.del_netns(pod.ns)
            break
        pods.append(pod)
    stats.notes.append(f"range full after {len(pods)} pods (code {answer.code()})")
    for pod in pods:
        world.del_netns(pod.ns)
    world.reset_node()
    late = world.new_pod()
    answer = world.add(late)
    ok = stats.clean(answer) and ok
    if answer.ok or answer.code() != 11:
        stats.unclean.append(f"{stats.name}: expected code 11 before GC: {answer.describe()}")
        ok = False
    ok = stats.expect_ok(world.delete(late), "DEL") and ok
    keep = pods[0]
    for gc_answer in world.gc([keep]):
        ok = stats.expect_ok(gc_answer, "GC") and ok
    held = sorted(p.name for p in (world.ipam_dir / "cbr0").iterdir() if p.name[0].isdigit())
    if held != [keep.address]:
        stats.unclean.append(f"{stats.name}: after GC reservations are {held}, want {keep.address}")
        ok = False
    ok = stats.expect_ok(world.add(late), "ADD after GC") and ok
    ok = stats.expect_ok(world.delete(late), "DEL") and ok
    world.del_netns(late.ns)
    keep_del = world.delete(keep)  # the runtime's DEL of the listed pod, netns long gone
    ok = stats.expect_ok(keep_del, "DEL of the kept pod") and ok
    stats.settle(world, ok)
    return stats


SCENARIOS: dict[str, Callable[[World], FaultStats]] = {
    "full disk": full_disk,
    "corrupt host-local store": corrupt_store,
    "corrupt flannel file": corrupt_flannel_file,
    "xtables lock held": xtables_lock,
    "bridge deleted": bridge_deleted,
}


def dump(stats: FaultStats) -> str:
    return json.dumps(stats.__dict__, indent=1, default=str)
