"""The portmap plugin's configuration: every key of the reference, typed and checked.

``PortMapConf.parse(args)`` rejects every bad value with ``InvalidConfig`` (code
7) naming the key, before anything on the node is touched.  The Go plugin
answers most of these with code 999 (``failed to parse config: ...``) and
accepts some it then fails on half-way (ports above 65535, an unknown protocol,
a hostIP that is not an address, conditions iptables cannot parse).

``conditionsV4``/``conditionsV6`` are match tokens the operator adds to the
entry rules.  They reach ``iptables-restore`` (one quoted argument each) or an
``nft -f`` script (joined by spaces), so tokens that could end a line or a
statement there (newline, NUL and other control characters; for nftables also
``;``, ``#``, braces and unbalanced quotes) are refused, and so are jump/goto
tokens that would replace the entry rule's target.
"""

from __future__ import annotations

from cni_plugins.spec import gokeys
from cni_plugins.spec.errors import InvalidConfig
from cni_plugins.spec.fields import boolean, integer, typename
from cni_plugins.spec.ip import ip_address
from cni_plugins.spec.text import has_control, is_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.ip import IPAddress, IPInterface
    from cni_plugins.spec.types import Result

BACKENDS = ("iptables", "nftables")
PROTOCOLS = ("tcp", "udp", "sctp")
# Kubernetes uses bits 14 and 15, Calico 20-31 (the reference's comment).
DEFAULT_MARK_BIT = 13
# XT_EXTENSION_MAXNAMELEN - 1: the longest iptables chain name.
MAX_CHAIN_NAME = 28
_IPT_JUMPS = frozenset(("-j", "--jump", "-g", "--goto"))
# The reference's PortMapConf and PortMapEntry: keys match as Go's encoding/json.
CONF_FIELDS = gokeys.NETCONF.extend(
    "backend",
    "snat",
    "conditionsV4",
    "conditionsV6",
    "masqAll",
    "markMasqBit",
    "runtimeConfig",
    "externalSetMarkChain",
)
RUNTIME_FIELDS = gokeys.Struct("portMappings")
ENTRY_FIELDS = gokeys.Struct("hostPort", "containerPort", "protocol", "hostIP")


class PortMapping:
    """One ``runtimeConfig.portMappings`` entry; ``protocol`` is lowercase."""

    __slots__ = ("container_port", "host_ip", "host_port", "protocol")

    def __init__(
        self,
        host_port: int,
        container_port: int,
        protocol: str = "tcp",
        host_ip: IPAddress | None = None,
    ) -> None:
        self.host_port = host_port
        self.container_port = container_port
        self.protocol = protocol
        self.host_ip = host_ip

    def applies_to(self, family: int) -> bool:
        """Whether the mapping has rules for a container address of ``family``
        (a hostIP of the other family is skipped, as the reference does)."""
        return self.host_ip is None or self.host_ip.version == family

    def destination(self) -> IPAddress | None:
        """The ``-d`` address: None for no hostIP and for 0.0.0.0 / ::."""
        if self.host_ip is None or self.host_ip.is_unspecified:
            return None
        return self.host_ip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortMapping) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__
        )

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, s) for s in self.__slots__))

    def __repr__(self) -> str:
        ip = f", host_ip={self.host_ip}" if self.host_ip is not None else ""
        return f"PortMapping({self.host_port}->{self.container_port}/{self.protocol}{ip})"


