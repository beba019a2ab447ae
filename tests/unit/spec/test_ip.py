"""spec.ip against the stdlib ipaddress it replaces: same text, values and errors.

Text forms matter beyond looks: host-local's store uses them as file names
(shared with the Go plugin and with our earlier releases, which used ipaddress).
The one deliberate difference, IPv6 zone indexes, is pinned at the end.
"""

from __future__ import annotations

import ipaddress
import operator

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from cni_plugins.spec import ip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    StdAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
    StdNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
    StdInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

BITS = {4: 32, 6: 128}

# IPv6 values rich in zero groups (compression), 0xffff (mapped) and small groups.
groups = st.one_of(st.sampled_from([0, 0, 0, 1, 0xFFFF]), st.integers(0, 0xFFFF))
v6_values = st.one_of(
    st.lists(groups, min_size=8, max_size=8).map(
        lambda g: sum(v << 16 * i for i, v in enumerate(g))
    ),
    st.integers(0, 2**32 - 1).map(lambda v: 0xFFFF << 32 | v),  # ::ffff:a.b.c.d
    st.integers(0, 2**128 - 1),
)
v4_values = st.one_of(st.sampled_from([0, 1, 2**32 - 1, 0x7F000001]), st.integers(0, 2**32 - 1))
addresses = st.one_of(
    v4_values.map(lambda v: (v, 4)),
    v6_values.map(lambda v: (v, 6)),
)


def pair(value: int, version: int) -> tuple[ip.IPAddress, StdAddress]:
    std: StdAddress = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    return ip.IPAddress(value, version), std


def std_texts(std: StdAddress) -> list[str]:
    """The spellings of one address that ipaddress accepts."""
    out = [str(std), std.exploded, std.exploded.upper(), str(std).upper()]
    if std.version == 6:
        v4 = ipaddress.IPv4Address(int(std) & 0xFFFFFFFF)
        head = std.exploded.rsplit(":", 2)[0]
        out.append(f"{head}:{v4}")  # dotted tail
        out.append(":".join(g.lstrip("0") or "0" for g in std.exploded.split(":")))
    return out


def assert_same_address(ours: ip.IPAddress, std: StdAddress) -> None:
    assert str(ours) == str(std)
    assert repr(ours) == repr(std)
    assert int(ours) == int(std)
    assert ours.version == std.version
    assert ours.packed == std.packed
    assert ours.max_prefixlen == std.max_prefixlen
    assert ours.is_loopback == std.is_loopback
    assert ours.is_link_local == std.is_link_local
    assert ours.is_unspecified == std.is_unspecified
    mapped = std.ipv4_mapped if isinstance(std, ipaddress.IPv6Address) else None
    assert str(ours.ipv4_mapped) == str(mapped)


def assert_same_network(ours: ip.IPNetwork, std: StdNetwork) -> None:
    assert str(ours) == str(std)
    assert repr(ours) == repr(std)
    assert ours.version == std.version
    assert ours.prefixlen == std.prefixlen
    assert ours.max_prefixlen == std.max_prefixlen
    assert_same_address(ours.network_address, std.network_address)
    assert_same_address(ours.broadcast_address, std.broadcast_address)


def assert_same_interface(ours: ip.IPInterface, std: StdInterface) -> None:
    assert str(ours) == str(std)
    assert repr(ours) == repr(std)
    assert ours.version == std.version
    assert ours.max_prefixlen == std.max_prefixlen
    assert_same_address(ours.ip, std.ip)
    assert_same_network(ours.network, std.network)


def outcome(parse: Callable[[str], object], text: str) -> tuple[str, str]:
    try:
        return ("ok", str(parse(text)))
    except ValueError as exc:
        return ("error", str(exc))


def assert_same_parse(
    ours: Callable[[str], object], std: Callable[[str], object], text: str
) -> None:
    if "%" in text:
        assert outcome(ours, text)[0] == "error"  # zones: see test_zone_indexes_are_refused
        return
    assert outcome(ours, text) == outcome(std, text)


# ---------------------------------------------------------------------------
# addresses


