"""What the doctor found: plain records, their JSON and their text form.

Pure: no I/O.  ``severity`` is ``error`` for what breaks pod starts or leaks
per-pod state, ``warning`` for the rest.  ``repaired`` is set by a repair that
succeeded; the exit status counts what is left.
"""

from __future__ import annotations

from cni_plugins.spec import jsonio

ERROR = "error"
WARNING = "warning"


class Finding:
    __slots__ = ("check", "fix", "message", "repaired", "severity", "subject")

    def __init__(self, check: str, severity: str, subject: str, message: str, fix: str) -> None:
        if severity not in (ERROR, WARNING):
            raise ValueError(f"unknown severity {severity!r}")
        self.check = check
        self.severity = severity
        self.subject = subject
        self.message = message
        self.fix = fix
        self.repaired = False

    def to_json(self) -> dict[str, object]:
        return {
            "check": self.check,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
            "fix": self.fix,
            "repaired": self.repaired,
        }

    def __repr__(self) -> str:
        return f"Finding({self.check}, {self.severity}, {self.subject!r})"


def exit_status(findings: list[Finding]) -> int:
    """0 when nothing is left to do, 1 otherwise."""
    return 1 if any(not f.repaired for f in findings) else 0


def render_json(findings: list[Finding]) -> str:
    return jsonio.dumps({"findings": [f.to_json() for f in findings]}, indent=2) + "\n"


def render_text(findings: list[Finding]) -> str:
    if not findings:
        return "cni-doctor: no problems found\n"
    lines = []
    for f in findings:
        state = " [repaired]" if f.repaired else ""
        lines.append(f"{f.severity.upper()} {f.check}: {f.subject}{state}")
        lines.append(f"  {f.message}")
        lines.append(f"  fix: {f.fix}")
    left = sum(1 for f in findings if not f.repaired)
    lines.append(f"cni-doctor: {len(findings)} problem(s) found, {left} left")
    return "\n".join(lines) + "\n"
