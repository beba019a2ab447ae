"""Issue 18's goals, checked against one or more runs (pure: no processes).

A goal is a ratio of medians of the same run and a bound: ours/Go of a row, a
full node's ours/Go relative to the empty node's, or our VERSION against a
reference row of ours.  The table shows each run's value, the spread, the goal
and met/missed (every run must meet it).  Targets of the benchmark, never
asserted in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench import stats

Times = Mapping[tuple[str, str], Sequence[float]]


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    row: str  # the measured row (ours/Go of its medians)
    bound: float
    relative_to: str = ""  # a row whose ours/Go ratio divides this row's
    against: str = ""  # instead of Go: a row of ours (ours/ours)
    traced: tuple[str, ...] = ()  # rows whose trace breakdown explains a miss (default: row)

    @property
    def trace_rows(self) -> tuple[str, ...]:
        return self.traced or (self.row,)

    def missed_in(self, times: Times) -> bool:
        value = self.value(times)
        return value is None or value > self.bound

    def value(self, times: Times) -> float | None:
        if self.against:
            mine, floor = times.get((self.row, "ours")), times.get((self.against, "ours"))
            if not mine or not floor:
                return None
            return stats.ratio(stats.median(mine), stats.median(floor))
        r = _ratio(times, self.row)
        if not self.relative_to or r is None:
            return r
        base = _ratio(times, self.relative_to)
        return None if base is None else stats.ratio(r, base)

    @property
    def shown_bound(self) -> str:
        if self.relative_to:
            return f"<= {self.bound:.2f}x of the empty node's ratio"
        if self.against:
            return f"<= {self.bound:.2f}x of the bare interpreter"
        return f"<= {self.bound:.2f}x"


def _ratio(times: Times, row: str) -> float | None:
    ours = times.get((row, "ours"))
    go = times.get((row, "go"))
    if not ours or not go:
        return None
    return stats.ratio(stats.median(ours), stats.median(go))


def issue18_goals(what: str, concurrent: int, full_node: Sequence[int]) -> list[Goal]:
    """``what``: the conflist's name in row labels, e.g. ``flannel+portmap``."""
    add, delete = f"pod ADD ({what})", f"pod DEL ({what})"
    goals = [
        Goal(f"pod ADD {what}", add, 0.75),
        Goal(f"pod DEL {what}", delete, 0.45),
        Goal(
            f"{concurrent} concurrent pod ADDs (batch wall)",
            f"{concurrent} concurrent pod ADDs ({what}), batch wall",
            0.60,
            traced=(add,),
        ),
        Goal(
            f"{concurrent} concurrent pod DELs (batch wall)",
            f"{concurrent} concurrent pod DELs ({what}), batch wall",
            0.30,
            traced=(delete,),
        ),
    ]
    for size in full_node:
        for verb, empty in (("ADD", add), ("DEL", delete)):
            goals.append(
                Goal(
                    f"pod {verb}, {size} pods on the node",
                    f"pod {verb} ({what}, {size} pods on the node)",
                    1.10,
                    relative_to=empty,
                )
            )
    return goals


def goal_table(goals: Sequence[Goal], runs: Sequence[Times]) -> str:
    headers = ["goal", *(f"run {i + 1}" for i in range(len(runs))), "spread", "bound", "result"]
    rows = []
    for goal in goals:
        values = [goal.value(times) for times in runs]
        known = [v for v in values if v is not None]
        spread = f"{min(known):.2f}-{max(known):.2f}x" if known else stats.NA
        if len(known) < len(values):
            result = "not measured"
        else:
            result = "met" if all(v <= goal.bound for v in known) else "missed"
        rows.append(
            [goal.name, *(stats.fmt_ratio(v) for v in values), spread, goal.shown_bound, result]
        )
    return stats.markdown_table(headers, rows)


def missed(goals: Sequence[Goal], runs: Sequence[Times]) -> list[Goal]:
    return [g for g in goals if any(g.missed_in(times) for times in runs)]
