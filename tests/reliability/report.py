"""The reliability report: load, faults and bad input in one command.

    .venv/bin/python -m tests.reliability.report [--quick] [--out reliability-report.md]  # as root

Every part builds its own throwaway node namespace (``cnit-rel-<tag>-node``)
and tmp directories, and removes them at the end, also on failure.  The
plugins are the built binaries of dist/bin (``--bin-dir`` for another
directory, ``--source-tree`` for the source tree's script plugins); their
unpack cache is a tmp directory of the run, shared by its worlds.  The
report is markdown with the figures: pods added and deleted, concurrent
peak, faults injected and survived, inputs tried, leftovers found, unclean
answers, date and machine.  Exit status 0
only when there are no leftovers, no unclean answers and every fault was
survived.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.reliability import faults
from tests.reliability.badinput import run_bad_input
from tests.reliability.load import LoadStats, run_load
from tests.reliability.world import World, script_plugins, sh

Json = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]


class Plan:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.pods = 100
        self.waves = 1 if quick else 3
        self.concurrency = 20
        self.kill_group_delays = list(range(0, 301, 75 if quick else 20))
        self.kill_leader_delays = list(range(0, 301, 150 if quick else 50))
        self.examples = 60 if quick else 300


def root_fingerprint() -> str:
    """The root namespace's links, addresses, routes and rule sets, hashed."""
    parts = [
        sh("ip", "-o", "link", "show"),
        sh("ip", "-o", "addr", "show"),
        sh("ip", "route", "show", "table", "all"),
        sh("iptables-save", check=False),
        sh("ip6tables-save", check=False),
        sh("nft", "-s", "list", "ruleset", check=False),
    ]
    cleaned = "\n".join(
        ln
        for part in parts
        for ln in part.splitlines()
        if not ln.startswith("#") and "[" not in ln.split(" ", 1)[0]
    )
    # packet counters differ between listings: drop them
    cleaned = "\n".join(ln.split(" [")[0] for ln in cleaned.splitlines())
    return hashlib.sha256(cleaned.encode()).hexdigest()[:16]


def our_namespaces(tags: Iterable[str]) -> list[str]:
    """Namespaces of the worlds with these tags (not of another run on the machine)."""
    prefixes = tuple(f"cnit-rel-{tag}-" for tag in tags)
    names = [ln.split()[0] for ln in sh("ip", "netns", "list").splitlines() if ln.strip()]
    return [name for name in names if name.startswith(prefixes)]


# Tags of the worlds this process made, for the leftover check.
_world_tags: list[str] = []


def in_world(tmp: Path, bin_dir: Path, name: str, fn: Callable[[World], Any], **kw: Any) -> Any:
    world = World(tmp / name, bin_dir, **kw)
    _world_tags.append(world.tag)
    try:
        return fn(world)
    finally:
        world.close()


