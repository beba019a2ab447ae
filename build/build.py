"""Build the plugin and tool binaries into dist/bin/: one launcher + one shared bundle.

    python build/build.py [--out dist/bin] [plugin ...]

PyInstaller builds ONE onedir bundle holding every plugin behind a multicall
entry (build/multicall.py; argv[0]'s basename picks the plugin and only that
plugin's module is imported).  The bundle is trimmed for start-up time:
bytecode optimised (-OO), symbols stripped, no UPX, and modules the analysis
pulls in but the plugins never run are excluded.  Our own modules are not in
the PYZ but compiled into one code blob that multicall.py serves from a
meta-path finder (write_code_blob).  The onedir tree is packed
into one zlib stream (the payload), and each binary is the C launcher
(build/launcher/launcher.c, static: no loader, no library) + the payload (which
carries the build machine's glibc and loader) + a trailer naming the plugin and
the payload's SHA-256.  At exec the
launcher runs the bundle from a content-addressed cache directory, unpacking
it there once (see launcher.c).  After building it prints each binary's size
and the median wall time of a VERSION call with a cold and a warm cache.
"""

from __future__ import annotations

import argparse
import hashlib
import marshal
import os
import shutil
import statistics
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
WORK = BUILD / "_work"
if os.environ.get("CNI_PLUGINS_BUILD_EMULATED"):
    # foreign_arch.py's run inside the root: a work dir of its own, so a native
    # build can run at the same time (scripts/test.sh runs both)
    WORK = WORK / f"emulated-{os.uname().machine}"
sys.path.insert(0, str(REPO))
sys.path.append(str(BUILD))  # build/versioning.py, also when tests import build.build

# on sys.path above (mypy and the unit tests see it as build.versioning)
import versioning  # type: ignore[import-not-found]  # noqa: E402

from cni_plugins.plugins import BINARIES, TOOLS  # noqa: E402 - needs REPO on sys.path

# binary name -> module in cni_plugins.plugins
PLUGINS = BINARIES
BUNDLE = "cni-plugins"  # the bundle's executable; must match BUNDLE_EXE in launcher.c
MAGIC = b"CNIPYPL1"  # must match launcher.c; bump with any format change
TRAILER = struct.Struct("<32s64sQQII8s")  # struct trailer in launcher.c
RECORD = struct.Struct("<BBHQ")  # type, executable, path length, data length

# Never imported at run time, but reachable through the stdlib's optional
# imports; excluding them keeps the bundle (and its unpack time) small.
# _hashlib drags in libcrypto (4.7 MB): hashlib falls back to the built-in
# _sha512 the plugins use.  The CJK codecs are never used.
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
    "_hashlib", "_multibytecodec", "_codecs_cn", "_codecs_hk", "_codecs_iso2022",
    "_codecs_jp", "_codecs_kr", "_codecs_tw",
    "ctypes", "_ctypes",
]
# fmt: on

# PyInstaller's bootstrap imports ctypes (and libffi) at every start when the
# bundle has it; the plugins need it only for setns(2) (os.setns is 3.12+), so
# the bundle gets this C extension instead (build/ext/cni_setns.c) and no ctypes.
SETNS_MODULE = "_cni_setns"  # netns.py imports this name


