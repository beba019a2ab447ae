"""rtnetlink wire format: constants, attribute packing and message parsing.

Pure functions over ``bytes`` (no sockets, no kernel), so the byte layout is
unit-tested without root.  ``netlink.py`` builds requests from these pieces and
sends them.

Why not pyroute2: importing it costs 150-250 ms per process, several times a
whole Go plugin ADD (DESIGN.md section 4).  The subset of rtnetlink the plugins
need fits in a few hundred lines of ``struct`` calls.

Layout reminders (``linux/netlink.h``, ``linux/rtnetlink.h``): every message is
``nlmsghdr`` + a fixed family header (``ifinfomsg``, ``ifaddrmsg``, ``rtmsg``)
+ attributes; an attribute is ``{u16 len, u16 type}`` + payload, padded to 4
bytes; ``len`` excludes the padding.  Integers are in host byte order.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# --- netlink core (linux/netlink.h) -------------------------------------------------------
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLMSG_ERROR = 2
NLMSG_DONE = 3

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
# flags on NLMSG_ERROR replies
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

NLMSGERR_ATTR_MSG = 1

NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

# --- rtnetlink message types ----------------------------------------------------------------
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26

AF_UNSPEC = 0
AF_INET = 2
AF_BRIDGE = 7
AF_INET6 = 10

# --- links (linux/if_link.h, linux/if.h) ------------------------------------------------------
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_PROMISC = 0x100
IFF_LOWER_UP = 0x10000

IFLA_ADDRESS = 1
IFLA_BROADCAST = 2
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_PROTINFO = 12
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_AF_SPEC = 26
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_LINK_NETNSID = 37

IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4

VETH_INFO_PEER = 1
IFLA_BR_VLAN_FILTERING = 7
IFLA_VLAN_ID = 1

IFLA_BRPORT_MODE = 4  # hairpin
IFLA_BRPORT_ISOLATED = 33

IFLA_BRIDGE_FLAGS = 0
IFLA_BRIDGE_VLAN_INFO = 2
BRIDGE_FLAGS_MASTER = 1
BRIDGE_FLAGS_SELF = 2
BRIDGE_VLAN_INFO_MASTER = 0x1
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
BRIDGE_VLAN_INFO_RANGE_BEGIN = 0x8
BRIDGE_VLAN_INFO_RANGE_END = 0x10

RTEXT_FILTER_BRVLAN = 0x2
RTEXT_FILTER_SKIP_STATS = 0x8  # smaller link replies: we never read counters

IF_OPER_UP = 6
OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

# --- addresses (linux/if_addr.h) --------------------------------------------------------------
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_NODAD = 0x02
IFA_F_PERMANENT = 0x80
IFA_F_NOPREFIXROUTE = 0x200

# --- routes (linux/rtnetlink.h) ---------------------------------------------------------------
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_TABLE = 15
RTAX_MTU = 2
RTAX_ADVMSS = 8

RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
RTPROT_BOOT = 3
RTN_UNICAST = 1
RTNH_F_ONLINK = 0x4

# --- fixed headers ----------------------------------------------------------------------------
NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct(
    "=BBBBBBBBI"
)  # family, dst_len, src_len, tos, table, proto, scope, type, flags
NLATTR = struct.Struct("=HH")  # len, type
BRIDGE_VLAN_INFO = struct.Struct("=HH")  # flags, vid

_U8 = struct.Struct("=B")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")


def align4(n: int) -> int:
    """Round ``n`` up to the 4-byte netlink alignment (NLMSG_ALIGN / NLA_ALIGN)."""
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    """One attribute, padded: the header's length counts the payload, not the padding."""
    size = NLATTR.size + len(data)
    return NLATTR.pack(size, kind) + data + b"\0" * (align4(size) - size)


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, _U8.pack(value))


