"""An in-memory ``Store`` for allocator tests (Go's backend/testing/fake_store.go).

It enforces what the disk store only assumes: every data operation happens
inside ``locked()``.  ``fail_reserve_at`` makes the n-th reserve raise, to test
rollback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cni_plugins.spec.errors import IOFailure

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from cni_plugins.ipam.host_local.store import Owner, Store
    from cni_plugins.spec.ip import IPAddress

from contextlib import contextmanager


class FakeStore:
    def __init__(
        self,
        reservations: dict[IPAddress, Owner | None] | None = None,
        last: dict[int, IPAddress] | None = None,
        *,
        exists: bool = True,
    ) -> None:
        self.held: dict[IPAddress, Owner | None] = dict(reservations or {})
        self.last: dict[int, IPAddress] = dict(last or {})
        self.present = exists
        self.is_locked = False
        self.lock_count = 0
        self.fail_reserve_at: int | None = None
        self.reserve_calls = 0

    def exists(self) -> bool:
        return self.present

    def locked(self) -> AbstractContextManager[None]:
        return self._locked()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert not self.is_locked, "lock is not reentrant"
        self.is_locked = True
        self.present = True
        self.lock_count += 1
        try:
            yield
        finally:
            self.is_locked = False

    def reservations(self) -> dict[IPAddress, Owner | None]:
        assert self.is_locked
        return dict(self.held)

    def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_id: int) -> bool:
        assert self.is_locked
        self.reserve_calls += 1
        if self.fail_reserve_at == self.reserve_calls:
            raise IOFailure("injected reserve failure")
        if ip in self.held:
            return False
        self.held[ip] = (container_id.strip(), ifname)
        self.last[range_id] = ip
        return True

    def release(self, ip: IPAddress) -> None:
        assert self.is_locked
        self.held.pop(ip, None)

    def last_reserved_ip(self, range_id: int) -> IPAddress | None:
        assert self.is_locked
        return self.last.get(range_id)


def _conforms(store: FakeStore) -> Store:
    return store  # mypy checks FakeStore against the Store protocol here
