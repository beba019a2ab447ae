"""Network configuration lists driven through conformance/runtime.py (libcni-style):
bridge + host-local, then portmap; a loopback list; GC through the runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.convert import normalise
from conformance.discovery import PluginInfo
from conformance.netns import World
from conformance.profiles import HOST_PORT, NETWORK_NAME, ipam_section
from conformance.runtime import Attachment, Runtime
from conformance.versions import has_check, has_status_gc

NEEDED = ("bridge", "host-local", "portmap")


def _conflist(world: World, version: str) -> dict[str, Any]:
    return {
        "cniVersion": version,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cnf0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": ipam_section(world),
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def _runtime(world: World, bin_dir: Path, infos: dict[str, PluginInfo], version: str) -> Runtime:
    for name in NEEDED:
        info = infos.get(name)
        if info is None or not info.supports(version):
            pytest.skip(f"not applicable: the chain needs {name} speaking {version}")
    return Runtime([bin_dir], world.node.name, world.tmp / "cache")


def _attachment(world: World, container_id: str) -> Attachment:
    mappings = [{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]
    return Attachment(
        container_id, world.new_pod().path, capability_args={"portMappings": mappings}
    )


def _add_outputs(runtime: Runtime) -> list[dict[str, Any]]:
    return [json.loads(o.stdout) for p, c, o in runtime.outcomes if c == "ADD"]


@pytest.mark.plugins("portmap")
def test_chain_add_del(
    cnf_world: World, bin_dir: Path, infos: dict[str, PluginInfo], plugin: PluginInfo, version: str
) -> None:
    runtime = _runtime(cnf_world, bin_dir, infos, version)
    att = _attachment(cnf_world, "cnf-chain")
    conflist = _conflist(cnf_world, version)
    runtime.add(conflist, att)
    bridge_out, portmap_out = _add_outputs(runtime)
    assert normalise(portmap_out) == normalise(bridge_out), "portmap altered prevResult"
    sent = runtime.outcomes[-1][2].stdin
    assert b"runtimeConfig" in sent and b"portMappings" in sent
    rules = "\n".join(cnf_world.node.nat_rules())
    assert str(HOST_PORT) in rules, f"no host-port rule after the list ADD:\n{rules}"
    runtime.delete(conflist, att)
    assert [p for p, c, _ in runtime.outcomes if c == "DEL"] == ["portmap", "bridge"]
    rules = "\n".join(cnf_world.node.nat_rules())
    assert "cnf-chain" not in rules, f"per-container rules left after DEL:\n{rules}"


@pytest.mark.plugins("portmap")
@pytest.mark.requires(has_check, "CHECK exists from 0.4.0")
def test_chain_check(
    cnf_world: World, bin_dir: Path, infos: dict[str, PluginInfo], plugin: PluginInfo, version: str
) -> None:
    runtime = _runtime(cnf_world, bin_dir, infos, version)
    att = _attachment(cnf_world, "cnf-chain")
    conflist = _conflist(cnf_world, version)
    runtime.add(conflist, att)
    try:
        runtime.check(conflist, att)
    finally:
        runtime.delete(conflist, att)


@pytest.mark.plugins("loopback")
def test_loopback_list(cnf_world: World, bin_dir: Path, plugin: PluginInfo, version: str) -> None:
    runtime = Runtime([bin_dir], cnf_world.node.name, cnf_world.tmp / "cache")
    conflist = {"cniVersion": version, "name": "cnf-lo", "plugins": [{"type": "loopback"}]}
    pod = cnf_world.new_pod()
    att = Attachment("cnf-lo", pod.path, ifname="lo")
    runtime.add(conflist, att)
    runtime.check(conflist, att)
    runtime.delete(conflist, att)


@pytest.mark.plugins("host-local")
@pytest.mark.requires(has_status_gc, "GC exists from 1.1.0")
def test_runtime_gc_releases_stale(
    cnf_world: World, bin_dir: Path, infos: dict[str, PluginInfo], plugin: PluginInfo, version: str
) -> None:
    runtime = _runtime(cnf_world, bin_dir, infos, version)
    conflist = _conflist(cnf_world, version)
    keep, stale = _attachment(cnf_world, "cnf-keep"), _attachment(cnf_world, "cnf-stale")
    runtime.add(conflist, keep)
    runtime.add(conflist, stale)
    runtime.gc(conflist, [keep])
    store = cnf_world.tmp / "ipam" / NETWORK_NAME
    owners = {
        p.read_bytes().split(b"\r\n")[0].decode() for p in store.iterdir() if p.name[0].isdigit()
    }
    assert owners == {"cnf-keep"}, f"reservations after GC: {owners}"
    runtime.delete(conflist, keep)
