"""The benchmark report's arithmetic and formatting (bench/stats.py), and the
pure helpers around it; no processes, no namespaces."""

from __future__ import annotations

import pytest

from bench import stats
from bench.cni import STEP_SEP, Recorder, Step, step_label, total_label
from bench.proc import parse_time_output
from bench.world import filler_rules


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0], 50, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 100, 5.0),
        # numpy.percentile([1..10], 10) == 1.9, (.., 90) == 9.1
        ([float(x) for x in range(1, 11)], 10, 1.9),
        ([float(x) for x in range(10, 0, -1)], 90, 9.1),
    ],
)
def test_percentile_interpolates_like_numpy(
    samples: list[float], q: float, expected: float
) -> None:
    assert stats.percentile(samples, q) == pytest.approx(expected)


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="no samples"):
        stats.percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        stats.percentile([1.0], 101)


def test_median_odd_and_even() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([1.0, 2.0, 3.0, 10.0]) == 2.5


def test_summarize() -> None:
    assert stats.summarize([]) is None
    s = stats.summarize([float(x) for x in range(1, 11)])
    assert s == stats.Summary(n=10, median=5.5, p10=1.9, p90=9.1, low=1.0, high=10.0, p99=9.91)
    one = stats.summarize([7.0])
    assert one is not None
    assert (one.median, one.p10, one.p90) == (7.0, 7.0, 7.0)


@pytest.mark.parametrize(
    ("ours", "ref", "expected"),
    [(30.0, 10.0, 3.0), (5.0, 10.0, 0.5), (None, 10.0, None), (10.0, None, None), (1.0, 0.0, None)],
)
def test_ratio(ours: float | None, ref: float | None, expected: float | None) -> None:
    assert stats.ratio(ours, ref) == expected


def test_formatting() -> None:
    assert stats.fmt_ms(None) == "n/a"
    assert stats.fmt_ms(3.14159) == "3.1"
    assert stats.fmt_ms(99.94) == "99.9"
    assert stats.fmt_ms(123.6) == "124"
    assert stats.fmt_ratio(None) == "n/a"
    assert stats.fmt_ratio(3.14159) == "3.14x"
    assert stats.fmt_ratio(0.5) == "0.50x"
    assert stats.fmt_ratio(64.81) == "64.8x"
    assert stats.fmt_mib(None) == "n/a"
    assert stats.fmt_mib(2048) == "2.0"
    assert stats.fmt_spread(None) == "n/a"
    assert stats.fmt_spread(stats.summarize([1.0, 2.0, 3.0])) == "1.2-2.8"


def test_markdown_table_alignment_and_escaping() -> None:
    table = stats.markdown_table(
        ("name", "ms"),
        [["a|b", "1.0"], ["c", "n/a (not built)"], ["d", "12"]],
    )
    assert table.splitlines() == [
        "| name | ms |",
        "|---|---:|",
        "| a\\|b | 1.0 |",
        "| c | n/a (not built) |",
        "| d | 12 |",
    ]


def test_markdown_table_text_column_left_aligned_and_width_checked() -> None:
    table = stats.markdown_table(("a", "b"), [["x", "y"]])
    assert table.splitlines()[1] == "|---|---|"
    with pytest.raises(ValueError, match="expected 2"):
        stats.markdown_table(("a", "b"), [["only one"]])


def test_timing_row_with_both_sides() -> None:
    ours = stats.summarize([30.0, 40.0, 50.0])
    go = stats.summarize([10.0, 10.0, 10.0])
    assert stats.timing_row("VERSION bridge", ours, go) == [
        "VERSION bridge",
        "3",
        "40.0",
        "-",
        "-",
        "10.0",
        "-",
        "-",
        "4.00x",
    ]
    assert len(stats.TIMING_HEADERS) == 9


def test_tail_percentiles_need_enough_samples() -> None:
    ten = stats.summarize([float(x) for x in range(1, 11)])
    hundred = stats.summarize([float(x) for x in range(1, 101)])
    assert (stats.fmt_tail(ten, 90), stats.fmt_tail(ten, 99)) == ("9.1", "-")
    assert (stats.fmt_tail(hundred, 90), stats.fmt_tail(hundred, 99)) == ("90.1", "99.0")
    assert stats.fmt_tail(None, 90) == "n/a"
    with pytest.raises(ValueError):
        stats.fmt_tail(ten, 50)
    table = stats.markdown_table(("a", "b"), [["x", "-"], ["y", "3.0"]])
    assert table.splitlines()[1] == "|---|---:|"


def test_timing_row_missing_side_says_why() -> None:
    ours = stats.summarize([100.0, 120.0])
    row = stats.timing_row("VERSION flannel", ours, None, reference_note="no Go flannel")
    assert row == [
        "VERSION flannel",
        "2",
        "110",
        "-",
        "-",
        "n/a (no Go flannel)",
        "n/a",
        "n/a",
        "n/a",
    ]
    empty = stats.timing_row("x", None, None)
    assert empty == ["x", "0", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]


def test_labels() -> None:
    step = Step("portmap", {}, "portmap")
    prefix = "pod {verb} (flannel+portmap)"
    assert total_label(prefix, "ADD") == "pod ADD (flannel+portmap)"
    assert step_label(prefix, "DEL", step) == f"pod DEL (flannel+portmap){STEP_SEP}portmap"
    assert step_label(prefix, "DEL", step, steps=1) == "pod DEL (flannel+portmap)"


def test_recorder_keeps_rss_of_warmups_but_not_their_times() -> None:
    rec = Recorder()
    rec.warmup = True
    assert rec.want_rss
    rec.add("row", "ours", 999.0, 4096)
    rec.warmup = False
    assert not rec.want_rss
    rec.add("row", "ours", 10.0)
    rec.add("row", "ours", 12.0, 1024)
    assert rec.times[("row", "ours")] == [10.0, 12.0]
    assert rec.rss[("row", "ours")] == 4096
    assert rec.rows == ["row"]
    scratch = Recorder(enabled=False)
    scratch.add("row", "go", 1.0, 1)
    assert not scratch.times
    assert not scratch.rss
    assert not scratch.rows


def test_recorder_notes_declare_rows_in_order() -> None:
    rec = Recorder()
    rec.declare("b", "a")
    rec.note("c", "go", "no Go flannel")
    rec.note("c", "go", "later note is ignored")
    rec.add("a", "ours", 1.0)
    assert rec.rows == ["b", "a", "c"]
    assert rec.notes == {("c", "go"): "no Go flannel"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"12345\n", 12345),
        (b"Command exited with non-zero status 1\n2048\n", 2048),
        (b"", None),
        (b"Command terminated by signal 9\n", None),
    ],
)
def test_parse_time_output(text: bytes, expected: int | None) -> None:
    assert parse_time_output(text) == expected


def test_filler_rules_is_one_restore_script() -> None:
    script = filler_rules(2000).decode().splitlines()
    assert script[:2] == ["*nat", ":CNIB-FILLER - [0:0]"]
    assert script[-1] == "COMMIT"
    rules = [line for line in script if line.startswith("-A CNIB-FILLER ")]
    assert len(rules) == 2000
    assert len(set(rules)) == 2000
