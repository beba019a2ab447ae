"""Loading a network configuration list the libcni way (libcni/conf.go).

``load(dir, name)``: the ``.conflist`` files of ``dir``, sorted, are parsed in
turn (any broken one is an error, even before the match) and the first whose
``name`` matches wins; failing that, the ``.conf``/``.json`` files (sorted) are
searched and the matching single config is wrapped into a one-plugin list.  A
conflist without ``loadOnlyInlinedPlugins`` also gets the plugins of
``<dir>/<name>/*.conf``.  ``cniVersions`` picks the highest version not newer
than the one this tool implements, ``cniVersion`` included.

Keys as libcni reads them: the list itself is decoded into a Go map, so its
keys (``name``, ``cniVersion``, ``plugins``, ``disableCheck``...) match exactly;
each plugin config is decoded into ``types.PluginConf``, a struct, so its keys
fold as Go's ``encoding/json`` does (``Type``, ``Name``, ``Capabilities``; see
spec.gokeys), while the keys *of* the ``capabilities`` map stay exact.
"""

from __future__ import annotations

import os

from cni_plugins.spec import gokeys, jsonio
from cni_plugins.spec.version import CURRENT
from cni_plugins.tools.cnitool.errors import ToolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PluginConf:
    """One plugin of a list: its config bytes (as libcni re-marshals them) and
    the fields libcni reads from them."""

    __slots__ = ("bytes", "capabilities", "cni_version", "name", "type")

    def __init__(self, data: bytes) -> None:
        try:
            given = jsonio.loads(data, go_key_order=True)
        except ValueError as exc:
            raise ToolError(f"error parsing configuration: {exc}") from None
        if not isinstance(given, dict):
            raise ToolError("error parsing configuration: not a JSON object")
        raw = gokeys.NETCONF.decode(given)  # types.PluginConf
        plugin_type = raw.get("type", "")
        name = raw.get("name", "")
        cni_version = raw.get("cniVersion") or ""
        caps = raw.get("capabilities") or {}
        if not all(isinstance(v, str) for v in (plugin_type, name, cni_version)):
            raise ToolError(
                "error parsing configuration: type, name and cniVersion must be strings"
            )
        if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
            raise ToolError("error parsing configuration: capabilities must map names to booleans")
        if not plugin_type:
            raise ToolError("error parsing configuration: missing 'type'")
        self.bytes = data
        self.type = plugin_type
        self.name = name
        self.cni_version = cni_version
        self.capabilities: dict[str, bool] = caps

    def description(self) -> str:
        """libcni's pluginDescription, used in its error messages."""
        out = f"type={go_quote(self.type)}"
        return out + (f" name={go_quote(self.name)}" if self.name else "")


class NetworkList:
    __slots__ = (
        "bytes",
        "cni_version",
        "disable_check",
        "disable_gc",
        "inlined_only",
        "name",
        "plugins",
    )

    def __init__(
        self,
        *,
        name: str,
        cni_version: str,
        plugins: list[PluginConf],
        data: bytes,
        disable_check: bool = False,
        disable_gc: bool = False,
        inlined_only: bool = False,
    ) -> None:
        self.name = name
        self.cni_version = cni_version
        self.plugins = plugins
        self.bytes = data  # what the cache keeps (base64) as "config"
        self.disable_check = disable_check
        self.disable_gc = disable_gc
        # loadOnlyInlinedPlugins: no plugins from <dir>/<name>/*.conf
        self.inlined_only = inlined_only


def go_marshal(obj: object) -> bytes:
    """Go's json.Marshal of a decoded value: compact, map keys sorted."""
    return jsonio.dumps(obj, sort_keys=True, compact=True).encode()


def go_quote(value: str) -> str:
    """Go's %q for the plain strings these messages carry."""
    return jsonio.dumps(value)


# --- versions, as pkg/version compares them ("" is 0.1.0; missing parts are 0)


def go_version(value: str) -> tuple[int, int, int]:
    if value == "":
        return (0, 1, 0)
    parts = value.split(".")
    if len(parts) >= 4:
        raise ToolError(f"invalid version {go_quote(value)}: too many parts")
    numbers = [0, 0, 0]
    for i, (what, part) in enumerate(zip(("major", "minor", "micro"), parts, strict=False)):
        digits = part[1:] if part[:1] in "+-" else part
        if not digits.isdigit() or not digits.isascii():
            raise ToolError(f"failed to convert {what} version part {go_quote(part)}")
        numbers[i] = int(part)
    return numbers[0], numbers[1], numbers[2]


def at_least(value: str, minimum: str) -> bool:
    return go_version(value) >= go_version(minimum)


# --- parsing


