"""``linux.iptables.run_tools`` (added for portmap's parallel ``conntrack -D``)."""

from __future__ import annotations

import pytest

from cni_plugins.linux.iptables import ToolNotFound, run_tool, run_tools


def test_runs_all_and_keeps_order() -> None:
    results = run_tools([["cat"], ["sh", "-c", "echo err >&2; exit 3"], ["true"]], b"in")
    assert results == [(0, b"in", b""), (3, b"", b"err\n"), (0, b"", b"")]
    assert run_tools([]) == []


def test_single_tool_unchanged() -> None:
    assert run_tool(["cat"], b"x") == (0, b"x", b"")


def test_missing_tool_starts_nothing() -> None:
    with pytest.raises(ToolNotFound):
        run_tools([["true"], ["no-such-tool-for-cni-tests"]])
