"""A small rtnetlink client on stdlib sockets: links, addresses, routes.

Why it exists: every plugin exec pays its imports, and pyroute2 alone costs
150-250 ms (DESIGN.md section 4).  This module needs ``_socket``, ``struct``,
``os`` and ``ipaddress``.  It uses ``_socket`` rather than ``socket`` on purpose:
the public module drags in ``enum``, ``selectors`` and friends (~4-10 ms) for
nothing we use.

One ``RouteSocket`` per namespace: a netlink socket stays bound to the network
namespace it was created in, so ``RouteSocket(ns)`` enters ``ns`` only for the
``socket()`` call and every later request acts inside ``ns``, with the calling
thread back home.

Errors are ``NetlinkError`` (an ``OSError`` with the kernel's errno and, when the
kernel gives one, its extended-ack text).  Callers tolerate races by class:

    NetlinkError(OSError)
    +-- NetlinkExistsError      EEXIST            (create raced or name taken)
    +-- NetlinkNotFoundError    ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL

``map_netlink_errors`` turns them into CNI errors at a plugin's boundary.

Links are named by ``LinkRef``: an ``int`` ifindex or a ``str`` name.  Most
requests take the name directly (the kernel resolves IFLA_IFNAME when the index
is 0), which saves a round trip.
"""

from __future__ import annotations

import _socket
import errno as _errno
import os
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)

from cni_plugins.linux import nlmsg as m

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType

    from cni_plugins.linux.netns import NetNS

    LinkRef = int | str
    IPAddress = IPv4Address | IPv6Address
    IPInterface = IPv4Interface | IPv6Interface
    IPNetwork = IPv4Network | IPv6Network

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

_RECV_BUF = 1 << 18  # larger than any single rtnetlink reply we can get
_DUMP_RETRIES = 5


# --- errors -----------------------------------------------------------------------------------


class NetlinkError(OSError):
    """The kernel refused a request: ``errno`` is the reason, ``strerror`` names the request."""


class NetlinkExistsError(NetlinkError):
    """EEXIST: the link/address/route is already there (e.g. a create raced another)."""


class NetlinkNotFoundError(NetlinkError):
    """The object named in the request does not exist (ENODEV/ENOENT/ESRCH/EADDRNOTAVAIL)."""


_NOT_FOUND = frozenset((_errno.ENODEV, _errno.ENOENT, _errno.ESRCH, _errno.EADDRNOTAVAIL))


def _error(code: int, what: str, ext: str) -> NetlinkError:
    text = f"{what}: {os.strerror(code)}"
    if ext:
        text += f" ({ext})"
    if code == _errno.EEXIST:
        return NetlinkExistsError(code, text)
    if code in _NOT_FOUND:
        return NetlinkNotFoundError(code, text)
    return NetlinkError(code, text)


def map_netlink_errors(what: str) -> AbstractContextManager[None]:
    """Context manager: a ``NetlinkError`` inside becomes a CNI ``InternalError``
    (code 999, as the Go plugins report kernel failures) whose message starts with
    ``what``; the original stays as ``__cause__``."""
    return _MapErrors(what)


class _MapErrors:
    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(ev, NetlinkError):
            from cni_plugins.spec.errors import InternalError

            raise InternalError(f"{self._what}: {ev.strerror}") from ev


# --- records ----------------------------------------------------------------------------------


