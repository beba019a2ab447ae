"""A small rtnetlink client on stdlib sockets: links, veth/bridge, addresses, routes.

Why it exists: every plugin exec pays its imports, and pyroute2 alone costs
150-250 ms (DESIGN.md section 4).  This layer needs ``_socket``, ``struct``,
``os`` and ``spec.ip`` and does one round trip per operation.

    with RouteSocket(pod_ns) as pod:           # requests act inside pod_ns
        pod.set_up("lo")
    with RouteSocket() as host:                # the calling thread's namespace
        host.create_veth("veth1a2b3c4d", "eth0", peer_netns_fd=pod_ns.fd, mtu=1450)

Modules: ``nlmsg`` (wire format), ``nltypes`` (Link / Address / Route records),
``nlsock`` (socket, requests, errors), this one (operations).  Errors and records
are re-exported here, so callers import only ``netlink``.

Links are named by ``LinkRef``: an ``int`` ifindex or a ``str`` name.  Link
requests take the name directly (the kernel resolves IFLA_IFNAME when the index
is 0), which saves a round trip; address and bridge-port requests need the index
and look a name up first, so pass the index when you have it.

Create operations return nothing: read the link back with ``link()`` when its
index or kernel-chosen MAC is needed.
"""

from __future__ import annotations

import time

