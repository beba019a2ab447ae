"""pytest wiring: --bin-dir/--plugins options, plugin x version parametrisation,
"not applicable" skips, known-bug xfails, and the per-test World fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.discovery import PLUGIN_NAMES, PluginInfo, discover
from conformance.harness import Harness
from conformance.known_bugs import find_known_bug
from conformance.netns import World, world
from conformance.versions import ALL_VERSIONS

INFOS = pytest.StashKey[dict[str, PluginInfo]]()
BIN_DIR = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption(
        "--bin-dir",
        default=os.environ.get("CNF_BIN_DIR", "dist/bin"),
        help="directory of CNI plugin binaries to test",
    )
    group.addoption(
        "--plugins",
        dest="cnf_plugins",
        default=os.environ.get("CNF_PLUGINS", ""),
        help="comma-separated plugin names (default: all known plugins)",
    )


def pytest_configure(config: pytest.Config) -> None:
    bin_dir = Path(config.getoption("--bin-dir")).resolve()
    selected = tuple(n for n in str(config.getoption("cnf_plugins")).split(",") if n)
    unknown = set(selected) - set(PLUGIN_NAMES)
    if unknown:
        raise pytest.UsageError(f"unknown plugins {sorted(unknown)}; known: {PLUGIN_NAMES}")
    config.stash[BIN_DIR] = bin_dir
    config.stash[INFOS] = discover(bin_dir, selected or PLUGIN_NAMES)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    infos = metafunc.config.stash[INFOS]
    marker = metafunc.definition.get_closest_marker("plugins")
    names = [n for n in (marker.args if marker else PLUGIN_NAMES) if n in infos]
    fixtures = metafunc.fixturenames
    if "plugin" in fixtures and "version" in fixtures:
        metafunc.parametrize(
            ("plugin", "version"),
            [pytest.param(infos[n], v, id=f"{n}-{v}") for n in names for v in ALL_VERSIONS],
        )
    elif "plugin" in fixtures:
        metafunc.parametrize("plugin", [pytest.param(infos[n], id=n) for n in names])


def _not_applicable(item: pytest.Item, info: PluginInfo, version: str | None) -> str | None:
    if not info.present:
        return f"{info.name} is not in the bin dir"
    if version is not None and not info.supports(version):
        return f"{info.name} does not report spec {version}"
    for marker in item.iter_markers("requires"):
        predicate, why = marker.args
        if version is not None and not predicate(version):
            return str(why)
    for marker in item.iter_markers("requires_plugin"):
        predicate, why = marker.args
        if not predicate(info):
            return str(why)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        info = callspec.params.get("plugin") if callspec else None
        if not isinstance(info, PluginInfo):
            continue
        version = callspec.params.get("version") if callspec else None
        item.user_properties.append(("plugin", info.name))
        item.user_properties.append(("version", version or "any"))
        reason = _not_applicable(item, info, version)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"not applicable: {reason}"))
            continue
        bug = find_known_bug(item.originalname, info, version)  # type: ignore[attr-defined]
        if bug is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"known bug: {bug.reason}"))


@pytest.fixture(scope="session")
def bin_dir(request: pytest.FixtureRequest) -> Path:
    return request.config.stash[BIN_DIR]


@pytest.fixture(scope="session")
def infos(request: pytest.FixtureRequest) -> dict[str, PluginInfo]:
    return request.config.stash[INFOS]


@pytest.fixture
def cnf_world() -> Iterator[World]:
    """A private node netns (+ pod netns on demand) and temp dir, always torn down."""
    with world() as w:
        yield w


@pytest.fixture
def harness(cnf_world: World, plugin: PluginInfo, bin_dir: Path) -> Harness:
    return Harness(cnf_world, plugin, bin_dir)
