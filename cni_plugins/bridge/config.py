"""The bridge plugin's configuration: every key of the reference, typed and checked.

``BridgeConf.parse(args)`` reads the config (and CNI_ARGS ``MAC=``) once and
rejects every bad value with ``InvalidConfig`` (code 7) naming the key, before
anything on the node is touched.  The Go plugin reports most of these as code
999 and some only half-way through ADD (``unknown ipmasq backend`` after the
veth exists); here they all fail up front.
"""

from __future__ import annotations

from cni_plugins.spec import gokeys
from cni_plugins.spec.errors import InvalidConfig
from cni_plugins.spec.fields import integer, optional_bool, typename
from cni_plugins.spec.text import is_mac
from cni_plugins.spec.types import DNS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cni_plugins.spec.args import CmdArgs

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094
# The reference's NetConf and its nested structs: keys match as Go's encoding/json.
CONF_FIELDS = gokeys.NETCONF.extend(
    "bridge",
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "ipMasqBackend",
    "mtu",
    "hairpinMode",
    "promiscMode",
    "vlan",
    "vlanTrunk",
    "preserveDefaultVlan",
    "macspoofchk",
    "enabledad",
    "disableContainerInterface",
    "portIsolation",
    "args",
    "runtimeConfig",
)
VLAN_TRUNK_FIELDS = gokeys.Struct("minID", "maxID", "id")
ARGS_FIELDS = gokeys.Struct("cni")
MAC_FIELDS = gokeys.Struct("mac")  # BridgeArgs and RuntimeConfig
_BOOL_KEYS = {
    "isGateway": "is_gateway",
    "isDefaultGateway": "is_default_gateway",
    "forceAddress": "force_address",
    "ipMasq": "ip_masq",
    "hairpinMode": "hairpin_mode",
    "promiscMode": "promisc_mode",
    "preserveDefaultVlan": "preserve_default_vlan",
    "enabledad": "enable_dad",
    "macspoofchk": "mac_spoof_check",
    "disableContainerInterface": "disable_container_interface",
    "portIsolation": "port_isolation",
}


class BridgeConf:
    """Parsed ``bridge`` plugin config.  ``raw`` is the whole config as received."""

    __slots__ = (
        "bridge",
        "disable_container_interface",
        "dns",
        "enable_dad",
        "force_address",
        "hairpin_mode",
        "ip_masq",
        "ip_masq_backend",
        "ipam_type",
        "is_default_gateway",
        "is_gateway",
        "mac",
        "mac_spoof_check",
        "mtu",
        "name",
        "port_isolation",
        "preserve_default_vlan",
        "promisc_mode",
        "raw",
        "vlan",
        "vlan_trunk",
    )

    def __init__(self, raw: Mapping[str, Any], name: str) -> None:
        self.raw = raw
        self.name = name
        self.bridge = DEFAULT_BRIDGE
        self.is_gateway = False
        self.is_default_gateway = False
        self.force_address = False
        self.ip_masq = False
        self.ip_masq_backend: str | None = None
        self.mtu = 0
        self.hairpin_mode = False
        self.promisc_mode = False
        self.vlan = 0
        self.vlan_trunk: tuple[int, ...] | None = None
        self.preserve_default_vlan = False
        self.enable_dad = False
        self.mac_spoof_check = False
        self.disable_container_interface = False
        self.port_isolation = False
        self.ipam_type = ""
        self.dns: DNS | None = None
        self.mac = ""

    @property
    def vlan_filtering(self) -> bool:
        """A new bridge filters VLANs when ``vlan`` or ``vlanTrunk`` is set."""
        return self.vlan != 0 or self.vlan_trunk is not None

    @classmethod
    def parse(cls, args: CmdArgs, *, for_add: bool = True) -> BridgeConf:
        """Parse ``args.config``; ``for_add`` also checks the combinations only ADD
        refuses (hairpin + promisc, IPAM + disableContainerInterface)."""
        return cls.from_json(args.config, cni_args=args.cni_args, for_add=for_add)

    @classmethod
    def from_json(
        cls, given: Mapping[str, Any], *, cni_args: str = "", for_add: bool = True
    ) -> BridgeConf:
        raw = CONF_FIELDS.decode(given)
        conf = cls(given, str(raw.get("name", "")))
        for key, attr in _BOOL_KEYS.items():
            value = optional_bool(raw, key)
            if value is not None:
                setattr(conf, attr, value)
        conf.bridge = _bridge_name(raw)
        conf.mtu = _mtu(raw)
        conf.ip_masq_backend = _backend(raw)
        conf.vlan = _vlan(raw)
        conf.vlan_trunk = parse_vlan_trunk(raw.get("vlanTrunk"))
        conf.ipam_type = _ipam_type(raw)
        conf.dns = _dns(raw.get("dns"))
        conf.mac = _mac(raw, cni_args)
        if conf.is_default_gateway:
            conf.is_gateway = True
        if for_add:
            conf.validate_for_add()
        return conf

    def validate_for_add(self) -> None:
        if self.hairpin_mode and self.promisc_mode:
            raise InvalidConfig(
                "hairpinMode, promiscMode: cannot set hairpin mode and promiscuous mode"
                " at the same time"
            )
        if self.ipam_type and self.disable_container_interface:
            raise InvalidConfig(
                "disableContainerInterface: cannot use IPAM when DisableContainerInterface"
                " flag is set"
            )
        if self.vlan and self.is_gateway and len(f"{self.bridge}.{self.vlan}") > 15:
            raise InvalidConfig(
                f"bridge, vlan: the VLAN gateway interface name {self.bridge}.{self.vlan!s}"
                " is longer than 15 characters"
            )