def run(quick: bool, bin_dir: Path | None = None, log: Callable[[str], None] = print) -> Json:
    plan = Plan(quick)
    started = time.monotonic()
    before = root_fingerprint()
    tmp = Path(tempfile.mkdtemp(prefix="cnit-rel-"))
    out: Json = {"quick": quick}
    try:
        bins = bin_dir.resolve() if bin_dir else script_plugins(tmp / "bin")
        out["bin_dir"] = str(bin_dir) if bin_dir else "source tree (tests.conftest script plugins)"
        kw = {"cache_dir": tmp / "unpack-cache"}
        log(f"load: {plan.waves} wave(s) of {plan.pods} pods, {plan.concurrency} in flight")
        out["load"] = in_world(
            tmp,
            bins,
            "load",
            lambda w: run_load(w, pods=plan.pods, waves=plan.waves, concurrency=plan.concurrency),
            **kw,
        )
        fault_stats: list[faults.FaultStats] = []
        log(f"faults: kills of the process group at {plan.kill_group_delays} ms")
        fault_stats.append(
            in_world(
                tmp,
                bins,
                "kill-group",
                lambda w: faults.kill_sweep(w, plan.kill_group_delays),
                **kw,
            )
        )
        log(f"faults: kills of the plugin alone at {plan.kill_leader_delays} ms")
        fault_stats.append(
            in_world(
                tmp,
                bins,
                "kill-leader",
                lambda w: faults.kill_sweep(w, plan.kill_leader_delays, group=False),
                **kw,
            )
        )
        for name, scenario in faults.SCENARIOS.items():
            log(f"faults: {name}")
            fault_stats.append(in_world(tmp, bins, name.replace(" ", "-"), scenario, **kw))
        log("faults: reboot")
        fault_stats.append(
            in_world(tmp, bins, "reboot", faults.reboot, subnet="10.244.1.1/28", **kw)
        )
        out["faults"] = fault_stats
        log(f"bad input: {plan.examples} examples per plugin")
        out["bad_input"] = in_world(
            tmp, bins, "fuzz", lambda w: run_bad_input(w, examples=plan.examples), **kw
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["seconds"] = time.monotonic() - started
    out["root_unchanged"] = root_fingerprint() == before
    out["namespaces_left"] = our_namespaces(_world_tags)
    out["totals"] = totals(out)
    return out


def totals(out: Json) -> Json:
    load: LoadStats = out["load"]
    fstats: list[faults.FaultStats] = out["faults"]
    bad: Json = out["bad_input"]
    plugins = [v for v in bad.values() if isinstance(v, dict) and "tried" in v]
    limit = bad.get("stdin_limit", {})
    return {
        "pods_added": load.pods_added,
        "pods_deleted": load.pods_deleted,
        "peak": load.peak_in_flight,
        "faults_injected": sum(f.injected for f in fstats),
        "faults_survived": sum(f.survived for f in fstats),
        "inputs_tried": sum(p["tried"] for p in plugins) + len(limit),
        "inputs_execd": sum(p["execd"] for p in plugins) + len(limit),
        "leftovers": len(load.leftovers) + sum(len(f.leftovers) for f in fstats),
        "duplicates": len(load.duplicates),
        "unclean": len(load.unclean)
        + sum(len(f.unclean) for f in fstats)
        + sum(len(p["unclean"]) for p in plugins)
        + (1 if "worker_failed" in bad else 0)
        + sum(1 for v in limit.values() if v.get("code") != 7),
        "changed": sum(len(p["changed"]) for p in plugins)
        + len(bad.get("default_dirs_written", [])),
        "internal_999": sum(len(p["internal"]) for p in plugins),
    }


def passed(out: Json) -> bool:
    t = out["totals"]
    return (
        t["leftovers"] == 0
        and t["unclean"] == 0
        and t["changed"] == 0
        and t["duplicates"] == 0
        and t["faults_injected"] == t["faults_survived"]
        and out["root_unchanged"]
        and not out["namespaces_left"]
    )


def markdown(out: Json) -> str:
    t = out["totals"]
    load: LoadStats = out["load"]
    bad: Json = out["bad_input"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Reliability report ({'quick' if out['quick'] else 'full'} run)",
        "",
        f"{now} on {platform.node()}: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; plugins: {out['bin_dir']}; "
        f"{out['seconds']:.0f} s.  Verdict: **{'PASS' if passed(out) else 'FAIL'}**.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| pods added / deleted (load) | {t['pods_added']} / {t['pods_deleted']} |",
        f"| concurrent peak (pod operations in flight, limit {load.concurrency}) | {t['peak']} |",
        f"| faults injected / survived | {t['faults_injected']} / {t['faults_survived']} |",
        f"| bad inputs tried (of them exec'd) | {t['inputs_tried']} ({t['inputs_execd']}) |",
        f"| leftovers found | {t['leftovers']} |",
        f"| addresses handed out twice | {t['duplicates']} |",
        f"| unclean answers (not exit 0 + result, not exit 1 + one CNI error) | {t['unclean']} |",
        f"| node changed by a failed input | {t['changed']} |",
        f"| answers with code 999 (internal: clean, but unspecific) | {t['internal_999']} |",
        f"| root namespace unchanged | {'yes' if out['root_unchanged'] else 'NO'} |",
        f"| test namespaces left | {len(out['namespaces_left'])} |",
        "",
        "## Load",
        "",
        f"{load.waves} wave(s) of {load.pods_added // max(load.waves, 1)} pods on one node through"
        " flannel -> bridge -> host-local, then portmap (prevResult, two distinct host ports"
        f" per pod); {load.concurrency} pod operations at most in flight; ADDs of a wave, one"
        " UDP datagram to each pod's UDP host port (conntrack entries), then the DELs"
        f" (portmap, flannel).  {load.plugin_calls} plugin execs in {load.seconds:.0f} s.",
        "",
        f"* ADD failures by code: {dict(load.add_failures) or 'none'}",
        f"* DEL failures: {load.del_failures}",
        f"* leftovers after the waves: {load.leftovers or 'none'}",
        "",
        "## Faults",
        "",
        "| scenario | injected | survived | notes |",
        "|---|---|---|---|",
    ]
    for f in out["faults"]:
        notes = "; ".join(f.notes) or ""
        lines.append(f"| {f.name} | {f.injected} | {f.survived} | {notes} |")
    problems = [p for f in out["faults"] for p in (*f.unclean, *f.leftovers)]
    lines += ["", *(f"* {p}" for p in problems[:50])] if problems else []
    lines += [
        "",
        "Survived = the runtime's part (DEL after the fault, retry, GC) succeeded, the"
        " node ended clean (links, addresses, reservations, flannel files, per-pod"
        " iptables/nft rules, conntrack entries to our host ports, plugin processes), and"
        " the next pod's ADD and DEL worked.",
        "",
        "## Bad input",
        "",
        "| plugin | tried | exec'd | exit 0 | error codes | unclean | node changed | 999 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in bad.items():
        if isinstance(p, dict) and "tried" in p:
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(p["codes"].items()) if k != "ok")
            lines.append(
                f"| {name} | {p['tried']} | {p['execd']} | {p['ok']} | {codes} |"
                f" {len(p['unclean'])} | {len(p['changed'])} | {len(p['internal'])} |"
            )
    limit = bad.get("stdin_limit", {})
    lines += [
        "",
        "Stdin over 1 MiB, every binary exec'd: "
        + ", ".join(f"{k} code {v.get('code')}" for k, v in limit.items()),
        "",
        "Files written under the default /var/lib/cni (an empty tmpfs during the run):"
        f" {len(bad.get('default_dirs_written', []))} by the plugins (counted as node changed),"
        f" {len(bad.get('default_cache_written', []))} by the launcher in its default unpack"
        " cache cni-plugins-py (not plugin state; the run points CNI_PLUGINS_CACHE_DIR"
        " at a tmp directory, so 0 unless an exec lost it)",
    ]
    findings = [
        f"* {name}: {item[:600]}"
        for name, p in bad.items()
        if isinstance(p, dict) and "tried" in p
        for item in (*p["unclean"], *p["changed"], *p["internal"])
    ]
    if "worker_failed" in bad:
        findings.append(f"* worker failed: {bad['worker_failed'][:1500]}")
    if findings:
        lines += ["", "Findings:", "", *findings[:40]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.report")
    parser.add_argument("--quick", action="store_true", help="the short form (< 3 minutes)")
    parser.add_argument("--out", type=Path, default=Path("reliability-report.md"))
    parser.add_argument("--bin-dir", type=Path, default=REPO / "dist" / "bin")
    parser.add_argument(
        "--source-tree", action="store_true", help="run the source tree's plugins, not a bin dir"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    bin_dir = None if args.source_tree else args.bin_dir
    if bin_dir is not None and not (bin_dir / "flannel").is_file():
        print(
            f"{bin_dir} has no built plugins: run build/build.py, or pass --source-tree",
            file=sys.stderr,
        )
        return 2
    out = run(args.quick, bin_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
    text = markdown(out)
    args.out.write_text(text)
    print(text)
    return 0 if passed(out) else 1


if __name__ == "__main__":
    sys.exit(main())
