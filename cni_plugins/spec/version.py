"""CNI spec versions: which exist, which a verb needs, and how results look in each."""

from __future__ import annotations

from cni_plugins.spec.errors import DecodingFailure, IncompatibleVersion

SUPPORTED_VERSIONS: tuple[str, ...] = (
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
)
CURRENT = "1.1.0"

# A config without "cniVersion" predates 0.3.0; Go's create.DecodeVersion calls it
# 0.1.0 (0.2.0 has the same result shape).
IMPLICIT_VERSION = "0.1.0"

# The oldest config version that may carry each verb (SPEC.md "Protocol parameters").
MIN_VERSION_FOR_VERB = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}

# Result shapes: "0.2" = ip4/ip6, "0.4" = ips[] with "version", "1.0" = ips[] without it.
LEGACY, V04, V1 = "0.2", "0.4", "1.0"


def parse(version: str) -> tuple[int, int, int]:
    """'1.0.0' -> (1, 0, 0); anything else is a decoding failure (code 6)."""
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
        raise DecodingFailure(f"invalid version {version!r}: expected MAJOR.MINOR.PATCH")
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def require_supported(version: str, supported: tuple[str, ...] = SUPPORTED_VERSIONS) -> str:
    """Return ``version`` if the plugin speaks it, else raise code 1 naming the list."""
    parse(version)
    if version not in supported:
        raise IncompatibleVersion(
            "incompatible CNI versions",
            f'config is "{version}", plugin supports [{" ".join(supported)}]',
        )
    return version


def shape(version: str) -> str:
    """The result shape family of a supported version."""
    if version in ("0.1.0", "0.2.0"):
        return LEGACY
    if version in ("0.3.0", "0.3.1", "0.4.0"):
        return V04
    return V1


def supports_11_fields(version: str) -> bool:
    """1.1.0 added interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope."""
    return at_least(version, "1.1.0")