# -- typed getters: each error names its key --------------------------------------------------


def _bridge_name(raw: Mapping[str, Any]) -> str:
    value = raw.get("bridge")
    if value is None or value == "":
        return DEFAULT_BRIDGE
    if not isinstance(value, str):
        raise InvalidConfig(f"bridge: must be a string, got {typename(value)} {value!r}")
    if len(value) > 15 or value in (".", "..") or any(c in "/:" or c.isspace() for c in value):
        raise InvalidConfig(
            f"bridge: invalid interface name {value!r}"
            " (at most 15 characters, no '/', ':' or whitespace)"
        )
    return value


def _mtu(raw: Mapping[str, Any]) -> int:
    value = raw.get("mtu")
    if value is None:
        return 0
    mtu = integer(value, "mtu")
    if mtu != 0 and not 68 <= mtu <= 65535:
        raise InvalidConfig(f"mtu: {mtu} is out of range (68-65535, or 0 for the default)")
    return mtu


def _backend(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("ipMasqBackend")
    if value is None or value == "auto":
        return None
    if value in ("iptables", "nftables"):
        return str(value)
    raise InvalidConfig(
        f"ipMasqBackend: unknown ipmasq backend {value!r} (iptables, nftables or auto)"
    )


def _vlan(raw: Mapping[str, Any]) -> int:
    value = raw.get("vlan")
    if value is None:
        return 0
    vlan = integer(value, "vlan")
    if not 0 <= vlan <= MAX_VLAN:
        raise InvalidConfig(f"vlan: invalid VLAN ID {vlan} (must be between 0 and 4094)")
    return vlan


def parse_vlan_trunk(value: object) -> tuple[int, ...] | None:
    """Sorted distinct VIDs of ``vlanTrunk`` (``[{"id"}|{"minID","maxID"}]``), None
    when absent.  Error texts are the reference's (ovs-cni's) with the key prefixed."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidConfig(f"vlanTrunk: must be an array, got {typename(value)}")
    vids: set[int] = set()
    for item in value:
        if not isinstance(item, dict):
            raise InvalidConfig(f"vlanTrunk: entries must be objects, got {typename(item)}")
        fields = VLAN_TRUNK_FIELDS.decode(item)
        lo, hi, one = (fields.get(k) for k in ("minID", "maxID", "id"))
        if lo is not None and hi is not None:
            lo = _trunk_id(lo, "minID")
            hi = _trunk_id(hi, "maxID")
            if hi < lo:
                raise InvalidConfig("vlanTrunk: minID is greater than maxID in trunk parameter")
            vids.update(range(lo, hi + 1))
        elif lo is None and hi is not None:
            raise InvalidConfig(
                "vlanTrunk: minID and maxID should be configured simultaneously, minID is missing"
            )
        elif lo is not None:
            raise InvalidConfig(
                "vlanTrunk: minID and maxID should be configured simultaneously, maxID is missing"
            )
        if one is not None:
            vids.add(_trunk_id(one, "id"))
    return tuple(sorted(vids)) if vids else None


def _trunk_id(value: object, key: str) -> int:
    vid = integer(value, f"vlanTrunk.{key}")
    if not 0 < vid <= MAX_VLAN:
        raise InvalidConfig(f"vlanTrunk: incorrect trunk {key} parameter ({vid})")
    return vid


def _ipam_type(raw: Mapping[str, Any]) -> str:
    ipam = raw.get("ipam")
    if ipam is None:
        return ""
    if not isinstance(ipam, dict):
        raise InvalidConfig(f"ipam: must be an object, got {typename(ipam)}")
    kind = gokeys.IPAM.decode(ipam).get("type")
    if kind is None or kind == "":
        return ""
    if not isinstance(kind, str) or "/" in kind or kind in (".", ".."):
        raise InvalidConfig(f"ipam.type: must be a plugin name, got {kind!r}")
    return kind


def _str_list(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidConfig(f"{key}: must be an array of strings")
    return tuple(value)


def _dns(value: object) -> DNS | None:
    """The config's ``dns``, or None when no field is set (then IPAM's DNS stays)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidConfig(f"dns: must be an object, got {typename(value)}")
    value = gokeys.DNS.decode(value)
    domain = value.get("domain")
    if domain is not None and not isinstance(domain, str):
        raise InvalidConfig("dns.domain: must be a string")
    dns = DNS(
        nameservers=_str_list(value.get("nameservers"), "dns.nameservers"),
        domain=domain or "",
        search=_str_list(value.get("search"), "dns.search"),
        options=_str_list(value.get("options"), "dns.options"),
    )
    # The reference tests "is the field non-nil": an empty list counts as set.
    set_keys = any(value.get(k) is not None for k in ("nameservers", "search", "options"))
    return dns if set_keys or dns.domain else None