def list_from_bytes(data: bytes) -> NetworkList:
    """libcni NetworkConfFromBytes: a list, without the plugins of a directory."""
    try:
        raw = jsonio.loads(data)
    except ValueError as exc:
        raise ToolError(f"error parsing configuration list: {exc}") from None
    if not isinstance(raw, dict):
        raise ToolError("error parsing configuration list: not a JSON object")
    if "name" not in raw:
        raise ToolError("error parsing configuration list: no name")
    name = raw["name"]
    if not isinstance(name, str):
        raise ToolError(f"error parsing configuration list: invalid name type {_go_type(name)}")
    cni_version = raw.get("cniVersion", "")
    if not isinstance(cni_version, str):
        raise ToolError(
            f"error parsing configuration list: invalid cniVersion type {_go_type(cni_version)}"
        )
    if "cniVersions" in raw:
        cni_version = _negotiate(raw["cniVersions"], cni_version)
    disable_check = _read_bool(raw, "disableCheck")
    disable_gc = _read_bool(raw, "disableGC")
    inlined_only = _read_bool(raw, "loadOnlyInlinedPlugins")
    plugins: list[PluginConf] = []
    if "plugins" in raw:
        items = raw["plugins"]
        if not isinstance(items, list):
            raise ToolError(
                f"error parsing configuration list: invalid 'plugins' type {_go_type(items)}"
            )
        if not items:
            raise ToolError("error parsing configuration list: no plugins in list")
        for i, item in enumerate(items):
            try:
                plugins.append(PluginConf(go_marshal(item)))
            except ToolError as exc:
                raise ToolError(f"failed to parse plugin config {i}: {exc}") from None
    elif inlined_only:
        raise ToolError(
            "error parsing configuration list: `loadOnlyInlinedPlugins` is true,"
            " and no 'plugins' key"
        )
    return NetworkList(
        name=name,
        cni_version=cni_version,
        plugins=plugins,
        data=bytes(data),
        disable_check=disable_check,
        disable_gc=disable_gc,
        inlined_only=inlined_only,
    )


def _negotiate(versions: Any, cni_version: str) -> str:
    if not isinstance(versions, list):
        raise ToolError(
            f"error parsing configuration list: invalid type for cniVersions: {_go_type(versions)}"
        )
    usable: list[tuple[tuple[int, int, int], str]] = []
    current = go_version(CURRENT)
    for i, entry in enumerate(versions):
        if not isinstance(entry, str):
            raise ToolError(
                "error parsing configuration list: invalid type for cniVersions"
                f" index {i}: {_go_type(entry)}"
            )
        try:
            parsed = go_version(entry)
        except ToolError as exc:
            raise ToolError(
                "error parsing configuration list: invalid cniVersions entry"
                f" {entry} at index {i}: {exc}"
            ) from None
        if parsed <= current:  # newer than this implementation: skipped
            usable.append((parsed, entry))
    if cni_version:
        try:
            parsed = go_version(cni_version)
        except ToolError as exc:
            raise ToolError(
                f"error parsing configuration list: invalid cniVersion {cni_version}: {exc}"
            ) from None
        if parsed <= current:
            usable.append((parsed, cni_version))
    return max(usable)[1] if usable else cni_version


def _read_bool(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ToolError(
            f"error parsing configuration list: invalid type {_go_type(value)} for {key}"
        )
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ToolError(
        f"error parsing configuration list: invalid value {go_quote(value.lower())} for {key}"
    )


def _go_type(value: object) -> str:
    """The Go type json.Unmarshal gives ``value`` (for libcni's %T messages)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


# --- files


def conf_files(directory: str, extensions: tuple[str, ...]) -> list[str]:
    """Sorted non-directory entries of ``directory`` with one of ``extensions``;
    a missing directory has none."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ToolError(f"open {directory}: {str(exc.strerror).lower()}") from None
    found = []
    for name in sorted(names):
        path = os.path.join(directory, name)
        if os.path.splitext(name)[1] in extensions and not os.path.isdir(path):
            found.append(path)
    return found


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ToolError(f"error reading {path}: {exc.strerror}") from None


def list_from_file(path: str) -> NetworkList:
    network = list_from_bytes(_read(path))
    if not network.inlined_only:
        plugin_dir = os.path.join(os.path.dirname(path), network.name)
        for plugin_path in conf_files(plugin_dir, (".conf",)):
            network.plugins.append(PluginConf(_read(plugin_path)))
    if not network.plugins:
        raise ToolError("no plugin configs found")
    return network


def load(directory: str, name: str) -> NetworkList:
    """libcni LoadNetworkConf."""
    lists = conf_files(directory, (".conflist",))
    for path in lists:
        network = list_from_file(path)
        if network.name == name:
            return network
    singles = conf_files(directory, (".conf", ".json"))
    if not singles:
        if lists:
            raise ToolError(f'no net configuration with name "{name}" in {directory}')
        raise ToolError(f"no net configurations found in {directory}")
    for path in singles:
        data = _read(path)
        plugin = PluginConf(data)
        raw = jsonio.loads(data)
        if plugin.name == name:
            # ConfListFromConf: name and cniVersion as the struct decoded them.
            wrapped = {
                "cniVersion": plugin.cni_version,
                "name": name,
                "plugins": [raw],
            }
            return list_from_bytes(go_marshal(wrapped))
    raise ToolError(f'no net configuration with name "{name}" in {directory}')
