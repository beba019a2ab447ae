"""Shared fixtures: privilege gating, throwaway namespaces, plugin executables.

Every namespace a test makes is named ``cnit-<random>`` and deleted when the test
ends, also on failure; nothing here touches the root namespace's links, routes
or firewall.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cni_plugins.plugins import BINARIES

if TYPE_CHECKING:
    from tests.install.images import Images

REPO = Path(__file__).resolve().parent.parent
# binary name -> module under cni_plugins.plugins
PLUGIN_MODULES = BINARIES
GO_PLUGINS = Path("/usr/lib/cni")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = os.geteuid() == 0
    skip_root = pytest.mark.skip(reason="needs root and network namespaces")
    skip_go = pytest.mark.skip(reason="needs Debian's containernetworking-plugins in /usr/lib/cni")
    for item in items:
        if "privileged" in item.keywords and not root:
            item.add_marker(skip_root)
        if "reference" in item.keywords and not (GO_PLUGINS / "host-local").exists():
            item.add_marker(skip_go)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def make_netns() -> Iterator[Callable[[], str]]:
    """Factory: each call creates a namespace and returns its /run/netns path."""
    made: list[str] = []

    def make() -> str:
        name = f"cnit-{secrets.token_hex(4)}"
        _ip("netns", "add", name)
        made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return f"/run/netns/{name}"

    yield make
    for name in reversed(made):
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def netns(make_netns: Callable[[], str]) -> str:
    return make_netns()


def write_script_plugins(directory: Path) -> Path:
    """Executables that run the plugins from this source tree, for tests that
    exec plugins before (or without) the PyInstaller build."""
    directory.mkdir(parents=True, exist_ok=True)
    for binary, module in PLUGIN_MODULES.items():
        if not (REPO / "cni_plugins" / "plugins" / f"{module}.py").exists():
            continue
        path = directory / binary
        path.write_text(
            f"#!{sys.executable} -I\n"
            f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
            f"from cni_plugins.plugins.{module} import main\nmain()\n"
        )
        path.chmod(0o755)
    return directory


@pytest.fixture(scope="session")
def script_bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_script_plugins(tmp_path_factory.mktemp("script-bin"))


def built_bin_dir() -> Path | None:
    """dist/bin when the PyInstaller binaries have been built."""
    d = Path(os.environ.get("CNI_DIST_BIN", REPO / "dist" / "bin"))
    return d if (d / "loopback").exists() else None


_unpack_cache: str | None = None


def unpack_cache_dir() -> str:
    """The built binaries' unpack cache for this test run: a temp dir, removed
    at exit, so no test fills the host's /var/lib/cni/cni-plugins-py."""
    global _unpack_cache
    if _unpack_cache is None:
        _unpack_cache = tempfile.mkdtemp(prefix="cnit-unpack-")
        atexit.register(shutil.rmtree, _unpack_cache, True)
    return _unpack_cache


def run_plugin(
    binary: Path | str,
    command: str,
    stdin: str | bytes,
    *,
    env: dict[str, str] | None = None,
    netns_exec: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Exec a plugin binary like a runtime does: CNI_* env plus a short PATH."""
    full = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_PLUGINS_CACHE_DIR": unpack_cache_dir(),
    }
    full.update(env or {})
    data = stdin.encode() if isinstance(stdin, str) else stdin
    argv = [str(binary)]
    if netns_exec:
        argv = ["ip", "netns", "exec", netns_exec, *argv]
    return subprocess.run(argv, check=False, input=data, env=full, capture_output=True, timeout=60)


def logging_tool_wrappers(directory: Path) -> tuple[Path, Path]:
    """A directory of ``iptables``/``ip6tables`` (+ ``-restore``, ``-save``)
    wrappers that append their command line to a log and exec the real tool;
    returns (wrapper directory, log).  Put the directory first in a plugin's
    PATH to see which tools it ran: the log exists only if one ran."""
    logged = directory / "tools.log"
    wrappers = directory / "wrappers"
    wrappers.mkdir()
    for family in ("iptables", "ip6tables"):
        for suffix in ("", "-restore", "-save"):
            tool = wrappers / f"{family}{suffix}"
            tool.write_text(
                f'#!/bin/sh\necho "$0 $*" >> {logged}\nexec /usr/sbin/{tool.name} "$@"\n'
            )
            tool.chmod(0o755)
    return wrappers, logged


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    """deploy/Containerfile's image, built once per session for the suites that
    run it (tests/install/test_image.py, tests/containerd/): see
    tests/install/images.py.  Imported here, on first use, so other suites do
    not load it."""
    from tests.install.images import session_images

    yield from session_images(tmp_path_factory)
