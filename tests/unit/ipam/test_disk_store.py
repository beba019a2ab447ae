"""DiskStore in a tmp dir: Go's file format byte for byte, modes, flock, symlink
and junk tolerance, release by id incl. pre-ifname files, GC bookkeeping."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cni_plugins.ipam.host_local import allocator
from cni_plugins.ipam.host_local.disk_store import DiskStore, parse_owner, reservation_ip
from cni_plugins.spec import ip as ipa
from cni_plugins.spec.errors import INVALID_CONFIG, CNIError


def ip(text: str) -> ipa.IPAddress:
    return ipa.ip_address(text)


@pytest.fixture
def store(tmp_path: Path) -> DiskStore:
    return DiskStore(str(tmp_path), "net1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_reserve_writes_go_format(store: DiskStore, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with store.locked():
            assert store.reserve(ip("10.0.0.2"), " ctr1 ", "eth0", 0)
            assert store.reserve(ip("2001:db8::2"), "ctr1", "eth0", 1)
            assert not store.reserve(ip("10.0.0.2"), "ctr2", "eth0", 0)
    finally:
        os.umask(old)
    d = tmp_path / "net1"
    assert mode(d) == 0o755
    assert (d / "10.0.0.2").read_bytes() == b"ctr1\r\neth0"
    assert (d / "2001:db8::2").read_bytes() == b"ctr1\r\neth0"
    assert mode(d / "10.0.0.2") == 0o600
    assert (d / "last_reserved_ip.0").read_bytes() == b"10.0.0.2"
    assert (d / "last_reserved_ip.1").read_bytes() == b"2001:db8::2"
    assert mode(d / "last_reserved_ip.0") == 0o644
    assert (d / "lock").exists()
    assert sorted(os.listdir(d)) == [
        "10.0.0.2",
        "2001:db8::2",
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
    ]


def test_reservations_and_cursor_read_back(store: DiskStore, tmp_path: Path) -> None:
    with store.locked():
        store.reserve(ip("10.0.0.2"), "a", "eth0", 0)
    d = tmp_path / "net1"
    (d / "10.0.0.3").write_bytes(b"legacy\n")  # pre-ifname format
    (d / "10.0.0.4").write_bytes(b"")  # crash of a writer without fsync
    (d / "10.0.0.5").write_bytes(b"\xff\xfe\r\neth0")  # junk does not crash
    (d / "010.0.0.6").write_bytes(b"a\r\neth0")  # not a canonical name: ignored
    (d / "notes.txt").write_bytes(b"a\r\neth0")
    (d / "10.0.0.7").mkdir()
    (d / "10.0.0.8").symlink_to("/etc/hostname")
    os.mkfifo(d / "10.0.0.9")
    with store.locked():
        held = store.reservations()
        assert store.last_reserved_ip(0) == ip("10.0.0.2")
        assert store.last_reserved_ip(7) is None
    assert held[ip("10.0.0.2")] == ("a", "eth0")
    assert held[ip("10.0.0.3")] == ("legacy", None)
    assert held[ip("10.0.0.4")] is None
    assert held[ip("10.0.0.5")] == ("\ufffd\ufffd", "eth0")
    # only regular files are reservations: the directory, symlink and FIFO are
    # skipped (and the FIFO is never opened, so nothing blocks)
    assert set(held) == {ip(f"10.0.0.{n}") for n in (2, 3, 4, 5)}


def test_garbage_cursor_is_ignored(store: DiskStore, tmp_path: Path) -> None:
    with store.locked():
        pass
    (tmp_path / "net1" / "last_reserved_ip.0").write_bytes(b"10.0.")
    with store.locked():
        assert store.last_reserved_ip(0) is None


def test_symlinks_are_never_followed_for_writes(store: DiskStore, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    d = tmp_path / "net1"
    d.mkdir()
    (d / "10.0.0.2").symlink_to(victim)
    (d / "last_reserved_ip.0").symlink_to(victim)
    with store.locked():
        assert not store.reserve(ip("10.0.0.2"), "a", "eth0", 0)  # O_EXCL: taken
        with pytest.raises(CNIError, match="failed to reserve"):
            store.reserve(ip("10.0.0.3"), "a", "eth0", 0)  # cursor is a symlink
        assert store.last_reserved_ip(0) is None
    assert victim.read_bytes() == b"precious"
    assert not (d / "10.0.0.3").exists()  # the failed reservation was undone


def test_release(store: DiskStore, tmp_path: Path) -> None:
    with store.locked():
        store.reserve(ip("10.0.0.2"), "a", "eth0", 0)
        store.release(ip("10.0.0.2"))
        store.release(ip("10.0.0.2"))  # absent is fine
    assert not (tmp_path / "net1" / "10.0.0.2").exists()


def test_release_by_id_incl_legacy_files(store: DiskStore, tmp_path: Path) -> None:
    with store.locked():
        store.reserve(ip("10.0.0.2"), "a", "eth0", 0)
        store.reserve(ip("10.0.0.3"), "a", "eth1", 0)
    d = tmp_path / "net1"
    (d / "10.0.0.4").write_bytes(b"a")
    assert allocator.release_by_id(store, "a", "eth0") == [ip("10.0.0.2")]
    assert allocator.release_by_id(store, "a", "eth0") == [ip("10.0.0.4")]
    assert sorted(os.listdir(d)) == ["10.0.0.3", "last_reserved_ip.0", "lock"]


def test_missing_state_dir_is_not_created_by_del_check_gc(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path / "absent"), "net1")
    assert allocator.release_by_id(store, "a", "eth0") == []
    assert allocator.collect_garbage(store, set()) == []
    assert allocator.full_range_sets(store, ()) == []
    assert not (tmp_path / "absent").exists()


def test_gc_keeps_lock_and_cursors(store: DiskStore, tmp_path: Path) -> None:
    with store.locked():
        store.reserve(ip("10.0.0.2"), "keep", "eth0", 0)
        store.reserve(ip("10.0.0.3"), "gone", "eth0", 0)
        store.reserve(ip("fd00::3"), "gone", "eth0", 1)
    d = tmp_path / "net1"
    (d / "10.0.0.4").write_bytes(b"legacy")
    (d / "10.0.0.5").write_bytes(b"")
    released = allocator.collect_garbage(store, {("keep", "eth0"), ("legacy", "eth9")})
    assert sorted(map(str, released)) == ["10.0.0.3", "10.0.0.5", "fd00::3"]
    assert sorted(os.listdir(d)) == [
        "10.0.0.2",
        "10.0.0.4",
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
    ]
    allocator.collect_garbage(store, set())
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


def test_lock_is_an_exclusive_flock_on_the_lock_file(store: DiskStore, tmp_path: Path) -> None:
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock = str(tmp_path / "net1" / "lock")

    def try_lock() -> int:
        return subprocess.run([sys.executable, "-c", probe, lock], check=False).returncode

    with store.locked():
        assert try_lock() == 3  # another process (Go or ours) must wait
        with pytest.raises(RuntimeError):
            store.locked().__enter__()
    assert try_lock() == 0
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit
    finally:
        os.close(fd)


def test_use_outside_lock_is_a_bug(store: DiskStore) -> None:
    with pytest.raises(RuntimeError):
        store.reservations()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x\0"])
def test_network_name_cannot_escape_data_dir(tmp_path: Path, name: str) -> None:
    with pytest.raises(CNIError) as info:
        DiskStore(str(tmp_path), name)
    assert info.value.code == INVALID_CONFIG


def test_unwritable_dir_is_io_failure(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = DiskStore(str(tmp_path / "file"), "net1")
    with pytest.raises(CNIError, match="failed to create state directory") as info, store.locked():
        pass
    assert info.value.code == 5


@pytest.mark.parametrize(
    ("content", "owner"),
    [
        ("a\r\neth0", ("a", "eth0")),
        ("  a\r\neth0\n", ("a", "eth0")),
        ("a", ("a", None)),
        ("a\r\n", ("a", None)),
        ("", None),
        ("\n \t", None),
        (None, None),
    ],
)
def test_parse_owner(content: str | None, owner: tuple[str, str | None] | None) -> None:
    assert parse_owner(content) == owner


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("fd00::1", "fd00::1"),
        ("FD00::1", None),
        ("lock", None),
        ("last_reserved_ip.0", None),
        ("10.0.0.01", None),
        (".hidden", None),
    ],
)
def test_reservation_ip(name: str, expected: str | None) -> None:
    got = reservation_ip(name)
    assert (str(got) if got else None) == expected
