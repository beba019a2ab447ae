"""CNI_PLUGINS_TRACE=1: one parseable line per phase on stderr; nothing when off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cni_plugins.spec import trace

REPO = Path(__file__).resolve().parents[3]


def run_host_local(
    tmp_path: Path, command: str, *, traced: bool
) -> subprocess.CompletedProcess[str]:
    config = {
        "cniVersion": "1.0.0",
        "name": "tracenet",
        "type": "host-local",
        "ipam": {"type": "host-local", "subnet": "10.250.0.0/24", "dataDir": str(tmp_path)},
    }
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "tracecid",
        "CNI_NETNS": "/nonexistent/netns",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    if traced:
        env["CNI_PLUGINS_TRACE"] = "1"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from cni_plugins.plugins import host_local; host_local.main()"
    )
    return subprocess.run(
        [sys.executable, "-I", "-c", code],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_trace_lines_cover_the_phases_and_parse(tmp_path: Path) -> None:
    proc = run_host_local(tmp_path, "ADD", traced=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ips"][0]["address"] == "10.250.0.2/24"
    parsed = [trace.parse_line(line) for line in proc.stderr.splitlines()]
    assert None not in parsed, proc.stderr
    phases = [p[0] for p in parsed if p is not None]
    assert phases[:3] == ["start", "imports", "parse"]
    assert phases[-1] == "total"
    assert all(p[1] >= 0 for p in parsed if p is not None)
    by_phase = {p[0]: p for p in parsed if p is not None}
    assert by_phase["parse"][2] == "ADD"
    # The phases are consecutive: the whole exec is at least their sum (up to
    # the printed rounding), however the process was scheduled.
    parts = sum(by_phase[p][1] for p in ("start", "imports", "parse"))
    assert by_phase["total"][1] + 0.005 >= parts


def test_trace_off_writes_nothing(tmp_path: Path) -> None:
    proc = run_host_local(tmp_path, "ADD", traced=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""


def test_parse_line_rejects_other_lines() -> None:
    assert trace.parse_line("cni-trace\texec\t1.250\tiptables-restore\n") == (
        "exec",
        1.25,
        "iptables-restore",
    )
    assert trace.parse_line("cni-trace\ttotal\t3.000") == ("total", 3.0, "")
    assert trace.parse_line("some warning") is None
    assert trace.parse_line("cni-trace\tstart\tsoon") is None


def test_imports_closes_once_per_process() -> None:
    """flannel runs bridge and host-local in-process: their ``imports_done``
    must not write an ``imports`` line timed from the process's start again
    (the breakdown summed those into the floor and printed a negative work)."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from cni_plugins.spec import trace\n"
        "trace.imports_done(); trace.imports_done(); trace.imports_done(); trace.total()"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code],
        env={"CNI_PLUGINS_TRACE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    phases = [p[0] for p in map(trace.parse_line, proc.stderr.splitlines()) if p is not None]
    assert phases == ["start", "imports", "total"], proc.stderr
