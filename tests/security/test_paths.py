"""Names and IDs that reach file paths cannot leave their directories, and
nothing planted in the state directories redirects a read or a write.

What we guarantee (README): a plugin creates files only under
``<ipam.dataDir>/<network>/`` (host-local) and ``<dataDir>/`` (flannel's saved
configs, named by container ID); ``subnetFile`` is only read.  ``dataDir`` itself
is the operator's choice (it may be anywhere, even a symlink); the network
name, container ID and ifname are validated (skel) before any path is built,
and the per-network directory and every file in it are opened without
following symlinks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reliability.world import World
from tests.security.conftest import exec_plugin, node_state, tree

pytestmark = pytest.mark.privileged

BAD_NAMES = ["../evil", "/abs/evil", "a/b", "..", ".", "x\u0000y", "evil\n", " cbr0"]
BAD_IDS = ["../../evil", "/etc/evil", "a/b", ".hidden", "..", "-x", "a b", "é"]


def host_local_conf(world: World, name: str = "cbr0") -> dict[str, object]:
    return {
        "cniVersion": "1.1.0",
        "name": name,
        "type": "host-local",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.244.1.0/24"}]],
            "dataDir": str(world.ipam_dir),
        },
    }


@pytest.mark.parametrize("plugin", ["host-local", "flannel", "bridge"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_network_name_cannot_escape(world: World, plugin: str, name: str) -> None:
    conf = host_local_conf(world) if plugin == "host-local" else world.flannel_conf()
    if plugin == "bridge":
        conf = dict(host_local_conf(world), type="bridge")
    conf["name"] = name
    before, state = tree(world.tmp.parent), node_state(world)
    for command in ("ADD", "DEL", "GC"):
        status, out = exec_plugin(world, plugin, command, conf)
        assert status == 1 and out is not None and out["code"] == 7, (command, out)
    assert tree(world.tmp.parent) == before
    assert node_state(world) == state


@pytest.mark.parametrize("plugin", ["host-local", "flannel"])
@pytest.mark.parametrize("cid", BAD_IDS)
def test_container_id_cannot_escape(world: World, plugin: str, cid: str) -> None:
    conf = host_local_conf(world) if plugin == "host-local" else world.flannel_conf()
    before = tree(world.tmp.parent)
    for command in ("ADD", "DEL"):
        status, out = exec_plugin(world, plugin, command, conf, cid=cid, netns="/dev/null")
        assert status == 1 and out is not None and out["code"] == 4, (command, out)
    assert tree(world.tmp.parent) == before


@pytest.mark.parametrize("ifname", ["../x", "a/b", "..", "a:b", "x" * 16])
def test_ifname_cannot_escape(world: World, ifname: str) -> None:
    before = tree(world.tmp.parent)
    status, out = exec_plugin(world, "host-local", "ADD", host_local_conf(world), ifname=ifname)
    assert status == 1 and out is not None and out["code"] == 4
    assert tree(world.tmp.parent) == before


def test_symlinked_network_directory_is_refused(world: World, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    world.ipam_dir.mkdir(parents=True)
    (world.ipam_dir / "cbr0").symlink_to(outside)
    for command in ("ADD", "DEL", "GC"):
        status, out = exec_plugin(world, "host-local", command, host_local_conf(world))
        assert status == 1 and out is not None and out["code"] == 5, (command, out)
        assert "cbr0" in out["msg"]  # ENOTDIR: O_DIRECTORY|O_NOFOLLOW on a symlink
    assert list(outside.iterdir()) == []


def test_symlinks_planted_in_the_reservation_directory_are_not_followed(
    world: World, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    netdir = world.ipam_dir / "cbr0"
    netdir.mkdir(parents=True)
    (netdir / "10.244.1.2").symlink_to(victim)
    status, out = exec_plugin(world, "host-local", "ADD", host_local_conf(world))
    assert status == 0 and out is not None
    assert out["ips"][0]["address"] == "10.244.1.3/24"  # .2 is "taken" by the link
    assert exec_plugin(world, "host-local", "DEL", host_local_conf(world))[0] == 0
    (netdir / "lock").unlink()
    (netdir / "lock").symlink_to(victim)
    status, out = exec_plugin(world, "host-local", "ADD", host_local_conf(world), cid="c2")
    assert status == 1 and out is not None and out["code"] == 5
    (netdir / "lock").unlink()
    (netdir / "last_reserved_ip.0").unlink(missing_ok=True)
    (netdir / "last_reserved_ip.0").symlink_to(victim)
    status, out = exec_plugin(world, "host-local", "ADD", host_local_conf(world), cid="c3")
    assert status == 1 and out is not None and out["code"] == 5
    assert not (netdir / "10.244.1.3").exists()  # the failed ADD kept nothing
    assert victim.read_bytes() == b"precious"
    assert os.stat(victim).st_mode & 0o777 == 0o644


def test_flannel_saved_file_symlink_is_neither_read_nor_written(
    world: World, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    evil = {"cniVersion": "1.0.0", "name": "cbr0", "type": "evil"}
    victim.write_text(json.dumps(evil))
    world.flannel_dir.mkdir(mode=0o700)
    pod = world.new_pod()
    (world.flannel_dir / pod.cid).symlink_to(victim)
    assert world.add(pod).ok
    assert not (world.flannel_dir / pod.cid).is_symlink()  # replaced, not written through
    (world.flannel_dir / pod.cid).unlink()
    (world.flannel_dir / pod.cid).symlink_to(victim)
    answer = world.delete(pod)  # the link is not read: DEL replays the rendered config
    assert answer.ok, answer.describe()
    assert b"cannot read saved config" in answer.stderr
    world.del_netns(pod.ns)
    assert json.loads(victim.read_text()) == evil
    assert world.leftovers() == []


def test_flannel_data_dir_must_be_absolute(world: World) -> None:
    for value in ("relative/dir", "", "/x\u0000y", 5):
        conf = dict(world.flannel_conf(), dataDir=value)
        status, out = exec_plugin(world, "flannel", "ADD", conf, netns="/dev/null")
        assert status == 1 and out is not None and out["code"] == 7, (value, out)


def test_subnet_file_is_only_read(world: World) -> None:
    st = os.stat(world.subnet_file)
    content = world.subnet_file.read_bytes()
    world.subnet_file.chmod(0o444)
    pod = world.new_pod()
    assert world.add(pod).ok
    assert world.delete(pod).ok
    assert all(a.ok for a in world.gc([]))
    after = os.stat(world.subnet_file)
    assert world.subnet_file.read_bytes() == content
    assert (after.st_mtime_ns, after.st_ino) == (st.st_mtime_ns, st.st_ino)
