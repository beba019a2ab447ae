"""Network namespace handles: open CNI_NETNS safely and run code inside it.

The namespace is held as an fd for the whole invocation, so a path reused by
another process mid-way cannot redirect us.  ``open_netns`` checks the fd really
is a network namespace (as Go's ``ns.GetNS`` does) and
refuses the plugin's own namespace: a stale ``/proc/<pid>/ns/net`` that now
names the host namespace must never be modified (plugins#714).

Entering is ``setns(2)`` on the calling thread; the plugins are single-threaded
and ``entered`` always switches back in ``finally``.
"""

from __future__ import annotations

import os

from cni_plugins.spec.errors import InvalidNetNS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from cni_plugins.spec.args import CmdArgs

CLONE_NEWNET = 0x40000000
_SELF_NETNS = "/proc/thread-self/ns/net"
_NS_GET_NSTYPE = 0xB703  # ioctl from linux/nsfs.h


_setns_impl: Callable[[int, int], None] | None = None


def _setns(fd: int) -> None:
    global _setns_impl
    if _setns_impl is None:
        _setns_impl = _find_setns()
    _setns_impl(fd, CLONE_NEWNET)


def _find_setns() -> Callable[[int, int], None]:
    """``setns(fd, nstype)`` raising OSError(errno) on failure: os.setns (Python
    >= 3.12), else the C extension the frozen bundle ships (build/ext; the
    bundle has no ctypes, whose import PyInstaller's bootstrap pays at every
    start), else ctypes (source-tree runs)."""
    found: Callable[[int, int], None] | None = getattr(os, "setns", None)
    if found is not None:
        return found
    try:
        import _cni_setns  # type: ignore[import-not-found]
    except ImportError:
        return _ctypes_setns
    found = _cni_setns.setns
    return found


def _ctypes_setns(fd: int, nstype: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class NetNS:
    """An open network namespace; closes its fd on ``close`` / context exit."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def __enter__(self) -> NetNS:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def entered(self) -> _Entered:
        """Context manager: the calling thread runs inside this namespace."""
        return _Entered(self.fd)


class _Entered:
    __slots__ = ("_ns_fd", "_orig")

    def __init__(self, ns_fd: int) -> None:
        self._ns_fd = ns_fd
        self._orig = -1

    def __enter__(self) -> None:
        self._orig = os.open(_SELF_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self._ns_fd)
        except BaseException:
            os.close(self._orig)
            raise

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            _setns(self._orig)
        finally:
            os.close(self._orig)


def open_netns(path: str, *, allow_own: bool = False) -> NetNS:
    """Open ``path`` as a network namespace other than our own.

    Raises ``InvalidNetNS`` (code 8) for a missing path, something that is not a
    namespace, or the plugin's own namespace.  DEL callers treat a missing path
    as "already gone" by catching ``NetNSNotFound``.  ``allow_own`` is the
    ``CNI_NETNS_OVERRIDE`` escape hatch of Go's skel.
    """
    if not path:
        raise InvalidNetNS("CNI_NETNS is empty")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NetNSNotFound(f"network namespace {path!r} does not exist") from exc
    except OSError as exc:
        raise InvalidNetNS(f"failed to open network namespace {path!r}: {exc.strerror}") from exc
    try:
        _check_is_other_netns(fd, path, allow_own)
    except BaseException:
        os.close(fd)
        raise
    return NetNS(path, fd)


def open_netns_of(args: CmdArgs) -> NetNS:
    """``CNI_NETNS`` of this invocation, honouring Go skel's ``CNI_NETNS_OVERRIDE``."""
    override = args.environ.get("CNI_NETNS_OVERRIDE", "").lower() in ("1", "true")
    return open_netns(args.netns, allow_own=override)


class NetNSNotFound(InvalidNetNS):
    """CNI_NETNS names nothing (any more): DEL treats this as success."""


def _check_is_other_netns(fd: int, path: str, allow_own: bool) -> None:
    # NS_GET_NSTYPE only answers on nsfs files, so it proves what Go's statfs
    # magic check proves, without ctypes.
    import errno
    import fcntl

    st = os.fstat(fd)
    own = os.stat(_SELF_NETNS)
    try:
        kind = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError as exc:
        # qemu-user (arm64 binaries emulated on amd64) does not forward this
        # ioctl: ENOSYS.  The kernel never answers it with ENOSYS.
        if exc.errno != errno.ENOSYS:
            raise InvalidNetNS(f"{path!r} is not a network namespace ({exc.strerror})") from exc
        found = _nstype_from_proc(fd, st, own)
        if found is None:
            raise InvalidNetNS(f"{path!r} is not a network namespace") from exc
        kind = found
    if kind != CLONE_NEWNET:
        raise InvalidNetNS(f"{path!r} is a namespace, but not a network namespace")
    if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino) and not allow_own:
        raise InvalidNetNS(
            f"{path!r} is the plugin's own network namespace; refusing to modify it"
            " (set CNI_NETNS_OVERRIDE=1 to allow)"
        )


def _nstype_from_proc(fd: int, st: os.stat_result, own: os.stat_result) -> int | None:
    """NS_GET_NSTYPE's answer without the ioctl: CLONE_NEWNET, another type
    (0), or None for a file that is not a namespace.  The kernel has a single
    nsfs superblock, so the device of our own netns file identifies nsfs (what
    fstatfs's NSFS_MAGIC proves); the type is in the name nsfs gives the inode,
    ``<type>:[<inode>]``: the fd's /proc link when it was opened through
    /proc/<pid>/ns, else the root of the bind mount it was opened through
    (/run/netns/<name>) in /proc/self/mountinfo."""
    if st.st_dev != own.st_dev:
        return None
    suffix = f":[{st.st_ino}]"
    try:
        names = [os.readlink(f"/proc/self/fd/{fd}")]
        with open("/proc/self/mountinfo") as mountinfo:
            names += [line.split()[3] for line in mountinfo if " - nsfs " in line]
    except (OSError, IndexError):
        return None
    for name in names:
        kind = name.removesuffix(suffix)
        if kind != name and kind.isalnum():
            return CLONE_NEWNET if kind == "net" else 0
    return None
