"""loopback against the real kernel, exec'd as a process (source and built binary)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import NetNS

from cni_plugins.spec.version import SUPPORTED_VERSIONS
from tests.conftest import built_bin_dir, run_plugin

pytestmark = pytest.mark.privileged


@pytest.fixture(params=["source", "dist"])
def loopback(request: pytest.FixtureRequest, script_bin_dir: Path) -> Path:
    if request.param == "dist":
        built = built_bin_dir()
        if built is None:
            pytest.skip("dist/bin not built")
        return built / "loopback"
    return script_bin_dir / "loopback"


def lo_is_up(netns_path: str) -> bool:
    with NetNS(Path(netns_path).name, flags=0) as ns:  # flags=0: never create it
        (lo,) = ns.link("get", ifname="lo")
        return bool(lo["flags"] & 1)


def env(netns: str, **extra: str) -> dict[str, str]:
    return {
        "CNI_CONTAINERID": "ctr-lo",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
        **extra,
    }


def conf(version: str, **extra: object) -> str:
    return json.dumps({"cniVersion": version, "name": "lo-net", "type": "loopback", **extra})


def down(netns: str) -> None:
    name = Path(netns).name
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "down"], check=True)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_brings_lo_up_and_reports_it(loopback: Path, netns: str, version: str) -> None:
    down(netns)
    proc = run_plugin(loopback, "ADD", conf(version), env=env(netns))
    assert proc.returncode == 0, proc.stdout
    assert lo_is_up(netns)
    result = json.loads(proc.stdout)
    assert result["cniVersion"] == version
    if version in ("0.1.0", "0.2.0"):
        assert result["ip4"] == {"ip": "127.0.0.1/8"}
        assert result["ip6"] == {"ip": "::1/128"}
    else:
        assert result["interfaces"] == [
            {"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": netns}
        ]
        addresses = [ip["address"] for ip in result["ips"]]
        assert addresses == ["127.0.0.1/8", "::1/128"]
        assert all(ip["interface"] == 0 for ip in result["ips"])
        assert all(("version" in ip) == version.startswith("0.") for ip in result["ips"])


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_prev_result_passes_through(loopback: Path, netns: str, version: str) -> None:
    prev = {
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": "0a:00:00:00:00:01", "sandbox": netns}],
        "ips": [{"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.96.0.10"]},
    }
    if version.startswith("0."):
        prev["ips"][0]["version"] = "4"  # type: ignore[index]
    proc = run_plugin(loopback, "ADD", conf(version, prevResult=prev), env=env(netns))
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout) == prev


def test_check_then_del_then_check_fails(loopback: Path, netns: str) -> None:
    assert run_plugin(loopback, "ADD", conf("1.1.0"), env=env(netns)).returncode == 0
    check = run_plugin(loopback, "CHECK", conf("1.1.0"), env=env(netns))
    assert (check.returncode, check.stdout) == (0, b"")
    delete = run_plugin(loopback, "DEL", conf("1.1.0"), env=env(netns))
    assert (delete.returncode, delete.stdout) == (0, b"")
    assert not lo_is_up(netns)
    again = run_plugin(loopback, "DEL", conf("1.1.0"), env=env(netns))
    assert again.returncode == 0
    failed = run_plugin(loopback, "CHECK", conf("1.1.0"), env=env(netns))
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["msg"] == "loopback interface is down"


def test_del_succeeds_when_netns_is_gone_or_empty(loopback: Path, tmp_path: Path) -> None:
    gone = run_plugin(loopback, "DEL", conf("1.0.0"), env=env(str(tmp_path / "no-such-ns")))
    assert (gone.returncode, gone.stdout) == (0, b"")
    empty = run_plugin(loopback, "DEL", conf("1.0.0"), env=env(""))
    assert (empty.returncode, empty.stdout) == (0, b"")


def test_own_namespace_is_refused(loopback: Path, make_netns: Callable[[], str]) -> None:
    # Run inside a throwaway "node" namespace; /proc/self/ns/net then names it.
    node = make_netns()
    node_name = Path(node).name
    proc = run_plugin(
        loopback, "DEL", conf("1.0.0"), env=env("/proc/self/ns/net"), netns_exec=node_name
    )
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 8 and "own network namespace" in err["msg"]
    assert lo_is_up(node)


def test_not_a_namespace(loopback: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "file"
    bogus.write_text("x")
    proc = run_plugin(loopback, "ADD", conf("1.0.0"), env=env(str(bogus)))
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 8 and "not a network namespace" in err["msg"]


def test_non_loopback_address_on_lo_is_an_error(loopback: Path, netns: str) -> None:
    name = Path(netns).name
    subprocess.run(["ip", "-n", name, "addr", "add", "192.0.2.1/32", "dev", "lo"], check=True)
    proc = run_plugin(loopback, "ADD", conf("1.0.0"), env=env(netns))
    assert proc.returncode == 1
    assert "non-loopback address '192.0.2.1/32'" in json.loads(proc.stdout)["msg"]
