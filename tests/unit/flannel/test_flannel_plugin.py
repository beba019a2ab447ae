"""flannel's verbs end to end through skel, with a recording delegate in CNI_PATH."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.plugins import flannel
from cni_plugins.spec import skel
from tests.fakes.recorder import Recorder

SUBNET_ENV = (
    "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n"
    "FLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n"
)


class Node:
    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp
        self.capsys = capsys
        self.subnet_file = tmp / "run" / "subnet.env"
        self.subnet_file.parent.mkdir()
        self.subnet_file.write_text(SUBNET_ENV)
        self.data_dir = tmp / "flannel"
        self.delegate = Recorder(tmp / "delegate")

    def conf(self, version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
        return {
            "cniVersion": version,
            "name": "cbr0",
            "type": "flannel",
            "subnetFile": str(self.subnet_file),
            "dataDir": str(self.data_dir),
            "delegate": {"hairpinMode": True},
            **extra,
        }

    def run(self, command: str, conf: dict[str, Any], cid: str = "ctr1") -> tuple[int, Any, str]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/run/netns/pod",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.delegate.bin),
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
        }
        out, err = io.StringIO(), io.StringIO()
        stdin = io.BytesIO(json.dumps(conf).encode())
        rc = skel.run(flannel.PLUGIN, environ=env, stdin=stdin, stdout=out, stderr=err)
        text = out.getvalue()
        # Plugins log to the process's stderr; skel's stderr gets only tracebacks.
        logged = err.getvalue() + self.capsys.readouterr().err
        return rc, json.loads(text) if text else None, logged

    def saved(self, cid: str = "ctr1") -> Path:
        return self.data_dir / cid


@pytest.fixture
def node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Node:
    return Node(tmp_path, capsys)


@pytest.mark.parametrize("version", ["0.2.0", "0.3.1", "1.0.0", "1.1.0"])
def test_add_saves_then_delegates_the_rendered_config(node: Node, version: str) -> None:
    rc, result, _ = node.run("ADD", node.conf(version))
    assert rc == 0 and result["cniVersion"] == version
    (call,) = node.delegate.calls()
    assert call["name"] == "bridge" and call["cmd"] == "ADD"
    assert call["stdin"].encode() == node.saved().read_bytes()
    sent = json.loads(call["stdin"])
    assert sent["name"] == "cbr0" and sent["hairpinMode"] is True and sent["mtu"] == 1472
    assert sent["ipam"]["ranges"] == [[{"subnet": "10.1.17.0/24"}]]
    assert call["env"]["CNI_CONTAINERID"] == "ctr1"
    assert call["env"]["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert stat.S_IMODE(node.saved().stat().st_mode) == 0o600
    assert stat.S_IMODE(node.data_dir.stat().st_mode) == 0o700


def test_add_without_subnet_file_is_try_again_later(node: Node) -> None:
    node.subnet_file.unlink()
    rc, err, _ = node.run("ADD", node.conf())
    assert rc == 1 and err["code"] == 11
    assert str(node.subnet_file) in err["msg"]
    assert node.delegate.calls() == [] and not node.data_dir.exists()


def test_failed_delegate_add_is_undone(node: Node) -> None:
    node.delegate.control(ADD={"error": {"code": 7, "msg": "bad bridge", "details": "x"}})
    rc, err, _ = node.run("ADD", node.conf())
    assert rc == 1 and (err["code"], err["msg"]) == (7, "bad bridge")
    assert node.delegate.commands() == ["ADD", "DEL"]
    assert not node.saved().exists()


def test_failed_undo_keeps_the_file_for_the_runtime_del(node: Node) -> None:
    node.delegate.control(
        ADD={"error": {"code": 11, "msg": "busy"}}, DEL={"error": {"code": 11, "msg": "busy"}}
    )
    rc, err, _ = node.run("ADD", node.conf())
    assert rc == 1 and err["code"] == 11
    assert node.saved().exists()


def test_del_replays_the_saved_config_even_after_the_lease_changed(node: Node) -> None:
    node.run("ADD", node.conf())
    saved = node.saved().read_bytes()
    node.subnet_file.write_text(SUBNET_ENV.replace("10.1.17.1/24", "10.1.99.1/24"))
    prev = {"cniVersion": "1.1.0", "ips": [{"address": "10.1.17.2/24"}]}
    rc, out, _ = node.run("DEL", node.conf(prevResult=prev))
    assert (rc, out) == (0, None)
    delete = node.delegate.calls()[-1]
    assert delete["cmd"] == "DEL"
    sent = json.loads(delete["stdin"])
    assert sent.pop("prevResult") == prev
    assert sent == json.loads(saved)
    assert not node.saved().exists()


def test_del_twice_and_del_of_unknown_succeed(node: Node) -> None:
    node.run("ADD", node.conf())
    assert node.run("DEL", node.conf())[:2] == (0, None)
    assert node.run("DEL", node.conf())[:2] == (0, None)
    assert node.run("DEL", node.conf(), cid="never-added")[:2] == (0, None)
    assert node.delegate.commands() == ["ADD", "DEL"]


def test_failed_delegate_del_keeps_the_file_for_the_retry(node: Node) -> None:
    node.run("ADD", node.conf())
    node.delegate.control(DEL={"error": {"code": 11, "msg": "xtables lock"}})
    rc, err, _ = node.run("DEL", node.conf())
    assert rc == 1 and err["code"] == 11
    assert node.saved().exists()
    node.delegate.control()
    assert node.run("DEL", node.conf())[:2] == (0, None)
    assert not node.saved().exists()


CORRUPT = [
    b"",
    b'{"type": "bri',
    b"[1,2]",
    b'{"type": 5}',
    b'{"type": "../../bin/sh"}',
    b"\xff\xfe\x00",
]


@pytest.mark.parametrize("content", CORRUPT)
def test_corrupt_saved_file_is_replaced_by_the_rendered_config_on_del(
    node: Node, content: bytes
) -> None:
    """flannel#1662: a torn file must not block DEL; and (beyond the reference,
    which leaks the address and the rules) the delegate still gets its DEL,
    with the config ADD renders from the current subnet file."""
    assert node.run("ADD", node.conf())[0] == 0
    added = json.loads(node.delegate.calls()[0]["stdin"])
    node.saved().write_bytes(content)
    rc, out, err = node.run("DEL", node.conf())
    assert (rc, out) == (0, None)
    assert "rendered from the subnet file" in err
    assert node.delegate.commands() == ["ADD", "DEL"]
    assert json.loads(node.delegate.calls()[1]["stdin"]) == added
    assert not node.saved().exists()


@pytest.mark.parametrize("content", CORRUPT[:2])
def test_corrupt_saved_file_without_subnet_file_does_not_block_del(
    node: Node, content: bytes
) -> None:
    node.data_dir.mkdir(mode=0o700)
    node.saved().write_bytes(content)
    node.subnet_file.unlink()
    rc, out, err = node.run("DEL", node.conf())
    assert (rc, out) == (0, None)
    assert "ignoring it" in err
    assert node.delegate.calls() == []
    assert node.saved().exists()  # GC drops it once the container is not listed


def test_symlink_planted_in_data_dir_is_not_followed(node: Node) -> None:
    victim = node.tmp / "victim"
    victim.write_text('{"type": "evil"}')
    node.data_dir.mkdir(mode=0o700)
    os.symlink(victim, node.saved())
    rc, out, err = node.run("DEL", node.conf())
    assert (rc, out) == (0, None) and "cannot read saved config" in err
    assert [json.loads(c["stdin"])["type"] for c in node.delegate.calls()] == ["bridge"]
    assert victim.read_text() == '{"type": "evil"}'
    assert not node.saved().is_symlink()  # the link itself is gone, its target is not
    os.symlink(victim, node.saved())
    assert node.run("ADD", node.conf())[0] == 0
    assert victim.read_text() == '{"type": "evil"}'
    assert not node.saved().is_symlink()


def test_check_replays_saved_config_with_prev_result(node: Node) -> None:
    node.run("ADD", node.conf())
    prev = {"cniVersion": "1.1.0", "ips": [{"address": "10.1.17.2/24"}]}
    assert node.run("CHECK", node.conf(prevResult=prev))[:2] == (0, None)
    check = node.delegate.calls()[-1]
    assert check["cmd"] == "CHECK" and json.loads(check["stdin"])["prevResult"] == prev


def test_check_of_unknown_container_is_code_3(node: Node) -> None:
    rc, err, _ = node.run("CHECK", node.conf(), cid="nope")
    assert rc == 1 and err["code"] == 3


def test_check_propagates_delegate_failure(node: Node) -> None:
    node.run("ADD", node.conf())
    node.delegate.control(CHECK={"error": {"code": 999, "msg": "veth missing"}})
    rc, err, _ = node.run("CHECK", node.conf())
    assert rc == 1 and err["msg"] == "veth missing"


def test_status_is_50_without_subnet_file_then_delegates(node: Node) -> None:
    node.subnet_file.unlink()
    rc, err, _ = node.run("STATUS", node.conf())
    assert rc == 1 and err["code"] == 50 and str(node.subnet_file) in err["msg"]
    node.subnet_file.write_text(SUBNET_ENV)
    assert node.run("STATUS", node.conf())[:2] == (0, None)
    assert node.delegate.commands() == ["STATUS"]


def test_gc_forwards_and_drops_stale_saved_files(node: Node) -> None:
    for cid in ("keep", "stale1", "stale2"):
        node.run("ADD", node.conf(), cid=cid)
    valid = [{"containerID": "keep", "ifname": "eth0"}]
    conf = node.conf()
    conf["cni.dev/valid-attachments"] = valid
    assert node.run("GC", conf)[:2] == (0, None)
    gc = node.delegate.calls()[-1]
    assert gc["cmd"] == "GC"
    assert json.loads(gc["stdin"])["cni.dev/valid-attachments"] == valid
    assert sorted(p.name for p in node.data_dir.iterdir()) == ["keep"]


def test_gc_rejects_malformed_attachment_list(node: Node) -> None:
    conf = node.conf()
    conf["cni.dev/valid-attachments"] = "all"
    rc, err, _ = node.run("GC", conf)
    assert rc == 1 and err["code"] == 7


def test_missing_delegate_fails_add_before_anything_is_saved(node: Node) -> None:
    rc, err, _ = node.run("ADD", node.conf(delegate={"type": "no-such-plugin"}))
    assert rc == 1 and err["code"] == 4 and "no-such-plugin" in err["msg"]
    assert not node.saved().exists()
    assert node.run("DEL", node.conf(delegate={"type": "no-such-plugin"}))[:2] == (0, None)


def test_config_the_delegate_rejects_leaves_no_saved_file(node: Node) -> None:
    """A bad 'delegate' value (delegate ADD and DEL both answer code 7) must not
    leave a file whose replay would fail every DEL of the pod (found by the
    reliability fuzzer)."""
    bad = {"error": {"code": 7, "msg": "mtu: must be an integer"}}
    node.delegate.control(ADD=bad, DEL=bad)
    rc, err, _ = node.run("ADD", node.conf())
    assert rc == 1 and err["code"] == 7
    assert node.delegate.commands() == ["ADD", "DEL"]
    assert not node.saved().exists()
    assert node.run("DEL", node.conf())[:2] == (0, None)


def test_other_delegate_del_failures_keep_the_file_for_the_retry(node: Node) -> None:
    node.delegate.control(
        ADD={"error": {"code": 999, "msg": "boom"}}, DEL={"error": {"code": 11, "msg": "busy"}}
    )
    rc, err, _ = node.run("ADD", node.conf())
    assert rc == 1 and err["code"] == 999
    assert node.saved().exists()
