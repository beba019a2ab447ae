"""``linux.nfprobe`` without a kernel: request bytes, and every doubt is "unknown"."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.linux import nfmsg, nfprobe
from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.nlsock import NetlinkError, NetlinkNotFoundError


class FakeSocket:
    """Answers GETCHAIN requests from a set of existing chains, or with ``error``."""

    def __init__(self, chains: set[str], error: OSError | None = None) -> None:
        self.chains = chains
        self.error = error
        self.requests: list[tuple[int, bytes]] = []

    def close(self) -> None:
        return None

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def request(self, kind: int, body: bytes, **_kw: Any) -> list[bytes]:
        self.requests.append((kind, body))
        if self.error is not None:
            raise self.error
        name = dict(m.iter_attrs(body, 4)).get(nfmsg.NFTA_CHAIN_NAME, b"").rstrip(b"\0")
        if name.decode() not in self.chains:
            raise NetlinkNotFoundError(errno.ENOENT, "nf_tables lookup: No such file")
        return [b""]


@pytest.fixture
def no_legacy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    names = tmp_path / "ip_tables_names"
    monkeypatch.setattr(nfprobe, "_LEGACY_NAMES", {4: str(names), 6: str(names)})
    return names


def _use(monkeypatch: pytest.MonkeyPatch, sock: FakeSocket) -> None:
    monkeypatch.setattr(nfprobe, "NetlinkSocket", lambda **_kw: sock)


def test_chains_found_and_missing(monkeypatch: pytest.MonkeyPatch, no_legacy: Path) -> None:
    sock = FakeSocket({"CNI-DN-a"})
    _use(monkeypatch, sock)
    assert nfprobe.iptables_chains(4, "nat", ["CNI-DN-a", "CNI-SN-a"]) == {"CNI-DN-a"}
    assert [k for k, _b in sock.requests] == [(10 << 8) | nfmsg.NFT_MSG_GETCHAIN] * 2


def test_legacy_table_present_is_unknown(monkeypatch: pytest.MonkeyPatch, no_legacy: Path) -> None:
    no_legacy.write_text("filter\nnat\n")
    sock = FakeSocket(set())
    _use(monkeypatch, sock)
    assert nfprobe.iptables_chains(4, "nat", ["CNI-DN-a"]) is None
    assert sock.requests == []  # not even asked
    no_legacy.write_text("filter\n")
    assert nfprobe.iptables_chains(4, "nat", ["CNI-DN-a"]) == set()


@pytest.mark.parametrize(
    "error",
    [
        NetlinkError(errno.EPERM, "nope"),
        NetlinkNotFoundError(errno.ENODEV, "not ENOENT"),
        OSError(errno.EPROTONOSUPPORT, "no nfnetlink"),
    ],
)
def test_doubt_is_unknown(monkeypatch: pytest.MonkeyPatch, no_legacy: Path, error: OSError) -> None:
    _use(monkeypatch, FakeSocket(set(), error))
    assert nfprobe.iptables_chains(6, "nat", ["CNI-DN-a"]) is None
    assert nfprobe.nft_table_exists("ip", "cni_hostport") is None


def test_unreadable_legacy_list_is_unknown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(nfprobe, "_LEGACY_NAMES", {4: str(tmp_path), 6: str(tmp_path)})
    _use(monkeypatch, FakeSocket(set()))
    assert nfprobe.iptables_chains(4, "nat", ["CNI-DN-a"]) is None
