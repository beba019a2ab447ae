"""Per-plugin knowledge the generic checks need: a minimal valid configuration for a
spec version, and what kind of plugin it is (IPAM, interface-creating, chained, meta).

Adding a plugin to the suite = adding a Profile here (plus plugin-specific test files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.convert import to_version
from conformance.netns import World

NETWORK_NAME = "cnf-net"
BRIDGE_NAME = "cnf0"
SUBNET = "10.250.0.0/24"
GATEWAY = "10.250.0.1"
CLUSTER_NET = "10.250.0.0/16"
HOST_PORT = 18080

Config = dict[str, Any]


def ipam_section(world: World, **extra: Any) -> Config:
    return {
        "type": "host-local",
        "ranges": [[{"subnet": SUBNET}]],
        "dataDir": str(world.tmp / "ipam"),
        **extra,
    }


def synthetic_prev_result(pod_path: str, version: str, ifname: str = "eth0") -> Config:
    """A bridge-like ADD result for chained plugins tested on their own."""
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": BRIDGE_NAME, "mac": "02:00:00:00:00:01"},
            {"name": "vethcnf0001", "mac": "02:00:00:00:00:02"},
            {"name": ifname, "mac": "02:00:00:00:00:03", "sandbox": pod_path},
        ],
        "ips": [{"interface": 2, "address": "10.250.0.2/24", "gateway": GATEWAY}],
        "routes": [{"dst": CLUSTER_NET}],
        "dns": {},
    }
    return to_version(result, version)


def _host_local(world: World, version: str) -> Config:
    return {"type": "host-local", "ipam": ipam_section(world)}


def _loopback(world: World, version: str) -> Config:
    return {"type": "loopback"}


def _bridge(world: World, version: str) -> Config:
    # No ipam routes: Go bridge < 1.3.0 fails CHECK on gw-less routes (tested
    # separately in test_bridge.py, with its known-bug entry).
    return {
        "type": "bridge",
        "bridge": BRIDGE_NAME,
        "isGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": ipam_section(world),
    }


def _portmap(world: World, version: str) -> Config:
    return {
        "type": "portmap",
        "capabilities": {"portMappings": True},
        "runtimeConfig": {
            "portMappings": [{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]
        },
        "prevResult": synthetic_prev_result(world.pod.path, version),
    }


def write_subnet_env(world: World) -> Path:
    path = world.tmp / "subnet.env"
    path.write_text(
        f"FLANNEL_NETWORK={CLUSTER_NET}\nFLANNEL_SUBNET={GATEWAY}/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    return path


def _flannel(world: World, version: str) -> Config:
    return {
        "type": "flannel",
        "subnetFile": str(write_subnet_env(world)),
        "dataDir": str(world.tmp / "flannel"),
        "ipam": {"dataDir": str(world.tmp / "ipam")},
        "delegate": {"bridge": BRIDGE_NAME, "hairpinMode": True, "isDefaultGateway": True},
    }


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    kind: str  # "ipam" | "main" | "chained" | "meta"
    ifname: str
    _config: Callable[[World, str], Config]

    @property
    def is_ipam(self) -> bool:
        return self.kind == "ipam"

    @property
    def creates_interface(self) -> bool:
        """Plugins that create CNI_IFNAME and therefore must refuse an existing one."""
        return self.kind in ("main", "meta") and self.name != "loopback"

    def config(self, world: World, version: str, **extra: Any) -> Config:
        return {
            "cniVersion": version,
            "name": NETWORK_NAME,
            **self._config(world, version),
            **extra,
        }


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("host-local", "ipam", "eth0", _host_local),
        Profile("loopback", "main", "lo", _loopback),
        Profile("bridge", "main", "eth0", _bridge),
        Profile("portmap", "chained", "eth0", _portmap),
        Profile("flannel", "meta", "eth0", _flannel),
    )
}
