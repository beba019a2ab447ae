"""Where a plugin exec's time goes: the floor (process start + imports) and the work.

Runs each plugin binary of ``--bin-dir`` with ``CNI_PLUGINS_TRACE=1`` (see
``cni_plugins.spec.trace``) and prints one table per plugin: the median of each
traced phase over ``--runs`` execs.  What runs without a namespace runs here:
VERSION of every plugin (the floor alone) and host-local ADD/DEL in a temporary
data dir.  Traces of other invocations (e.g. a ``bench/run.py`` run with
``CNI_PLUGINS_TRACE=1`` exported, or an integration test's stderr) are read
with ``--from PLUGIN=FILE``: the file's trace lines, one exec after another.

    python -m bench.breakdown --bin-dir dist/bin --runs 11
    python -m bench.breakdown --from portmap=portmap-add.trace

Not part of ``bench/run.py``; timings on a busy machine are noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.proc import BASE_ENV, run
from bench.stats import percentile
from cni_plugins.spec.trace import parse_line

FLOOR = ("start", "imports")


def execs(lines: Iterable[str]) -> list[list[tuple[str, float, str]]]:
    """The trace lines grouped per exec: each exec ends with its ``total``."""
    out: list[list[tuple[str, float, str]]] = []
    current: list[tuple[str, float, str]] = []
    for line in lines:
        parsed = parse_line(line)
        if parsed is None:
            continue
        current.append(parsed)
        if parsed[0] == "total":
            out.append(current)
            current = []
    return out


def phase_key(phase: str, detail: str) -> str:
    """netlink exchanges and execs are told apart by what they did."""
    return f"{phase} {detail}" if phase in ("exec", "netlink", "nf_tables batch") else phase


def breakdown(runs: Sequence[list[tuple[str, float, str]]]) -> list[tuple[str, float, int]]:
    """(row, median ms per exec, occurrences per exec) for each phase of ``runs``,
    then ``floor`` (start + imports), ``work`` (total - floor) and ``total``."""
    order: list[str] = []
    per_run: list[dict[str, tuple[float, int]]] = []
    for trace in runs:
        sums: dict[str, tuple[float, int]] = {}
        for phase, ms, detail in trace:
            key = phase_key(phase, detail)
            if key not in order:
                order.append(key)
            total, count = sums.get(key, (0.0, 0))
            sums[key] = (total + ms, count + 1)
        floor = sum(sums.get(p, (0.0, 0))[0] for p in FLOOR)
        sums["floor"] = (floor, 1)
        sums["work"] = (sums.get("total", (0.0, 0))[0] - floor, 1)
        per_run.append(sums)
    rows = []
    for key in [k for k in order if k != "total"] + ["floor", "work", "total"]:
        samples = [r[key][0] for r in per_run if key in r]
        count = max((r[key][1] for r in per_run if key in r), default=0)
        if samples:
            rows.append((key, percentile(samples, 50), count))
    return rows


def table(title: str, runs: Sequence[list[tuple[str, float, str]]]) -> str:
    lines = [f"### {title} ({len(runs)} execs)", "", "| phase | median ms | per exec |"]
    lines.append("|---|---:|---:|")
    lines += [f"| {key} | {ms:.3f} | {count} |" for key, ms, count in breakdown(runs)]
    return "\n".join(lines) + "\n"


def traced_env(command: str) -> dict[str, str]:
    return {
        **BASE_ENV,
        "CNI_PLUGINS_TRACE": "1",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "breakdown",
        "CNI_NETNS": "/nonexistent",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }


Trace = list[tuple[str, float, str]]
PLUGINS = ("bridge", "flannel", "host-local", "loopback", "portmap")


def run_traced(binary: Path, command: str, stdin: bytes, count: int) -> list[Trace]:
    lines: list[str] = []
    for _ in range(count):
        measured = run([str(binary)], stdin, traced_env(command))
        if not measured.ok:
            raise SystemExit(measured.describe())
        lines += measured.stderr.decode(errors="replace").splitlines()
    return execs(lines)


def host_local_tables(binary: Path, count: int) -> list[str]:
    """ADD then DEL of one container, ``count`` times, in a temporary data dir."""
    by_verb: dict[str, list[Trace]] = {"ADD": [], "DEL": []}
    with tempfile.TemporaryDirectory() as data:
        ipam = {"type": "host-local", "subnet": "10.250.0.0/16", "dataDir": data}
        conf = {"cniVersion": "1.0.0", "name": "breakdown", "type": "host-local", "ipam": ipam}
        for _ in range(count):
            for verb, runs in by_verb.items():
                runs.extend(run_traced(binary, verb, json.dumps(conf).encode(), 1))
    return [table(f"host-local {verb}", runs) for verb, runs in by_verb.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", type=Path)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument(
        "--from",
        dest="sources",
        action="append",
        default=[],
        metavar="PLUGIN=FILE",
        help="trace lines captured elsewhere",
    )
    opts = parser.parse_args(argv)
    out = []
    for source in opts.sources:
        name, _, path = source.partition("=")
        out.append(table(name, execs(Path(path).read_text().splitlines())))
    if opts.bin_dir is not None:
        for name in PLUGINS:
            binary = opts.bin_dir / name
            if binary.exists():
                out.append(
                    table(f"{name} VERSION", run_traced(binary, "VERSION", b"{}", opts.runs))
                )
        if (opts.bin_dir / "host-local").exists():
            out += host_local_tables(opts.bin_dir / "host-local", opts.runs)
    print("\n".join(out) if out else "nothing to do: give --bin-dir or --from", file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
