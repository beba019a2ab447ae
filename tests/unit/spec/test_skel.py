"""skel dispatch with injected environ/stdin/stdout: codes, messages, shapes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.spec import ip as ipa
from cni_plugins.spec import skel
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.errors import InvalidConfig
from cni_plugins.spec.types import IPConfig, Result
from cni_plugins.spec.version import SUPPORTED_VERSIONS

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "ctr1",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, CmdArgs]] = []

    def add(self, args: CmdArgs) -> Result:
        self.calls.append(("ADD", args))
        if args.config.get("fail"):
            raise InvalidConfig("fail requested", "details here")
        if args.config.get("crash"):
            raise RuntimeError("boom")
        return Result(ips=[IPConfig(ipa.ip_interface("10.0.0.2/24"), ipa.ip_address("10.0.0.1"))])

    def handler(self, name: str) -> Any:
        def record(args: CmdArgs) -> None:
            self.calls.append((name, args))

        return record

    def plugin(self) -> skel.Plugin:
        return skel.Plugin(
            "fake",
            add=self.add,
            delete=self.handler("DEL"),
            check=self.handler("CHECK"),
            status=self.handler("STATUS"),
            gc=self.handler("GC"),
            version="9.9",
        )


def invoke(
    env: dict[str, str], stdin: bytes | str, plugin: skel.Plugin | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    data = stdin.encode() if isinstance(stdin, str) else stdin
    code = skel.run(
        plugin or Recorder().plugin(),
        environ=env,
        stdin=io.BytesIO(data),
        stdout=out,
        stderr=err,
    )
    return code, out.getvalue(), err.getvalue()


def conf(version: str | None = "1.1.0", **extra: object) -> str:
    c: dict[str, object] = {"name": "net", "type": "fake", **extra}
    if version is not None:
        c["cniVersion"] = version
    return json.dumps(c)


def env(**overrides: str | None) -> dict[str, str]:
    e = dict(ENV)
    for k, v in overrides.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def error_of(out: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(out)
    assert isinstance(obj["code"], int) and isinstance(obj["msg"], str)
    return obj


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_prints_result_in_request_version(version: str) -> None:
    code, out, err = invoke(env(), conf(version))
    assert code == 0 and err == ""
    result = json.loads(out)
    assert result["cniVersion"] == version
    if version in ("0.1.0", "0.2.0"):
        assert result["ip4"] == {"ip": "10.0.0.2/24", "gateway": "10.0.0.1"}
    elif version.startswith("0."):
        assert result["ips"] == [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"}]
    else:
        assert result["ips"] == [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}]


def test_missing_cni_version_is_legacy_format() -> None:
    code, out, _ = invoke(env(), conf(None))
    assert code == 0
    assert json.loads(out) == {
        "cniVersion": "0.1.0",
        "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1"},
    }


def test_no_command_prints_about_on_stderr() -> None:
    code, out, err = invoke({}, "")
    assert (code, out) == (0, "")
    assert "CNI fake plugin 9.9" in err and "1.1.0" in err


@pytest.mark.parametrize("stdin", ["", '{"cniVersion":"0.3.1"}', "garbage"])
def test_version(stdin: str) -> None:
    code, out, _ = invoke({"CNI_COMMAND": "VERSION"}, stdin)
    assert code == 0
    reply = json.loads(out)
    assert reply["supportedVersions"] == list(SUPPORTED_VERSIONS)
    assert reply["cniVersion"] == ("0.3.1" if "0.3.1" in stdin else "1.1.0")


def test_unknown_command_is_code_4() -> None:
    code, out, _ = invoke(env(CNI_COMMAND="FROB"), conf())
    assert code == 1
    assert error_of(out)["code"] == 4 and "FROB" in error_of(out)["msg"]


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("ADD", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        ("CHECK", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        ("DEL", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]),
        ("GC", ["CNI_PATH"]),
    ],
)
def test_all_missing_variables_named_in_one_error(command: str, missing: list[str]) -> None:
    code, out, _ = invoke({"CNI_COMMAND": command}, conf())
    assert code == 1
    err = error_of(out)
    assert err["code"] == 4
    assert err["msg"] == f"required env variables [{','.join(missing)}] missing"


def test_status_needs_no_attachment_variables() -> None:
    rec = Recorder()
    code, out, _ = invoke({"CNI_COMMAND": "STATUS"}, conf(), rec.plugin())
    assert (code, out) == (0, "")
    assert [c for c, _ in rec.calls] == ["STATUS"]


def test_empty_container_id_counts_as_missing() -> None:
    _, out, _ = invoke(env(CNI_CONTAINERID=""), conf())
    assert "CNI_CONTAINERID" in error_of(out)["msg"]


@pytest.mark.parametrize("cid", ["-abc", "a/b", "a b", "a;b", "../x", "x" * 256])
def test_bad_container_id(cid: str) -> None:
    _, out, _ = invoke(env(CNI_CONTAINERID=cid), conf())
    assert error_of(out)["code"] == 4
    assert "containerID" in error_of(out)["msg"]


@pytest.mark.parametrize("ifname", ["a" * 16, ".", "..", "et/h0", "eth:0", "eth 0", "eth\t0"])
def test_bad_ifname(ifname: str) -> None:
    _, out, _ = invoke(env(CNI_IFNAME=ifname), conf())
    err = error_of(out)
    assert err["code"] == 4 and "CNI_IFNAME" in err["msg"]


@pytest.mark.parametrize(
    ("stdin", "code", "msg"),
    [
        ("{not json", 6, "error decoding network config"),
        ("[1, 2]", 6, "error decoding network config"),
        ('{"cniVersion": 1, "name": "n"}', 6, "cniVersion must be a string"),
        ('{"cniVersion": "one", "name": "n"}', 6, "invalid version"),
        ('{"cniVersion": "9.9.9", "name": "n"}', 1, "incompatible CNI versions"),
        ('{"cniVersion": "1.0.0"}', 7, "missing network name"),
        ('{"cniVersion": "1.0.0", "name": "../x"}', 7, "invalid characters found in network name"),
        ('{"cniVersion": "1.0.0", "name": "a/b"}', 7, "invalid characters found in network name"),
        ('{"cniVersion": "1.0.0", "name": 5}', 7, "network name must be a string"),
        ('{"cniVersion": "1.0.0", "name": "n", "prevResult": {"ips": 3}}', 7, "prevResult.ips"),
    ],
)
def test_bad_config(stdin: str, code: int, msg: str) -> None:
    rec = Recorder()
    rc, out, _ = invoke(env(), stdin, rec.plugin())
    assert rc == 1
    err = error_of(out)
    assert err["code"] == code and msg in err["msg"]
    assert rec.calls == []


def test_unsupported_version_lists_supported() -> None:
    _, out, _ = invoke(env(), '{"cniVersion": "9.9.9", "name": "n"}')
    assert "0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0" in error_of(out)["details"]


@pytest.mark.parametrize(
    ("command", "version"),
    [("CHECK", "0.3.1"), ("CHECK", "0.2.0"), ("STATUS", "1.0.0"), ("GC", "0.4.0")],
)
def test_verbs_gated_by_version(command: str, version: str) -> None:
    rec = Recorder()
    rc, out, _ = invoke(env(CNI_COMMAND=command), conf(version), rec.plugin())
    assert rc == 1
    err = error_of(out)
    assert err["code"] == 1 and err["msg"] == f"config version does not allow {command}"
    assert rec.calls == []


@pytest.mark.parametrize("command", ["DEL", "CHECK", "STATUS", "GC"])
def test_non_add_verbs_print_nothing(command: str) -> None:
    rec = Recorder()
    rc, out, _ = invoke(env(CNI_COMMAND=command), conf("1.1.0"), rec.plugin())
    assert (rc, out) == (0, "")
    assert rec.calls[0][0] == command


def test_missing_status_and_gc_handlers_succeed() -> None:
    rec = Recorder()
    plugin = skel.Plugin("p", add=rec.add, delete=rec.handler("DEL"), check=rec.handler("CHECK"))
    for command in ("STATUS", "GC"):
        assert invoke(env(CNI_COMMAND=command), conf(), plugin)[:2] == (0, "")


def test_cni_error_shape_carries_version() -> None:
    rc, out, err = invoke(env(), conf("1.0.0", fail=True))
    assert rc == 1 and err == ""
    assert json.loads(out) == {
        "cniVersion": "1.0.0",
        "code": 7,
        "msg": "fail requested",
        "details": "details here",
    }


def test_unexpected_exception_is_999_with_traceback_on_stderr_only() -> None:
    rc, out, err = invoke(env(), conf("1.0.0", crash=True))
    assert rc == 1
    obj = error_of(out)
    assert obj["code"] == 999 and "boom" in obj["msg"]
    assert "Traceback" not in out and "Traceback" in err


def test_handler_sees_parsed_invocation() -> None:
    rec = Recorder()
    prev = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.9.0.2/16"}]}
    invoke(
        env(CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=x", CNI_PATH="/a:/b"),
        conf("1.0.0", prevResult=prev),
        rec.plugin(),
    )
    _, args = rec.calls[0]
    assert args.container_id == "ctr1" and args.ifname == "eth0"
    assert args.path == ("/a", "/b")
    assert args.cni_version == "1.0.0" and args.name == "net"
    assert args.prev_result is not None
    assert str(args.prev_result.ips[0].address) == "10.9.0.2/16"
    assert args.parsed_cni_args(("IP",)) == {}


def test_oversized_stdin_refused() -> None:
    rc, out, _ = invoke(env(), b" " * (skel.MAX_STDIN + 10))
    assert rc == 1 and error_of(out)["code"] == 7


# ------------------------------------------------------------ process end


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Stream(io.StringIO):
    """A std stream that logs its flushes (and can fail them)."""

    def __init__(self, name: str, log: list[str], error: OSError | None = None) -> None:
        super().__init__()
        self.name, self.log, self.error = name, log, error

    def flush(self) -> None:
        self.log.append(f"flush {self.name}")
        if self.error is not None:
            raise self.error


def process_end(monkeypatch: pytest.MonkeyPatch, stdout_error: OSError | None = None) -> list[str]:
    """Log what happens at process end: flushes, then ``os._exit(code)`` (raises
    here).  Called in the test body: pytest's capture resets the std streams
    after fixtures ran."""
    log: list[str] = []

    def fake_exit(code: int) -> None:
        log.append(f"_exit {code}")
        raise _Exited(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(sys, "stdout", _Stream("stdout", log, stdout_error))
    monkeypatch.setattr(sys, "stderr", _Stream("stderr", log))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"{}")))
    return log


@pytest.mark.parametrize(("command", "code"), [("VERSION", 0), ("FROB", 1), (None, 0)])
def test_main_flushes_both_streams_then_exits_with_the_status(
    monkeypatch: pytest.MonkeyPatch, command: str | None, code: int
) -> None:
    exits = process_end(monkeypatch)
    monkeypatch.delenv("CNI_COMMAND", raising=False)
    if command is not None:
        monkeypatch.setenv("CNI_COMMAND", command)
    with pytest.raises(_Exited):
        skel.main(Recorder().plugin())
    assert exits[-3:] == ["flush stdout", "flush stderr", f"_exit {code}"]
    assert isinstance(sys.stdout, io.StringIO) and isinstance(sys.stderr, io.StringIO)
    if command is None:
        assert sys.stdout.getvalue() == "" and "CNI fake plugin 9.9" in sys.stderr.getvalue()
    elif command == "VERSION":
        assert json.loads(sys.stdout.getvalue())["cniVersion"] == "1.1.0"
    else:
        assert error_of(sys.stdout.getvalue())["code"] == 4


def test_a_failed_flush_exits_non_zero_the_ordinary_way(monkeypatch: pytest.MonkeyPatch) -> None:
    exits = process_end(monkeypatch, BrokenPipeError(32, "Broken pipe"))
    with pytest.raises(SystemExit) as raised:
        skel.exit_process(0)
    assert raised.value.code == 1
    assert exits == ["flush stdout"]


def test_no_module_registers_exit_handlers_or_threads() -> None:
    """``os._exit`` skips atexit handlers and the join of non-daemon threads:
    none may exist.  Every module of the package, in a fresh interpreter."""
    package = Path(skel.__file__).resolve().parents[1]
    modules = sorted(
        ".".join(p.relative_to(package.parent).with_suffix("").parts)
        for p in package.rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        f"import sys; sys.path.insert(0, {str(package.parent)!r})\n"
        f"import atexit, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(atexit._ncallbacks(), 'threading' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["0", "False"]


def test_netconf_keys_fold_like_go() -> None:
    """types.NetConf is a Go struct: "CNIVersion", "Name", "PrevResult" work, the
    plugin's own keys reach it as written, and result keys fold too."""
    rec = Recorder()
    stdin = json.dumps(
        {
            "CNIVersion": "1.0.0",
            "Name": "net",
            "Type": "fake",
            "IsGateway": True,
            "PrevResult": {
                "CNIVersion": "1.0.0",
                "Interfaces": [{"Name": "eth0", "Sandbox": "/run/netns/x"}],
                "IPs": [{"Address": "10.0.0.2/24", "Interface": 0}],
            },
        }
    )
    code, out, _ = invoke(env(CNI_COMMAND="CHECK"), stdin, rec.plugin())
    assert code == 0, out
    ((_, args),) = rec.calls
    assert args.cni_version == "1.0.0" and args.name == "net"
    assert args.config["IsGateway"] is True
    assert args.prev_result is not None
    assert args.prev_result.interfaces[0].name == "eth0"
    assert str(args.prev_result.ips[0].address) == "10.0.0.2/24"


