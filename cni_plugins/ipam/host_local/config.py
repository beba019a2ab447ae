"""host-local configuration: range sets, requested addresses, routes, dataDir.

Mirrors ``backend/allocator/{config,range,range_set}.go`` of containernetworking/
plugins and keeps its error texts, but every problem is ``InvalidConfig`` (code 7)
where Go answers 999.  Deliberate differences, all stricter and all reported with
a message naming the problem:

* a gateway outside its subnet is refused (Go 1.1.1 accepted it; newer Go refuses);
* ``rangeStart`` after ``rangeEnd`` says so (Go 1.1.1 blamed ``RangeStart``);
* wrong JSON types name the key instead of Go's unmarshal error.

The network address and the IPv4 broadcast address are never handed out even
when a ``rangeStart``/``rangeEnd`` includes them (Go would allocate them).
"""

from __future__ import annotations

from cni_plugins.spec import gokeys
from cni_plugins.spec.convert import parse_address, parse_network, route_from_wire
from cni_plugins.spec.errors import InvalidConfig, InvalidEnvironment
from cni_plugins.spec.ip import ip_interface
from cni_plugins.spec.version import at_least

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.ip import IPAddress, IPNetwork
    from cni_plugins.spec.types import Route

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
# The reference's Net, IPAMConfig (embedding *Range first), RangeSet entries and
# args/runtimeConfig structs: keys match as Go's encoding/json.
NET_FIELDS = gokeys.Struct("name", "cniVersion", "ipam", "runtimeConfig", "args")
RANGE_FIELDS = gokeys.Struct("rangeStart", "rangeEnd", "subnet", "gateway")
IPAM_FIELDS = RANGE_FIELDS.extend("Name", "type", "routes", "dataDir", "resolvConf", "ranges")
RUNTIME_FIELDS = gokeys.Struct("ipRanges", "ips")
ARGS_FIELDS = gokeys.Struct("cni")
IPAM_ARGS_FIELDS = gokeys.Struct("ips")


class Range:
    """One contiguous pool inside a subnet; ``start`` and ``end`` are inclusive."""

    __slots__ = ("end", "gateway", "start", "subnet")

    def __init__(
        self, subnet: IPNetwork, start: IPAddress, end: IPAddress, gateway: IPAddress
    ) -> None:
        self.subnet = subnet
        self.start = start
        self.end = end
        self.gateway = gateway

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"

    def __repr__(self) -> str:
        return f"Range({self.subnet}, {self}, gw={self.gateway})"

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.start.version and int(self.start) <= int(ip) <= int(self.end)

    def usable(self, ip: IPAddress) -> bool:
        """Never hand out the gateway, the network address or the v4 broadcast."""
        return ip != self.gateway and ip not in self._reserved()

    def capacity(self) -> int:
        """How many addresses of [start, end] may be handed out."""
        size = int(self.end) - int(self.start) + 1
        unusable = {self.gateway, *self._reserved()}
        return size - sum(1 for ip in unusable if self.contains(ip))

    def _reserved(self) -> tuple[IPAddress, ...]:
        if self.subnet.version == 4:
            return (self.subnet.network_address, self.subnet.broadcast_address)
        return (self.subnet.network_address,)


