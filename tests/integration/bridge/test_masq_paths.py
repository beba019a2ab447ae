"""bridge's masquerade setup/teardown on their cheap paths (root, throwaway namespaces).

ADD and DEL ask the kernel (netlink, no exec) whether the attachment's chain and
the nft masquerade table exist, and list only POSTROUTING; these tests pin that
the outcome is the full ``iptables-save`` one: a re-ADD adds no second jump, DEL
removes everything of the attachment (a jump from an unexpected place too, the
legacy backend too), and nothing else moves.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cni_plugins.linux.ipmasq import chain_name
from tests.conftest import logging_tool_wrappers
from tests.integration.bridge.conftest import Node, net_conf

pytestmark = pytest.mark.privileged


def save(node: Node, family: int, tool: str = "iptables-save") -> list[str]:
    tool = tool if family == 4 else tool.replace("iptables", "ip6tables")
    return [ln for ln in node.sh(tool, "-t", "nat").splitlines() if ln[:1] in "-:"]


def restore(node: Node, text: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", node.name, "iptables-restore", "--noflush"],
        input=text,
        text=True,
        check=True,
    )


def filler(count: int) -> str:
    lines = ["*nat", ":CNIT-FILLER - [0:0]", "-A POSTROUTING -d 198.51.100.0/24 -j RETURN"]
    lines += [
        f"-A CNIT-FILLER -s 198.18.{i // 250}.{i % 250 + 1}/32 -j RETURN" for i in range(count)
    ]
    return "\n".join([*lines, "COMMIT", ""])


def test_del_removes_only_its_own_among_many_rules(
    node: Node, make_netns: Callable[[], str], tmp_path: Path
) -> None:
    """On the nf_tables backend the chain and its POSTROUTING jumps go in one
    netlink transaction: no iptables tool runs, and the result is the full way's."""
    wrappers, logged = logging_tool_wrappers(tmp_path)
    restore(node, filler(2000))
    conf = net_conf(node, v6=True, ipMasq=True)
    gone, stays = make_netns(), make_netns()
    node.add(conf, gone, cid="gone")
    node.add(conf, stays, cid="stays")
    before = {fam: save(node, fam) for fam in (4, 6)}
    chain = chain_name("cbr0", "gone")
    node.delete(conf, gone, cid="gone", env={"PATH": f"{wrappers}:/usr/sbin:/usr/bin:/sbin:/bin"})
    assert not logged.exists(), logged.read_text()
    for fam in (4, 6):
        assert save(node, fam) == [ln for ln in before[fam] if chain not in ln], fam
    node.delete(conf, gone, cid="gone")  # idempotent
    assert any(chain_name("cbr0", "stays") in ln for ln in save(node, 4))


def test_del_finds_a_jump_to_its_chain_anywhere(node: Node, make_netns: Callable[[], str]) -> None:
    conf = net_conf(node, ipMasq=True)
    pod = make_netns()
    node.add(conf, pod)
    chain = chain_name("cbr0", "pod1")
    # (not from OUTPUT: MASQUERADE is valid in POSTROUTING only)
    restore(
        node, f"*nat\n:CNIT-OTHER - [0:0]\n-A CNIT-OTHER -d 203.0.113.7/32 -j {chain}\nCOMMIT\n"
    )
    node.delete(conf, pod)
    assert not [ln for ln in save(node, 4) if chain in ln]


def test_iptables_del_keeps_the_nft_table_of_others(
    node: Node, make_netns: Callable[[], str]
) -> None:
    conf = net_conf(node, ipMasq=True)
    nft_conf = {**conf, "ipMasqBackend": "nftables"}
    node.add(nft_conf, make_netns(), cid="nftpod")
    ipt_pod = make_netns()
    node.add(conf, ipt_pod, cid="iptpod")
    table = node.sh("nft", "list", "table", "inet", "cni_plugins_masquerade")
    node.delete(conf, ipt_pod, cid="iptpod")
    assert node.sh("nft", "list", "table", "inet", "cni_plugins_masquerade") == table
    node.delete(conf, "", cid="nftpod")  # no backend configured: found in nft anyway
    assert "nftpod" not in node.sh("nft", "list", "table", "inet", "cni_plugins_masquerade")


