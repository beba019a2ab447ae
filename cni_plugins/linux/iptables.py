"""iptables through ``iptables-restore``: a whole rule set per exec, never one per rule.

The Go plugins spend most of their ADD/DEL time in separate ``iptables`` execs
(28 execs ~58 ms vs one restore ~4 ms, DESIGN.md section 4).  Here a caller
builds a ``Restore`` (the text ``iptables-save`` prints) and applies it with one
``iptables-restore --noflush -w`` (``ip6tables-restore`` for IPv6), which is
also atomic: the kernel sees all of it or none of it.

    r = Restore("nat")
    r.chain("CNI-1acd23a563d6b73ddfb74ccf")          # created, or flushed if present
    r.append("POSTROUTING", "-s", "10.244.1.2/32", "-j", "CNI-...")
    Iptables(4).restore(r)

Programs are exec'd without a shell, in a clean environment
(``invoke.clean_environ``: no PyInstaller leftovers), with stdin, stdout and
stderr on memfds, so nothing can deadlock on a full pipe.  A busy xtables lock
(legacy backend, exit status 4) becomes ``TryAgainLater`` (code 11).

This module is imported lazily, only by code paths that need iptables.
"""

from __future__ import annotations

import errno
import os

from cni_plugins.spec import trace
from cni_plugins.spec.errors import CNIError, TryAgainLater
from cni_plugins.spec.invoke import clean_environ

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

# Seconds iptables-restore waits for the xtables lock (legacy backend) before
# giving up; then the runtime should retry the whole ADD (code 11).
LOCK_WAIT_SECONDS = 10
# iptables' exit status for a resource problem, which includes the lock.
_RESOURCE_PROBLEM = 4
# Where to look for the tools when the runtime's PATH is short or empty.
_FALLBACK_PATH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin")


class ToolNotFound(CNIError):
    """The program is not installed (``PATH`` and the usual sbin directories)."""


class ToolFailed(CNIError):
    """The program exited non-zero; ``status`` and ``stderr`` say why."""

    def __init__(self, msg: str, details: str = "", *, status: int = 1) -> None:
        super().__init__(msg, details)
        self.status = status


