"""Allocator policy against the in-memory FakeStore: round robin, wrap, skips,
requested addresses, duplicates, exhaustion, rollback, DEL/CHECK/GC/STATUS."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.ipam.host_local import allocator
from cni_plugins.ipam.host_local.config import RangeSet, load_ipam_config
from cni_plugins.spec import ip as ipa
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.errors import (
    INTERNAL,
    INVALID_CONFIG,
    IO_FAILURE,
    PLUGIN_NOT_AVAILABLE,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
    CNIError,
)
from cni_plugins.spec.types import IPConfig, Result
from tests.fakes.fake_store import FakeStore


def ip(text: str) -> ipa.IPAddress:
    return ipa.ip_address(text)


def sets(*raw_sets: list[dict[str, Any]]) -> tuple[RangeSet, ...]:
    config = {"cniVersion": "1.0.0", "name": "n", "ipam": {"ranges": list(raw_sets)}}
    return load_ipam_config(CmdArgs(command="ADD", config=config, cni_version="1.0.0")).range_sets


def one(subnet: str, **extra: str) -> tuple[RangeSet, ...]:
    return sets([{"subnet": subnet, **extra}])


def add(store: FakeStore, rs: tuple[RangeSet, ...], cid: str, *req: str) -> list[str]:
    result = allocator.allocate(store, rs, cid, "eth0", tuple(ip(r) for r in req))
    return [str(c.address) for c in result]


def test_round_robin_across_containers_and_gateway_skipped() -> None:
    store, rs = FakeStore(), one("10.0.0.0/29")
    got = [add(store, rs, f"c{n}")[0] for n in range(5)]
    assert got == ["10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29", "10.0.0.5/29", "10.0.0.6/29"]
    assert store.last[0] == ip("10.0.0.6")
    assert store.lock_count == 5 and not store.is_locked


def test_result_carries_subnet_prefix_and_gateway() -> None:
    (conf,) = allocator.allocate(FakeStore(), one("10.0.0.0/24", gateway="10.0.0.254"), "c", "e")
    assert conf == IPConfig(ipa.ip_interface("10.0.0.1/24"), ip("10.0.0.254"))


def test_round_robin_continues_after_release_and_wraps() -> None:
    store, rs = FakeStore(), one("10.0.0.0/29")
    for n in range(5):
        add(store, rs, f"c{n}")
    allocator.release_by_id(store, "c1", "eth0")  # frees .3
    allocator.release_by_id(store, "c3", "eth0")  # frees .5
    # last was .6 (the end): wraps to the start, .2 is taken, .3 is free
    assert add(store, rs, "n1") == ["10.0.0.3/29"]
    assert add(store, rs, "n2") == ["10.0.0.5/29"]


def test_freed_address_not_reused_until_the_set_has_been_walked() -> None:
    store, rs = FakeStore(), one("10.0.0.0/28")
    add(store, rs, "a")  # .2
    allocator.release_by_id(store, "a", "eth0")
    assert add(store, rs, "b") == ["10.0.0.3/28"]  # not .2 again (crash-looping pods)


def test_cursor_outside_the_set_restarts_at_range_start() -> None:
    store = FakeStore(last={0: ip("192.168.0.9")})
    assert add(store, one("10.0.0.0/24"), "c") == ["10.0.0.2/24"]


def test_cursor_at_last_address_wraps_to_first_range() -> None:
    rs = sets([{"subnet": "10.0.0.0/29"}, {"subnet": "10.0.1.0/29"}])
    store = FakeStore(last={0: ip("10.0.1.6")})
    assert add(store, rs, "c") == ["10.0.0.2/29"]


def test_multi_range_set_moves_to_next_range() -> None:
    rs = sets([{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"}])
    store = FakeStore()
    got = [add(store, rs, f"c{n}")[0] for n in range(2)]
    assert got == ["10.0.0.2/30", "10.0.1.2/30"]
    with pytest.raises(CNIError) as info:
        add(store, rs, "c9")
    assert info.value.msg == (
        "failed to allocate for range 0: no IP addresses available in range set: "
        "10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2"
    )


def test_candidates_cover_each_usable_address_once() -> None:
    (rs,) = sets([{"subnet": "10.0.0.0/29"}, {"subnet": "10.0.1.0/30"}])
    walk = [str(a) for _, a in allocator.candidates(rs, ip("10.0.0.4"))]
    assert walk == ["10.0.0.5", "10.0.0.6", "10.0.1.2", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert [str(a) for _, a in allocator.candidates(rs, None)][:2] == ["10.0.0.2", "10.0.0.3"]


def test_network_and_broadcast_never_handed_out() -> None:
    (rs,) = one("10.0.0.0/30", rangeStart="10.0.0.0", rangeEnd="10.0.0.3", gateway="10.0.0.2")
    assert [str(a) for _, a in allocator.candidates(rs, None)] == ["10.0.0.1"]
    (rs6,) = one("fd00::/126", rangeStart="fd00::")
    assert [str(a) for _, a in allocator.candidates(rs6, None)] == ["fd00::2", "fd00::3"]


def test_ipv6() -> None:
    store, rs = FakeStore(), one("2001:db8:1::/64")
    assert add(store, rs, "a") == ["2001:db8:1::2/64"]
    assert add(store, rs, "b") == ["2001:db8:1::3/64"]


def test_dual_stack_gets_one_address_per_set() -> None:
    rs = sets([{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}])
    store = FakeStore()
    assert add(store, rs, "a") == ["10.0.0.2/24", "fd00::2/64"]
    assert store.last == {0: ip("10.0.0.2"), 1: ip("fd00::2")}


def test_requested_ips() -> None:
    rs = sets([{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}])
    store = FakeStore()
    assert add(store, rs, "a", "fd00::99", "10.0.0.77") == ["10.0.0.77/24", "fd00::99/64"]
    assert store.last == {0: ip("10.0.0.77"), 1: ip("fd00::99")}
    # only one set requested: the other is allocated round robin
    assert add(store, rs, "b", "10.0.0.5") == ["10.0.0.5/24", "fd00::9a/64"]


@pytest.mark.parametrize(
    ("requested", "code", "message"),
    [
        (
            "10.0.0.1",
            INVALID_CONFIG,
            "failed to allocate for range 0: requested ip 10.0.0.1 is subnet's gateway",
        ),
        (
            "10.0.0.9",
            TRY_AGAIN_LATER,
            "failed to allocate for range 0: requested IP address 10.0.0.9 is not available "
            "in range set 10.0.0.1-10.0.0.254",
        ),
        ("10.9.9.9", INVALID_CONFIG, "failed to allocate all requested IPs: 10.9.9.9"),
    ],
)
def test_requested_ip_refusals_leave_nothing(requested: str, code: int, message: str) -> None:
    rs = sets([{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}])
    store = FakeStore({ip("10.0.0.9"): ("other", "eth0")})
    with pytest.raises(CNIError) as info:
        add(store, rs, "a", requested)
    assert (info.value.code, info.value.msg) == (code, message)
    assert store.held == {ip("10.0.0.9"): ("other", "eth0")}
    # refusals that need no state are made before the store is even locked
    assert store.lock_count == (1 if code == TRY_AGAIN_LATER else 0)


def test_two_requests_in_one_set_fail_and_roll_back() -> None:
    store = FakeStore()
    with pytest.raises(CNIError, match=r"failed to allocate all requested IPs: 10\.0\.0\.8"):
        add(store, one("10.0.0.0/24"), "a", "10.0.0.7", "10.0.0.8")
    assert store.held == {}


def test_requested_network_address_refused() -> None:
    with pytest.raises(CNIError, match=r"is not a host address of 10\.0\.0\.0/24") as info:
        add(FakeStore(), one("10.0.0.0/24", rangeStart="10.0.0.0"), "a", "10.0.0.0")
    assert info.value.code == INVALID_CONFIG


@pytest.mark.parametrize("legacy", [False, True])
def test_duplicate_allocation_refused(legacy: bool) -> None:
    owner = ("ctr", None) if legacy else ("ctr", "eth0")
    store = FakeStore({ip("10.0.0.5"): owner})
    for requested in ((), ("10.0.0.6",)):
        with pytest.raises(CNIError) as info:
            add(store, one("10.0.0.0/24"), "ctr", *requested)
        assert info.value.code == INTERNAL
        assert info.value.msg == (
            "failed to allocate for range 0: 10.0.0.5 has been allocated to ctr, "
            "duplicate allocation is not allowed"
        )
    # another interface of the same container is another attachment
    if not legacy:
        assert allocator.allocate(store, one("10.0.0.0/24"), "ctr", "eth1")


def test_exhaustion_is_try_again_later_and_names_the_set() -> None:
    store, rs = FakeStore(), one("10.0.0.0/29", rangeStart="10.0.0.2", rangeEnd="10.0.0.4")
    for n in range(3):
        add(store, rs, f"c{n}")
    with pytest.raises(CNIError) as info:
        add(store, rs, "late")
    assert info.value.code == TRY_AGAIN_LATER
    assert info.value.msg == (
        "failed to allocate for range 0: no IP addresses available in range set: 10.0.0.2-10.0.0.4"
    )
    assert store.reserve_calls == 3  # counted, not tried address by address


def test_non_reservation_entries_on_free_addresses_end_in_exhaustion() -> None:
    class Blocked(FakeStore):
        def reserve(self, ip: Any, container_id: str, ifname: str, range_id: int) -> bool:
            super().reserve(ip, container_id, ifname, range_id)
            self.held.pop(ip)  # as if a directory sat there
            return False

    with pytest.raises(CNIError, match="no IP addresses available") as info:
        add(Blocked(), one("10.0.0.0/29"), "c")
    assert info.value.code == TRY_AGAIN_LATER


def test_failure_in_second_set_releases_only_what_this_add_reserved() -> None:
    rs = sets([{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}])
    store = FakeStore({ip("10.1.0.2"): ("other", "eth0")})
    with pytest.raises(CNIError, match="failed to allocate for range 1: no IP addresses"):
        add(store, rs, "a")
    assert store.held == {ip("10.1.0.2"): ("other", "eth0")}


def test_store_error_mid_way_rolls_back() -> None:
    rs = sets([{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}])
    store = FakeStore()
    store.fail_reserve_at = 2
    with pytest.raises(CNIError, match="failed to allocate for range 1: injected") as info:
        add(store, rs, "a")
    assert info.value.code == IO_FAILURE
    assert store.held == {}


# -- DEL -------------------------------------------------------------------


def test_release_by_id_exact_then_legacy() -> None:
    store = FakeStore(
        {
            ip("10.0.0.2"): ("a", "eth0"),
            ip("fd00::2"): ("a", "eth0"),
            ip("10.0.0.3"): ("a", "eth1"),
            ip("10.0.0.4"): ("a", None),
            ip("10.0.0.5"): ("b", "eth0"),
            ip("10.0.0.6"): None,
        }
    )
    assert sorted(map(str, allocator.release_by_id(store, "a", "eth0"))) == ["10.0.0.2", "fd00::2"]
    # nothing exact left for eth0: the pre-ifname file is the container's
    assert allocator.release_by_id(store, "a", "eth0") == [ip("10.0.0.4")]
    assert allocator.release_by_id(store, "a", "eth0") == []
    assert set(store.held) == {ip("10.0.0.3"), ip("10.0.0.5"), ip("10.0.0.6")}


def test_release_without_state_is_success_and_creates_nothing() -> None:
    store = FakeStore(exists=False)
    assert allocator.release_by_id(store, "a", "eth0") == []
    assert store.lock_count == 0


def test_release_reports_failures_after_trying_everything() -> None:
    class Stubborn(FakeStore):
        def release(self, ip: Any) -> None:
            if str(ip) == "10.0.0.2":
                raise CNIError("cannot unlink 10.0.0.2", code=IO_FAILURE)
            super().release(ip)

    store = Stubborn({ip("10.0.0.2"): ("a", "eth0"), ip("10.0.0.3"): ("a", "eth0")})
    with pytest.raises(CNIError) as info:
        allocator.release_by_id(store, "a", "eth0")
    assert info.value.code == IO_FAILURE and "cannot unlink 10.0.0.2" in info.value.details
    assert set(store.held) == {ip("10.0.0.2")}


# -- CHECK -----------------------------------------------------------------


def prev(*addresses: str) -> Result:
    return Result(ips=[IPConfig(ipa.ip_interface(a)) for a in addresses])


def test_check() -> None:
    rs = one("10.0.0.0/24")
    store = FakeStore({ip("10.0.0.2"): ("a", "eth0"), ip("10.0.0.3"): ("old", None)})
    allocator.check(store, rs, "a", "eth0", None)
    allocator.check(store, rs, "a", "eth0", prev("10.0.0.2/24", "192.168.0.5/24"))
    allocator.check(store, rs, "old", "eth0", None)  # pre-ifname reservation counts
    with pytest.raises(CNIError) as info:
        allocator.check(store, rs, "a", "eth0", prev("10.0.0.3/24"))
    assert (
        info.value.msg == "host-local: container a holds [10.0.0.2] but prevResult lists [10.0.0.3]"
    )
    for cid, ifname in (("zz", "eth0"), ("a", "eth1")):
        with pytest.raises(CNIError) as info:
            allocator.check(store, rs, cid, ifname, None)
        assert info.value.code == UNKNOWN_CONTAINER
        assert info.value.msg == f"host-local: Failed to find address added by container {cid}"
    with pytest.raises(CNIError):
        allocator.check(FakeStore(exists=False), rs, "a", "eth0", None)


# -- GC --------------------------------------------------------------------


def test_gc_releases_only_stale_attachments() -> None:
    store = FakeStore(
        {
            ip("10.0.0.2"): ("keep", "eth0"),
            ip("10.0.0.3"): ("keep", "eth1"),  # same container, other interface: stale
            ip("10.0.0.4"): ("legacy-live", None),
            ip("10.0.0.5"): ("legacy-dead", None),
            ip("10.0.0.6"): ("gone", "eth0"),
            ip("10.0.0.7"): None,  # empty file left by a crash
        },
        last={0: ip("10.0.0.7")},
    )
    valid = {("keep", "eth0"), ("legacy-live", "eth0")}
    released = allocator.collect_garbage(store, valid)
    assert sorted(map(str, released)) == ["10.0.0.3", "10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert set(store.held) == {ip("10.0.0.2"), ip("10.0.0.4")}
    assert store.last == {0: ip("10.0.0.7")}
    assert allocator.collect_garbage(store, set()) == [ip("10.0.0.2"), ip("10.0.0.4")]
    assert store.held == {}
    assert allocator.collect_garbage(FakeStore(exists=False), set()) == []


# -- STATUS ----------------------------------------------------------------


def test_status_reports_full_sets() -> None:
    rs = sets([{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}])
    store = FakeStore()
    allocator.status(store, rs)
    allocator.status(FakeStore(exists=False), rs)
    store.held[ip("10.1.0.2")] = ("x", "eth0")
    store.held[ip("10.1.0.1")] = None  # a file on the gateway does not count
    assert allocator.full_range_sets(store, rs) == [1]
    with pytest.raises(CNIError) as info:
        allocator.status(store, rs)
    assert info.value.code == PLUGIN_NOT_AVAILABLE
    assert info.value.msg == "no IP addresses available in range set 1: 10.1.0.1-10.1.0.2"
