"""Leaked address reservations and saved flannel configs, and exhausted ranges.

A leak is a reservation in a host-local store (or a config flannel saved for a
container) whose DEL never came: a reboot, lost runtime state, a runtime that
never sends GC (containerd).  The release is the plugins' own DEL, so every
per-pod artifact goes with the address (the saved config, the ipMasq and
portmap chains): the runtime's conflist when the store belongs to its network
(libcni's DelNetworkList with an empty netns: portmap, then flannel replaying
its saved config to bridge and host-local), else the saved config replayed to
its own plugin, as flannel's DEL would.  Nothing is released while any
``evidence`` says the container lives.
"""

from __future__ import annotations

import os
import time

from cni_plugins.ipam.host_local.config import Range
from cni_plugins.ipam.host_local.disk_store import DiskStore
from cni_plugins.spec.errors import CNIError
from cni_plugins.tools.doctor.findings import ERROR, WARNING, Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cni_plugins.spec.ip import IPAddress, IPNetwork
    from cni_plugins.tools.doctor.evidence import Evidence
    from cni_plugins.tools.doctor.node import Node

CHECK = "leaked-reservation"
RANGE_CHECK = "ranges"
FULL_WARNING = 0.9  # share of a range in use that deserves a warning


class Reservation:
    __slots__ = ("container_id", "data_dir", "ifname", "ip", "mtime", "network")

    def __init__(
        self,
        data_dir: str,
        network: str,
        *,
        ip: IPAddress,
        container_id: str,
        ifname: str,
        mtime: float,
    ) -> None:
        self.data_dir = data_dir
        self.network = network
        self.ip = ip
        self.container_id = container_id
        self.ifname = ifname
        self.mtime = mtime


def read_stores(data_dirs: list[str]) -> list[Reservation]:
    """Every reservation of every network under ``data_dirs``, read under each
    store's lock (a consistent view per network)."""
    out: list[Reservation] = []
    for data_dir in data_dirs:
        try:
            networks = sorted(os.listdir(data_dir))
        except OSError:
            continue
        for network in networks:
            directory = os.path.join(data_dir, network)
            if not os.path.isdir(directory) or os.path.islink(directory):
                continue
            store = DiskStore(data_dir, network)
            try:
                with store.locked():
                    owners = store.reservations()
            except CNIError:
                continue
            for ip, owner in sorted(owners.items(), key=lambda kv: int(kv[0])):
                if owner is None:
                    continue
                try:
                    mtime = os.lstat(os.path.join(directory, str(ip))).st_mtime
                except OSError:
                    continue
                out.append(
                    Reservation(
                        data_dir,
                        network,
                        ip=ip,
                        container_id=owner[0],
                        ifname=owner[1] or "eth0",
                        mtime=mtime,
                    )
                )
    return out


def check(
    node: Node,
    reservations: list[Reservation],
    saved: dict[str, dict[str, Any]],
    evidence: Evidence,
) -> list[Finding]:
    """One finding per dead container (its reservations and saved config).
    ``reservations`` and ``saved`` must have been read before ``evidence`` was
    gathered: flannel saves its config before host-local reserves, so a config
    read after the scans may belong to an ADD the scans missed."""
    saved_dir = node.flannel_data_dir() or ""
    by_container: dict[str, list[Reservation]] = {}
    for r in reservations:
        by_container.setdefault(r.container_id, []).append(r)
    for container_id in saved:
        by_container.setdefault(container_id, [])
    now = time.time()
    findings: list[Finding] = []
    if evidence.sandbox_error:
        findings.append(
            Finding(
                CHECK,
                WARNING,
                node.options.cri_socket,
                f"the runtime's sandbox list is unavailable ({evidence.sandbox_error}):"
                " no container can be cleared, so nothing is released",
                "install crictl, or check the socket; or run without --cri-socket",
            )
        )
    for container_id, held in sorted(by_container.items()):
        if evidence.alive(container_id, [r.ip for r in held]):
            continue
        mtimes = [r.mtime for r in held]
        if container_id in saved:
            try:
                mtimes.append(os.lstat(os.path.join(saved_dir, container_id)).st_mtime)
            except OSError:
                pass
        age = now - max(mtimes) if mtimes else 0.0
        if age < node.options.grace:
            continue
        finding = _finding(
            node, container_id, held, has_saved=container_id in saved, age=age, evidence=evidence
        )
        if node.options.repair:
            _release(node, finding, container_id, held, saved.get(container_id))
        findings.append(finding)
    return findings


def _finding(
    node: Node,
    container_id: str,
    held: list[Reservation],
    *,
    has_saved: bool,
    age: float,
    evidence: Evidence,
) -> Finding:
    what = [f"{r.ip} in {os.path.join(r.data_dir, r.network)} ({r.ifname})" for r in held]
    if has_saved:
        what.append(
            f"flannel's saved config {os.path.join(node.flannel_data_dir() or '', container_id)}"
        )
    checked = (
        "no libcni cache entry with a live netns, no plugin running for it,"
        " its address in no namespace"
    )
    if evidence.sandboxes is not None:
        checked += ", not in the runtime's sandbox list"
    return Finding(
        CHECK,
        ERROR,
        f"container {container_id}",
        f"{'; '.join(what)} held for {age:.0f}s by a container nothing shows alive ({checked});"
        " its DEL never came (reboot or lost runtime state), and each leak takes an address"
        " until 'no IP addresses available in range set'",
        "release it through the plugins' own DEL: cni-doctor --repair",
    )


def _release(
    node: Node,
    finding: Finding,
    container_id: str,
    held: list[Reservation],
    saved: dict[str, object] | None,
) -> None:
    from cni_plugins.tools.cnitool.errors import ToolError

    network = node.network
    ifname = held[0].ifname if held else "eth0"
    try:
        if network is not None and (not held or all(r.network == network.name for r in held)):
            _conflist_del(node, container_id, ifname)
            how = f"DEL of {node.conf_path} (CNI_CONTAINERID={container_id}, empty netns)"
        elif saved is not None:
            _saved_del(node, container_id, ifname, saved)
            how = f"DEL of flannel's saved config for {container_id}"
        else:
            finding.message += (
                "; not released: the store is not the conflist's network and no saved config"
                " names its plugins (delete the reservation file by hand once sure)"
            )
            return
    except (ToolError, CNIError, OSError) as exc:
        finding.message += f"; release failed: {exc}"
        node.log(f"release of {container_id} failed: {exc}")
        return
    if saved is not None and container_id in _saved_ids(node):
        finding.message += "; after the DEL flannel's saved config is still there"
        return
    left = [
        r for r in read_stores(sorted({r.data_dir for r in held})) if r.container_id == container_id
    ]
    if left:
        finding.message += f"; after the DEL {', '.join(str(r.ip) for r in left)} is still reserved"
        return
    finding.repaired = True
    node.log(f"released {container_id}: {how}")


def _saved_ids(node: Node) -> set[str]:
    from cni_plugins.flannel import store

    return set(store.container_ids(node.flannel_data_dir() or ""))


def _conflist_del(node: Node, container_id: str, ifname: str) -> None:
    from cni_plugins.tools.cnitool.cache import Cache
    from cni_plugins.tools.cnitool.ops import Runner
    from cni_plugins.tools.cnitool.runtime import RuntimeConf

    assert node.network is not None
    runner = Runner([node.options.bin_dir], Cache(node.options.cache_dir))
    runner.delete(node.network, RuntimeConf(container_id, "", ifname))


def _saved_del(node: Node, container_id: str, ifname: str, saved: dict[str, object]) -> None:
    """What flannel's DEL does: the saved config to its own plugin, then the file goes."""
    from cni_plugins.flannel import store
    from cni_plugins.spec import jsonio
    from cni_plugins.tools.cnitool import runner
    from cni_plugins.tools.cnitool.runtime import RuntimeConf

    rt = RuntimeConf(container_id, "", ifname)
    path = runner.find_in_path(str(saved.get("type", "")), [node.options.bin_dir])
    runner.run(
        path, jsonio.dumps(saved).encode(), runner.environment("DEL", rt, [node.options.bin_dir])
    )
    store.remove(node.flannel_data_dir() or "", container_id)


# --- ranges


def check_ranges(node: Node, reservations: list[Reservation]) -> list[Finding]:
    """The flannel subnet's range in use (exhausted: error; nearly: warning),
    and reservations outside the node's current subnet (an old lease)."""
    subnet = node.subnet()
    network = node.network
    if subnet is None or network is None:
        return []
    findings: list[Finding] = []
    mine = [r for r in reservations if r.network == network.name]
    for net in (subnet.subnet, subnet.subnet6):
        if net is None:
            continue
        pool = _pool(net)
        used = sum(1 for r in mine if pool.contains(r.ip))
        capacity = pool.capacity()
        if capacity and used >= capacity:
            findings.append(
                Finding(
                    RANGE_CHECK,
                    ERROR,
                    f"range {net}",
                    f"all {capacity} addresses of {net} are reserved: ADD fails with 'no IP"
                    " addresses available in range set'",
                    "release leaks (cni-doctor --repair); if none are leaks, the node runs more"
                    " pods than its subnet holds: lower max-pods or widen flannel's SubnetLen",
                )
            )
        elif capacity and used >= FULL_WARNING * capacity:
            findings.append(
                Finding(
                    RANGE_CHECK,
                    WARNING,
                    f"range {net}",
                    f"{used} of {capacity} addresses of {net} are reserved",
                    "check for leaks (cni-doctor); lower max-pods or widen the subnet",
                )
            )
    nets = [n for n in (subnet.subnet, subnet.subnet6) if n is not None]
    stale = [r for r in mine if not any(r.ip in n for n in nets)]
    if stale:
        names = ", ".join(f"{r.ip} ({r.container_id[:12]})" for r in stale[:10])
        findings.append(
            Finding(
                RANGE_CHECK,
                WARNING,
                f"network {network.name}",
                f"{len(stale)} reservation(s) outside the node's subnet"
                f" {', '.join(str(n) for n in nets)}: {names}; they are from an old lease",
                "pods still using them must be recreated to get an address of the new subnet;"
                " dead ones are released by cni-doctor --repair",
            )
        )
    return findings


def _pool(net: IPNetwork) -> Range:
    """The range flannel gives host-local for ``net`` (the whole subnet, first
    address the gateway)."""
    first = net.network_address + 1
    last = net.broadcast_address - (1 if net.version == 4 else 0)
    return Range(net, first, last, first)
