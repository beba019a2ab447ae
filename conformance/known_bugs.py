"""Known bugs of specific implementations, turned into strict expected failures.

Each entry names the check, the plugin, the spec versions it affects, the upstream
citation, and a predicate over the plugin's identity, so an expectation only applies to
the implementation that has the bug.  Entries become ``xfail(strict=True)``: if the bug
is fixed the check reports XPASS as a failure, so the table can never silently hide a
changed behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from conformance.discovery import PluginInfo
from conformance.versions import key

# Go skel "about" text: first line "CNI <name> plugin <version>" where <version> is the
# build-time tag ("v1.4.0") or "version unknown" (distribution builds such as Debian's).
_GO_ABOUT = re.compile(r"^CNI (?P<name>\S+) plugin (?P<version>version unknown|v\d+\.\d+\.\d+\S*)$")
_GO_PROTOCOLS = "CNI protocol versions supported:"


def go_release(info: PluginInfo) -> tuple[int, ...] | None:
    """The containernetworking/plugins release of a Go reference binary, or None.

    Debian builds print "version unknown"; their spec ceiling tells the era: plugins
    releases before v1.5.0 top out at spec 1.0.0 (1.1.0 support arrived with v1.5.0).
    Returns (1, 4, 99) for such "before v1.5" builds, (99,) for unknown newer ones.
    """
    lines = info.about.splitlines()
    if len(lines) < 2 or not lines[1].startswith(_GO_PROTOCOLS):
        return None
    match = _GO_ABOUT.match(lines[0])
    if match is None or match["name"] != info.name:
        return None
    version = match["version"]
    if version.startswith("v"):
        return key(version[1:].split("-")[0])
    return (1, 4, 99) if key(info.max_version) < key("1.1.0") else (99,)


def go_before(release: str) -> Callable[[PluginInfo], bool]:
    """Predicate: a Go reference binary older than ``release`` (e.g. "1.6.0")."""

    def predicate(info: PluginInfo) -> bool:
        found = go_release(info)
        return found is not None and found < key(release)

    return predicate


def go_any(info: PluginInfo) -> bool:
    return go_release(info) is not None


@dataclass(frozen=True, slots=True)
class KnownBug:
    check: str  # test function name
    plugin: str
    versions: tuple[str, ...] | None  # None: every version
    applies: Callable[[PluginInfo], bool]
    reason: str

    def matches(self, check: str, info: PluginInfo, version: str | None) -> bool:
        if check != self.check or info.name != self.plugin:
            return False
        if self.versions is not None and version not in self.versions:
            return False
        return self.applies(info)


KNOWN_BUGS: tuple[KnownBug, ...] = (
    KnownBug(
        "test_add_result_shape",
        "loopback",
        ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"),
        go_any,
        "Go loopback labels its 1.x-shaped result with the request version without "
        "converting it (no ip4/ip6 for 0.2.0, no ips[].version for 0.3.x/0.4.0); "
        "containernetworking/plugins#381, reference doc section 2.3",
    ),
    KnownBug(
        "test_reservation_file_private",
        "host-local",
        None,
        go_before("1.2.0"),
        "host-local <= 1.1.1 creates reservation files 0644 (HEAD: 0600); "
        "reference doc section 0.2",
    ),
    KnownBug(
        "test_delegate_add_error_is_followed_by_del",
        "bridge",
        None,
        go_any,
        "SPEC.md section 4: 'If on ADD a delegated plugin fails, the upper plugin should "
        "execute the delegate again with DEL'; Go bridge cmdAdd returns on IPAM ADD error "
        "before registering its deferred ipam.ExecDel (cf. containernetworking/plugins#29)",
    ),
    KnownBug(
        "test_check_with_gwless_routes",
        "bridge",
        None,
        go_before("1.3.0"),
        "bridge < 1.3.0 CHECK fails on routes without gw ('Expected Route ... not found'), "
        "fixed by commit c347755f; reference doc section 0.2",
    ),
    KnownBug(
        "test_chain_check",
        "portmap",
        None,
        go_before("1.6.0"),
        "portmap < 1.6.0 CHECK fails on IPv4-only pods ('could not check ipv6 dnat'); "
        "reference doc section 0.2",
    ),
    KnownBug(
        "test_check_after_add",
        "portmap",
        None,
        go_before("1.6.0"),
        "portmap < 1.6.0 CHECK fails on IPv4-only pods ('could not check ipv6 dnat'), "
        "fixed by the backend refactor a3ccebc6; reference doc section 0.2",
    ),
    KnownBug(
        "test_go_cni_port_mappings_check",
        "portmap",
        None,
        go_before("1.6.0"),
        "portmap < 1.6.0 CHECK fails on IPv4-only pods ('could not check ipv6 dnat'), "
        "fixed by the backend refactor a3ccebc6; reference doc section 0.2",
    ),
)


def find_known_bug(check: str, info: PluginInfo, version: str | None) -> KnownBug | None:
    for bug in KNOWN_BUGS:
        if bug.matches(check, info, version):
            return bug
    return None