def _mac(raw: Mapping[str, Any], cni_args: str) -> str:
    """The container MAC: CNI_ARGS ``MAC`` < ``args.cni.mac`` < ``runtimeConfig.mac``."""
    from cni_plugins.spec.args import parse_cni_args

    mac: object = ""
    source = ""
    if cni_args:
        from_env = parse_cni_args(cni_args, ("MAC",)).get("MAC", "")
        if from_env:
            mac, source = from_env, "CNI_ARGS MAC"
    args = raw.get("args")
    cni = ARGS_FIELDS.decode(args).get("cni") if isinstance(args, dict) else None
    if isinstance(cni, dict):
        value = MAC_FIELDS.decode(cni).get("mac")
        if value is not None and value != "":
            mac, source = value, "args.cni.mac"
    runtime = raw.get("runtimeConfig")
    if isinstance(runtime, dict):
        value = MAC_FIELDS.decode(runtime).get("mac")
        if value is not None and value != "":
            mac, source = value, "runtimeConfig.mac"
    if not isinstance(mac, str) or (mac and not is_mac(mac)):
        raise InvalidConfig(f"{source}: invalid MAC address {mac!r}")
    if mac and int(mac[:2], 16) & 1:
        raise InvalidConfig(f"{source}: {mac} is a multicast MAC address")
    return mac.lower().replace("-", ":")
