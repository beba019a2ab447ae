"""The short form of the reliability report (load, faults, bad input) as a test:
zero leftovers, zero unclean answers, every fault survived, the root namespace
unchanged.  The full run: ``python -m tests.reliability.report``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import report

pytestmark = pytest.mark.privileged


@pytest.mark.timeout(900)
def test_quick_reliability_run(tmp_path: Path) -> None:
    out = report.run(quick=True, log=lambda _m: None)
    text = report.markdown(out)
    (tmp_path / "reliability-report.md").write_text(text)
    t = out["totals"]
    assert t["pods_added"] == t["pods_deleted"] == 100, text
    assert t["leftovers"] == 0, text
    assert t["unclean"] == 0, text
    assert t["changed"] == 0, text
    assert t["duplicates"] == 0, text
    assert t["faults_injected"] == t["faults_survived"] > 0, text
    assert t["inputs_tried"] > 300, text
    assert out["root_unchanged"] and not out["namespaces_left"], text
    assert report.passed(out)
