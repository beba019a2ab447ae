"""host-local policy: round-robin allocation, release, CHECK, GC and STATUS over a ``Store``.

Pure: all I/O goes through the store, so the tests drive it with an in-memory
fake.  Each entry point holds the store lock for its whole run (Go locks once
per range set), so an ADD over several range sets is atomic towards other
invocations and its rollback cannot race them.

Allocation follows Go's ``allocator.go``: for range set *i*, a requested
address is reserved exactly; otherwise the search starts after
``last_reserved_ip.<i>`` and walks every range of the set once, wrapping, so a
crash-looping container does not get the same address back until the whole set
has been used.  Differences: the duplicate check also applies to requested
addresses, the network and IPv4 broadcast addresses are skipped, a full set is
recognised by counting instead of by trying every address, and a failure
releases exactly the addresses this invocation reserved (Go releases everything
the container holds).

Codes (Go answers 999 for all of them):

* no free address: 11 (TryAgainLater).  Addresses come back as pods are deleted
  or GC runs, and runtimes retry sandbox creation; STATUS meanwhile reports 50.
* a requested address held by someone else: 11 as well, for the same reason.
* a requested address that is the gateway or outside every range, or requested
  addresses left over: 7 (the request contradicts the config).
* duplicate ADD for one (container, ifname): 999 as in Go.  It is a runtime
  bug (SPEC.md: no second ADD without DEL); no spec code describes it.
* CHECK without a reservation: 3 (UnknownContainer): host-local knows no such
  container and has nothing to clean up.  Reservations that disagree with
  prevResult: 999, a state inconsistency no spec code describes.
"""

from __future__ import annotations

from cni_plugins.spec.errors import (
    CNIError,
    InternalError,
    InvalidConfig,
    IOFailure,
    PluginNotAvailable,
    TryAgainLater,
    UnknownContainer,
)
from cni_plugins.spec.ip import IPAddress, IPInterface
from cni_plugins.spec.types import IPConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from cni_plugins.ipam.host_local.config import Range, RangeSet
    from cni_plugins.ipam.host_local.store import Owner, Store
    from cni_plugins.spec.types import Result


def allocate(
    store: Store,
    range_sets: tuple[RangeSet, ...],
    container_id: str,
    ifname: str,
    requested: tuple[IPAddress, ...] = (),
) -> list[IPConfig]:
    """One address per range set, or nothing at all."""
    wanted_per_set = assign_requests(range_sets, requested)  # before touching the disk
    with store.locked():
        held = store.reservations()
        mine: list[IPAddress] = []
        try:
            ips: list[IPConfig] = []
            for index, (range_set, wanted) in enumerate(
                zip(range_sets, wanted_per_set, strict=True)
            ):
                try:
                    ip_conf = _allocate_one(
                        store,
                        index=index,
                        range_set=range_set,
                        owner=(container_id, ifname),
                        wanted=wanted,
                        held=held,
                    )
                except CNIError as exc:
                    exc.msg = f"failed to allocate for range {index}: {exc.msg}"
                    raise
                mine.append(ip_conf.address.ip)
                held[ip_conf.address.ip] = (container_id, ifname)
                ips.append(ip_conf)
        except BaseException:
            for ip in mine:
                store.release(ip)
            raise
    return ips


def assign_requests(
    range_sets: tuple[RangeSet, ...], requested: tuple[IPAddress, ...]
) -> list[IPAddress | None]:
    """The requested address for each range set (the first one it contains), and
    the checks that need no state, so a bad request fails with nothing written."""
    pending = list(requested)
    out: list[IPAddress | None] = []
    for index, range_set in enumerate(range_sets):
        wanted = next((ip for ip in pending if ip in range_set), None)
        out.append(wanted)
        if wanted is None:
            continue
        pending.remove(wanted)
        rng = range_set.range_for(wanted)
        assert rng is not None  # picked because the set contains it
        problem = ""
        if wanted == rng.gateway:
            problem = f"requested ip {wanted} is subnet's gateway"
        elif not rng.usable(wanted):
            problem = f"requested ip {wanted} is not a host address of {rng.subnet}"
        if problem:
            raise InvalidConfig(f"failed to allocate for range {index}: {problem}")
    if pending:
        raise InvalidConfig("failed to allocate all requested IPs: " + " ".join(map(str, pending)))
    return out


def _allocate_one(
    store: Store,
    *,
    index: int,
    range_set: RangeSet,
    owner: tuple[str, str],
    wanted: IPAddress | None,
    held: Mapping[IPAddress, Owner | None],
) -> IPConfig:
    for ip, who in held.items():
        if who in (owner, (owner[0], None)) and ip in range_set:
            raise InternalError(
                f"{ip} has been allocated to {owner[0]}, duplicate allocation is not allowed"
            )
    if wanted is not None:
        rng = range_set.range_for(wanted)
        assert rng is not None
        if not store.reserve(wanted, owner[0], owner[1], index):
            raise TryAgainLater(
                f"requested IP address {wanted} is not available in range set {range_set}"
            )
        return _ip_config(rng, wanted)
    if range_set.capacity() <= sum(1 for ip in held if _usable_in(range_set, ip)):
        raise TryAgainLater(f"no IP addresses available in range set: {range_set}")
    for rng, ip in candidates(range_set, store.last_reserved_ip(index)):
        if ip not in held and store.reserve(ip, owner[0], owner[1], index):
            return _ip_config(rng, ip)
    # Only reachable when something that is not a reservation (a directory, a
    # symlink) sits on the free addresses.
    raise TryAgainLater(f"no IP addresses available in range set: {range_set}")


