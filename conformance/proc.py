"""Exec a plugin binary the way a runtime does: a clean environment plus stdin.

Nothing here knows about CNI semantics beyond the names of the environment variables;
assertions live in ``checks.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Runtimes exec plugins with a small environment; PATH is kept because plugins exec
# iptables, conntrack or their delegates' interpreters.
_BASE_PATH = os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
DEFAULT_TIMEOUT = 60.0
# Variables of the suite's own environment that every exec gets too, named in
# CNF_PASS_ENV (comma-separated): what a node's runtime would give its plugins,
# e.g. CNI_PLUGINS_CACHE_DIR so a CI run unpacks our binaries into a temp dir.
_PASSED = {
    name: os.environ[name]
    for name in os.environ.get("CNF_PASS_ENV", "").split(",")
    if name and name in os.environ
}


def passed_env() -> dict[str, str]:
    """The CNF_PASS_ENV variables every exec gets besides the test's own env."""
    return dict(_PASSED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a plugin process left behind: exit status and both output streams."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    stdin: bytes
    rc: int
    stdout: bytes
    stderr: bytes

    def describe(self) -> str:
        """A readable summary for assertion messages."""
        cni_env = " ".join(f"{k}={v}" for k, v in sorted(self.env.items()) if k.startswith("CNI"))
        return (
            f"\n  exec: {' '.join(self.argv)}\n  env: {cni_env}\n"
            f"  stdin: {self.stdin[:600]!r}\n  rc: {self.rc}\n"
            f"  stdout: {self.stdout[:1500]!r}\n  stderr: {self.stderr[:1500]!r}"
        )

    def json(self) -> Any:
        """stdout parsed as exactly one JSON document, or an AssertionError."""
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(
                f"stdout is not one JSON document ({exc}){self.describe()}"
            ) from None


def config_bytes(config: Mapping[str, Any] | bytes | None) -> bytes:
    if config is None:
        return b""
    if isinstance(config, bytes):
        return config
    return json.dumps(config).encode()


def run_plugin(
    binary: Path,
    env: Mapping[str, str],
    stdin: Mapping[str, Any] | bytes | None = None,
    *,
    netns: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    """Run ``binary`` with exactly ``env`` (+PATH and CNF_PASS_ENV's), in the named netns if any.

    ``ip netns exec`` (rather than a bare setns) also remounts /sys for the namespace,
    so a plugin that reads /sys/class/net sees the node namespace, not the root one.
    """
    full_env = {"PATH": _BASE_PATH, **_PASSED, **env}
    argv: tuple[str, ...] = (str(binary),)
    if netns is not None:
        argv = ("ip", "netns", "exec", netns, str(binary))
    data = config_bytes(stdin)
    proc = subprocess.run(
        argv, input=data, env=full_env, capture_output=True, timeout=timeout, check=False
    )
    return Outcome(argv, full_env, data, proc.returncode, proc.stdout, proc.stderr)