def find_tool(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Absolute path of the executable ``name``: ``PATH`` first, then sbin dirs."""
    env = os.environ if environ is None else environ
    dirs = [d for d in env.get("PATH", "").split(os.pathsep) if d]
    for directory in (*dirs, *_FALLBACK_PATH):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise ToolNotFound(f"{name} not found in PATH or {':'.join(_FALLBACK_PATH)}")


def run_tool(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """Exec ``argv`` (``argv[0]`` a bare tool name) with ``stdin``; returns
    (exit status, stdout, stderr).  No shell; clean environment."""
    return run_tools([argv], stdin)[0]


def run_tools(argvs: list[list[str]], stdin: bytes = b"") -> list[tuple[int, bytes, bytes]]:
    """``run_tool`` for several independent commands at once: all are started,
    then all are waited for (each with its own stdin copy and outputs).  For
    programs whose cost is mostly waiting on the kernel, such as ``conntrack -D``."""
    t = trace.now() if trace.ON else 0
    try:
        return _run_tools(argvs, stdin)
    finally:
        if trace.ON:
            trace.span("exec", t, " ".join(argv[0] for argv in argvs))


def _run_tools(argvs: list[list[str]], stdin: bytes) -> list[tuple[int, bytes, bytes]]:
    paths = [find_tool(argv[0]) for argv in argvs]
    env = clean_environ(os.environ)
    env.setdefault("PATH", ":".join(_FALLBACK_PATH))
    started: list[tuple[int, list[int]]] = []
    results: list[tuple[int, bytes, bytes]] = []
    try:
        for path, argv in zip(paths, argvs, strict=True):
            fds = [os.memfd_create(n, os.MFD_CLOEXEC) for n in ("stdin", "stdout", "stderr")]
            started.append((0, fds))
            os.write(fds[0], stdin)
            os.lseek(fds[0], 0, os.SEEK_SET)
            actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(fds)]
            try:
                pid = os.posix_spawn(path, [path, *argv[1:]], env, file_actions=actions)
            except OSError as exc:
                raise CNIError(f"failed to run {argv[0]}: {exc.strerror}") from exc
            started[-1] = (pid, fds)
        for pid, fds in started:
            status = os.waitstatus_to_exitcode(_wait(pid))
            results.append((status, _read_all(fds[1]), _read_all(fds[2])))
        return results
    finally:
        for i, (pid, fds) in enumerate(started):
            if pid and i >= len(results):  # a later spawn failed: reap what runs
                _wait(pid)
            for fd in fds:
                os.close(fd)


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:  # pragma: no cover - PEP 475 retries already
            continue


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def quote(arg: str) -> str:
    """Quote one argument as ``iptables-save`` does, so ``iptables-restore`` reads it back."""
    if arg and not any(c in arg for c in " \"\\'\t\n"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_rule(line: str) -> list[str]:
    """Split one ``iptables-save`` rule line into arguments (the inverse of ``quote``)."""
    out: list[str] = []
    cur: list[str] = []
    in_quotes = escaped = started = False
    for c in line:
        if escaped:
            cur.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            in_quotes = not in_quotes
            started = True
        elif c.isspace() and not in_quotes:
            if cur or started:
                out.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(c)
    if cur or started:
        out.append("".join(cur))
    return out


class Restore:
    """One table's worth of ``iptables-restore`` input, built as data.

    ``lines`` holds the body: chain declarations (``:NAME - [0:0]``, which under
    ``--noflush`` creates the chain or flushes an existing one) and commands
    (``-A``/``-I``/``-D``/``-F``/``-X``) as argument lists.
    """

    __slots__ = ("lines", "table")

    def __init__(self, table: str) -> None:
        self.table = table
        self.lines: list[list[str]] = []

    def chain(self, name: str) -> None:
        """Create ``name``, or empty it when it exists."""
        self.lines.append([f":{name}", "-", "[0:0]"])

    def new_chain(self, name: str) -> None:
        """``-N name``: create ``name``; fails the whole restore if it exists
        (unlike ``chain``, never empties another's chain)."""
        self.lines.append(["-N", name])

    def append(self, chain: str, *rule: str) -> None:
        self.lines.append(["-A", chain, *rule])

    def insert(self, chain: str, *rule: str) -> None:
        self.lines.append(["-I", chain, *rule])

    def delete(self, chain: str, *rule: str) -> None:
        """Delete the first rule equal to ``rule``; fails the whole restore if absent."""
        self.lines.append(["-D", chain, *rule])

    def flush(self, chain: str) -> None:
        self.lines.append(["-F", chain])

    def delete_chain(self, chain: str) -> None:
        self.lines.append(["-X", chain])

    def __bool__(self) -> bool:
        return bool(self.lines)

    def text(self) -> str:
        body = [" ".join(quote(a) if i else a for i, a in enumerate(ln)) for ln in self.lines]
        return "\n".join([f"*{self.table}", *body, "COMMIT", ""])


class Iptables:
    """The iptables tools of one family (4: iptables, 6: ip6tables)."""

    __slots__ = ("family", "prefix")

    def __init__(self, family: int) -> None:
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, not {family}")
        self.family = family
        self.prefix = "iptables" if family == 4 else "ip6tables"

    def available(self) -> bool:
        """Whether the restore/save tools are installed (no exec)."""
        try:
            find_tool(f"{self.prefix}-restore")
            find_tool(f"{self.prefix}-save")
        except ToolNotFound:
            return False
        return True

    def restore(self, restore: Restore | Iterable[Restore]) -> None:
        """Apply one or more tables' changes in a single ``-restore --noflush`` exec."""
        parts = [restore] if isinstance(restore, Restore) else list(restore)
        text = "".join(p.text() for p in parts if p)
        if not text:
            return
        argv = [f"{self.prefix}-restore", "--noflush", "-w", str(LOCK_WAIT_SECONDS)]
        status, _out, err = run_tool(argv, text.encode())
        if status != 0:
            raise _failure(f"{self.prefix}-restore", status, err, text)

    def save(self, table: str) -> str:
        """``<prefix>-save -t <table>``: the table's current rules as text."""
        status, out, err = run_tool([f"{self.prefix}-save", "-t", table])
        if status != 0:
            raise _failure(f"{self.prefix}-save", status, err, "")
        return out.decode(errors="replace")

    def list_chain(self, table: str, chain: str) -> str:
        """``<prefix> -t <table> -S <chain>``: one chain's rules, in the form
        ``-save`` prints them (``parse_save`` reads it).  With the nf_tables
        backend only that chain is fetched, so the cost does not grow with the
        rest of the table as ``save`` does.  A missing chain is a ``ToolFailed``
        (iptables-nft 1.8.9 words it "incompatible", so callers decide on
        existence beforehand, e.g. with ``nfprobe``)."""
        return self.list_chains(table, [chain])[0]

    def list_chains(self, table: str, chains: list[str]) -> list[str]:
        """``list_chain`` of each chain, the listings run side by side (each
        is an exec waiting mostly on the kernel)."""
        argvs = [[self.prefix, "-w", str(LOCK_WAIT_SECONDS), "-t", table, "-S", c] for c in chains]
        texts: list[str] = []
        for chain, (status, out, err) in zip(chains, run_tools(argvs), strict=True):
            if status != 0:
                raise _failure(f"{self.prefix} -S {chain}", status, err, "")
            texts.append(out.decode(errors="replace"))
        return texts


def _failure(tool: str, status: int, stderr: bytes, text: str) -> CNIError:
    message = stderr.decode(errors="replace").strip()
    if status == _RESOURCE_PROBLEM and "xtables lock" in message:
        return TryAgainLater(f"{tool}: the xtables lock is busy, try again later", message)
    details = message if not text else f"{message}\ninput:\n{text}"
    if "Permission denied" in message or "Operation not permitted" in message:
        details += f" ({os.strerror(errno.EPERM)})"
    return ToolFailed(f"{tool} failed (exit status {status})", details, status=status)


def parse_save(text: str, mentioning: Sequence[str] = ()) -> tuple[set[str], list[list[str]]]:
    """Chains and rules (as argument lists, ``-A`` first) of one table in ``-save``
    output.  With ``mentioning``, only the rule lines containing one of those
    strings (chain names, say) are split: the rest of a big table (kube-proxy's,
    2,000 rules ~ 20 ms of ``split_rule``) is skipped by a substring test."""
    chains: set[str] = set()
    rules: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith(":"):
            chains.add(line[1:].split(" ", 1)[0])
        elif line.startswith("-A ") and (
            not mentioning or any(needle in line for needle in mentioning)
        ):
            rules.append(split_rule(line))
    return chains, rules
