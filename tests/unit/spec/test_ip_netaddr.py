"""spec.ip against netaddr and ipaddress at once (property-based).

ipaddress is the contract (test_ip.py: same text, values, errors); netaddr is
a second, independent implementation, so agreement of all three on parsing,
text, containment, network/broadcast and next/prev arithmetic is evidence the
shared answers are right, not a copy of one library's quirks.

Where netaddr differs from ipaddress by design, each test says so and checks
the difference itself instead of skipping the input:

* text: netaddr prints an IPv6 address in ``::/96`` or ``::ffff:0:0/96`` with a
  dotted IPv4 tail (``::ffff:1.2.3.4``, ``::1.2.3.4``); ipaddress (3.11) and we
  print hex groups (``::ffff:102:304``), which is what host-local's store uses;
* ``IPNetwork`` in netaddr keeps host bits (it is an interface and a network in
  one): ours/ipaddress networks compare with its ``.cidr``, our interfaces with
  its ``.ip`` and ``.prefixlen``;
* ``IPNetwork.broadcast`` in netaddr is None for /31, /32 (IPv4) and /127,
  /128 (IPv6), where there is no broadcast; our ``broadcast_address`` is the
  last address of the prefix, as ipaddress's, which is netaddr's ``.last``;
* leaving the address space: netaddr raises IndexError, ipaddress and we
  ValueError;
* zone indexes: ipaddress accepts ``fe80::1%eth0``; netaddr and we refuse them.
"""

from __future__ import annotations

import ipaddress
from contextlib import nullcontext

import netaddr
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cni_plugins.spec import ip

groups = st.one_of(st.sampled_from([0, 0, 0, 1, 0xFFFF]), st.integers(0, 0xFFFF))
v6_values = st.one_of(
    st.lists(groups, min_size=8, max_size=8).map(
        lambda g: sum(v << 16 * i for i, v in enumerate(g))
    ),
    st.integers(0, 2**32 - 1).map(lambda v: 0xFFFF << 32 | v),  # ::ffff:a.b.c.d
    st.integers(0, 2**32 - 1),  # ::a.b.c.d
    st.integers(0, 2**128 - 1),
)
v4_values = st.one_of(st.sampled_from([0, 1, 2**32 - 1, 0x7F000001]), st.integers(0, 2**32 - 1))
addresses = st.one_of(v4_values.map(lambda v: (v, 4)), v6_values.map(lambda v: (v, 6)))
BITS = {4: 32, 6: 128}


@st.composite
def prefixes(draw: st.DrawFn) -> tuple[int, int, int]:
    value, version = draw(addresses)
    bits = BITS[version]
    return value, version, draw(st.integers(0, bits) | st.sampled_from([bits - 1, bits]))


def text_of(value: int, version: int) -> str:
    return str(ipaddress.IPv6Address(value) if version == 6 else ipaddress.IPv4Address(value))


def dotted_tail(value: int, version: int) -> bool:
    """Where netaddr prints an IPv4 tail: ::/96 and ::ffff:0:0/96 (not :: and ::1)."""
    return version == 6 and value >> 32 in (0, 0xFFFF) and value > 1


@given(addresses)
@example((0xFFFF_0102_0304, 6))
@example((0x0102_0304, 6))
@example((1, 6))
def test_text_and_value(value_version: tuple[int, int]) -> None:
    value, version = value_version
    ours = ip.IPAddress(value, version)
    std = ipaddress.ip_address(text_of(value, version))
    na = netaddr.IPAddress(value, version)
    assert str(ours) == str(std)
    assert int(ours) == int(std) == int(na)
    assert ours.version == std.version == na.version
    if dotted_tail(value, version) and str(na) != str(std):
        # The design difference: same address, other spelling.
        assert "." in str(na) and int(ipaddress.ip_address(str(na))) == value
    else:
        assert str(na) == str(std)
    # Every spelling of each library parses to the same address in the others.
    for text in {str(std), str(na), std.exploded}:
        assert int(ip.ip_address(text)) == int(netaddr.IPAddress(text)) == value


def _parse(parse: object, text: str) -> int | None:
    try:
        return int(parse(text))  # type: ignore[operator]
    except (ValueError, netaddr.AddrFormatError):
        return None


