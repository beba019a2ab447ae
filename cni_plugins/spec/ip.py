"""IP addresses, networks and interfaces: the slice of ``ipaddress`` the plugins use.

Why not ``ipaddress``: it costs every plugin exec ~6 ms of imports (itself plus
``functools`` and ``collections``, which nothing else of ours loads; DESIGN.md
section 4).  This module is int arithmetic on plain slotted classes, one class
per kind for both families (``version`` tells them apart).

Text forms are exactly ``ipaddress``'s (Python 3.11), because host-local's store
uses them as file names and results print them: IPv4 dotted decimal; IPv6
lowercase, the longest run of two or more zero groups compressed (the first on
ties), and no dotted tail, so ``::ffff:1.2.3.4`` prints as ``::ffff:102:304``.
Parsing accepts and refuses what ``ipaddress`` does (no leading zeros in IPv4
octets, IPv4 netmask/hostmask prefixes, ``strict`` networks), with one
deliberate difference: IPv6 zone indexes (``fe80::1%eth0``) are refused.  No
CNI address field can carry one, Go's ``net.ParseIP``/``ParseCIDR`` refuse them,
and a zoned name in the host-local store would not be Go's file name.
``tests/unit/spec/test_ip.py`` checks all of this against ``ipaddress``.

Errors are ``ValueError`` with ``ipaddress``'s factory messages
(``'x' does not appear to be an IPv4 or IPv6 address``, ``10.0.0.1/8 has host
bits set``), which callers turn into CNI errors.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Self

_ALL_ONES = {4: (1 << 32) - 1, 6: (1 << 128) - 1}
_BITS = {4: 32, 6: 128}
_DIGITS = "0123456789"
_HEX_DIGITS = "0123456789abcdefABCDEF"


class IPAddress:
    """One IPv4 or IPv6 address; ``int()`` gives its value."""

    __slots__ = ("_ip", "version")

    def __init__(self, value: int, version: int) -> None:
        if version not in _BITS:
            raise ValueError(f"IP version must be 4 or 6, not {version!r}")
        if not 0 <= value <= _ALL_ONES[version]:
            raise ValueError(f"{value} is not permitted as an IPv{version} address")
        self._ip = value
        self.version = version

    @classmethod
    def from_packed(cls, data: bytes) -> Self:
        """From 4 (IPv4) or 16 (IPv6) bytes in network order."""
        if len(data) not in (4, 16):
            raise ValueError(f"{data!r} is not 4 or 16 bytes long")
        return cls(int.from_bytes(data, "big"), 4 if len(data) == 4 else 6)

    @property
    def max_prefixlen(self) -> int:
        return _BITS[self.version]

    @property
    def packed(self) -> bytes:
        return self._ip.to_bytes(4 if self.version == 4 else 16, "big")

    @property
    def is_unspecified(self) -> bool:
        return self._ip == 0

    @property
    def is_loopback(self) -> bool:
        """127.0.0.0/8, ::1."""
        return self._ip >> 24 == 127 if self.version == 4 else self._ip == 1

    @property
    def is_link_local(self) -> bool:
        """169.254.0.0/16, fe80::/10."""
        return self._ip >> 16 == 0xA9FE if self.version == 4 else self._ip >> 118 == 0x3FA

    @property
    def ipv4_mapped(self) -> IPAddress | None:
        """The IPv4 address in ``::ffff:a.b.c.d``; None for others (and for IPv4)."""
        if self.version == 6 and self._ip >> 32 == 0xFFFF:
            return IPAddress(self._ip & 0xFFFFFFFF, 4)
        return None

    def __int__(self) -> int:
        return self._ip

    def __str__(self) -> str:
        if self.version == 4:
            return ".".join(map(str, self._ip.to_bytes(4, "big")))
        return _format_v6(self._ip)

    def __repr__(self) -> str:
        return f"IPv{self.version}Address('{self}')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPAddress):
            return NotImplemented
        return self._ip == other._ip and self.version == other.version

    def __hash__(self) -> int:
        return hash((self._ip, self.version))

    def _key(self, other: IPAddress) -> int:
        if not isinstance(other, IPAddress) or other.version != self.version:
            raise TypeError(f"{self!r} and {other!r} are not of the same version")
        return other._ip

    def __lt__(self, other: IPAddress) -> bool:
        return self._ip < self._key(other)

    def __le__(self, other: IPAddress) -> bool:
        return self._ip <= self._key(other)

    def __gt__(self, other: IPAddress) -> bool:
        return self._ip > self._key(other)

    def __ge__(self, other: IPAddress) -> bool:
        return self._ip >= self._key(other)

    def __add__(self, other: int) -> IPAddress:
        if not isinstance(other, int):
            return NotImplemented
        return IPAddress(self._ip + other, self.version)

    def __sub__(self, other: int) -> IPAddress:
        if not isinstance(other, int):
            return NotImplemented
        return IPAddress(self._ip - other, self.version)


class IPNetwork:
    """A prefix: ``network_address`` has no host bits."""

    __slots__ = ("network_address", "prefixlen")

    def __init__(self, address: IPAddress, prefixlen: int, *, strict: bool = True) -> None:
        """``strict``: refuse host bits in ``address`` (else they are masked off)."""
        if not 0 <= prefixlen <= address.max_prefixlen:
            raise ValueError(f"{prefixlen!r} is not a valid IPv{address.version} prefix length")
        host = _ALL_ONES[address.version] >> prefixlen
        if int(address) & host:
            if strict:
                raise ValueError(f"{address}/{prefixlen} has host bits set")
            address = IPAddress(int(address) & ~host, address.version)
        self.network_address = address
        self.prefixlen = prefixlen

    @property
    def version(self) -> int:
        return self.network_address.version

    @property
    def max_prefixlen(self) -> int:
        return self.network_address.max_prefixlen

    @property
    def broadcast_address(self) -> IPAddress:
        """The last address of the prefix."""
        net = self.network_address
        return IPAddress(int(net) | _ALL_ONES[net.version] >> self.prefixlen, net.version)

    def __contains__(self, address: object) -> bool:
        """Whether ``address`` (an IPAddress) is in the prefix; False for the other family."""
        net = self.network_address
        if not isinstance(address, IPAddress) or address.version != net.version:
            return False
        return int(address) >> (net.max_prefixlen - self.prefixlen) == int(net) >> (
            net.max_prefixlen - self.prefixlen
        )

    def overlaps(self, other: IPNetwork) -> bool:
        """Whether the two prefixes share an address (never across families)."""
        return other.version == self.version and (
            other.network_address in self or self.network_address in other
        )

    def __str__(self) -> str:
        return f"{self.network_address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"IPv{self.version}Network('{self}')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPNetwork):
            return NotImplemented
        return self.network_address == other.network_address and self.prefixlen == other.prefixlen

    def __hash__(self) -> int:
        return hash((self.network_address, self.prefixlen))


class IPInterface:
    """An address with the prefix length of its network (``10.244.1.2/24``)."""

    __slots__ = ("ip", "network")

    def __init__(self, ip: IPAddress, prefixlen: int) -> None:
        self.ip = ip
        self.network = IPNetwork(ip, prefixlen, strict=False)

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def max_prefixlen(self) -> int:
        return self.ip.max_prefixlen

    def __str__(self) -> str:
        return f"{self.ip}/{self.network.prefixlen}"

    def __repr__(self) -> str:
        return f"IPv{self.version}Interface('{self}')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPInterface):
            return NotImplemented
        return self.ip == other.ip and self.network.prefixlen == other.network.prefixlen

    def __hash__(self) -> int:
        return hash((self.ip, self.network.prefixlen))


# ---------------------------------------------------------------------------
# parsing (``ipaddress``'s algorithm, without the exception plumbing)


def ip_address(text: str) -> IPAddress:
    """``ipaddress.ip_address`` for strings."""
    address = _parse(text)
    if address is None:
        raise ValueError(_not_a(text, "address"))
    return address


def ip_network(text: str, strict: bool = True) -> IPNetwork:
    """``ipaddress.ip_network`` for strings: ``10.0.0.0/8``, ``10.0.0.0/255.0.0.0``,
    a bare address (a host prefix); with ``strict`` host bits are an error."""
    parsed = _parse_with_prefix(text)
    if parsed is None:
        raise ValueError(_not_a(text, "network"))
    return IPNetwork(*parsed, strict=strict)


def ip_interface(text: str) -> IPInterface:
    """``ipaddress.ip_interface`` for strings: ``10.0.0.1/8``, or a bare address."""
    parsed = _parse_with_prefix(text)
    if parsed is None:
        raise ValueError(_not_a(text, "interface"))
    return IPInterface(*parsed)


def _not_a(text: str, kind: str) -> str:
    message = f"{text!r} does not appear to be an IPv4 or IPv6 {kind}"
    if "%" in text:
        message += " (IPv6 zone indexes are not supported)"
    return message


def _parse(text: str) -> IPAddress | None:
    value = _parse_v4(text)
    if value is not None:
        return IPAddress(value, 4)
    value = _parse_v6(text)
    return None if value is None else IPAddress(value, 6)


def _parse_with_prefix(text: str) -> tuple[IPAddress, int] | None:
    addr, sep, mask = text.partition("/")
    address = _parse(addr)
    if address is None or "/" in mask:
        return None
    if not sep:
        return address, address.max_prefixlen
    if mask.isascii() and mask.isdigit():
        prefixlen = int(mask)
        return (address, prefixlen) if prefixlen <= address.max_prefixlen else None
    if address.version == 6:
        return None  # IPv6 takes a prefix length only
    value = _parse_v4(mask)
    if value is None:
        return None
    for candidate in (value, value ^ _ALL_ONES[4]):  # netmask, then hostmask
        prefixlen = candidate.bit_count()
        if candidate == _ALL_ONES[4] ^ (_ALL_ONES[4] >> prefixlen):
            return address, prefixlen
    return None


def _parse_v4(text: str) -> int | None:
    octets = text.split(".")
    if len(octets) != 4:
        return None
    value = 0
    for octet in octets:
        # ASCII digits only, at most 3, no leading zero (ipaddress, glibc inet_pton).
        if not octet or len(octet) > 3 or octet.strip(_DIGITS) or octet[0] == "0" != octet:
            return None
        number = int(octet)
        if number > 255:
            return None
        value = value << 8 | number
    return value


def _parse_v6(text: str) -> int | None:
    parts = text.split(":")
    if len(parts) < 3:
        return None
    if "." in parts[-1]:  # an IPv4 tail fills the last two groups
        tail = _parse_v4(parts.pop())
        if tail is None:
            return None
        parts += (f"{tail >> 16:x}", f"{tail & 0xFFFF:x}")
    if len(parts) > 9:
        return None
    # An empty part other than the first or last is the '::'.
    skip = None
    for i in range(1, len(parts) - 1):
        if not parts[i]:
            if skip is not None:
                return None  # two '::'
            skip = i
    if skip is None:
        if len(parts) != 8:
            return None
        hi, lo = 8, 0
    else:
        hi, lo = skip, len(parts) - skip - 1
        if not parts[0]:  # a leading ':' must be '::'
            hi -= 1
            if hi:
                return None
        if not parts[-1]:  # a trailing ':' must be '::'
            lo -= 1
            if lo:
                return None
        if hi + lo > 7:  # '::' stands for at least one group
            return None
    value = 0
    for part in (*parts[:hi], *(["0"] * (8 - hi - lo)), *parts[len(parts) - lo :]):
        if not part or len(part) > 4 or part.strip(_HEX_DIGITS):
            return None
        value = value << 16 | int(part, 16)
    return value


def _format_v6(value: int) -> str:
    groups = [f"{value >> shift & 0xFFFF:x}" for shift in range(112, -16, -16)]
    # The longest run of two or more "0" groups becomes '::' (the first on ties).
    best_start, best_len, start = -1, 1, -1
    for i, group in enumerate(groups):
        if group != "0":
            start = -1
            continue
        if start < 0:
            start = i
        if i - start + 1 > best_len:
            best_start, best_len = start, i - start + 1
    if best_start < 0:
        return ":".join(groups)
    head = ":".join(groups[:best_start])
    tail = ":".join(groups[best_start + best_len :])
    return f"{head}::{tail}"
