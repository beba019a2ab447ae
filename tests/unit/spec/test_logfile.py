"""The per-invocation log (spec.logfile) through skel: lines, levels, rotation,
concurrency, and paths that must never break an invocation."""

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
from cni_plugins.spec import logfile, skel
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.errors import InvalidConfig
from cni_plugins.spec.types import IPConfig, Result

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "ctr1",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
    "CNI_ARGS": "K8S_POD_NAME=web",
}


def _add(args: CmdArgs) -> Result:
    if args.config.get("fail"):
        raise InvalidConfig("fail requested", "details here")
    if args.config.get("crash"):
        raise RuntimeError("boom")
    return Result(ips=[IPConfig(ipa.ip_interface("10.0.0.2/24"), ipa.ip_address("10.0.0.1"))])


def _nothing(args: CmdArgs) -> None:
    pass


PLUGIN = skel.Plugin("fake", add=_add, delete=_nothing, check=_nothing)


def invoke(config: dict[str, Any], **env: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.BytesIO(json.dumps({"cniVersion": "1.0.0", "name": "net", **config}).encode())
    code = skel.run(PLUGIN, environ={**ENV, **env}, stdin=stdin, stdout=out, stderr=err)
    return code, json.loads(out.getvalue() or "{}"), err.getvalue()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_skel_and_logfile_agree_on_the_marker() -> None:
    assert skel._LOG_MARKER == logfile.MARKER == logfile.FIELDS.fields[0].lower().encode()


def test_add_logs_one_line_with_the_addresses(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    code, reply, err = invoke({"logFile": str(log)})
    assert (code, err) == (0, "")
    assert reply["ips"][0]["address"] == "10.0.0.2/24"
    [entry] = lines(log)
    assert entry["plugin"] == "fake" and entry["verb"] == "ADD" and entry["level"] == "info"
    where = (entry["containerID"], entry["netns"], entry["ifname"])
    assert where == ("ctr1", "/run/netns/x", "eth0")
    assert entry["addresses"] == ["10.0.0.2/24"]
    assert isinstance(entry["durationMs"], float) and entry["durationMs"] >= 0
    assert entry["time"].endswith("Z") and entry["time"][10] == "T"
    assert "config" not in entry and "code" not in entry


def test_keys_match_as_go_does_and_del_logs_without_addresses(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    assert invoke({"LOGFILE": str(log), "LogLevel": "INFO"}, CNI_COMMAND="DEL")[0] == 0
    [entry] = lines(log)
    assert entry["verb"] == "DEL" and "addresses" not in entry


def test_failure_logs_code_message_and_details(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    code, reply, _ = invoke({"logFile": str(log), "fail": True})
    assert (code, reply["code"]) == (1, 7)
    [entry] = lines(log)
    assert (entry["level"], entry["code"], entry["msg"]) == ("error", 7, "fail requested")
    assert entry["details"] == "details here" and "addresses" not in entry


def test_crash_is_logged_as_code_999(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    assert invoke({"logFile": str(log), "crash": True})[0] == 1
    [entry] = lines(log)
    assert (entry["code"], entry["msg"]) == (999, "RuntimeError: boom")


def test_failure_before_the_config_is_parsed_is_logged(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    code, reply, _ = invoke({"logFile": str(log)}, CNI_IFNAME="")
    assert (code, reply["code"]) == (1, 4)
    [entry] = lines(log)
    assert entry["code"] == 4 and "CNI_IFNAME" in entry["msg"]


def test_level_error_logs_only_failures(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    assert invoke({"logFile": str(log), "logLevel": "error"})[0] == 0
    assert not log.exists()
    assert invoke({"logFile": str(log), "logLevel": "error", "fail": True})[0] == 1
    assert [e["code"] for e in lines(log)] == [7]


def test_level_debug_adds_cni_args_and_config(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    invoke({"logFile": str(log), "logLevel": "debug", "extra": [1, 2]})
    [entry] = lines(log)
    assert entry["cniArgs"] == "K8S_POD_NAME=web"
    assert entry["config"]["extra"] == [1, 2] and entry["config"]["logFile"] == str(log)


def test_unknown_level_warns_and_logs_at_info(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    code, _, err = invoke({"logFile": str(log), "logLevel": "loud"})
    assert code == 0 and "logLevel 'loud'" in err
    assert len(lines(log)) == 1


@pytest.mark.parametrize("path", ["relative/cni.log", "/tmp/a\nb.log", "/tmp/a\x1b.log", 42])
def test_unusable_paths_are_ignored_with_a_warning(path: object) -> None:
    code, reply, err = invoke({"logFile": path})
    assert code == 0 and reply["ips"]
    assert err.count("\n") == 1 and "logFile must be an absolute path" in err


def test_a_log_that_cannot_be_written_never_fails_the_operation(tmp_path: Path) -> None:
    for path in (tmp_path / "missing" / "cni.log", tmp_path):  # no directory; a directory
        code, reply, err = invoke({"logFile": str(path)})
        assert code == 0 and reply["ips"][0]["address"] == "10.0.0.2/24"
        assert err.count("\n") == 1 and "cannot write logFile" in err
    code, reply, err = invoke({"logFile": str(tmp_path / "missing.log"), "fail": True})
    assert (code, reply["code"]) == (1, 7)  # the plugin's own error, not the log's


def test_a_bad_level_and_a_bad_path_cost_one_stderr_line(tmp_path: Path) -> None:
    code, _, err = invoke({"logFile": str(tmp_path / "no" / "log"), "logLevel": 3})
    assert code == 0 and err.count("\n") == 1
    assert "logLevel 3" in err and "cannot write logFile" in err


def test_a_symlinked_log_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("precious\n")
    link = tmp_path / "cni.log"
    link.symlink_to(target)
    code, _, err = invoke({"logFile": str(link)})
    assert code == 0 and "cannot write logFile" in err
    assert target.read_text() == "precious\n"


def test_a_fifo_is_not_a_log(tmp_path: Path) -> None:
    fifo = tmp_path / "cni.log"
    os.mkfifo(fifo)
    code, _, err = invoke({"logFile": str(fifo)})  # must not block without a reader
    assert code == 0 and "cannot write logFile" in err


def test_no_log_file_loads_nothing_of_the_log() -> None:
    code = (
        "import io, sys\n"
        "from cni_plugins.spec import skel\n"
        "from cni_plugins.spec.types import Result\n"
        "PLUGIN = skel.Plugin('p', add=lambda a: Result(), delete=print, check=print)\n"
        f"ENV = {ENV!r}\n"
        "out = io.StringIO()\n"
        'stdin = io.BytesIO(b\'{"cniVersion": "1.0.0", "name": "net"}\')\n'
        "assert skel.run(PLUGIN, environ=ENV, stdin=stdin, stdout=out, stderr=sys.stderr) == 0\n"
        "print('cni_plugins.spec.logfile' in sys.modules, 'fcntl' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_rotation_keeps_one_older_generation(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    for i in range(5):
        logfile.append(str(log), f"line {i}\n".encode(), max_bytes=14)
    # Two 7-byte lines fit; the third rotates: 0 1 | 2 3 | 4, and ".1" is 2 3.
    assert log.read_text() == "line 4\n"
    assert (tmp_path / "cni.log.1").read_text() == "line 2\nline 3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cni.log", "cni.log.1"]


def _fork_all(count: int, child: Any) -> None:
    pids = []
    for i in range(count):
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                child(i)
            except BaseException:  # noqa: BLE001 - report through the exit status
                status = 1
            os._exit(status)
        pids.append(pid)
    assert [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids] == [0] * count


def test_fifty_concurrent_invocations_lose_and_interleave_nothing(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"

    def child(i: int) -> None:
        code, _, err = invoke({"logFile": str(log), "pad": "x" * 2000}, CNI_CONTAINERID=f"c{i}")
        assert (code, err) == (0, "")

    _fork_all(50, child)
    entries = lines(log)  # every line parses: none torn or interleaved
    assert sorted(e["containerID"] for e in entries) == sorted(f"c{i}" for i in range(50))


def test_fifty_concurrent_writers_across_a_rotation_keep_every_line(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    line = b"%02d" + b"y" * 97 + b"\n"  # 100 bytes
    _fork_all(50, lambda i: logfile.append(str(log), line % i, max_bytes=3000))
    # 5000 bytes against a cap of 3000: exactly one rotation, nothing dropped.
    text = (tmp_path / "cni.log.1").read_bytes() + log.read_bytes()
    rows = text.splitlines()
    assert all(len(r) == 99 and r.endswith(b"y" * 97) for r in rows)
    assert sorted(int(r[:2]) for r in rows) == list(range(50))
    assert len((tmp_path / "cni.log.1").read_bytes()) == 3000


def test_last_failures_reads_both_generations_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    assert logfile.last_failures(str(log)) == []
    for i in range(4):
        invoke({"logFile": str(log), "fail": True}, CNI_CONTAINERID=f"old{i}")
    log.rename(tmp_path / "cni.log.1")
    invoke({"logFile": str(log)})
    with log.open("a") as f:
        f.write('not json\n{"level": "error"\n')
    invoke({"logFile": str(log), "fail": True}, CNI_CONTAINERID="new")
    got = logfile.last_failures(str(log), 3)
    assert [e["containerID"] for e in got] == ["old2", "old3", "new"]
    assert all(e["code"] == 7 for e in got)
    assert len(logfile.last_failures(str(log), 100)) == 5
