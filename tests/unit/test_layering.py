"""The import direction of DESIGN.md section 2, and lean plugin import graphs.

spec -> nothing of ours; linux -> spec; domain packages (ipam, bridge, portmap,
flannel) -> spec, linux; plugins -> anything; nothing imports plugins.
PyInstaller bundles exactly the import graph, so this also decides what each
binary carries and pays for at every exec.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cni_plugins"
ALLOWED = {
    "spec": {"spec"},
    "linux": {"spec", "linux"},
    "ipam": {"spec", "linux", "ipam"},
    "bridge": {"spec", "linux", "ipam", "bridge"},
    "portmap": {"spec", "linux", "portmap"},
    "flannel": {"spec", "linux", "flannel"},
    "plugins": {"spec", "linux", "ipam", "bridge", "portmap", "flannel", "plugins"},
}
# Only our own code and a lean slice of the stdlib may load at plugin run time.
FORBIDDEN_AT_RUNTIME = (
    "pyroute2", "jsonschema", "netaddr", "dataclasses", "typing", "subprocess",
    # ~5-10 ms each per exec: json compiles regexes at import, re brings enum.
    "json", "re", "enum", "contextlib", "socket", "hashlib", "ctypes",
    # ~6 ms together: spec.ip stands in for ipaddress, which alone loads these two.
    "ipaddress", "functools", "collections",
)  # fmt: skip


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "cni_plugins" or len(parts) < 2:
        return None
    return parts[1]


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layering(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    assert layer in ALLOWED, f"new layer {layer!r}: add it to ALLOWED and to DESIGN.md"
    for module in imports_of(path):
        target = layer_of(module)
        if target is not None:
            assert target in ALLOWED[layer], f"{path.name}: {layer} must not import {module}"


PLUGINS = sorted(p.stem for p in (PACKAGE / "plugins").glob("*.py") if p.stem != "__init__")


def loaded_modules(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(PACKAGE.parent)!r}); {code}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugins_load_no_heavy_modules(plugin: str) -> None:
    loaded = loaded_modules(f"cni_plugins.plugins.{plugin}")
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_AT_RUNTIME)
    assert heavy == []


@pytest.mark.parametrize("plugin", [p for p in ("host_local", "flannel") if p in PLUGINS])
def test_netlink_free_plugins(plugin: str) -> None:
    loaded = loaded_modules(f"cni_plugins.plugins.{plugin}")
    assert not {m for m in loaded if m.startswith("cni_plugins.linux.nl")}
    assert "cni_plugins.linux.netlink" not in loaded
    assert "cni_plugins.linux.iptables" not in loaded
