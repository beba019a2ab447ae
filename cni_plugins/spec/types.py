"""The canonical result model (CNI 1.1.0 semantics), independent of wire versions.

Plain slotted classes rather than dataclasses: ``dataclasses`` pulls in
``inspect`` and costs every plugin exec ~10 ms (DESIGN.md, speed).  Addresses are
``spec.ip`` objects past the parse boundary; ``convert`` maps to and from JSON.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.spec.ip import IPAddress, IPInterface, IPNetwork


class _Record:
    """Value semantics (eq, repr) from ``__slots__``."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Interface(_Record):
    __slots__ = ("mac", "mtu", "name", "pci_id", "sandbox", "socket_path")

    def __init__(
        self,
        name: str,
        mac: str = "",
        sandbox: str = "",
        *,
        mtu: int = 0,
        socket_path: str = "",
        pci_id: str = "",
    ) -> None:
        self.name = name
        self.mac = mac
        self.sandbox = sandbox
        self.mtu = mtu
        self.socket_path = socket_path
        self.pci_id = pci_id


class IPConfig(_Record):
    """One address; ``interface`` indexes ``Result.interfaces`` (None for IPAM results)."""

    __slots__ = ("address", "gateway", "interface")

    def __init__(
        self,
        address: IPInterface,
        gateway: IPAddress | None = None,
        interface: int | None = None,
    ) -> None:
        self.address = address
        self.gateway = gateway
        self.interface = interface

    @property
    def family(self) -> int:
        return self.address.version


class Route(_Record):
    __slots__ = ("advmss", "dst", "gw", "mtu", "priority", "scope", "table")

    def __init__(
        self,
        dst: IPNetwork,
        gw: IPAddress | None = None,
        *,
        mtu: int = 0,
        advmss: int = 0,
        priority: int = 0,
        table: int | None = None,
        scope: int | None = None,
    ) -> None:
        self.dst = dst
        self.gw = gw
        self.mtu = mtu
        self.advmss = advmss
        self.priority = priority
        self.table = table
        self.scope = scope


class DNS(_Record):
    __slots__ = ("domain", "nameservers", "options", "search")

    def __init__(
        self,
        nameservers: tuple[str, ...] = (),
        domain: str = "",
        search: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
    ) -> None:
        self.nameservers = tuple(nameservers)
        self.domain = domain
        self.search = tuple(search)
        self.options = tuple(options)

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


class Result(_Record):
    """A Success result.  Lists are mutable so chained plugins can amend them."""

    __slots__ = ("dns", "interfaces", "ips", "routes")

    def __init__(
        self,
        interfaces: list[Interface] | None = None,
        ips: list[IPConfig] | None = None,
        routes: list[Route] | None = None,
        dns: DNS | None = None,
    ) -> None:
        self.interfaces = interfaces if interfaces is not None else []
        self.ips = ips if ips is not None else []
        self.routes = routes if routes is not None else []
        self.dns = dns if dns is not None else DNS()

    def __hash__(self) -> int:  # mutable: not hashable
        raise TypeError("Result is mutable")
