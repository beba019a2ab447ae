"""The five verbs over a network list, in libcni's order and with its error
messages (libcni/api.go: AddNetworkList, CheckNetworkList, DelNetworkList,
GCNetworkList, GetStatusNetworkList).

* ADD runs the plugins in order, each getting the previous one's result (in
  that result's own version) as ``prevResult``; the last result is cached and
  returned with its version.
* CHECK (config 0.4.0+) and DEL give every plugin the cached result, converted
  to the list's version; DEL runs the plugins in reverse and drops the cache
  file even when it could not be read.
* GC deletes every cached attachment of this network that is not valid (cnitool
  names none valid, so: all of them), then, for 1.1.0+, sends GC to each plugin
  with the list's name and version and no attachment list.
* STATUS (1.1.0+) asks each plugin in turn and stops at the first error.
"""

from __future__ import annotations

from cni_plugins.spec import jsonio
from cni_plugins.spec.convert import result_from_wire, result_to_wire
from cni_plugins.spec.errors import CNIError
from cni_plugins.spec.text import is_name
from cni_plugins.tools.cnitool import runner
from cni_plugins.tools.cnitool.conflist import at_least, go_quote
from cni_plugins.tools.cnitool.errors import PluginError, ToolError
from cni_plugins.tools.cnitool.runtime import RuntimeConf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cni_plugins.spec.types import Result
    from cni_plugins.tools.cnitool.cache import Cache
    from cni_plugins.tools.cnitool.conflist import NetworkList, PluginConf

MAX_IFNAME_LEN = 15  # pkg/utils maxInterfaceNameLength


class Runner:
    """A CNI_PATH and a cache: libcni's CNIConfig."""

    def __init__(self, paths: list[str], cache: Cache) -> None:
        self.paths = paths
        self.cache = cache

    # --- ADD

    def add(self, network: NetworkList, rt: RuntimeConf) -> tuple[Result, str]:
        """The last plugin's result and its cniVersion."""
        prev: tuple[Result, str] | None = None
        for plugin in network.plugins:
            try:
                prev = self._add_one(network, plugin, prev, rt)
            except ToolError as exc:
                raise ToolError(f"plugin {plugin.description()} failed (add): {exc}") from None
        assert prev is not None  # a list has at least one plugin
        try:
            self.cache.add(prev[0], prev[1], network.bytes, network.name, rt)
        except ToolError as exc:
            raise ToolError(
                f"failed to set network {go_quote(network.name)} cached result: {exc}"
            ) from None
        return prev

    def _add_one(
        self,
        network: NetworkList,
        plugin: PluginConf,
        prev: tuple[Result, str] | None,
        rt: RuntimeConf,
    ) -> tuple[Result, str]:
        path = runner.find_in_path(plugin.type, self.paths)
        validate(network.name, rt)
        prev_wire = result_to_wire(*prev) if prev is not None else None
        stdin = runner.plugin_stdin(plugin, network.name, network.cni_version, prev_wire, rt)
        out = runner.run(path, stdin, runner.environment("ADD", rt, self.paths))
        return parse_result(out, network.cni_version or "0.1.0")

    # --- CHECK

    def check(self, network: NetworkList, rt: RuntimeConf) -> None:
        if not at_least(network.cni_version, "0.4.0"):
            raise ToolError(
                f"configuration version {go_quote(network.cni_version)}"
                " does not support the CHECK command"
            )
        if network.disable_check:
            return
        try:
            cached = self.cache.result(network.name, network.cni_version, rt)
        except ToolError as exc:
            raise ToolError(
                f"failed to get network {go_quote(network.name)} cached result: {exc}"
            ) from None
        for plugin in network.plugins:
            path = runner.find_in_path(plugin.type, self.paths)
            stdin = runner.plugin_stdin(plugin, network.name, network.cni_version, cached, rt)
            runner.run(path, stdin, runner.environment("CHECK", rt, self.paths))

    # --- DEL

    def delete(self, network: NetworkList, rt: RuntimeConf) -> None:
        cached = None
        if at_least(network.cni_version, "0.4.0"):
            try:
                cached = self.cache.result(network.name, network.cni_version, rt)
            except ToolError:
                self.cache.delete(network.name, rt)
        for plugin in reversed(network.plugins):
            try:
                path = runner.find_in_path(plugin.type, self.paths)
                stdin = runner.plugin_stdin(plugin, network.name, network.cni_version, cached, rt)
                runner.run(path, stdin, runner.environment("DEL", rt, self.paths))
            except ToolError as exc:
                raise ToolError(f"plugin {plugin.description()} failed (delete): {exc}") from None
        self.cache.delete(network.name, rt)

    # --- GC

    def gc(self, network: NetworkList) -> None:
        if network.disable_gc:
            return
        errors: list[str] = []
        for name, attachment in self.cache.attachments():
            if name != network.name:
                continue
            try:
                self.delete(network, attachment.runtime_conf())
            except ToolError as exc:
                errors.append(
                    f"failed to delete stale attachment {attachment.container_id}"
                    f" {attachment.ifname}: {exc}"
                )
        if _at_least_quiet(network.cni_version, "1.1.0"):
            for plugin in network.plugins:
                try:
                    self._list_wide("GC", network, plugin)
                except ToolError as exc:
                    errors.append(f"failed to GC plugin {plugin.type}: {exc}")
        if errors:
            raise ToolError("\n".join(errors))

    # --- STATUS

    def status(self, network: NetworkList) -> None:
        if not _at_least_quiet(network.cni_version, "1.1.0"):
            return
        for plugin in network.plugins:
            self._list_wide("STATUS", network, plugin)

    def _list_wide(self, command: str, network: NetworkList, plugin: PluginConf) -> None:
        """GC and STATUS: no attachment, so empty CNI_CONTAINERID/NETNS/IFNAME."""
        path = runner.find_in_path(plugin.type, self.paths)
        stdin = runner.plugin_stdin(plugin, network.name, network.cni_version, None, None)
        runner.run(path, stdin, runner.environment(command, RuntimeConf(), self.paths))