@given(addresses)
@example((0, 6))
@example((1, 6))
@example((0xFFFF01020304, 6))
@example((1 << 112, 6))
@example((0, 4))
@example((2**32 - 1, 4))
@example((0xFE800000000000000000000000000001, 6))
def test_address_values_and_text(value_version: tuple[int, int]) -> None:
    ours, std = pair(*value_version)
    assert_same_address(ours, std)
    assert_same_address(ip.IPAddress.from_packed(std.packed), std)
    for text in std_texts(std):
        assert_same_address(ip.ip_address(text), ipaddress.ip_address(text))


# Strings near the grammar: digits, hex, separators, and the odd space or zone.
near_addresses = st.text(alphabet="0123456789abcdefABCDEF:.:.:/% x", max_size=45)


@given(near_addresses)
@example("")
@example("::")
@example(":::")
@example("1::2::3")
@example("1:2:3:4:5:6:7::")
@example("::2:3:4:5:6:7:8")
@example("1:2:3:4:5:6:7:8:9")
@example("1:2:3:4:5:6:1.2.3.4")
@example("1:2:3:4:5:6:7:1.2.3.4")
@example("::1.2.3.4.5")
@example("00000::1")
@example("01.2.3.4")
@example("1.2.3.04")
@example("1.2.3.256")
@example("1.2.3")
@example(" 1.2.3.4")
@example("1.2.3.4\n")
@example("\u0661.2.3.4")  # an Arabic-Indic digit
@example("1.2.3.4/32")
def test_address_parsing(text: str) -> None:
    assert_same_parse(ip.ip_address, ipaddress.ip_address, text)


@given(st.lists(st.text(alphabet="0123456789", max_size=4), min_size=1, max_size=5))
def test_ipv4_octet_rules(octets: list[str]) -> None:
    """Leading zeros, too many digits, > 255, empty and missing octets."""
    text = ".".join(octets)
    assert_same_parse(ip.ip_address, ipaddress.ip_address, text)
    assert_same_parse(ip.ip_address, ipaddress.ip_address, f"::ffff:{text}")


@given(addresses, addresses)
def test_ordering_equality_and_hash(a: tuple[int, int], b: tuple[int, int]) -> None:
    ours_a, std_a = pair(*a)
    ours_b, std_b = pair(*b)
    assert (ours_a == ours_b) == (std_a == std_b)
    assert (ours_a != ours_b) == (std_a != std_b)
    if ours_a == ours_b:
        assert hash(ours_a) == hash(ours_b)
    for op in (operator.lt, operator.le, operator.gt, operator.ge):
        if std_a.version == std_b.version:
            assert op(ours_a, ours_b) == op(std_a, std_b)
        else:
            with pytest.raises(TypeError):
                op(ours_a, ours_b)
            with pytest.raises(TypeError):
                op(std_a, std_b)


@given(addresses, st.integers(-(2**129), 2**129))
@example((0, 4), -1)
@example((2**32 - 1, 4), 1)
@example((2**128 - 1, 6), 1)
def test_arithmetic(a: tuple[int, int], delta: int) -> None:
    ours, std = pair(*a)
    for op in (operator.add, operator.sub):
        try:
            expected = op(std, delta)
        except ValueError:
            with pytest.raises(ValueError):
                op(ours, delta)
        else:
            assert_same_address(op(ours, delta), expected)


# ---------------------------------------------------------------------------
# networks and interfaces


@given(addresses, st.integers(0, 128), st.booleans())
@example((0, 4), 0, True)
@example((0xFFFFFFFF, 4), 32, True)
@example((0, 6), 0, True)
@example((1, 6), 128, True)
@example((0x0A000001, 4), 8, True)
@example((0x0A000001, 4), 8, False)
def test_network_from_text(a: tuple[int, int], prefixlen: int, strict: bool) -> None:
    ours_addr, std_addr = pair(*a)
    assume(prefixlen <= ours_addr.max_prefixlen)
    for text in std_texts(std_addr):
        cidr = f"{text}/{prefixlen}"
        assert_same_parse(
            lambda t: ip.ip_network(t, strict), lambda t: ipaddress.ip_network(t, strict), cidr
        )
        assert_same_parse(ip.ip_interface, ipaddress.ip_interface, cidr)
    cidr = f"{std_addr}/{prefixlen}"
    try:
        std = ipaddress.ip_network(cidr, strict=strict)
    except ValueError:
        return
    assert_same_network(ip.ip_network(cidr, strict=strict), std)
    assert_same_network(ip.IPNetwork(ours_addr, prefixlen, strict=strict), std)
    assert_same_interface(ip.ip_interface(cidr), ipaddress.ip_interface(cidr))
    assert_same_interface(ip.IPInterface(ours_addr, prefixlen), ipaddress.ip_interface(cidr))


