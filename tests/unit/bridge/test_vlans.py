"""Bridge-port VLAN programming with a recording fake socket (this CI kernel lacks
CONFIG_BRIDGE_VLAN_FILTERING, so the kernel tests of VLANs skip there)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from cni_plugins.bridge import links
from cni_plugins.bridge.config import BridgeConf
from cni_plugins.linux.netlink import Link


class FakeSocket:
    def __init__(self, existing: list[tuple[int, int]]) -> None:
        self.existing = existing
        self.calls: list[tuple[Any, ...]] = []

    def bridge_vlans(self, port: int) -> list[tuple[int, int]]:
        return self.existing

    def delete_bridge_vlan(self, port: int, vid: int) -> None:
        self.calls.append(("del", vid))

    def add_bridge_vlan(self, port: int, vid: int, **kw: bool) -> None:
        self.calls.append(("add", vid, kw.get("pvid", False), kw.get("untagged", False)))


@pytest.mark.parametrize(
    ("extra", "calls"),
    [
        ({}, []),
        ({"vlan": 100}, [("del", 1), ("add", 100, True, True)]),
        ({"vlan": 100, "preserveDefaultVlan": True}, [("add", 100, True, True)]),
        (
            {"vlanTrunk": [{"minID": 10, "maxID": 11}]},
            [
                ("del", 1),
                ("add", 10, False, False),
                ("add", 11, False, False),
                ("add", 1, True, True),
            ],
        ),
        (
            {"vlan": 5, "vlanTrunk": [{"id": 7}]},
            [("del", 1), ("add", 5, True, True), ("add", 7, False, False)],
        ),
    ],
)
def test_port_vlans(extra: dict[str, Any], calls: list[tuple[Any, ...]]) -> None:
    conf = BridgeConf.from_json({"name": "n", "type": "bridge", **extra})
    sock = FakeSocket([(1, 6)])
    links.setup_port_vlans(cast(Any, sock), Link(3, "veth0"), conf, conf.vlan)
    assert sock.calls == calls
