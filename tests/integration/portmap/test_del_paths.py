"""portmap DEL's cheap paths against the kernel: what it may skip, it must not miss.

DEL asks the kernel (netlink, no exec) which of the container's chains and nft
tables exist and lists only the chains it touches; these tests pin that the
result is the one of a full ``iptables-save``: everything of the container goes
(also a jump to its chain from an unexpected place, also the legacy backend, also
the other backend), nothing else moves.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cni_plugins.portmap.chains import dnat_chain_name
from tests.conftest import logging_tool_wrappers, run_plugin
from tests.integration.portmap.conftest import NODE_V4, World
from tests.integration.portmap.test_portmap import answers, leftovers, tcp_udp

pytestmark = pytest.mark.privileged

FILLER = 2000


def filler(count: int) -> str:
    lines = ["*nat", ":CNIT-FILLER - [0:0]"]
    for i in range(count):
        a, b = divmod(i, 250)
        lines.append(
            f"-A CNIT-FILLER -s 198.18.{a}.{b + 1}/32 -p tcp -m tcp --dport {10000 + i} -j RETURN"
        )
    return "\n".join([*lines, "COMMIT", ""])


def save(world: World, family: int) -> list[str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    return [ln for ln in world.node.sh(tool, "-t", "nat").splitlines() if ln[:1] in "-:"]


def restore(world: World, text: str, family: int = 4) -> None:
    tool = "iptables-restore" if family == 4 else "ip6tables-restore"
    subprocess.run(
        ["ip", "netns", "exec", world.node.name, tool, "--noflush"],
        input=text,
        text=True,
        check=True,
    )


def test_del_with_many_unrelated_rules_removes_only_its_own(world: World) -> None:
    restore(world, filler(FILLER))
    restore(world, "*nat\n:CNIT-OTHER - [0:0]\n-A PREROUTING -j CNIT-OTHER\nCOMMIT\n", 6)
    gone, stays = world.add_pod(v6=True, listen=80), world.add_pod(listen=80)
    world.portmap_add(gone, tcp_udp(8081, 80))
    world.portmap_add(stays, tcp_udp(8082, 80))
    before = {fam: save(world, fam) for fam in (4, 6)}
    chain = dnat_chain_name("cbr0", gone.cid)

    world.portmap_del(gone, None)

    for fam in (4, 6):
        after = save(world, fam)
        assert after == [ln for ln in before[fam] if chain not in ln], fam
    assert sum(1 for ln in save(world, 4) if ln.startswith("-A CNIT-FILLER")) == FILLER
    assert leftovers(world, gone) == []
    got = answers(world, world.client, NODE_V4, 8082)
    assert got["tcp"] is not None and got["tcp"].startswith(stays.cid)
    world.portmap_del(gone, None)  # idempotent
    world.portmap_del(stays, None)
    assert leftovers(world, stays) == []
    assert sum(1 for ln in save(world, 4) if ln.startswith("-A CNIT-FILLER")) == FILLER


def test_del_finds_a_jump_to_its_chain_anywhere(world: World) -> None:
    """The entry chain is where the jumps live, but one elsewhere (an operator's,
    another tool's) must not leave the chain behind or fail DEL."""
    pod = world.add_pod()
    world.portmap_add(pod, tcp_udp(8083, 80))
    chain = dnat_chain_name("cbr0", pod.cid)
    restore(world, f"*nat\n-A OUTPUT -p tcp --dport 9999 -j {chain}\nCOMMIT\n")
    world.portmap_del(pod, None)
    assert leftovers(world, pod) == []


def test_del_with_the_other_backend_present(world: World) -> None:
    """An iptables pod's DEL keeps another pod's nftables rules; the nftables
    pod's DEL (with no backend configured) still removes its nft rules."""
    nft_pod, ipt_pod = world.add_pod(v6=True), world.add_pod()
    world.portmap_add(nft_pod, tcp_udp(8084, 80), backend="nftables")
    world.portmap_add(ipt_pod, tcp_udp(8085, 80))

    def hostport_tables() -> str:
        return "".join(
            world.node.sh("nft", "list", "table", f, "cni_hostport") for f in ("ip", "ip6")
        )

    tables = hostport_tables()
    assert f'"{nft_pod.cid}"' in tables
    world.portmap_del(ipt_pod, None)
    assert leftovers(world, ipt_pod) == []
    assert hostport_tables() == tables
    world.portmap_del(nft_pod, None)
    assert leftovers(world, nft_pod) == []
    assert "cni_hostport" in hostport_tables()  # the tables stay, as the reference's


@pytest.mark.skipif(shutil.which("xtables-legacy-multi") is None, reason="no legacy iptables")
def test_del_with_the_legacy_backend(world: World, tmp_path: Path) -> None:
    """iptables-legacy is invisible to netlink: DEL must still find the chain."""
    legacy = tmp_path / "legacy-bin"
    legacy.mkdir()
    for family in ("iptables", "ip6tables"):
        for tool in ("", "-restore", "-save"):
            (legacy / f"{family}{tool}").symlink_to("/usr/sbin/xtables-legacy-multi")
    pod = world.add_pod(v6=True)
    env = {
        "PATH": f"{legacy}:/usr/sbin:/usr/bin:/sbin:/bin",
        "XTABLES_LOCKFILE": str(tmp_path / "xtables.lock"),
        "CNI_CONTAINERID": pod.cid,
        "CNI_NETNS": pod.path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(world.node.plugin_dir),
    }
    chain = dnat_chain_name("cbr0", pod.cid)

    def legacy_nat(family: int) -> list[str]:
        tool = "iptables-legacy-save" if family == 4 else "ip6tables-legacy-save"
        return [ln for ln in world.node.sh(tool, "-t", "nat").splitlines() if chain in ln]

    for command in ("ADD", "DEL", "DEL"):
        conf = world.portmap_conf(pod, tcp_udp(8086, 80) if command == "ADD" else None)
        proc = run_plugin(
            world.portmap, command, json.dumps(conf), env=env, netns_exec=world.node.name
        )
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        if command == "ADD":
            assert legacy_nat(4) and legacy_nat(6)
    assert legacy_nat(4) == [] and legacy_nat(6) == []


def test_del_flushes_udp_conntrack_when_the_entry_rule_is_lost(world: World) -> None:
    """Two first ADDs at once may both declare CNI-HOSTPORT-DNAT, and the later
    restore empties it (the reliability run saw this): DEL still knows the UDP
    host ports from the container's own chain and flushes their entries."""
    pod = world.add_pod(listen=80)
    world.portmap_add(pod, [{"hostPort": 5354, "containerPort": 80, "protocol": "udp"}])
    restore(world, "*nat\n-F CNI-HOSTPORT-DNAT\nCOMMIT\n")
    assert world.ask(world.client, "udp", NODE_V4, 5354, sport=40003) is None
    assert "dport=5354" in world.node.sh("conntrack", "-L", "-p", "udp")
    world.portmap_del(pod, None)
    assert leftovers(world, pod) == []
    assert "dport=5354" not in world.node.sh("conntrack", "-L", "-p", "udp")


def test_del_on_nf_tables_runs_no_iptables_tool(world: World, tmp_path: Path) -> None:
    """With the nf_tables backend DEL removes the chain in one netlink
    transaction: no iptables tool runs (each would read the whole table), the
    UDP ports still come from the chain, and the result is the full way's."""
    restore(world, filler(200))
    wrappers, logged = logging_tool_wrappers(tmp_path)
    pod, other = world.add_pod(v6=True, listen=80), world.add_pod(listen=80)
    world.portmap_add(pod, tcp_udp(8087, 80))
    world.portmap_add(other, tcp_udp(8088, 80))
    assert world.ask(world.client, "udp", NODE_V4, 8087, sport=40004) is not None
    assert "dport=8087" in world.node.sh("conntrack", "-L", "-p", "udp")
    before = {fam: save(world, fam) for fam in (4, 6)}
    chain = dnat_chain_name("cbr0", pod.cid)
    env = {
        "PATH": f"{wrappers}:/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_CONTAINERID": pod.cid,
        "CNI_NETNS": pod.path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(world.node.plugin_dir),
    }
    conf = world.portmap_conf(pod, None)
    proc = run_plugin(world.portmap, "DEL", json.dumps(conf), env=env, netns_exec=world.node.name)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)

    assert not logged.exists(), logged.read_text()
    for fam in (4, 6):
        assert save(world, fam) == [ln for ln in before[fam] if chain not in ln], fam
    assert leftovers(world, pod) == []
    assert "dport=8087" not in world.node.sh("conntrack", "-L", "-p", "udp")
    got = answers(world, world.client, NODE_V4, 8088)
    assert got["tcp"] is not None and got["tcp"].startswith(other.cid)
