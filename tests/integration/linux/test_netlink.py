"""RouteSocket against a real kernel, inside throwaway namespaces; pyroute2 checks.

Run as root: ``.venv/bin/pytest tests/integration/linux``.
"""

from __future__ import annotations

import errno
import os
from ipaddress import ip_interface

import pytest

from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.netlink import NetlinkNotFoundError, RouteSocket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import TestNS

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces"),
]


def _oracle_link(t: TestNS, name: str) -> object:
    ipr = t.oracle()
    (index,) = ipr.link_lookup(ifname=name)
    return ipr.get_links(index)[0]


def test_lo_up_down_and_lookup(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        lo = rt.link("lo")
        assert (lo.index, lo.name, lo.is_up) == (1, "lo", False)
        assert "lo" in [link.name for link in rt.links()]

        rt.set_up("lo")
        assert _oracle_link(netns, "lo")["flags"] & m.IFF_UP  # type: ignore[index]
        assert rt.link(1).is_up

        rt.set_down(1)
        assert not _oracle_link(netns, "lo")["flags"] & m.IFF_UP  # type: ignore[index]


def test_missing_link_is_enodev(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        with pytest.raises(NetlinkNotFoundError) as info:
            rt.link("nope0")
        assert info.value.errno == errno.ENODEV
        assert "nope0" in str(info.value)
        assert rt.find_link("nope0") is None
        with pytest.raises(NetlinkNotFoundError):
            rt.set_up("nope0")


def test_lo_addresses_listed_per_family(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.set_up("lo")
        netns.ip("addr", "add", "127.0.0.5/8", "dev", "lo")
        got = {str(a.interface) for a in rt.addresses("lo")}
        assert got == {"127.0.0.1/8", "127.0.0.5/8", "::1/128"}
        assert {str(a.interface) for a in rt.addresses("lo", m.AF_INET6)} == {"::1/128"}
        v4 = rt.addresses(1, m.AF_INET)
        assert [a.interface for a in v4][:1] == [ip_interface("127.0.0.1/8")]
        assert all(a.scope == m.RT_SCOPE_HOST and a.family == m.AF_INET for a in v4)


def test_socket_stays_in_its_namespace(make_netns: Callable[[], TestNS]) -> None:
    """Two sockets in two namespaces see their own ``lo``, not the root one."""
    a, b = make_netns(), make_netns()
    with RouteSocket(a.ns) as ra, RouteSocket(b.ns) as rb:
        ra.set_up("lo")
        assert ra.link("lo").is_up
        assert not rb.link("lo").is_up
