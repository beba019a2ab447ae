"""The runtime's sandbox list over CRI, through ``crictl pods -o json``.

Why crictl and not a client here: CRI is gRPC over HTTP/2, and the bundle the
doctor ships in must not carry grpcio (DESIGN.md section 4: every binary of the
payload pays what the payload holds); crictl is on every node that kubeadm or a
distribution set up, and its JSON is stable (``items[].id``).  Without crictl
the list is unavailable, and the doctor then releases nothing (an unavailable
list is evidence of nothing, so it cannot clear a pod).
"""

from __future__ import annotations

from cni_plugins.linux.iptables import ToolNotFound, run_tool
from cni_plugins.spec import jsonio
from cni_plugins.spec.errors import CNIError


class CRIError(Exception):
    """The list could not be had; the message says why."""


def sandbox_ids(socket_path: str) -> set[str]:
    endpoint = socket_path if "://" in socket_path else f"unix://{socket_path}"
    # run_tool, not subprocess: no threads in the doctor's process either
    try:
        status, out, err = run_tool(
            ["crictl", "--runtime-endpoint", endpoint, "pods", "-o", "json"]
        )
    except ToolNotFound:
        raise CRIError("crictl is not installed") from None
    except CNIError as exc:
        raise CRIError(f"crictl failed: {exc.msg}") from None
    if status != 0:
        raise CRIError(f"crictl pods: {err.decode(errors='replace').strip()}")
    return parse_pods(out)


def parse_pods(data: bytes) -> set[str]:
    """IDs of ``crictl pods -o json`` output (every state: a NotReady sandbox
    may still be torn down by the runtime, which sends the DEL itself)."""
    try:
        raw = jsonio.loads(data)
    except ValueError as exc:
        raise CRIError(f"crictl pods printed no JSON: {exc}") from None
    items = raw.get("items") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise CRIError("crictl pods printed no 'items' list")
    return {str(i["id"]) for i in items if isinstance(i, dict) and i.get("id")}