class Link:
    """One network interface as RTM_NEWLINK describes it.

    ``master`` and ``link`` are ifindexes, 0 for none; ``link`` is the veth peer (or
    a vlan's parent), in the namespace ``link_netnsid`` names when that is set.
    ``mac`` is ``""`` for links without a hardware address.
    """

    __slots__ = (
        "flags",
        "index",
        "kind",
        "link",
        "link_netnsid",
        "mac",
        "master",
        "mtu",
        "name",
        "operstate",
        "slave_kind",
    )

    def __init__(
        self,
        index: int,
        name: str,
        *,
        flags: int = 0,
        mtu: int = 0,
        mac: str = "",
        kind: str | None = None,
        slave_kind: str | None = None,
        master: int = 0,
        operstate: int = 0,
        link: int = 0,
        link_netnsid: int | None = None,
    ) -> None:
        self.index = index
        self.name = name
        self.flags = flags
        self.mtu = mtu
        self.mac = mac
        self.kind = kind
        self.slave_kind = slave_kind
        self.master = master
        self.operstate = operstate
        self.link = link
        self.link_netnsid = link_netnsid

    @property
    def is_up(self) -> bool:
        """Administratively up (IFF_UP)."""
        return bool(self.flags & m.IFF_UP)

    @property
    def promisc(self) -> bool:
        return bool(self.flags & m.IFF_PROMISC)

    @property
    def oper_up(self) -> bool:
        """Operationally up: what the bridge plugin waits for on its host veth."""
        return self.operstate == m.IF_OPER_UP

    @property
    def operstate_name(self) -> str:
        """``"up"``, ``"down"``, ``"lowerlayerdown"``... as ``ip link`` prints it (lower case)."""
        if 0 <= self.operstate < len(m.OPERSTATES):
            return m.OPERSTATES[self.operstate]
        return str(self.operstate)

    def __repr__(self) -> str:
        return (
            f"Link({self.index}, {self.name!r}, kind={self.kind!r}, mtu={self.mtu},"
            f" mac={self.mac!r}, up={self.is_up}, oper={self.operstate_name},"
            f" master={self.master})"
        )


class Address:
    """An IP address on a link: ``interface`` carries address and prefix length."""

    __slots__ = ("flags", "index", "interface", "label", "scope")

    def __init__(
        self, index: int, interface: IPInterface, *, scope: int = 0, flags: int = 0, label: str = ""
    ) -> None:
        self.index = index
        self.interface = interface
        self.scope = scope
        self.flags = flags
        self.label = label

    @property
    def family(self) -> int:
        return m.AF_INET if self.interface.version == 4 else m.AF_INET6

    def __repr__(self) -> str:
        return f"Address({self.index}, {str(self.interface)!r}, scope={self.scope})"


class Route:
    """A route.  ``dst`` is ``0.0.0.0/0`` / ``::/0`` for a default route; ``oif`` is
    0 when the route has no output interface; ``priority`` is the metric."""

    __slots__ = (
        "advmss",
        "dst",
        "flags",
        "gateway",
        "mtu",
        "oif",
        "prefsrc",
        "priority",
        "protocol",
        "scope",
        "table",
        "type",
    )

    def __init__(
        self,
        dst: IPNetwork,
        *,
        gateway: IPAddress | None = None,
        oif: int = 0,
        table: int = m.RT_TABLE_MAIN,
        priority: int | None = None,
        scope: int = m.RT_SCOPE_UNIVERSE,
        protocol: int = 0,
        type: int = m.RTN_UNICAST,
        flags: int = 0,
        prefsrc: IPAddress | None = None,
        mtu: int | None = None,
        advmss: int | None = None,
    ) -> None:
        self.dst = dst
        self.gateway = gateway
        self.oif = oif
        self.table = table
        self.priority = priority
        self.scope = scope
        self.protocol = protocol
        self.type = type
        self.flags = flags
        self.prefsrc = prefsrc
        self.mtu = mtu
        self.advmss = advmss

    def __repr__(self) -> str:
        return (
            f"Route({str(self.dst)!r}, gateway={self.gateway and str(self.gateway)!r},"
            f" oif={self.oif}, table={self.table}, priority={self.priority}, scope={self.scope})"
        )


def _ip(family: int, data: bytes) -> IPAddress:
    return IPv4Address(data) if family == m.AF_INET else IPv6Address(data)


