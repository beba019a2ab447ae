"""bench.breakdown's grouping and table, from trace text (nothing is run)."""

from __future__ import annotations

from bench import breakdown

TRACE = """\
cni-trace\tstart\t20.000\tclock ticks
cni-trace\timports\t5.000
unrelated warning
cni-trace\tparse\t0.500\tADD
cni-trace\tnetlink\t0.100\tdump nf_tables rules of CNI-HOSTPORT-DNAT
cni-trace\tnf_tables batch\t0.200\t7 messages
cni-trace\ttotal\t30.000\tprocess start in clock ticks
cni-trace\tstart\t10.000\tclock ticks
cni-trace\timports\t7.000
cni-trace\tparse\t0.700\tADD
cni-trace\texec\t4.000\tiptables-restore
cni-trace\ttotal\t24.000\tprocess start in clock ticks
"""


def test_execs_split_at_total_and_skip_other_lines() -> None:
    runs = breakdown.execs(TRACE.splitlines())
    assert [len(r) for r in runs] == [6, 5]
    assert runs[1][3] == ("exec", 4.0, "iptables-restore")


def test_breakdown_splits_floor_from_work() -> None:
    rows = {key: (ms, n) for key, ms, n in breakdown.breakdown(breakdown.execs(TRACE.splitlines()))}
    assert rows["floor"] == (21.0, 1)  # medians of 25 and 17
    assert rows["work"] == (6.0, 1)  # median of 30-25 and 24-17
    assert rows["total"] == (27.0, 1)
    assert rows["exec iptables-restore"] == (4.0, 1)
    assert rows["nf_tables batch 7 messages"] == (0.2, 1)
    assert list(rows)[-3:] == ["floor", "work", "total"]


def test_table_is_markdown_with_one_row_per_phase() -> None:
    text = breakdown.table("portmap ADD", breakdown.execs(TRACE.splitlines()))
    lines = text.splitlines()
    assert lines[0] == "### portmap ADD (2 execs)"
    assert "| floor | 21.000 | 1 |" in lines
    assert len([line for line in lines if line.startswith("| ")]) == 1 + 9
