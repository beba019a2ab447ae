"""A small libcni-like runtime driver for network configuration lists.

What it does, like libcni (`libcni/api.go`, reference doc sections 1.5-1.6):
- picks the list's version (highest of cniVersion/cniVersions it knows) and injects
  ``name`` and ``cniVersion`` into every plugin config;
- injects ``runtimeConfig`` with only the capabilities a plugin declares ``true`` and the
  runtime supplies (omitted when empty);
- ADD in order, each plugin after the first getting the previous result as
  ``prevResult``; the final result is cached;
- DEL in reverse order, CHECK in order, both with the cached final result;
- GC to every plugin with ``cni.dev/valid-attachments`` (and the legacy
  ``cni.dev/attachments``), after DELeting cached attachments not in the list.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.convert import to_version
from conformance.proc import Outcome, run_plugin
from conformance.versions import ALL_VERSIONS, at_least, has_check, has_status_gc, key

Json = dict[str, Any]


class PluginFailed(Exception):
    """A plugin in the list failed; carries its outcome."""

    def __init__(self, plugin: str, command: str, outcome: Outcome) -> None:
        super().__init__(f"{plugin} {command} failed{outcome.describe()}")
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Attachment:
    container_id: str
    netns: str
    ifname: str = "eth0"
    cni_args: str = ""
    capability_args: Mapping[str, Any] = field(default_factory=dict)


def select_version(conflist: Mapping[str, Any]) -> str:
    """Highest version among cniVersion and cniVersions that this driver knows."""
    candidates = [conflist.get("cniVersion", "0.1.0"), *conflist.get("cniVersions", [])]
    known = [v for v in candidates if v in ALL_VERSIONS]
    return max(known, key=key) if known else str(conflist.get("cniVersion", "0.1.0"))


class Runtime:
    def __init__(
        self,
        cni_path: Sequence[Path],
        node_netns: str,
        cache_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cni_path = list(cni_path)
        self.node_netns = node_netns
        self.cache_dir = cache_dir
        # added to every exec: what a runtime's environment gives its plugins
        # (e.g. CNI_PLUGINS_CACHE_DIR for the built binaries' unpack cache)
        self.env = dict(env or {})
        self.outcomes: list[tuple[str, str, Outcome]] = []  # (plugin, command, outcome)

    # -- plumbing ----------------------------------------------------------------------

    def find(self, plugin_type: str) -> Path:
        for directory in self.cni_path:
            candidate = directory / plugin_type
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f'failed to find plugin "{plugin_type}" in path {self.cni_path}')

    def _cache_file(self, name: str, att: Attachment) -> Path:
        return self.cache_dir / "results" / f"{name}-{att.container_id}-{att.ifname}"

    def _plugin_config(
        self, conflist: Mapping[str, Any], plugin: Mapping[str, Any], att: Attachment | None
    ) -> Json:
        config = copy.deepcopy(dict(plugin))
        config["name"] = conflist["name"]
        config["cniVersion"] = select_version(conflist)
        capabilities = plugin.get("capabilities") or {}
        if att is not None:
            runtime_config = {
                cap: value
                for cap, value in att.capability_args.items()
                if capabilities.get(cap) is True
            }
            if runtime_config:
                config["runtimeConfig"] = runtime_config
        return config

    def _exec(self, command: str, config: Json, att: Attachment | None) -> Outcome:
        env = {**self.env, "CNI_COMMAND": command, "CNI_PATH": ":".join(map(str, self.cni_path))}
        if att is not None:
            env.update(CNI_CONTAINERID=att.container_id, CNI_NETNS=att.netns, CNI_IFNAME=att.ifname)
            if att.cni_args:
                env["CNI_ARGS"] = att.cni_args
        plugin_type = str(config["type"])
        outcome = run_plugin(self.find(plugin_type), env, config, netns=self.node_netns)
        self.outcomes.append((plugin_type, command, outcome))
        if outcome.rc != 0:
            raise PluginFailed(plugin_type, command, outcome)
        return outcome

    # -- verbs -------------------------------------------------------------------------

    def add(self, conflist: Mapping[str, Any], att: Attachment) -> Json:
        prev: Json | None = None
        for plugin in conflist["plugins"]:
            config = self._plugin_config(conflist, plugin, att)
            if prev is not None:
                config["prevResult"] = prev
            outcome = self._exec("ADD", config, att)
            prev = json.loads(outcome.stdout)
        assert prev is not None, "empty plugin list"
        cache = self._cache_file(conflist["name"], att)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"result": prev, "attachment": att.container_id}))
        return prev

    def cached_result(self, conflist: Mapping[str, Any], att: Attachment) -> Json | None:
        cache = self._cache_file(conflist["name"], att)
        if not cache.exists():
            return None
        result: Json = json.loads(cache.read_text())["result"]
        return to_version(result, select_version(conflist))

    def check(self, conflist: Mapping[str, Any], att: Attachment) -> None:
        version = select_version(conflist)
        if not has_check(version) or conflist.get("disableCheck") in (True, "true"):
            return
        cached = self.cached_result(conflist, att)
        assert cached is not None, "CHECK of an attachment that was never added"
        for plugin in conflist["plugins"]:
            self._exec(
                "CHECK", {**self._plugin_config(conflist, plugin, att), "prevResult": cached}, att
            )

    def delete(self, conflist: Mapping[str, Any], att: Attachment) -> None:
        version = select_version(conflist)
        cached = self.cached_result(conflist, att)
        for plugin in reversed(conflist["plugins"]):
            config = self._plugin_config(conflist, plugin, att)
            if cached is not None and at_least(version, "0.4.0"):
                config["prevResult"] = cached
            self._exec("DEL", config, att)
        self._cache_file(conflist["name"], att).unlink(missing_ok=True)

    def gc(self, conflist: Mapping[str, Any], valid: Sequence[Attachment]) -> None:
        """libcni GCNetworkList: DEL stale cached attachments, then the GC verb (>= 1.1.0)."""
        valid_keys = {(a.container_id, a.ifname) for a in valid}
        results_dir = self.cache_dir / "results"
        prefix = f"{conflist['name']}-"
        for cache in sorted(results_dir.glob(prefix + "*")) if results_dir.exists() else []:
            container_id, ifname = cache.name[len(prefix) :].rsplit("-", 1)
            if (container_id, ifname) not in valid_keys:
                # The netns of a stale attachment is assumed gone: DEL without CNI_NETNS.
                self.delete(conflist, Attachment(container_id, "", ifname))
        if not has_status_gc(select_version(conflist)) or conflist.get("disableGC"):
            return
        attachments = [{"containerID": c, "ifname": i} for c, i in sorted(valid_keys)]
        for plugin in conflist["plugins"]:
            config = self._plugin_config(conflist, plugin, None)
            config["cni.dev/valid-attachments"] = attachments
            config["cni.dev/attachments"] = attachments  # cni#1101: legacy key
            self._exec("GC", config, None)
