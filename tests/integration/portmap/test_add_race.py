"""portmap ADD racing another pod's first ADD on a fresh node (root, throwaway namespaces).

Both read the nat table before either wrote it, so both see no shared chains.
Declaring them in the restore (``:CNI-HOSTPORT-DNAT - [0:0]``) emptied the one
the other ADD had just filled: its pod lost its entry rules, silently.  The race
is made deterministic here with an ``iptables-save`` that reports the stale view.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import run_plugin
from tests.integration.portmap.conftest import World
from tests.integration.portmap.test_portmap import tcp_udp

pytestmark = pytest.mark.privileged


def entry_rules(world: World) -> list[str]:
    out = world.node.sh("iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT")
    return [ln for ln in out.splitlines() if ln.startswith("-A")]


def test_add_seeing_a_stale_table_keeps_the_other_pods_rules(world: World, tmp_path: Path) -> None:
    first, second = world.add_pod(), world.add_pod()
    world.portmap_add(first, tcp_udp(8087, 80))
    assert len(entry_rules(world)) == 2
    stale = tmp_path / "stale-bin"
    stale.mkdir()
    (stale / "iptables-save").write_text("#!/bin/sh\nprintf '*nat\\nCOMMIT\\n'\n")
    (stale / "iptables-save").chmod(0o755)
    env = {
        "PATH": f"{stale}:/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_CONTAINERID": second.cid,
        "CNI_NETNS": second.path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(world.node.plugin_dir),
    }
    # An interface condition is not encoded for netlink (linux.nfrule): this
    # ADD takes the iptables-restore way, whose race this pins.
    conf = world.portmap_conf(second, tcp_udp(8088, 80), conditionsV4=["!", "-i", "cnit0"])
    proc = run_plugin(world.portmap, "ADD", json.dumps(conf), env=env, netns_exec=world.node.name)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    rules = entry_rules(world)
    assert len(rules) == 4 and sum(first.cid in r for r in rules) == 2, rules
    assert sum("! -i cnit0" in r for r in rules) == 2, rules


def test_concurrent_first_adds_all_keep_their_rules(world: World) -> None:
    pods = [world.add_pod() for _ in range(4)]
    with ThreadPoolExecutor(len(pods)) as pool:
        list(pool.map(lambda p: world.portmap_add(p[1], tcp_udp(8090 + p[0], 80)), enumerate(pods)))
    rules = entry_rules(world)
    assert all(sum(p.cid in r for r in rules) == 2 for p in pods), rules
