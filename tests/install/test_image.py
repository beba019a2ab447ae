"""deploy/Containerfile built for real and run the way deploy/kube-flannel.yml runs it.

Offline: no registry is reachable, so the base is assembled from the host (the
statically linked busybox, flock(1), and the glibc files the binaries and
flock need, found with ldd) and imported; the Containerfile is built on it
with ``--build-arg BASE_IMAGE``.  podman uses a private storage (vfs) under the
session's tmp dir, removed at the end.

The init container and the sidecar are read from the manifest (command, args,
env, volumeMounts -> volumes) and run with ``podman run``: every hostPath is a
temporary "host" directory bound in its place, the ConfigMap volume is a
directory laid out the way kubelet's atomic writer lays it out (``..data``
symlink swapped on update).  The binaries they install are then used from the
host directories through the installed conflist (conformance.runtime in a
throwaway node namespace), with the host's unpack cache where the manifest
puts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from conformance.netns import World, create_netns, delete_netns, world
from conformance.runtime import Attachment, PluginFailed, Runtime
from tests.conftest import built_bin_dir

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kube-flannel.yml"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_IMAGE = "localhost/cnit-base:1"

pytestmark = [pytest.mark.privileged, pytest.mark.binaries, pytest.mark.timeout(600)]

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


def build_context(out: Path, bin_dir: Path) -> Path:
    """A build context laid out like the repository: the recipe, its
    .dockerignore, install-cni.sh and dist/bin."""
    ctx = out / "context"
    (ctx / "deploy").mkdir(parents=True)
    for name in ("Containerfile", "Containerfile.dockerignore"):
        shutil.copy2(REPO / "deploy" / name, ctx / "deploy" / name)
    shutil.copy2(REPO / "install-cni.sh", ctx / "install-cni.sh")
    shutil.copy2(REPO / "LICENSE", ctx / "LICENSE")
    shutil.copytree(REPO / "licenses", ctx / "licenses")
    shutil.copytree(bin_dir, ctx / "dist" / "bin")
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


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
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
class Node:
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


def make_node(tmp_path: Path) -> Node:
    return Node(tmp_path, ConfigMapVolume(tmp_path / "configmap", configmap_data()))


def run_init(images: Images, node: Node, image: str) -> str:
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


def trailer_id(binary: Path) -> str:
    data = binary.read_bytes()
    assert data[-8:] == b"CNIPYPL1"
    return data[-96:-32].decode()


# ----------------------------------------------------------------- the driver


def flannel_conflist(node: Node, world: World) -> Json:
    """The conflist the init container installed, with the node's flannel and
    IPAM state kept in the test's tmp dir."""
    conf: Json = json.loads(node.conflist.read_text())
    subnet_env = world.tmp / "subnet.env"
    subnet_env.write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
    )
    flannel = conf["plugins"][0]
    flannel.update(
        subnetFile=str(subnet_env),
        dataDir=str(world.tmp / "flannel"),
        ipam={"dataDir": str(world.tmp / "ipam")},
    )
    return conf


def host_runtime(node: Node, world: World) -> Runtime:
    """A runtime on the host: the installed binaries, the host's unpack cache."""
    return Runtime(
        [node.bin],
        world.node.name,
        world.tmp / "libcni-cache",
        env={"CNI_PLUGINS_CACHE_DIR": str(node.cache)},
    )


def add_del_pod(runtime: Runtime, conflist: Json) -> Json:
    pod = create_netns()
    try:
        att = Attachment(container_id=f"ctr-{secrets.token_hex(6)}", netns=pod.path)
        result = runtime.add(conflist, att)
        runtime.delete(conflist, att)
        return result
    finally:
        delete_netns(pod)


@pytest.fixture
def node_world() -> Iterator[World]:
    with world() as w:
        w.node.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield w


# ---------------------------------------------------------------------- tests


def test_image_holds_exactly_what_the_recipe_adds(images: Images) -> None:
    config = json.loads(images.podman("image", "inspect", images.current))[0]["Config"]
    for name in ("install-cni", "install-cni-sidecar"):
        # the manifest's command is the image's entrypoint, its CNI_BIN_SRC the image's
        assert container(name)["command"] == config["Entrypoint"]
        env = {e["name"]: e["value"] for e in container(name)["env"]}
        assert f"CNI_BIN_SRC={env['CNI_BIN_SRC']}" in config["Env"]
    listing = images.podman(
        "run",
        "--rm",
        "--network",
        "none",
        *ulimits(),
        "--entrypoint",
        '["/bin/sh", "-c"]',
        images.current,
        "cd /opt/cni/bin && for f in * /install-cni.sh; do stat -c '%a %n' \"$f\"; done"
        " && md5sum /opt/cni/bin/* /install-cni.sh /licenses/*",
    )
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == about_version(images.dist / "flannel")
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    lines = listing.splitlines()
    names = sorted(p.name for p in images.dist.iterdir())
    assert lines[: len(names) + 1] == [f"755 {n}" for n in names] + ["755 /install-cni.sh"]
    sums = {line.split()[1]: line.split()[0] for line in lines[len(names) + 1 :]}
    expected = {f"/opt/cni/bin/{n}": images.dist / n for n in names}
    expected["/install-cni.sh"] = REPO / "install-cni.sh"
    expected["/licenses/LICENSE"] = REPO / "LICENSE"
    expected |= {f"/licenses/{p.name}": p for p in (REPO / "licenses").iterdir()}
    assert sums == {k: hashlib.md5(v.read_bytes()).hexdigest() for k, v in expected.items()}


