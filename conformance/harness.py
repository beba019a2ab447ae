"""A Harness binds one plugin binary to one World: default CNI environment, the plugin's
minimal config, and invocation inside the node namespace."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from conformance.discovery import PluginInfo
from conformance.netns import World
from conformance.proc import Outcome, config_bytes, run_plugin
from conformance.profiles import PROFILES, Config, Profile


class Harness:
    def __init__(self, world: World, info: PluginInfo, bin_dir: Path) -> None:
        assert info.path is not None, f"{info.name} is not in {bin_dir}"
        self.world = world
        self.info = info
        self.binary: Path = info.path
        self.bin_dir = bin_dir
        self.profile: Profile = PROFILES[info.name]
        # Container IDs look like runtime ones (hex) but are unique per harness.
        self.container_id = "cnf" + secrets.token_hex(8)
        self.cni_path: list[Path] = [bin_dir]

    def config(self, version: str, **extra: Any) -> Config:
        return self.profile.config(self.world, version, **extra)

    def env(self, command: str, **overrides: str | None) -> dict[str, str]:
        env: dict[str, str | None] = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.world.pod.path,
            "CNI_IFNAME": self.profile.ifname,
            "CNI_PATH": ":".join(str(p) for p in self.cni_path),
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def run(
        self, command: str, config: Config | bytes | None, **env_overrides: str | None
    ) -> Outcome:
        """Invoke the plugin in the node namespace (never in the root namespace)."""
        return run_plugin(
            self.binary,
            self.env(command, **env_overrides),
            config_bytes(config),
            netns=self.world.node.name,
        )

    def add(self, version: str, **env: str | None) -> Outcome:
        return self.run("ADD", self.config(version), **env)
