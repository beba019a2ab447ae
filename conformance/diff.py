"""Differential mode: run the same scenarios against two plugin directories and report
where they differ, after masking what legitimately varies (MACs, veth names, netns and
temp paths).  Compared: normalised results, error codes, exit statuses, stdout
emptiness, files under dataDir (content and mode) and the node's nat table.

    python -m conformance diff --bin-dir A --other B [--plugins host-local,bridge]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conformance.convert import normalise
from conformance.discovery import PLUGIN_NAMES, PluginInfo, probe
from conformance.harness import Harness
from conformance.netns import World, world
from conformance.proc import Outcome
from conformance.versions import has_check, key

CONTAINER_ID = "cnfdiff0"  # fixed: chain names and store files hash/name it
_MASKS = (
    (re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b"), "<mac>"),
    (re.compile(r"\bveth[0-9a-z]{8}\b"), "<veth>"),
    (re.compile(r"/(?:var/)?run/netns/cnf-[0-9a-f]+"), "<netns>"),
    (re.compile(r"/tmp/cnf-[A-Za-z0-9_]+"), "<tmp>"),
)


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def summarise(outcome: Outcome) -> dict[str, Any]:
    """Exit status plus either the masked, normalised result or the error code."""
    summary: dict[str, Any] = {"rc": outcome.rc}
    if not outcome.stdout.strip():
        return summary
    try:
        data = json.loads(mask(outcome.stdout.decode(errors="replace")))
    except ValueError:
        summary["stdout"] = "<not JSON>"
        return summary
    if outcome.rc != 0 and isinstance(data, dict):
        summary["code"] = data.get("code")
    elif isinstance(data, dict):
        summary["result"] = normalise(data)
    return summary


def files(w: World) -> dict[str, str]:
    found = {}
    for path in sorted(w.tmp.rglob("*")):
        if path.is_file() and path.name != "subnet.env" and "delegates" not in path.parts:
            mode = oct(path.stat().st_mode & 0o777)
            found[str(path.relative_to(w.tmp))] = (
                f"{mode} {mask(path.read_text(errors='replace'))!r}"
            )
    return found


def _lifecycle(h: Harness, version: str) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    add = h.add(version)
    obs["ADD"] = summarise(add)
    obs["files after ADD"] = files(h.world)
    obs["nat after ADD"] = [mask(r) for r in h.world.node.nat_rules()]
    config = h.config(version)
    if add.rc == 0 and has_check(version):
        config["prevResult"] = json.loads(add.stdout)
        obs["CHECK"] = summarise(h.run("CHECK", config))
    obs["DEL"] = summarise(h.run("DEL", config))
    obs["DEL again"] = summarise(h.run("DEL", config))
    obs["files after DEL"] = files(h.world)
    obs["nat after DEL"] = [mask(r) for r in h.world.node.nat_rules()]
    return obs


_ERROR_CASES: dict[str, Callable[[Harness, str], Outcome]] = {
    "bad container id": lambda h, v: h.add(v, CNI_CONTAINERID="a/b"),
    "bad ifname": lambda h, v: h.add(v, CNI_IFNAME="e123456789abcdef"),
    "missing env": lambda h, v: h.add(v, CNI_CONTAINERID=None, CNI_IFNAME=None),
    "invalid json": lambda h, v: h.run("ADD", b"{"),
    "unsupported version": lambda h, v: h.run("ADD", h.config("9.9.9")),
    "bad network name": lambda h, v: h.run("ADD", h.config(v, name="a/b")),
}


def observe(info: PluginInfo, bin_dir: Path, version: str) -> dict[str, Any]:
    with world() as w:
        h = Harness(w, info, bin_dir)
        h.container_id = CONTAINER_ID
        obs = _lifecycle(h, version)
    for name, case in _ERROR_CASES.items():
        with world() as w:
            h = Harness(w, info, bin_dir)
            h.container_id = CONTAINER_ID
            obs[name] = summarise(case(h, version))
    return obs


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            side_a, side_b = json.dumps(a.get(name)), json.dumps(b.get(name))
            lines.append(f"    {name}:\n      A: {side_a}\n      B: {side_b}")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance diff", description=__doc__)
    parser.add_argument("--bin-dir", required=True, type=Path, help="implementation A")
    parser.add_argument("--other", required=True, type=Path, help="implementation B")
    parser.add_argument("--plugins", default="", help="comma-separated subset")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("conformance diff: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    names = [n for n in args.plugins.split(",") if n] or list(PLUGIN_NAMES)
    differences = 0
    for name in names:
        a, b = probe(name, args.bin_dir.resolve()), probe(name, args.other.resolve())
        if not (a.present and b.present):
            print(f"{name}: not applicable (present in A: {a.present}, B: {b.present})")
            continue
        common = sorted(set(a.supported) & set(b.supported), key=key)
        only = sorted(set(a.supported) ^ set(b.supported), key=key)
        if only:
            print(f"{name}: versions only one side supports (not compared): {', '.join(only)}")
        for version in common:
            lines = compare(
                observe(a, args.bin_dir.resolve(), version),
                observe(b, args.other.resolve(), version),
            )
            differences += len(lines)
            print(f"{name} {version}: {'same' if not lines else f'{len(lines)} difference(s)'}")
            for line in lines:
                print(line)
    print(f"total differences: {differences}")
    return 1 if differences else 0
