"""host-local through ``skel.run`` with injected environ/stdin/stdout, for every
spec version, with a tmp dataDir: result shapes, verbs, and that bad input
writes nothing."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.plugins.host_local import PLUGIN
from cni_plugins.spec import skel
from cni_plugins.spec.version import SUPPORTED_VERSIONS, at_least, shape

V4_SUBNET, V6_SUBNET = "203.0.113.0/24", "2001:db8:1::/64"


def conf(data_dir: Path, version: str = "1.0.0", **ipam: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "type": "host-local",
        "dataDir": str(data_dir),
        "ranges": [[{"subnet": V4_SUBNET}], [{"subnet": V6_SUBNET}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    }
    section.update(ipam)
    return {"cniVersion": version, "name": "net1", "type": "bridge", "ipam": section}


def call(
    command: str, config: dict[str, Any] | str, cid: str = "ctr1", **env: str
) -> tuple[int, Any]:
    environ = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        **env,
    }
    raw = config if isinstance(config, str) else json.dumps(config)
    stdout, stderr = io.StringIO(), io.StringIO()
    rc = skel.run(
        PLUGIN, environ=environ, stdin=io.BytesIO(raw.encode()), stdout=stdout, stderr=stderr
    )
    assert "Traceback" not in stderr.getvalue()
    out = stdout.getvalue()
    return rc, json.loads(out) if out else None


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_result_in_every_version(tmp_path: Path, version: str) -> None:
    rc, out = call("ADD", conf(tmp_path, version))
    assert rc == 0, out
    if shape(version) == "0.2":
        assert out == {
            "cniVersion": version,
            "ip4": {
                "ip": "203.0.113.2/24",
                "gateway": "203.0.113.1",
                "routes": [{"dst": "0.0.0.0/0"}],
            },
            "ip6": {
                "ip": "2001:db8:1::2/64",
                "gateway": "2001:db8:1::1",
                "routes": [{"dst": "::/0"}],
            },
        }
    else:
        with_version = shape(version) == "0.4"
        ips = [
            {"address": "203.0.113.2/24", "gateway": "203.0.113.1"},
            {"address": "2001:db8:1::2/64", "gateway": "2001:db8:1::1"},
        ]
        if with_version:
            ips = [{"version": v, **x} for v, x in zip("46", ips, strict=True)]
        assert out == {
            "cniVersion": version,
            "ips": ips,
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        }
    state = tmp_path / "net1"
    assert (state / "203.0.113.2").read_bytes() == b"ctr1\r\neth0"
    assert (state / "2001:db8:1::2").read_bytes() == b"ctr1\r\neth0"


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_lifecycle_in_every_version(tmp_path: Path, version: str) -> None:
    config = conf(tmp_path, version)
    assert call("ADD", config)[0] == 0
    rc, out = call("ADD", config)
    assert rc == 1 and out["code"] == 999 and "duplicate allocation is not allowed" in out["msg"]
    if at_least(version, "0.4.0"):
        assert call("CHECK", config) == (0, None)
        rc, out = call("CHECK", config, cid="other")
        assert (rc, out["code"]) == (1, 3)
        assert out["msg"] == "host-local: Failed to find address added by container other"
    if at_least(version, "1.1.0"):
        assert call("STATUS", config) == (0, None)
        gc = {**config, "cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "eth0"}]}
        assert call("GC", gc) == (0, None)
        assert (tmp_path / "net1" / "203.0.113.2").exists()
    assert call("DEL", config) == (0, None)
    assert call("DEL", config) == (0, None)
    assert sorted(os.listdir(tmp_path / "net1")) == [
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
    ]


def test_check_compares_prev_result(tmp_path: Path) -> None:
    config = conf(tmp_path)
    _, result = call("ADD", config)
    assert call("CHECK", {**config, "prevResult": result}) == (0, None)
    wrong = {**result, "ips": [{"address": "203.0.113.77/24"}]}
    rc, out = call("CHECK", {**config, "prevResult": wrong})
    assert rc == 1 and "but prevResult lists [203.0.113.77]" in out["msg"]


def test_requested_ips_and_cni_args(tmp_path: Path) -> None:
    config = conf(tmp_path)
    config["runtimeConfig"] = {"ips": ["2001:db8:1::99/64"]}
    rc, out = call("ADD", config, CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=p;IP=203.0.113.50")
    assert rc == 0, out
    assert [x["address"] for x in out["ips"]] == ["203.0.113.50/24", "2001:db8:1::99/64"]


def test_resolv_conf_becomes_dns(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# comment\n; other comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"
        "domain example.com\nsearch a.example b.example\noptions ndots:5 rotate\nsortlist x\n"
        "nameserver\n"
    )
    rc, out = call("ADD", conf(tmp_path / "d", resolvConf=str(resolv)))
    assert rc == 0, out
    assert out["dns"] == {
        "nameservers": ["192.0.2.53", "2001:db8::53"],
        "domain": "example.com",
        "search": ["a.example", "b.example"],
        "options": ["ndots:5", "rotate"],
    }


def test_exhaustion_error_and_status(tmp_path: Path) -> None:
    config = conf(tmp_path, "1.1.0", ranges=[[{"subnet": "10.0.0.0/30"}]], routes=[])
    assert call("ADD", config, cid="a")[0] == 0
    rc, out = call("ADD", config, cid="b")
    assert rc == 1
    assert out == {
        "cniVersion": "1.1.0",
        "code": 11,
        "msg": "failed to allocate for range 0: no IP addresses available in range set: "
        "10.0.0.1-10.0.0.2",
    }
    rc, out = call("STATUS", config)
    assert (rc, out["code"]) == (1, 50)
    assert out["msg"] == "no IP addresses available in range set 0: 10.0.0.1-10.0.0.2"
    assert call("GC", config) == (0, None)  # no list: everything is stale
    assert call("STATUS", config) == (0, None)
    assert call("ADD", config, cid="b")[0] == 0


def test_del_and_gc_release_with_a_broken_range_config(tmp_path: Path) -> None:
    config = conf(tmp_path, "1.1.0")
    call("ADD", config, cid="a")
    call("ADD", config, cid="b")
    broken = conf(tmp_path, "1.1.0", ranges="nonsense")
    assert call("DEL", broken, cid="a") == (0, None)
    assert call("GC", {**broken, "cni.dev/valid-attachments": []}) == (0, None)
    assert sorted(os.listdir(tmp_path / "net1")) == [
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
    ]
    rc, out = call("CHECK", broken, cid="a")
    assert (rc, out["code"]) == (1, 7)
    rc, out = call("STATUS", broken)
    assert (rc, out["code"]) == (1, 7)


def test_del_without_state_creates_nothing(tmp_path: Path) -> None:
    assert call("DEL", conf(tmp_path / "never")) == (0, None)
    assert not (tmp_path / "never").exists()


def test_gc_malformed_list_is_code_7(tmp_path: Path) -> None:
    rc, out = call("GC", {**conf(tmp_path, "1.1.0"), "cni.dev/valid-attachments": "x"})
    assert (rc, out["code"]) == (1, 7)


BadInput = tuple[dict[str, Any] | str, dict[str, str], int]
BAD_INPUTS: dict[str, Callable[[Path], BadInput]] = {
    "not json": lambda tmp: ("{", {}, 6),
    "no ipam": lambda tmp: ({"cniVersion": "1.0.0", "name": "net1"}, {}, 7),
    "host bits": lambda tmp: (conf(tmp, ranges=[[{"subnet": "10.0.0.1/24"}]]), {}, 7),
    "ranges type": lambda tmp: (conf(tmp, ranges="x"), {}, 7),
    "two v4 in 0.2.0": lambda tmp: (
        conf(tmp, "0.2.0", ranges=[[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]),
        {},
        7,
    ),
    "unknown CNI_ARGS": lambda tmp: (conf(tmp), {"CNI_ARGS": "K8S_POD_NAME=x"}, 4),
    "gateway requested": lambda tmp: (conf(tmp), {"CNI_ARGS": "IP=203.0.113.1"}, 7),
    "request outside": lambda tmp: (conf(tmp), {"CNI_ARGS": "IP=10.9.9.9"}, 7),
    "missing resolvConf": lambda tmp: (conf(tmp, resolvConf=str(tmp / "nope")), {}, 7),
    "bad version": lambda tmp: ({**conf(tmp), "cniVersion": "9.9.9"}, {}, 1),
    "bad route": lambda tmp: (conf(tmp, routes=[{"dst": "nope"}]), {}, 7),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_writes_nothing(tmp_path: Path, case: str) -> None:
    data_dir = tmp_path / "data"
    config, env, code = BAD_INPUTS[case](data_dir)
    rc, out = call("ADD", config, **env)
    assert (rc, out["code"]) == (1, code)
    assert not data_dir.exists()
