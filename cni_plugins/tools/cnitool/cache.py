"""libcni's result cache (libcni/api.go: cachedInfo, cacheAdd, getCachedResult,
GetCachedAttachments), byte-compatible so that an attachment added by either
tool can be checked, deleted and garbage-collected by the other.

``<cache dir>/results/<network>-<container id>-<ifname>``, mode 0600 in a 0700
directory, one line of JSON (Go's json.Marshal: struct fields in this order,
maps with sorted keys)::

    {"kind":"cniCacheV1","containerId":...,"config":<base64 of the list's bytes>,
     "ifName":...,"networkName":...,"netns":...,"cniArgs":[[k,v],...],
     "capabilityArgs":{...},"result":{...}}

``netns``, ``cniArgs``, ``capabilityArgs`` and ``result`` are omitted when empty.
A file that is not of kind cniCacheV1 is read as a bare result (the format
before cniCacheV1).
"""

from __future__ import annotations

import base64
import os

from cni_plugins.spec import jsonio
from cni_plugins.spec.convert import result_from_wire, result_to_wire
from cni_plugins.spec.errors import CNIError
from cni_plugins.tools.cnitool.conflist import go_quote
from cni_plugins.tools.cnitool.errors import ToolError
from cni_plugins.tools.cnitool.runtime import RuntimeConf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cni_plugins.spec.types import Result

DEFAULT_CACHE_DIR = "/var/lib/cni"  # libcni.CacheDir
KIND = "cniCacheV1"


class Attachment:
    """One cache file, as GetCachedAttachments reports it."""

    __slots__ = ("capability_args", "cni_args", "container_id", "ifname", "netns")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.container_id = str(raw.get("containerId", ""))
        self.ifname = str(raw["ifName"])
        self.netns = str(raw.get("netns", ""))
        self.cni_args = [(str(k), str(v)) for k, v in raw.get("cniArgs") or []]
        self.capability_args: dict[str, Any] = raw.get("capabilityArgs") or {}

    def runtime_conf(self) -> RuntimeConf:
        return RuntimeConf(
            self.container_id, self.netns, self.ifname, self.cni_args, self.capability_args
        )


class Cache:
    def __init__(self, directory: str = DEFAULT_CACHE_DIR) -> None:
        self.directory = directory

    def path(self, network: str, rt: RuntimeConf) -> str:
        if not network or not rt.container_id or not rt.ifname:
            raise ToolError(
                f"cache file path requires network name ({go_quote(network)}), container ID"
                f" ({go_quote(rt.container_id)}), and interface name ({go_quote(rt.ifname)})"
            )
        name = f"{network}-{rt.container_id}-{rt.ifname}"
        return os.path.join(self.directory, "results", name)

    def add(self, result: Result, result_version: str, config: bytes, network: str,
            rt: RuntimeConf) -> None:  # fmt: skip
        fields: list[tuple[str, object]] = [
            ("kind", KIND),
            ("containerId", rt.container_id),
            ("config", base64.b64encode(config).decode()),
            ("ifName", rt.ifname),
            ("networkName", network),
        ]
        if rt.netns:
            fields.append(("netns", rt.netns))
        if rt.cni_args:
            fields.append(("cniArgs", [list(kv) for kv in rt.cni_args]))
        if rt.capability_args:
            fields.append(("capabilityArgs", rt.capability_args))
        fields.append(("result", result_to_wire(result, result_version)))
        # Go marshals the struct in field order, the maps inside with sorted keys.
        body = ",".join(
            jsonio.dumps(key) + ":" + jsonio.dumps(value, sort_keys=True, compact=True)
            for key, value in fields
        )
        path = self.path(network, rt)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w") as f:
                f.write("{" + body + "}")
        except OSError as exc:
            raise ToolError(f"{exc.filename}: {exc.strerror}") from None

    def delete(self, network: str, rt: RuntimeConf) -> None:
        try:
            os.remove(self.path(network, rt))
        except (OSError, ToolError):
            pass  # libcni ignores both

    def result(self, network: str, version: str, rt: RuntimeConf) -> dict[str, Any] | None:
        """The cached result in ``version`` (the list's: libcni's GetAsVersion, so
        that plugins get prevResult in their config's version), None if there is
        no readable cache file."""
        path = self.path(network, rt)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None  # libcni: the cached result may not exist on disk
        try:
            raw = jsonio.loads(data)
        except ValueError as exc:
            raise ToolError(f"decoding version from network config: {exc}") from None
        if isinstance(raw, dict) and raw.get("kind") == KIND:
            raw = raw.get("result")
        try:
            result = result_from_wire(raw or {}, "0.1.0", "cached result")
            return result_to_wire(result, version)
        except CNIError as exc:
            raise ToolError(
                f"failed to convert cached result to config version {go_quote(version)}: {exc}"
            ) from None

    def attachments(self) -> list[tuple[str, Attachment]]:
        """(network name, attachment) for every well-formed cniCacheV1 file,
        in file name order; unreadable or foreign files are skipped."""
        directory = os.path.join(self.directory, "results")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []
        found = []
        for name in names:
            try:
                with open(os.path.join(directory, name), "rb") as f:
                    raw = jsonio.loads(f.read())
            except (OSError, ValueError):
                continue
            if not isinstance(raw, dict) or raw.get("kind") != KIND:
                continue
            if not raw.get("ifName") or not raw.get("networkName"):
                continue
            found.append((str(raw["networkName"]), Attachment(raw)))
        return found