@given(v4_values, st.integers(0, 32), st.booleans())
def test_ipv4_netmask_and_hostmask_prefixes(value: int, prefixlen: int, hostmask: bool) -> None:
    mask = ipaddress.IPv4Network(f"0.0.0.0/{prefixlen}")
    text = f"{ipaddress.IPv4Address(value)}/{mask.hostmask if hostmask else mask.netmask}"
    assert_same_parse(ip.ip_interface, ipaddress.ip_interface, text)
    assert_same_parse(
        lambda t: ip.ip_network(t, False), lambda t: ipaddress.ip_network(t, False), text
    )
    assert_same_parse(ip.ip_network, ipaddress.ip_network, text)


near_networks = st.builds(
    "{}/{}".format,
    st.sampled_from(["10.0.0.1", "10.0.0.0", "0.0.0.0", "::", "::1", "fd00::", "fd00::1"]),
    st.text(alphabet="0123456789.:/+- x", max_size=16),
)


@given(near_networks)
@example("1.2.3.4/")
@example("1.2.3.4/08")
@example("::/0128")
@example("1.2.3.4/ 8")
@example("1.2.3.4/+8")
@example("1.2.3.4/33")
@example("1.2.3.4/255.0.255.0")
@example("::1/ffff::")
@example("1.2.3.4/8/8")
def test_prefix_parsing(text: str) -> None:
    assert_same_parse(ip.ip_network, ipaddress.ip_network, text)
    assert_same_parse(
        lambda t: ip.ip_network(t, False), lambda t: ipaddress.ip_network(t, False), text
    )
    assert_same_parse(ip.ip_interface, ipaddress.ip_interface, text)


networks = st.one_of(
    st.tuples(v4_values, st.integers(0, 32), st.just(4)),
    st.tuples(v6_values, st.integers(0, 128), st.just(6)),
)


def net_pair(spec: tuple[int, int, int]) -> tuple[ip.IPNetwork, StdNetwork]:
    value, prefixlen, version = spec
    std: StdNetwork = (
        ipaddress.IPv4Network((value, prefixlen), strict=False)
        if version == 4
        else ipaddress.IPv6Network((value, prefixlen), strict=False)
    )
    return ip.IPNetwork(ip.IPAddress(value, version), prefixlen, strict=False), std


@given(networks, networks, addresses)
def test_containment_overlap_and_equality(
    a: tuple[int, int, int], b: tuple[int, int, int], addr: tuple[int, int]
) -> None:
    ours_a, std_a = net_pair(a)
    ours_b, std_b = net_pair(b)
    ours_addr, std_addr = pair(*addr)
    for ours, std in ((ours_a, std_a), (ours_b, std_b)):
        assert (ours_addr in ours) == (std_addr in std)
        assert ours.network_address in ours
        assert ours.broadcast_address in ours
        if int(ours.broadcast_address) < 2 ** BITS[ours.version] - 1:
            assert ours.broadcast_address + 1 not in ours
    assert ours_a.overlaps(ours_b) == std_a.overlaps(std_b)
    assert (ours_a == ours_b) == (std_a == std_b)
    if ours_a == ours_b:
        assert hash(ours_a) == hash(ours_b)


@given(addresses, st.integers(0, 128), addresses, st.integers(0, 128))
def test_interface_equality(
    a: tuple[int, int], plen_a: int, b: tuple[int, int], plen_b: int
) -> None:
    ours_a, std_a = pair(*a)
    ours_b, std_b = pair(*b)
    plen_a = min(plen_a, ours_a.max_prefixlen)
    plen_b = min(plen_b, ours_b.max_prefixlen)
    ia, ib = ip.IPInterface(ours_a, plen_a), ip.IPInterface(ours_b, plen_b)
    sa, sb = (
        ipaddress.ip_interface(f"{std_a}/{plen_a}"),
        ipaddress.ip_interface(f"{std_b}/{plen_b}"),
    )
    assert (ia == ib) == (sa == sb)
    assert ia == ip.IPInterface(ours_a, plen_a)
    assert hash(ia) == hash(ip.IPInterface(ours_a, plen_a))


