"""sysctl read/write inside a throwaway namespace (root only).

``ip netns exec <ns> cat /proc/sys/...`` is the independent view: a separate
process in that namespace.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from cni_plugins.linux import sysctl
from cni_plugins.linux.netlink import RouteSocket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tests.integration.linux.conftest import TestNS

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces"),
]


def _seen_in(t: TestNS, *parts: str) -> str:
    cmd = ["ip", "netns", "exec", t.name, "cat", "/".join(("/proc/sys", *parts))]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _root_value(*parts: str) -> str:
    with open("/".join(("/proc/sys", *parts))) as f:
        return f.read().strip()


def test_write_read_inside_netns_leaves_root_alone(netns: TestNS) -> None:
    root_before = _root_value("net", "ipv4", "ip_forward")
    want = "0" if root_before == "1" else "1"
    with netns.ns.entered():
        sysctl.write("net.ipv4.ip_forward", want)
        assert sysctl.read("net/ipv4/ip_forward") == want
    assert _seen_in(netns, "net", "ipv4", "ip_forward") == want
    assert _root_value("net", "ipv4", "ip_forward") == root_before


def test_interface_name_with_dots(netns: TestNS) -> None:
    with RouteSocket(netns.ns) as rt:
        rt.create_veth("eth0.5", "peer.7")
    with netns.ns.entered():
        key = sysctl.conf_key("eth0.5", "arp_notify")
        sysctl.write(key, 1)
        assert sysctl.read(key) == "1"
        sysctl.write(sysctl.conf_key("peer.7", "accept_ra", family=6), "0")
        assert sysctl.read("net/ipv6/conf/peer.7/accept_ra") == "0"
    assert _seen_in(netns, "net", "ipv4", "conf", "eth0.5", "arp_notify") == "1"
    assert _seen_in(netns, "net", "ipv6", "conf", "peer.7", "accept_ra") == "0"


def test_missing_key_and_rejected_value(netns: TestNS) -> None:
    with netns.ns.entered():
        with pytest.raises(FileNotFoundError):
            sysctl.write(sysctl.conf_key("nope0", "arp_notify"), 1)
        with pytest.raises(OSError):
            sysctl.write("net.ipv4.ip_forward", "not-a-number")
