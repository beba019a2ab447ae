"""containerd pods through what the install-cni image installed (issue 15).

The manifest's init container (podman, tests/install/images.py) installs the
binaries and the conflist into temp host dirs; a private containerd node binds
those very dirs as its /opt/cni/bin and /etc/cni/net.d (nothing copied) and
the manifest's unpack cache dir as the plugins' default one, so CRI pods run
through exactly what was installed.  Then the sidecar follows a changed
ConfigMap, and the next image's init container installs over the first while
loops run CRI pods.

Only our binaries: the image carries dist/bin, so the Go reference set has no
part here (tests/containerd's other modules run both sets).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.containerd.conftest import PLUGINS
from tests.containerd.cri import SANDBOX_READY, PodSpec
from tests.containerd.node import CONTAINERD_MARKS, NODE_IP, POD_SUBNET, InstalledDirs, Node
from tests.install.images import (
    HostDirs,
    Images,
    about_version,
    configmap_data,
    make_host_dirs,
    run_init,
    sidecar,
    trailer_id,
    wait_for,
)

pytestmark = [*CONTAINERD_MARKS, pytest.mark.binaries, pytest.mark.timeout(600)]

HOST_PORT = 30081
# the ConfigMap change: the bridge delegate's mtu (flannel fills in FLANNEL_MTU when unset)
CHANGED_MTU = 1400
LOOPS = 3  # threads creating and removing pods during the upgrade


@dataclass
class Installed:
    host: HostDirs
    node: Node


@pytest.fixture(scope="module")
def installed(
    images: Images, tmp_path_factory: pytest.TempPathFactory, pod_image: Path
) -> Iterator[Installed]:
    host = make_host_dirs(tmp_path_factory.mktemp("install-host"))
    run_init(images, host, images.current)
    root = tmp_path_factory.mktemp("containerd-image")
    dirs = InstalledDirs(host.bin, host.conflist.parent, host.cache)
    node = Node(root, {}, "image", installed=dirs)
    try:
        node.start()
        node.import_image(pod_image)
        yield Installed(host, node)
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


def eth0_mtu(node: Node, container_id: str) -> int:
    assert node.cri is not None
    link = node.cri.exec_sync(container_id, ["ip", "-o", "link", "show", "eth0"])
    found = re.search(r" mtu (\d+) ", link.stdout.decode())
    assert link.exit_code == 0 and found, link
    return int(found.group(1))


def loaded_delegate_mtu(node: Node) -> object:
    """The bridge delegate's mtu in the conflist containerd's CRI plugin has loaded."""
    assert node.cri is not None
    loaded = json.loads(node.cri.status_info()["cniconfig"])
    for network in loaded["Networks"]:
        conf = json.loads(network["Config"]["Source"])
        if conf.get("name") == "cbr0":
            return conf["plugins"][0]["delegate"].get("mtu")
    raise AssertionError(f"containerd has no cbr0 network loaded: {loaded}")


def test_cri_pod_runs_through_the_installed_binaries_and_conflist(installed: Installed) -> None:
    host, node = installed.host, installed.node
    assert json.loads(host.conflist.read_text()) == json.loads(configmap_data()["cni-conf.json"])
    # the node's /opt/cni/bin, conflist and default unpack cache are the installed ones
    for path, seen in ((host.bin / "flannel", "/opt/cni/bin/flannel"),
                       (host.conflist, "/etc/cni/net.d/10-flannel.conflist"),
                       (host.cache, "/var/lib/cni/cni-plugins-py")):  # fmt: skip
        inside = node.run("stat", "-L", "-c", "%d %i", seen)
        assert inside.returncode == 0, inside.stderr
        st = path.stat()
        assert inside.stdout.split() == [str(st.st_dev), str(st.st_ino)], seen

    entry = host.cache / trailer_id(host.bin / "flannel")
    assert (entry / ".complete").is_file()  # the init container unpacked it
    cache_before = (sorted(p.name for p in host.cache.iterdir()), entry.stat().st_ino)

    pod = node.run_pod(PodSpec(name="installed", ports=[("tcp", 80, HOST_PORT, "")]))
    assert node.cri is not None
    try:
        status = node.cri.pod_sandbox_status(pod.sandbox_id)
        assert status.state == SANDBOX_READY
        assert ipaddress.ip_address(status.ip) in ipaddress.ip_network(POD_SUBNET)
        assert node.reservations() == {status.ip: pod.sandbox_id}
        assert node.http_get(status.ip) == "installed"
        assert node.http_get(NODE_IP, HOST_PORT) == "installed"
        assert eth0_mtu(node, pod.container_id) == 1450  # FLANNEL_MTU of subnet.env
        # the plugins ran from the entry the init container warmed in the
        # manifest's cache dir (the default one): nothing unpacked again
        assert (sorted(p.name for p in host.cache.iterdir()), entry.stat().st_ino) == cache_before
    finally:
        node.remove_pod(pod)
    assert node.cri.list_pod_sandboxes() == []
    node.assert_clean()


def test_sidecar_installs_a_changed_configmap_and_the_next_pod_uses_it(
    images: Images, installed: Installed
) -> None:
    host, node = installed.host, installed.node
    assert loaded_delegate_mtu(node) is None
    with sidecar(images, host, images.current):
        conf = json.loads(configmap_data()["cni-conf.json"])
        conf["plugins"][0]["delegate"]["mtu"] = CHANGED_MTU
        host.configmap.update({**configmap_data(), "cni-conf.json": json.dumps(conf, indent=2)})
        poll = int(host.env_value("install-cni-sidecar", "CNI_CONF_POLL_SECONDS"))
        # a bound for a loaded machine, not a timing
        wait_for(lambda: json.loads(host.conflist.read_text()) == conf, poll + 20, "the sidecar")
        # containerd reloads its conf dir on the file's rename (no restart)
        wait_for(lambda: loaded_delegate_mtu(node) == CHANGED_MTU, 20, "containerd to reload")
        pod = node.run_pod(PodSpec(name="after-update"))
        try:
            assert eth0_mtu(node, pod.container_id) == CHANGED_MTU
            assert node.http_get(pod.ip) == "after-update"
        finally:
            node.remove_pod(pod)
    node.assert_clean()


def test_upgrade_under_cri_pod_load_fails_nothing(images: Images, installed: Installed) -> None:
    next_image = images.next()  # built before the upgrade starts
    assert images.next_dist is not None
    host, node = installed.host, installed.node
    old_id, new_id = trailer_id(host.bin / "flannel"), trailer_id(images.next_dist / "flannel")
    old_version = about_version(images.dist / "flannel")
    new_version = about_version(images.next_dist / "flannel")
    assert old_id != new_id and old_version != new_version
    assert node.cri is not None
    cri = node.cri

    stop = threading.Event()
    upgrading = threading.Event()
    failures: list[str] = []
    done: list[str] = []
    during: list[str] = []

    def pods(loop: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            overlaps = upgrading.is_set()
            spec = PodSpec(name=f"loop{loop}-{n}", cgroup_parent=node.cgroup_parent)
            try:
                sandbox = cri.run_pod_sandbox(spec)
                cri.stop_pod_sandbox(sandbox)
                cri.remove_pod_sandbox(sandbox)
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                failures.append(f"{spec.name}: {str(e)[:2000]}")
                continue
            done.append(spec.name)
            if overlaps or upgrading.is_set():
                during.append(spec.name)

    loops = [threading.Thread(target=pods, args=(n,)) for n in range(LOOPS)]
    started = time.monotonic()
    for loop in loops:
        loop.start()
    try:
        wait_for(lambda: len(done) >= 2 or failures, 120, "pods before the upgrade")
        upgrading.set()
        log = run_init(images, host, next_image)
        upgrading.clear()
        after = len(done)
        wait_for(lambda: len(done) >= after + 2 or failures, 120, "pods after the upgrade")
    finally:
        stop.set()
        for loop in loops:
            loop.join(timeout=120)
    rate = len(done) / (time.monotonic() - started)
    print(f"[image] upgrade: {len(done)} CRI pods ({rate:.1f}/s), {len(during)} overlapping it")
    assert failures == []
    assert during, "no pod ran while the new image installed"
    assert cri.list_pod_sandboxes() == []
    node.assert_clean()

    for p in host.bin.iterdir():
        assert p.read_bytes() == (images.next_dist / p.name).read_bytes(), p.name
    # what containerd execs now states the new version (first line of its about text)
    for plugin in PLUGINS:
        about = node.run(f"/opt/cni/bin/{plugin}")
        first = (about.stderr or about.stdout).splitlines()[0]
        assert first.endswith(f" {new_version}"), (plugin, first)
    pod = node.run_pod(PodSpec(name="upgraded"))
    try:
        assert node.http_get(pod.ip) == "upgraded"
    finally:
        node.remove_pod(pod)
    node.assert_clean()
    assert (host.cache / new_id / ".complete").is_file()
    # the old payload goes, unless a pod's plugin still ran from it at that moment
    assert (
        f"removed unused payload {old_id}" in log and not (host.cache / old_id).exists()
    ) or f"kept payload {old_id}" in log, log
