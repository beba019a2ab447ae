"""Results on the wire: parse any version into the canonical model, print it in any version.

The rules follow containernetworking/cni ``pkg/types/{020,040,100}`` (see the
reference doc section 1.10), written as two explicit functions instead of Go's
converter registry:

* 0.1.0/0.2.0: ``ip4``/``ip6`` with at most one address per family; routes hang
  off the family of their ``dst``; interfaces are lost.  A result without any
  address cannot be expressed and is refused.
* 0.3.0/0.3.1/0.4.0: ``interfaces``, ``ips[]`` with ``version``, top-level ``routes``.
* 1.0.0/1.1.0: as 0.4.0 without ``ips[].version``; 1.1.0 adds interface
  ``mtu``/``socketPath``/``pciID`` and route ``mtu``/``advmss``/``priority``/
  ``table``/``scope``, which are omitted for older versions.

An empty ``dns`` is omitted, as current upstream does.
"""

from __future__ import annotations

from cni_plugins.spec import gokeys
from cni_plugins.spec import version as versions
from cni_plugins.spec.errors import IncompatibleVersion, InvalidConfig
from cni_plugins.spec.ip import ip_address, ip_interface, ip_network
from cni_plugins.spec.types import DNS, Interface, IPConfig, Result, Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cni_plugins.spec.ip import IPAddress, IPInterface, IPNetwork

    JSON = dict[str, Any]


# ---------------------------------------------------------------------------
# canonical -> wire


def result_to_wire(result: Result, version: str) -> JSON:
    shape = versions.shape(version)
    out: JSON = {"cniVersion": version}
    if shape == versions.LEGACY:
        out.update(_to_legacy(result, version))
    else:
        rich = versions.supports_11_fields(version)
        out["interfaces"] = [_iface_to_wire(i, rich) for i in result.interfaces]
        out["ips"] = [_ip_to_wire(ip, with_version=shape == versions.V04) for ip in result.ips]
        out["routes"] = [_route_to_wire(r, rich) for r in result.routes]
        for key in ("interfaces", "ips", "routes"):  # omitted when empty, as Go does
            if not out[key]:
                del out[key]
    if not result.dns.is_empty():
        out["dns"] = _dns_to_wire(result.dns)
    return out


def _to_legacy(result: Result, version: str) -> JSON:
    out: JSON = {}
    for family, key in ((4, "ip4"), (6, "ip6")):
        first = next((ip for ip in result.ips if ip.family == family), None)
        if first is None:
            continue
        entry: JSON = {"ip": str(first.address)}
        if first.gateway is not None:
            entry["gateway"] = str(first.gateway)
        routes = [_route_to_wire(r, False) for r in result.routes if r.dst.version == family]
        if routes:
            entry["routes"] = routes
        out[key] = entry
    if not out:
        raise IncompatibleVersion(
            f"cannot convert result to CNI version {version}: no valid IP addresses",
            "versions before 0.3.0 require at least one IP address in a result",
        )
    return out


def _iface_to_wire(iface: Interface, rich: bool) -> JSON:
    out: JSON = {"name": iface.name}
    if iface.mac:
        out["mac"] = iface.mac
    if rich and iface.mtu:
        out["mtu"] = iface.mtu
    if iface.sandbox:
        out["sandbox"] = iface.sandbox
    if rich and iface.socket_path:
        out["socketPath"] = iface.socket_path
    if rich and iface.pci_id:
        out["pciID"] = iface.pci_id
    return out


def _ip_to_wire(ip: IPConfig, *, with_version: bool) -> JSON:
    out: JSON = {}
    if with_version:
        out["version"] = str(ip.family)
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = str(ip.address)
    if ip.gateway is not None:
        out["gateway"] = str(ip.gateway)
    return out


def _route_to_wire(route: Route, rich: bool) -> JSON:
    out: JSON = {"dst": str(route.dst)}
    if route.gw is not None:
        out["gw"] = str(route.gw)
    if rich:
        for key, value in (
            ("mtu", route.mtu),
            ("advmss", route.advmss),
            ("priority", route.priority),
            ("table", route.table),
            ("scope", route.scope),
        ):
            if value:
                out[key] = value
    return out


def _dns_to_wire(dns: DNS) -> JSON:
    out: JSON = {}
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


# ---------------------------------------------------------------------------
# wire -> canonical


def result_from_wire(
    raw: object, default_version: str, what: str = "result", *, go_map: bool = False
) -> Result:
    """Parse a result printed in its own ``cniVersion`` (``default_version`` if absent).

    Keys match the result structs' fields as in Go (``"IPs"`` is ``ips``).
    ``go_map``: ``raw`` is a config's ``prevResult``, which Go holds as a map and
    re-marshals, every object's keys sorted, before decoding it into a result.
    Errors are ``InvalidConfig`` naming ``what`` (e.g. "prevResult") and the field.
    """
    if go_map:
        raw = _sorted_keys(raw)
    obj = gokeys.RESULT.decode(_obj(raw, what))
    version = obj.get("cniVersion", default_version)
    if not isinstance(version, str):
        raise InvalidConfig(f"{what}.cniVersion must be a string")
    versions.require_supported(version)
    if versions.shape(version) == versions.LEGACY:
        return _from_legacy(gokeys.LEGACY_RESULT.decode(_obj(raw, what)), what)
    result = Result(
        interfaces=[
            _iface(x, f"{what}.interfaces[{n}]") for n, x in _items(obj, "interfaces", what)
        ],
        ips=[_ipconfig(x, f"{what}.ips[{n}]") for n, x in _items(obj, "ips", what)],
        routes=[_route(x, f"{what}.routes[{n}]") for n, x in _items(obj, "routes", what)],
        dns=_dns(obj.get("dns"), f"{what}.dns"),
    )
    for ip in result.ips:
        if ip.interface is not None and not 0 <= ip.interface < len(result.interfaces):
            raise InvalidConfig(f"{what}.ips: interface index {ip.interface} out of range")
    return result


