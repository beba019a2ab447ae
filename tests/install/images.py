"""The install-cni image built from deploy/Containerfile and the manifest's
containers run with podman, shared by the suites that use them
(tests/install/test_image.py, tests/containerd/test_installed_by_image.py).

Offline: no registry is reachable, so the base is assembled from the host (the
statically linked busybox, flock(1), and the glibc files the binaries and
flock need, found with ldd) and imported; the Containerfile is built on it
with ``--build-arg BASE_IMAGE``.  podman uses a private storage (vfs) in a
temp dir, removed at the end.

The init container and the sidecar are read from the manifest (command, args,
env, volumeMounts -> volumes) and run with ``podman run``: every hostPath is a
temporary "host" directory bound in its place, the ConfigMap volume is a
directory laid out the way kubelet's atomic writer lays it out (``..data``
symlink swapped on update).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.conftest import built_bin_dir

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kube-flannel.yml"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_IMAGE = "localhost/cnit-base:1"

Json = dict[str, Any]


# --------------------------------------------------------------------- podman


CGROUP_PARENT = "libpod_parent"  # where podman's cgroupfs manager puts conmon and containers


def podman_cgroups() -> set[Path]:
    root = Path("/sys/fs/cgroup")
    return {p for p in [root / CGROUP_PARENT, *root.glob(f"*/{CGROUP_PARENT}")] if p.is_dir()}


def remove_cgroups(top: Path) -> None:
    """rmdir a cgroup tree bottom-up (only empty cgroups can go, as intended)."""
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()


@dataclass
class Podman:
    """podman on a private storage: nothing under /var/lib/containers or /run;
    the cgroups its cgroupfs manager creates are removed with it."""

    state: Path
    cgroups_before: frozenset[Path] = frozenset()

    def __post_init__(self) -> None:
        self.cgroups_before = frozenset(podman_cgroups())

    def argv(self, *args: str) -> list[str]:
        runtime = ["--runtime", "runc"] if shutil.which("runc") else []
        return [
            "podman",
            "--root",
            str(self.state / "root"),
            "--runroot",
            str(self.state / "runroot"),
            "--tmpdir",
            str(self.state / "libpod-tmp"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            *runtime,
            *args,
        ]

    def env(self) -> dict[str, str]:
        tmp = self.state / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        # an empty containers.conf: the machine's configuration does not matter
        conf = self.state / "containers.conf"
        conf.touch()
        return {"PATH": HOST_PATH, "TMPDIR": str(tmp), "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            self.argv(*args),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, f"podman {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def logs(self, name: str) -> str:
        """A container's output (podman logs replays its stderr on stderr)."""
        proc = subprocess.run(
            self.argv("logs", name),
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=True,
        )
        return proc.stdout

    def close(self) -> None:
        env = self.env()
        for args in (("rm", "-a", "-f", "-t", "0"), ("rmi", "-a", "-f")):
            subprocess.run(self.argv(*args), env=env, capture_output=True, check=False, timeout=120)
        # nothing of ours may stay mounted (container shm, overlay of a crashed run)
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mount_point = line.split()[4]
            if mount_point.startswith(str(self.state)):
                subprocess.run(["umount", "-l", mount_point], check=False)
        shutil.rmtree(self.state, ignore_errors=True)
        for top in podman_cgroups() - self.cgroups_before:
            remove_cgroups(top)


def ulimits() -> list[str]:
    """Limits at or below the caller's: without CAP_SYS_RESOURCE (a container
    host, a CI sandbox) the OCI runtime cannot raise them to podman's defaults."""
    import resource

    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1024)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 8192)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


# ----------------------------------------------------------------- the images


