"""Pure statistics and markdown formatting for the benchmark report.

Nothing here touches the system, so ``tests/unit/test_bench_stats.py`` can pin
every number and every line of the table.  Times are milliseconds; a missing
measurement is ``None`` and prints as ``n/a`` (optionally with the reason).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NA = "n/a"


@dataclass(frozen=True, slots=True)
class Summary:
    """Median and tail (10th, 90th, 99th percentile) of one set of samples."""

    n: int
    median: float
    p10: float
    p90: float
    low: float
    high: float
    p99: float = 0.0


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between order
    statistics (numpy's default method, so results are easy to cross-check)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50.0)


def summarize(samples: Sequence[float]) -> Summary | None:
    """``None`` for no samples (a scenario that did not run)."""
    if not samples:
        return None
    return Summary(
        n=len(samples),
        median=median(samples),
        p10=percentile(samples, 10.0),
        p90=percentile(samples, 90.0),
        low=min(samples),
        high=max(samples),
        p99=percentile(samples, 99.0),
    )


# A tail percentile is printed only where n can carry it.
MIN_N_P90 = 10
MIN_N_P99 = 100
NOT_ENOUGH = "-"


def fmt_tail(summary: Summary | None, q: int) -> str:
    """p90 (n >= 10) or p99 (n >= 100); ``-`` below that, ``n/a`` with no samples."""
    if summary is None:
        return NA
    if q == 90:
        return fmt_ms(summary.p90) if summary.n >= MIN_N_P90 else NOT_ENOUGH
    if q == 99:
        return fmt_ms(summary.p99) if summary.n >= MIN_N_P99 else NOT_ENOUGH
    raise ValueError(f"no tail column for p{q}")


def ratio(ours: float | None, reference: float | None) -> float | None:
    """ours / reference; ``None`` when either is missing or the reference is 0."""
    if ours is None or reference is None or reference <= 0.0:
        return None
    return ours / reference


def fmt_ms(value: float | None) -> str:
    """Milliseconds: one decimal below 100 ms, whole numbers above."""
    if value is None:
        return NA
    if value < 100.0:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_spread(summary: Summary | None) -> str:
    if summary is None:
        return NA
    return f"{fmt_ms(summary.p10)}-{fmt_ms(summary.p90)}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return NA
    if value < 10.0:
        return f"{value:.2f}x"
    return f"{value:.1f}x"


def fmt_mib(kib: int | None) -> str:
    """A size or RSS given in KiB, printed in MiB with one decimal."""
    if kib is None:
        return NA
    return f"{kib / 1024:.1f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; numeric-looking columns are right-aligned
    when every non-``n/a`` cell in them starts with a digit."""
    width = len(headers)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row {list(row)!r} has {len(row)} cells, expected {width}")
    align = []
    for col in range(width):
        cells = [row[col] for row in rows if not row[col].startswith(NA) and row[col] != NOT_ENOUGH]
        dashes = any(row[col] == NOT_ENOUGH for row in rows)
        numeric = (bool(cells) or dashes) and all(c[:1].isdigit() for c in cells)
        align.append("---:" if numeric else "---")
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join(align) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


TIMING_HEADERS = (
    "scenario",
    "n",
    "ours p50 ms",
    "ours p90",
    "ours p99",
    "Go p50 ms",
    "Go p90",
    "Go p99",
    "ours/Go (p50)",
)


def timing_row(
    label: str,
    ours: Summary | None,
    reference: Summary | None,
    *,
    ours_note: str = "",
    reference_note: str = "",
) -> list[str]:
    """One row of the timing table; a note replaces ``n/a`` with ``n/a (note)``."""

    def missing(note: str) -> str:
        return f"{NA} ({note})" if note else NA

    n = max(s.n for s in (ours, reference) if s is not None) if (ours or reference) else 0
    return [
        label,
        str(n),
        fmt_ms(ours.median) if ours else missing(ours_note),
        fmt_tail(ours, 90),
        fmt_tail(ours, 99),
        fmt_ms(reference.median) if reference else missing(reference_note),
        fmt_tail(reference, 90),
        fmt_tail(reference, 99),
        fmt_ratio(ratio(ours.median if ours else None, reference.median if reference else None)),
    ]
