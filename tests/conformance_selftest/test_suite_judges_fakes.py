"""The conformance suite must FAIL deliberately broken plugins and PASS a correct one.

Each case builds a bin dir holding only a fake ``loopback`` (fakes/fake_loopback.py with
its MODE constant replaced) and runs ``python -m conformance`` on it as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).parent / "fakes" / "fake_loopback.py"

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


def make_bin_dir(tmp_path: Path, mode: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    source = FAKE.read_text().replace('MODE = "correct"', f'MODE = "{mode}"', 1)
    target = bin_dir / "loopback"
    target.write_text(f"#!{sys.executable}\n{source}")
    target.chmod(0o755)
    return bin_dir


def run_suite(tmp_path: Path, mode: str, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    bin_dir = make_bin_dir(tmp_path, mode)
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--bin-dir", str(bin_dir),
         "--plugins", "loopback", "--summary-json", str(summary), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    rows = json.loads(summary.read_text()) if summary.exists() else []
    return proc.returncode, rows, proc.stdout + proc.stderr


def failed(rows: list[dict[str, Any]], version: str | None = None) -> int:
    return sum(r["failed"] + r["xpass"] for r in rows if version in (None, r["version"]))


def test_correct_fake_passes(tmp_path: Path) -> None:
    rc, rows, output = run_suite(tmp_path, "correct")
    assert rc == 0, output[-4000:]
    assert failed(rows) == 0
    assert sum(r["passed"] for r in rows) > 100, rows
    # The Go loopback's known bug must not be expected of an unrelated implementation.
    assert sum(r["xfail"] for r in rows) == 0, rows


@pytest.mark.parametrize(
    ("mode", "failing_check", "version"),
    [
        ("wrong-version-shape", "test_add_result_shape", "0.4.0"),
        ("fail-second-del", "test_del_twice", "1.0.0"),
        ("logs-on-stdout", "test_add_result_version", "1.0.0"),
        ("bad-error-shape", "test_unknown_command", "1.0.0"),
    ],
)
def test_broken_fake_fails(tmp_path: Path, mode: str, failing_check: str, version: str) -> None:
    rc, rows, output = run_suite(tmp_path, mode)
    assert rc == 1, output[-4000:]
    assert failed(rows, version) > 0, rows
    assert "FAILED conformance/" in output and failing_check in output, output[-4000:]


def test_absent_plugins_are_not_applicable(tmp_path: Path) -> None:
    """An empty bin dir: everything not applicable, exit 0."""
    bin_dir = tmp_path / "empty"
    bin_dir.mkdir()
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--bin-dir", str(bin_dir),
         "--plugins", "portmap", "--summary-json", str(summary)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = json.loads(summary.read_text())
    assert rows and all(r["passed"] == r["failed"] == 0 and r["n/a"] > 0 for r in rows), rows
