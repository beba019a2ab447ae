"""Read and write kernel parameters under ``/proc/sys``.

Network sysctls (``net/...``) belong to the network namespace of the thread that
*opens* the file, so a caller enters the pod namespace first
(``with ns.entered(): sysctl.write(...)``); nothing here switches namespaces.

Names come in three spellings:

* a tuple of path components: ``("net", "ipv4", "conf", "eth0.100", "rp_filter")``;
* a slash path: ``"net/ipv4/conf/eth0/accept_ra"`` (what the Go plugins use);
* a dotted name: ``"net.ipv4.ip_forward"``, split on every dot.

Interface names may contain dots (``cni0.100``), which a dotted name cannot
express, so per-interface keys are built from components with ``conf_key`` and
never by replacing dots in a string.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    Name = str | tuple[str, ...]

__all__ = ["conf_key", "path", "read", "write"]

ROOT = "/proc/sys"


def conf_key(ifname: str, key: str, *, family: int = 4) -> tuple[str, ...]:
    """``net/ipv{4,6}/conf/<ifname>/<key>`` as components; ``ifname`` may contain dots."""
    return ("net", "ipv4" if family == 4 else "ipv6", "conf", ifname, key)


def path(name: Name) -> str:
    """The ``/proc/sys`` path for ``name``; ValueError for components that could
    escape or that are empty (``..``, ``a//b``, a ``/`` inside a tuple element)."""
    if isinstance(name, tuple):
        parts = name
    elif "/" in name:
        parts = tuple(name.strip("/").split("/"))
    else:
        parts = tuple(name.split("."))
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\0" in part:
            raise ValueError(f"invalid sysctl name {name!r}")
    return "/".join((ROOT, *parts))


def read(name: Name) -> str:
    """The value, without the trailing newline."""
    fd = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096).decode().rstrip("\n")
    finally:
        os.close(fd)


def write(name: Name, value: str | int) -> None:
    """Write ``value`` in one ``write(2)``, as ``sysctl -w`` does.

    Raises ``FileNotFoundError`` for an unknown key (or interface) and the
    kernel's ``OSError`` (e.g. EINVAL) for a value it rejects.
    """
    data = str(value).encode()
    fd = os.open(path(name), os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
