"""The reservation store the allocator works against (typing only, never imported at run time).

Two implementations: ``disk_store.DiskStore`` (the Go-compatible on-disk format)
and ``tests/fakes/fake_store.FakeStore`` (memory).  The store only does I/O; who
owns what, round robin, rollback, GC policy are in ``allocator``, once.

Every method except ``exists`` and ``locked`` must be called inside ``locked()``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from cni_plugins.spec.ip import IPAddress

# Who holds a reservation: (containerID, ifname), or (containerID, None) for
# files written before host-local recorded the interface.
Owner = tuple[str, str | None]


class Store(Protocol):
    def exists(self) -> bool:
        """Whether the network's state directory exists (DEL/CHECK/GC never create it)."""
        ...

    def locked(self) -> AbstractContextManager[None]:
        """Exclusive access to the network's reservations, across processes."""
        ...

    def reservations(self) -> dict[IPAddress, Owner | None]:
        """Every reserved address; ``None`` when the owner cannot be read
        (an empty file left by a crash, an unreadable one)."""
        ...

    def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_id: int) -> bool:
        """Reserve ``ip`` unless taken (then False) and remember it as the
        round-robin cursor of range set ``range_id``."""
        ...

    def release(self, ip: IPAddress) -> None:
        """Drop the reservation of ``ip``; absent is fine."""
        ...

    def last_reserved_ip(self, range_id: int) -> IPAddress | None:
        """The round-robin cursor of range set ``range_id``, if readable."""
        ...