class RangeSet:
    """Ranges of one family used as a single pool: one address per set per ADD."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Iterable[Range]) -> None:
        self.ranges = tuple(ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)

    def __repr__(self) -> str:
        return f"RangeSet({self})"

    def range_for(self, ip: IPAddress) -> Range | None:
        return next((r for r in self.ranges if r.contains(ip)), None)

    def __contains__(self, ip: IPAddress) -> bool:
        return self.range_for(ip) is not None

    def overlaps(self, other: RangeSet) -> bool:
        return any(_overlap(a, b) for a in self.ranges for b in other.ranges)

    def capacity(self) -> int:
        return sum(r.capacity() for r in self.ranges)


class IPAMConfig:
    """Everything ADD, CHECK and STATUS need, validated."""

    __slots__ = ("data_dir", "name", "range_sets", "requested_ips", "resolv_conf", "routes")

    def __init__(
        self,
        *,
        name: str,
        data_dir: str,
        range_sets: tuple[RangeSet, ...],
        routes: tuple[Route, ...] = (),
        resolv_conf: str = "",
        requested_ips: tuple[IPAddress, ...] = (),
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.range_sets = range_sets
        self.routes = routes
        self.resolv_conf = resolv_conf
        self.requested_ips = requested_ips


def load_ipam_config(args: CmdArgs, *, with_requests: bool = False) -> IPAMConfig:
    """Parse and validate the ``ipam`` section (plus ``runtimeConfig``/``args``).

    Requested addresses are read only when ``with_requests`` (ADD): DEL, CHECK
    and STATUS do not use them, so a stray CNI_ARGS cannot make them fail.
    """
    config = NET_FIELDS.decode(args.config)
    ipam = ipam_section(config)
    runtime = RUNTIME_FIELDS.decode(_obj(config.get("runtimeConfig", {}), "runtimeConfig"))
    raw_sets = list(_list(runtime.get("ipRanges", []), "runtimeConfig.ipRanges"))
    if ipam.get("subnet") not in (None, ""):
        # The pre-"ranges" single range is range set 0, then runtime ranges go first.
        raw_sets.append([ipam])
    raw_sets.extend(_list(ipam.get("ranges", []), "ipam.ranges"))
    if not raw_sets:
        raise InvalidConfig("no IP ranges specified")
    range_sets = tuple(_range_set(raw, n) for n, raw in enumerate(raw_sets))
    _check_families(range_sets, args.cni_version)
    for i, a in enumerate(range_sets):
        for j in range(i + 1, len(range_sets)):
            if a.overlaps(range_sets[j]):
                raise InvalidConfig(f"range set {i} overlaps with {j}")
    resolv_conf = ipam.get("resolvConf", "")
    if not isinstance(resolv_conf, str):
        raise InvalidConfig("ipam.resolvConf must be a file name")
    return IPAMConfig(
        name=args.name,
        data_dir=data_dir(config),
        range_sets=range_sets,
        routes=tuple(
            route_from_wire(r, f"ipam.routes[{n}]")
            for n, r in enumerate(_list(ipam.get("routes", []), "ipam.routes"))
        ),
        resolv_conf=resolv_conf,
        requested_ips=requested_ips(args) if with_requests else (),
    )


def ipam_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    ipam = NET_FIELDS.decode(config).get("ipam")
    if ipam is None:
        raise InvalidConfig("IPAM config missing 'ipam' key")
    return IPAM_FIELDS.decode(_obj(ipam, "ipam"))


def data_dir(config: Mapping[str, Any]) -> str:
    """``ipam.dataDir``: all DEL and GC need, so they work with broken ranges."""
    value = ipam_section(config).get("dataDir") or DEFAULT_DATA_DIR
    if not isinstance(value, str) or "\0" in value:
        raise InvalidConfig("ipam.dataDir must be a directory name")
    return value


def requested_ips(args: CmdArgs) -> tuple[IPAddress, ...]:
    """Addresses asked for by ``args.cni.ips``, CNI_ARGS ``IP=`` and ``runtimeConfig.ips``.

    CONVENTIONS.md: when ``args`` carries the key, CNI_ARGS is ignored.  Each may
    carry a prefix length (``10.1.2.3/24``); only the address counts, as in Go.
    """
    config = NET_FIELDS.decode(args.config)
    cni_args = ARGS_FIELDS.decode(_obj(config.get("args", {}), "args"))
    cni = IPAM_ARGS_FIELDS.decode(_obj(cni_args.get("cni", {}), "args.cni"))
    found: list[IPAddress] = []
    if cni.get("ips"):
        found.extend(
            _requested(v, f"args.cni.ips[{n}]")
            for n, v in enumerate(_list(cni["ips"], "args.cni.ips"))
        )
    else:
        env_ip = args.parsed_cni_args(("IP",)).get("IP")
        if env_ip:
            try:
                found.append(_requested(env_ip, "CNI_ARGS IP"))
            except InvalidConfig as exc:
                raise InvalidEnvironment(exc.msg, args.cni_args) from None
    runtime = RUNTIME_FIELDS.decode(_obj(config.get("runtimeConfig", {}), "runtimeConfig"))
    found.extend(
        _requested(v, f"runtimeConfig.ips[{n}]")
        for n, v in enumerate(_list(runtime.get("ips", []), "runtimeConfig.ips"))
    )
    return tuple(dict.fromkeys(found))  # Go keys them by string: duplicates collapse


# ---------------------------------------------------------------------------
# ranges


def _range_set(raw: object, index: int) -> RangeSet:
    """Go's RangeSet.Canonicalize; every problem is prefixed with the set's index."""
    try:
        if not isinstance(raw, list):
            raise InvalidConfig("must be a list of range objects")
        if not raw:
            raise InvalidConfig("empty range set")
        ranges = [_range(r) for r in raw]
        if len({r.subnet.version for r in ranges}) > 1:
            raise InvalidConfig("mixed address families")
        for i, a in enumerate(ranges):
            for b in ranges[i + 1 :]:
                if _overlap(a, b):
                    raise InvalidConfig(f"subnets {a} and {b} overlap")
    except InvalidConfig as exc:
        raise InvalidConfig(f"invalid range set {index}: {exc.msg}") from None
    return RangeSet(ranges)


def _range(raw: object) -> Range:
    """Go's Range.Canonicalize: fill in defaults, refuse what cannot work."""
    if not isinstance(raw, dict):
        raise InvalidConfig("each range must be an object with a subnet")
    raw = RANGE_FIELDS.decode(raw)
    subnet = parse_network(raw.get("subnet"), "subnet")
    given = ip_interface(raw["subnet"]).ip
    if given != subnet.network_address:
        raise InvalidConfig(
            f"Network has host bits set. For a subnet mask of length {subnet.prefixlen} "
            f"the network address is {subnet.network_address}"
        )
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise InvalidConfig(f"Network {subnet} too small to allocate from")
    first = subnet.network_address + 1
    last = subnet.broadcast_address - (1 if subnet.version == 4 else 0)
    start = _optional_ip(raw, "rangeStart", subnet) or first
    end = _optional_ip(raw, "rangeEnd", subnet) or last
    if int(start) > int(end):
        raise InvalidConfig(f"RangeStart {start} is after RangeEnd {end}")
    gateway = _optional_ip(raw, "gateway", subnet) or first
    return Range(subnet, start, end, gateway)