class PortMapConf:
    """Parsed ``portmap`` config.  ``backend`` is resolved (never None)."""

    __slots__ = (
        "backend",
        "conditions_v4",
        "conditions_v6",
        "external_set_mark_chain",
        "mappings",
        "mark_masq_bit",
        "masq_all",
        "name",
        "snat",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.backend = "iptables"
        self.snat = True
        self.masq_all = False
        self.mark_masq_bit = DEFAULT_MARK_BIT
        self.external_set_mark_chain: str | None = None
        self.conditions_v4: tuple[str, ...] = ()
        self.conditions_v6: tuple[str, ...] = ()
        self.mappings: tuple[PortMapping, ...] = ()

    def conditions(self, family: int) -> tuple[str, ...]:
        return self.conditions_v4 if family == 4 else self.conditions_v6

    @property
    def mark(self) -> str:
        """``--set-xmark`` / ``--mark`` value, Go's ``%#x/%#x``: ``0x2000/0x2000``."""
        value = 1 << self.mark_masq_bit
        return f"{value:#x}/{value:#x}"

    @classmethod
    def parse(cls, args: CmdArgs) -> PortMapConf:
        return cls.from_json(args.config)

    @classmethod
    def from_json(
        cls, raw: Mapping[str, Any], *, iptables_usable: bool | None = None
    ) -> PortMapConf:
        """Parse ``raw``.  ``iptables_usable`` decides an unset ``backend`` (None:
        look for the tools, as the reference's auto-detection)."""
        raw = CONF_FIELDS.decode(raw)
        conf = cls(str(raw.get("name", "")))
        conf.snat = boolean(raw, "snat", default=True)
        conf.masq_all = boolean(raw, "masqAll", default=False)
        mark_bit = raw.get("markMasqBit")
        chain = raw.get("externalSetMarkChain")
        if mark_bit is not None and chain is not None:
            raise InvalidConfig(
                "markMasqBit, externalSetMarkChain: Cannot specify externalSetMarkChain"
                " and markMasqBit"
            )
        if mark_bit is not None:
            conf.mark_masq_bit = integer(mark_bit, "markMasqBit")
            if not 0 <= conf.mark_masq_bit <= 31:
                raise InvalidConfig(
                    f"markMasqBit: MasqMarkBit must be between 0 and 31, got {conf.mark_masq_bit}"
                )
        if chain is not None:
            conf.external_set_mark_chain = _chain_name(chain)
        conf.conditions_v4 = _conditions(raw, "conditionsV4")
        conf.conditions_v6 = _conditions(raw, "conditionsV6")
        conf.backend = _backend(raw, conf, iptables_usable)
        conf.mappings = _mappings(raw.get("runtimeConfig"))
        return conf


def container_addresses(
    result: Result, ifname: str
) -> tuple[IPInterface | None, IPInterface | None]:
    """(IPv4, IPv6) of the container, as the reference picks them: the first
    address per family, skipping addresses whose ``interface`` index names a
    known interface that is not ``ifname`` or has no sandbox."""
    found: dict[int, IPInterface] = {}
    for ip in result.ips:
        if ip.family in found:
            continue
        idx = ip.interface
        if idx is not None and 0 <= idx < len(result.interfaces):
            iface = result.interfaces[idx]
            if iface.name != ifname or not iface.sandbox:
                continue
        found[ip.family] = ip.address
    return found.get(4), found.get(6)


# -- typed getters: each error names its key --------------------------------------------------


def _chain_name(value: object) -> str:
    key = "externalSetMarkChain"
    if not isinstance(value, str):
        raise InvalidConfig(f"{key}: must be a string, got {typename(value)} {value!r}")
    if len(value) > MAX_CHAIN_NAME or not is_name(value, underscore_first=True):
        raise InvalidConfig(
            f"{key}: invalid chain name {value!r} (1-{MAX_CHAIN_NAME} characters of"
            " letters, digits, '_', '.', '-', not starting with '-' or '.')"
        )
    return value


def _conditions(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidConfig(f"{key}: must be an array of strings")
    for token in value:
        if has_control(token):
            raise InvalidConfig(
                f"{key}: token {token!r} contains a control character (newline, NUL, ...)"
            )
    return tuple(value)


def _conditions_backend(tokens: tuple[str, ...]) -> str | None:
    """The reference's rule: a first token starting with ``-`` or ``!`` is
    iptables syntax, anything else nftables syntax; no tokens: either."""
    if not tokens or not tokens[0]:
        return None
    return "iptables" if tokens[0][0] in "-!" else "nftables"


def _backend(raw: Mapping[str, Any], conf: PortMapConf, iptables_usable: bool | None) -> str:
    value = raw.get("backend")
    if value is not None and value not in BACKENDS:
        raise InvalidConfig(f"backend: unrecognized backend {value!r} (iptables or nftables)")
    specific: dict[str, list[str]] = {"iptables": [], "nftables": []}
    if conf.external_set_mark_chain is not None:
        specific["iptables"].append("externalSetMarkChain")
    for key, tokens in (("conditionsV4", conf.conditions_v4), ("conditionsV6", conf.conditions_v6)):
        kind = _conditions_backend(tokens)
        if kind is not None:
            specific[kind].append(key)
    backend = str(value) if value is not None else _auto_backend(iptables_usable)
    other = "nftables" if backend == "iptables" else "iptables"
    if specific[other]:
        keys = " ".join(specific[other])
        raise InvalidConfig(
            f"{', '.join(specific[other])}: {backend} backend was requested but configuration"
            f" contains {other}-specific options [{keys}]"
        )
    for key, tokens in (("conditionsV4", conf.conditions_v4), ("conditionsV6", conf.conditions_v6)):
        _check_tokens(key, tokens, backend)
    return backend


def _check_tokens(key: str, tokens: tuple[str, ...], backend: str) -> None:
    if backend == "iptables":
        for token in tokens:
            if token in _IPT_JUMPS:
                raise InvalidConfig(f"{key}: {token!r} is not allowed (the rule's target is fixed)")
        return
    for token in tokens:
        if any(c in ";#{}" for c in token) or token.count('"') % 2:
            raise InvalidConfig(
                f"{key}: token {token!r} contains ';', '#', a brace or an unbalanced quote"
            )
        if token in ("jump", "goto"):
            raise InvalidConfig(f"{key}: {token!r} is not allowed (the rule's verdict is fixed)")


def _auto_backend(iptables_usable: bool | None) -> str:
    """iptables unless its tools are missing and nft is there (the reference's
    default, decided here without an exec)."""
    if iptables_usable is None:
        from cni_plugins.linux.iptables import Iptables

        iptables_usable = Iptables(4).available()
    if iptables_usable:
        return "iptables"
    from cni_plugins.linux.nftables import Nft

    return "nftables" if Nft().available() else "iptables"


def _mappings(runtime: object) -> tuple[PortMapping, ...]:
    if runtime is None:
        return ()
    if not isinstance(runtime, dict):
        raise InvalidConfig(f"runtimeConfig: must be an object, got {typename(runtime)}")
    value = RUNTIME_FIELDS.decode(runtime).get("portMappings")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidConfig(f"runtimeConfig.portMappings: must be an array, got {typename(value)}")
    return tuple(_mapping(item, f"runtimeConfig.portMappings[{i}]") for i, item in enumerate(value))


def _mapping(given: object, where: str) -> PortMapping:
    if not isinstance(given, dict):
        raise InvalidConfig(f"{where}: must be an object, got {typename(given)}")
    item = ENTRY_FIELDS.decode(given)

    def key(name: str) -> str:
        """The key for messages, also as the caller spelt it (go-cni: "HostPort")."""
        spelt = ENTRY_FIELDS.spelling(given, name)
        return f"{where}.{name}" + (f' (given as "{spelt}")' if spelt != name else "")

    container_port = _port(item.get("containerPort"), key("containerPort"), "container")
    host_port = _port(item.get("hostPort"), key("hostPort"), "host")
    protocol = item.get("protocol")
    if protocol is None or protocol == "":
        protocol = "tcp"
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
        raise InvalidConfig(f"{key('protocol')}: unknown protocol {protocol!r} (tcp, udp or sctp)")
    return PortMapping(host_port, container_port, protocol.lower(), _host_ip(item, key("hostIP")))


def _port(value: object, key: str, which: str) -> int:
    if value is None:
        value = 0  # Go's zero value, then its own message
    port = integer(value, key)
    if not 0 < port <= 65535:
        raise InvalidConfig(f"{key}: Invalid {which} port number: {port} (1-65535)")
    return port


def _host_ip(item: Mapping[str, Any], key: str) -> IPAddress | None:
    value = item.get("hostIP")
    if value is None or value == "":
        return None
    if isinstance(value, str) and "%" not in value:
        try:
            ip = ip_address(value)
        except ValueError:
            pass
        else:
            # Go's net.IP treats ::ffff:a.b.c.d as IPv4.
            mapped = ip.ipv4_mapped
            return mapped if mapped is not None else ip
    raise InvalidConfig(f"{key}: {value!r} is not an IP address")
