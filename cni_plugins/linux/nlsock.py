"""The netlink transport: one socket (NETLINK_ROUTE unless told), requests with ACK, dumps, errors.

It uses ``_socket`` rather than ``socket`` on purpose: the public module drags in
``enum``, ``selectors`` and friends (4-10 ms per exec, measured with ``python -X
importtime``) for nothing we use.

A netlink socket stays bound to the network namespace it was created in, so
``NetlinkSocket(ns)`` enters ``ns`` only for the ``socket()`` call; every later
request acts inside ``ns`` while the calling thread is back home.

Errors are ``NetlinkError`` (an ``OSError`` with the kernel's errno and, when the
kernel gives one, its extended-ack text).  Callers tolerate races by class:

    NetlinkError(OSError)
    +-- NetlinkExistsError      EEXIST            (create raced, or the name is taken)
    +-- NetlinkNotFoundError    ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL

``map_netlink_errors`` turns them into CNI errors at a plugin's boundary.
"""

from __future__ import annotations

import _socket
import errno as _errno
import os

from cni_plugins.linux import nlmsg as m
from cni_plugins.spec import trace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType
    from typing import Self

    from cni_plugins.linux.netns import NetNS

_RECV_BUF = 1 << 18  # larger than any single rtnetlink reply we can get
_DUMP_RETRIES = 5

# --- errors -----------------------------------------------------------------------------------


class NetlinkError(OSError):
    """The kernel refused a request: ``errno`` is the reason, ``strerror`` names the request."""


class NetlinkExistsError(NetlinkError):
    """EEXIST: the link/address/route is already there (e.g. a create raced another)."""


class NetlinkNotFoundError(NetlinkError):
    """The object named in the request does not exist (ENODEV/ENOENT/ESRCH/EADDRNOTAVAIL)."""


_NOT_FOUND = frozenset((_errno.ENODEV, _errno.ENOENT, _errno.ESRCH, _errno.EADDRNOTAVAIL))


def _error(code: int, what: str, ext: str) -> NetlinkError:
    text = f"{what}: {os.strerror(code)}"
    if ext:
        text += f" ({ext})"
    if code == _errno.EEXIST:
        return NetlinkExistsError(code, text)
    if code in _NOT_FOUND:
        return NetlinkNotFoundError(code, text)
    return NetlinkError(code, text)


def map_netlink_errors(what: str) -> AbstractContextManager[None]:
    """Context manager: a ``NetlinkError`` inside becomes a CNI ``InternalError``
    (code 999, as the Go plugins report kernel failures) whose message starts with
    ``what``; the original stays as ``__cause__``."""
    return _MapErrors(what)


class _MapErrors:
    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(ev, NetlinkError):
            from cni_plugins.spec.errors import InternalError

            raise InternalError(f"{self._what}: {ev.strerror}") from ev


# --- the socket -------------------------------------------------------------------------------


