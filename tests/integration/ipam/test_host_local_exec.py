"""host-local exec'd as a process (the source tree via ``script_bin_dir``):
concurrency through the flock, exhaustion, DEL twice, GC."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_plugin

pytestmark = pytest.mark.privileged


def config(data_dir: Path, subnet: str = "10.77.0.0/24", version: str = "1.1.0") -> str:
    return json.dumps(
        {
            "cniVersion": version,
            "name": "hl-exec",
            "ipam": {
                "type": "host-local",
                "dataDir": str(data_dir),
                "ranges": [[{"subnet": subnet}]],
            },
        }
    )


def env(netns: str, cid: str, ifname: str = "eth0") -> dict[str, str]:
    return {
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/nonexistent",
    }


def add(binary: Path, conf: str, netns: str, cid: str) -> dict[str, Any]:
    proc = run_plugin(binary, "ADD", conf, env=env(netns, cid))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def reservations(data_dir: Path) -> dict[str, bytes]:
    d = data_dir / "hl-exec"
    return {n: (d / n).read_bytes() for n in os.listdir(d) if n[0].isdigit()}


def test_fifty_concurrent_adds_get_distinct_addresses(
    script_bin_dir: Path, netns: str, tmp_path: Path
) -> None:
    binary, conf = script_bin_dir / "host-local", config(tmp_path)
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda n: add(binary, conf, netns, f"ctr-{n}"), range(50)))
    addresses = [r["ips"][0]["address"] for r in results]
    assert len(set(addresses)) == 50
    held = reservations(tmp_path)
    assert len(held) == 50
    assert sorted(held.values()) == sorted(f"ctr-{n}\r\neth0".encode() for n in range(50))
    for result, n in zip(results, range(50), strict=True):
        ip = result["ips"][0]["address"].split("/")[0]
        assert held[ip] == f"ctr-{n}\r\neth0".encode()


def test_exhaustion_gives_a_clear_error(script_bin_dir: Path, netns: str, tmp_path: Path) -> None:
    binary, conf = script_bin_dir / "host-local", config(tmp_path, "10.77.1.0/30")
    add(binary, conf, netns, "first")
    proc = run_plugin(binary, "ADD", conf, env=env(netns, "second"))
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {
        "cniVersion": "1.1.0",
        "code": 11,
        "msg": "failed to allocate for range 0: no IP addresses available in range set: "
        "10.77.1.1-10.77.1.2",
    }
    status = run_plugin(binary, "STATUS", conf)
    assert status.returncode == 1 and json.loads(status.stdout)["code"] == 50
    assert list(reservations(tmp_path)) == ["10.77.1.2"]


def test_del_twice_succeeds(script_bin_dir: Path, netns: str, tmp_path: Path) -> None:
    binary, conf = script_bin_dir / "host-local", config(tmp_path)
    add(binary, conf, netns, "ctr")
    for _ in range(2):
        proc = run_plugin(binary, "DEL", conf, env=env(netns, "ctr"))
        assert (proc.returncode, proc.stdout) == (0, b"")
    # and without CNI_NETNS (the netns may be gone)
    no_ns = {k: v for k, v in env(netns, "ctr").items() if k != "CNI_NETNS"}
    assert run_plugin(binary, "DEL", conf, env=no_ns).returncode == 0
    assert reservations(tmp_path) == {}


def test_gc_releases_stale_reservations_only(
    script_bin_dir: Path, netns: str, tmp_path: Path
) -> None:
    binary, conf = script_bin_dir / "host-local", config(tmp_path)
    kept = {add(binary, conf, netns, c)["ips"][0]["address"].split("/")[0] for c in ("a", "b")}
    add(binary, conf, netns, "stale")
    gc_conf = json.loads(conf)
    gc_conf["cni.dev/valid-attachments"] = [
        {"containerID": "a", "ifname": "eth0"},
        {"containerID": "b", "ifname": "eth0"},
    ]
    proc = run_plugin(binary, "GC", json.dumps(gc_conf), env={"CNI_PATH": "/nonexistent"})
    assert (proc.returncode, proc.stdout) == (0, b""), proc.stderr
    assert set(reservations(tmp_path)) == kept
    assert {"lock", "last_reserved_ip.0"} <= set(os.listdir(tmp_path / "hl-exec"))
