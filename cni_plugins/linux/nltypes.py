"""Records for what rtnetlink reports (links, addresses, routes) and their parsers.

Plain ``__slots__`` classes, not dataclasses: ``dataclasses`` costs ~30 ms of
imports per process (DESIGN.md section 4).  The parsers take the body of one
reply (family header + attributes) and are unit-tested on packed bytes.
"""

from __future__ import annotations

from cni_plugins.linux import nlmsg as m
from cni_plugins.spec.ip import IPAddress, IPInterface, IPNetwork

TYPE_CHECKING = False
if TYPE_CHECKING:
    LinkRef = int | str


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
    if len(data) != (4 if family == m.AF_INET else 16):
        raise ValueError(f"address of family {family} is {len(data)} bytes long")
    return IPAddress.from_packed(data)


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
    iface = IPInterface(_ip(family, raw), prefixlen)
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
    return IPNetwork(_ip(family, packed), plen)
