"""The on-disk reservation store, byte-compatible with Go's ``backend/disk``.

Layout (a node can switch between the Go binary and ours with pods running)::

    <dataDir>/<network>/            0755
        lock                        flock(2) for every Get/Release/Find (go-filemutex)
        10.244.1.2                  "<containerID>\\r\\n<ifname>", created O_EXCL, 0600
        2001:db8::2                 IPv6 file names keep their ':'
        last_reserved_ip.0          round-robin cursor of range set 0

Beyond Go: every file operation is relative to a descriptor of the network
directory and refuses symlinks (O_NOFOLLOW), so nothing planted in the
directory redirects a write; the network directory itself must not be a
symlink either (Go follows one); reservation files are fsync'd, so a crash cannot
leave an empty file that neither implementation could attribute; FIFOs and
other non-regular entries are never read; only names that are an address in
canonical form count as reservations (Go also reads ``lock`` and the cursors).
"""

from __future__ import annotations

import fcntl
import os
import stat

from cni_plugins.spec.errors import InvalidConfig, IOFailure
from cni_plugins.spec.ip import ip_address

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

    from cni_plugins.ipam.host_local.store import Owner
    from cni_plugins.spec.ip import IPAddress

LOCK_FILE = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"
RESERVATION_MODE = 0o600  # current upstream; Go 1.1.1 wrote 0644
CURSOR_MODE = 0o644
DIR_MODE = 0o755
# A reservation is "<id>\r\n<ifname>": IDs are at most 255 bytes (spec utils).
_MAX_READ = 4096
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class DiskStore:
    """Reservations of one network under ``<data_dir>/<network>``; see ``store.Store``."""

    __slots__ = ("_dir_fd", "_lock_fd", "directory")

    def __init__(self, data_dir: str, network: str) -> None:
        # skel validated the name; the store still never builds a path outside
        # <dataDir>/<network>/ whatever it is handed.
        if network in ("", ".", "..") or "/" in network or "\0" in network:
            raise InvalidConfig(f"invalid network name {network!r} for a state directory")
        if not data_dir or "\0" in data_dir:
            raise InvalidConfig(f"invalid dataDir {data_dir!r}")
        self.directory = os.path.join(data_dir, network)
        self._dir_fd: int | None = None
        self._lock_fd: int | None = None

    def exists(self) -> bool:
        return os.path.isdir(self.directory)

    # -- locking -----------------------------------------------------------

    def locked(self) -> DiskStore:
        return self

    def __enter__(self) -> None:
        if self._dir_fd is not None:
            raise RuntimeError("DiskStore lock is not reentrant")
        try:
            # Missing parents get 0755 too, whatever the runtime's umask (makedirs
            # would make them 0777 & ~umask: world-writable under umask 0).
            old_umask = os.umask(0o022)
            try:
                os.makedirs(self.directory, DIR_MODE, exist_ok=True)
            finally:
                os.umask(old_umask)
            # O_NOFOLLOW: a symlink planted as <dataDir>/<network> is refused (ELOOP),
            # never followed; dataDir itself is the operator's choice and may be one.
            dir_fd = os.open(
                self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError as exc:
            raise _io("create state directory", self.directory, exc) from None
        try:
            lock_fd = os.open(
                LOCK_FILE,
                os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dir_fd,
            )
        except OSError as exc:
            os.close(dir_fd)
            raise _io("open lock", os.path.join(self.directory, LOCK_FILE), exc) from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        except OSError as exc:  # EINTR is retried by Python; anything else is fatal
            os.close(lock_fd)
            os.close(dir_fd)
            raise _io("lock", self.directory, exc) from None
        self._dir_fd, self._lock_fd = dir_fd, lock_fd

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        dir_fd, lock_fd = self._dir_fd, self._lock_fd
        self._dir_fd = self._lock_fd = None
        if lock_fd is not None:
            os.close(lock_fd)  # closing the last descriptor drops the flock
        if dir_fd is not None:
            os.close(dir_fd)

    def _fd(self) -> int:
        if self._dir_fd is None:
            raise RuntimeError("DiskStore used outside locked()")
        return self._dir_fd

    # -- reservations ------------------------------------------------------

    def reservations(self) -> dict[IPAddress, Owner | None]:
        dir_fd = self._fd()
        out: dict[IPAddress, Owner | None] = {}
        for entry in os.scandir(dir_fd):
            ip = reservation_ip(entry.name)
            if ip is not None and entry.is_file(follow_symlinks=False):
                out[ip] = parse_owner(_read(entry.name, dir_fd))
        return out

    def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_id: int) -> bool:
        dir_fd, name = self._fd(), str(ip)
        try:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                RESERVATION_MODE,
                dir_fd=dir_fd,
            )
        except FileExistsError:
            return False
        except OSError as exc:
            raise _io("reserve", self._path(name), exc) from None
        try:
            try:
                _write_all(fd, f"{container_id.strip()}{LINE_BREAK}{ifname}".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_cursor(range_id, name)
        except OSError as exc:
            _unlink(name, dir_fd)
            raise _io("reserve", self._path(name), exc) from None
        return True

    def release(self, ip: IPAddress) -> None:
        try:
            _unlink(str(ip), self._fd())
        except OSError as exc:
            raise _io("release", self._path(str(ip)), exc) from None

    def last_reserved_ip(self, range_id: int) -> IPAddress | None:
        text = _read(f"{LAST_RESERVED_PREFIX}{range_id}", self._fd())
        try:
            return ip_address(text.strip()) if text else None
        except ValueError:
            return None  # torn or foreign content: lose round robin once, as Go does

    def _write_cursor(self, range_id: int, value: str) -> None:
        # Not fsync'd: a lost cursor only restarts the round robin.
        fd = os.open(
            f"{LAST_RESERVED_PREFIX}{range_id}",
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            CURSOR_MODE,
            dir_fd=self._fd(),
        )
        try:
            _write_all(fd, value.encode())
        finally:
            os.close(fd)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)


def reservation_ip(name: str) -> IPAddress | None:
    """The address a file name reserves, if it is one in canonical form."""
    if not name[:1].isalnum() and name[:1] != ":":
        return None
    try:
        ip = ip_address(name)
    except ValueError:
        return None
    return ip if str(ip) == name else None


def parse_owner(content: str | None) -> Owner | None:
    """``"<id>\\r\\n<ifname>"`` -> (id, ifname); ``"<id>"`` (pre-ifname) -> (id, None);
    empty or unreadable -> None.  Surrounding whitespace is ignored, as in Go."""
    text = (content or "").strip()
    if not text:
        return None
    container_id, sep, ifname = text.partition(LINE_BREAK)
    return (container_id, ifname if sep else None)


def _read(name: str, dir_fd: int) -> str | None:
    """A small regular file's text, or None (missing, symlink, FIFO, unreadable)."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, _MAX_READ).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _io(what: str, path: str, exc: OSError) -> IOFailure:
    return IOFailure(f"host-local: failed to {what} {path}: {exc.strerror or exc}")