def attr_u16(kind: int, value: int) -> bytes:
    return attr(kind, _U16.pack(value))


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def attr_str(kind: int, value: str) -> bytes:
    """A NUL-terminated string attribute (NLA_STRING / NLA_NUL_STRING both accept it)."""
    return attr(kind, value.encode() + b"\0")


def nest(kind: int, *children: bytes, flag: bool = True) -> bytes:
    """A nested attribute holding already packed ``children``.

    ``NLA_F_NESTED`` is set by default: the kernel's strict parsers demand it and
    the lenient ones mask it off.  AF_BRIDGE ``IFLA_PROTINFO`` in particular is read
    as the legacy single-byte port state when the flag is missing.
    """
    return attr(kind | NLA_F_NESTED if flag else kind, b"".join(children))


def pack_msg(kind: int, flags: int, seq: int, payload: bytes, pid: int = 0) -> bytes:
    """``nlmsghdr`` + payload (the family header and attributes, already aligned)."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(payload), kind, flags, seq, pid) + payload


def iter_msgs(buf: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """Split one datagram into ``(type, flags, seq, body)``; a datagram may hold many."""
    off, end = 0, len(buf)
    while off + NLMSGHDR.size <= end:
        size, kind, flags, seq, _pid = NLMSGHDR.unpack_from(buf, off)
        if size < NLMSGHDR.size or off + size > end:
            raise ValueError(f"truncated netlink message at offset {off}")
        yield kind, flags, seq, buf[off + NLMSGHDR.size : off + size]
        off += align4(size)


def iter_attrs(buf: bytes, off: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(type, payload)`` for each attribute from ``off``; type flags are masked off.

    Repeated types are yielded in order (IFLA_AF_SPEC holds one VLAN_INFO per VID).
    """
    end = len(buf)
    while off + NLATTR.size <= end:
        size, kind = NLATTR.unpack_from(buf, off)
        if size < NLATTR.size or off + size > end:
            raise ValueError(f"truncated netlink attribute at offset {off}")
        yield kind & NLA_TYPE_MASK, buf[off + NLATTR.size : off + size]
        off += align4(size)


def parse_attrs(buf: bytes, off: int = 0) -> dict[int, bytes]:
    """Attributes by type (last one wins), the usual way to read a reply."""
    return dict(iter_attrs(buf, off))


def get_u8(data: bytes) -> int:
    return int(data[0])


def get_u16(data: bytes) -> int:
    return int(_U16.unpack_from(data)[0])


def get_u32(data: bytes) -> int:
    return int(_U32.unpack_from(data)[0])


def get_i32(data: bytes) -> int:
    return int(_I32.unpack_from(data)[0])


def get_str(data: bytes) -> str:
    """A string attribute without its NUL terminator."""
    return data.split(b"\0", 1)[0].decode(errors="replace")


def format_mac(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def parse_mac(mac: str) -> bytes:
    """``"aa:bb:cc:dd:ee:ff"`` (or with ``-``) to 6 bytes; ValueError otherwise."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"invalid MAC address {mac!r}")
    return bytes(int(p, 16) for p in parts)


def parse_error(flags: int, body: bytes) -> tuple[int, str]:
    """``(errno, extended ack message)`` from an NLMSG_ERROR (or a dump's DONE) body.

    errno is positive, 0 for a plain ACK.  With NETLINK_CAP_ACK the echoed request
    is only its header (NLM_F_CAPPED); the NETLINK_EXT_ACK TLVs follow it and carry
    the kernel's own explanation (e.g. "Unknown device type").
    """
    err = -get_i32(body)
    msg = ""
    if flags & NLM_F_ACK_TLVS and len(body) >= 4 + NLMSGHDR.size:
        if flags & NLM_F_CAPPED:
            off = 4 + NLMSGHDR.size
        else:
            off = 4 + align4(NLMSGHDR.unpack_from(body, 4)[0])
        found = parse_attrs(body, off).get(NLMSGERR_ATTR_MSG)
        if found is not None:
            msg = get_str(found)
    return err, msg
