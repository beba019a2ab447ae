"""Find the plugin binaries in --bin-dir and ask each who it is and what it speaks.

Identity comes from two black-box probes: VERSION (the supported spec versions) and an
exec without CNI_COMMAND, which by convention prints an "about" text on stderr (Go skel:
``CNI <name> plugin <version>``).  Known-bug expectations key off that text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from conformance.proc import run_plugin
from conformance.versions import ALL_VERSIONS, key

# The binaries a flannel node runs, in the order the report lists them.
PLUGIN_NAMES: tuple[str, ...] = ("host-local", "loopback", "bridge", "portmap", "flannel")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One plugin binary as seen from outside."""

    name: str
    path: Path | None
    supported: tuple[str, ...] = ()
    about: str = ""

    @property
    def present(self) -> bool:
        return self.path is not None

    def supports(self, version: str) -> bool:
        return version in self.supported

    @property
    def max_version(self) -> str:
        return max(self.supported, key=key) if self.supported else ""


def probe(name: str, bin_dir: Path) -> PluginInfo:
    path = bin_dir / name
    if not path.is_file():
        return PluginInfo(name, None)
    about = run_plugin(path, {}, b"").stderr.decode(errors="replace").strip()
    reply = run_plugin(path, {"CNI_COMMAND": "VERSION"}, {"cniVersion": ALL_VERSIONS[-1]})
    supported: tuple[str, ...] = ()
    try:
        data = json.loads(reply.stdout)
        raw = data.get("supportedVersions", []) if isinstance(data, dict) else []
        supported = tuple(v for v in raw if isinstance(v, str))
    except ValueError:
        pass  # the VERSION checks report this; here it only means "no versions to test"
    return PluginInfo(name, path, supported, about)


def discover(bin_dir: Path, names: tuple[str, ...] = PLUGIN_NAMES) -> dict[str, PluginInfo]:
    return {name: probe(name, bin_dir) for name in names}
