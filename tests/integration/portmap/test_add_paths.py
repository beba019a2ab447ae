"""portmap ADD on the nf_tables backend: one netlink batch per family, no tool.

What the batch writes is pinned against iptables-nft's own output in
tests/integration/linux/test_nfadd.py; here the plugin as a runtime runs it:
no iptables program runs (PATH of logging wrappers), the trace shows the
batches, hostPort traffic works, and a DEL (which takes its own netlink way)
leaves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_plugins.spec.trace import parse_line
from tests.conftest import logging_tool_wrappers, run_plugin
from tests.integration.portmap.conftest import NODE_V4, NODE_V6, Pod, World
from tests.integration.portmap.test_del_paths import restore
from tests.integration.portmap.test_portmap import answers, leftovers, tcp_udp

pytestmark = pytest.mark.privileged


def node_has_nat_tables(world: World) -> None:
    """As on a node with kube-proxy: both nat tables exist in nf_tables.  (On a
    node without, a wrapper script does not say which backend the rules belong
    to, and the first ADD is left to the tool.)"""
    for family in (4, 6):
        restore(world, "*nat\n:CNIT-OTHER - [0:0]\n-A PREROUTING -j CNIT-OTHER\nCOMMIT\n", family)


def traced_add(world: World, pod: Pod, port: int, path: str) -> list[tuple[str, float, str]]:
    env = {
        "PATH": f"{path}:/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_CONTAINERID": pod.cid,
        "CNI_NETNS": pod.path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(world.node.plugin_dir),
        "CNI_PLUGINS_TRACE": "1",
    }
    conf = world.portmap_conf(pod, tcp_udp(port, 80))
    proc = run_plugin(world.portmap, "ADD", json.dumps(conf), env=env, netns_exec=world.node.name)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    parsed = [parse_line(ln) for ln in proc.stderr.decode().splitlines()]
    return [p for p in parsed if p is not None]


def test_add_on_nf_tables_runs_no_iptables_tool(world: World, tmp_path: Path) -> None:
    node_has_nat_tables(world)
    wrappers, logged = logging_tool_wrappers(tmp_path)
    pods = [world.add_pod(v6=True, listen=80), world.add_pod(v6=True, listen=80)]
    for i, pod in enumerate(pods):
        phases = traced_add(world, pod, 8090 + i, str(wrappers))
        assert not logged.exists(), logged.read_text()
        assert sum(p[0] == "nf_tables batch" for p in phases) == 2  # one per family
        assert not [p for p in phases if p[0] == "exec" and "iptables" in p[2]]
    for i, pod in enumerate(pods):
        for host in (NODE_V4, NODE_V6):
            got = answers(world, world.client, host, 8090 + i)
            assert got["tcp"] is not None and got["tcp"].startswith(pod.cid), (host, got)
            assert got["udp"] is not None and got["udp"].startswith(pod.cid), (host, got)
    for pod in pods:
        world.portmap_del(pod, None)
        assert leftovers(world, pod) == []


def test_first_add_on_a_fresh_node_with_iptables_nft(world: World, tmp_path: Path) -> None:
    """No nat table yet: the iptables-restore on PATH is xtables-nft-multi, so
    the rules go in over netlink, table and built-in chains included."""
    tools = tmp_path / "nft-bin"
    tools.mkdir()
    for family in ("iptables", "ip6tables"):
        for suffix in ("", "-restore", "-save"):
            (tools / f"{family}{suffix}").symlink_to("/usr/sbin/xtables-nft-multi")
    pod = world.add_pod(v6=True, listen=80)
    assert "table ip nat" not in world.nft_ruleset()
    phases = traced_add(world, pod, 8095, str(tools))
    assert sum(p[0] == "nf_tables batch" for p in phases) == 2
    assert not [p for p in phases if p[0] == "exec" and "iptables" in p[2]]
    got = answers(world, world.client, NODE_V4, 8095)
    assert got["tcp"] is not None and got["tcp"].startswith(pod.cid)
