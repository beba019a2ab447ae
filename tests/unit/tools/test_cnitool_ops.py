"""cnitool's runtime arguments, result cache and verbs, with recording fake
plugins (tests/fakes/recorder.py) in a temp CNI_PATH and a temp cache."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.spec.convert import result_from_wire
from cni_plugins.tools.cnitool import conflist, runtime
from cni_plugins.tools.cnitool.cache import Cache
from cni_plugins.tools.cnitool.errors import ToolError
from cni_plugins.tools.cnitool.ops import Runner
from cni_plugins.tools.cnitool.runner import plugin_stdin
from tests.conftest import REPO
from tests.fakes.recorder import Recorder

# What Debian's libcni 1.1.2 (AddNetworkList through tests/reference/cnitool_ref.go)
# wrote for this list, netns "/run/netns/x", CNI_ARGS "K8S_POD_NAME=p;IgnoreUnknown=1",
# CAP_ARGS {"portMappings":[...],"bandwidth":{"x":1}} and the result below.
# Current libcni also writes "netns" after "networkName" (cachedInfo.NetNS).
GO_LIST = (
    b'{"cniVersion": "1.0.0", "name": "testnet", "plugins": [{"type": "fake", "zeta": 1,'
    b' "alpha": {"b": 2, "a": 1}}, {"type": "fake2", "capabilities": {"portMappings": true,'
    b' "bandwidth": false}}]}\n'
)
GO_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:02", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
    "dns": {"nameservers": ["10.96.0.10"]},
}
GO_CACHE_FILE = "testnet-cnitool-55e2cecc95014b0f7fc4-eth0"
GO_CACHE = (
    '{"kind":"cniCacheV1","containerId":"cnitool-55e2cecc95014b0f7fc4","config":"'
    + base64.b64encode(GO_LIST).decode()
    + '","ifName":"eth0","networkName":"testnet","cniArgs":[["K8S_POD_NAME","p"],'
    '["IgnoreUnknown","1"]],"capabilityArgs":{"bandwidth":{"x":1},"portMappings":'
    '[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},"result":{"cniVersion":"1.0.0",'
    '"dns":{"nameservers":["10.96.0.10"]},"interfaces":[{"mac":"0a:58:0a:f4:01:02",'
    '"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.244.1.2/24",'
    '"gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}]}}'
)
CAP_ARGS = (
    '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"x":1}}'
)


def go_runtime() -> runtime.RuntimeConf:
    env = {"CNI_ARGS": "K8S_POD_NAME=p;IgnoreUnknown=1", "CAP_ARGS": CAP_ARGS}
    return runtime.from_environ("/run/netns/x", env)


# --- runtime arguments


def test_container_id_is_upstreams_hash_of_the_absolute_netns_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime.container_id_for("/run/netns/x") == "cnitool-55e2cecc95014b0f7fc4"
    monkeypatch.chdir("/run")
    rt = runtime.from_environ("netns/../netns/x", {})
    assert (rt.netns, rt.container_id) == ("/run/netns/x", "cnitool-55e2cecc95014b0f7fc4")


def test_ifname_from_flag_then_environment_then_eth0() -> None:
    assert runtime.from_environ("/n", {}).ifname == "eth0"
    assert runtime.from_environ("/n", {"CNI_IFNAME": ""}).ifname == "eth0"
    assert runtime.from_environ("/n", {"CNI_IFNAME": "net1"}).ifname == "net1"
    assert runtime.from_environ("/n", {"CNI_IFNAME": "net1"}, "net2").ifname == "net2"


def test_cni_args_and_cap_args_are_parsed_as_upstream_does() -> None:
    rt = go_runtime()
    assert rt.cni_args == [("K8S_POD_NAME", "p"), ("IgnoreUnknown", "1")]
    assert rt.cni_args_string() == "K8S_POD_NAME=p;IgnoreUnknown=1"
    assert set(rt.capability_args) == {"portMappings", "bandwidth"}
    for bad in ("A=1;B", "A=1=2", "=1", "A="):
        with pytest.raises(ToolError, match=r"^invalid CNI_ARGS pair"):
            runtime.from_environ("/n", {"CNI_ARGS": bad})
    with pytest.raises(ToolError, match=r"^CAP_ARGS: "):
        runtime.from_environ("/n", {"CAP_ARGS": "{nope"})
    with pytest.raises(ToolError, match="must be a JSON object"):
        runtime.from_environ("/n", {"CAP_ARGS": "[1]"})


def test_runtime_config_carries_only_the_capabilities_a_plugin_declares() -> None:
    network = conflist.list_from_bytes(GO_LIST)
    rt = go_runtime()
    first, second = (
        json.loads(plugin_stdin(p, "testnet", "1.0.0", None, rt)) for p in network.plugins
    )
    assert "runtimeConfig" not in first
    assert second["runtimeConfig"] == {"portMappings": rt.capability_args["portMappings"]}
    assert (second["name"], second["cniVersion"]) == ("testnet", "1.0.0")


# --- cache


def test_the_cache_file_is_byte_for_byte_libcnis(tmp_path: Path) -> None:
    result = result_from_wire(GO_RESULT, "1.0.0")
    Cache(str(tmp_path)).add(result, "1.0.0", GO_LIST, "testnet", go_runtime())
    path = tmp_path / "results" / GO_CACHE_FILE
    expected = GO_CACHE.replace(
        '"networkName":"testnet",', '"networkName":"testnet","netns":"/run/netns/x",'
    )
    assert path.read_text() == expected
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_libcni_cache_file_is_read_converted_to_the_lists_version(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / GO_CACHE_FILE).write_text(GO_CACHE)
    cache = Cache(str(tmp_path))
    assert cache.result("testnet", "1.0.0", go_runtime()) == GO_RESULT
    older = cache.result("testnet", "0.4.0", go_runtime())
    assert older is not None and older["ips"][0]["version"] == "4"
    ((name, attachment),) = cache.attachments()
    assert name == "testnet"
    assert (attachment.container_id, attachment.ifname) == ("cnitool-55e2cecc95014b0f7fc4", "eth0")
    assert attachment.cni_args == [("K8S_POD_NAME", "p"), ("IgnoreUnknown", "1")]
    assert attachment.netns == ""  # libcni 1.1.2 did not record it
    cache.delete("testnet", go_runtime())
    assert cache.result("testnet", "1.0.0", go_runtime()) is None
    assert cache.attachments() == []


def test_a_bare_result_file_is_the_legacy_cache_format(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / GO_CACHE_FILE).write_text(json.dumps(GO_RESULT))
    assert Cache(str(tmp_path)).result("testnet", "1.0.0", go_runtime()) == GO_RESULT
    assert Cache(str(tmp_path)).attachments() == []  # not cniCacheV1: GC skips it


def test_a_result_the_lists_version_cannot_express_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    no_ip = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]}
    (tmp_path / "results" / GO_CACHE_FILE).write_text(json.dumps(no_ip))
    with pytest.raises(
        ToolError, match=r'^failed to convert cached result to config version "0.2.0"'
    ):
        Cache(str(tmp_path)).result("testnet", "0.2.0", go_runtime())


# --- verbs, with recording plugins


class Setup:
    def __init__(self, tmp_path: Path, *types: str, version: str = "1.0.0", **extra: Any) -> None:
        self.recorder = Recorder(tmp_path / "rec", types)
        plugins = [{"type": t, "capabilities": {"portMappings": True}} for t in types]
        raw = {"cniVersion": version, "name": "net", "plugins": plugins, **extra}
        self.network = conflist.list_from_bytes(json.dumps(raw).encode())
        self.cache = Cache(str(tmp_path / "cache"))
        self.runner = Runner([str(self.recorder.bin)], self.cache)
        self.rt = runtime.from_environ("/run/netns/pod", {"CAP_ARGS": '{"portMappings": []}'})

    def stdins(self) -> list[dict[str, Any]]:
        return [json.loads(c["stdin"]) for c in self.recorder.calls()]


def test_add_chains_results_and_caches_the_last(tmp_path: Path) -> None:
    s = Setup(tmp_path, "first", "second")
    _, version = s.runner.add(s.network, s.rt)
    assert version == "1.0.0"
    first, second = s.recorder.calls()
    assert (first["name"], second["name"]) == ("first", "second")
    assert "prevResult" not in json.loads(first["stdin"])
    recorded = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.17.2/24", "gateway": "10.1.17.1"}]}
    assert json.loads(second["stdin"])["prevResult"] == recorded  # what "first" printed
    assert json.loads(second["stdin"])["runtimeConfig"] == {"portMappings": []}
    env = first["env"]
    assert env["CNI_COMMAND"] == "ADD"
    assert env["CNI_CONTAINERID"] == s.rt.container_id
    assert (env["CNI_NETNS"], env["CNI_IFNAME"], env["CNI_ARGS"]) == ("/run/netns/pod", "eth0", "")
    assert env["CNI_PATH"] == str(s.recorder.bin)
    assert s.cache.result("net", "1.0.0", s.rt) == recorded


def test_check_and_del_get_the_cached_result_and_del_runs_in_reverse(tmp_path: Path) -> None:
    s = Setup(tmp_path, "first", "second")
    s.runner.add(s.network, s.rt)
    cached = s.cache.result("net", "1.0.0", s.rt)
    s.runner.check(s.network, s.rt)
    s.runner.delete(s.network, s.rt)
    calls = s.recorder.calls()[2:]
    assert [(c["cmd"], c["name"]) for c in calls] == [
        ("CHECK", "first"),
        ("CHECK", "second"),
        ("DEL", "second"),
        ("DEL", "first"),
    ]
    assert all(json.loads(c["stdin"])["prevResult"] == cached for c in calls)
    assert s.cache.attachments() == []
    # DEL without a cache entry still runs, without prevResult
    s.runner.delete(s.network, s.rt)
    assert all("prevResult" not in json.loads(c["stdin"]) for c in s.recorder.calls()[6:])


def test_an_unreadable_cache_entry_is_dropped_by_del(tmp_path: Path) -> None:
    s = Setup(tmp_path, "only")
    s.runner.add(s.network, s.rt)
    path = s.cache.path("net", s.rt)
    Path(path).write_text("{broken")
    with pytest.raises(ToolError, match=r'^failed to get network "net" cached result'):
        s.runner.check(s.network, s.rt)
    s.runner.delete(s.network, s.rt)
    assert not os.path.exists(path)
    assert "prevResult" not in json.loads(s.recorder.calls()[-1]["stdin"])


def test_check_needs_config_040_and_honours_disable_check(tmp_path: Path) -> None:
    s = Setup(tmp_path, "only", version="0.3.1")
    with pytest.raises(
        ToolError, match=r'^configuration version "0.3.1" does not support the CHECK'
    ):
        s.runner.check(s.network, s.rt)
    s = Setup(tmp_path / "2", "only", disableCheck=True)
    s.runner.check(s.network, s.rt)
    assert s.recorder.calls() == []


def test_gc_deletes_every_cached_attachment_of_the_network_then_gcs(tmp_path: Path) -> None:
    s = Setup(tmp_path, "first", "second", version="1.1.0")
    other = runtime.from_environ("/run/netns/other", {"CNI_IFNAME": "net1"})
    s.runner.add(s.network, s.rt)
    s.runner.add(s.network, other)
    foreign = Setup(tmp_path / "foreign", "x")
    foreign.network.name = "foreign"
    foreign.runner.cache = s.cache
    foreign.runner.add(foreign.network, s.rt)
    start = len(s.recorder.calls())
    s.runner.gc(s.network)
    calls = s.recorder.calls()[start:]
    assert [(c["cmd"], c["name"], c["env"]["CNI_IFNAME"]) for c in calls] == [
        ("DEL", "second", "net1"),
        ("DEL", "first", "net1"),
        ("DEL", "second", "eth0"),
        ("DEL", "first", "eth0"),
        ("GC", "first", ""),
        ("GC", "second", ""),
    ]
    gc = json.loads(calls[-1]["stdin"])
    # cnitool names no attachment valid: libcni sends no list at all
    assert "cni.dev/valid-attachments" not in gc and "prevResult" not in gc
    assert (gc["name"], gc["cniVersion"]) == ("net", "1.1.0")
    assert [n for n, _ in s.cache.attachments()] == ["foreign"]


def test_gc_before_110_only_deletes_and_disable_gc_does_nothing(tmp_path: Path) -> None:
    s = Setup(tmp_path, "only")
    s.runner.add(s.network, s.rt)
    s.runner.gc(s.network)
    assert s.recorder.commands() == ["ADD", "DEL"]
    s = Setup(tmp_path / "2", "only", disableGC=True, version="1.1.0")
    s.runner.add(s.network, s.rt)
    s.runner.gc(s.network)
    assert s.recorder.commands() == ["ADD"]


def test_status_asks_each_plugin_from_110_on(tmp_path: Path) -> None:
    s = Setup(tmp_path, "first", "second", version="1.1.0")
    s.runner.status(s.network)
    assert [(c["cmd"], c["name"], c["env"]["CNI_CONTAINERID"]) for c in s.recorder.calls()] == [
        ("STATUS", "first", ""),
        ("STATUS", "second", ""),
    ]
    s.recorder.control(STATUS={"error": {"code": 50, "msg": "no subnet", "details": "yet"}})
    with pytest.raises(ToolError, match=r"^no subnet; yet$"):
        s.runner.status(s.network)
    s = Setup(tmp_path / "2", "only")
    s.runner.status(s.network)
    assert s.recorder.calls() == []


# --- errors


def test_a_plugin_error_is_wrapped_with_the_plugin_and_verb(tmp_path: Path) -> None:
    s = Setup(tmp_path, "first")
    s.recorder.control(
        ADD={"error": {"code": 7, "msg": "bad config", "details": "no subnet"}},
        DEL={"error": {"code": 11, "msg": "busy"}},
    )
    with pytest.raises(
        ToolError, match=r'^plugin type="first" failed \(add\): bad config; no subnet$'
    ):
        s.runner.add(s.network, s.rt)
    assert s.cache.attachments() == []
    with pytest.raises(ToolError, match=r'^plugin type="first" failed \(delete\): busy$'):
        s.runner.delete(s.network, s.rt)


def test_a_missing_plugin_fails_the_add_and_bad_names_are_refused(tmp_path: Path) -> None:
    s = Setup(tmp_path, "first", "nosuch")
    (s.recorder.bin / "nosuch").unlink()
    with pytest.raises(
        ToolError,
        match=rf'failed \(add\): failed to find plugin "nosuch" in path \[{s.recorder.bin}\]$',
    ):
        s.runner.add(s.network, s.rt)
    assert s.recorder.commands() == ["ADD"]  # the first plugin ran
    assert s.cache.attachments() == []
    s = Setup(tmp_path / "2", "first")
    long = runtime.from_environ("/n", {"CNI_IFNAME": "a-very-long-ifname"})
    with pytest.raises(
        ToolError, match="interface name is too long; interface name should be less than 16"
    ):
        s.runner.add(s.network, long)
    with pytest.raises(ToolError, match="no paths provided"):
        Runner([], s.cache).add(s.network, s.rt)
    assert s.recorder.calls() == []  # names are checked before the exec
    assert s.cache.attachments() == []


def test_a_plugin_without_a_cni_error_gets_libcnis_message(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mute").write_text("#!/bin/sh\nexit 3\n")
    (bin_dir / "talks").write_text("#!/bin/sh\necho oops >&2\nexit 2\n")
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    cache = Cache(str(tmp_path / "cache"))
    rt = runtime.from_environ("/n", {})
    for plugin, message in (
        ("mute", "netplugin failed with no error message: exit status 3"),
        ("talks", 'netplugin failed: "oops\\\\n": exit status 2'),
    ):
        network = conflist.list_from_bytes(
            json.dumps({"name": "n", "plugins": [{"type": plugin}]}).encode()
        )
        with pytest.raises(ToolError, match=message):
            Runner([str(bin_dir)], cache).add(network, rt)


# --- the command line (from source: the binary is tested in tests/integration/tools)


def cnitool(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); "
    code += "from cni_plugins.tools.cnitool.main import main; main()"
    return subprocess.run(
        [sys.executable, "-I", "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_command_line_prints_the_result_and_exits_like_upstream(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", ("only",))
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "10.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "only"}]})
    )
    env = {
        "NETCONFPATH": str(tmp_path / "net.d"),
        "CNI_PATH": str(recorder.bin),
        "CNITOOL_CACHE_DIR": str(tmp_path / "cache"),
    }
    added = cnitool("add", "net", "/run/netns/pod", "-i", "net0", env=env)
    assert (added.returncode, added.stderr) == (0, "")
    # Go's Result.Print: 4-space indent, no trailing newline
    assert added.stdout == json.dumps(json.loads(added.stdout), indent=4)
    assert recorder.calls()[0]["env"]["CNI_IFNAME"] == "net0"
    files = os.listdir(tmp_path / "cache" / "results")
    assert files == [f"net-{runtime.container_id_for('/run/netns/pod')}-net0"]
    deleted = cnitool("del", "net", "/run/netns/pod", "--ifname=net0", env=env)
    assert (deleted.returncode, deleted.stdout, deleted.stderr) == (0, "", "")
    assert os.listdir(tmp_path / "cache" / "results") == []
    missing = cnitool("add", "other", "/run/netns/pod", env=env)
    assert missing.returncode == 1
    assert missing.stderr == f'no net configuration with name "other" in {tmp_path / "net.d"}\n'
    for argv in (("add", "net"), ("frob", "net", "/n"), ()):
        usage = cnitool(*argv, env=env)
        assert usage.returncode == 1 and "usage" not in usage.stdout
        assert "add    <net> <netns>" in usage.stderr


def test_a_version_probe_without_arguments_is_answered_like_a_plugin(tmp_path: Path) -> None:
    """install-cni.sh checks every binary of the plugin directory this way."""
    proc = cnitool(env={"CNI_COMMAND": "VERSION"})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["cniVersion"] == "1.1.0"
    assert {"0.4.0", "1.0.0", "1.1.0"} <= set(info["supportedVersions"])
    # with arguments the environment's CNI_COMMAND means nothing to cnitool
    assert cnitool("frob", env={"CNI_COMMAND": "VERSION"}).returncode == 1
