"""Host-side link work for bridge ADD: the bridge, the veth pair, the port, the gateway.

Each function does one step through the stdlib netlink layer and raises
``CNIError`` with the reference's wording where users grep for it (e.g.
``"cni0" already has an IP address different from 10.244.1.1/24``).
Shared objects (the bridge, its gateway address) tolerate EEXIST, so parallel
ADDs on a fresh node all succeed.
"""

from __future__ import annotations

import errno
import os
import sys

from cni_plugins.bridge import plan
from cni_plugins.linux import sysctl
from cni_plugins.linux.netlink import NetlinkError, NetlinkExistsError, NetlinkNotFoundError
from cni_plugins.linux.nlmsg import AF_INET, AF_INET6, BRIDGE_VLAN_INFO_PVID
from cni_plugins.spec.errors import CNIError, InvalidConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cni_plugins.bridge.config import BridgeConf
    from cni_plugins.linux.netlink import Link, RouteSocket
    from cni_plugins.linux.netns import NetNS
    from cni_plugins.spec.ip import IPInterface

VETH_NAME_ATTEMPTS = 10


def random_veth_name() -> str:
    """``veth%08x`` from 4 random bytes, as the reference's ``RandomVethName``."""
    return "veth" + os.urandom(4).hex()


def ensure_bridge(node: RouteSocket, conf: BridgeConf) -> Link:
    """Create the bridge (MTU and VLAN filtering only when new) or reuse it; up.

    Never deleted by any verb: other pods use it.
    """
    name = conf.bridge
    try:
        node.create_bridge(
            name,
            mtu=conf.mtu or None,
            vlan_filtering=True if conf.vlan_filtering else None,
        )
    except NetlinkExistsError:
        pass  # made earlier, or a parallel ADD just won the race
    except NetlinkError as exc:
        hint = ""
        if exc.errno == errno.EOPNOTSUPP and conf.vlan_filtering:
            hint = " (vlan/vlanTrunk need a kernel with CONFIG_BRIDGE_VLAN_FILTERING)"
        raise CNIError(f'failed to create bridge "{name}": {exc.strerror}{hint}') from exc
    bridge = bridge_by_name(node, name)
    if conf.promisc_mode and not bridge.promisc:
        node.set_promisc(bridge.index, True)
    # We own the routes on this interface.
    _try_sysctl(sysctl.conf_key(name, "accept_ra", family=6), "0")
    if not bridge.is_up:
        node.set_up(bridge.index)
    return bridge


def bridge_by_name(node: RouteSocket, name: str) -> Link:
    link = node.find_link(name)
    if link is None:
        raise CNIError(f'failed to create bridge "{name}": could not lookup "{name}": not found')
    if link.kind != "bridge":
        raise CNIError(
            f'failed to create bridge "{name}": "{name}" already exists but is not a bridge'
        )
    return link


def create_veth(
    node: RouteSocket, pod: RouteSocket, pod_ns: NetNS, ifname: str, conf: BridgeConf
) -> tuple[Link, Link]:
    """The veth pair: ``ifname`` created directly in the pod, ``veth%08x`` here.

    Returns (host end, container end), both still down.
    """
    if pod.find_link(ifname) is not None:
        raise CNIError(exists_message(ifname, "(none)"))
    for _ in range(VETH_NAME_ATTEMPTS):
        host_name = random_veth_name()
        try:
            node.create_veth(
                host_name,
                ifname,
                peer_netns_fd=pod_ns.fd,
                mtu=conf.mtu or None,
                peer_mac=conf.mac or None,
            )
        except NetlinkExistsError:
            if node.find_link(host_name) is not None:
                continue  # name collision on the host side: draw another
            raise CNIError(exists_message(ifname, host_name)) from None
        return node.link(host_name), pod.link(ifname)
    raise CNIError("failed to find a unique veth name")


def exists_message(ifname: str, peer: str) -> str:
    return f'container veth name ("{ifname}") peer provided ("{peer}") already exists'


def setup_port(
    node: RouteSocket, host: Link, bridge: Link, conf: BridgeConf, *, vlan: int | None = None
) -> None:
    """Host end: up, accept_ra=0, enslaved, hairpin/isolation, VLANs."""
    node.set_up(host.index)
    _try_sysctl(sysctl.conf_key(host.name, "accept_ra", family=6), "0")
    try:
        node.set_master(host.index, bridge.index)
    except NetlinkNotFoundError as exc:
        raise CNIError(
            f'failed to connect "{host.name}" to bridge {bridge.name}: {exc.strerror}'
        ) from exc
    if conf.hairpin_mode or conf.port_isolation:
        node.set_bridge_port(
            host.index,
            hairpin=conf.hairpin_mode or None,
            isolated=conf.port_isolation or None,
        )
    setup_port_vlans(node, host, conf, conf.vlan if vlan is None else vlan)