def test_prev_result_keys_decide_in_sorted_order() -> None:
    # Go re-marshals prevResult (a map) with sorted keys: "IPs" before "ips".
    rec = Recorder()
    prev = {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.0.0.1/24"}],
        "IPs": [{"address": "10.0.0.9/24"}],
    }
    code, out, _ = invoke(env(CNI_COMMAND="CHECK"), conf("1.0.0", prevResult=prev), rec.plugin())
    assert code == 0, out
    prev_result = rec.calls[0][1].prev_result
    assert prev_result is not None
    assert [str(ip.address) for ip in prev_result.ips] == ["10.0.0.1/24"]


def test_valid_attachments_fold() -> None:
    from cni_plugins.spec.args import valid_attachments

    rec = Recorder()
    stdin = conf(
        "1.1.0", **{"CNI.dev/Valid-Attachments": [{"ContainerID": "c1", "IfName": "eth0"}]}
    )
    code, out, _ = invoke(env(CNI_COMMAND="GC"), stdin, rec.plugin())
    assert code == 0, out
    assert valid_attachments(rec.calls[0][1].config) == {("c1", "eth0")}


def test_a_repeated_key_counts_where_it_last_occurs() -> None:
    # Go assigns the field at each key in turn: "name" (exact, last) decides,
    # though json.loads would keep the repeated "name" at its first position.
    rec = Recorder()
    stdin = '{"cniVersion": "1.0.0", "name": "x", "Name": "y", "name": "net", "type": "fake"}'
    code, out, _ = invoke(env(CNI_COMMAND="CHECK"), stdin, rec.plugin())
    assert code == 0, out
    assert rec.calls[0][1].name == "net"
