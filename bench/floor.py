"""The floor of one exec, layer by layer: what a VERSION of ours costs before and
besides our code, measured, not estimated (issue 18's "VERSION vs the bare start
of the bundled interpreter").

Each layer adds one thing to the one before; all run A/B alternating, n each:

1. ``exec``: the bundle's loader running ``/bin/true`` (fork + exec + ld.so);
2. ``bare interpreter``: the host's ``python3.X -S -I -c pass`` of the bundle's
   Python version (Debian's links libpython statically: no relocation of a
   5 MiB shared library);
3. ``bundle's libpython``: ``bench.bare``'s stub (``Py_BytesMain`` linked
   against the payload's own ``libpython3.X.so``) with ``-S -I -c pass``, under
   the payload's loader and glibc: layer 2 plus what a shared libpython costs;
4. ``bundle entry``: the unpacked entry run as the launcher runs it
   (PyInstaller's bootloader, its bootstrap modules, our multicall, VERSION);
5. ``binary``: ``dist/bin/<plugin>`` VERSION (layer 4 plus the static launcher's
   cache lookup).

Our own code's share of layer 4 is what ``CNI_PLUGINS_TRACE=1`` prints as
``imports`` + ``work`` (measured in the same run, in separate execs), so
``4 - 3 - ours`` is PyInstaller's bootloader and bootstrap.

    python -m bench.floor --bin-dir dist/bin [--plugin loopback] [--runs 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.bare import bare_argv
from bench.breakdown import execs
from bench.proc import BASE_ENV, run
from bench.stats import markdown_table, median, percentile

VERSION_STDIN = b'{"cniVersion":"1.0.0"}'


def layers(binary: Path, plugin: str, bare: list[str]) -> dict[str, list[str]]:
    loader_path, internal = Path(bare[0]), Path(bare[3])
    entry = internal.parent
    loader = [
        str(loader_path),
        "--inhibit-cache",
        "--library-path",
        str(internal),
    ]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "1. exec (bundle's loader, /bin/true)": [*loader, "/bin/true"],
        f"2. bare interpreter (python{version} -S -I -c pass)": [
            f"/usr/bin/python{version}",
            "-S",
            "-I",
            "-c",
            "pass",
        ],
        "3. bundle's libpython + glibc, -S -I -c pass (bench.bare)": bare,
        "4. bundle entry, VERSION (no launcher)": [
            *loader,
            "--argv0",
            str(entry / plugin),
            str(entry / "cni-plugins"),
        ],
        f"5. dist/bin/{plugin} VERSION": [str(binary)],
    }


def measure(argvs: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in argvs}
    for i in range(runs + 2):
        for label, argv in argvs.items():
            m = run(argv, VERSION_STDIN, env)
            if not m.ok:
                raise RuntimeError(m.describe())
            if i >= 2:  # two warm-ups
                times[label].append(m.wall_ms)
    return times


def our_share(binary: Path, env: dict[str, str], runs: int) -> float:
    """Median of imports + work over traced VERSION execs (our code's part)."""
    traced = dict(env, CNI_PLUGINS_TRACE="1")
    lines: list[str] = []
    for _ in range(runs):
        lines += run([str(binary)], VERSION_STDIN, traced).stderr.decode().splitlines()
    per_exec = [
        sum(ms for phase, ms, _ in ex if phase in ("imports", "work")) for ex in execs(lines)
    ]
    return median(per_exec)


def report(times: dict[str, list[float]], ours_ms: float) -> str:
    labels = list(times)
    med = {k: median(v) for k, v in times.items()}
    bare = med[labels[1]]
    rows = [
        [k, str(len(v)), f"{med[k]:.2f}", f"{percentile(v, 90.0):.2f}", f"{med[k] / bare:.2f}x"]
        for k, v in times.items()
    ]
    table = markdown_table(["layer", "n", "median ms", "p90 ms", "/ bare"], rows)
    shared = med[labels[2]] - bare
    pyinstaller = med[labels[3]] - med[labels[2]] - ours_ms
    launcher = med[labels[4]] - med[labels[3]]
    lines = [
        table,
        "",
        f"* shared libpython + bundled glibc (3 - 2): {shared:+.2f} ms",
        f"* our code, imports + work (CNI_PLUGINS_TRACE, median): {ours_ms:.2f} ms",
        f"* PyInstaller bootloader + bootstrap (4 - 3 - ours): {pyinstaller:+.2f} ms",
        f"* static launcher, cache lookup (5 - 4): {launcher:+.2f} ms",
    ]
    return "\n".join(lines)


def floor(binary: Path, runs: int) -> str:
    """The layer table of ``binary`` (one of our plugins), measured now in a
    temporary unpack cache; RuntimeError when a layer cannot run."""
    with tempfile.TemporaryDirectory(prefix="cni-floor-") as tmp:
        work = Path(tmp)
        cache = work / "cache"
        cache.mkdir(mode=0o700)
        env = dict(BASE_ENV, CNI_COMMAND="VERSION", CNI_PLUGINS_CACHE_DIR=str(cache))
        first = run([str(binary)], VERSION_STDIN, env)  # unpacks the entry
        if not first.ok:
            raise RuntimeError(first.describe())
        # bench.bare looks for the entry in BASE_ENV's cache dir: this one, for now.
        saved = BASE_ENV.get("CNI_PLUGINS_CACHE_DIR")
        BASE_ENV["CNI_PLUGINS_CACHE_DIR"] = str(cache)
        try:
            bare, why = bare_argv(binary.parent, work)
        finally:
            if saved is None:
                del BASE_ENV["CNI_PLUGINS_CACHE_DIR"]
            else:
                BASE_ENV["CNI_PLUGINS_CACHE_DIR"] = saved
        if bare is None:
            raise RuntimeError(f"no bare interpreter: {why}")
        times = measure(layers(binary, binary.name, bare), env, runs)
        return report(times, our_share(binary, env, runs))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--bin-dir", type=Path, default=Path("dist/bin"))
    parser.add_argument("--plugin", default="loopback")
    parser.add_argument("--runs", type=int, default=40)
    opts = parser.parse_args(argv)
    try:
        print(floor((opts.bin_dir / opts.plugin).resolve(), opts.runs))
    except RuntimeError as exc:
        print(f"bench.floor: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
