"""A recording test-double CNI plugin (the idea of containernetworking/cni's
plugins/test/noop): it appends what it was called with to a JSON-lines file and
answers as a control file says, so tests can assert what a delegating plugin
handed to its delegate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCRIPT = """#!{python}
import json, os, sys
base = {base!r}
data = sys.stdin.buffer.read()
cmd = os.environ.get("CNI_COMMAND", "")
with open(os.path.join(base, "calls.jsonl"), "a") as f:
    f.write(json.dumps({{"name": {name!r}, "cmd": cmd, "stdin": data.decode(),
                        "env": dict(os.environ)}}) + "\\n")
try:
    with open(os.path.join(base, "control.json")) as f:
        control = json.load(f).get(cmd, {{}})
except FileNotFoundError:
    control = {{}}
if "error" in control:
    print(json.dumps(control["error"]))
    sys.exit(1)
version = json.loads(data or b"{{}}").get("cniVersion", "0.1.0") if cmd == "ADD" else ""
ip = {{"address": "10.1.17.2/24", "gateway": "10.1.17.1"}}
if version in ("0.1.0", "0.2.0"):
    default = {{"cniVersion": version, "ip4": {{"ip": ip["address"], "gateway": ip["gateway"]}}}}
elif version.startswith("0."):
    default = {{"cniVersion": version, "ips": [dict(ip, version="4")]}}
else:
    default = {{"cniVersion": version, "ips": [ip]}}
if cmd == "ADD":
    print(json.dumps(control.get("result", default)))
elif cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": {versions!r}}}))
"""

VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


class Recorder:
    """A directory holding the double under one or more plugin names."""

    def __init__(self, directory: Path, names: tuple[str, ...] = ("bridge",)) -> None:
        self.dir = directory
        self.bin = directory / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = self.bin / name
            path.write_text(
                SCRIPT.format(
                    python=sys.executable, base=str(directory), name=name, versions=VERSIONS
                )
            )
            path.chmod(0o755)

    def control(self, **per_command: dict[str, Any]) -> None:
        """e.g. ``control(ADD={"error": {"code": 11, "msg": "busy"}})``."""
        (self.dir / "control.json").write_text(json.dumps(per_command))

    def calls(self) -> list[dict[str, Any]]:
        path = self.dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [c["cmd"] for c in self.calls()]
