"""The last failed invocations from the plugins' per-invocation logs.

The conflist's plugins name their log with ``logFile`` (flannel passes its own
to bridge and host-local), so the runtime's one-line error can be read next to
what each plugin of the chain said.  Reported only; the other checks name causes.
"""

from __future__ import annotations

from cni_plugins.spec import gokeys, jsonio
from cni_plugins.spec.logfile import last_failures
from cni_plugins.tools.doctor.findings import WARNING, Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.tools.doctor.node import Node

CHECK = "recent-failures"
SHOWN = 5
_LOG_KEY = gokeys.Struct("logFile")  # the key folds as in the plugins' own parsers


def log_files(node: Node) -> list[str]:
    """The distinct absolute ``logFile`` paths of the conflist's plugins, in order."""
    paths: list[str] = []
    for plugin in node.network.plugins if node.network is not None else ():
        raw = jsonio.loads(plugin.bytes)
        path = _LOG_KEY.decode(raw).get("logFile") if isinstance(raw, dict) else None
        if isinstance(path, str) and path.startswith("/") and path not in paths:
            paths.append(path)
    return paths


def check(node: Node) -> list[Finding]:
    findings = []
    for path in log_files(node):
        failures = last_failures(path, SHOWN)
        if not failures:
            continue
        lines = "; ".join(describe(entry) for entry in failures)
        findings.append(
            Finding(
                CHECK,
                WARNING,
                path,
                f"the last {len(failures)} failed invocation(s) logged there: {lines}",
                "read each message: it names the key, file or kernel object at fault;"
                " the other findings here name the node problems behind the common ones",
            )
        )
    return findings


def describe(entry: dict[str, object]) -> str:
    """One logged failure as text: when, who, what, and the CNI error."""
    return (
        f"{entry.get('time', '?')} {entry.get('plugin', '?')} {entry.get('verb', '?')}"
        f" {entry.get('containerID', '') or '-'}: code {entry.get('code', '?')}:"
        f" {entry.get('msg', '')}"
    )
