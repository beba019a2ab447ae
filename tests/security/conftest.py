"""A throwaway flannel node (``tests.reliability.world``) for the attack tests:
its own node namespace and tmp state directories, removed at teardown."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.world import PATH, World, sh


@pytest.fixture
def world(tmp_path: Path, script_bin_dir: Path) -> Iterator[World]:
    w = World(tmp_path / "world", script_bin_dir)
    try:
        yield w
    finally:
        w.close()


def exec_plugin(
    world: World,
    plugin: str,
    command: str,
    conf: dict[str, Any] | bytes,
    *,
    cid: str = "sec-ctr",
    netns: str = "/dev/null",
    ifname: str = "eth0",
    extra: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    umask: int = 0o022,
) -> tuple[int, dict[str, Any] | None]:
    """Exec one plugin in the node namespace; (exit status, parsed stdout)."""
    env = {
        "PATH": PATH,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(world.bin),
        **(extra or {}),
    }
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    argv = [*(prefix or []), "ip", "netns", "exec", world.node, str(world.bin / plugin)]
    proc = subprocess.run(
        argv, input=data, env=env, capture_output=True, check=False, timeout=120, umask=umask
    )
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out


def node_state(world: World) -> dict[str, str]:
    """The node's links, addresses, routes and rule sets (counters stripped)."""
    ns = world.node
    return {
        "links": sh("ip", "-n", ns, "-o", "link", "show"),
        "addresses": sh("ip", "-n", ns, "-o", "addr", "show"),
        "routes": sh("ip", "-n", ns, "route", "show", "table", "all"),
        "iptables": _strip(sh("ip", "netns", "exec", ns, "iptables-save")),
        "ip6tables": _strip(sh("ip", "netns", "exec", ns, "ip6tables-save")),
        "nft": sh("ip", "netns", "exec", ns, "nft", "-s", "list", "ruleset"),
    }


def _strip(save: str) -> str:
    return "\n".join(ln.split(" [")[0] for ln in save.splitlines() if not ln.startswith("#"))


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under ``root`` with its mode and (for files) content."""
    out: dict[str, tuple[int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            out[str(path.relative_to(root))] = (st.st_mode, data)
    return out
