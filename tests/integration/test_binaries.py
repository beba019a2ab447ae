"""The dist/bin binaries as shipped: launcher, shared payload, unpack cache.

Every test points the cache at its own tmp dir (``CNI_PLUGINS_CACHE_DIR``) or
runs inside a private mount namespace (``unshare -m``) whose tmpfs mounts hide
the host's /tmp, /var/lib and /mnt, so the host's real cache locations are
never touched.  The chroot test runs a whole flannel ADD/DEL in throw-away
network namespaces from a root that has busybox and shared libraries but no
Python (issue 7).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PLUGIN_MODULES, REPO, built_bin_dir

BIN = built_bin_dir()
pytestmark = [
    pytest.mark.privileged,
    pytest.mark.binaries,
    pytest.mark.skipif(BIN is None, reason="dist/bin not built (python build/build.py)"),
]

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TRAILER = struct.Struct("<32s64sQQII8s")  # struct trailer in build/launcher/launcher.c
VERSION_IN = b'{"cniVersion": "1.0.0"}'
LOADER = "ld-linux-x86-64.so.2"  # the glibc loader in every entry's _internal/


def bin_dir() -> Path:
    assert BIN is not None
    return BIN


def names() -> list[str]:
    return [n for n in PLUGIN_MODULES if (bin_dir() / n).exists()]


def payload_id(binary: Path) -> str:
    with open(binary, "rb") as f:
        f.seek(-TRAILER.size, os.SEEK_END)
        fields = TRAILER.unpack(f.read())
    assert fields[-1] == b"CNIPYPL1"
    return str(fields[1].decode())


def version(
    binary: Path, cache: Path | None, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {"CNI_COMMAND": "VERSION", "PATH": PATH}
    if cache is not None:
        env["CNI_PLUGINS_CACHE_DIR"] = str(cache)
    env.update(extra or {})
    return subprocess.run(
        [str(binary)], input=VERSION_IN, env=env, capture_output=True, timeout=120, check=False
    )


def assert_version_ok(proc: subprocess.CompletedProcess[bytes]) -> None:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "1.0.0" in json.loads(proc.stdout)["supportedVersions"]


def cni_error(proc: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    err: dict[str, Any] = json.loads(proc.stdout)
    assert isinstance(err["code"], int) and err["msg"]
    return err


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


def mei_dirs(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("_MEI*")]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# ------------------------------------------------------------ basics


def test_every_binary_answers_version_and_shares_one_cache_entry(cache: Path) -> None:
    ids = {payload_id(bin_dir() / n) for n in names()}
    assert len(ids) == 1, "all binaries carry the same payload"
    for name in names():
        assert_version_ok(version(bin_dir() / name, cache))
    (pid,) = ids
    assert listing(cache) == [".lock", pid]
    entry = cache / pid
    assert (entry / ".complete").read_text().strip() == pid
    assert entry.stat().st_mode & 0o777 == 0o700
    assert not mei_dirs(cache)


def test_every_binary_is_static_and_its_entry_carries_the_loader_and_libc(cache: Path) -> None:
    """No PT_INTERP and no DT_NEEDED in the launcher (``file`` says so too), and
    the unpacked entry holds the loader and glibc the bundle runs on."""
    for name in names():
        binary = bin_dir() / name
        described = subprocess.run(
            ["file", "-b", str(binary)], capture_output=True, text=True, check=True
        )
        assert "statically linked" in described.stdout, described.stdout
        headers = subprocess.run(
            ["readelf", "-W", "-l", "-d", str(binary)], capture_output=True, text=True, check=True
        ).stdout
        assert "INTERP" not in headers and "(NEEDED)" not in headers, headers
    assert_version_ok(version(bin_dir() / "loopback", cache))
    internal = cache / payload_id(bin_dir() / "loopback") / "_internal"
    for lib in (LOADER, "libc.so.6", "libm.so.6", "libz.so.1"):
        assert (internal / lib).is_file(), lib
    assert b"/etc/ld.so.preload" not in (internal / LOADER).read_bytes()


def test_a_renamed_copy_runs_the_plugin_it_was_built_as(tmp_path: Path, cache: Path) -> None:
    """The plugin comes from the build, not the file name: install-cni.sh checks
    each new binary under a temp name before renaming it into place."""
    copy = tmp_path / ".install-cni.123.loopback.tmp"
    shutil.copy2(bin_dir() / "loopback", copy)
    assert_version_ok(version(copy, cache))


def test_an_unknown_plugin_name_fails_cleanly(tmp_path: Path, cache: Path) -> None:
    assert_version_ok(version(bin_dir() / "loopback", cache))
    entry = cache / payload_id(bin_dir() / "loopback")
    # the bundle run under a name that is no plugin (directly, or a symlink)
    (tmp_path / "nosuch").symlink_to(entry / "cni-plugins")
    for exe in (entry / "cni-plugins", tmp_path / "nosuch"):
        err = cni_error(version(exe, None))
        assert err["code"] == 999
        assert "bridge, flannel, host-local, loopback, portmap" in err["msg"]
    # a binary whose trailer names a plugin the bundle lacks
    data = bytearray((bin_dir() / "loopback").read_bytes())
    start = len(data) - TRAILER.size
    data[start : start + 32] = b"nosuch".ljust(32, b"\0")
    odd = tmp_path / "odd"
    odd.write_bytes(bytes(data))
    odd.chmod(0o755)
    err = cni_error(version(odd, cache))
    assert err["code"] == 999 and "nosuch" in err["msg"]


FAKE_IPAM = """#!/bin/sh
tr '\\0' '\\n' < /proc/$$/environ > "$DUMP/env"
ls -l /proc/$$/fd/ > "$DUMP/fds"
cat >/dev/null
printf '{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.2/24","gateway":"10.99.0.1"}]}'
"""


@pytest.mark.parametrize("ld_library_path", ["/caller/lib", None])
def test_a_delegate_gets_the_callers_environment_and_no_cache_descriptor(
    tmp_path: Path, cache: Path, make_netns: Callable[[], str], ld_library_path: str | None
) -> None:
    """Launcher and bootloader add nothing that reaches a delegate: not an
    environment variable (LD_LIBRARY_PATH is the caller's, or absent), not the
    cache lock's descriptor."""
    if "bridge" not in names():
        pytest.skip("no bridge binary")
    plugins = tmp_path / "bin"
    plugins.mkdir()
    shutil.copy2(bin_dir() / "bridge", plugins / "bridge")
    (plugins / "fake-ipam").write_text(FAKE_IPAM)
    (plugins / "fake-ipam").chmod(0o755)
    node, pod = make_netns(), make_netns()
    env = {
        "PATH": PATH,
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "env-pod",
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(plugins),
        "CNI_PLUGINS_CACHE_DIR": str(cache),
        "DUMP": str(tmp_path),
    }
    if ld_library_path is not None:
        env["LD_LIBRARY_PATH"] = ld_library_path
    conf = {
        "cniVersion": "1.0.0",
        "name": "envtest",
        "type": "bridge",
        "bridge": "cnienv0",
        "ipam": {"type": "fake-ipam"},
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", Path(node).name, str(plugins / "bridge")],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    got = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
    assert got == env
    assert str(cache) not in (tmp_path / "fds").read_text()


def _traced_execves(
    argv: list[str], env: dict[str, str], trace: Path
) -> list[tuple[str, list[str], list[str]]]:
    """(path, argv, envp) of every execve of a VERSION call, under strace."""
    cmd = ["strace", "-f", "-qq", "-v", "-s", "65536", "-e", "trace=execve", "-o", str(trace)]
    proc = subprocess.run(
        [*cmd, *argv], input=VERSION_IN, env=env, capture_output=True, timeout=60, check=False
    )
    assert_version_ok(proc)
    calls = []
    for m in re.finditer(r'execve\("([^"]*)", \[(.*?)\], \[(.*?)\]\) = 0', trace.read_text()):
        strings = [re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(i)) for i in (2, 3)]
        calls.append((m.group(1), strings[0], strings[1]))
    return calls


@pytest.mark.parametrize("ld_library_path", [None, "", "/caller/lib:/more"])
def test_the_bundle_is_execd_once_with_the_environment_its_restart_would_have(
    tmp_path: Path, ld_library_path: str | None
) -> None:
    """The PyInstaller bootloader of a onedir bundle sets LD_LIBRARY_PATH and
    _PYI_* and re-execs itself; the launcher sets the very same environment and
    argv, so the bootloader runs once.  Compared with the bootloader's own
    restart, so a PyInstaller that changes the protocol fails here.  The cache
    sits behind a symlinked parent: the bootloader's paths are resolved ones."""
    if not shutil.which("strace"):
        pytest.skip("needs strace")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    cache = tmp_path / "link" / "cache"
    binary = bin_dir() / "loopback"
    env = {"CNI_COMMAND": "VERSION", "PATH": PATH, "CNI_PLUGINS_CACHE_DIR": str(cache)}
    if ld_library_path is not None:
        env["LD_LIBRARY_PATH"] = ld_library_path
    assert_version_ok(version(binary, cache, env))  # unpacks
    entry = cache / payload_id(binary)

    ours = _traced_execves([str(binary)], env, tmp_path / "ours")
    assert [Path(path).name for path, _, _ in ours] == ["loopback", LOADER], ours
    theirs = _traced_execves([str(entry / "loopback")], env, tmp_path / "theirs")
    assert [Path(path).name for path, _, _ in theirs] == ["loopback", "cni-plugins"], theirs
    # the bundle's own loader runs it with only the entry's libraries ...
    internal = f"{entry}/_internal"
    loader_argv = [f"{internal}/{LOADER}", "--inhibit-cache", "--library-path", internal]
    loader_argv += ["--argv0", str(entry / "loopback"), str(entry / "cni-plugins")]
    assert ours[1][0] == loader_argv[0]
    assert ours[1][1][:7] == loader_argv
    # ... with the argv (after --argv0) and environment of the bootloader's restart
    assert [ours[1][1][5], *ours[1][1][7:]] == theirs[1][1]
    assert ours[1][2] == theirs[1][2]

    got = dict(item.split("=", 1) for item in ours[1][2])
    real = tmp_path / "real" / "cache" / payload_id(binary)
    assert got["_PYI_ARCHIVE_FILE"] == str(real / "cni-plugins")
    if ld_library_path:
        assert got["LD_LIBRARY_PATH"] == f"{real}/_internal:{ld_library_path}"
        assert got["LD_LIBRARY_PATH_ORIG"] == ld_library_path
    else:
        assert got["LD_LIBRARY_PATH"] == f"{real}/_internal"
        assert "LD_LIBRARY_PATH_ORIG" not in got


def test_an_inherited_bundle_environment_is_left_to_the_bootloader(cache: Path) -> None:
    """A caller environment that already has _PYI_* variables (say, from another
    PyInstaller program) is passed on untouched: the bootloader resets it and
    restarts itself as usual."""
    extra = {"_PYI_ARCHIVE_FILE": "/elsewhere/app", "_PYI_PARENT_PROCESS_LEVEL": "1"}
    assert_version_ok(version(bin_dir() / "loopback", cache, extra))
    assert_version_ok(version(bin_dir() / "loopback", cache, extra))  # warm


def test_delegates_of_our_build_run_in_process_others_are_execd(
    tmp_path: Path, cache: Path, make_netns: Callable[[], str]
) -> None:
    """flannel -> bridge -> host-local of one build is one process (DESIGN.md
    section 4); a foreign IPAM in CNI_PATH is exec'd as the spec says."""
    if not {"flannel", "bridge", "host-local"} <= set(names()) or not shutil.which("strace"):
        pytest.skip("needs flannel, bridge, host-local and strace")
    node, pod = make_netns(), make_netns()
    (tmp_path / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for name in ("flannel", "bridge"):
        os.symlink(bin_dir() / name, foreign / name)
    (foreign / "fake-ipam").write_text(FAKE_IPAM)
    (foreign / "fake-ipam").chmod(0o755)

    def execs(cni_path: Path, ipam: dict[str, str], bridge: str) -> list[str]:
        conf = {
            "cniVersion": "1.0.0",
            "name": "inproc",
            "type": "flannel",
            "subnetFile": str(tmp_path / "subnet.env"),
            "dataDir": str(tmp_path / "flannel"),
            "ipam": {"dataDir": str(tmp_path / "ipam"), **ipam},
            "delegate": {"bridge": bridge},
        }
        env = {
            "PATH": PATH,
            "CNI_CONTAINERID": "inproc",
            "CNI_NETNS": pod,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(cni_path),
            "CNI_PLUGINS_CACHE_DIR": str(cache),
            "DUMP": str(tmp_path),
        }
        trace = tmp_path / "trace"
        for command in ("ADD", "DEL"):
            proc = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    Path(node).name,
                    "strace",
                    "-f",
                    "-qq",
                    "-e",
                    "trace=execve",
                    "-o",
                    str(trace),
                    str(cni_path / "flannel"),
                ],
                input=json.dumps(conf).encode(),
                env={**env, "CNI_COMMAND": command},
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        text = trace.read_text()  # the DEL's trace
        return [Path(p).name for p in re.findall(r'execve\("([^"]+)"', text)]

    ours = execs(bin_dir(), {}, "cniours0")
    assert "bridge" not in ours and "host-local" not in ours, ours
    theirs = execs(foreign, {"type": "fake-ipam"}, "cnifake0")
    assert "fake-ipam" in theirs, theirs


# ------------------------------------------------------------ no ctypes: setns extension

# Run in a child interpreter (setns moves the calling thread): the bundle's
# _cni_setns, loaded from the unpacked entry, enters a namespace directly and
# through netns.py, and reports failures as OSError with the errno.
SETNS_CHILD = """
import errno, importlib.util, json, os, sys
ext_path, target, repo = sys.argv[1:]
spec = importlib.util.spec_from_file_location("_cni_setns", ext_path)
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)
sys.modules["_cni_setns"] = ext
sys.path.insert(0, repo)
from cni_plugins.linux import netns

def here():
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino

def err(fd, nstype):
    try:
        ext.setns(fd, nstype)
    except OSError as exc:
        return [type(exc).__name__, exc.errno, exc.strerror]
    return None

out = {"picked": netns._find_setns() is ext.setns}
home = here()
with netns.open_netns(target) as ns:
    st = os.fstat(ns.fd)
    with ns.entered():
        out["inside"] = here() == (st.st_dev, st.st_ino)
    out["back"] = here() == home
fd = os.open(target, os.O_RDONLY)
ext.setns(fd, netns.CLONE_NEWNET)
out["direct"] = here() == (os.fstat(fd).st_dev, os.fstat(fd).st_ino)
out["closed_fd"] = err(9999, netns.CLONE_NEWNET)
out["not_a_namespace"] = err(os.open("/proc/self/status", os.O_RDONLY), netns.CLONE_NEWNET)
out["wrong_type"] = err(fd, 0x04000000)  # CLONE_NEWUTS
print(json.dumps(out))
"""


def test_the_bundle_has_no_ctypes_and_its_setns_extension_works(
    cache: Path, make_netns: Callable[[], str]
) -> None:
    """PyInstaller's bootstrap imports ctypes (and libffi) at every start when
    the bundle holds it; the bundle has a small setns extension instead."""
    from PyInstaller.archive.readers import pkg_archive_contents

    assert_version_ok(version(bin_dir() / "loopback", cache))
    internal = cache / payload_id(bin_dir() / "loopback") / "_internal"
    modules = set(pkg_archive_contents(str(internal.parent / "cni-plugins")))
    with zipfile.ZipFile(internal / "base_library.zip") as base:
        modules |= {n.removesuffix(".pyc").replace("/", ".") for n in base.namelist()}
    assert "json" in modules  # our own modules are in cni_plugins.codes (test_bundled_code.py)
    assert not [m for m in modules if m.split(".")[0] in ("ctypes", "_ctypes")]
    files = [p.name for p in internal.rglob("*")]
    assert not [f for f in files if f.startswith(("_ctypes", "libffi"))], files
    (ext,) = internal.rglob("_cni_setns.*so")

    target = make_netns()
    proc = subprocess.run(
        [sys.executable, "-I", "-c", SETNS_CHILD, str(ext), target, str(REPO)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["picked"] and got["inside"] and got["back"] and got["direct"], got
    assert got["closed_fd"] == ["OSError", errno.EBADF, os.strerror(errno.EBADF)]
    assert got["not_a_namespace"] == ["OSError", errno.EINVAL, os.strerror(errno.EINVAL)]
    assert got["wrong_type"] == ["OSError", errno.EINVAL, os.strerror(errno.EINVAL)]


# ------------------------------------------------------------ concurrency, corruption


def test_concurrent_first_execs_unpack_once(cache: Path) -> None:
    env = {"CNI_COMMAND": "VERSION", "PATH": PATH, "CNI_PLUGINS_CACHE_DIR": str(cache)}
    procs = [
        subprocess.Popen(
            [str(bin_dir() / names()[i % len(names())])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i in range(20)
    ]
    outs = [p.communicate(VERSION_IN, timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, (out, err)
    assert len({out for out, _ in outs}) == 1
    assert listing(cache) == [".lock", payload_id(bin_dir() / "loopback")]


def _corrupt(tmp_path: Path, how: str) -> Path:
    data = bytearray((bin_dir() / "loopback").read_bytes())
    size = TRAILER.unpack(bytes(data[-TRAILER.size :]))[2]
    start = len(data) - TRAILER.size - size
    if how == "flip":
        data[start + size // 2] ^= 0xFF
    elif how == "truncate":
        del data[-4096:]
    elif how == "hole":
        del data[start + 1000 : start + 2000]
    out = tmp_path / how / "loopback"
    out.parent.mkdir()
    out.write_bytes(bytes(data))
    out.chmod(0o755)
    return out


@pytest.mark.parametrize("how", ["flip", "truncate", "hole"])
def test_a_corrupt_binary_is_refused_and_does_not_poison_the_cache(
    tmp_path: Path, cache: Path, how: str
) -> None:
    err = cni_error(version(_corrupt(tmp_path, how), cache))
    assert err["code"] == 999
    assert "corrupt plugin binary" in err["msg"]
    if how != "truncate":
        assert "CRC mismatch" in err["details"]
    assert [n for n in listing(cache) if n != ".lock"] == []
    assert_version_ok(version(bin_dir() / "loopback", cache))
    assert listing(cache) == [".lock", payload_id(bin_dir() / "loopback")]


def test_a_tampered_cache_entry_is_not_used(cache: Path) -> None:
    binary = bin_dir() / "loopback"
    assert_version_ok(version(binary, cache))
    entry = cache / payload_id(binary)
    exe = entry / "cni-plugins"

    def entry_mode() -> None:
        entry.chmod(0o777)

    def entry_owner() -> None:
        os.chown(entry, 65534, 65534)

    def marker_mode() -> None:
        (entry / ".complete").chmod(0o666)

    def exe_mode() -> None:
        exe.chmod(0o777)

    def no_marker() -> None:
        (entry / ".complete").unlink()

    for tamper in (entry_mode, entry_owner, marker_mode, exe_mode, no_marker):
        # a planted executable, and something that makes the entry untrustworthy
        exe.chmod(0o700)
        exe.write_text("#!/bin/sh\necho TAMPERED\n")
        tamper()
        proc = version(binary, cache)
        assert_version_ok(proc)  # re-extracted, not the tampered copy
        assert b"TAMPERED" not in proc.stdout
        st = entry.stat()
        assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700
        assert exe.read_bytes()[:4] == b"\x7fELF"
        assert listing(cache) == [".lock", entry.name]


def test_sigkill_during_extraction_leaves_nothing_that_breaks_the_next_exec(
    tmp_path: Path,
) -> None:
    binary = bin_dir() / "loopback"
    hits = 0
    for i, delay in enumerate((0.0, 0.002, 0.01, 0.03, 0.06)):
        cache, tmpdir = tmp_path / f"cache{i}", tmp_path / f"tmp{i}"
        tmpdir.mkdir()
        env = {
            "CNI_COMMAND": "VERSION",
            "PATH": PATH,
            "CNI_PLUGINS_CACHE_DIR": str(cache),
            "TMPDIR": str(tmpdir),
        }
        proc = subprocess.Popen(
            [str(binary)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            if any(n.startswith(".tmp-") for n in listing(cache)):
                break
            time.sleep(0.0005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        hits += any(n.startswith(".tmp-") for n in listing(cache))
        assert not mei_dirs(tmpdir, cache)
        assert_version_ok(version(binary, cache, {"TMPDIR": str(tmpdir)}))
        assert listing(cache) == [".lock", payload_id(binary)]
        assert listing(tmpdir) == []
    assert hits, "no kill landed during an extraction"


def test_old_entries_are_pruned_unless_recent_or_in_use(cache: Path) -> None:
    binary = bin_dir() / "loopback"
    old, recent, busy = "a" * 64, "b" * 64, "c" * 64
    week_ago = time.time() - 8 * 24 * 3600
    for name in (old, recent, busy):
        (cache / name).mkdir(parents=True)
        (cache / name / ".complete").write_text(name)
        if name != recent:
            os.utime(cache / name / ".complete", (week_ago, week_ago))
    # a process running from `busy` holds it as the launcher does: shared flock
    fd = os.open(cache / busy, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        assert_version_ok(version(binary, cache))  # an extraction prunes
    finally:
        os.close(fd)
    assert listing(cache) == sorted([".lock", payload_id(binary), recent, busy])


# ------------------------------------------------------------ where the cache goes


def private_mounts(script: str, env: dict[str, str]) -> tuple[str, str]:
    """Run ``script`` in a private mount namespace with a fresh tmpfs on /mnt
    (holding a copy of loopback in /mnt/bin) and the given setup; returns the
    plugin's stdout and the inspection output after the ``----`` line."""
    setup = (
        "set -eu\n"
        "mount -t tmpfs tmpfs /mnt\n"
        "mkdir /mnt/bin\n"
        f"cp {bin_dir() / 'loopback'} /mnt/bin/loopback\n"
    )
    full = {"PATH": PATH, "CNI_COMMAND": "VERSION", **env}
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup + script],
        input=VERSION_IN,
        env=full,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out, _, rest = proc.stdout.decode().partition("\n----\n")
    return out, rest


RUN = "set +e\n/mnt/bin/loopback\necho\necho ----\nset -e\n"


def test_default_location_with_a_noexec_tmp_and_no_tmpdir() -> None:
    pid = payload_id(bin_dir() / "loopback")
    out, rest = private_mounts(
        "mount -t tmpfs -o noexec tmpfs /tmp\n"
        "mount -t tmpfs tmpfs /var/lib\n"
        + RUN
        + "ls -A /var/lib/cni/cni-plugins-py; echo ==; ls -A /tmp\n",
        {},
    )
    assert "supportedVersions" in out
    default, tmp = rest.split("==\n")
    assert default.split() == [".lock", pid]
    assert tmp.strip() == ""


def test_noexec_locations_are_skipped_in_order() -> None:
    pid = payload_id(bin_dir() / "loopback")
    # $CNI_PLUGINS_CACHE_DIR noexec: skipped for the default
    out, rest = private_mounts(
        "mkdir /mnt/nx && mount -t tmpfs -o noexec tmpfs /mnt/nx\n"
        "mount -t tmpfs tmpfs /var/lib\n" + RUN + "ls -A /mnt/nx /var/lib/cni/cni-plugins-py\n",
        {"CNI_PLUGINS_CACHE_DIR": "/mnt/nx/cache"},
    )
    assert "supportedVersions" in out
    assert "/mnt/nx:\n\n" in rest and pid in rest
    # default noexec too: next to the binary
    out, rest = private_mounts(
        "mount -t tmpfs -o noexec tmpfs /tmp\n"
        "mount -t tmpfs -o noexec tmpfs /var/lib\n" + RUN + "ls -A /mnt/bin/.cni-plugins-cache\n",
        {},
    )
    assert "supportedVersions" in out and pid in rest
    # bin dir read-only as well: $TMPDIR
    out, rest = private_mounts(
        "mkdir /mnt/t\n"
        "mount -t tmpfs -o noexec tmpfs /tmp\n"
        "mount -t tmpfs -o noexec tmpfs /var/lib\n"
        "mount --bind /mnt/bin /mnt/bin && mount -o remount,bind,ro /mnt/bin\n"
        + RUN
        + "ls -A /mnt/t/cni-plugins-py-0\n",
        {"TMPDIR": "/mnt/t"},
    )
    assert "supportedVersions" in out and pid in rest


def test_untrusted_cache_dirs_are_skipped() -> None:
    pid = payload_id(bin_dir() / "loopback")
    for prepare in (
        "mkdir /mnt/c && chmod 0777 /mnt/c",
        "mkdir /mnt/c && chown 65534 /mnt/c",
        "ln -s /mnt/elsewhere /mnt/c",
    ):
        out, rest = private_mounts(
            f"mkdir /mnt/elsewhere\n{prepare}\n"
            "mount -t tmpfs tmpfs /var/lib\n"
            + RUN
            + "ls -A /mnt/elsewhere /var/lib/cni/cni-plugins-py\n",
            {"CNI_PLUGINS_CACHE_DIR": "/mnt/c"},
        )
        assert "supportedVersions" in out, prepare
        assert "/mnt/elsewhere:\n\n" in rest and pid in rest, (prepare, rest)


def test_no_usable_location_is_a_clear_error() -> None:
    out, _ = private_mounts(
        "mkdir /mnt/nx && mount -t tmpfs -o noexec tmpfs /mnt/nx\n"
        "mount -t tmpfs -o noexec tmpfs /tmp\n"
        "mount -t tmpfs -o noexec tmpfs /var/lib\n"
        "mount --bind /mnt/bin /mnt/bin && mount -o remount,bind,ro /mnt/bin\n"
        'set +e\n/mnt/bin/loopback\necho "rc=$?"\necho ----\n',
        {"CNI_PLUGINS_CACHE_DIR": "/mnt/nx/cache"},
    )
    err = json.loads(out.rpartition("rc=")[0])
    assert out.strip().endswith("rc=1")
    assert err["code"] == 5
    details = err["details"]
    for place, why in [
        ("/mnt/nx/cache", "noexec"),
        ("/var/lib/cni/cni-plugins-py", "noexec"),
        ("/mnt/bin/.cni-plugins-cache", "Read-only file system"),
        (f"/tmp/cni-plugins-py-{os.geteuid()}", "noexec"),
    ]:
        assert f"{place}: " in details and why in details.split(f"{place}: ")[1].split(";")[0]


# ------------------------------------------------------------ issue 7: no Python on the node


def _ldd(paths: list[Path], env: dict[str, str] | None = None) -> set[Path]:
    found: set[Path] = set()
    for path in paths:
        out = subprocess.run(
            ["ldd", str(path)], capture_output=True, text=True, check=False, env=env
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                found.add(Path(parts[2]))
            elif parts and parts[0].startswith("/"):
                found.add(Path(parts[0]))
    return found


def _copy_in(root: Path, path: Path) -> None:
    dest = root / path.relative_to("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        shutil.copy2(path.resolve(), dest)


def build_root(root: Path, tmp_path: Path) -> None:
    """busybox, our binaries, iptables (nft) and the libraries they load."""
    for d in ("bin", "proc", "sys", "dev", "run/netns", "run/flannel", "tmp", "var/lib/cni"):
        (root / d).mkdir(parents=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "env"):
        (root / "bin" / applet).symlink_to("busybox")
    plugins = root / "opt" / "cni" / "bin"
    plugins.mkdir(parents=True)
    for name in names():
        shutil.copy2(bin_dir() / name, plugins / name)
    # the bundle's own libraries resolve inside it; copy what it needs from the host
    host_cache = tmp_path / "host-cache"
    assert_version_ok(version(bin_dir() / "loopback", host_cache))
    entry = host_cache / payload_id(bin_dir() / "loopback")
    elves = [entry / "cni-plugins", *(p for p in entry.rglob("*.so*") if p.is_file())]
    libs = _ldd(elves, {"LD_LIBRARY_PATH": str(entry / "_internal")})
    libs |= _ldd([bin_dir() / "loopback"])
    xtables = Path("/usr/sbin/xtables-nft-multi")
    extensions = sorted(Path("/usr/lib/x86_64-linux-gnu/xtables").glob("*.so"))
    libs |= _ldd([xtables, *extensions])
    for lib in libs:
        if entry not in lib.parents:
            _copy_in(root, lib)
    _copy_in(root, xtables)
    for ext in extensions:
        _copy_in(root, ext)
    for tool in ("iptables", "iptables-save", "iptables-restore"):
        (root / "usr" / "sbin" / tool).symlink_to("xtables-nft-multi")
    for f in ("/etc/protocols", "/etc/services"):
        if Path(f).exists():
            _copy_in(root, Path(f))


CHROOT = """set -eu
root=$1 plugin=$2
shift 2
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /run/netns "$root/run/netns"
exec env -i "$@" chroot "$root" "/opt/cni/bin/$plugin"
"""


@pytest.mark.skipif(
    not Path("/usr/sbin/xtables-nft-multi").exists() or not Path("/bin/busybox").exists(),
    reason="needs iptables (nft) and busybox-static",
)
def test_flannel_add_del_in_a_chroot_without_python(
    tmp_path: Path, make_netns: Callable[[], str]
) -> None:
    root = tmp_path / "root"
    build_root(root, tmp_path)
    assert not [p for p in root.rglob("python*") if p.is_file() and os.access(p, os.X_OK)]
    node, pod = make_netns(), make_netns()
    node_name = Path(node).name
    (root / "run" / "flannel" / "subnet.env").write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"  # bridge masquerades
    )
    cid = "chroot-pod"

    def cni(plugin: str, command: str, conf: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
        cni_env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": pod,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin",
            "PATH": PATH,
        }
        argv = ["ip", "netns", "exec", node_name, "sh", "-c", CHROOT, "sh", str(root), plugin]
        argv += [f"{k}={v}" for k, v in cni_env.items()]
        return subprocess.run(
            argv,
            input=json.dumps(conf).encode(),
            env={"PATH": PATH},
            capture_output=True,
            timeout=120,
            check=False,
        )

    def node_nat() -> str:
        return subprocess.run(
            ["ip", "netns", "exec", node_name, "iptables-save", "-t", "nat"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    flannel = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "flannel",
        "delegate": {"hairpinMode": True, "isDefaultGateway": True},
    }
    added = cni("flannel", "ADD", flannel)
    assert added.returncode == 0, (added.stdout, added.stderr)
    result = json.loads(added.stdout)
    assert result["ips"][0]["address"].startswith("10.244.7.")
    assert (root / "var/lib/cni/cni-plugins-py" / payload_id(bin_dir() / "flannel")).is_dir()
    assert list((root / "var/lib/cni/networks/cbr0").glob("10.244.7.*"))
    pod_addrs = subprocess.run(
        ["ip", "-n", Path(pod).name, "-j", "addr", "show", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert result["ips"][0]["address"].split("/")[0] in pod_addrs
    assert "CNI-" in node_nat()  # ipMasq: iptables ran inside the chroot

    portmap = None
    if "portmap" in names():
        portmap = {
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "runtimeConfig": {
                "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]
            },
            "prevResult": result,
        }
        mapped = cni("portmap", "ADD", portmap)
        assert mapped.returncode == 0, (mapped.stdout, mapped.stderr)
        assert "18080" in node_nat()
        unmapped = cni("portmap", "DEL", portmap)
        assert unmapped.returncode == 0, (unmapped.stdout, unmapped.stderr)
        assert "18080" not in node_nat()

    deleted = cni("flannel", "DEL", flannel)
    assert deleted.returncode == 0, (deleted.stdout, deleted.stderr)
    assert not list((root / "var/lib/cni/networks/cbr0").glob("10.244.7.*"))
    gone = subprocess.run(
        ["ip", "-n", Path(pod).name, "link", "show", "eth0"], capture_output=True, check=False
    )
    assert gone.returncode != 0
    assert "CNI-" not in node_nat().replace("CNI-HOSTPORT", "")
    assert portmap is None or "18080" not in node_nat()
    # every mount lived in `ip netns exec`'s own mount namespace: nothing left
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(root) not in mounts
