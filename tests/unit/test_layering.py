"""The import direction of DESIGN.md section 2, and lean plugin import graphs.

spec -> nothing of ours; linux -> spec; domain packages (ipam, bridge, portmap,
flannel) -> spec, linux; plugins -> anything but tools; tools (operator tools
such as cnitool) -> spec, linux, domain packages; nothing imports plugins or
tools.
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
    "tools": {"spec", "linux", "ipam", "bridge", "portmap", "flannel", "tools"},
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


def runtime_imports(path: Path) -> set[str]:
    """What ``path`` imports outside ``if TYPE_CHECKING:`` blocks, function-level
    imports included; ``from a import b`` names ``a.b`` too (b may be a module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def source_of(module: str) -> Path | None:
    parts = module.split(".")[1:]
    candidates = [PACKAGE.joinpath(*parts, "__init__.py")]
    if parts:
        candidates.append(PACKAGE.joinpath(*parts[:-1], f"{parts[-1]}.py"))
    return next((c for c in candidates if c.exists()), None)


def reachable(module: str) -> set[str]:
    """``module`` and every module of ours it may import at run time, transitively
    (the verbs import theirs lazily, so importing the plugin is not enough)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = source_of(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(m for m in runtime_imports(path) if m.split(".")[0] == "cni_plugins")
    return seen


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugins_load_no_heavy_modules(plugin: str) -> None:
    modules = reachable(f"cni_plugins.plugins.{plugin}")
    assert "cni_plugins.spec.convert" in modules  # function-level imports are followed
    loaded = loaded_modules(", ".join(sorted(modules)))
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_AT_RUNTIME)
    assert heavy == []


@pytest.mark.parametrize("plugin", [p for p in ("host_local", "flannel") if p in PLUGINS])
def test_netlink_free_plugins(plugin: str) -> None:
    loaded = loaded_modules(f"cni_plugins.plugins.{plugin}")
    assert not {m for m in loaded if m.startswith("cni_plugins.linux.nl")}
    assert "cni_plugins.linux.netlink" not in loaded
    assert "cni_plugins.linux.iptables" not in loaded


def test_skel_alone_loads_only_what_version_needs() -> None:
    loaded = {m for m in loaded_modules("cni_plugins.spec.skel") if m.startswith("cni_plugins")}
    spec = {"skel", "jsonio", "version", "errors", "trace"}
    assert loaded == {"cni_plugins", "cni_plugins.spec", *(f"cni_plugins.spec.{m}" for m in spec)}


@pytest.mark.parametrize("plugin", [p for p in ("bridge", "flannel", "loopback") if p in PLUGINS])
def test_version_loads_no_verb_machinery(plugin: str) -> None:
    """Importing the plugin is all VERSION does: netlink, argument parsing and
    result conversion load with the verbs that use them."""
    loaded = loaded_modules(f"cni_plugins.plugins.{plugin}")
    verbs = ("cni_plugins.linux.", "cni_plugins.spec.args", "cni_plugins.spec.convert")
    assert sorted(m for m in loaded if m.startswith(verbs)) == []


def test_tools_are_registered_apart_from_the_plugins() -> None:
    """TOOLS names entry modules that exist and have a main(); no tool shadows
    a plugin, and the plugins' registry only names tools (never imports them)."""
    from cni_plugins.plugins import BINARIES, TOOLS

    assert TOOLS
    assert not set(TOOLS) & set(BINARIES)
    for module in TOOLS.values():
        path = source_of(module)
        assert path is not None, module
        assert layer_of(module) == "tools"
        assert "main" in {
            n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)
        }
    registry = PACKAGE / "plugins" / "__init__.py"
    assert not [m for m in imports_of(registry) if layer_of(m) == "tools"]
