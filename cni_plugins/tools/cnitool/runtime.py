"""The per-attachment arguments (libcni's RuntimeConf) from cnitool's command
line and environment (cnitool/cmd/root.go: setupRuntimeConfig)."""

from __future__ import annotations

import hashlib
import os

from cni_plugins.spec import jsonio
from cni_plugins.tools.cnitool.errors import ToolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_NETCONFPATH = "/etc/cni/net.d"
DEFAULT_IFNAME = "eth0"


class RuntimeConf:
    __slots__ = ("capability_args", "cni_args", "container_id", "ifname", "netns")

    def __init__(
        self,
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        cni_args: list[tuple[str, str]] | None = None,
        capability_args: dict[str, Any] | None = None,
    ) -> None:
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.cni_args = cni_args or []
        self.capability_args = capability_args or {}

    def cni_args_string(self) -> str:
        """CNI_ARGS as libcni passes it: ``K=V`` joined by ``;``."""
        return ";".join(f"{k}={v}" for k, v in self.cni_args)


def container_id_for(netns: str) -> str:
    """upstream: ``cnitool-`` + the first 10 bytes of sha512(absolute netns path), in hex."""
    return "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]


def parse_cni_args(raw: str) -> list[tuple[str, str]]:
    """``K1=V1;K2=V2``; every pair needs a non-empty key and value and one ``=``."""
    pairs = []
    for pair in raw.split(";"):
        kv = pair.split("=")
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise ToolError(f"invalid CNI_ARGS pair {jsonio.dumps(pair)}")
        pairs.append((kv[0], kv[1]))
    return pairs


def parse_capability_args(raw: str) -> dict[str, Any]:
    try:
        value = jsonio.loads(raw)
    except ValueError as exc:
        raise ToolError(f"CAP_ARGS: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ToolError("CAP_ARGS: must be a JSON object of capability name -> value")
    return value


def from_environ(netns: str, environ: Mapping[str, str], ifname: str = "") -> RuntimeConf:
    capability_args = environ.get("CAP_ARGS", "")
    cni_args = environ.get("CNI_ARGS", "")
    path = os.path.abspath(netns)
    return RuntimeConf(
        container_id=container_id_for(path),
        netns=path,
        ifname=ifname or environ.get("CNI_IFNAME", "") or DEFAULT_IFNAME,
        cni_args=parse_cni_args(cni_args) if cni_args else [],
        capability_args=parse_capability_args(capability_args) if capability_args else {},
    )
