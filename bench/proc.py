"""Run one process and measure it: wall time, and on request its peak RSS.

stdin, stdout and stderr are memfds, so nothing can deadlock on a pipe and the
measured interval is spawn -> reaped, with no reader thread in between.

Peak RSS is the kernel's ``ru_maxrss`` from ``wait4`` of the reaped child: the
largest resident set of that process and of every descendant it waited for (a
onefile binary's bootloader and its Python child, a delegate, iptables); a
maximum, not a sum.  It cannot come from *our* ``wait4``: the kernel folds the
pre-exec memory image into ``ru_maxrss`` at exec, and a child spawned by this
Python process starts as (a vfork of) this 20 MiB interpreter.  So an RSS run
goes through GNU time (``time -f %M``), a 2 MiB process that forks, execs and
reports ``wait4``'s ``ru_maxrss``.  That adds a fork+exec to the wall time, so
the harness asks for RSS only in warm-up iterations, whose times it discards.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Plugins get what a runtime gives them: CNI_* plus a short PATH.
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
# The caller's unpack cache, when it sets one (the smoke test: a temp dir).
if os.environ.get("CNI_PLUGINS_CACHE_DIR"):
    BASE_ENV["CNI_PLUGINS_CACHE_DIR"] = os.environ["CNI_PLUGINS_CACHE_DIR"]
# GNU time (Debian package "time"); without it RSS is reported as n/a.
GNU_TIME = shutil.which("time", path=BASE_ENV["PATH"])


@dataclass(frozen=True, slots=True)
class Measured:
    argv: tuple[str, ...]
    status: int
    stdout: bytes
    stderr: bytes
    wall_ms: float
    maxrss_kib: int | None

    @property
    def ok(self) -> bool:
        return self.status == 0

    def describe(self) -> str:
        out = (self.stdout + b" " + self.stderr).decode(errors="replace").strip()
        return f"{' '.join(self.argv)}: exit {self.status}: {out[:600]}"


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_time_output(text: bytes) -> int | None:
    """GNU time's ``%M`` (KiB) is its last line; a failed command adds a line before."""
    lines = text.decode(errors="replace").strip().splitlines()
    try:
        return int(lines[-1].strip()) if lines else None
    except ValueError:
        return None


def run(
    argv: Sequence[str], stdin: bytes, env: Mapping[str, str], *, rss: bool = False
) -> Measured:
    """Spawn ``argv`` (a path, no PATH lookup), feed ``stdin``, wait, measure.

    With ``rss`` (and GNU time installed) also the peak RSS of the process tree.
    """
    rss = rss and GNU_TIME is not None
    names = ("bench-in", "bench-out", "bench-err", "bench-rss")
    fds = [os.memfd_create(name) for name in names[: 4 if rss else 3]]
    spawn_argv = list(argv)
    if rss:
        assert GNU_TIME is not None
        spawn_argv = [GNU_TIME, "-f", "%M", "-o", "/dev/fd/3", *argv]
    try:
        os.write(fds[0], stdin)
        os.lseek(fds[0], 0, os.SEEK_SET)
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
        start = time.perf_counter_ns()
        pid = os.posix_spawn(spawn_argv[0], spawn_argv, dict(env), file_actions=actions)
        _, status, _ = os.wait4(pid, 0)
        wall_ms = (time.perf_counter_ns() - start) / 1e6
        return Measured(
            argv=tuple(argv),
            status=os.waitstatus_to_exitcode(status),
            stdout=_read_all(fds[1]),
            stderr=_read_all(fds[2]),
            wall_ms=wall_ms,
            maxrss_kib=parse_time_output(_read_all(fds[3])) if rss else None,
        )
    finally:
        for fd in fds:
            os.close(fd)


def run_checked(argv: Sequence[str], stdin: bytes = b"") -> bytes:
    """Housekeeping command (not measured): stdout, or RuntimeError with its output."""
    m = run(argv, stdin, BASE_ENV)
    if not m.ok:
        raise RuntimeError(m.describe())
    return m.stdout
