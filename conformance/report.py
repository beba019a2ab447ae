"""pytest plugin printing the conformance table: one row per plugin and spec version
with passed / failed / xfail / xpass / not-applicable counts.

An XPASS (a known bug that no longer reproduces) counts as a failure: the known-bug
registry is wrong for that implementation and must be updated.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from conformance.discovery import PLUGIN_NAMES
from conformance.versions import ALL_VERSIONS

COLUMNS = ("passed", "failed", "xfail", "xpass", "n/a")
_RANK = {"passed": 0, "n/a": 0, "xfail": 1, "xpass": 2, "failed": 3}


def _classify(report: pytest.TestReport) -> str | None:
    if report.when == "call":
        if report.passed:
            return "xpass" if hasattr(report, "wasxfail") else "passed"
        if report.skipped:
            return "xfail" if hasattr(report, "wasxfail") else "n/a"
        return "xpass" if str(report.longrepr).startswith("[XPASS(strict)]") else "failed"
    if report.failed:
        return "failed"  # setup/teardown error
    if report.when == "setup" and report.skipped:
        return "xfail" if hasattr(report, "wasxfail") else "n/a"
    return None


class ConformanceTable:
    def __init__(self, summary_json: str | None) -> None:
        self.summary_json = summary_json
        self.state: dict[str, tuple[str, str, str]] = {}  # nodeid -> (plugin, version, outcome)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _classify(report)
        if outcome is None:
            return
        props = dict(report.user_properties)
        plugin, version = str(props.get("plugin", "-")), str(props.get("version", "any"))
        previous = self.state.get(report.nodeid)
        if previous is None or _RANK[outcome] > _RANK[previous[2]]:
            self.state[report.nodeid] = (plugin, version, outcome)

    def counts(self) -> dict[tuple[str, str], dict[str, int]]:
        table: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(COLUMNS, 0)
        )
        for plugin, version, outcome in self.state.values():
            if plugin == "-" and outcome == "n/a":
                continue  # checks whose plugin list was filtered away by --plugins
            table[(plugin, version)][outcome] += 1
        return table

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        table = self.counts()
        order = {n: i for i, n in enumerate(PLUGIN_NAMES)}
        vorder = {v: i for i, v in enumerate(("any", *ALL_VERSIONS))}
        rows = sorted(table, key=lambda k: (order.get(k[0], 99), k[0], vorder.get(k[1], 99)))
        tr = terminalreporter
        tr.write_sep("=", "CNI conformance")
        tr.write_line(f"{'plugin':<12}{'version':<9}" + "".join(f"{c:>8}" for c in COLUMNS))
        for key in rows:
            row = table[key]
            verdict = (
                "FAIL"
                if row["failed"] or row["xpass"]
                else ("n/a" if not row["passed"] and not row["xfail"] else "ok")
            )
            tr.write_line(
                f"{key[0]:<12}{key[1]:<9}"
                + "".join(f"{row[c]:>8}" for c in COLUMNS)
                + f"  {verdict}"
            )
        totals = {c: sum(r[c] for r in table.values()) for c in COLUMNS}
        tr.write_line(f"{'total':<21}" + "".join(f"{totals[c]:>8}" for c in COLUMNS))
        if self.summary_json:
            data = [{"plugin": p, "version": v, **table[(p, v)]} for p, v in rows]
            Path(self.summary_json).write_text(json.dumps(data, indent=1) + "\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("conformance").addoption(
        "--summary-json", default=None, help="write the conformance table as JSON"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ConformanceTable(config.getoption("--summary-json")), "cnf-table")
