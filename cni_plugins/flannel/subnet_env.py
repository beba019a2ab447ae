"""flanneld's subnet file (``/run/flannel/subnet.env``): what this node may hand out.

flanneld writes it atomically (renameio) once it has a lease::

    FLANNEL_NETWORK=10.244.0.0/16
    FLANNEL_SUBNET=10.244.1.1/24
    FLANNEL_IPV6_NETWORK=fd00:10:244::/56      (optional)
    FLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64    (optional)
    FLANNEL_MTU=1450
    FLANNEL_IPMASQ=true

The networks may be comma-separated lists.  Subnets are given as the gateway
address with its prefix; ranges use the network (host bits masked, as Go's
``net.ParseCIDR`` returns).  A missing or invalid file means flanneld is not
ready: ``SubnetEnvError``, which ADD reports as code 11 and STATUS as code 50.
"""

from __future__ import annotations

from cni_plugins.spec.ip import ip_network

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.spec.ip import IPNetwork

# Larger than any real subnet.env by orders of magnitude.
_MAX_BYTES = 64 * 1024


class SubnetEnvError(Exception):
    """The subnet file is missing, unreadable or incomplete; the message names it."""


class SubnetEnv:
    __slots__ = ("ipmasq", "mtu", "networks", "networks6", "subnet", "subnet6")

    def __init__(
        self,
        *,
        networks: list[IPNetwork],
        subnet: IPNetwork | None,
        networks6: list[IPNetwork],
        subnet6: IPNetwork | None,
        mtu: int,
        ipmasq: bool,
    ) -> None:
        self.networks = networks
        self.subnet = subnet
        self.networks6 = networks6
        self.subnet6 = subnet6
        self.mtu = mtu
        self.ipmasq = ipmasq


def load(path: str) -> SubnetEnv:
    hint = "Check the flannel pod log for this node."
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise SubnetEnvError(
            f"failed to load flannel 'subnet.env' file {path}: {exc.strerror}. {hint}"
        ) from exc
    if len(data) > _MAX_BYTES:
        raise SubnetEnvError(f"flannel subnet file {path} is larger than {_MAX_BYTES} bytes")
    try:
        return parse(data.decode(), path)
    except UnicodeDecodeError as exc:
        raise SubnetEnvError(f"flannel subnet file {path} is not text: {exc}. {hint}") from exc


def parse(text: str, path: str = "subnet.env") -> SubnetEnv:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key] = value.strip()
    networks = _networks(values, "FLANNEL_NETWORK", 4, path)
    networks6 = _networks(values, "FLANNEL_IPV6_NETWORK", 6, path)
    subnet = _subnet(values, "FLANNEL_SUBNET", 4, path)
    subnet6 = _subnet(values, "FLANNEL_IPV6_SUBNET", 6, path)
    missing = []
    if not networks and not networks6:
        missing += ["FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK"]
    if subnet is None and subnet6 is None:
        missing += ["FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET"]
    if "FLANNEL_MTU" not in values:
        missing.append("FLANNEL_MTU")
    if "FLANNEL_IPMASQ" not in values:
        missing.append("FLANNEL_IPMASQ")
    if missing:
        raise SubnetEnvError(f"{path} is missing {', '.join(missing)}")
    mtu_text = values["FLANNEL_MTU"]
    if not mtu_text.isdigit() or not 68 <= int(mtu_text) <= 65535:
        raise SubnetEnvError(f"{path}: FLANNEL_MTU={mtu_text!r} is not an MTU (68-65535)")
    return SubnetEnv(
        networks=networks,
        subnet=subnet,
        networks6=networks6,
        subnet6=subnet6,
        mtu=int(mtu_text),
        ipmasq=values["FLANNEL_IPMASQ"] == "true",
    )


def _networks(values: dict[str, str], key: str, family: int, path: str) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for item in values.get(key, "").split(","):
        if item.strip():
            net = _cidr(item.strip(), key, family, path)
            if net not in out:
                out.append(net)
    return out


def _subnet(values: dict[str, str], key: str, family: int, path: str) -> IPNetwork | None:
    text = values.get(key, "")
    return _cidr(text, key, family, path) if text else None


def _cidr(text: str, key: str, family: int, path: str) -> IPNetwork:
    try:
        net = ip_network(text, strict=False)
    except ValueError:
        raise SubnetEnvError(f"{path}: {key}={text!r} is not a CIDR") from None
    if net.version != family:
        raise SubnetEnvError(f"{path}: {key}={text!r} is not an IPv{family} CIDR")
    return net
