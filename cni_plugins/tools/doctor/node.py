"""The node as the doctor sees it: the options, the conflist the runtime will
pick and what it references (flannel's subnet file and dataDir, host-local's
dataDir, the bridge), loaded once and shared by the checks.

The runtime's pick is libcni's: the first ``.conflist``/``.conf``/``.json`` of
the conf dir in file name order that parses (containerd and CRI-O take the
first one; kubelet's dockershim did the same).
"""

from __future__ import annotations

import os
import sys

from cni_plugins.flannel import subnet_env
from cni_plugins.flannel.config import DEFAULT_DATA_DIR, DEFAULT_SUBNET_FILE
from cni_plugins.ipam.host_local.config import DEFAULT_DATA_DIR as IPAM_DATA_DIR
from cni_plugins.spec import jsonio
from cni_plugins.tools.cnitool import conflist
from cni_plugins.tools.cnitool.errors import ToolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cni_plugins.flannel.subnet_env import SubnetEnv
    from cni_plugins.tools.cnitool.conflist import NetworkList

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_CACHE_DIR = "/var/lib/cni"
DEFAULT_GRACE = 600.0
DEFAULT_BRIDGE = "cni0"
# build/README.md: the launcher's default unpack cache
DEFAULT_UNPACK_CACHE = "/var/lib/cni/cni-plugins-py"


class Options:
    __slots__ = (
        "bin_dir",
        "cache_dir",
        "conf_dir",
        "cri_socket",
        "grace",
        "json",
        "repair",
        "unpack_cache",
    )

    def __init__(
        self,
        *,
        conf_dir: str = DEFAULT_CONF_DIR,
        bin_dir: str = DEFAULT_BIN_DIR,
        cache_dir: str = DEFAULT_CACHE_DIR,
        cri_socket: str = "",
        grace: float = DEFAULT_GRACE,
        repair: bool = False,
        json: bool = False,
        unpack_cache: str = DEFAULT_UNPACK_CACHE,
    ) -> None:
        self.conf_dir = conf_dir
        self.bin_dir = bin_dir
        self.cache_dir = cache_dir
        self.cri_socket = cri_socket
        self.grace = grace
        self.repair = repair
        self.json = json
        self.unpack_cache = unpack_cache


class Node:
    """Options plus what the conflist says; ``conf_error`` when there is none
    the runtime can use (the conf check reports it)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.conf_path = ""
        self.conf_error = ""
        self.network: NetworkList | None = None
        self._subnet: SubnetEnv | str | None = None
        self._load_conflist()

    def log(self, text: str) -> None:
        """Every repair action is logged (stderr, one line)."""
        sys.stderr.write(f"cni-doctor: {text}\n")
        sys.stderr.flush()

    def _load_conflist(self) -> None:
        directory = self.options.conf_dir
        try:
            candidates = conflist.conf_files(directory, (".conf", ".conflist", ".json"))
        except ToolError as exc:
            self.conf_error = str(exc)
            return
        if not candidates:
            self.conf_error = f"no network configuration in {directory}"
            return
        errors = []
        for path in candidates:
            try:
                if path.endswith(".conflist"):
                    network = conflist.list_from_file(path)
                else:
                    with open(path, "rb") as f:
                        raw = jsonio.loads(f.read())
                    wrapped = {
                        "cniVersion": raw.get("cniVersion", ""),
                        "name": raw.get("name", ""),
                        "plugins": [raw],
                    }
                    network = conflist.list_from_bytes(conflist.go_marshal(wrapped))
            except (ToolError, OSError, ValueError, AttributeError) as exc:
                errors.append(f"{path}: {exc}")
                continue
            self.conf_path, self.network = path, network
            return
        self.conf_error = "; ".join(errors)

    # --- what the conflist references

    def plugin_raw(self, plugin_type: str) -> dict[str, Any] | None:
        if self.network is None:
            return None
        for plugin in self.network.plugins:
            if plugin.type == plugin_type:
                raw = jsonio.loads(plugin.bytes)
                return raw if isinstance(raw, dict) else None
        return None

    @property
    def flannel(self) -> dict[str, Any] | None:
        return self.plugin_raw("flannel")

    def subnet_file(self) -> str | None:
        conf = self.flannel
        if conf is None:
            return None
        return str(conf.get("subnetFile") or DEFAULT_SUBNET_FILE)

    def flannel_data_dir(self) -> str | None:
        conf = self.flannel
        if conf is None:
            return None
        return str(conf.get("dataDir") or DEFAULT_DATA_DIR)

    def subnet(self) -> SubnetEnv | None:
        """flanneld's lease, None when it cannot be read (the flannel check says why)."""
        if self._subnet is None:
            path = self.subnet_file()
            try:
                self._subnet = subnet_env.load(path) if path else "none"
            except subnet_env.SubnetEnvError as exc:
                self._subnet = str(exc)
        return None if isinstance(self._subnet, str) else self._subnet

    def bridge_name(self) -> str | None:
        """The bridge the pods hang off: the delegate's (flannel) or the bridge
        plugin's ``bridge`` key, default cni0."""
        flannel = self.flannel
        if flannel is not None:
            delegate = flannel.get("delegate") or {}
            if delegate.get("type", "bridge") != "bridge":
                return None
            return str(delegate.get("bridge") or DEFAULT_BRIDGE)
        bridge = self.plugin_raw("bridge")
        return None if bridge is None else str(bridge.get("bridge") or DEFAULT_BRIDGE)

    def ipam_data_dirs(self) -> list[str]:
        """host-local dataDirs: the conflist's, the saved flannel configs' and the default."""
        dirs: list[str] = []
        for conf in (self.flannel, self.plugin_raw("bridge")):
            ipam = (conf or {}).get("ipam") or {}
            if isinstance(ipam, dict) and isinstance(ipam.get("dataDir"), str):
                dirs.append(ipam["dataDir"])
        for saved in self.saved_flannel_configs().values():
            ipam = saved.get("ipam") or {}
            if isinstance(ipam, dict) and isinstance(ipam.get("dataDir"), str):
                dirs.append(ipam["dataDir"])
        if not dirs:
            dirs.append(IPAM_DATA_DIR)
        return list(dict.fromkeys(os.path.normpath(d) for d in dirs))

    def saved_flannel_configs(self) -> dict[str, dict[str, Any]]:
        """container ID -> flannel's saved delegate config (unreadable ones skipped)."""
        from cni_plugins.flannel import store

        data_dir = self.flannel_data_dir()
        out: dict[str, dict[str, Any]] = {}
        if data_dir is None:
            return out
        for container_id in store.container_ids(data_dir):
            try:
                data = store.load(data_dir, container_id)
                raw = jsonio.loads(data) if data else None
            except (store.SavedConfigError, ValueError):
                continue
            if isinstance(raw, dict):
                out[container_id] = raw
        return out
