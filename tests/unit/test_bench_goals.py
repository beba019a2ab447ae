"""Issue 18's goal table (bench/goals.py): values, spread, met/missed; pure."""

from __future__ import annotations

import pytest

from bench import goals

WHAT = "flannel+portmap"


def _times(add: tuple[float, float], full_add: tuple[float, float]) -> goals.Times:
    return {
        (f"pod ADD ({WHAT})", "ours"): [add[0]],
        (f"pod ADD ({WHAT})", "go"): [add[1]],
        (f"pod ADD ({WHAT}, 110 pods on the node)", "ours"): [full_add[0]],
        (f"pod ADD ({WHAT}, 110 pods on the node)", "go"): [full_add[1]],
    }


def test_goal_values_plain_and_relative_to_the_empty_node() -> None:
    wanted = {g.name: g for g in goals.issue18_goals(WHAT, 20, (110,))}
    times = _times((60.0, 100.0), (66.0, 100.0))
    assert wanted[f"pod ADD {WHAT}"].value(times) == pytest.approx(0.6)
    # 0.66 at 110 pods against 0.60 empty: 1.10 of the empty node's ratio.
    assert wanted["pod ADD, 110 pods on the node"].value(times) == pytest.approx(1.1)
    assert wanted[f"pod DEL {WHAT}"].value(times) is None  # not measured


def test_goal_table_shows_each_run_the_spread_and_the_verdict() -> None:
    wanted = goals.issue18_goals(WHAT, 20, (110,))
    runs = [_times((60.0, 100.0), (60.0, 100.0)), _times((80.0, 100.0), (80.0, 100.0))]
    lines = goals.goal_table(wanted, runs).splitlines()
    assert lines[0] == "| goal | run 1 | run 2 | spread | bound | result |"
    by_goal = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert by_goal[f"pod ADD {WHAT}"].endswith("| 0.60x | 0.80x | 0.60-0.80x | <= 0.75x | missed |")
    assert by_goal["pod ADD, 110 pods on the node"].endswith(
        "| 1.00x | 1.00x | 1.00-1.00x | <= 1.10x of the empty node's ratio | met |"
    )
    assert by_goal[f"pod DEL {WHAT}"].endswith("| n/a | n/a | n/a | <= 0.45x | not measured |")
    assert [g.name for g in goals.missed(wanted, runs)][:2] == [
        f"pod ADD {WHAT}",
        f"pod DEL {WHAT}",
    ]