def parse_link(body: bytes) -> Link:
    """A Link from an RTM_NEWLINK body (``ifinfomsg`` + attributes)."""
    _family, _type, index, flags, _change = m.IFINFOMSG.unpack_from(body)
    a = m.parse_attrs(body, m.IFINFOMSG.size)
    kind = slave_kind = None
    info = a.get(m.IFLA_LINKINFO)
    if info is not None:
        ia = m.parse_attrs(info)
        if m.IFLA_INFO_KIND in ia:
            kind = m.get_str(ia[m.IFLA_INFO_KIND])
        if m.IFLA_INFO_SLAVE_KIND in ia:
            slave_kind = m.get_str(ia[m.IFLA_INFO_SLAVE_KIND])
    netnsid = a.get(m.IFLA_LINK_NETNSID)
    return Link(
        index,
        m.get_str(a.get(m.IFLA_IFNAME, b"")),
        flags=flags,
        mtu=m.get_u32(a[m.IFLA_MTU]) if m.IFLA_MTU in a else 0,
        mac=m.format_mac(a.get(m.IFLA_ADDRESS, b"")),
        kind=kind,
        slave_kind=slave_kind,
        master=m.get_u32(a[m.IFLA_MASTER]) if m.IFLA_MASTER in a else 0,
        operstate=m.get_u8(a[m.IFLA_OPERSTATE]) if m.IFLA_OPERSTATE in a else 0,
        link=m.get_u32(a[m.IFLA_LINK]) if m.IFLA_LINK in a else 0,
        link_netnsid=m.get_i32(netnsid) if netnsid is not None else None,
    )


def parse_address(body: bytes) -> Address:
    """An Address from an RTM_NEWADDR body.  For IPv4, IFA_LOCAL is the address and
    IFA_ADDRESS the peer; IPv6 only sends IFA_ADDRESS."""
    family, prefixlen, flags, scope, index = m.IFADDRMSG.unpack_from(body)
    a = m.parse_attrs(body, m.IFADDRMSG.size)
    raw = a.get(m.IFA_LOCAL) or a[m.IFA_ADDRESS]
    iface: IPInterface
    if family == m.AF_INET:
        iface = IPv4Interface((raw, prefixlen))
    else:
        iface = IPv6Interface((raw, prefixlen))
    if m.IFA_FLAGS in a:  # the 8-bit ifa_flags cannot hold e.g. NOPREFIXROUTE
        flags = m.get_u32(a[m.IFA_FLAGS])
    return Address(index, iface, scope=scope, flags=flags, label=m.get_str(a.get(m.IFA_LABEL, b"")))


def parse_route(body: bytes) -> Route:
    """A Route from an RTM_NEWROUTE body (``rtmsg`` + attributes)."""
    family, dst_len, _src_len, _tos, table, proto, scope, rtype, flags = m.RTMSG.unpack_from(body)
    a = m.parse_attrs(body, m.RTMSG.size)
    size = 4 if family == m.AF_INET else 16
    dst = _ip(family, a.get(m.RTA_DST, b"\0" * size))
    if m.RTA_TABLE in a:  # rtm_table is only 8 bits
        table = m.get_u32(a[m.RTA_TABLE])
    mtu = advmss = None
    if m.RTA_METRICS in a:
        metrics = m.parse_attrs(a[m.RTA_METRICS])
        if m.RTAX_MTU in metrics:
            mtu = m.get_u32(metrics[m.RTAX_MTU])
        if m.RTAX_ADVMSS in metrics:
            advmss = m.get_u32(metrics[m.RTAX_ADVMSS])
    return Route(
        _net(family, dst.packed, dst_len),
        gateway=_ip(family, a[m.RTA_GATEWAY]) if m.RTA_GATEWAY in a else None,
        oif=m.get_u32(a[m.RTA_OIF]) if m.RTA_OIF in a else 0,
        table=table,
        priority=m.get_u32(a[m.RTA_PRIORITY]) if m.RTA_PRIORITY in a else None,
        scope=scope,
        protocol=proto,
        type=rtype,
        flags=flags,
        prefsrc=_ip(family, a[m.RTA_PREFSRC]) if m.RTA_PREFSRC in a else None,
        mtu=mtu,
        advmss=advmss,
    )


def _net(family: int, packed: bytes, plen: int) -> IPNetwork:
    return IPv4Network((packed, plen)) if family == m.AF_INET else IPv6Network((packed, plen))


# --- the socket -------------------------------------------------------------------------------


