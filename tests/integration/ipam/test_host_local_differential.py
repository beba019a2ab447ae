"""Differential tests against Debian's Go host-local 1.1.1 (/usr/lib/cni, spec <= 1.0.0).

Both implementations share one state directory: what one reserves the other
finds (CHECK) and releases (DEL), and round robin continues across them.  For the
same config and container both print the same result in every version Go speaks.
Known, normalised difference: Go 1.1.1 prints ``"dns": {}``; we omit an empty
dns like current upstream.  Error codes differ by design (Go: 999 for all).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GO_PLUGINS, run_plugin

pytestmark = [pytest.mark.privileged, pytest.mark.reference]

GO = GO_PLUGINS / "host-local"
GO_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
NAME = "hl-diff"


def config(data_dir: Path, version: str = "1.0.0", **ipam: Any) -> str:
    section: dict[str, Any] = {
        "type": "host-local",
        "dataDir": str(data_dir),
        "ranges": [[{"subnet": "203.0.113.0/24"}], [{"subnet": "2001:db8:1::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "2001:db8::/32", "gw": "2001:db8:1::1"}],
    }
    section.update(ipam)
    return json.dumps({"cniVersion": version, "name": NAME, "type": "bridge", "ipam": section})


def env(netns: str, cid: str, ifname: str = "eth0") -> dict[str, str]:
    return {"CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": "/x"}


@pytest.fixture
def ours(script_bin_dir: Path) -> Path:
    return script_bin_dir / "host-local"


def ok(binary: Path, command: str, conf: str, netns: str, cid: str) -> Any:
    proc = run_plugin(binary, command, conf, env=env(netns, cid))
    assert proc.returncode == 0, (binary, command, proc.stdout, proc.stderr)
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def normalise(result: dict[str, Any]) -> dict[str, Any]:
    if result.get("dns") == {}:
        del result["dns"]
    return result


def files(data_dir: Path) -> dict[str, bytes]:
    d = data_dir / NAME
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d)) if n != "lock"}


@pytest.mark.parametrize("version", GO_VERSIONS)
def test_same_result_json_in_every_go_version(
    ours: Path, netns: str, tmp_path: Path, version: str
) -> None:
    go_dir, our_dir = tmp_path / "go", tmp_path / "ours"
    go_result = ok(GO, "ADD", config(go_dir, version), netns, "ctr-same")
    our_result = ok(ours, "ADD", config(our_dir, version), netns, "ctr-same")
    assert normalise(our_result) == normalise(go_result)
    assert files(our_dir) == files(go_dir)  # same names, same bytes


@pytest.mark.parametrize(("first", "second"), [("ours", "go"), ("go", "ours")])
def test_reservations_cross_over(
    ours: Path, netns: str, tmp_path: Path, first: str, second: str
) -> None:
    impl = {"ours": ours, "go": GO}
    conf = config(tmp_path, "0.4.0")
    added = ok(impl[first], "ADD", conf, netns, "ctr-x")
    # the other implementation's CHECK finds it (ours also compares prevResult)
    check_conf = json.loads(conf)
    check_conf["prevResult"] = added
    assert ok(impl[second], "CHECK", json.dumps(check_conf), netns, "ctr-x") is None
    # round robin continues across implementations
    other = ok(impl[second], "ADD", conf, netns, "ctr-y")
    assert other["ips"][0]["address"] == "203.0.113.3/24"
    # DEL by the other one removes the first one's files
    assert ok(impl[second], "DEL", conf, netns, "ctr-x") is None
    left = files(tmp_path)
    assert "203.0.113.2" not in left and "2001:db8:1::2" not in left
    assert left["203.0.113.3"] == b"ctr-y\r\neth0"
    # and the first one's CHECK now fails for the released container
    proc = run_plugin(impl[first], "CHECK", conf, env=env(netns, "ctr-x"))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["msg"] == (
        "host-local: Failed to find address added by container ctr-x"
    )


def test_legacy_cid_only_file_released_by_both(ours: Path, netns: str, tmp_path: Path) -> None:
    conf = config(tmp_path)
    ok(ours, "ADD", conf, netns, "warmup")  # creates the directory the Go way
    for n, binary in ((7, ours), (8, GO)):
        (tmp_path / NAME / f"203.0.113.{n}").write_bytes(b"legacy")
        ok(binary, "DEL", conf, netns, "legacy")
        assert not (tmp_path / NAME / f"203.0.113.{n}").exists()


def test_same_error_messages(ours: Path, netns: str, tmp_path: Path) -> None:
    """Where Go has a message we keep it; only the code differs (Go: 999)."""
    cases = [
        config(tmp_path, ranges=[[{"subnet": "10.0.0.5/24"}]]),
        config(tmp_path, ranges=[[{"subnet": "10.0.0.0/31"}]]),
        config(tmp_path, ranges=[[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}]]),
        config(tmp_path, ranges=[[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]),
        config(tmp_path, ranges=[[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]),
        config(tmp_path, ranges=[[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]),
        config(tmp_path, ranges=[]),
        config(tmp_path, ranges=[[]]),
        config(
            tmp_path, "0.2.0", ranges=[[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]
        ),
        json.dumps({"cniVersion": "1.0.0", "name": NAME}),
    ]
    for conf in cases:
        go = run_plugin(GO, "ADD", conf, env=env(netns, "c"))
        mine = run_plugin(ours, "ADD", conf, env=env(netns, "c"))
        assert go.returncode == mine.returncode == 1
        go_err, my_err = json.loads(go.stdout), json.loads(mine.stdout)
        assert (go_err["code"], my_err["code"]) == (999, 7)
        assert my_err["msg"] == go_err["msg"]


def test_exhaustion_and_duplicate_messages_match(ours: Path, netns: str, tmp_path: Path) -> None:
    for binary, sub in ((GO, "go"), (ours, "ours")):
        conf = config(tmp_path / sub, ranges=[[{"subnet": "10.0.0.0/30"}]])
        ok(binary, "ADD", conf, netns, "a")
    messages = {}
    for binary, sub in ((GO, "go"), (ours, "ours")):
        conf = config(tmp_path / sub, ranges=[[{"subnet": "10.0.0.0/30"}]])
        full = run_plugin(binary, "ADD", conf, env=env(netns, "b"))
        dup = run_plugin(binary, "ADD", conf, env=env(netns, "a"))
        messages[sub] = (json.loads(full.stdout)["msg"], json.loads(dup.stdout)["msg"])
    assert messages["ours"] == messages["go"]


def test_documented_differences(ours: Path, netns: str, tmp_path: Path) -> None:
    """Where we deliberately differ from Go 1.1.1 (see ipam/host_local/config.py)."""
    # Go 1.1.1 accepts a gateway outside the subnet; newer Go and we refuse it.
    conf = config(tmp_path / "gw", ranges=[[{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]])
    assert run_plugin(GO, "ADD", conf, env=env(netns, "c")).returncode == 0
    mine = run_plugin(ours, "ADD", conf, env=env(netns, "c"))
    assert json.loads(mine.stdout)["msg"] == (
        "invalid range set 0: gateway 10.0.1.1 not in network 10.0.0.0/24"
    )
    # Go hands out the network address when rangeStart includes it; we skip it.
    for binary, sub, expected in ((GO, "go", "10.0.0.0/24"), (ours, "ours", "10.0.0.2/24")):
        conf = config(
            tmp_path / sub, ranges=[[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.0"}]]
        )
        assert ok(binary, "ADD", conf, netns, "c")["ips"][0]["address"] == expected
