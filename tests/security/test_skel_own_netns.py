"""skel refuses CNI_NETNS naming the plugin's own namespace before any handler
runs (no root needed: the namespace is only stat'ed)."""

from __future__ import annotations

import io
import json

import pytest

from cni_plugins.spec import skel
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.types import Result


def recording_plugin(calls: list[str]) -> skel.Plugin:
    def add(args: CmdArgs) -> Result:
        calls.append("ADD")
        return Result()

    def other(args: CmdArgs) -> None:
        calls.append(args.command)

    return skel.Plugin("probe", add=add, delete=other, check=other)


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
@pytest.mark.parametrize("netns", ["/proc/self/ns/net", "/proc/thread-self/ns/net"])
def test_own_netns_is_refused_before_the_handler(command: str, netns: str) -> None:
    calls: list[str] = []
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    conf: dict[str, object] = {"cniVersion": "1.0.0", "name": "n", "type": "probe"}
    if command == "CHECK":
        conf["prevResult"] = {"cniVersion": "1.0.0", "ips": []}
    out = io.StringIO()
    stdin = io.BytesIO(json.dumps(conf).encode())
    rc = skel.run(
        recording_plugin(calls), environ=env, stdin=stdin, stdout=out, stderr=io.StringIO()
    )
    assert rc == 1 and json.loads(out.getvalue())["code"] == 8
    assert calls == []
    stdin.seek(0)
    env["CNI_NETNS_OVERRIDE"] = "1"
    rc = skel.run(
        recording_plugin(calls), environ=env, stdin=stdin, stdout=out, stderr=io.StringIO()
    )
    assert rc == 0 and calls == [command]


def test_missing_netns_is_left_to_the_handler() -> None:
    calls: list[str] = []
    env = {
        "CNI_COMMAND": "DEL",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/cnit-never-existed",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    stdin = io.BytesIO(b'{"cniVersion": "1.0.0", "name": "n", "type": "probe"}')
    rc = skel.run(
        recording_plugin(calls),
        environ=env,
        stdin=stdin,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert rc == 0 and calls == ["DEL"]