def _ip_config(rng: Range, ip: IPAddress) -> IPConfig:
    # The result's prefix is the subnet's (10.244.1.2/24), not a host route.
    return IPConfig(IPInterface(ip, rng.subnet.prefixlen), rng.gateway)


def _usable_in(range_set: RangeSet, ip: IPAddress) -> bool:
    rng = range_set.range_for(ip)
    return rng is not None and rng.usable(ip)


def candidates(range_set: RangeSet, last: IPAddress | None) -> Iterator[tuple[Range, IPAddress]]:
    """Every usable address of the set once, starting after ``last`` when the set
    holds it (so ``last`` itself comes at the very end), else at the first
    range's start."""
    ranges = range_set.ranges
    first = 0
    resume = None
    if last is not None:
        for n, rng in enumerate(ranges):
            if rng.contains(last):
                first, resume = n, int(last) + 1
                break
    order = [*range(first, len(ranges)), *range(first)]
    if resume is not None:
        order.append(first)  # the head of the starting range comes last
    for step, n in enumerate(order):
        rng = ranges[n]
        lo, hi = int(rng.start), int(rng.end)
        if resume is not None and step == 0:
            lo = resume
        elif resume is not None and step == len(order) - 1:
            hi = resume - 1
        version = rng.start.version
        for value in range(lo, hi + 1):
            ip = IPAddress(value, version)
            if rng.usable(ip):
                yield rng, ip


# ---------------------------------------------------------------------------
# DEL, CHECK, GC, STATUS


def owned(
    held: Mapping[IPAddress, Owner | None], container_id: str, ifname: str
) -> list[IPAddress]:
    """Addresses of (container, ifname); failing those, the container's
    pre-ifname reservations (Go's ReleaseByID/FindByID fallback)."""
    exact = [ip for ip, who in held.items() if who == (container_id, ifname)]
    return exact or [ip for ip, who in held.items() if who == (container_id, None)]


def release_by_id(store: Store, container_id: str, ifname: str) -> list[IPAddress]:
    """DEL: release what the attachment holds; nothing held (or no state at all)
    is success.  Keeps going past failures and reports them together."""
    if not store.exists():
        return []
    with store.locked():
        victims = owned(store.reservations(), container_id, ifname)
        _release_all(store, victims, f"release addresses of {container_id}")
    return victims


def check(
    store: Store,
    range_sets: tuple[RangeSet, ...],
    container_id: str,
    ifname: str,
    prev_result: Result | None,
) -> None:
    """CHECK: the attachment must hold a reservation, and the addresses that
    prevResult lists inside our range sets must be exactly the ones it holds."""
    held: Mapping[IPAddress, Owner | None] = {}
    if store.exists():
        with store.locked():
            held = store.reservations()
    mine = owned(held, container_id, ifname)
    if not mine:
        # Code 3: host-local knows no such container, and it has nothing to clean up.
        raise UnknownContainer(
            f"host-local: Failed to find address added by container {container_id}"
        )
    if prev_result is None or not prev_result.ips:
        return

    def ours(ips: Iterable[IPAddress]) -> set[IPAddress]:
        return {ip for ip in ips if any(ip in rs for rs in range_sets)}

    listed = ours(c.address.ip for c in prev_result.ips)
    holding = ours(mine)
    if listed != holding:
        raise CNIError(
            f"host-local: container {container_id} holds "
            f"[{' '.join(sorted(map(str, holding)))}] but prevResult lists "
            f"[{' '.join(sorted(map(str, listed)))}]"
        )


def collect_garbage(store: Store, valid: set[tuple[str, str]]) -> list[IPAddress]:
    """GC: release every reservation whose attachment is not in ``valid``.

    A pre-ifname file is kept while its container has any valid attachment; a
    file with no readable owner cannot belong to a valid attachment and is
    released (GC never runs beside ADD, and we hold the lock anyway).
    """
    if not store.exists():
        return []
    valid_ids = {cid for cid, _ in valid}
    with store.locked():
        stale = [
            ip
            for ip, who in store.reservations().items()
            if who is None or (who not in valid if who[1] is not None else who[0] not in valid_ids)
        ]
        _release_all(store, stale, "garbage-collect addresses")
    return stale


def full_range_sets(store: Store, range_sets: tuple[RangeSet, ...]) -> list[int]:
    """Indexes of the range sets without a free address."""
    held: Iterable[IPAddress] = ()
    if store.exists():
        with store.locked():
            held = list(store.reservations())
    return [
        n
        for n, rs in enumerate(range_sets)
        if rs.capacity() <= sum(1 for ip in held if _usable_in(rs, ip))
    ]


def status(store: Store, range_sets: tuple[RangeSet, ...]) -> None:
    """STATUS: not ready (50) when some range set is full, since ADD would fail."""
    full = full_range_sets(store, range_sets)
    if full:
        names = "; ".join(f"range set {n}: {range_sets[n]}" for n in full)
        raise PluginNotAvailable(f"no IP addresses available in {names}")


def _release_all(store: Store, ips: Iterable[IPAddress], what: str) -> None:
    failures = []
    for ip in ips:
        try:
            store.release(ip)
        except CNIError as exc:
            failures.append(str(exc))
    if failures:
        raise IOFailure(f"failed to {what}", "; ".join(failures))