class NetlinkSocket:
    """A netlink socket: NETLINK_ROUTE (the transport under ``RouteSocket``) or the
    ``protocol`` given (NETLINK_NETFILTER for ``nfprobe``).

    Without ``netns`` it works in the calling thread's namespace, with one in that
    namespace (entered only while the socket is created).  Use it as a context manager
    or call ``close``.  Not thread-safe; one per namespace per invocation.
    """

    __slots__ = ("_buf", "_seq", "_sock")

    def __init__(self, netns: NetNS | None = None, protocol: int = m.NETLINK_ROUTE) -> None:
        if netns is None:
            self._sock = _open_socket(protocol)
        else:
            with netns.entered():
                self._sock = _open_socket(protocol)
        self._seq = 0
        self._buf = bytearray(_RECV_BUF)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    # -- transport ------------------------------------------------------------------------------

    def _send(self, kind: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        self._sock.send(m.pack_msg(kind, flags, self._seq, payload))
        return self._seq

    def _recv(self) -> bytes:
        n = self._sock.recv_into(self._buf)
        return bytes(self._buf[:n])

    def request(self, kind: int, payload: bytes, *, flags: int = 0, what: str = "") -> list[bytes]:
        """Send one request with NLM_F_ACK and wait for the kernel's verdict.

        Returns the bodies of any replies that came before the ACK (a GET answers
        with one message).  Raises ``NetlinkError`` (``what`` names the request in
        the message) when the kernel refuses.
        """
        t = trace.now() if trace.ON else 0
        try:
            return self._request(kind, payload, flags, what)
        finally:
            if trace.ON:
                trace.span("netlink", t, what or f"request {kind}")

    def _request(self, kind: int, payload: bytes, flags: int, what: str) -> list[bytes]:
        seq = self._send(kind, flags | m.NLM_F_REQUEST | m.NLM_F_ACK, payload)
        out: list[bytes] = []
        while True:
            for rkind, rflags, rseq, body in m.iter_msgs(self._recv()):
                if rseq != seq:
                    continue  # a leftover from an earlier, abandoned request
                if rkind == m.NLMSG_ERROR:
                    code, ext = m.parse_error(rflags, body)
                    if code:
                        raise _error(code, what or f"netlink request {kind}", ext)
                    return out
                out.append(body)

    def batch(self, messages: list[tuple[int, int, bytes]]) -> list[tuple[int, str] | None]:
        """Send ``(type, flags, payload)`` messages in one datagram (a netfilter
        transaction) and collect the kernel's verdict on each.

        Returns, per message, ``(errno, extended ack)`` (errno 0: acknowledged) or
        None when no reply named it (no NLM_F_ACK asked, or the kernel stopped
        early).  The kernel handles a datagram inside our ``send()``, so every
        reply is already queued when it returns: they are read without waiting.
        """
        t = trace.now() if trace.ON else 0
        try:
            return self._batch(messages)
        finally:
            if trace.ON:
                trace.span("nf_tables batch", t, f"{len(messages)} messages")

    def _batch(self, messages: list[tuple[int, int, bytes]]) -> list[tuple[int, str] | None]:
        first = self._seq + 1
        self._seq += len(messages)
        self._sock.send(
            b"".join(
                m.pack_msg(kind, flags, first + i, payload)
                for i, (kind, flags, payload) in enumerate(messages)
            )
        )
        verdicts: list[tuple[int, str] | None] = [None] * len(messages)
        while True:
            try:
                n = self._sock.recv_into(self._buf, 0, _socket.MSG_DONTWAIT)
            except BlockingIOError:
                return verdicts
            for rkind, rflags, rseq, body in m.iter_msgs(bytes(self._buf[:n])):
                if rkind == m.NLMSG_ERROR and first <= rseq < first + len(messages):
                    verdicts[rseq - first] = m.parse_error(rflags, body)

    def dump(self, kind: int, payload: bytes, *, what: str = "") -> list[bytes]:
        """An NLM_F_DUMP request: the bodies of every reply up to NLMSG_DONE.

        A dump that the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed
        while being walked) is restarted, as iproute2 does.
        """
        t = trace.now() if trace.ON else 0
        try:
            return self._dump(kind, payload, what)
        finally:
            if trace.ON:
                trace.span("netlink", t, f"dump {what or kind}")

    def _dump(self, kind: int, payload: bytes, what: str) -> list[bytes]:
        for _ in range(_DUMP_RETRIES):
            seq = self._send(kind, m.NLM_F_REQUEST | m.NLM_F_DUMP, payload)
            out: list[bytes] = []
            interrupted = done = False
            while not done:
                for rkind, rflags, rseq, body in m.iter_msgs(self._recv()):
                    if rseq != seq:
                        continue
                    interrupted |= bool(rflags & m.NLM_F_DUMP_INTR)
                    if rkind in (m.NLMSG_DONE, m.NLMSG_ERROR):
                        code, ext = m.parse_error(rflags, body) if len(body) >= 4 else (0, "")
                        if code:
                            raise _error(code, what or f"netlink dump {kind}", ext)
                        done = True
                        break
                    out.append(body)
            if not interrupted:
                return out
        raise NetlinkError(_errno.EINTR, f"{what or 'netlink dump'}: kept being interrupted")


def _open_socket(protocol: int) -> _socket.socket:
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)
    try:
        # Errors then carry the kernel's own words and not a copy of our request.
        sock.setsockopt(m.SOL_NETLINK, m.NETLINK_EXT_ACK, 1)
        sock.setsockopt(m.SOL_NETLINK, m.NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock
