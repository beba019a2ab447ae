"""The pods' bridge (cni0) against flanneld's lease: its address and its MTU.

``failed to set bridge addr: "cni0" already has an IP address different from
10.244.x.1/24``: the node got a new subnet (flanneld re-leased, the node was
re-registered) and the bridge kept the old gateway.  With no port attached no
pod uses the old address, so the repair removes it (the next ADD gives cni0 the
new gateway, as the bridge plugin does on a fresh bridge); with pods attached
they are named and the bridge is left to a person (the pods must be recreated
first).
"""

from __future__ import annotations

from cni_plugins.linux.netlink import NetlinkError, RouteSocket
from cni_plugins.tools.doctor.findings import ERROR, WARNING, Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.linux.netlink import Link
    from cni_plugins.spec.ip import IPInterface, IPNetwork
    from cni_plugins.tools.doctor.leaks import Reservation
    from cni_plugins.tools.doctor.node import Node

CHECK = "bridge"


def stale_addresses(addresses: list[IPInterface], subnets: list[IPNetwork]) -> list[IPInterface]:
    """Global addresses of a family the lease covers that are not in the lease's subnet."""
    stale = []
    for a in addresses:
        same_family = [n for n in subnets if n.version == a.version]
        if not same_family or a.ip.is_link_local:
            continue
        if not any(a.ip in n and a.network.prefixlen == n.prefixlen for n in same_family):
            stale.append(a)
    return stale


def check(node: Node, reservations: list[Reservation]) -> list[Finding]:
    name = node.bridge_name()
    lease = node.subnet()
    if name is None or lease is None:
        return []
    subnets = [n for n in (lease.subnet, lease.subnet6) if n is not None]
    with RouteSocket() as sock:
        bridge = sock.find_link(name)
        if bridge is None:
            return []  # the first ADD creates it
        links = sock.links()
        addresses = [a.interface for a in sock.addresses(bridge.index)]
        ports = [link for link in links if link.master == bridge.index]
        findings = []
        stale = stale_addresses(addresses, subnets)
        if stale:
            findings.append(
                _stale(
                    node,
                    sock,
                    bridge,
                    stale=stale,
                    ports=ports,
                    subnets=subnets,
                    reservations=reservations,
                )
            )
        others = [a for a in sock.addresses() if a.index != bridge.index]
        findings += _overlaps(others, links, subnets)
    findings += _mtu(bridge, ports, lease.mtu)
    return findings


def _stale(
    node: Node,
    sock: RouteSocket,
    bridge: Link,
    *,
    stale: list[IPInterface],
    ports: list[Link],
    subnets: list[IPNetwork],
    reservations: list[Reservation],
) -> Finding:
    old = ", ".join(str(a) for a in stale)
    new = ", ".join(str(n) for n in subnets)
    f = Finding(
        CHECK,
        ERROR,
        bridge.name,
        f"{bridge.name} has {old}, outside this node's subnet {new}: every ADD fails with"
        f' \'failed to set bridge addr: "{bridge.name}" already has an IP address different'
        " from ...'",
        "",
    )
    if ports:
        users = sorted(
            {r.container_id[:12] for r in reservations if any(r.ip in a.network for a in stale)}
        )
        f.message += (
            f"; {len(ports)} port(s) still attached ({', '.join(p.name for p in ports)})"
            + (f", containers with old-subnet addresses: {', '.join(users)}" if users else "")
        )
        f.fix = (
            f"delete those pods (they keep old-subnet addresses), then run cni-doctor --repair"
            f" or 'ip addr del {old} dev {bridge.name}'"
        )
        return f
    f.fix = (
        "no pod is attached: remove the old address"
        f" (cni-doctor --repair, or ip addr del {old} dev {bridge.name})"
    )
    if node.options.repair:
        try:
            for a in stale:
                sock.delete_address(bridge.index, a)
                node.log(f"removed {a} from {bridge.name} (no port attached)")
            f.repaired = True
        except NetlinkError as exc:
            f.message += f"; removal failed: {exc}"
    return f


def _overlaps(others: list, links: list[Link], subnets: list[IPNetwork]) -> list[Finding]:  # type: ignore[type-arg]
    names = {link.index: link.name for link in links}
    findings = []
    for a in others:
        for n in subnets:
            net = a.interface.network
            # only a network that covers the subnet: flannel.1's /32 inside it is normal
            if net.version == n.version and net.prefixlen <= n.prefixlen and net.overlaps(n):
                link = names.get(a.index, str(a.index))
                findings.append(
                    Finding(
                        CHECK,
                        WARNING,
                        link,
                        f"{link} has {a.interface}, which overlaps the pod subnet {n}: replies to"
                        " pods may leave by the wrong interface",
                        "give flannel a Network that does not overlap the node's networks",
                    )
                )
    return findings


def _mtu(bridge: Link, ports: list[Link], mtu: int) -> list[Finding]:
    wrong = [p for p in ports if p.mtu != mtu]
    if not ports or (bridge.mtu == mtu and not wrong):
        return []
    detail = ", ".join(f"{p.name} {p.mtu}" for p in wrong[:10])
    return [
        Finding(
            CHECK,
            WARNING,
            bridge.name,
            f"{bridge.name} MTU {bridge.mtu}, FLANNEL_MTU {mtu}"
            + (f"; ports: {detail}" if detail else "")
            + ": pods created before an MTU change send packets the overlay drops",
            "recreate the pods with the old MTU (their veths keep it)",
        )
    ]