class RouteSocket:
    """A NETLINK_ROUTE socket; requests act in the namespace it was opened in.

    ``RouteSocket()`` works in the calling thread's namespace, ``RouteSocket(ns)`` in
    ``ns`` (entered only while the socket is created).  Use it as a context manager
    or call ``close``.  Not thread-safe; one per namespace per invocation.
    """

    __slots__ = ("_buf", "_seq", "_sock")

    def __init__(self, netns: NetNS | None = None) -> None:
        if netns is None:
            self._sock = _open_socket()
        else:
            with netns.entered():
                self._sock = _open_socket()
        self._seq = 0
        self._buf = bytearray(_RECV_BUF)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RouteSocket:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    # -- transport ------------------------------------------------------------------------------

    def _send(self, kind: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        self._sock.send(m.pack_msg(kind, flags, self._seq, payload))
        return self._seq

    def _recv(self) -> bytes:
        n = self._sock.recv_into(self._buf)
        return bytes(self._buf[:n])

    def request(self, kind: int, payload: bytes, *, flags: int = 0, what: str = "") -> list[bytes]:
        """Send one request with NLM_F_ACK and wait for the kernel's verdict.

        Returns the bodies of any replies that came before the ACK (a GET answers
        with one message).  Raises ``NetlinkError`` (``what`` names the request in
        the message) when the kernel refuses.
        """
        seq = self._send(kind, flags | m.NLM_F_REQUEST | m.NLM_F_ACK, payload)
        out: list[bytes] = []
        while True:
            for rkind, rflags, rseq, body in m.iter_msgs(self._recv()):
                if rseq != seq:
                    continue  # a leftover from an earlier, abandoned request
                if rkind == m.NLMSG_ERROR:
                    code, ext = m.parse_error(rflags, body)
                    if code:
                        raise _error(code, what or f"netlink request {kind}", ext)
                    return out
                out.append(body)

    def dump(self, kind: int, payload: bytes, *, what: str = "") -> list[bytes]:
        """An NLM_F_DUMP request: the bodies of every reply up to NLMSG_DONE.

        A dump that the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed
        while being walked) is restarted, as iproute2 does.
        """
        for _ in range(_DUMP_RETRIES):
            seq = self._send(kind, m.NLM_F_REQUEST | m.NLM_F_DUMP, payload)
            out: list[bytes] = []
            interrupted = done = False
            while not done:
                for rkind, rflags, rseq, body in m.iter_msgs(self._recv()):
                    if rseq != seq:
                        continue
                    interrupted |= bool(rflags & m.NLM_F_DUMP_INTR)
                    if rkind in (m.NLMSG_DONE, m.NLMSG_ERROR):
                        code, ext = m.parse_error(rflags, body) if len(body) >= 4 else (0, "")
                        if code:
                            raise _error(code, what or f"netlink dump {kind}", ext)
                        done = True
                        break
                    out.append(body)
            if not interrupted:
                return out
        raise NetlinkError(_errno.EINTR, f"{what or 'netlink dump'}: kept being interrupted")

    # -- links ----------------------------------------------------------------------------------

    def link(self, ref: LinkRef) -> Link:
        """The link named ``ref``; ``NetlinkNotFoundError`` (ENODEV) when absent."""
        payload = _ifinfo(ref) + m.attr_u32(m.IFLA_EXT_MASK, m.RTEXT_FILTER_SKIP_STATS)
        replies = self.request(m.RTM_GETLINK, payload, what=f"get link {ref!r}")
        return parse_link(replies[0])

    def find_link(self, ref: LinkRef) -> Link | None:
        """Like ``link`` but ``None`` when there is no such link."""
        try:
            return self.link(ref)
        except NetlinkNotFoundError:
            return None

    def links(self) -> list[Link]:
        """Every link in the namespace."""
        payload = m.IFINFOMSG.pack(m.AF_UNSPEC, 0, 0, 0, 0) + m.attr_u32(
            m.IFLA_EXT_MASK, m.RTEXT_FILTER_SKIP_STATS
        )
        return [parse_link(b) for b in self.dump(m.RTM_GETLINK, payload, what="list links")]

    def _setlink(
        self, ref: LinkRef, attrs: bytes, what: str, *, flags: int = 0, change: int = 0
    ) -> None:
        self.request(m.RTM_SETLINK, _ifinfo(ref, flags=flags, change=change) + attrs, what=what)

    def set_up(self, ref: LinkRef) -> None:
        """Bring the link administratively up (``ip link set up``)."""
        self._setlink(ref, b"", f"set link {ref!r} up", flags=m.IFF_UP, change=m.IFF_UP)

    def set_down(self, ref: LinkRef) -> None:
        self._setlink(ref, b"", f"set link {ref!r} down", flags=0, change=m.IFF_UP)

    def set_promisc(self, ref: LinkRef, on: bool) -> None:
        self._setlink(
            ref,
            b"",
            f"set link {ref!r} promisc {'on' if on else 'off'}",
            flags=m.IFF_PROMISC if on else 0,
            change=m.IFF_PROMISC,
        )

    def set_mtu(self, ref: LinkRef, mtu: int) -> None:
        self._setlink(ref, m.attr_u32(m.IFLA_MTU, mtu), f"set link {ref!r} mtu {mtu}")

    def set_mac(self, ref: LinkRef, mac: str) -> None:
        """Set the hardware address (``"aa:bb:cc:dd:ee:ff"``)."""
        self._setlink(ref, m.attr(m.IFLA_ADDRESS, m.parse_mac(mac)), f"set link {ref!r} mac {mac}")

    def set_master(self, ref: LinkRef, master: LinkRef | None) -> None:
        """Enslave ``ref`` to bridge ``master``; ``None`` releases it (nomaster)."""
        index = 0 if master is None else self._index(master)
        self._setlink(ref, m.attr_u32(m.IFLA_MASTER, index), f"set link {ref!r} master {master!r}")

    def set_netns(self, ref: LinkRef, netns_fd: int) -> None:
        """Move the link into the namespace open at ``netns_fd`` (it goes down there)."""
        self._setlink(ref, m.attr_u32(m.IFLA_NET_NS_FD, netns_fd), f"move link {ref!r} to netns")

    def rename(self, ref: LinkRef, new_name: str) -> None:
        """Rename a link (the kernel wants it down: EBUSY otherwise)."""
        index = self._index(ref)
        self._setlink(index, m.attr_str(m.IFLA_IFNAME, new_name), f"rename link {ref!r}")

    def delete_link(self, ref: LinkRef) -> None:
        """Delete a link; deleting one veth end deletes its peer too."""
        self.request(m.RTM_DELLINK, _ifinfo(ref), what=f"delete link {ref!r}")

    def _index(self, ref: LinkRef) -> int:
        return ref if isinstance(ref, int) else self.link(ref).index

    # -- addresses ------------------------------------------------------------------------------

    def addresses(self, ref: LinkRef | None = None, family: int = m.AF_UNSPEC) -> list[Address]:
        """Addresses of link ``ref`` (all links if ``None``) of ``family``
        (``AF_INET``, ``AF_INET6`` or ``AF_UNSPEC`` for both)."""
        index = None if ref is None else self._index(ref)
        payload = m.IFADDRMSG.pack(family, 0, 0, 0, 0)
        out = []
        for body in self.dump(m.RTM_GETADDR, payload, what="list addresses"):
            addr = parse_address(body)
            if index is None or addr.index == index:
                out.append(addr)
        return out


def _open_socket() -> _socket.socket:
    sock = _socket.socket(
        _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, m.NETLINK_ROUTE
    )
    try:
        # Errors then carry the kernel's own words and not a copy of our request.
        sock.setsockopt(m.SOL_NETLINK, m.NETLINK_EXT_ACK, 1)
        sock.setsockopt(m.SOL_NETLINK, m.NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _ifinfo(ref: LinkRef, *, family: int = m.AF_UNSPEC, flags: int = 0, change: int = 0) -> bytes:
    """``ifinfomsg`` addressing ``ref``: by index, or index 0 plus IFLA_IFNAME."""
    if isinstance(ref, int):
        return m.IFINFOMSG.pack(family, 0, ref, flags, change)
    return m.IFINFOMSG.pack(family, 0, 0, flags, change) + m.attr_str(m.IFLA_IFNAME, ref)