@pytest.mark.skipif(shutil.which("xtables-legacy-multi") is None, reason="no legacy iptables")
def test_del_with_the_legacy_backend(
    node: Node, make_netns: Callable[[], str], tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy-bin"
    legacy.mkdir()
    for family in ("iptables", "ip6tables"):
        for tool in ("", "-restore", "-save"):
            (legacy / f"{family}{tool}").symlink_to("/usr/sbin/xtables-legacy-multi")
    env = {
        "PATH": f"{legacy}:/usr/sbin:/usr/bin:/sbin:/bin",
        "XTABLES_LOCKFILE": str(tmp_path / "xtables.lock"),
    }
    conf = net_conf(node, v6=True, ipMasq=True)
    chain = chain_name("cbr0", "pod1")
    pod = make_netns()
    node.add(conf, pod, env=env)
    for fam in (4, 6):
        assert [ln for ln in save(node, fam, "iptables-legacy-save") if chain in ln], fam
    node.delete(conf, pod, env=env)
    for fam in (4, 6):
        assert not [ln for ln in save(node, fam, "iptables-legacy-save") if chain in ln], fam


def test_setup_twice_keeps_one_jump_per_address(node: Node) -> None:
    """The second setup finds the chain (the kernel says so) and lists POSTROUTING."""
    code = (
        "from ipaddress import ip_interface as i\n"
        "from cni_plugins.linux import ipmasq\n"
        "a = [i('10.244.1.2/24'), i('fd00:10:244:1::2/64')]\n"
        "ipmasq.setup('iptables', a, 'cbr0', 'eth0', 'pod1')\n"
    )
    run = ["ip", "netns", "exec", node.name, sys.executable, "-c", code]
    repo = Path(__file__).resolve().parents[3]
    subprocess.run(run, check=True, cwd=repo)
    first = {fam: save(node, fam) for fam in (4, 6)}
    assert all(sum(ln.startswith("-A POSTROUTING") for ln in first[f]) == 1 for f in (4, 6))
    subprocess.run(run, check=True, cwd=repo)
    assert {fam: save(node, fam) for fam in (4, 6)} == first


def test_add_on_nf_tables_runs_no_iptables_tool(
    node: Node, make_netns: Callable[[], str], tmp_path: Path
) -> None:
    """ipMasq ADD on the nf_tables backend: the chain and the POSTROUTING jumps
    go in one netlink batch per family, exactly what the restore writes
    (tests/integration/linux/test_nfadd.py), with no iptables program, and
    DEL removes it all (a second setup: test_setup_twice_keeps_one_jump_per_address)."""
    wrappers, logged = logging_tool_wrappers(tmp_path)
    restore(node, filler(20))  # the nat tables of a node with kube-proxy
    subprocess.run(
        ["ip", "netns", "exec", node.name, "ip6tables-restore", "--noflush"],
        input="*nat\n-A POSTROUTING -d 2001:db8::/64 -j RETURN\nCOMMIT\n",
        text=True,
        check=True,
    )
    conf = net_conf(node, v6=True, ipMasq=True)
    pod = make_netns()
    env = {"PATH": f"{wrappers}:/usr/sbin:/usr/bin:/sbin:/bin"}
    node.add(conf, pod, cid="nl", env=env)
    assert not logged.exists(), logged.read_text()
    chain = chain_name("cbr0", "nl")
    first = {fam: save(node, fam) for fam in (4, 6)}
    for fam in (4, 6):
        mine = [ln for ln in first[fam] if chain in ln]
        assert len(mine) == 4, mine  # the chain, ACCEPT, MASQUERADE, the jump
    node.delete(conf, pod, cid="nl", env=env)
    assert not logged.exists(), logged.read_text()
    assert not [ln for fam in (4, 6) for ln in save(node, fam) if chain in ln]