def _at_least_quiet(version: str, minimum: str) -> bool:
    """libcni ignores a parse error here (``gt, _ :=``): not at least."""
    try:
        return at_least(version, minimum)
    except ToolError:
        return False


def validate(network_name: str, rt: RuntimeConf) -> None:
    """pkg/utils ValidateContainerID, ValidateNetworkName, ValidateInterfaceName
    (ADD only), with their CNI codes and messages."""
    if not rt.container_id:
        raise PluginError(3, "missing containerID")
    if not is_name(rt.container_id):
        raise PluginError(4, "invalid characters in containerID", rt.container_id)
    if not network_name:
        raise PluginError(7, "missing network name:")
    if not is_name(network_name):
        raise PluginError(7, "invalid characters found in network name", network_name)
    ifname = rt.ifname
    if not ifname:
        raise PluginError(4, "interface name is empty")
    if len(ifname.encode()) > MAX_IFNAME_LEN:
        raise PluginError(
            4,
            "interface name is too long",
            f"interface name should be less than {MAX_IFNAME_LEN + 1} characters",
        )
    if ifname in (".", ".."):
        raise PluginError(4, "interface name is . or ..")
    if any(c in "/:" or c.isspace() for c in ifname):
        raise PluginError(4, "interface name contains / or : or whitespace characters")


def parse_result(out: bytes, config_version: str) -> tuple[Result, str]:
    """A plugin's ADD output; without a cniVersion it is taken to be in the
    config's version (pkg/invoke fixupResultVersion)."""
    try:
        raw: Any = jsonio.loads(out)
    except ValueError as exc:
        raise ToolError(f"failed to unmarshal raw result: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ToolError("failed to unmarshal raw result: not a JSON object")
    version = raw.get("cniVersion")
    if not isinstance(version, str) or not version:
        version = config_version
        raw["cniVersion"] = version
    try:
        return result_from_wire(raw, version, "result"), version
    except CNIError as exc:
        raise ToolError(str(exc)) from None
