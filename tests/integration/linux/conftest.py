"""Shared fixtures for the Linux integration tests: throwaway network namespaces.

Every namespace is named ``nlt-<random>`` and deleted in ``finally``, also when
the test fails.  Tests act only inside them; the root namespace is never touched.
pyroute2 is the independent oracle of kernel state (never used by the code under
test).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cni_plugins.linux.netns import NetNS, open_netns

NETNS_DIR = "/run/netns"


class TestNS:
    """A namespace created for one test: its name, path, open handle and oracle."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"{NETNS_DIR}/{name}"
        self.ns: NetNS = open_netns(self.path)
        self._oracle: Any = None

    def oracle(self) -> Any:
        """A pyroute2 IPRoute bound to this namespace (flags=0: never create one)."""
        if self._oracle is None:
            from pyroute2 import IPRoute

            self._oracle = IPRoute(netns=self.name, flags=0)
        return self._oracle

    def ip(self, *args: str) -> str:
        """Run ``ip -n <name> ...`` (another independent view of the namespace)."""
        return subprocess.run(
            ["ip", "-n", self.name, *args], check=True, capture_output=True, text=True
        ).stdout

    def close(self) -> None:
        if self._oracle is not None:
            self._oracle.close()
        self.ns.close()


@pytest.fixture
def make_netns() -> Iterator[Callable[[], TestNS]]:
    """Factory: each call creates a fresh ``nlt-*`` namespace, all removed at teardown."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    made: list[TestNS] = []
    names: list[str] = []

    def make() -> TestNS:
        name = f"nlt-{uuid.uuid4().hex[:10]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        names.append(name)
        t = TestNS(name)
        made.append(t)
        return t

    try:
        yield make
    finally:
        for t in made:
            t.close()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def netns(make_netns: Callable[[], TestNS]) -> TestNS:
    """One fresh namespace."""
    return make_netns()
