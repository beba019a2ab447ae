"""Delegation: lookup in CNI_PATH, exec with env and stdin, error passthrough."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cni_plugins.spec import invoke
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.errors import CNIError, InternalError, InvalidConfig, InvalidEnvironment

# A delegate that records what it got and answers as $MODE says.
DELEGATE = """#!{python}
import json, os, sys
data = sys.stdin.buffer.read()
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps({{"cmd": os.environ["CNI_COMMAND"], "stdin": data.decode(),
                        "env": dict(os.environ)}}) + "\\n")
mode = os.environ.get("MODE", "ok")
if mode == "error":
    print(json.dumps({{"code": 11, "msg": "busy", "details": "try later"}}))
    sys.exit(1)
if mode == "garbage":
    print("not json")
    sys.exit(2)
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps({{"cniVersion": "0.3.1",
                      "ips": [{{"version": "4", "address": "10.1.0.7/16"}}]}}))
"""


def make_delegate(directory: Path, name: str = "ipam") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(DELEGATE.format(python=sys.executable))
    path.chmod(0o755)
    return path


def cmd_args(tmp_path: Path, paths: tuple[str, ...], mode: str = "ok") -> CmdArgs:
    environ = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_PATH": ":".join(paths),
        "RECORD": str(tmp_path / "record"),
        "MODE": mode,
        "_PYI_ARCHIVE_FILE": "/tmp/x",
    }
    return CmdArgs(
        command="ADD",
        config={"name": "n", "cniVersion": "1.0.0"},
        cni_version="1.0.0",
        path=paths,
        environ=environ,
    )


def records(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "record").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_first_match_in_path_wins(tmp_path: Path) -> None:
    first = make_delegate(tmp_path / "a")
    make_delegate(tmp_path / "b")
    paths = (str(tmp_path / "missing"), str(tmp_path / "a"), str(tmp_path / "b"))
    assert invoke.find_plugin("ipam", paths) == str(first)


def test_directories_and_non_executables_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "a" / "ipam").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ipam").write_text("x")
    real = make_delegate(tmp_path / "c")
    paths = tuple(str(tmp_path / d) for d in "abc")
    assert invoke.find_plugin("ipam", paths) == str(real)


@pytest.mark.parametrize("name", ["", "../ipam", "a/b", "..", "."])
def test_type_with_path_separator_is_config_error(name: str) -> None:
    with pytest.raises(InvalidConfig):
        invoke.find_plugin(name, ("/usr/lib/cni",))


def test_missing_plugin_names_plugin_and_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        invoke.find_plugin("bridge", (str(tmp_path), "/nonexistent"))
    assert info.value.msg == f'failed to find plugin "bridge" in path [{tmp_path} /nonexistent]'


def test_add_passes_stdin_and_env_and_parses_result(tmp_path: Path) -> None:
    make_delegate(tmp_path / "bin")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),))
    stdin = b'{"cniVersion":"1.0.0","name":"n","ipam":{"type":"ipam"}}'
    result = invoke.delegate_add("ipam", stdin, args)
    assert [str(ip.address) for ip in result.ips] == ["10.1.0.7/16"]
    (rec,) = records(tmp_path)
    assert rec["cmd"] == "ADD" and rec["stdin"] == stdin.decode()
    env = rec["env"]
    assert isinstance(env, dict)
    assert env["CNI_CONTAINERID"] == "c1"
    assert "_PYI_ARCHIVE_FILE" not in env


@pytest.mark.parametrize("command", ["DEL", "CHECK", "STATUS", "GC"])
def test_other_verbs_override_only_the_command(tmp_path: Path, command: str) -> None:
    make_delegate(tmp_path / "bin")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),))
    assert invoke.delegate(command, "ipam", b"{}", args) is None
    (rec,) = records(tmp_path)
    assert rec["cmd"] == command


def test_delegate_error_keeps_its_code(tmp_path: Path) -> None:
    make_delegate(tmp_path / "bin")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),), mode="error")
    with pytest.raises(CNIError) as info:
        invoke.delegate_add("ipam", b"{}", args)
    assert (info.value.code, info.value.msg, info.value.details) == (11, "busy", "try later")


def test_delegate_garbage_becomes_internal_error(tmp_path: Path) -> None:
    make_delegate(tmp_path / "bin")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),), mode="garbage")
    with pytest.raises(InternalError, match="exit status 2"):
        invoke.delegate_del("ipam", b"{}", args)


def test_large_stdin_does_not_deadlock(tmp_path: Path) -> None:
    make_delegate(tmp_path / "bin")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),))
    big = json.dumps({"name": "n", "pad": "x" * 300_000}).encode()
    invoke.delegate_del("ipam", big, args)
    assert records(tmp_path)[0]["stdin"] == big.decode()


def test_clean_environ_when_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    env = invoke.clean_environ(
        {
            "LD_LIBRARY_PATH": "/tmp/_MEI123",
            "LD_LIBRARY_PATH_ORIG": "/usr/local/lib",
            "_PYI_APPLICATION_HOME_DIR": "/tmp/_MEI123",
            "_MEIPASS2": "/tmp/_MEI123",
            "CNI_COMMAND": "ADD",
        }
    )
    assert env == {"LD_LIBRARY_PATH": "/usr/local/lib", "CNI_COMMAND": "ADD"}


def test_clean_environ_gives_back_the_loader_variables_the_launcher_moved_aside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    env = invoke.clean_environ(
        {
            "LD_LIBRARY_PATH": "/cache/id/_internal",
            "_CNI_HOST_LD_PRELOAD": "/usr/lib/agent.so",
            "_CNI_HOST_LD_AUDIT": "",
            "CNI_COMMAND": "DEL",
        }
    )
    assert env == {"LD_PRELOAD": "/usr/lib/agent.so", "LD_AUDIT": "", "CNI_COMMAND": "DEL"}


def test_clean_environ_from_source_leaves_loader_variables_alone() -> None:
    env = {"LD_PRELOAD": "/x.so", "LD_LIBRARY_PATH": "/lib/extra", "CNI_COMMAND": "ADD"}
    assert invoke.clean_environ(env) == env


def test_in_process_runner_gets_the_same_env_and_stdin(tmp_path: Path) -> None:
    path = make_delegate(tmp_path / "bin")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),))
    seen: list[tuple[bytes, dict[str, str]]] = []

    def runner(stdin: bytes, environ: object) -> tuple[int, bytes]:
        assert isinstance(environ, dict)
        seen.append((stdin, environ))
        return 0, b'{"cniVersion": "1.0.0", "ips": [{"address": "10.9.0.3/16"}]}'

    invoke.set_in_process_resolver(lambda p: runner if p == str(path) else None)
    try:
        result = invoke.delegate_add("ipam", b'{"x": 1}', args)
    finally:
        invoke._in_process_resolver = None
    assert [str(ip.address) for ip in result.ips] == ["10.9.0.3/16"]
    ((stdin, env),) = seen
    assert stdin == b'{"x": 1}'
    assert env == {**args.environ, "CNI_COMMAND": "ADD"}
    assert not (tmp_path / "record").exists()  # nothing was exec'd


def test_in_process_errors_pass_through_like_exec(tmp_path: Path) -> None:
    make_delegate(tmp_path / "bin")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),))
    invoke.set_in_process_resolver(lambda p: lambda s, e: (1, b'{"code": 11, "msg": "later"}'))
    try:
        with pytest.raises(CNIError) as info:
            invoke.delegate_del("ipam", b"{}", args)
    finally:
        invoke._in_process_resolver = None
    assert (info.value.code, info.value.msg) == (11, "later")


def test_a_plugin_cannot_delegate_to_itself(tmp_path: Path) -> None:
    make_delegate(tmp_path / "bin", "flannel")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),))
    args.plugin = "flannel"
    with pytest.raises(InvalidConfig, match="cannot delegate to itself"):
        invoke.delegate_add("flannel", b"{}", args)
    assert not (tmp_path / "record").exists()


def test_in_process_delegation_loops_are_cut(tmp_path: Path) -> None:
    make_delegate(tmp_path / "bin", "a")
    args = cmd_args(tmp_path, (str(tmp_path / "bin"),))
    depth: list[int] = []

    def runner(stdin: bytes, environ: object) -> tuple[int, bytes]:
        depth.append(len(depth))
        invoke.delegate_del("a", stdin, args)  # the "delegate" delegates again
        return 0, b""

    invoke.set_in_process_resolver(lambda p: runner)
    try:
        with pytest.raises(InvalidConfig, match="nested more than 8 deep"):
            invoke.delegate_del("a", b"{}", args)
    finally:
        invoke._in_process_resolver = None
    assert len(depth) == 8 and invoke._in_process_depth == 0
