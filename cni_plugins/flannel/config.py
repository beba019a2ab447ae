"""flannel's own configuration, and the delegate configuration it renders.

Field reference (flannel-io/cni-plugin README, and what we do):

| key | default | meaning |
|---|---|---|
| ``subnetFile`` | /run/flannel/subnet.env | flanneld's lease for this node |
| ``dataDir`` | /var/lib/cni/flannel | rendered delegate configs, one file per container |
| ``delegate`` | {} | base of the delegate config; must not set ``name`` or ``ipam`` |
| ``ipam`` | {} | base of the delegate's ``ipam`` (extra keys kept) |
| ``runtimeConfig``, ``args`` | | copied into the delegate |

The delegate gets: ``name`` (always ours), ``type`` (default bridge), ``ipMasq``
(default: not FLANNEL_IPMASQ, since flanneld masquerades itself then), ``mtu``
(default FLANNEL_MTU: a delegate's own value is not overwritten), ``isGateway``
(default true for bridge), ``cniVersion`` (ours, when set), and an ``ipam`` whose
``ranges`` are always this node's subnets and whose ``routes`` are the user's plus
one per flannel network.
"""

from __future__ import annotations

from cni_plugins.spec import gokeys, jsonio
from cni_plugins.spec.errors import InvalidConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cni_plugins.flannel.subnet_env import SubnetEnv

DEFAULT_SUBNET_FILE = "/run/flannel/subnet.env"
DEFAULT_DATA_DIR = "/var/lib/cni/flannel"
# The reference's NetConf: its keys match as Go's encoding/json does, but
# ``ipam``, ``delegate`` and ``runtimeConfig`` are Go maps, whose keys stay exact.
CONF_FIELDS = gokeys.NETCONF.extend("ipam", "subnetFile", "dataDir", "delegate", "runtimeConfig")


class FlannelConf:
    __slots__ = (
        "args",
        "cni_version",
        "data_dir",
        "delegate",
        "ipam",
        "name",
        "runtime_config",
        "subnet_file",
    )

    def __init__(self, given: Mapping[str, Any]) -> None:
        raw = CONF_FIELDS.decode(given)
        self.name: str = raw["name"]
        self.cni_version: str = raw.get("cniVersion") or ""
        self.subnet_file = _path(raw, "subnetFile", DEFAULT_SUBNET_FILE)
        self.data_dir = _path(raw, "dataDir", DEFAULT_DATA_DIR)
        self.delegate = _object(raw, "delegate")
        self.ipam = _object(raw, "ipam")
        self.runtime_config = raw.get("runtimeConfig")
        # Not a field of the reference's (which drops it): passed on as written.
        self.args = given.get("args")
        for key in ("name", "ipam"):
            if key in self.delegate:
                raise InvalidConfig(
                    f"'delegate' dictionary must not have '{key}' field, it'll be set by flannel"
                )
        if "type" in self.delegate and not isinstance(self.delegate["type"], str):
            raise InvalidConfig("'delegate' field 'type' must be a string")
        if "routes" in self.ipam and not isinstance(self.ipam["routes"], list):
            raise InvalidConfig("'ipam' field 'routes' must be a list")

    @property
    def delegate_type(self) -> str:
        return str(self.delegate.get("type", "bridge"))


def _path(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise InvalidConfig(f"'{key}' must be an absolute path, got {value!r}")
    return value


def _object(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfig(f"'{key}' must be a JSON object")
    return dict(value)


def render_delegate(conf: FlannelConf, env: SubnetEnv) -> dict[str, Any]:
    """The delegate config for this node, as the reference renders it (pure)."""
    delegate = dict(conf.delegate)
    delegate["name"] = conf.name
    delegate.setdefault("type", "bridge")
    delegate.setdefault("ipMasq", not env.ipmasq)
    delegate.setdefault("mtu", env.mtu)
    if delegate["type"] == "bridge":
        delegate.setdefault("isGateway", True)
    if conf.cni_version:
        delegate["cniVersion"] = conf.cni_version
    delegate["ipam"] = _render_ipam(conf, env)
    if conf.runtime_config is not None:
        delegate["runtimeConfig"] = conf.runtime_config
    if conf.args is not None:
        delegate["args"] = conf.args
    return delegate


def _render_ipam(conf: FlannelConf, env: SubnetEnv) -> dict[str, Any]:
    ipam = dict(conf.ipam)
    ipam.setdefault("type", "host-local")
    ipam["ranges"] = [[{"subnet": str(s)}] for s in (env.subnet, env.subnet6) if s is not None]
    # The reference decodes the user's routes into types.Route and writes them
    # back: keys matched as Go does, unknown ones dropped.
    routes = [
        gokeys.ROUTE.decode(r) if isinstance(r, dict) else r for r in ipam.get("routes") or []
    ]
    routes += [{"dst": str(n)} for n in (*env.networks, *env.networks6)]
    ipam["routes"] = routes
    return ipam


def encode(delegate: Mapping[str, Any]) -> bytes:
    """The bytes we save and send: compact with sorted keys, as Go marshals a map."""
    return jsonio.dumps(delegate, sort_keys=True, compact=True).encode()
