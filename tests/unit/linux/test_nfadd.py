"""linux.nfadd without the kernel: which backend the tool on PATH names, and
how rules compare (counters aside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cni_plugins.linux import nfadd, nfmsg, nfrule
from cni_plugins.linux import nlmsg as m


@pytest.mark.parametrize(
    ("target", "version", "expected"),
    [
        ("xtables-nft-multi", "1.8.9 (nf_tables)", "nft"),
        ("xtables-nft-multi", "1.8.7 (nf_tables)", "nft-other"),  # e.g. Debian 11's
        ("xtables-legacy-multi", "1.8.9 (legacy)", "legacy"),
        ("wrapper.sh", "", None),
    ],
)
def test_tool_backend_is_the_multicall_binary_behind_the_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, version: str, expected: str | None
) -> None:
    real = tmp_path / "real" / target
    real.parent.mkdir()
    real.write_text(f"#!/bin/sh\n# {version}\n")
    real.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ip6tables-restore").symlink_to(real)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert nfadd.tool_backend(6) == expected


def _dumped(encoded: nfrule.Encoded, packets: int) -> nfmsg.Rule:
    """``encoded`` as the kernel dumps it once ``packets`` went through."""
    exprs = b""
    for kind, elem in m.iter_attrs(encoded.exprs):
        fields = m.parse_attrs(elem)
        body = elem
        if m.get_str(fields[nfmsg.NFTA_EXPR_NAME]) == "counter":
            data = nfmsg.attr_be64(1, packets * 60) + nfmsg.attr_be64(2, packets)
            body = m.attr(nfmsg.NFTA_EXPR_NAME, fields[nfmsg.NFTA_EXPR_NAME]) + m.attr(2, data)
        exprs += m.attr(kind, body)
    return nfmsg.Rule("POSTROUTING", 9, nfmsg.parse_exprs(exprs))


def test_same_ignores_counters_only() -> None:
    rule = nfrule.encode(4, ["-s", "10.244.1.2/32", "-j", "CNI-abc"])
    other = nfrule.encode(4, ["-s", "10.244.1.3/32", "-j", "CNI-abc"])
    assert rule is not None and other is not None
    assert nfadd.same(_dumped(rule, 5), rule)
    assert not nfadd.same(_dumped(rule, 5), other)
