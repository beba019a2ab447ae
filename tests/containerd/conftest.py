"""One private containerd node per binary set for the whole session (starting
containerd and importing the image are the slow parts), and a per-test reset
so a failing test does not leave pods for the next one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GO_PLUGINS, built_bin_dir
from tests.containerd.image import write_docker_archive
from tests.containerd.node import Node, shipped_conflist

PLUGINS = ("flannel", "bridge", "host-local", "loopback", "portmap")
BIN_SETS = ("ours", "go")


def plugin_set(name: str) -> dict[str, Path]:
    """ours: dist/bin.  go: Debian's Go plugins, with our flannel (Debian ships none)."""
    dist = built_bin_dir()
    if dist is None:
        pytest.skip("dist/bin is not built (python build/build.py)")
    if name == "ours":
        return {p: dist / p for p in PLUGINS}
    if not (GO_PLUGINS / "bridge").exists():
        pytest.skip("Debian's containernetworking-plugins are not installed in /usr/lib/cni")
    return {"flannel": dist / "flannel", **{p: GO_PLUGINS / p for p in PLUGINS[1:]}}


def other_set(name: str) -> str:
    return BIN_SETS[1 - BIN_SETS.index(name)]


@pytest.fixture(scope="session")
def pod_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_docker_archive(tmp_path_factory.mktemp("image") / "pod.tar")


@pytest.fixture(scope="session", params=BIN_SETS)
def session_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pod_image: Path
) -> Iterator[Node]:
    name: str = request.param
    plugins = plugin_set(name)
    root = tmp_path_factory.mktemp(f"containerd-{name}")
    node = Node(root, plugins, name)
    try:
        node.start()
        node.import_image(pod_image)
        yield node
    finally:
        node.stop()
        for what, seconds in node.timings:
            print(f"[{name}] {what}: {seconds * 1000:.0f} ms")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def node(session_node: Node) -> Iterator[Node]:
    """The session's node, put back as it was after each test: pods removed,
    the shipped conflist and the set's own plugins, containerd running."""
    yield session_node
    session_node.reset(plugin_set(session_node.label), shipped_conflist())
