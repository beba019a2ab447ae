"""CNI spec versions and the version predicates tests are parametrised with.

Predicates stay out of test bodies (the Go `testutils.SpecVersionHas*` idea), so a test
reads as "needs CHECK" rather than as a version comparison.
"""

ALL_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def key(version: str) -> tuple[int, ...]:
    """Sort key for a dotted version; unparsable parts sort first."""
    parts: list[int] = []
    for part in version.split("."):
        parts.append(int(part) if part.isdigit() else -1)
    return tuple(parts)


def at_least(version: str, minimum: str) -> bool:
    return key(version) >= key(minimum)


def has_check(version: str) -> bool:
    """CHECK arrived in 0.4.0."""
    return at_least(version, "0.4.0")


def has_status_gc(version: str) -> bool:
    """STATUS and GC arrived in 1.1.0."""
    return at_least(version, "1.1.0")


def is_legacy(version: str) -> bool:
    """0.1.0/0.2.0 results use the ip4/ip6 form."""
    return not at_least(version, "0.3.0")


def has_ip_version(version: str) -> bool:
    """0.3.x and 0.4.0 results carry ips[].version; 1.0.0 dropped it."""
    return at_least(version, "0.3.0") and not at_least(version, "1.0.0")


def has_prev_result_on_del(version: str) -> bool:
    """prevResult is passed on DEL since 0.4.0."""
    return at_least(version, "0.4.0")


def schema_family(version: str) -> str:
    """Name of the result schema file for a version (see conformance/schemas/)."""
    if is_legacy(version):
        return "0.2"
    if has_ip_version(version):
        return "0.4"
    if at_least(version, "1.1.0"):
        return "1.1"
    return "1.0"