def version_string() -> str:
    """The build's version: from the release tag (build/versioning.py)."""
    from cni_plugins import __version__

    if os.environ.get("CNI_PLUGINS_BUILD_VERSION"):  # foreign_arch.py: no git in its root
        return os.environ["CNI_PLUGINS_BUILD_VERSION"]
    try:
        rev = _git("rev-parse", "--short=12", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return __version__
    try:
        describe: str | None = _git("describe", "--tags", "--long", "--match", "v[0-9]*")
    except subprocess.CalledProcessError:  # no release tag yet
        describe = None
    version: str = versioning.from_describe(describe, rev, dirty, __version__)
    if versioning.is_release(version) and not versioning.changelog_has(
        (REPO / "CHANGELOG.md").read_text(), version
    ):
        raise SystemExit(f"build: release {version} has no '## {version}' section in CHANGELOG.md")
    return version


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _source_date_epoch() -> str:
    try:
        return _git("log", "-1", "--format=%ct") or "0"
    except (OSError, subprocess.CalledProcessError):
        return "0"


def build_setns_extension() -> Path:
    """gcc build/ext/cni_setns.c against the build interpreter's headers;
    returns the directory holding the module (for PyInstaller's --paths)."""
    out_dir = WORK / "ext"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{SETNS_MODULE}.*"):
        old.unlink()
    include = sysconfig.get_path("include")
    if not (Path(include) / "Python.h").exists():
        sys.exit(f"{include}/Python.h missing: run scripts/setup.sh (apt-get install python3-dev)")
    out = out_dir / f"{SETNS_MODULE}{sysconfig.get_config_var('EXT_SUFFIX')}"
    src = BUILD / "ext" / "cni_setns.c"
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-s"]
    cmd += [f"-I{include}", "-o", str(out), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"building {src.name} failed (needs gcc and python3-dev):\n{result.stderr}")
    return out_dir


def build_bundle(modules: dict[str, str], version: str, ext_dir: Path) -> Path:
    """The onedir bundle, plus a symlink per binary name to its executable;
    ``modules`` maps binary names to their (dotted) entry modules."""
    entry_dir = WORK / "entry"
    entry_dir.mkdir(parents=True, exist_ok=True)
    entry = entry_dir / f"{BUNDLE}.py"
    source = (BUILD / "multicall.py").read_text()
    stamp = "BUILD_VERSION: str | None = None\n"
    assert stamp in source, "multicall.py lost its BUILD_VERSION line"
    entry.write_text(source.replace(stamp, f"BUILD_VERSION: str | None = {version!r}\n"))
    dist = WORK / "bundle"
    spec_dir = WORK / "spec"
    args = [
        str(entry),
        "--onedir",
        "--name",
        BUNDLE,
        "--specpath",
        str(spec_dir),
        "--paths",
        str(REPO),
        "--optimize",
        "2",
        "--strip",
        "--noupx",
        "--log-level",
        "WARN",
    ]
    for module in modules.values():
        args += ["--hidden-import", module]
    args += ["--paths", str(ext_dir), "--hidden-import", SETNS_MODULE]
    for name in EXCLUDES:
        args += ["--exclude-module", name]
    env = dict(os.environ, PYTHONHASHSEED="0", SOURCE_DATE_EPOCH=_source_date_epoch())
    # Store the PYZ's modules uncompressed: the bundle otherwise inflates every
    # module it imports at every start (~2 ms of zlib per VERSION), while the
    # payload is zlib-compressed as a whole anyway (it even gets smaller).
    # PyInstaller's own knob (archive/writers.py); without it, just slower.
    env["PYINSTALLER_ZLIB_COMPRESSION_LEVEL"] = "0"
    makespec = [sys.executable, "-m", "PyInstaller.utils.cliutils.makespec", *args]
    subprocess.run(makespec, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    spec = spec_dir / f"{BUNDLE}.spec"
    text = spec.read_text()
    if text.count(SPEC_ANCHOR) != 1:
        sys.exit(f"{spec}: no single {SPEC_ANCHOR.strip()!r} line: PyInstaller's spec changed")
    spec.write_text(text.replace(SPEC_ANCHOR, SPEC_SPLIT + SPEC_ANCHOR))
    ours = WORK / "collected-cni_plugins.txt"
    ours.unlink(missing_ok=True)
    build = [sys.executable, "-m", "PyInstaller", str(spec), "--distpath", str(dist)]
    build += ["--workpath", str(WORK / "pyi"), "--noconfirm", "--log-level", "WARN"]
    subprocess.run([*build, "--", str(ours)], check=True, env=env, cwd=REPO)
    bundle = dist / BUNDLE
    # PyInstaller's bootloader links libz.so.1 from the host; point it at the
    # copy in the bundle so that glibc is all the host must provide.
    try:
        subprocess.run(
            ["patchelf", "--set-rpath", "$ORIGIN/_internal", str(bundle / BUNDLE)], check=True
        )
    except FileNotFoundError:
        sys.exit("patchelf not found: run scripts/setup.sh (apt-get install patchelf)")
    bundle_libc(bundle)
    check_self_contained(bundle)
    check_no_ctypes(bundle)
    write_code_blob(bundle, ours.read_text().split())
    for name in modules:
        (bundle / name).symlink_to(BUNDLE)
    return bundle


# The libraries of the build machine's glibc that the bundle's ELF files need:
# PyInstaller leaves them out (it expects them on the node); build.py copies
# them in, with the loader, so that the node need provide only the kernel.
GLIBC = ("libc.so", "libm.so", "libdl.so", "libpthread.so", "librt.so", "libutil.so")
# The loader reads this file (if it exists) and preloads the libraries it
# names into every program, ours too: a node's security agent or audit
# library, built for the node's glibc, inside a process running ours may fail
# relocation and abort the plugin.  Those libraries are for the node's own
# programs (which our delegates and iptables still are); in the bundled loader
# the path is overwritten with /dev/null (empty: nothing to preload).
PRELOAD_FILE = b"/etc/ld.so.preload\0"
PRELOAD_NONE = b"/dev/null".ljust(len(PRELOAD_FILE), b"\0")


def elf_files(tree: Path) -> list[Path]:
    found = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()):
        with open(path, "rb") as f:
            if f.read(4) == b"\x7fELF":
                found.append(path)
    return found


def _readelf(option: str, path: Path) -> str:
    try:
        return subprocess.run(
            ["readelf", "-W", option, str(path)], capture_output=True, text=True, check=True
        ).stdout
    except FileNotFoundError:
        sys.exit("readelf not found: run scripts/setup.sh (apt-get install binutils)")


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED names of an ELF file."""
    out = _readelf("-d", path)
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def elf_interpreter(path: Path) -> str | None:
    """The PT_INTERP path of an ELF file (None: static, or a shared library)."""
    for line in _readelf("-l", path).splitlines():
        if "Requesting program interpreter:" in line:
            return line.split(":", 1)[1].strip().rstrip("]").strip()
    return None


def loader_of(bundle: Path) -> Path:
    """The bundled loader: _internal/<basename of the bootloader's PT_INTERP>."""
    interp = elf_interpreter(bundle / BUNDLE)
    if interp is None:
        sys.exit(f"{BUNDLE} has no program interpreter: cannot tell which loader to bundle")
    return bundle / "_internal" / os.path.basename(interp)


def bundle_libc(bundle: Path) -> None:
    """Copy the build machine's loader and the glibc libraries the bundle's ELF
    files need into _internal/, and keep the loader from reading the node's
    /etc/ld.so.preload."""
    internal = bundle / "_internal"
    interp = elf_interpreter(bundle / BUNDLE)
    assert interp is not None
    loader = loader_of(bundle)
    data = Path(interp).resolve().read_bytes()
    if data.count(PRELOAD_FILE) != 1:
        sys.exit(f"{interp}: {PRELOAD_FILE!r} not found exactly once: cannot disable it")
    loader.write_bytes(data.replace(PRELOAD_FILE, PRELOAD_NONE))
    loader.chmod(0o755)
    host = {}  # soname -> host path, as the host's loader resolves it
    pending = True
    while pending:  # libraries of copied libraries too
        pending = False
        for path in elf_files(bundle):
            missing = [n for n in elf_needed(path) if not (internal / n).exists()]
            if not missing:
                continue
            out = subprocess.run(
                ["ldd", str(path)], capture_output=True, text=True, check=False
            ).stdout
            for line in out.splitlines():
                parts = line.split()
                if len(parts) > 2 and parts[1] == "=>" and parts[2].startswith("/"):
                    host[parts[0]] = parts[2]
            for name in missing:
                if name.startswith(GLIBC) and name in host:
                    shutil.copyfile(Path(host[name]).resolve(), internal / name)
                    (internal / name).chmod(0o755)
                    pending = True


def check_self_contained(bundle: Path) -> None:
    """Fail unless every ELF file in the bundle finds every library it needs in
    _internal/, resolved by the bundled loader exactly as at run time (no
    ld.so.cache, --library-path; see run() in launcher.c)."""
    internal = bundle / "_internal"
    loader = loader_of(bundle)
    problems: set[str] = set()
    for path in elf_files(bundle):
        if path == loader:
            continue
        cmd = [str(loader), "--inhibit-cache", "--library-path", str(internal), "--list"]
        proc = subprocess.run([*cmd, str(path)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            problems.add(f"{path.relative_to(bundle)}: {(proc.stderr or proc.stdout).strip()}")
        for line in proc.stdout.splitlines():
            parts = line.split()
            # the vDSO, a static file, or (under qemu-user) the object itself, unnamed
            if not parts or parts[0].startswith(("linux-vdso", "(")) or "statically linked" in line:
                continue
            resolved = parts[2] if len(parts) > 2 and parts[1] == "=>" else parts[0]
            if resolved == "not" or not Path(resolved).resolve().is_relative_to(internal):
                problems.add(f"{path.relative_to(bundle)}: {parts[0]} => {resolved}")
    if problems:
        sys.exit(
            "the bundle needs libraries it does not carry:\n  " + "\n  ".join(sorted(problems))
        )


def bundle_modules(bundle: Path) -> set[str]:
    """Every module name in the bundle: the executable's PKG and PYZ archives,
    base_library.zip, and the extension modules and libraries in _internal."""
    import zipfile

    from PyInstaller.archive.readers import pkg_archive_contents

    internal = bundle / "_internal"
    names = set(pkg_archive_contents(str(bundle / BUNDLE)))
    with zipfile.ZipFile(internal / "base_library.zip") as base:
        names |= {n.removesuffix(".pyc").replace("/", ".") for n in base.namelist()}
    names |= {p.name.split(".")[0] for p in internal.rglob("*") if p.is_file()}
    return names


def check_no_ctypes(bundle: Path) -> None:
    """Fail if ctypes got into the bundle (the bootstrap would import it at
    every start) or our setns extension did not."""
    names = bundle_modules(bundle)
    found = sorted(n for n in names if n.split(".")[0] in ("ctypes", "_ctypes", "libffi"))
    if found:
        sys.exit(f"ctypes must not be in the bundle (see EXCLUDES), found: {', '.join(found)}")
    if SETNS_MODULE not in names:
        sys.exit(f"{SETNS_MODULE} is missing from the bundle: netns.py would fail to setns")


# Our own package is not in the PYZ: build.py compiles it into one file in the
# bundle's _internal/ that build/multicall.py reads once at start (class
# BundledCode, first in sys.meta_path; format there).  The spec PyInstaller
# generates is edited so that its analysis still follows our imports (and
# collects the stdlib modules they need) but the PYZ leaves our modules out;
# the edit writes their names to the file given after "--".
CODE_BLOB = "cni_plugins.codes"  # must match multicall.py
CODE_MAGIC = b"CNICODE1"  # must match multicall.py; bump with any format change
SPEC_ANCHOR = "pyz = PYZ(a.pure)\n"
SPEC_SPLIT = """\
# build/build.py: cni_plugins goes into the code blob, not the PYZ
import sys
_ours = [e for e in a.pure if e[0] == "cni_plugins" or e[0].startswith("cni_plugins.")]
a.pure = [e for e in a.pure if e not in _ours]
with open(sys.argv[1], "w") as _f:
    _f.write("".join(e[0] + "\\n" for e in _ours))
"""


def package_modules(package: Path) -> dict[str, Path]:
    """module name -> source file, for every module of the package tree."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def write_code_blob(bundle: Path, collected: list[str]) -> None:
    """Compile every cni_plugins module (optimize 2, as the PYZ's modules) into
    CODE_BLOB in the bundle's _internal/.  Fails if the analysis collected none
    of them, if one it collected is not in the package tree, or if any is still
    in the PYZ.  co_filename is the path relative to the repository, as
    PyInstaller gives the PYZ's modules (equal sources give equal blobs)."""
    from importlib.util import MAGIC_NUMBER

    from PyInstaller.archive.readers import pkg_archive_contents

    sources = package_modules(REPO / "cni_plugins")
    missing = sorted(set(collected) - sources.keys())
    if "cni_plugins.spec.skel" not in collected or missing:
        sys.exit(
            f"{CODE_BLOB}: the analysis collected {len(collected)} cni_plugins modules,"
            f" missing from the package tree: {', '.join(missing) or '-'}"
        )
    in_pyz = [n for n in pkg_archive_contents(str(bundle / BUNDLE)) if n.startswith("cni_plugins")]
    if in_pyz:
        sys.exit(f"cni_plugins modules left in the PYZ: {', '.join(in_pyz)}")
    index: dict[str, tuple[bool, int, int]] = {}
    chunks: list[bytes] = []
    offset = 0
    for name, path in sources.items():
        rel = path.relative_to(REPO).as_posix()
        chunk = marshal.dumps(
            compile(path.read_bytes(), rel, "exec", dont_inherit=True, optimize=2)
        )
        index[name] = (path.name == "__init__.py", offset, len(chunk))
        chunks.append(chunk)
        offset += len(chunk)
    head = marshal.dumps(index)
    blob = CODE_MAGIC + MAGIC_NUMBER + struct.pack("<I", len(head)) + head + b"".join(chunks)
    (bundle / "_internal" / CODE_BLOB).write_bytes(blob)


def pack(tree: Path) -> tuple[bytes, int]:
    """The tree as one zlib stream of records (format in launcher.c's unpack());
    returns (payload, unpacked size).  Sorted walk: directories precede their
    contents and equal trees give equal payloads."""
    raw = bytearray()

    def record(kind: bytes, executable: bool, rel: str, data: bytes) -> None:
        path = rel.encode()
        raw.extend(RECORD.pack(kind[0], int(executable), len(path), len(data)))
        raw.extend(path)
        raw.extend(data)

    for root, dirs, files in os.walk(tree):
        dirs.sort()
        base = Path(root)
        for name in [*sorted(files), *[d for d in dirs if (base / d).is_symlink()]]:
            path = base / name
            rel = path.relative_to(tree).as_posix()
            if path.is_symlink():
                record(b"L", False, rel, os.readlink(path).encode())
            else:
                record(b"F", os.access(path, os.X_OK), rel, path.read_bytes())
        for name in dirs:
            if not (base / name).is_symlink():
                record(b"D", False, (base / name).relative_to(tree).as_posix(), b"")
    raw.extend(RECORD.pack(ord("E"), 0, 0, 0))
    return zlib.compress(bytes(raw), 9), len(raw)


def build_launcher(loader_name: str) -> Path:
    """gcc the launcher statically (glibc's libc.a, zlib's libz.a) and prove
    that it needs no loader and no library."""
    WORK.mkdir(parents=True, exist_ok=True)  # absent in a fresh clone
    out = WORK / "launcher"
    src = BUILD / "launcher" / "launcher.c"
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-s", "-static"]
    cmd += [f'-DLOADER_NAME="{loader_name}"', "-o", str(out), str(src), "-lz"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(
            "building the launcher failed (needs gcc, libc6-dev and zlib1g-dev):\n" + result.stderr
        )
    if elf_interpreter(out) is not None or elf_needed(out):
        sys.exit(f"the launcher must be static, but it has a loader or needs {elf_needed(out)}")
    return out


def write_binary(out: Path, name: str, launcher: bytes, payload: bytes, trailer: bytes) -> Path:
    """launcher + payload + trailer, written to a temp name and renamed into
    place (a running binary is never overwritten)."""
    target = out / name
    tmp = out / f".{name}.build.tmp"
    with open(tmp, "wb") as f:
        f.write(launcher)
        f.write(payload)
        f.write(trailer)
    tmp.chmod(0o755)
    tmp.replace(target)
    return target


def check_one_exec(binary: Path) -> None:
    """Fail unless a warm VERSION call execs the bundle exactly once: the
    launcher sets the environment the PyInstaller bootloader would set before
    restarting itself (launcher.c, preset_bootloader_env), so the bootloader
    must not restart.  A PyInstaller whose restart protocol differs either
    restarts anyway (a third execve) or fails."""
    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    with tempfile.TemporaryDirectory(dir=WORK, prefix="execs-") as tmp:
        env["CNI_PLUGINS_CACHE_DIR"] = str(Path(tmp) / "cache")
        trace = Path(tmp) / "trace"
        cmd = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), str(binary)]
        for _ in range(2):  # the first call unpacks
            try:
                proc = subprocess.run(cmd, input=b"{}", env=env, capture_output=True, check=False)
            except FileNotFoundError:
                sys.exit("strace not found: run scripts/setup.sh (apt-get install strace)")
            if proc.returncode != 0:
                sys.exit(f"{binary.name} VERSION failed:\n{proc.stdout!r}\n{proc.stderr!r}")
        execs = [line for line in trace.read_text().splitlines() if "execve(" in line]
    if len(execs) != 2:
        sys.exit(
            f"a VERSION call of {binary.name} made {len(execs)} execve calls, not 2 (launcher,"
            " bundle): the PyInstaller bootloader's onedir restart protocol changed; update"
            " preset_bootloader_env() in build/launcher/launcher.c\n  " + "\n  ".join(execs)
        )


def version_ms(binary: Path, cache: Path, runs: int) -> list[float]:
    """Wall times of ``CNI_COMMAND=VERSION`` with the bundle cache in ``cache``."""
    env = {
        "CNI_COMMAND": "VERSION",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_PLUGINS_CACHE_DIR": str(cache),
    }
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(binary)], input=b"{}", env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(built: list[Path], payload_size: int, unpacked: int) -> None:
    print(f"payload: {payload_size // 1024} KiB packed, {unpacked // 1024} KiB unpacked")
    print(f"{'binary':<12} {'size (KiB)':>10} {'cold (ms)':>10} {'warm VERSION median (ms)':>26}")
    with tempfile.TemporaryDirectory(dir=WORK, prefix="timing-") as tmp:
        for path in built:
            # cold: the first exec with an empty cache (unpacks the bundle)
            cold = []
            for i in range(3):
                cold += version_ms(path, Path(tmp) / f"{path.name}-{i}", 1)
            warm = version_ms(path, Path(tmp) / f"{path.name}-0", 11)
            size = path.stat().st_size // 1024
            print(
                f"{path.name:<12} {size:>10} {statistics.median(cold):>10.1f}"
                f" {statistics.median(warm):>26.1f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("plugins", nargs="*", help="binaries to write (default: all that exist)")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "bin")
    parser.add_argument("--no-timing", action="store_true", help="skip the start-up timings")
    parser.add_argument(
        "--print-version",
        action="store_true",
        help="print the version a build would stamp, build nothing",
    )
    parser.add_argument(
        "--arch",
        default="native",
        help="build for another architecture (arm64) in a Debian root of it (foreign_arch.py)",
    )
    ns = parser.parse_args()
    if ns.print_version:
        print(version_string())
        return 0
    if ns.arch != "native":
        # build/ is sys.path[0] when run as a script (mypy checks it as build.foreign_arch)
        import foreign_arch  # type: ignore[import-not-found]

        args = [*ns.plugins, *(["--no-timing"] if ns.no_timing else [])]
        out = ns.out if "--out" in sys.argv else REPO / "dist" / f"bin-{ns.arch}"
        code = foreign_arch.build(ns.arch, REPO, WORK, out, args=args, version=version_string())
        return int(code)
    available = {
        b: m for b, m in PLUGINS.items() if (REPO / "cni_plugins" / "plugins" / f"{m}.py").exists()
    }
    entries = {b: f"cni_plugins.plugins.{m}" for b, m in available.items()} | TOOLS
    wanted = ns.plugins or sorted(entries)
    unknown = [p for p in wanted if p not in entries]
    if unknown:
        parser.error(f"no such binary: {', '.join(unknown)} (have: {', '.join(entries)})")
    version = version_string()
    shutil.rmtree(WORK / "bundle", ignore_errors=True)
    bundle = build_bundle(entries, version, build_setns_extension())
    launcher = build_launcher(loader_of(bundle).name).read_bytes()
    payload, unpacked = pack(bundle)
    digest = hashlib.sha256(payload).hexdigest().encode()
    crc = zlib.crc32(payload)
    ns.out.mkdir(parents=True, exist_ok=True)
    built = []
    for name in wanted:
        trailer = TRAILER.pack(name.encode(), digest, len(payload), unpacked, crc, 0, MAGIC)
        built.append(write_binary(ns.out, name, launcher, payload, trailer))
    shutil.rmtree(WORK / "pyi", ignore_errors=True)
    shutil.rmtree(WORK / "bundle", ignore_errors=True)
    plugins = [path for path in built if path.name in available]  # tools have no VERSION
    if os.environ.get("CNI_PLUGINS_BUILD_EMULATED"):  # foreign_arch.py, under qemu-user
        print("not checking the execve count: qemu-user has no ptrace (strace)")
    else:
        check_one_exec(plugins[0] if plugins else built[0])
    print(f"\nbuilt {len(built)} binaries, version {version}, payload id {digest.decode()[:16]}")
    print(f"into {ns.out}; launcher {len(launcher) // 1024} KiB")
    if not ns.no_timing:
        report(plugins, len(payload), unpacked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