near = st.text(alphabet="0123456789abcdefABCDEF:.:./% x", max_size=45)


@given(near)
@example("fe80::1%eth0")
@example("01.2.3.4")
@example("1.2.3")
@example("1")
@example("0x1.2.3.4")
@example(" 1.2.3.4")
@example("::ffff:1.2.3.4")
@example("1::2::3")
@example("1:2:3:4:5:6:7:8:9")
def test_parsing_accepts_and_refuses_the_same(text: str) -> None:
    ours = _parse(ip.ip_address, text)
    std = _parse(ipaddress.ip_address, text)
    na = _parse(netaddr.IPAddress, text)
    if "%" in text and std is not None:
        assert ours is None and na is None  # zones: ipaddress alone accepts them
    else:
        assert ours == std == na


@given(prefixes())
@example((0x0A00_0005, 4, 31))
@example((0x0A00_0005, 4, 32))
@example((1, 6, 127))
@example((1, 6, 128))
@example((0, 4, 0))
def test_networks_interfaces_and_broadcast(case: tuple[int, int, int]) -> None:
    value, version, prefixlen = case
    text = f"{text_of(value, version)}/{prefixlen}"
    iface = ip.ip_interface(text)
    net = ip.ip_network(text, strict=False)
    std = ipaddress.ip_network(text, strict=False)
    na = netaddr.IPNetwork(text)
    assert (
        (int(iface.ip), iface.network.prefixlen)
        == (int(na.ip), na.prefixlen)
        == (
            value,
            prefixlen,
        )
    )
    assert int(net.network_address) == int(std.network_address) == int(na.network) == na.first
    assert str(net) == str(std)
    assert int(net.broadcast_address) == int(std.broadcast_address) == na.last
    point_to_point = prefixlen >= BITS[version] - 1
    if point_to_point:
        assert na.broadcast is None  # netaddr: no broadcast on /31, /32, /127, /128
    else:
        assert int(na.broadcast) == na.last
    strict_ok = int(net.network_address) == value
    with pytest.raises(ValueError) if not strict_ok else nullcontext():
        ip.ip_network(text)  # strict: host bits refused, as ipaddress does


@given(prefixes(), addresses)
def test_containment(case: tuple[int, int, int], probe: tuple[int, int]) -> None:
    value, version, prefixlen = case
    text = f"{text_of(value, version)}/{prefixlen}"
    net = ip.ip_network(text, strict=False)
    std = ipaddress.ip_network(text, strict=False)
    na = netaddr.IPNetwork(text)
    for pv, pversion in (probe, (value, version), (int(net.broadcast_address), version)):
        ours = ip.IPAddress(pv, pversion) in net
        std_in = ipaddress.ip_address(text_of(pv, pversion)) in std
        na_in = netaddr.IPAddress(pv, pversion) in na
        assert ours == std_in == na_in
    # Subnet containment and overlap, as netaddr's ``in`` for networks.
    other = ip.ip_network(f"{text_of(probe[0], probe[1])}/{min(prefixlen, BITS[probe[1]])}", False)
    na_other = netaddr.IPNetwork(str(other))
    assert net.overlaps(other) == (na_other in na or na in na_other)


@given(addresses, st.integers(-3, 3) | st.integers(-(2**129), 2**129))
@example((2**32 - 1, 4), 1)
@example((0, 4), -1)
@example((2**128 - 1, 6), 1)
@example((0, 6), -1)
def test_next_and_previous_address(start: tuple[int, int], delta: int) -> None:
    value, version = start
    ours = ip.IPAddress(value, version)
    std = ipaddress.ip_address(text_of(value, version))
    na = netaddr.IPAddress(value, version)
    inside = 0 <= value + delta < 2 ** BITS[version]
    if inside:
        assert int(ours + delta) == int(std + delta) == int(na + delta) == value + delta
        assert int(ours - -delta) == int(na - -delta)
        assert str(ours + delta) == str(std + delta)
        return
    # Leaving the address space: ValueError for ipaddress and us, IndexError for netaddr.
    with pytest.raises(ValueError):
        ours + delta
    with pytest.raises(ValueError):
        std + delta
    with pytest.raises(IndexError):
        na + delta
