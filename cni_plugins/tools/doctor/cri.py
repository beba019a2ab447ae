"""The runtime's sandbox list over CRI, through ``crictl pods -o json``.

Why crictl and not a client here: CRI is gRPC over HTTP/2, and the bundle the
doctor ships in must not carry grpcio (DESIGN.md section 4: every binary of the
payload pays what the payload holds); crictl is on every node that kubeadm or a
distribution set up, and its JSON is stable (``items[].id``).  Without crictl
the list is unavailable, and the doctor then releases nothing (an unavailable
list is evidence of nothing, so it cannot clear a pod).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from cni_plugins.spec import jsonio

TIMEOUT = 30
_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


class CRIError(Exception):
    """The list could not be had; the message says why."""


def sandbox_ids(socket_path: str) -> set[str]:
    crictl = shutil.which("crictl", path=os.environ.get("PATH", "") + ":" + _PATH)
    if crictl is None:
        raise CRIError("crictl is not installed")
    endpoint = socket_path if "://" in socket_path else f"unix://{socket_path}"
    try:
        done = subprocess.run(
            [crictl, "--runtime-endpoint", endpoint, "pods", "-o", "json"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CRIError(f"crictl failed: {exc}") from None
    if done.returncode != 0:
        raise CRIError(f"crictl pods: {done.stderr.decode(errors='replace').strip()}")
    return parse_pods(done.stdout)


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
