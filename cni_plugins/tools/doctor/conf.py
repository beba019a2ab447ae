"""The conflist the runtime will pick, and the binaries it needs.

* no usable conflist: the runtime reports "cni config uninitialized" and
  schedules no pod network;
* a plugin the conflist (or flannel's delegate, or its IPAM) names is not in the
  bin dir: ``failed to find plugin "portmap" in path``; when the binaries sit in
  the conf dir instead, the DaemonSet's host-cni-bin hostPath points there;
* a binary that does not serve the conflist's cniVersion (VERSION's
  supportedVersions): every ADD fails with code 1.
"""

from __future__ import annotations

import os

from cni_plugins.spec import jsonio
from cni_plugins.tools.doctor.findings import ERROR, Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.tools.doctor.node import Node

CHECK = "conflist"
CHECK_BINARIES = "binaries"


def needed_plugins(node: Node) -> list[str]:
    """Plugin types the chain execs: the list's, flannel's delegate and IPAM."""
    if node.network is None:
        return []
    types = [p.type for p in node.network.plugins]
    flannel = node.flannel
    if flannel is not None:
        delegate = flannel.get("delegate") or {}
        types.append(str(delegate.get("type", "bridge")))
        types.append("host-local")  # flannel renders a host-local ipam section
    bridge = node.plugin_raw("bridge")
    if bridge is not None and isinstance(bridge.get("ipam"), dict) and bridge["ipam"].get("type"):
        types.append(str(bridge["ipam"]["type"]))
    return list(dict.fromkeys(types))


def executables(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK) and not name.startswith("."):
            out.append(name)
    return out


def check(node: Node) -> list[Finding]:
    opts = node.options
    findings: list[Finding] = []
    in_conf_dir = executables(opts.conf_dir)
    if in_conf_dir:
        findings.append(
            Finding(
                CHECK_BINARIES,
                ERROR,
                opts.conf_dir,
                f"{opts.conf_dir} holds executables ({', '.join(in_conf_dir)}): plugins"
                " installed into the conf dir, the DaemonSet's host-cni-bin hostPath points at it",
                f"point host-cni-bin at the runtime's bin dir ({opts.bin_dir}), then remove the"
                f" executables from {opts.conf_dir}",
            )
        )
    if node.network is None:
        findings.append(
            Finding(
                CHECK,
                ERROR,
                opts.conf_dir,
                f"no network configuration the runtime can use: {node.conf_error}",
                "check that install-cni (the kube-flannel init container) ran and wrote"
                " 10-flannel.conflist",
            )
        )
        return findings
    for plugin in needed_plugins(node):
        path = os.path.join(opts.bin_dir, plugin)
        if os.path.isfile(path):
            findings += _versions(node, plugin, path)
            continue
        where = f"; it is in {opts.conf_dir} instead" if plugin in in_conf_dir else ""
        findings.append(
            Finding(
                CHECK_BINARIES,
                ERROR,
                plugin,
                f"{node.conf_path} needs {plugin!r}, which {opts.bin_dir} does not hold:"
                f" ADD fails with 'failed to find plugin \"{plugin}\" in path'{where}",
                f"install the plugin binaries into {opts.bin_dir} (the kube-flannel DaemonSet's"
                " install-cni container, with host-cni-bin mounted there)",
            )
        )
    return findings


def _versions(node: Node, plugin: str, path: str) -> list[Finding]:
    from cni_plugins.tools.cnitool import runner
    from cni_plugins.tools.cnitool.errors import ToolError
    from cni_plugins.tools.cnitool.runtime import RuntimeConf

    assert node.network is not None
    version = node.network.cni_version
    env = runner.environment("VERSION", RuntimeConf(), [node.options.bin_dir])
    try:
        out = runner.run(path, jsonio.dumps({"cniVersion": version}).encode(), env)
        supported = jsonio.loads(out).get("supportedVersions") or []
    except (ToolError, ValueError, AttributeError) as exc:
        return [
            Finding(
                CHECK_BINARIES,
                ERROR,
                plugin,
                f"{path} does not answer VERSION: {exc}",
                f"reinstall {plugin} (a truncated or foreign binary)",
            )
        ]
    if version and version not in supported:
        return [
            Finding(
                CHECK,
                ERROR,
                plugin,
                f"{node.conf_path} has cniVersion {version}, which {path} does not serve"
                f" (it supports {', '.join(supported)}): every ADD fails with code 1",
                "install binaries that serve it, or lower cniVersion in the conflist",
            )
        ]
    return []