# ---------------------------------------------------------------------------
# hand-picked cases


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::", "::"),
        ("::1", "::1"),
        ("::ffff:1.2.3.4", "::ffff:102:304"),  # no dotted tail, as ipaddress 3.11
        ("::FFFF:1.2.3.4", "::ffff:102:304"),
        ("1::", "1::"),
        ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),  # the longest run
        ("1:0:0:1:0:0:1:1", "1::1:0:0:1:1"),  # the first of equal runs
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),  # a single zero group stays
        ("2001:DB8::0001", "2001:db8::1"),
        ("255.255.255.255", "255.255.255.255"),
        ("0.0.0.0", "0.0.0.0"),
    ],
)
def test_address_text(text: str, expected: str) -> None:
    assert str(ip.ip_address(text)) == expected == str(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    ("text", "strict", "expected"),
    [
        ("0.0.0.0/0", True, "0.0.0.0/0"),
        ("::/0", True, "::/0"),
        ("10.0.0.1/32", True, "10.0.0.1/32"),
        ("::1/128", True, "::1/128"),
        ("10.0.0.1/8", False, "10.0.0.0/8"),
        ("10.0.0.1", True, "10.0.0.1/32"),
        ("10.0.0.1/255.255.0.0", False, "10.0.0.0/16"),
        ("fd00::1/64", False, "fd00::/64"),
    ],
)
def test_network_text(text: str, strict: bool, expected: str) -> None:
    assert str(ip.ip_network(text, strict)) == expected == str(ipaddress.ip_network(text, strict))


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (ip.ip_network, "10.0.0.1/8", "10.0.0.1/8 has host bits set"),
        (ip.ip_network, "10.0.0.1/255.0.0.0", "10.0.0.1/8 has host bits set"),
        (
            ip.ip_network,
            "10.0.0.0/33",
            "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
        ),
        (ip.ip_address, "10.0.0.01", "'10.0.0.01' does not appear to be an IPv4 or IPv6 address"),
        (ip.ip_interface, "x/24", "'x/24' does not appear to be an IPv4 or IPv6 interface"),
    ],
)
def test_error_messages(parse: Callable[[str], object], text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse(text)
    assert str(caught.value) == message
    with pytest.raises(ValueError) as std:
        getattr(ipaddress, parse.__name__)(text)
    assert str(std.value) == message


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (ip.ip_address, "fe80::1%eth0"),
        (ip.ip_interface, "fe80::1%eth0/64"),
        (ip.ip_network, "fe80::%eth0/64"),
    ],
)
def test_zone_indexes_are_refused(parse: Callable[[str], object], text: str) -> None:
    """ipaddress accepts zones (and prints them); we refuse them, as Go's
    ParseIP/ParseCIDR do: no CNI address field carries one, and a zoned
    host-local file name would not be Go's."""
    getattr(ipaddress, parse.__name__)(text)  # accepted there
    with pytest.raises(ValueError, match="zone indexes are not supported"):
        parse(text)


def test_containment_across_families_and_kinds() -> None:
    v4 = ip.ip_network("0.0.0.0/0")
    assert ip.ip_address("::") not in v4
    assert ip.ip_address("10.1.2.3") in v4
    assert ip.ip_interface("10.1.2.3/8") not in v4  # addresses only
    assert not v4.overlaps(ip.ip_network("::/0"))


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        ip.IPAddress(2**32, 4)
    with pytest.raises(ValueError):
        ip.IPAddress(-1, 6)
    with pytest.raises(ValueError):
        ip.IPAddress(1, 5)
    with pytest.raises(ValueError):
        ip.IPAddress.from_packed(b"\0" * 5)
    with pytest.raises(ValueError):
        ip.IPNetwork(ip.ip_address("10.0.0.0"), 33)
    assert ip.IPAddress(1, 4) != ip.IPAddress(1, 6)
    assert ip.ip_address("10.0.0.1") != "10.0.0.1"
