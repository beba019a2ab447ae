"""deploy/Containerfile built for real and run the way deploy/kube-flannel.yml
runs it (tests/install/images.py builds the images and runs the containers).
The binaries the init container installs are then used from the host
directories through the installed conflist (conformance.runtime in a
throwaway node namespace), with the host's unpack cache where the manifest
puts it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.netns import World, create_netns, delete_netns, world
from conformance.runtime import Attachment, PluginFailed, Runtime
from tests.install.images import (
    REPO,
    HostDirs,
    Images,
    Json,
    about_version,
    configmap_data,
    container,
    make_host_dirs,
    run_init,
    sidecar,
    trailer_id,
    ulimits,
    wait_for,
)

pytestmark = [pytest.mark.privileged, pytest.mark.binaries, pytest.mark.timeout(600)]


# ----------------------------------------------------------------- the driver


def flannel_conflist(node: HostDirs, world: World) -> Json:
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


def host_runtime(node: HostDirs, world: World) -> Runtime:
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
    node = make_host_dirs(tmp_path)
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
    node = make_host_dirs(tmp_path)
    run_init(images, node, images.current)
    with sidecar(images, node, images.current) as name:
        start_log = images.podman.logs(name)
        assert "installed" not in start_log  # the init container did it all
        assert "is up to date" in start_log
        conf = json.loads(configmap_data()["cni-conf.json"])
        conf["plugins"][0]["delegate"]["hairpinMode"] = False
        node.configmap.update({**configmap_data(), "cni-conf.json": json.dumps(conf, indent=2)})
        poll = int(node.env_value("install-cni-sidecar", "CNI_CONF_POLL_SECONDS"))
        # one poll interval, plus slack for a loaded machine (a bound, not a timing)
        wait_for(
            lambda: json.loads(node.conflist.read_text()) == conf,
            poll + 20,
            "the sidecar to install the changed ConfigMap",
        )
        assert "network configuration source changed" in images.podman.logs(name)


def test_upgrade_while_pods_are_added(images: Images, tmp_path: Path, node_world: World) -> None:
    next_image = images.next()  # built before the clock of the upgrade starts
    assert images.next_dist is not None
    node = make_host_dirs(tmp_path)
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
