"""Build every plugin into a single-file binary in dist/bin/ with PyInstaller.

    python build/build.py [--out dist/bin] [plugin ...]

Each binary bundles only its own import graph (PyInstaller follows imports), so
host-local never carries the netlink code.  The bundle is trimmed for start-up
time: bytecode optimised (-OO), symbols stripped, no UPX, and modules the
analysis pulls in but the plugins never run are excluded.  After building it
prints each binary's size and the median wall time of a VERSION call.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "build" / "_work"
sys.path.insert(0, str(REPO))

# binary name -> module in cni_plugins.plugins
PLUGINS = {
    "bridge": "bridge",
    "flannel": "flannel",
    "host-local": "host_local",
    "loopback": "loopback",
    "portmap": "portmap",
}

# Never imported at run time, but reachable through the stdlib's optional
# imports; excluding them keeps the archive (and its unpack time) small.
# fmt: off
EXCLUDES = [
    "tkinter", "unittest", "pydoc", "doctest", "email", "http", "xml", "xmlrpc",
    "urllib", "html", "sqlite3", "multiprocessing", "asyncio", "concurrent",
    "distutils", "setuptools", "pkg_resources", "lib2to3", "pyroute2", "netaddr",
    "jsonschema", "pytest", "hypothesis", "_pytest", "curses", "readline",
    "bz2", "lzma", "decimal", "_decimal", "ssl", "_ssl",
    "pickle", "_pickle", "csv", "zipfile", "tarfile", "gettext", "calendar",
    "logging", "argparse", "optparse", "getopt", "difflib", "pdb", "cProfile",
    "profile", "pstats", "tracemalloc", "webbrowser", "socketserver", "mailbox",
    "inspect", "pkgutil", "dis", "ast",
]
# fmt: on


def version_string() -> str:
    from cni_plugins import __version__

    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return __version__
    return f"{__version__}+g{rev}{'.dirty' if dirty else ''}"


def write_entry(binary: str, module: str, version: str) -> Path:
    """A two-line script per binary; it stamps the version into the bundle."""
    WORK.mkdir(parents=True, exist_ok=True)
    entry = WORK / f"{binary}.py"
    entry.write_text(
        "import cni_plugins\n"
        f"cni_plugins.__version__ = {version!r}\n"
        f"from cni_plugins.plugins.{module} import main\n"
        "main()\n"
    )
    return entry


def build_one(binary: str, module: str, out: Path, version: str) -> Path:
    entry = write_entry(binary, module, version)
    args = [
        str(entry),
        "--onefile",
        "--name",
        binary,
        "--distpath",
        str(out),
        "--workpath",
        str(WORK / "pyi" / binary),
        "--specpath",
        str(WORK / "spec"),
        "--paths",
        str(REPO),
        "--optimize",
        "2",
        "--strip",
        "--noupx",
        "--noconfirm",
        "--log-level",
        "WARN",
    ]
    for name in EXCLUDES:
        args += ["--exclude-module", name]
    env = dict(os.environ, PYTHONHASHSEED="0", SOURCE_DATE_EPOCH=_source_date_epoch())
    subprocess.run([sys.executable, "-m", "PyInstaller", *args], check=True, env=env, cwd=REPO)
    return out / binary


def _source_date_epoch() -> str:
    try:
        return (
            subprocess.run(
                ["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            or "0"
        )
    except (OSError, subprocess.CalledProcessError):
        return "0"


def cold_start_ms(binary: Path, runs: int = 7) -> float:
    """Median wall time of ``CNI_COMMAND=VERSION`` (includes the onefile unpack)."""
    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(binary)], input=b"{}", env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plugins", nargs="*", help="binaries to build (default: all that exist)")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "bin")
    ns = parser.parse_args()
    available = {
        b: m for b, m in PLUGINS.items() if (REPO / "cni_plugins" / "plugins" / f"{m}.py").exists()
    }
    wanted = ns.plugins or sorted(available)
    unknown = [p for p in wanted if p not in available]
    if unknown:
        parser.error(f"no such plugin: {', '.join(unknown)} (have: {', '.join(available)})")
    version = version_string()
    ns.out.mkdir(parents=True, exist_ok=True)
    built = [build_one(b, available[b], ns.out, version) for b in wanted]
    shutil.rmtree(WORK / "pyi", ignore_errors=True)
    print(f"\nbuilt {len(built)} binaries, version {version}, into {ns.out}")
    print(f"{'binary':<12} {'size (KiB)':>10} {'VERSION median (ms)':>20}")
    for path in built:
        size = path.stat().st_size // 1024
        print(f"{path.name:<12} {size:>10} {cold_start_ms(path):>20.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