def test_init_container_installs_warms_and_prunes(
    images: Images, tmp_path: Path, node_world: World
) -> None:
    node = make_node(tmp_path)
    # a payload of an older build of ours, complete and unused
    stale = node.cache / ("0" * 64)
    (stale / "_internal").mkdir(parents=True)
    (stale / ".complete").touch()
    log = run_init(images, node, images.current)

    assert sorted(p.name for p in node.bin.iterdir()) == sorted(
        p.name for p in images.dist.iterdir()
    )
    for p in node.bin.iterdir():
        assert p.read_bytes() == (images.dist / p.name).read_bytes()
    assert json.loads(node.conflist.read_text()) == json.loads(configmap_data()["cni-conf.json"])
    assert f"removed unused payload {'0' * 64}" in log
    assert not stale.exists()

    # the first exec on the host after the install unpacks nothing: the entry the
    # init container unpacked is the one the installed binaries use, as it is
    payload = trailer_id(node.bin / "flannel")
    entry = node.cache / payload
    assert (entry / ".complete").is_file()
    before = (sorted(p.name for p in node.cache.iterdir()), entry.stat().st_ino)
    runtime = host_runtime(node, node_world)
    result = add_del_pod(runtime, flannel_conflist(node, node_world))
    assert result["cniVersion"] == "1.1.0"  # negotiated from cniVersions
    assert (sorted(p.name for p in node.cache.iterdir()), entry.stat().st_ino) == before
    assert [p.name for p in node.cache.iterdir() if p.name.startswith(".tmp-")] == []


def test_sidecar_follows_the_configmap(images: Images, tmp_path: Path) -> None:
    node = make_node(tmp_path)
    run_init(images, node, images.current)
    c = container("install-cni-sidecar")
    name = f"cnit-sidecar-{secrets.token_hex(4)}"
    podman = images.podman
    podman("run", "-d", "--name", name, *node.run_args(c["name"]), images.current, *c["args"])
    try:
        wait_for(lambda: "sidecar mode" in podman.logs(name), 60, "the sidecar to start")
        start_log = podman.logs(name)
        assert "installed" not in start_log  # the init container did it all
        assert "is up to date" in start_log
        conf = json.loads(configmap_data()["cni-conf.json"])
        conf["plugins"][0]["delegate"]["hairpinMode"] = False
        node.configmap.update({**configmap_data(), "cni-conf.json": json.dumps(conf, indent=2)})
        poll = int(node.env_value(c["name"], "CNI_CONF_POLL_SECONDS"))
        # one poll interval, plus slack for a loaded machine (a bound, not a timing)
        wait_for(
            lambda: json.loads(node.conflist.read_text()) == conf,
            poll + 20,
            "the sidecar to install the changed ConfigMap",
        )
        assert "network configuration source changed" in podman.logs(name)
    finally:
        subprocess.run(
            podman.argv("rm", "-f", "-t", "2", name),
            env=podman.env(),
            capture_output=True,
            check=False,
        )


def test_upgrade_while_pods_are_added(images: Images, tmp_path: Path, node_world: World) -> None:
    next_image = images.next()  # built before the clock of the upgrade starts
    assert images.next_dist is not None
    node = make_node(tmp_path)
    run_init(images, node, images.current)
    old_id = trailer_id(node.bin / "flannel")
    new_id = trailer_id(images.next_dist / "flannel")
    assert old_id != new_id

    runtime = host_runtime(node, node_world)
    conflist = flannel_conflist(node, node_world)
    stop = threading.Event()
    upgrading = threading.Event()
    failures: list[str] = []
    during: list[int] = []
    done: list[int] = []

    def pods() -> None:
        while not stop.is_set():
            overlaps = upgrading.is_set()
            try:
                add_del_pod(runtime, conflist)
                done.append(1)
                if overlaps and upgrading.is_set():
                    during.append(1)
            except (PluginFailed, OSError, subprocess.SubprocessError) as e:
                failures.append(str(e)[:2000])

    loop = threading.Thread(target=pods)
    loop.start()
    try:
        wait_for(lambda: len(done) >= 2, 120, "pods before the upgrade")
        upgrading.set()
        log = run_init(images, node, next_image)
        upgrading.clear()
        after = len(done)
        wait_for(lambda: len(done) >= after + 2, 120, "pods after the upgrade")
    finally:
        stop.set()
        loop.join(timeout=120)
    assert failures == []
    assert during, "no pod was added while the new image installed"
    for p in node.bin.iterdir():
        assert p.read_bytes() == (images.next_dist / p.name).read_bytes()
    assert (node.cache / new_id / ".complete").is_file()
    # the old payload goes, unless a pod's plugin still ran from it at that moment
    assert (
        f"removed unused payload {old_id}" in log and not (node.cache / old_id).exists()
    ) or f"kept payload {old_id}" in log, log


def wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
