"""bench.floor end to end, once: five layers measured, the differences printed,
the temp dir (embed program, unpack cache) gone.  Structure only, no timings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist" / "bin"

pytestmark = [
    pytest.mark.skipif(not (DIST / "loopback").exists(), reason="dist/bin not built"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc"),
]


def test_floor_measures_every_layer_and_leaves_nothing() -> None:
    before = set(Path(tempfile.gettempdir()).glob("cni-floor-*"))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.floor", "--bin-dir", str(DIST), "--runs", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(r"^\| ([1-5])\. .*\| 2 \| ([0-9.]+) \|", proc.stdout, re.M)
    assert [n for n, _ in rows] == ["1", "2", "3", "4", "5"], proc.stdout
    assert all(float(ms) > 0 for _, ms in rows)
    for part in ("shared libpython", "our code", "PyInstaller bootloader", "static launcher"):
        assert re.search(rf"^\* {part}.*: [+-]?[0-9.]+ ms$", proc.stdout, re.M), part
    assert set(Path(tempfile.gettempdir()).glob("cni-floor-*")) == before
