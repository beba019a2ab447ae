"""bench/bare.py finds our build's unpacked payload from a binary's trailer."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bare
from bench.proc import BASE_ENV

BUILD_ID = "ab" * 32


def _binary(path: Path, build_id: str = BUILD_ID, magic: bytes = b"CNIPYPL1") -> None:
    trailer = b"bridge".ljust(32, b"\0") + build_id.encode() + b"\0" * 24 + magic
    assert len(trailer) == 128
    path.write_bytes(b"\x7fELF payload" + trailer)


def test_build_id_from_the_trailer(tmp_path: Path) -> None:
    _binary(tmp_path / "bridge")
    assert bare.build_id(tmp_path / "bridge") == BUILD_ID
    _binary(tmp_path / "other", magic=b"NOTOURS!")
    assert bare.build_id(tmp_path / "other") is None
    assert bare.build_id(tmp_path / "missing") is None


def test_cache_entry_in_the_callers_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, cache = tmp_path / "bin", tmp_path / "cache"
    bin_dir.mkdir()
    _binary(bin_dir / "bridge")
    monkeypatch.setitem(BASE_ENV, "CNI_PLUGINS_CACHE_DIR", str(cache))
    assert bare.cache_entry(bin_dir) is None  # not unpacked anywhere
    internal = cache / BUILD_ID / "_internal"
    internal.mkdir(parents=True)
    (internal / "ld-linux-x86-64.so.2").write_bytes(b"")
    assert bare.cache_entry(bin_dir) == cache / BUILD_ID
    why = bare.bare_argv(bin_dir, tmp_path)
    assert why == (None, "no libpython in the payload")
