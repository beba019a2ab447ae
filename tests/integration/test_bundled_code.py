"""Our own modules in the built bundle: one code blob, not the PYZ (build/README.md).

build.py compiles every cni_plugins module into ``_internal/cni_plugins.codes``
and leaves them out of the PyInstaller PYZ; build/multicall.py serves them from
that file through a meta-path finder placed first.  The binaries run, their PYZ
holds none of our modules and their start opens the blob once, so every
cni_plugins module they import comes from it; the same finder, fed the entry's
blob in a child interpreter without the source tree, gives modules the expected
spec.  A module the analysis collected but the package tree lacks is a build
error.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO, built_bin_dir

BIN = built_bin_dir()
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
CODE_BLOB = "cni_plugins.codes"


def load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cni_build_script", REPO / "build" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unpacked_entry(tmp_path: Path) -> Path:
    """Run loopback VERSION with a private cache; return the entry it unpacked."""
    assert BIN is not None
    cache = tmp_path / "cache"
    env = {"CNI_COMMAND": "VERSION", "PATH": PATH, "CNI_PLUGINS_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [str(BIN / "loopback")], input=b"{}", env=env, capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return entry


def test_a_collected_module_missing_from_the_package_is_a_build_error(tmp_path: Path) -> None:
    build = load_build_script()
    with pytest.raises(SystemExit) as exc:
        build.write_code_blob(tmp_path, ["cni_plugins.spec.skel", "cni_plugins.spec.gone"])
    assert "missing from the package tree: cni_plugins.spec.gone" in str(exc.value)
    with pytest.raises(SystemExit) as exc:
        build.write_code_blob(tmp_path, [])  # the spec edit found none of ours
    assert "collected 0 cni_plugins modules" in str(exc.value)
    assert not list(tmp_path.iterdir())


def test_the_spec_edit_still_matches_what_pyinstaller_generates() -> None:
    """build.py inserts its PYZ filter before this line of the generated spec."""
    build = load_build_script()
    from PyInstaller.building import templates

    assert build.SPEC_ANCHOR.strip() in templates.onedirtmplt


@pytest.mark.privileged
@pytest.mark.binaries
@pytest.mark.skipif(BIN is None, reason="dist/bin not built (python build/build.py)")
def test_the_bundle_serves_our_modules_from_the_blob_only(tmp_path: Path) -> None:
    from PyInstaller.archive.readers import pkg_archive_contents

    entry = unpacked_entry(tmp_path)
    blob = entry / "_internal" / CODE_BLOB
    assert blob.is_file()
    in_pyz = [n for n in pkg_archive_contents(str(entry / "cni-plugins")) if "cni_plugins" in n]
    assert in_pyz == []
    assert not (entry / "_internal" / "cni_plugins").exists()

    # A flannel start (VERSION) opens the blob once and nothing of the source tree.
    assert BIN is not None
    trace = tmp_path / "trace"
    env = {"CNI_COMMAND": "VERSION", "PATH": PATH, "CNI_PLUGINS_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), str(BIN / "flannel")],
        input=b"{}",
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    opens = trace.read_text().splitlines()
    assert len([o for o in opens if CODE_BLOB in o]) == 1, opens
    assert not [o for o in opens if "cni_plugins/" in o or str(REPO) in o], opens


# Runs build/multicall.py's finder on an entry's blob in an isolated child
# (-I -S: no repository or site-packages on sys.path), so whatever cni_plugins
# module it imports can only come from the blob.  multicall.py imports
# cni_plugins at its top, so the child executes only the part before that.  It
# must be the build interpreter (the blob is its bytecode).
CHILD = """
import json, sys
build_dir, blob = sys.argv[1:]
sys.path.insert(0, build_dir)
# multicall.py imports cni_plugins at the top: give it the finder first.
src = open(build_dir + "/multicall.py").read()
head = src[: src.index("from cni_plugins.plugins import BINARIES")]
ns = {"__name__": "multicall_head"}
exec(compile(head, "multicall_head", "exec"), ns)
with open(blob, "rb") as f:
    finder = ns["BundledCode"](blob, f.read())
sys.path.remove(build_dir)
sys.meta_path.insert(0, finder)
import cni_plugins.plugins.flannel, cni_plugins.plugins.portmap
import cni_plugins.spec.skel as skel
out = {"index": sorted(finder.index)}
out["packages"] = sorted(n for n, e in finder.index.items() if e[0])
out["modules"] = {
    name: {
        "loader": type(m.__spec__.loader).__name__,
        "origin": m.__spec__.origin,
        "file": getattr(m, "__file__", None),
        "path": getattr(m, "__path__", None),
        "filename": finder.get_code(name).co_filename,
    }
    for name, m in sys.modules.items() if name.split(".")[0] == "cni_plugins"
}
try:
    import cni_plugins.spec.no_such_module
except ImportError as exc:
    out["missing"] = type(exc).__name__
out["docstrings"] = skel.__doc__
print(json.dumps(out))
"""


@pytest.mark.privileged
@pytest.mark.binaries
@pytest.mark.skipif(BIN is None, reason="dist/bin not built (python build/build.py)")
def test_the_finder_gives_blob_modules_a_proper_spec(tmp_path: Path) -> None:
    build = load_build_script()
    entry = unpacked_entry(tmp_path)
    blob = entry / "_internal" / CODE_BLOB
    expected = set(build.package_modules(REPO / "cni_plugins"))
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(child), str(REPO / "build"), str(blob)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert set(got["index"]) == expected
    assert got["packages"] == sorted(
        n for n in expected if (REPO / Path(*n.split(".")) / "__init__.py").exists()
    )
    for name, info in got["modules"].items():
        assert info["loader"] == "BundledCode", (name, info)
        assert info["origin"] == str(blob), (name, info)
        assert info["file"] is None, (name, info)
        assert info["filename"].startswith("cni_plugins/"), (name, info)
    assert got["modules"]["cni_plugins.spec"]["path"] == []
    assert got["modules"]["cni_plugins.plugins.flannel"]["path"] is None
    assert got["missing"] == "ModuleNotFoundError"
    assert got["docstrings"] is None  # compiled with optimize 2, like the PYZ
