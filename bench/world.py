"""The throwaway world a benchmark run lives in.

Every namespace is named ``cnib-<token>-...`` (token random per run) and a
``World`` deletes exactly the ones it made, also when the run fails or is
interrupted.  Nothing is changed in the root namespace: bridges, veths, routes,
sysctls and iptables rules live in a per-implementation "node" namespace and in
pod namespaces; all files live in one temporary directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from bench.proc import BASE_ENV, run_checked

PREFIX = "cnib-"


def which(name: str) -> str:
    found = shutil.which(name, path=BASE_ENV["PATH"])
    if found is None:
        raise RuntimeError(f"{name} not found in {BASE_ENV['PATH']}")
    return found


# Resolved at import without failing, so the pure helpers import anywhere.
IP = shutil.which("ip", path=BASE_ENV["PATH"]) or "/usr/sbin/ip"


class World:
    """Namespaces and a temp dir for one run; use as a context manager."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.token}-"))
        self._netns: list[str] = []
        self._counter = 0

    def __enter__(self) -> World:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def name(self, role: str) -> str:
        self._counter += 1
        return f"{PREFIX}{self.token}-{role}{self._counter}"

    def add_netns(self, role: str) -> str:
        """Create a namespace with ``lo`` up; returns its name."""
        name = self.name(role)
        # Record first: if `ip netns add` half-worked, the delete still runs.
        self._netns.append(name)
        run_checked([IP, "netns", "add", name])
        run_checked([IP, "-n", name, "link", "set", "lo", "up"])
        return name

    def del_netns(self, name: str) -> None:
        if name in self._netns:
            self._netns.remove(name)
        _delete_netns(name)

    def close(self) -> None:
        errors = []
        for name in reversed(self._netns):
            try:
                _delete_netns(name)
            except RuntimeError as exc:
                errors.append(str(exc))
        self._netns.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise RuntimeError("could not delete namespaces: " + "; ".join(errors))


def netns_path(name: str) -> str:
    return f"/run/netns/{name}"


def _delete_netns(name: str) -> None:
    if os.path.exists(netns_path(name)):
        run_checked([IP, "netns", "del", name])


def leftover_namespaces(token: str = "") -> list[str]:
    """Namespaces named like ours (of one run when ``token`` is given)."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(PREFIX + token))


def filler_rules(count: int) -> bytes:
    """An iptables-restore script adding ``count`` unrelated rules to a dummy
    nat chain nobody jumps to (so they only make the table bigger)."""
    lines = ["*nat", ":CNIB-FILLER - [0:0]"]
    for i in range(count):
        a, b = divmod(i, 250)
        lines.append(
            f"-A CNIB-FILLER -s 198.18.{a}.{b + 1}/32 -p tcp -m tcp --dport {10000 + i} -j RETURN"
        )
    lines += ["COMMIT", ""]
    return "\n".join(lines).encode()