def elf_dependencies(files: list[Path]) -> set[Path]:
    """Host libraries (and the dynamic loader) these ELF files load."""
    deps: set[Path] = set()
    for f in files:
        proc = subprocess.run(["ldd", str(f)], capture_output=True, text=True, check=False)
        for line in proc.stdout.splitlines():
            words = line.split()
            path = words[2] if "=>" in words and len(words) > 2 else words[0]
            if path.startswith("/"):
                deps.add(Path(path))
    return deps


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def assemble_base(out: Path, dist: Path) -> Path:
    """A minimal glibc userland: busybox's applets, flock(1) (util-linux, for
    the cache pruning), and exactly the shared objects the binaries (launcher
    and unpacked bundle) and flock load.  Returns the root directory."""
    root = out / "rootfs"
    (root / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox")
    flock = shutil.which("flock")
    assert busybox and flock, "busybox-static and util-linux are in scripts/setup.sh"
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "bin" / "flock").unlink(missing_ok=True)
    shutil.copy2(flock, root / "bin" / "flock")
    # the bundle's own ELF files: unpack it once into a scratch cache
    cache = out / "ldd-cache"
    subprocess.run(
        [str(dist / "flannel")],
        env={"PATH": HOST_PATH, "CNI_COMMAND": "VERSION", "CNI_PLUGINS_CACHE_DIR": str(cache)},
        capture_output=True,
        check=True,
    )
    elves = [p for p in cache.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p)]
    for lib in elf_dependencies([dist / "flannel", Path(flock), *elves]):
        if lib.is_relative_to(cache):
            continue  # the bundle's own libz
        target = root / lib.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, target)  # the file, not the host's symlink chain
    for d in ("tmp", "etc", "proc", "sys", "dev", "run", "var/tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    return root


def second_build(out: Path) -> Path:
    """The next release: build/build.py run on a copy of the sources whose
    version stamp differs (a different payload id).  Returns its bin dir."""
    src = out / "src"
    shutil.copytree(REPO / "cni_plugins", src / "cni_plugins")
    shutil.copytree(REPO / "build", src / "build", ignore=shutil.ignore_patterns("_work"))
    init = src / "cni_plugins" / "__init__.py"
    text = init.read_text()
    assert '__version__ = "' in text
    init.write_text(text.replace('__version__ = "', '__version__ = "9.9.9+upgrade-test.', 1))
    bin_dir = out / "dist" / "bin"
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "python"),
            str(src / "build" / "build.py"),
            *("--no-timing", "--out", str(bin_dir)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=out,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return bin_dir


def build_context(out: Path, bin_dir: Path, *, dists: dict[str, Path] | None = None) -> Path:
    """A build context laid out like the repository: the recipe, its
    .dockerignore, install-cni.sh, the license texts and dist/bin (or, with
    ``dists``, each ``dist/<name>``, e.g. bin-amd64 and bin-arm64)."""
    ctx = out / "context"
    (ctx / "deploy").mkdir(parents=True)
    for name in ("Containerfile", "Containerfile.dockerignore"):
        shutil.copy2(REPO / "deploy" / name, ctx / "deploy" / name)
    shutil.copy2(REPO / "install-cni.sh", ctx / "install-cni.sh")
    shutil.copy2(REPO / "LICENSE", ctx / "LICENSE")
    shutil.copytree(REPO / "licenses", ctx / "licenses")
    for name, src in (dists or {"bin": bin_dir}).items():
        shutil.copytree(src, ctx / "dist" / name, symlinks=True)
    return ctx


def about_version(binary: Path) -> str:
    """The build version a binary states in its about text (no CNI_COMMAND)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {"PATH": os.environ.get("PATH", ""), "CNI_PLUGINS_CACHE_DIR": cache}
        proc = subprocess.run(
            [str(binary)], env=env, capture_output=True, text=True, check=False, timeout=60
        )
    first = (proc.stderr or proc.stdout).splitlines()[0]
    return first.rsplit(" ", 1)[-1]


def build_image(podman: Podman, context: Path, tag: str) -> str:
    podman(
        "build",
        "--pull=never",
        "--network",
        "none",
        "-q",
        "-f",
        str(context / "deploy" / "Containerfile"),
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg",
        f"VERSION={about_version(context / 'dist' / 'bin' / 'flannel')}",
        "-t",
        tag,
        str(context),
    )
    return tag


@dataclass
class Images:
    podman: Podman
    dist: Path
    tmp: Path
    current: str
    _next: str | None = None
    next_dist: Path | None = None

    def next(self) -> str:
        """The image of the next build (built on first use)."""
        if self._next is None:
            self.next_dist = second_build(self.tmp / "next")
            context = build_context(self.tmp / "next", self.next_dist)
            self._next = build_image(self.podman, context, "localhost/cni-plugins:next")
        return self._next


def session_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    """The ``images`` session fixture (tests/conftest.py): the current image
    built once for every suite that runs it; the next one on first use."""
    dist = built_bin_dir()
    if dist is None:
        pytest.skip("dist/bin not built")
    if shutil.which("podman") is None:
        pytest.skip("podman not installed (scripts/setup.sh)")
    tmp = tmp_path_factory.mktemp("image")
    # podman refuses a runroot path over 50 characters: a short tmp dir of its own
    podman = Podman(Path(tempfile.mkdtemp(prefix="cnit-podman-")))
    try:
        base = assemble_base(tmp / "base", dist)
        tar = tmp / "base" / "rootfs.tar"
        subprocess.run(["tar", "-C", str(base), "-cf", str(tar), "."], check=True)
        podman("import", str(tar), BASE_IMAGE)
        # the repository itself is the context (deploy/Containerfile.dockerignore),
        # unless the binaries under test are elsewhere (CNI_DIST_BIN)
        if dist.resolve() == (REPO / "dist" / "bin").resolve():
            context = REPO
        else:
            context = build_context(tmp / "current", dist)
        current = build_image(podman, context, "localhost/cni-plugins:current")
        yield Images(podman, dist, tmp, current)
    finally:
        podman.close()


# ------------------------------------------------------ the manifest's containers


def manifest_docs() -> list[Json]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def pod_spec() -> Json:
    (ds,) = [d for d in manifest_docs() if d["kind"] == "DaemonSet"]
    spec: Json = ds["spec"]["template"]["spec"]
    return spec


def container(name: str) -> Json:
    spec = pod_spec()
    (c,) = [c for c in [*spec["initContainers"], *spec["containers"]] if c["name"] == name]
    found: Json = c
    return found


def configmap_data() -> dict[str, str]:
    (cm,) = [d for d in manifest_docs() if d["kind"] == "ConfigMap"]
    data: dict[str, str] = cm["data"]
    return data


class ConfigMapVolume:
    """A configMap volume as kubelet's atomic writer keeps it: the data in a
    timestamped directory, ``..data`` pointing at it, each key a symlink
    through ``..data``; an update swaps ``..data`` with one rename."""

    def __init__(self, path: Path, data: dict[str, str]) -> None:
        self.path = path
        self.path.mkdir(parents=True)
        self._n = 0
        self.update(data)
        for key in data:
            (path / key).symlink_to(f"..data/{key}")

    def update(self, data: dict[str, str]) -> None:
        self._n += 1
        version = self.path / f"..2026_12_06_00_00_{self._n:02d}.{secrets.token_hex(4)}"
        version.mkdir()
        for key, value in data.items():
            (version / key).write_text(value)
        old = (self.path / "..data").resolve() if (self.path / "..data").exists() else None
        tmp_link = self.path / "..data_tmp"
        tmp_link.symlink_to(version.name)
        tmp_link.replace(self.path / "..data")
        if old is not None:
            shutil.rmtree(old)


@dataclass
class HostDirs:
    """The host directories the manifest's hostPath volumes name."""

    root: Path
    configmap: ConfigMapVolume

    def host(self, path: str) -> Path:
        return self.root / "host" / path.lstrip("/")

    @property
    def bin(self) -> Path:
        return self.host("/opt/cni/bin")

    @property
    def conflist(self) -> Path:
        return self.host("/etc/cni/net.d/10-flannel.conflist")

    @property
    def cache(self) -> Path:
        return self.host("/var/lib/cni/cni-plugins-py")

    def run_args(self, name: str) -> list[str]:
        """``podman run`` options and command for the manifest's container."""
        c = container(name)
        volumes = {v["name"]: v for v in pod_spec()["volumes"]}
        args = ["--network", "none", *ulimits()]
        for e in c.get("env", []):
            assert "value" in e, f"{name}: env {e['name']} is not a plain value"
            args += ["-e", f"{e['name']}={e['value']}"]
        for m in c.get("volumeMounts", []):
            volume = volumes[m["name"]]
            if "hostPath" in volume:
                source = self.host(volume["hostPath"]["path"])
                if volume["hostPath"].get("type") == "DirectoryOrCreate":
                    source.mkdir(parents=True, exist_ok=True)  # what kubelet does
            else:
                assert volume["configMap"]["name"] == "kube-flannel-cfg", volume
                source = self.configmap.path
            target = str(PurePosixPath(m["mountPath"]))
            args += ["-v", f"{source}:{target}{':ro' if m.get('readOnly') else ''}"]
        return [*args, "--entrypoint", json.dumps(c["command"])]

    def env_value(self, name: str, key: str) -> str:
        (value,) = [e["value"] for e in container(name)["env"] if e["name"] == key]
        return str(value)


def make_host_dirs(tmp_path: Path) -> HostDirs:
    return HostDirs(tmp_path, ConfigMapVolume(tmp_path / "configmap", configmap_data()))


def run_init(images: Images, node: HostDirs, image: str) -> str:
    """The init container, to completion; returns its log."""
    c = container("install-cni")
    proc = subprocess.run(
        images.podman.argv("run", "--rm", *node.run_args("install-cni"), image, *c["args"]),
        env=images.podman.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@contextlib.contextmanager
def sidecar(images: Images, node: HostDirs, image: str) -> Iterator[str]:
    """The manifest's sidecar, detached, until the block ends (then removed);
    yields its container name once it logs that it is in sidecar mode."""
    c = container("install-cni-sidecar")
    name = f"cnit-sidecar-{secrets.token_hex(4)}"
    podman = images.podman
    podman("run", "-d", "--name", name, *node.run_args(c["name"]), image, *c["args"])
    try:
        wait_for(lambda: "sidecar mode" in podman.logs(name), 60, "the sidecar to start")
        yield name
    finally:
        subprocess.run(
            podman.argv("rm", "-f", "-t", "2", name),
            env=podman.env(),
            capture_output=True,
            check=False,
        )


def trailer_id(binary: Path) -> str:
    data = binary.read_bytes()
    assert data[-8:] == b"CNIPYPL1"
    return data[-96:-32].decode()


def wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
