"""Per-phase timings on stderr, for measuring where an exec's time goes.

``CNI_PLUGINS_TRACE=1`` in a plugin's environment turns it on; the flag is read
once, when this module loads, and every call site tests ``trace.ON`` before it
does anything, so the trace costs one attribute load when off and imports
nothing (``time`` loads only when on).  Each phase is one line on fd 2, written
unbuffered so that lines of delegates and tools interleave in order::

    cni-trace<TAB><phase><TAB><milliseconds><TAB><detail>

Phases: ``start`` (the process's start up to this module's import: launcher,
bootloader, interpreter; the kernel stamps a process's start in clock ticks, so
this one is coarse, 10 ms on most kernels, unless the launcher exports its own
start as ``CNI_PLUGINS_TRACE_T0``, nanoseconds of CLOCK_BOOTTIME), ``imports``
(from there up to ``skel.run``), ``parse`` (environment and config), then
``netlink``, ``nf_tables batch`` and ``exec`` per exchange or program (detail:
what was asked, or argv[0]), and ``total`` (process start to exit).  Figures
are wall-clock milliseconds with microsecond digits; ``parse_line`` reads one
back.
"""

from __future__ import annotations

import os

ON = os.environ.get("CNI_PLUGINS_TRACE") == "1"
PREFIX = "cni-trace"

_CLOCK = 7  # CLOCK_BOOTTIME: the clock of /proc/<pid>/stat's starttime
_loaded_ns = 0
_started_ns = 0
_imports_written = False


def now() -> int:
    """Nanoseconds on the trace's clock; call only when ``ON``."""
    import time

    return time.clock_gettime_ns(_CLOCK)


def span(phase: str, since_ns: int, detail: str = "") -> None:
    """Write one line: ``phase`` took from ``since_ns`` (a ``now()``) until now."""
    _write(phase, now() - since_ns, detail)


def _write(phase: str, elapsed_ns: int, detail: str) -> None:
    line = f"{PREFIX}\t{phase}\t{elapsed_ns / 1e6:.3f}\t{detail}".rstrip("\t") + "\n"
    try:
        os.write(2, line.encode("utf-8", "replace"))
    except OSError:  # a closed stderr must not fail the plugin
        pass


def imports_done() -> None:
    """The plugin's code starts working: closes the ``imports`` phase, once per
    process (a delegate run in-process, flannel's bridge and host-local, calls
    it again: its imports are part of the work by then, not of the floor)."""
    global _imports_written
    if not _imports_written:
        _imports_written = True
        span("imports", _loaded_ns)


def total() -> None:
    """The process is about to exit: from its start until now."""
    span("total", _started_ns, "" if _exact_start() else "process start in clock ticks")


def parse_line(line: str) -> tuple[str, float, str] | None:
    """(phase, milliseconds, detail) of a trace line; None for any other line."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 3 or fields[0] != PREFIX:
        return None
    try:
        ms = float(fields[2])
    except ValueError:
        return None
    return fields[1], ms, "\t".join(fields[3:])


def _exact_start() -> bool:
    return os.environ.get("CNI_PLUGINS_TRACE_T0", "").isdigit()


def _process_start_ns() -> int:
    """When the process (the launcher, before any exec) was created."""
    given = os.environ.get("CNI_PLUGINS_TRACE_T0", "")
    if given.isdigit():
        return int(given)
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # Field 22; the command name (field 2) may hold spaces and parentheses.
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _loaded_ns


if ON:
    _loaded_ns = now()
    _started_ns = _process_start_ns()
    # Up to the very instant ``imports`` starts from, so that start + imports
    # + the rest add up to total even when the process is preempted here.
    _write("start", _loaded_ns - _started_ns, "" if _exact_start() else "clock ticks")