def setup_port_vlans(node: RouteSocket, host: Link, conf: BridgeConf, vlan: int) -> None:
    trunk = conf.vlan_trunk or ()
    if not vlan and not trunk:
        return
    if not conf.preserve_default_vlan:
        for vid, _flags in node.bridge_vlans(host.index):
            node.delete_bridge_vlan(host.index, vid)
    if vlan:
        node.add_bridge_vlan(host.index, vlan, pvid=True, untagged=True)
    for vid in trunk:
        node.add_bridge_vlan(host.index, vid)
    if not vlan and trunk:
        # No native VLAN given: VID 1, as the reference keeps for compatibility.
        node.add_bridge_vlan(host.index, 1, pvid=True, untagged=True)


def port_vlans(node: RouteSocket, host: Link) -> dict[int, bool]:
    """VID -> is PVID, for tests and CHECK."""
    return {vid: bool(f & BRIDGE_VLAN_INFO_PVID) for vid, f in node.bridge_vlans(host.index)}


def ensure_vlan_gateway(node: RouteSocket, bridge: Link, conf: BridgeConf) -> tuple[Link, bool]:
    """The ``<bridge>.<vlan>`` interface that carries the gateway when ``vlan`` is
    set: like the reference, the host-side end of a veth whose other end is a
    bridge port with that VLAN as PVID.  Returns (link, created now)."""
    name = f"{bridge.name}.{conf.vlan}"
    existing = node.find_link(name)
    if existing is not None:
        return existing, False
    for _ in range(VETH_NAME_ATTEMPTS):
        port_name = random_veth_name()
        try:
            node.create_veth(port_name, name, mtu=bridge.mtu or None)
        except NetlinkExistsError:
            existing = node.find_link(name)
            if existing is not None:
                return existing, False  # a parallel ADD made it
            continue
        port = node.link(port_name)
        setup_port(node, port, bridge, conf, vlan=conf.vlan)
        node.set_up(name)
        return node.link(name), True
    raise CNIError(f"failed to create vlan gateway {name!r}: no unique veth name")


def ensure_gateway_address(
    node: RouteSocket,
    link: Link,
    gateway: IPInterface,
    force: bool,
    what: str,
    *,
    own_port: int = 0,
    holders: Callable[[list[IPInterface]], list[str]] | None = None,
) -> None:
    """``ensureAddr``: put ``gateway`` on ``link`` (EEXIST fine).  A different
    address in the way is replaced with ``force`` (``forceAddress``), or when
    ``link`` is a bridge no pod uses; see ``check_stale_address``."""
    family = AF_INET if gateway.version == 4 else AF_INET6
    existing = [a.interface for a in node.addresses(link.index, family)]
    present, in_way = plan.gateway_conflicts(existing, gateway)
    if present:
        return
    if in_way and not force:
        check_stale_address(node, link, gateway, in_way, what, own_port=own_port, holders=holders)
    for addr in in_way:
        try:
            node.delete_address(link.index, addr)
        except NetlinkNotFoundError:
            pass
    try:
        node.add_address(link.index, gateway)
    except NetlinkExistsError:
        pass
    # Pin the MAC: else the bridge takes the lowest port MAC and changes as ports churn.
    current = node.link(link.index)
    if current.mac:
        node.set_mac(link.index, current.mac)


def check_stale_address(
    node: RouteSocket,
    link: Link,
    gateway: IPInterface,
    stale: list[IPInterface],
    what: str,
    *,
    own_port: int,
    holders: Callable[[list[IPInterface]], list[str]] | None,
) -> None:
    """A bridge carrying another gateway address (the node got a new subnet):
    with no port attached but ``own_port`` (the kernel's word that no pod
    uses the bridge) the stale address may go, said on stderr; with ports
    attached, code 7 naming them, the containers ``holders`` finds holding
    addresses in the stale subnets, and the fix.  The Go bridge refuses both
    (999); a ``<bridge>.<vlan>`` gateway interface still refuses as Go does."""
    old = ", ".join(str(a) for a in stale)
    message = f'{what}: "{link.name}" already has an IP address different from {gateway}'
    if link.kind != "bridge":
        raise CNIError(message)
    ports = sorted(p.name for p in node.links() if p.master == link.index and p.index != own_port)
    if not ports:
        print(
            f'bridge: replacing stale address {old} of "{link.name}" by {gateway}:'
            " no port is attached, so no pod uses it",
            file=sys.stderr,
        )
        return
    users = holders(stale) if holders is not None else []
    pods = f"; containers with addresses in the old subnet: {', '.join(users)}" if users else ""
    raise InvalidConfig(
        f"{message} ({old}), and pods still use it",
        f"attached ports: {', '.join(ports)}{pods}; delete those pods, or the bridge"
        f' "{link.name}" once they are gone, then retry',
    )


def enable_forwarding(family: int) -> None:
    if family == 4:
        sysctl.write(("net", "ipv4", "ip_forward"), "1")
    else:
        sysctl.write(("net", "ipv6", "conf", "all", "forwarding"), "1")


def wait_port_up(node: RouteSocket, host: Link) -> Link:
    link = node.wait_oper_up(host.index)
    if not link.oper_up:
        raise CNIError(f"bridge port in error state: {link.operstate_name}")
    return link


def _try_sysctl(key: tuple[str, ...], value: str) -> None:
    try:
        sysctl.write(key, value)
    except OSError:
        pass  # no IPv6 on this kernel: nothing to tune