def _optional_ip(raw: Mapping[str, Any], key: str, subnet: IPNetwork) -> IPAddress | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    ip = _canonical(parse_address(value, key))
    if ip not in subnet:  # also false for the other family
        label = "gateway" if key == "gateway" else key[0].upper() + key[1:]
        raise InvalidConfig(f"{label} {ip} not in network {subnet}")
    return ip


def _overlap(a: Range, b: Range) -> bool:
    return (
        a.start.version == b.start.version
        and int(a.start) <= int(b.end)
        and int(b.start) <= int(a.end)
    )


def _check_families(range_sets: tuple[RangeSet, ...], cni_version: str) -> None:
    # Results before 0.3.0 hold at most one ip4 and one ip6.
    per_family = [rs.ranges[0].subnet.version for rs in range_sets]
    if max(per_family.count(4), per_family.count(6)) > 1 and not at_least(cni_version, "0.3.0"):
        raise InvalidConfig(
            f"CNI version {cni_version} does not support more than 1 address per family"
        )


# ---------------------------------------------------------------------------
# JSON helpers


def _requested(raw: object, what: str) -> IPAddress:
    if isinstance(raw, str) and "/" in raw:
        try:
            return _canonical(ip_interface(raw).ip)
        except ValueError as exc:
            raise InvalidConfig(f"cannot understand ip: {what}: {exc}") from None
    return _canonical(parse_address(raw, what))


def _canonical(ip: IPAddress) -> IPAddress:
    """``::ffff:10.1.2.3`` is 10.1.2.3, as Go's To4() makes it."""
    mapped = ip.ipv4_mapped
    return mapped if mapped is not None else ip


def _obj(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{what} must be a JSON object")
    return raw


def _list(raw: object, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidConfig(f"{what} must be a list")
    return raw
