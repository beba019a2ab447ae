"""``linux.nfprobe`` against the kernel, inside throwaway namespaces (root only).

The tools (``iptables-restore``, ``nft``, ``iptables-legacy``) run under ``ip
netns exec`` as the independent side that creates state; the probe must see
exactly that state, and answer "unknown" once the legacy backend has a table.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from cni_plugins.linux import nfprobe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tests.integration.linux.conftest import TestNS

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces"),
]


def _in(t: TestNS, *argv: str, stdin: str = "") -> None:
    subprocess.run(["ip", "netns", "exec", t.name, *argv], input=stdin, text=True, check=True)


def test_chains_and_tables_as_the_tools_made_them(netns: TestNS) -> None:
    with netns.ns.entered():
        assert nfprobe.iptables_chains(4, "nat", ["CNI-DN-x"]) == set()
        assert nfprobe.nft_table_exists("ip", "cni_hostport") is False
    _in(netns, "iptables-restore", "--noflush", stdin="*nat\n:CNI-DN-x - [0:0]\nCOMMIT\n")
    _in(netns, "nft", "add table ip6 cni_hostport")
    with netns.ns.entered():
        assert nfprobe.iptables_chains(4, "nat", ["CNI-DN-x", "CNI-SN-x"]) == {"CNI-DN-x"}
        assert nfprobe.iptables_chains(6, "nat", ["CNI-DN-x"]) == set()
        assert nfprobe.iptables_chains(4, "filter", ["CNI-DN-x"]) == set()
        assert nfprobe.nft_table_exists("ip6", "cni_hostport") is True
        assert nfprobe.nft_table_exists("ip", "cni_hostport") is False
        assert nfprobe.nft_table_exists("inet", "cni_hostport") is False


@pytest.mark.skipif(shutil.which("iptables-legacy") is None, reason="no iptables-legacy")
def test_a_legacy_table_makes_the_answer_unknown(netns: TestNS) -> None:
    _in(netns, "iptables-legacy", "-t", "nat", "-N", "CNI-DN-y")
    with netns.ns.entered():
        assert nfprobe.iptables_chains(4, "nat", ["CNI-DN-y"]) is None
        assert nfprobe.iptables_chains(6, "nat", ["CNI-DN-y"]) == set()
