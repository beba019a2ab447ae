"""Per-invocation arguments: the CNI_* environment, the config, and CNI_ARGS."""

from __future__ import annotations

from cni_plugins.spec.errors import InvalidConfig, InvalidEnvironment
from cni_plugins.spec.text import is_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cni_plugins.spec.types import Result

# Both end up as file or directory names (host-local, flannel dataDir).
MAX_NAME_LEN = 255
# IFNAMSIZ - 1.
MAX_IFNAME_LEN = 15


class CmdArgs:
    """Everything a handler gets: parsed env, the raw and parsed config, prevResult."""

    __slots__ = (
        "cni_args",
        "cni_version",
        "command",
        "config",
        "container_id",
        "environ",
        "ifname",
        "netns",
        "path",
        "plugin",
        "prev_result",
        "stdin",
    )

    def __init__(
        self,
        *,
        command: str,
        config: dict[str, Any],
        cni_version: str,
        stdin: bytes = b"",
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        cni_args: str = "",
        path: tuple[str, ...] = (),
        prev_result: Result | None = None,
        environ: Mapping[str, str] | None = None,
        plugin: str = "",
    ) -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.cni_args = cni_args
        self.path = path
        self.stdin = stdin
        self.config = config
        self.cni_version = cni_version
        self.prev_result = prev_result
        self.environ: Mapping[str, str] = environ if environ is not None else {}
        # The running plugin's own name: a delegate of the same type would recurse.
        self.plugin = plugin

    @property
    def name(self) -> str:
        return str(self.config["name"])

    def parsed_cni_args(self, known: tuple[str, ...]) -> dict[str, str]:
        """CNI_ARGS as a dict; only plugins that read CNI_ARGS validate it (as in Go)."""
        return parse_cni_args(self.cni_args, known)


def validate_container_id(value: str) -> None:
    # SPEC.md section 2; Go pkg/utils ValidateContainerID.
    if not is_name(value) or len(value) > MAX_NAME_LEN:
        raise InvalidEnvironment(
            "invalid characters in containerID"
            if len(value) <= MAX_NAME_LEN
            else f"containerID longer than {MAX_NAME_LEN} characters",
            value,
        )


def validate_ifname(value: str) -> None:
    problem = ""
    if len(value) > MAX_IFNAME_LEN:
        problem = f"interface name is too long (max {MAX_IFNAME_LEN} characters)"
    elif value in (".", ".."):
        problem = "interface name is . or .."
    elif any(c in "/:" or c.isspace() for c in value):
        problem = "interface name contains / or : or whitespace characters"
    if problem:
        raise InvalidEnvironment(f"invalid CNI_IFNAME: {problem}", value)


def validate_network_name(value: object) -> str:
    if value is None or value == "":
        raise InvalidConfig("missing network name")
    if not isinstance(value, str):
        raise InvalidConfig("network name must be a string")
    if not is_name(value) or len(value) > MAX_NAME_LEN:
        raise InvalidConfig("invalid characters found in network name", value)
    return value


def parse_cni_args(raw: str, known: tuple[str, ...]) -> dict[str, str]:
    """Parse ``K1=V1;K2=V2`` like Go's ``types.LoadArgs``.

    Keys not in ``known`` are an error unless ``IgnoreUnknown`` is 1/true: kubelet
    always sends ``IgnoreUnknown=1`` with its ``K8S_POD_*`` keys.
    """
    if not raw:
        return {}
    pairs: dict[str, str] = {}
    for item in raw.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key or "=" in value:
            raise InvalidEnvironment(f"CNI_ARGS: invalid pair {item!r}", raw)
        pairs[key] = value
    ignore = pairs.pop("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = [f"{k}={v}" for k, v in pairs.items() if k not in known]
    if unknown and not ignore:
        raise InvalidEnvironment(f"CNI_ARGS: unknown args {unknown}", raw)
    return {k: v for k, v in pairs.items() if k in known}


# GC attachment lists: the spec's key, and the one SPEC.md used by mistake
# (libcni sends both, cni#1101).
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


def valid_attachments(config: Mapping[str, Any]) -> set[tuple[str, str]]:
    """GC's (containerID, ifname) pairs still in use; an absent list means none
    (``cnitool gc`` sends no list and expects everything released)."""
    key = next((k for k in VALID_ATTACHMENTS_KEYS if k in config), None)
    if key is None or config[key] is None:
        return set()
    items = config[key]
    if not isinstance(items, list):
        raise InvalidConfig(f"{key} must be a list")
    from cni_plugins.spec.gokeys import GC_ATTACHMENT

    out: set[tuple[str, str]] = set()
    for n, entry in enumerate(items):
        fields = GC_ATTACHMENT.decode(entry) if isinstance(entry, dict) else {}
        cid = fields.get("containerID")
        ifname = fields.get("ifname")
        if not isinstance(cid, str) or not cid or not isinstance(ifname, str):
            raise InvalidConfig(f"{key}[{n}] needs string containerID and ifname")
        out.add((cid.strip(), ifname))
    return out
