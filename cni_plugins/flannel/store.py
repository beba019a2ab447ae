"""The saved delegate configs in ``dataDir``: one file per container ID.

DEL must replay exactly what ADD sent, even after flanneld changed the subnet
or the conflist changed, so ADD saves the rendered config before delegating.
Files are written to a temp name, fsync'd and renamed (a power cut leaves the
old file or the new one, never an empty one: cni-plugin#43), mode 0600 in a
0700 directory, and never through a symlink planted in the directory.  The
container ID was validated by skel (no ``/``, no leading dot), so the name
cannot leave ``dataDir``.
"""

from __future__ import annotations

import os

_MAX_BYTES = 1 << 20


class SavedConfigError(Exception):
    """A saved file exists but cannot be used (unreadable, a symlink, too large)."""


def _path(data_dir: str, container_id: str) -> str:
    if not container_id or "/" in container_id or container_id.startswith("."):
        raise ValueError(f"unsafe container ID {container_id!r}")
    return os.path.join(data_dir, container_id)


def save(data_dir: str, container_id: str, data: bytes) -> None:
    # Missing parents 0755 (not 0777 & ~umask: world-writable under umask 0).
    old_umask = os.umask(0o022)
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    finally:
        os.umask(old_umask)
    final = _path(data_dir, container_id)
    tmp = os.path.join(data_dir, f".{container_id}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
    except BaseException:
        _unlink(tmp)
        raise
    dir_fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(data_dir: str, container_id: str) -> bytes | None:
    """The saved bytes, ``None`` if there is no file."""
    path = _path(data_dir, container_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SavedConfigError(f"cannot read saved config {path}: {exc.strerror}") from exc
    try:
        data = os.read(fd, _MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_BYTES:
        raise SavedConfigError(f"saved config {path} is larger than {_MAX_BYTES} bytes")
    return data


def remove(data_dir: str, container_id: str) -> None:
    _unlink(_path(data_dir, container_id))


def container_ids(data_dir: str) -> list[str]:
    """Every container with a saved config (temp files excluded)."""
    try:
        names = os.listdir(data_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith("."))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
