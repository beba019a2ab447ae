"""The portmap plugin through skel, with the node-facing layer replaced by a recorder."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from cni_plugins.plugins import portmap as plugin
from cni_plugins.portmap import apply
from cni_plugins.spec import skel

PREV: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "00:00:00:00:00:01"},
        {"name": "eth0", "mac": "00:00:00:00:00:02", "sandbox": "/run/netns/x"},
    ],
    "ips": [
        {"interface": 1, "address": "10.244.1.2/24", "gateway": "10.244.1.1"},
        {"interface": 1, "address": "fd00::2/64", "gateway": "fd00::1"},
    ],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {"nameservers": ["10.96.0.10"]},
}
MAPPINGS = [{"hostPort": 8080, "containerPort": 80}]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    record: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        apply, "forward", lambda c, n, i, a: record.append(("forward", (n, i, [str(x) for x in a])))
    )
    monkeypatch.setattr(apply, "unforward", lambda n, i: record.append(("unforward", (n, i))))
    monkeypatch.setattr(apply, "gc", lambda n, v: record.append(("gc", (n, v))))
    monkeypatch.setattr(apply, "check", lambda c, n, i, a: record.append(("check", (n, i))))
    return record


def run(command: str, config: dict[str, Any]) -> tuple[int, Any]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "pod1",
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
    }
    out = io.StringIO()
    stdin = io.BytesIO(json.dumps({"name": "cbr0", "type": "portmap", **config}).encode())
    code = skel.run(plugin.PLUGIN, environ=env, stdin=stdin, stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    return code, json.loads(text) if text else None


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_passes_prev_result_through(calls: list[Any], version: str) -> None:
    prev = {**PREV, "cniVersion": version}
    code, out = run(
        "ADD",
        {"cniVersion": version, "prevResult": prev, "runtimeConfig": {"portMappings": MAPPINGS}},
    )
    assert code == 0
    expected = json.loads(json.dumps(prev))
    if version.startswith("0."):
        for ip in expected["ips"]:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    assert out == expected
    assert calls == [("forward", ("cbr0", "pod1", ["10.244.1.2/24", "fd00::2/64"]))]


def test_add_without_mappings_touches_nothing(calls: list[Any]) -> None:
    code, out = run("ADD", {"cniVersion": "1.0.0", "prevResult": PREV})
    assert code == 0 and out == PREV and calls == []
    code, out = run(
        "ADD", {"cniVersion": "1.0.0", "prevResult": PREV, "runtimeConfig": {"portMappings": []}}
    )
    assert code == 0 and calls == []


def test_add_requires_prev_result(calls: list[Any]) -> None:
    code, out = run("ADD", {"cniVersion": "1.0.0", "runtimeConfig": {"portMappings": MAPPINGS}})
    assert code == 1 and out["code"] == 7 and out["msg"] == "must be called as chained plugin"
    assert calls == []


def test_bad_config_fails_before_anything(calls: list[Any]) -> None:
    bad = {"portMappings": [{"hostPort": 99999, "containerPort": 80}]}
    code, out = run("ADD", {"cniVersion": "1.0.0", "prevResult": PREV, "runtimeConfig": bad})
    assert code == 1 and out["code"] == 7 and "hostPort" in out["msg"]
    assert calls == []


def test_del_always_removes_by_name(calls: list[Any]) -> None:
    assert run("DEL", {"cniVersion": "1.0.0"}) == (0, None)
    assert calls == [("unforward", ("cbr0", "pod1"))]


def test_check(calls: list[Any]) -> None:
    code, out = run("CHECK", {"cniVersion": "1.0.0", "runtimeConfig": {"portMappings": MAPPINGS}})
    assert code == 1 and out["msg"] == "Required prevResult missing"
    assert run("CHECK", {"cniVersion": "1.0.0", "prevResult": PREV}) == (0, None)
    assert calls == []
    full = {"cniVersion": "1.0.0", "prevResult": PREV, "runtimeConfig": {"portMappings": MAPPINGS}}
    assert run("CHECK", full) == (0, None)
    assert calls == [("check", ("cbr0", "pod1"))]


def test_gc_valid_attachments(calls: list[Any]) -> None:
    valid = [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth0"}]
    assert run("GC", {"cniVersion": "1.1.0", "cni.dev/valid-attachments": valid}) == (0, None)
    assert run("GC", {"cniVersion": "1.1.0", "cni.dev/attachments": valid[:1]}) == (0, None)
    assert run("GC", {"cniVersion": "1.1.0"}) == (0, None)
    assert calls == [("gc", ("cbr0", {"a", "b"})), ("gc", ("cbr0", {"a"})), ("gc", ("cbr0", set()))]
    code, out = run("GC", {"cniVersion": "1.1.0", "cni.dev/valid-attachments": [{"x": 1}]})
    assert code == 1 and out["code"] == 7


def test_status_code_50_when_backend_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    from cni_plugins.linux import iptables
    from cni_plugins.spec.errors import CNIError

    def broken(self: Any, table: str) -> str:
        raise CNIError("iptables-save failed")

    monkeypatch.setattr(iptables.Iptables, "save", broken)
    code, out = run("STATUS", {"cniVersion": "1.1.0", "backend": "iptables"})
    assert code == 1 and out["code"] == 50
