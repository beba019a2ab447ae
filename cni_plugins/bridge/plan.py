"""Pure planning for bridge ADD: from the IPAM result and the config to what to apply.

No kernel access here; every function is unit-tested on plain values.
"""

from __future__ import annotations

from cni_plugins.spec.errors import CNIError
from cni_plugins.spec.ip import IPInterface, ip_network
from cni_plugins.spec.types import Interface, Result, Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.bridge.config import BridgeConf
    from cni_plugins.spec.ip import IPAddress

# Result.interfaces layout: [bridge, host veth, container veth, (vlan gateway)].
BRIDGE_INDEX, HOST_INDEX, CONTAINER_INDEX = 0, 1, 2
_DEFAULT = {4: ip_network("0.0.0.0/0"), 6: ip_network("::/0")}


def gateway_ip(address: IPInterface) -> IPAddress:
    """The reference's ``calcGatewayIP``: the first address of the subnet."""
    return address.network.network_address + 1


def build_result(
    conf: BridgeConf, ipam: Result, interfaces: list[Interface]
) -> tuple[Result, dict[int, list[IPInterface]]]:
    """The ADD result and the gateway addresses to put on the bridge, per family.

    Mirrors ``calcGateways``: every IP points at the container interface; with
    ``isGateway`` a missing gateway becomes network+1; with ``isDefaultGateway``
    a default route via the gateway is added per family unless IPAM already
    returned a default route with a gateway.
    """
    if not ipam.ips:
        raise CNIError("IPAM plugin returned missing IP config")
    result = Result(interfaces=list(interfaces), routes=list(ipam.routes), dns=ipam.dns)
    gateways: dict[int, list[IPInterface]] = {4: [], 6: []}
    has_default = {4: False, 6: False}
    for ipc in ipam.ips:
        family = ipc.address.version
        gw = ipc.gateway
        if gw is None and conf.is_gateway:
            gw = gateway_ip(ipc.address)
        if conf.is_default_gateway and not has_default[family]:
            has_default[family] = any(
                r.gw is not None and r.dst == _DEFAULT[family] for r in result.routes
            )
            if not has_default[family]:
                result.routes.append(Route(_DEFAULT[family], gw))
                has_default[family] = True
        if conf.is_gateway and gw is not None:
            gateways[family].append(IPInterface(gw, ipc.address.network.prefixlen))
        result.ips.append(type(ipc)(ipc.address, gw, CONTAINER_INDEX))
    if conf.dns is not None:
        result.dns = conf.dns
    return result, gateways


def first_gateways(result: Result) -> dict[int, IPAddress]:
    """Per family, the gateway of the first IP that has one: routes without ``gw``
    go through it (``ipam.ConfigureIface``)."""
    out: dict[int, IPAddress] = {}
    for ipc in result.ips:
        if ipc.gateway is not None:
            out.setdefault(ipc.gateway.version, ipc.gateway)
    return out


def route_gateway(route: Route, gateways: dict[int, IPAddress]) -> IPAddress | None:
    return route.gw if route.gw is not None else gateways.get(route.dst.version)


def container_addresses(result: Result) -> list[IPInterface]:
    return [ipc.address for ipc in result.ips]


def gateway_conflicts(
    existing: list[IPInterface], wanted: IPInterface
) -> tuple[bool, list[IPInterface]]:
    """``ensureAddr``: (already present, addresses in the way).

    IPv4: any other address of the family is in the way.  IPv6: only addresses
    whose subnet overlaps (a bridge may carry several v6 subnets, and link-local).
    """
    in_way = []
    for addr in existing:
        if addr.version != wanted.version:
            continue
        if addr == wanted:
            return True, []
        if wanted.version == 4 or addr.ip in wanted.network or wanted.ip in addr.network:
            in_way.append(addr)
    return False, in_way
