"""Files are written with safe modes whatever the umask; no shell is ever run;
every file a whole ADD/DEL/GC of the flannel + portmap list writes is inside
the state directories (or a sysctl)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.reliability.world import World
from tests.security.conftest import exec_plugin

pytestmark = pytest.mark.privileged


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_state_modes_whatever_the_umask(world: World, umask: int) -> None:
    world.flannel_dir = world.tmp / "deep" / "flannel"
    world.ipam_dir = world.tmp / "deeper" / "x" / "ipam"
    pod = world.new_pod()
    status, out = exec_plugin(
        world, "flannel", "ADD", world.flannel_conf(), cid=pod.cid, netns=pod.path, umask=umask
    )
    assert status == 0, out
    netdir = world.ipam_dir / "cbr0"
    (reservation,) = [p for p in netdir.iterdir() if p.name[0].isdigit()]
    assert mode(reservation) == 0o600
    assert mode(netdir / "lock") == 0o600
    assert mode(netdir) == 0o755  # as documented (Go layout), whatever the umask
    assert mode(world.flannel_dir) == 0o700
    assert mode(world.flannel_dir / pod.cid) == 0o600
    for parent in (world.tmp / "deep", world.tmp / "deeper", world.tmp / "deeper" / "x"):
        assert mode(parent) & 0o022 == 0, f"{parent} is group/world-writable"
    assert mode(world.ipam_dir) & 0o022 == 0
    status, out = exec_plugin(
        world, "flannel", "DEL", world.flannel_conf(), cid=pod.cid, netns=pod.path, umask=umask
    )
    assert status == 0, out


STRACE = [
    "strace",
    "-f",
    "-qq",
    "-A",
    "-y",
    "-e",
    "trace=execve,execveat,open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,"
    "unlink,unlinkat,rmdir,symlink,symlinkat,link,linkat,chmod,fchmodat,truncate",
]
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
TOOLS = {
    "iptables",  # -S <chain>: DEL lists only the chains it touches
    "ip6tables",
    "iptables-save",
    "iptables-restore",
    "ip6tables-save",
    "ip6tables-restore",
    "nft",
    "conntrack",
    "flannel",
    "bridge",
    "host-local",
    "portmap",
    "loopback",
    "ip",
}


def traced_lifecycle(world: World, tmp: Path) -> list[str]:
    log = tmp / "strace.log"
    world.wrapper = [*STRACE, "-o", str(log)]
    pods = [world.new_pod() for _ in range(2)]
    for pod in pods:
        assert world.add(pod).ok
    world.gc(pods[:1])
    for pod in pods:
        assert world.delete(pod).ok
    world.wrapper = []
    return log.read_text().splitlines()


def test_no_shell_and_writes_stay_in_the_state_directories(world: World, tmp_path: Path) -> None:
    lines = traced_lifecycle(world, tmp_path)
    execs = [m.group(1) for ln in lines if (m := re.search(r'execve\("([^"]+)".*= 0$', ln))]
    assert execs, "strace saw no exec"
    names = {Path(p).name for p in execs}
    assert not names & {"sh", "bash", "dash", "busybox", "env"}, names
    assert names <= TOOLS, names - TOOLS
    allowed = (
        f"{world.flannel_dir}/",
        f"{world.ipam_dir}/cbr0/",
        "/proc/sys/net/",
        "/dev/null",
    )
    created_dirs = {str(world.flannel_dir), str(world.ipam_dir), f"{world.ipam_dir}/cbr0"}
    offenders = []
    for ln in lines:
        call = re.match(r"\d+ (\w+)\((.*)\) = (\d+)", ln)
        if not call or call.group(1).startswith("execve"):
            continue
        name, params = call.group(1), call.group(2)
        if name in ("open", "openat") and not WRITE_FLAGS.search(params):
            continue
        paths = re.findall(r'(?:(\d+)<([^>]*)>, )?"([^"]*)"', params)
        for _fd, base, path in paths:
            full = path if path.startswith("/") else f"{base}/{path}"
            if name in ("mkdir", "mkdirat") and full in created_dirs:
                continue
            if "/__pycache__/" in full and full.startswith(str(REPO)):
                continue  # running from source: byte-code caches of the repo
            if not full.startswith(allowed):
                offenders.append(ln)
    assert offenders == []
