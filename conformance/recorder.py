"""Install and read the recording delegate test double (conformance/doubles/recorder)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORDER_SOURCE = Path(__file__).parent / "doubles" / "recorder"

# Variables an interpreter may add to its own environment at start-up (PEP 538 locale
# coercion); they say nothing about what the upper plugin passed on.
INTERPRETER_ENV = frozenset({"LC_CTYPE"})


@dataclass
class Recorder:
    directory: Path

    def script(self, command: str, *, stdout: str = "", rc: int = 0) -> None:
        path = self.directory / "script.json"
        script = json.loads(path.read_text()) if path.exists() else {}
        script[command] = {"stdout": stdout, "rc": rc}
        path.write_text(json.dumps(script))

    def records(self, command: str | None = None) -> list[dict[str, Any]]:
        path = self.directory / "records.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [r for r in records if command is None or r["command"] == command]

    def commands(self) -> list[str]:
        return [str(r["command"]) for r in self.records()]


def install_recorder(directory: Path, name: str) -> Recorder:
    """Copy the recorder into ``directory`` as ``name``, with a shebang naming the
    running interpreter (the suite's venv Python), and return a handle on it."""
    directory.mkdir(parents=True, exist_ok=True)
    body = RECORDER_SOURCE.read_text().split("\n", 1)[1]
    target = directory / name
    target.write_text(f"#!{sys.executable}\n{body}")
    target.chmod(0o755)
    return Recorder(directory)


def env_difference(sent: dict[str, str], received: dict[str, str]) -> dict[str, Any]:
    """Variables that differ between what the upper plugin got and what its delegate got,
    ignoring CNI_COMMAND (overridden by design) and interpreter-added variables."""
    ignored = INTERPRETER_ENV | {"CNI_COMMAND"}
    keys = (set(sent) | set(received)) - ignored
    return {
        k: (sent.get(k), received.get(k)) for k in sorted(keys) if sent.get(k) != received.get(k)
    }
