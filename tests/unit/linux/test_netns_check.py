"""open_netns's namespace check where NS_GET_NSTYPE is missing (qemu-user
answers the ioctl with ENOSYS): the /proc fallback must accept exactly what the
ioctl accepts.  Real nsfs files of this process; only the ioctl is faked."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cni_plugins.linux import netns
from cni_plugins.spec.errors import InvalidNetNS

NS_TYPES = sorted(p.name for p in Path("/proc/self/ns").iterdir())


def _real_nstype(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return int(fcntl.ioctl(fd, netns._NS_GET_NSTYPE))
    finally:
        os.close(fd)


def _nstype_from_proc(path: str) -> int | None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return netns._nstype_from_proc(fd, os.fstat(fd), os.stat(netns._SELF_NETNS))
    finally:
        os.close(fd)


@pytest.fixture
def no_ioctl(monkeypatch: pytest.MonkeyPatch) -> None:
    def enosys(fd: int, request: int, *args: object) -> int:
        assert request == netns._NS_GET_NSTYPE
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "ioctl", enosys)


@pytest.mark.parametrize("name", NS_TYPES)
def test_fallback_agrees_with_the_ioctl(name: str) -> None:
    path = f"/proc/self/ns/{name}"
    want = _real_nstype(path) == netns.CLONE_NEWNET
    got = _nstype_from_proc(path)
    assert got is not None, f"{path}: an nsfs file not recognised"
    assert (got == netns.CLONE_NEWNET) == want


def test_fallback_knows_a_bind_mounted_netns(make_netns: Callable[[], str]) -> None:
    """/run/netns/<name> (how runtimes pass CNI_NETNS): its fd's /proc link is
    the path, so the type comes from the bind mount's root in mountinfo."""
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns add)")
    path = make_netns()
    assert _real_nstype(path) == netns.CLONE_NEWNET
    assert _nstype_from_proc(path) == netns.CLONE_NEWNET


def test_fallback_refuses_a_file_named_like_a_namespace(tmp_path: Path) -> None:
    plain = tmp_path / "x"
    plain.write_text("x")
    named = tmp_path / f"net:[{plain.stat().st_ino}]"
    plain.rename(named)
    assert _nstype_from_proc(str(named)) is None
    assert _nstype_from_proc(str(tmp_path)) is None


@pytest.mark.usefixtures("no_ioctl")
def test_without_the_ioctl_own_netns_is_still_refused() -> None:
    with pytest.raises(InvalidNetNS, match="own network namespace"):
        netns.open_netns("/proc/self/ns/net")
    with netns.open_netns("/proc/self/ns/net", allow_own=True) as ns:
        assert ns.fd >= 0


@pytest.mark.usefixtures("no_ioctl")
def test_without_the_ioctl_a_bind_mounted_netns_opens(make_netns: Callable[[], str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns add)")
    with netns.open_netns(make_netns()) as ns:
        assert ns.fd >= 0


@pytest.mark.usefixtures("no_ioctl")
def test_without_the_ioctl_other_namespaces_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidNetNS, match="a namespace, but not a network namespace"):
        netns.open_netns("/proc/self/ns/uts")
    bogus = tmp_path / "file"
    bogus.write_text("x")
    with pytest.raises(InvalidNetNS, match="is not a network namespace"):
        netns.open_netns(str(bogus))


def test_other_ioctl_errors_are_not_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def enotty(fd: int, request: int, *args: object) -> int:
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    monkeypatch.setattr(fcntl, "ioctl", enotty)
    with pytest.raises(InvalidNetNS, match="Inappropriate ioctl"):
        netns.open_netns("/proc/self/ns/net", allow_own=True)
