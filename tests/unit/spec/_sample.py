"""One rich canonical result used by the conversion goldens."""

from __future__ import annotations

from cni_plugins.spec import ip as ipa
from cni_plugins.spec.types import DNS, Interface, IPConfig, Result, Route


def sample_result() -> Result:
    return Result(
        interfaces=[
            Interface("cni0", "0a:58:0a:f4:01:01"),
            Interface("veth1234abcd", "ba:1b:00:00:00:01", mtu=1450),
            Interface(
                "eth0", "5e:03:00:00:00:02", "/run/netns/pod", mtu=1450, pci_id="0000:00:01.0"
            ),
        ],
        ips=[
            IPConfig(ipa.ip_interface("10.244.1.2/24"), ipa.ip_address("10.244.1.1"), 2),
            IPConfig(ipa.ip_interface("10.244.9.2/24"), None, 2),
            IPConfig(ipa.ip_interface("fd00:1::2/64"), ipa.ip_address("fd00:1::1"), 2),
        ],
        routes=[
            Route(ipa.ip_network("10.244.0.0/16")),
            Route(
                ipa.ip_network("0.0.0.0/0"), ipa.ip_address("10.244.1.1"), priority=100, table=10
            ),
            Route(ipa.ip_network("fd00::/48"), ipa.ip_address("fd00:1::1"), mtu=1400),
        ],
        dns=DNS(("10.96.0.10",), "cluster.local", ("svc.cluster.local",), ("ndots:5",)),
    )