from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.nlsock import (
    NetlinkError,
    NetlinkExistsError,
    NetlinkNotFoundError,
    NetlinkSocket,
    map_netlink_errors,
)
from cni_plugins.linux.nltypes import (
    Address,
    Link,
    Route,
    parse_address,
    parse_link,
    parse_route,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.linux.nltypes import LinkRef
    from cni_plugins.spec.ip import IPAddress, IPInterface, IPNetwork

__all__ = [
    "Address",
    "Link",
    "NetlinkError",
    "NetlinkExistsError",
    "NetlinkNotFoundError",
    "Route",
    "RouteSocket",
    "map_netlink_errors",
]

_CREATE = m.NLM_F_CREATE | m.NLM_F_EXCL
_SKIP_STATS = m.attr_u32(m.IFLA_EXT_MASK, m.RTEXT_FILTER_SKIP_STATS)
_OPER_UP_DELAYS = (0.0, 0.05, 0.5, 1.0, 1.0)  # seconds, as the Go bridge plugin


class RouteSocket(NetlinkSocket):
    """rtnetlink operations in the namespace the socket was opened in.

    ``RouteSocket()`` uses the calling thread's namespace, ``RouteSocket(ns)`` the
    namespace of an open ``NetNS``.  Use it as a context manager.  Every method
    raises ``NetlinkError`` (``NetlinkExistsError`` / ``NetlinkNotFoundError`` for
    EEXIST / a missing object) with a message naming the operation.
    """

    __slots__ = ()

    # -- links ----------------------------------------------------------------------------------

    def link(self, ref: LinkRef) -> Link:
        """The link named ``ref``; ``NetlinkNotFoundError`` (ENODEV) when absent."""
        replies = self.request(m.RTM_GETLINK, _ifinfo(ref) + _SKIP_STATS, what=f"get link {ref!r}")
        return parse_link(replies[0])

    def find_link(self, ref: LinkRef) -> Link | None:
        """Like ``link`` but ``None`` when there is no such link."""
        try:
            return self.link(ref)
        except NetlinkNotFoundError:
            return None

    def links(self) -> list[Link]:
        """Every link in the namespace."""
        payload = m.IFINFOMSG.pack(m.AF_UNSPEC, 0, 0, 0, 0) + _SKIP_STATS
        return [parse_link(b) for b in self.dump(m.RTM_GETLINK, payload, what="list links")]

    def set_up(self, ref: LinkRef) -> None:
        """Bring the link administratively up (``ip link set up``)."""
        self._setlink(ref, b"", f"set link {ref!r} up", flags=m.IFF_UP, change=m.IFF_UP)

    def set_down(self, ref: LinkRef) -> None:
        self._setlink(ref, b"", f"set link {ref!r} down", flags=0, change=m.IFF_UP)

    def set_promisc(self, ref: LinkRef, on: bool) -> None:
        state = "on" if on else "off"
        flags = m.IFF_PROMISC if on else 0
        self._setlink(
            ref, b"", f"set link {ref!r} promisc {state}", flags=flags, change=m.IFF_PROMISC
        )

    def set_mtu(self, ref: LinkRef, mtu: int) -> None:
        self._setlink(ref, m.attr_u32(m.IFLA_MTU, mtu), f"set link {ref!r} mtu {mtu}")

    def set_mac(self, ref: LinkRef, mac: str) -> None:
        """Set the hardware address (``"aa:bb:cc:dd:ee:ff"``)."""
        self._setlink(ref, m.attr(m.IFLA_ADDRESS, m.parse_mac(mac)), f"set link {ref!r} mac {mac}")

    def set_master(self, ref: LinkRef, master: LinkRef | None) -> None:
        """Enslave ``ref`` to the bridge ``master``; ``None`` releases it (nomaster)."""
        index = 0 if master is None else self._index(master)
        self._setlink(ref, m.attr_u32(m.IFLA_MASTER, index), f"set link {ref!r} master {master!r}")

    def set_netns(self, ref: LinkRef, netns_fd: int) -> None:
        """Move the link into the namespace open at ``netns_fd``; it arrives down."""
        self._setlink(ref, m.attr_u32(m.IFLA_NET_NS_FD, netns_fd), f"move link {ref!r} to netns")

    def rename(self, ref: LinkRef, new_name: str) -> None:
        """Rename a link.  The kernel refuses (EBUSY) while it is up."""
        index = self._index(ref)  # IFLA_IFNAME carries the new name, so address by index
        self._setlink(index, m.attr_str(m.IFLA_IFNAME, new_name), f"rename link {ref!r}")

    def delete_link(self, ref: LinkRef) -> None:
        """Delete a link.  Deleting either end of a veth deletes both."""
        self.request(m.RTM_DELLINK, _ifinfo(ref), what=f"delete link {ref!r}")

    # -- creating links -------------------------------------------------------------------------

    def create_bridge(
        self, name: str, *, mtu: int | None = None, vlan_filtering: bool | None = None
    ) -> None:
        """``ip link add <name> [mtu] type bridge [vlan_filtering 0|1]``, left down.

        ``NetlinkExistsError`` when the name is taken (maybe by a bridge another
        plugin instance created a moment ago: check its kind and carry on).
        """
        data = b""
        if vlan_filtering is not None:
            data = m.nest(m.IFLA_INFO_DATA, m.attr_u8(m.IFLA_BR_VLAN_FILTERING, vlan_filtering))
        self._newlink(name, "bridge", data, mtu=mtu)

    def create_veth(
        self,
        name: str,
        peer_name: str,
        *,
        peer_netns_fd: int | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        peer_mac: str | None = None,
    ) -> None:
        """Create a veth pair: ``name`` here, ``peer_name`` in ``peer_netns_fd``.

        The peer is created directly in its namespace (IFLA_NET_NS_FD inside the
        VETH_INFO_PEER ifinfomsg), so ``peer_name`` may be ``eth0`` even though this
        namespace has one, and no link ever shows up half-configured in the wrong
        namespace.  ``mtu`` applies to both ends.  Both ends are left down.
        ``NetlinkExistsError`` when either name is taken: callers using random host
        names (``veth%08x``) retry with a new one.
        """
        peer = m.IFINFOMSG.pack(m.AF_UNSPEC, 0, 0, 0, 0) + m.attr_str(m.IFLA_IFNAME, peer_name)
        peer += _link_attrs(mtu, peer_mac)
        if peer_netns_fd is not None:
            peer += m.attr_u32(m.IFLA_NET_NS_FD, peer_netns_fd)
        data = m.nest(m.IFLA_INFO_DATA, m.nest(m.VETH_INFO_PEER, peer))
        self._newlink(name, "veth", data, mtu=mtu, mac=mac, what=f"create veth {name}/{peer_name}")

    def create_vlan(self, name: str, parent: LinkRef, vid: int, *, mtu: int | None = None) -> None:
        """``ip link add link <parent> name <name> type vlan id <vid>`` (e.g. ``cni0.100``)."""
        data = m.nest(m.IFLA_INFO_DATA, m.attr_u16(m.IFLA_VLAN_ID, vid))
        extra = m.attr_u32(m.IFLA_LINK, self._index(parent))
        self._newlink(name, "vlan", data, mtu=mtu, extra=extra)

    def _newlink(
        self,
        name: str,
        kind: str,
        info_data: bytes,
        *,
        mtu: int | None = None,
        mac: str | None = None,
        extra: bytes = b"",
        what: str = "",
    ) -> None:
        payload = (
            m.IFINFOMSG.pack(m.AF_UNSPEC, 0, 0, 0, 0)
            + m.attr_str(m.IFLA_IFNAME, name)
            + _link_attrs(mtu, mac)
            + extra
            + m.nest(m.IFLA_LINKINFO, m.attr_str(m.IFLA_INFO_KIND, kind), info_data)
        )
        what = what or f"create {kind} {name}"
        self.request(m.RTM_NEWLINK, payload, flags=_CREATE, what=what)

    def _setlink(
        self, ref: LinkRef, attrs: bytes, what: str, *, flags: int = 0, change: int = 0
    ) -> None:
        self.request(m.RTM_SETLINK, _ifinfo(ref, flags=flags, change=change) + attrs, what=what)

    def _index(self, ref: LinkRef) -> int:
        return ref if isinstance(ref, int) else self.link(ref).index

    # -- addresses ------------------------------------------------------------------------------

    def addresses(self, ref: LinkRef | None = None, family: int = m.AF_UNSPEC) -> list[Address]:
        """Addresses of link ``ref`` (every link if ``None``) of ``family``
        (``AF_INET``, ``AF_INET6`` or ``AF_UNSPEC`` for both)."""
        index = None if ref is None else self._index(ref)
        payload = m.IFADDRMSG.pack(family, 0, 0, 0, 0)
        found = (parse_address(b) for b in self.dump(m.RTM_GETADDR, payload, what="list addresses"))
        return [a for a in found if index is None or a.index == index]

    def add_address(
        self,
        ref: LinkRef,
        address: IPInterface,
        *,
        nodad: bool = False,
        noprefixroute: bool = False,
        scope: int | None = None,
        replace: bool = False,
    ) -> None:
        """Add ``address`` (e.g. ``ip_interface("10.244.1.2/24")``) to a link.

        IPv4 gets a broadcast address for prefixes up to /30, as iproute2's ``brd +``
        and Go's netlink.AddrAdd do.  ``nodad`` skips IPv6 duplicate address
        detection (IFA_F_NODAD).  Scope defaults to host for loopback addresses and
        universe otherwise.  ``NetlinkExistsError`` when already present (unless
        ``replace``).
        """
        flags = (m.IFA_F_NODAD if nodad else 0) | (m.IFA_F_NOPREFIXROUTE if noprefixroute else 0)
        if scope is None:
            scope = m.RT_SCOPE_HOST if address.ip.is_loopback else m.RT_SCOPE_UNIVERSE
        payload = _addr_msg(self._index(ref), address, scope, flags & 0xFF)
        if address.version == 4 and address.network.prefixlen < 31:
            payload += m.attr(m.IFA_BROADCAST, address.network.broadcast_address.packed)
        if flags > 0xFF:  # ifa_flags is 8 bits; the rest only fit the IFA_FLAGS attribute
            payload += m.attr_u32(m.IFA_FLAGS, flags)
        nl_flags = m.NLM_F_CREATE | (m.NLM_F_REPLACE if replace else m.NLM_F_EXCL)
        what = f"add address {address} to {ref!r}"
        self.request(m.RTM_NEWADDR, payload, flags=nl_flags, what=what)

    def delete_address(self, ref: LinkRef, address: IPInterface) -> None:
        """Remove ``address`` from a link; ``NetlinkNotFoundError`` if it is not there."""
        payload = _addr_msg(self._index(ref), address, 0, 0)
        self.request(m.RTM_DELADDR, payload, what=f"delete address {address} from {ref!r}")

    # -- routes ---------------------------------------------------------------------------------

    def routes(
        self, family: int = m.AF_UNSPEC, *, table: int | None = m.RT_TABLE_MAIN
    ) -> list[Route]:
        """Routes of ``family`` in ``table`` (the main table by default; ``None``: all)."""
        payload = m.RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        found = (parse_route(b) for b in self.dump(m.RTM_GETROUTE, payload, what="list routes"))
        return [r for r in found if table is None or r.table == table]

    def add_route(
        self,
        dst: IPNetwork,
        *,
        gateway: IPAddress | None = None,
        oif: LinkRef | None = None,
        priority: int | None = None,
        table: int | None = None,
        scope: int | None = None,
        prefsrc: IPAddress | None = None,
        mtu: int | None = None,
        advmss: int | None = None,
        onlink: bool = False,
        replace: bool = False,
    ) -> None:
        """Add a unicast route (``ip route add``); ``replace`` makes it ``ip route replace``.

        ``dst`` ``0.0.0.0/0`` / ``::/0`` is the default route.  ``priority`` is the
        metric.  ``table`` defaults to main.  ``scope`` defaults as in ``ip route``:
        link for an IPv4 route without gateway, universe otherwise.  ``mtu`` and
        ``advmss`` go into RTA_METRICS.  ``NetlinkExistsError`` if an identical
        route exists and ``replace`` is false.
        """
        if scope is None:
            v4_direct = gateway is None and dst.version == 4
            scope = m.RT_SCOPE_LINK if v4_direct else m.RT_SCOPE_UNIVERSE
        payload = self._route_msg(
            dst,
            gateway=gateway,
            oif=oif,
            priority=priority,
            table=table,
            scope=scope,
            proto=m.RTPROT_BOOT,
            rtype=m.RTN_UNICAST,
            onlink=onlink,
        )
        if prefsrc is not None:
            payload += m.attr(m.RTA_PREFSRC, prefsrc.packed)
        metrics = b""
        if mtu is not None:
            metrics += m.attr_u32(m.RTAX_MTU, mtu)
        if advmss is not None:
            metrics += m.attr_u32(m.RTAX_ADVMSS, advmss)
        if metrics:
            payload += m.nest(m.RTA_METRICS, metrics)
        flags = m.NLM_F_CREATE | (m.NLM_F_REPLACE if replace else m.NLM_F_EXCL)
        what = f"{'replace' if replace else 'add'} route {_route_text(dst, gateway)}"
        self.request(m.RTM_NEWROUTE, payload, flags=flags, what=what)

    def delete_route(
        self,
        dst: IPNetwork,
        *,
        gateway: IPAddress | None = None,
        oif: LinkRef | None = None,
        priority: int | None = None,
        table: int | None = None,
    ) -> None:
        """Delete the route to ``dst``; the other fields narrow the match when given.

        ``NetlinkNotFoundError`` (ESRCH) when no route matches.
        """
        # Scope NOWHERE, protocol and type 0 match any route, as ``ip route del`` sends.
        payload = self._route_msg(
            dst, gateway=gateway, oif=oif, priority=priority, table=table, scope=m.RT_SCOPE_NOWHERE
        )
        self.request(m.RTM_DELROUTE, payload, what=f"delete route {_route_text(dst, gateway)}")

    def _route_msg(
        self,
        dst: IPNetwork,
        *,
        gateway: IPAddress | None,
        oif: LinkRef | None,
        priority: int | None,
        table: int | None,
        scope: int,
        proto: int = 0,
        rtype: int = 0,
        onlink: bool = False,
    ) -> bytes:
        family = m.AF_INET if dst.version == 4 else m.AF_INET6
        table = m.RT_TABLE_MAIN if table is None else table
        rtm_flags = m.RTNH_F_ONLINK if onlink else 0
        out = m.RTMSG.pack(
            family, dst.prefixlen, 0, 0, table if table < 256 else 0, proto, scope, rtype, rtm_flags
        )
        out += m.attr_u32(m.RTA_TABLE, table)  # rtm_table is only 8 bits wide
        if dst.prefixlen:
            out += m.attr(m.RTA_DST, dst.network_address.packed)
        if gateway is not None:
            out += m.attr(m.RTA_GATEWAY, gateway.packed)
        if oif is not None:
            out += m.attr_u32(m.RTA_OIF, self._index(oif))
        if priority is not None:
            out += m.attr_u32(m.RTA_PRIORITY, priority)
        return out

    def route_get(self, dst: IPAddress) -> Route:
        """The route the kernel would use to reach ``dst`` (``ip route get``).

        The answer's ``oif`` is the output link and ``prefsrc`` the source address
        it would pick; portmap uses it to find the host-side interface.  Raises
        ``NetlinkError`` (ENETUNREACH) when nothing routes there.
        """
        family = m.AF_INET if dst.version == 4 else m.AF_INET6
        payload = m.RTMSG.pack(family, dst.max_prefixlen, 0, 0, 0, 0, 0, 0, 0)
        payload += m.attr(m.RTA_DST, dst.packed)
        replies = self.request(m.RTM_GETROUTE, payload, what=f"get route to {dst}")
        return parse_route(replies[0])

    # -- bridge ports and VLANs -----------------------------------------------------------------

    def set_bridge_port(
        self, port: LinkRef, *, hairpin: bool | None = None, isolated: bool | None = None
    ) -> None:
        """Set bridge-port flags on an enslaved link (``bridge link set ...``).

        ``hairpin`` lets frames go back out of the port they came in on (a pod
        reaching itself through a service VIP); ``isolated`` stops isolated ports
        from talking to each other.  Sent as AF_BRIDGE RTM_SETLINK with a nested
        IFLA_PROTINFO, which the bridge addresses by ifindex only.
        """
        attrs = b""
        if hairpin is not None:
            attrs += m.attr_u8(m.IFLA_BRPORT_MODE, hairpin)
        if isolated is not None:
            attrs += m.attr_u8(m.IFLA_BRPORT_ISOLATED, isolated)
        if not attrs:
            return
        payload = _ifinfo(self._index(port), family=m.AF_BRIDGE) + m.nest(m.IFLA_PROTINFO, attrs)
        self.request(m.RTM_SETLINK, payload, what=f"set bridge port flags on {port!r}")

    def add_bridge_vlan(
        self,
        port: LinkRef,
        vid: int,
        *,
        vid_end: int | None = None,
        pvid: bool = False,
        untagged: bool = False,
        bridge_self: bool = False,
    ) -> None:
        """``bridge vlan add dev <port> vid <vid>[-<vid_end>] [pvid] [untagged] [self]``.

        ``vid_end`` makes it a range (the kernel refuses ``pvid`` on a range).
        ``bridge_self`` targets the bridge device itself rather than a port, which a
        ``<bridge>.<vid>`` vlan interface on the bridge needs.  The bridge must have
        been created with ``vlan_filtering``; kernels without
        CONFIG_BRIDGE_VLAN_FILTERING answer EOPNOTSUPP.
        """
        flags = (m.BRIDGE_VLAN_INFO_PVID if pvid else 0) | (
            m.BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0
        )
        payload = _bridge_vlan_msg(self._index(port), vid, vid_end, flags, bridge_self)
        what = f"add vlan {_vids(vid, vid_end)} to {port!r}"
        self.request(m.RTM_SETLINK, payload, what=what)

    def delete_bridge_vlan(
        self, port: LinkRef, vid: int, *, vid_end: int | None = None, bridge_self: bool = False
    ) -> None:
        """``bridge vlan del``; e.g. ``delete_bridge_vlan(port, 1)`` drops the default VID 1."""
        payload = _bridge_vlan_msg(self._index(port), vid, vid_end, 0, bridge_self)
        what = f"delete vlan {_vids(vid, vid_end)} from {port!r}"
        self.request(m.RTM_DELLINK, payload, what=what)

    def bridge_vlans(self, port: LinkRef) -> list[tuple[int, int]]:
        """``(vid, BRIDGE_VLAN_INFO_* flags)`` for every VLAN on ``port``, one per VID
        (ranges expanded); empty when the kernel has no VLAN filtering."""
        index = self._index(port)
        payload = m.IFINFOMSG.pack(m.AF_BRIDGE, 0, 0, 0, 0)
        payload += m.attr_u32(m.IFLA_EXT_MASK, m.RTEXT_FILTER_BRVLAN)
        out: list[tuple[int, int]] = []
        for body in self.dump(m.RTM_GETLINK, payload, what="list bridge vlans"):
            if m.IFINFOMSG.unpack_from(body)[2] == index:
                out += _parse_vlans(m.parse_attrs(body, m.IFINFOMSG.size).get(m.IFLA_AF_SPEC, b""))
        return out

    # -- waiting --------------------------------------------------------------------------------

    def wait_oper_up(self, ref: LinkRef, delays: tuple[float, ...] = _OPER_UP_DELAYS) -> Link:
        """Poll until ``ref`` is operationally up; return its last state either way.

        The default delays (0, 50, 500, 1000, 1000 ms) are the bridge plugin's: a
        fresh veth port needs a moment before the bridge forwards on it.  Callers
        check ``link.oper_up`` and report ``link.operstate_name`` on failure.
        """
        link = None
        for delay in delays:
            if delay:
                time.sleep(delay)
            link = self.link(ref)
            if link.oper_up:
                break
        return link if link is not None else self.link(ref)


def _ifinfo(ref: LinkRef, *, family: int = m.AF_UNSPEC, flags: int = 0, change: int = 0) -> bytes:
    """``ifinfomsg`` addressing ``ref``: by index, or index 0 plus IFLA_IFNAME."""
    if isinstance(ref, int):
        return m.IFINFOMSG.pack(family, 0, ref, flags, change)
    return m.IFINFOMSG.pack(family, 0, 0, flags, change) + m.attr_str(m.IFLA_IFNAME, ref)


def _link_attrs(mtu: int | None, mac: str | None) -> bytes:
    out = b""
    if mtu is not None:
        out += m.attr_u32(m.IFLA_MTU, mtu)
    if mac is not None:
        out += m.attr(m.IFLA_ADDRESS, m.parse_mac(mac))
    return out


def _addr_msg(index: int, address: IPInterface, scope: int, flags: int) -> bytes:
    family = m.AF_INET if address.version == 4 else m.AF_INET6
    packed = address.ip.packed
    return (
        m.IFADDRMSG.pack(family, address.network.prefixlen, flags, scope, index)
        + m.attr(m.IFA_LOCAL, packed)
        + m.attr(m.IFA_ADDRESS, packed)
    )


def _route_text(dst: IPNetwork, gateway: IPAddress | None) -> str:
    return f"{dst} via {gateway}" if gateway is not None else str(dst)


def _bridge_vlan_msg(index: int, vid: int, vid_end: int | None, flags: int, self_: bool) -> bytes:
    """AF_BRIDGE ifinfomsg + IFLA_AF_SPEC { [IFLA_BRIDGE_FLAGS], VLAN_INFO (x2 for a range) }."""
    spec = m.attr_u16(m.IFLA_BRIDGE_FLAGS, m.BRIDGE_FLAGS_SELF) if self_ else b""
    if vid_end is None or vid_end == vid:
        spec += m.attr(m.IFLA_BRIDGE_VLAN_INFO, m.BRIDGE_VLAN_INFO.pack(flags, vid))
    else:
        begin = m.BRIDGE_VLAN_INFO.pack(flags | m.BRIDGE_VLAN_INFO_RANGE_BEGIN, vid)
        end = m.BRIDGE_VLAN_INFO.pack(flags | m.BRIDGE_VLAN_INFO_RANGE_END, vid_end)
        spec += m.attr(m.IFLA_BRIDGE_VLAN_INFO, begin) + m.attr(m.IFLA_BRIDGE_VLAN_INFO, end)
    return _ifinfo(index, family=m.AF_BRIDGE) + m.nest(m.IFLA_AF_SPEC, spec)


def _parse_vlans(spec: bytes) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    begin = None
    for kind, data in m.iter_attrs(spec):
        if kind != m.IFLA_BRIDGE_VLAN_INFO:
            continue
        flags, vid = m.BRIDGE_VLAN_INFO.unpack_from(data)
        if flags & m.BRIDGE_VLAN_INFO_RANGE_BEGIN:
            begin = vid
        elif flags & m.BRIDGE_VLAN_INFO_RANGE_END and begin is not None:
            plain = flags & ~m.BRIDGE_VLAN_INFO_RANGE_END
            out += [(v, plain) for v in range(begin, vid + 1)]
            begin = None
        else:
            out.append((vid, flags))
    return out


def _vids(vid: int, vid_end: int | None) -> str:
    return str(vid) if vid_end is None else f"{vid}-{vid_end}"
