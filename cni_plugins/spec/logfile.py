"""The per-invocation log: ``"logFile"`` and ``"logLevel"`` in a plugin's config.

One JSON line per invocation (time, plugin, verb, container, netns, ifname,
duration, addresses or the error), appended to ``logFile``.  Levels:

* ``error``: only invocations that failed;
* ``info`` (default): every invocation;
* ``debug``: as ``info``, and the line carries ``CNI_ARGS`` and the config
  received on stdin (which may hold what the caller put in ``args``).

Logging never breaks a pod: a path that is not absolute or holds control
characters is ignored, a log that cannot be opened or written (missing
directory, read-only, a symlink, not a regular file) is skipped; either way
with one line on stderr and the operation's own outcome unchanged.

Each line is one ``write(2)`` on an ``O_APPEND`` descriptor under an exclusive
``flock`` of the log file, so concurrent invocations neither interleave nor
lose lines.  At ``MAX_BYTES`` the file is renamed to ``<logFile>.1`` (the one
older generation kept) under that lock; a writer that waited for the lock on
the old file notices that the name now points elsewhere and reopens.  The last
component of the path is never followed when a symlink (``O_NOFOLLOW``);
directories on the way are.
"""

from __future__ import annotations

import os
import time

from cni_plugins.spec import gokeys, jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO

    from cni_plugins.spec.errors import CNIError
    from cni_plugins.spec.types import Result

MAX_BYTES = 10 << 20
LEVELS = ("error", "info", "debug")
DEFAULT_LEVEL = "info"
# The keys as a Go plugin would declare them (matched as encoding/json does).
FIELDS = gokeys.Struct("logFile", "logLevel")
# Both keys fold to ASCII only, so a lowercase byte scan finds every spelling:
# skel looks for this before loading anything of the log.
MARKER = b"logfile"
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_REOPEN_ATTEMPTS = 5


def clock() -> float:
    return time.monotonic()


def settings(config: Mapping[str, Any], problems: list[str]) -> tuple[str, str] | None:
    """(path, level) from a decoded config, None when logging is off or the
    path is unusable; what is wrong with them is added to ``problems``."""
    given = FIELDS.decode(config)
    path = given.get("logFile")
    if path is None or path == "":
        return None
    if not isinstance(path, str) or not path.startswith("/") or _has_control(path):
        problems.append(
            f"logFile must be an absolute path without control characters, got {path!r}"
        )
        return None
    level = given.get("logLevel") or DEFAULT_LEVEL
    if not isinstance(level, str) or level.lower() not in LEVELS:
        problems.append(f"logLevel {level!r} is not one of {'|'.join(LEVELS)}: using info")
        level = DEFAULT_LEVEL
    return path, level.lower()


def record(
    *,
    plugin: str,
    command: str,
    environ: Mapping[str, str],
    config: Mapping[str, Any] | None,
    stdin: bytes,
    started: float,
    result: Result | None,
    error: CNIError | None,
    stderr: TextIO,
) -> None:
    """Append the line of one finished invocation, if its config asks for it.
    ``config`` is None when the invocation failed before it was decoded.
    Problems with the log cost at most one line on ``stderr``."""
    problems: list[str] = []
    try:
        if config is None:
            try:
                config = jsonio.loads(stdin)
            except (ValueError, RecursionError):
                return
            if not isinstance(config, dict):
                return
        wanted = settings(config, problems)
        if wanted is None:
            return
        path, level = wanted
        if error is None and level == "error":
            return
        line = format_line(
            plugin=plugin,
            command=command,
            environ=environ,
            duration=clock() - started,
            result=result,
            error=error,
            debug=config if level == "debug" else None,
        )
        append(path, line)
    except OSError as exc:
        problems.append(f"cannot write logFile: {exc}")
    except Exception as exc:  # noqa: BLE001 - logging must never change the outcome
        problems.append(f"cannot log: {type(exc).__name__}: {exc}")
    finally:
        if problems:
            _warn(stderr, "; ".join(problems))


def format_line(
    *,
    plugin: str,
    command: str,
    environ: Mapping[str, str],
    duration: float,
    result: Result | None,
    error: CNIError | None,
    debug: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> bytes:
    entry: dict[str, Any] = {
        "time": rfc3339(time.time() if now is None else now),
        "level": "error" if error is not None else "info",
        "plugin": plugin,
        "verb": command,
        "containerID": environ.get("CNI_CONTAINERID", ""),
        "netns": environ.get("CNI_NETNS", ""),
        "ifname": environ.get("CNI_IFNAME", ""),
        "durationMs": round(duration * 1000, 3),
    }
    if error is not None:
        entry["code"] = error.code
        entry["msg"] = error.msg
        if error.details:
            entry["details"] = error.details
    elif result is not None:
        entry["addresses"] = [str(ip.address) for ip in result.ips]
    if debug is not None:
        entry["cniArgs"] = environ.get("CNI_ARGS", "")
        entry["config"] = debug
    return (jsonio.dumps(entry, compact=True) + "\n").encode()


def rfc3339(now: float) -> str:
    """UTC with milliseconds: ``2026-12-06T21:30:00.123Z``."""
    seconds = int(now)
    millis = int((now - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def append(path: str, line: bytes, *, max_bytes: int = MAX_BYTES) -> None:
    """One locked ``write(2)`` of ``line`` at the end of ``path``, rotating
    first when the line would take the file past ``max_bytes``."""
    import fcntl
    import stat

    for _ in range(_REOPEN_ATTEMPTS):
        fd = os.open(path, _OPEN_FLAGS, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{path!r} is not a regular file")
            try:
                current = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue  # rotated away while we waited for the lock
            if (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
                continue
            if st.st_size and st.st_size + len(line) > max_bytes:
                os.rename(path, path + ".1")
                continue  # the next open creates the new file
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {path!r}: {written} of {len(line)} bytes")
            return
        finally:
            os.close(fd)  # drops the lock
    raise OSError(f"{path!r} kept changing under us: line dropped")


def last_failures(path: str, n: int = 10) -> list[dict[str, Any]]:
    """The last ``n`` failed invocations in the log at ``path`` (and its
    rotated ``.1``), oldest first; for cni-doctor.  A missing or unreadable
    log gives []; lines that do not parse are skipped."""
    failures: list[dict[str, Any]] = []
    for name in (path + ".1", path):
        for raw in _tail_lines(name):
            try:
                entry = jsonio.loads(raw)
            except (ValueError, RecursionError):
                continue
            if isinstance(entry, dict) and entry.get("level") == "error":
                failures.append(entry)
    return failures[-n:] if n > 0 else []


def _tail_lines(name: str, limit: int = 4 << 20) -> list[bytes]:
    """The complete lines of the last ``limit`` bytes of ``name``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        os.lseek(fd, start, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    lines = b"".join(chunks).split(b"\n")
    if start:
        lines = lines[1:]  # the first one was cut
    return [line for line in lines if line.strip()]


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _warn(stderr: TextIO, message: str) -> None:
    try:
        stderr.write(f"CNI log: {message}\n")
    except (OSError, ValueError):
        pass
