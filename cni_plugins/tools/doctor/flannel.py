"""flanneld's subnet file: is it there, and if not, why not.

``open /run/flannel/subnet.env: no such file or directory`` has two causes a
node shows apart: the directory exists but holds no file (flanneld has no lease
yet: it is starting, or failing, see its log), or the directory itself is
missing (flanneld never ran on this host, or the DaemonSet's ``run`` hostPath
is not mounted where the plugin looks).
"""

from __future__ import annotations

import os

from cni_plugins.flannel import subnet_env
from cni_plugins.tools.doctor.findings import ERROR, Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.tools.doctor.node import Node

CHECK = "subnet-file"


def check(node: Node) -> list[Finding]:
    path = node.subnet_file()
    if path is None:
        return []
    if node.subnet() is not None:
        return []
    directory = os.path.dirname(path) or "."
    if not os.path.exists(path):
        if not os.path.isdir(directory):
            message = (
                f"{path} does not exist, nor does {directory}: flanneld never ran here,"
                " or its run directory is not mounted where flannel's subnetFile points"
            )
            fix = (
                f"check that the kube-flannel pod runs on this node and mounts the host's"
                f" {directory} (hostPath 'run'), and that subnetFile in {node.conf_path} names it"
            )
        else:
            message = (
                f"{path} does not exist but {directory} does: flanneld is not up yet"
                " (no lease), so every pod ADD fails with code 11 and is retried"
            )
            fix = "read the kube-flannel pod's log on this node (kubectl -n kube-flannel logs)"
        return [Finding(CHECK, ERROR, path, message, fix)]
    try:
        subnet_env.load(path)
    except subnet_env.SubnetEnvError as exc:
        return [
            Finding(
                CHECK, ERROR, path, str(exc), "restart flanneld on this node; it rewrites the file"
            )
        ]
    return []
