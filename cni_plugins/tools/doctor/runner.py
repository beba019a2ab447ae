"""Run the checks in an order where each repair is seen by the checks after it."""

from __future__ import annotations

from cni_plugins.tools.doctor import (
    bridge,
    chains,
    conf,
    evidence,
    flannel,
    leaks,
    logs,
    payloads,
    sysctls,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.tools.doctor.findings import Finding
    from cni_plugins.tools.doctor.node import Node


def run(node: Node) -> list[Finding]:
    found: list[Finding] = []
    found += conf.check(node)
    found += logs.check(node)
    found += payloads.check_skew(node)
    found += flannel.check(node)
    found += sysctls.check()
    dirs = node.ipam_data_dirs()
    # the stores and saved configs first, the evidence after (evidence.py says why)
    reservations = leaks.read_stores(dirs)
    saved = node.saved_flannel_configs()
    found += leaks.check(node, reservations, saved, evidence.gather(node))
    reservations = leaks.read_stores(dirs)
    found += leaks.check_ranges(node, reservations)
    found += bridge.check(node, reservations)

    def evidence_now() -> tuple[set[str], evidence.Evidence]:
        held = {r.container_id for r in leaks.read_stores(node.ipam_data_dirs())}
        held |= set(node.saved_flannel_configs())
        return held, evidence.gather(node)

    found += chains.check(node, evidence_now)
    found += chains.check_nft(node, evidence_now)
    found += payloads.check_cache(node)
    return found


def reclaim(node: Node) -> list[Finding]:
    """The safe reclaim alone (install-cni.sh's loop): leaks, then orphan chains."""
    dirs = node.ipam_data_dirs()
    reservations = leaks.read_stores(dirs)
    saved = node.saved_flannel_configs()
    found = leaks.check(node, reservations, saved, evidence.gather(node))

    def evidence_now() -> tuple[set[str], evidence.Evidence]:
        held = {r.container_id for r in leaks.read_stores(node.ipam_data_dirs())}
        held |= set(node.saved_flannel_configs())
        return held, evidence.gather(node)

    return found + chains.check(node, evidence_now) + chains.check_nft(node, evidence_now)