def _sorted_keys(raw: object) -> object:
    """``raw`` as Go's json.Marshal writes a map[string]interface{}: keys sorted."""
    if isinstance(raw, dict):
        return {k: _sorted_keys(raw[k]) for k in sorted(raw)}
    if isinstance(raw, list):
        return [_sorted_keys(v) for v in raw]
    return raw


def route_from_wire(raw: object, what: str) -> Route:
    """One route object as results and IPAM configs (``ipam.routes``) write it."""
    return _route(raw, what)


def _from_legacy(obj: Mapping[str, Any], what: str) -> Result:
    result = Result(dns=_dns(obj.get("dns"), f"{what}.dns"))
    for key in ("ip4", "ip6"):
        entry = obj.get(key)
        if entry is None:
            continue
        where = f"{what}.{key}"
        entry = gokeys.LEGACY_IP_CONFIG.decode(_obj(entry, where))
        address = _interface_addr(entry.get("ip"), f"{where}.ip")
        gateway = _opt_addr(entry.get("gateway"), f"{where}.gateway")
        result.ips.append(IPConfig(address, gateway))
        result.routes.extend(
            _route(r, f"{where}.routes[{n}]") for n, r in _items(entry, "routes", where)
        )
    return result


def _obj(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{what} must be a JSON object")
    return raw


def _items(obj: Mapping[str, Any], key: str, what: str) -> list[tuple[int, Any]]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidConfig(f"{what}.{key} must be a list")
    return list(enumerate(value))


def _str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise InvalidConfig(f"{what}.{key} must be a string")
    return value


def _int(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(f"{what}.{key} must be an integer")
    return value


def _iface(raw: object, what: str) -> Interface:
    obj = gokeys.INTERFACE.decode(_obj(raw, what))
    name = _str(obj, "name", what)
    if not name:
        raise InvalidConfig(f"{what}.name is missing")
    return Interface(
        name,
        _str(obj, "mac", what),
        _str(obj, "sandbox", what),
        mtu=_int(obj, "mtu", what),
        socket_path=_str(obj, "socketPath", what),
        pci_id=_str(obj, "pciID", what),
    )


def _ipconfig(raw: object, what: str) -> IPConfig:
    obj = gokeys.IP_CONFIG.decode(_obj(raw, what))
    address = _interface_addr(obj.get("address"), f"{what}.address")
    gateway = _opt_addr(obj.get("gateway"), f"{what}.gateway")
    index = obj.get("interface")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise InvalidConfig(f"{what}.interface must be an integer index")
    if "version" in obj and obj["version"] not in ("4", "6"):
        raise InvalidConfig(f'{what}.version must be "4" or "6"')
    if "version" in obj and obj["version"] != str(address.version):
        raise InvalidConfig(f"{what}.version does not match address {address}")
    return IPConfig(address, gateway, index)


def _route(raw: object, what: str) -> Route:
    obj = gokeys.ROUTE.decode(_obj(raw, what))
    dst = parse_network(obj.get("dst"), f"{what}.dst")
    gw = _opt_addr(obj.get("gw"), f"{what}.gw")
    table = obj.get("table")
    scope = obj.get("scope")
    for key, value in (("table", table), ("scope", scope)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidConfig(f"{what}.{key} must be an integer")
    return Route(
        dst,
        gw,
        mtu=_int(obj, "mtu", what),
        advmss=_int(obj, "advmss", what),
        priority=_int(obj, "priority", what),
        table=table,
        scope=scope,
    )


def _dns(raw: object, what: str) -> DNS:
    if raw is None:
        return DNS()
    obj = gokeys.DNS.decode(_obj(raw, what))

    def strings(key: str) -> tuple[str, ...]:
        value = obj.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidConfig(f"{what}.{key} must be a list of strings")
        return tuple(value)

    return DNS(
        strings("nameservers"), _str(obj, "domain", what), strings("search"), strings("options")
    )


def _interface_addr(raw: object, what: str) -> IPInterface:
    if not isinstance(raw, str) or "/" not in raw:
        raise InvalidConfig(f"{what} must be an address with prefix length, got {raw!r}")
    try:
        return ip_interface(raw)
    except ValueError as exc:
        raise InvalidConfig(f"{what}: {exc}") from exc


def _opt_addr(raw: object, what: str) -> IPAddress | None:
    if raw is None or raw == "":
        return None
    return parse_address(raw, what)


def parse_address(raw: object, what: str) -> IPAddress:
    if not isinstance(raw, str):
        raise InvalidConfig(f"{what} must be an IP address string, got {raw!r}")
    try:
        return ip_address(raw)
    except ValueError as exc:
        raise InvalidConfig(f"{what}: {exc}") from exc


def parse_network(raw: object, what: str, *, strict: bool = False) -> IPNetwork:
    """A CIDR; host bits are masked off unless ``strict`` (Go's ParseCIDR masks)."""
    if not isinstance(raw, str) or "/" not in raw:
        raise InvalidConfig(f"{what} must be a CIDR like 10.0.0.0/8, got {raw!r}")
    try:
        return ip_network(raw, strict=strict)
    except ValueError as exc:
        raise InvalidConfig(f"{what}: {exc}") from exc
