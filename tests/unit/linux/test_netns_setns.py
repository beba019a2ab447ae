"""Which setns(2) netns.py uses: os.setns, else the bundle's C extension, else ctypes."""

from __future__ import annotations

import errno
import os
import sys
import types

import pytest

from cni_plugins.linux import netns


def _fake_setns(fd: int, nstype: int) -> None:
    raise AssertionError("not to be called")


def test_os_setns_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "setns", _fake_setns, raising=False)
    monkeypatch.setitem(sys.modules, "_cni_setns", types.ModuleType("_cni_setns"))
    assert netns._find_setns() is _fake_setns


def test_then_the_bundled_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "setns", raising=False)
    ext = types.ModuleType("_cni_setns")
    ext.setns = _fake_setns  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_cni_setns", ext)
    assert netns._find_setns() is _fake_setns


def test_then_ctypes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "setns", raising=False)
    monkeypatch.setitem(sys.modules, "_cni_setns", None)  # import raises ImportError
    assert netns._find_setns() is netns._ctypes_setns


def test_ctypes_setns_raises_oserror_with_the_errno() -> None:
    with pytest.raises(OSError) as info:
        netns._ctypes_setns(-1, netns.CLONE_NEWNET)
    assert info.value.errno == errno.EBADF
    assert info.value.strerror == os.strerror(errno.EBADF)
