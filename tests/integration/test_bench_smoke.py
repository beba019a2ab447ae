"""bench/run.py end to end, once and quickly: the report has its structure and
nothing is left behind.  Asserts structure only, never timings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GO = Path("/usr/lib/cni")

pytestmark = [pytest.mark.privileged, pytest.mark.reference, pytest.mark.timeout(600)]


def _ours_args() -> list[str]:
    """dist/bin when built (CNI_DIST_BIN may point elsewhere), else the source tree."""
    dist = Path(os.environ.get("CNI_DIST_BIN", REPO / "dist" / "bin"))
    if all((dist / p).exists() for p in ("flannel", "bridge", "host-local")):
        return ["--ours", str(dist)]
    return ["--source-tree"]


def _netns_names() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def test_quick_run_reports_every_scenario_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    before = _netns_names()
    argv = [sys.executable, str(REPO / "bench" / "run.py"), *_ours_args(), "--go", str(GO)]
    proc = subprocess.run(
        [*argv, "--runs", "1", "--quick", "--out", str(out)],
        env={**os.environ, "CNI_PLUGINS_CACHE_DIR": str(tmp_path / "unpack-cache")},
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out.read_text()
    assert report.strip() == proc.stdout.strip()

    # Machine info and the namespaces' names, which must all be gone.
    for key in ("- date:", "- command:", "- CPU:", "cores:", "kernel:"):
        assert key in report
    token = re.search(r"namespaces: `cnib-([0-9a-f]+)-\*`", report)
    assert token is not None
    ours = {n for n in _netns_names() - before if n.startswith(f"cnib-{token.group(1)}-")}
    assert not ours, f"left behind: {ours}"
    assert not list(Path(tempfile.gettempdir()).glob(f"cnib-{token.group(1)}-*"))

    rows = _timing_rows(report)
    has_portmap = _ours_have_portmap()
    what = "flannel+portmap" if has_portmap else "flannel; portmap n/a"
    expected = [
        "VERSION bridge",
        "VERSION host-local",
        "host-local ADD (IPAM only)",
        "bridge+host-local ADD",
        "bridge+host-local DEL",
        f"pod ADD ({what})",
        f"pod DEL ({what})",
        f"20 concurrent pod ADDs ({what}), batch wall",
        f"20 concurrent pod DELs ({what}), batch wall",
        f"pod ADD ({what}, 2,000 nat rules)",
        f"pod DEL ({what}, 2,000 nat rules)",
        # --quick's small scale: one cold start, a burst of 5, full nodes of 2 then 4 pods.
        "cold: first VERSION bridge after install",
        "cold: first pod ADD after install",
        f"5 concurrent pod ADDs ({what}), batch wall",
        f"5 concurrent pod DELs ({what}), batch wall",
        f"pod ADD ({what}, 2 pods on the node)",
        f"pod DEL ({what}, 2 pods on the node)",
        f"pod ADD ({what}, 4 pods on the node)",
        f"pod DEL ({what}, 4 pods on the node)",
    ]
    if "--source-tree" in _ours_args():  # nothing to install: no cold rows
        expected = [label for label in expected if not label.startswith("cold:")]
    for label in expected:
        assert label in rows, f"missing row {label!r} in\n{report}"
        _assert_measured(label, rows[label], n=1)
    # Each pod of the burst is a sample of its own row.
    for label in ("5 concurrent pod ADDs: each pod's ADD", "5 concurrent pod DELs: each pod's DEL"):
        assert label in rows, f"missing row {label!r} in\n{report}"
        _assert_measured(label, rows[label], n=5)
    assert rows["VERSION flannel"][4] == "n/a (no Go flannel)"
    # The nftables backend: ours measured; Go measured or, before v1.5.0, said why not.
    if has_portmap:
        for verb in ("ADD", "DEL"):
            cells = rows[f"pod {verb} ({what}, portmap nftables backend)"]
            assert re.fullmatch(r"\d+(\.\d)?", cells[1]), cells
            go_ok = re.fullmatch(r"\d+(\.\d)?", cells[4])
            assert (
                go_ok or cells[4] == "n/a (this portmap has no nftables backend, ignores the key)"
            )
    bare = next(label for label in rows if label.startswith("bare start of our bundled"))
    if "--source-tree" in _ours_args():
        assert rows[bare][1] == "n/a (source tree)"
    else:
        assert re.fullmatch(r"\d+(\.\d)?", rows[bare][1]), rows[bare]
    assert rows[bare][4] == "n/a (no interpreter)"

    # The goal table: one run's ratio per goal, its spread, bound and verdict.
    goal_rows = _table_rows(report, "| goal |")
    wanted = [f"pod ADD {what}", f"pod DEL {what}", "20 concurrent pod ADDs (batch wall)"]
    wanted += ["pod ADD, 4 pods on the node", "pod DEL, 2 pods on the node"]
    wanted += ["VERSION bridge / bare interpreter"]
    for goal in wanted:
        cells = goal_rows[goal]
        assert re.fullmatch(r"\d+\.\d+x", cells[0]), (goal, cells)
        assert cells[3] in ("met", "missed"), (goal, cells)
    # A missed goal carries the trace breakdown of its rows, from traced execs.
    for goal, cells in goal_rows.items():
        shown = f"Missed: {goal} (run 1);" in report
        assert shown == (cells[-1] != "met"), (goal, cells)
        if shown and "--source-tree" not in _ours_args():
            after = report.split(f"Missed: {goal} (run 1);", 1)[1]
            assert re.search(r"^### .+ \(1 execs\)$", after, re.M), after[:500]
            assert "| floor |" in after and "| total |" in after
    # A missed VERSION goal adds the exec's floor, layer by layer (bench/floor.py).
    version_missed = any(g.startswith("VERSION") and c[-1] != "met" for g, c in goal_rows.items())
    floor_shown = "VERSION / bare interpreter missed: the floor" in report
    if "--source-tree" not in _ours_args():
        assert floor_shown == version_missed
        if floor_shown:
            assert re.search(
                r"^\* PyInstaller bootloader \+ bootstrap .*: [+-]?[0-9.]+ ms$", report, re.M
            )
    if not has_portmap:
        assert "n/a (not built yet)" in rows["VERSION portmap"][1]
    assert "Errors" not in report, report

    # Memory and size tables.
    assert "| process (tree) | ours max RSS MiB | Go max RSS MiB | ours/Go |" in report
    if "--source-tree" in _ours_args():  # no binaries: only Go's sizes are known
        assert re.search(r"^\| bridge \| n/a \| \d+\.\d \| n/a \|$", report, re.M)
    else:
        assert re.search(r"^\| bridge \| \d+\.\d \| \d+\.\d \| \d+\.\d+x \|$", report, re.M)


def _assert_measured(label: str, cells: list[str], *, n: int) -> None:
    """n, ours p50/p90/p99, Go p50/p90/p99, ratio: medians measured, tails '-'
    where n is too small for them (p90 needs 10 samples, p99 100)."""
    assert cells[0] == str(n), (label, cells)
    for median in (cells[1], cells[4]):
        assert re.fullmatch(r"\d+(\.\d)?", median), (label, cells)
    for tail in (cells[2], cells[3], cells[5], cells[6]):
        assert tail == "-", (label, cells)
    assert re.fullmatch(r"\d+(\.\d+)?x", cells[7]), (label, cells)


def _ours_have_portmap() -> bool:
    args = _ours_args()
    if args[0] == "--ours":
        return (Path(args[1]) / "portmap").exists()
    return (REPO / "cni_plugins" / "plugins" / "portmap.py").exists()


def _timing_rows(report: str) -> dict[str, list[str]]:
    """First table of the report: label -> the other eight cells."""
    return _table_rows(report, "| scenario |")


def _table_rows(report: str, header: str) -> dict[str, list[str]]:
    """The first table whose header starts with ``header``: first cell -> the others."""
    rows: dict[str, list[str]] = {}
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = cells[1:]
    return rows
