"""build.py --arch <other>: the same build, run inside a Debian root of that architecture.

The bundle must carry the target's glibc, loader, libpython and PyInstaller
bootloader, so the build runs where those are native: a Debian 12 root of
that architecture (kept in build/_work/root-<arch>, made once: the packages
unpacked natively by ``mmdebstrap --variant=extract``), entered with ``chroot``
through qemu-user-static's binfmt handler, with a venv holding the PyInstaller
pins of requirements-dev.txt (PyPI's wheels for that architecture, installed
by the build machine's pip).
The repository is bind-mounted at /src inside a private mount namespace, so the
output lands in the work tree and every mount dies with the build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

# Debian architecture -> (kernel machine name, binfmt_misc magic of its ELF files)
ARCHES = {"arm64": ("aarch64", "7f454c460201010000000000000000000200b700")}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
SUITE = "bookworm"  # Debian 12, as the native build
# what build.py runs in the root (ldd is a bash script; no essential set is
# unpacked unless named)
PACKAGES = (
    "gcc,libc6-dev,zlib1g-dev,python3,python3-dev,python3-venv,patchelf,binutils,strace,file,"
    "bash,libc-bin,coreutils,sed,grep"
)
MIRROR = "http://deb.debian.org/debian"
PINNED = ("pyinstaller", "pyinstaller-hooks-contrib", "altgraph", "packaging")


def _pins(repo: Path) -> list[str]:
    pins = []
    for line in (repo / "requirements-dev.txt").read_text().splitlines():
        name = line.split("==")[0].strip().lower()
        if name in PINNED and "==" in line:
            pins.append(line.split("#")[0].strip())
    if len(pins) != len(PINNED):
        sys.exit(f"requirements-dev.txt must pin {', '.join(PINNED)}")
    return pins


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, check=False)
    if result.returncode != 0:
        sys.exit(f"{argv[0]} failed ({result.returncode}): {' '.join(argv)}")


def _handler(magic: str) -> Path | None:
    """The enabled binfmt_misc entry for ELF files with ``magic`` (Debian's
    ``qemu-aarch64`` or scripts/with-binfmt-arm64.sh's), if any."""
    for entry in sorted(BINFMT.glob("*")) if BINFMT.is_dir() else []:
        if entry.name in ("register", "status"):
            continue
        lines = entry.read_text().splitlines()
        if "enabled" in lines and f"magic {magic}" in lines:
            return entry
    return None


def _timed(what: str, started: float) -> None:
    print(f"foreign_arch: {what}: {time.monotonic() - started:.0f} s", flush=True)


def _install_interpreter(binfmt: Path, root: Path) -> None:
    """Copy the binfmt entry's interpreter into the root: without the F flag the
    kernel looks it up inside the chroot at each exec."""
    entry = binfmt.read_text().splitlines()
    interpreter = next(line.split()[1] for line in entry if line.startswith("interpreter "))
    dest = root / interpreter.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(interpreter).resolve(), dest)
    dest.chmod(0o755)


def prepare_root(arch: str, repo: Path, work: Path) -> Path:
    """The build root for ``arch``, made (mmdebstrap, venv) if not there yet."""
    machine, magic = ARCHES[arch]
    binfmt = _handler(magic)
    if binfmt is None:
        sys.exit(
            f"no binfmt_misc handler for {machine}: install qemu-user-static and run"
            " the build under scripts/with-binfmt-arm64.sh (as root)"
        )
    root = work / f"root-{arch}"
    ready = root / ".cni-plugins-build-root"
    pins = _pins(repo)
    if ready.exists() and ready.read_text().split() == pins:
        return root
    if not (root / "usr" / "bin" / "python3").exists():
        # Unpacked natively, no maintainer script run: the build needs the
        # packages' files only.  A debootstrap (whose second stage runs dpkg and
        # every maintainer script under qemu) took 21 min here, this ~35 s.
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        extract = ["mmdebstrap", "--variant=extract", f"--architectures={arch}", "-q"]
        _run([*extract, f"--include={PACKAGES}", SUITE, str(root), MIRROR])
        _timed("mmdebstrap --variant=extract (native)", started)
    _install_interpreter(binfmt, root)
    started = time.monotonic()
    shutil.rmtree(root / "venv", ignore_errors=True)
    _run(["chroot", str(root), "python3", "-m", "venv", "--without-pip", "/venv"])
    (site,) = (root / "venv" / "lib").glob("python3.*/site-packages")
    # the build machine's pip fetches the target's wheels: pip under qemu took ~3 min
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip += ["--only-binary=:all:", "--platform", f"manylinux2014_{machine}"]
    pip += ["--python-version", site.parent.name.removeprefix("python"), "--implementation", "cp"]
    _run([*pip, "--target", str(site), *pins])
    _timed("venv (emulated) and pip install (native)", started)
    uname = subprocess.run(
        ["chroot", str(root), "uname", "-m"], capture_output=True, text=True, check=True
    )
    if uname.stdout.strip() != machine:
        sys.exit(f"{root}: runs as {uname.stdout.strip()}, not {machine}")
    ready.write_text("\n".join(pins) + "\n")
    return root


def build(arch: str, repo: Path, work: Path, out: Path, *, args: list[str], version: str) -> int:
    """Run build.py inside the ``arch`` root; ``out`` must be inside the repository."""
    if arch not in ARCHES:
        sys.exit(f"--arch {arch}: not supported (have: native, {', '.join(ARCHES)})")
    try:
        rel = out.resolve().relative_to(repo)
    except ValueError:
        sys.exit(f"--out {out}: must be inside {repo} for a foreign-architecture build")
    root = prepare_root(arch, repo, work)
    (root / "src").mkdir(exist_ok=True)
    (root / "root").mkdir(mode=0o700, exist_ok=True)  # HOME: PyInstaller's cache
    script = (
        'set -eu\nmount --bind "$1" "$2/src"\nmount -t proc proc "$2/proc"\n'
        'root=$2\nshift 2\nexec chroot "$root" env CNI_PLUGINS_BUILD_VERSION="$VERSION"'
        " CNI_PLUGINS_BUILD_EMULATED=1 HOME=/root"
        ' PATH=/usr/sbin:/usr/bin:/sbin:/bin /venv/bin/python /src/build/build.py "$@"\n'
    )
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
    argv += [str(repo), str(root), "--out", f"/src/{rel}", *args]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "VERSION": version}
    started = time.monotonic()
    returncode = subprocess.run(argv, env=env, check=False).returncode
    _timed("build.py in the root (emulated)", started)
    return returncode
