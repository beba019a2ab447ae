"""Pod-side work: sysctls, addresses, routes, DAD (``ipam.ConfigureIface``), and DEL.

Sysctls under ``/proc/sys/net`` belong to the namespace of the opening thread,
so they are written inside ``pod_ns.entered()``; netlink goes through a socket
bound to the pod namespace.
"""

from __future__ import annotations

import time

from cni_plugins.bridge import plan
from cni_plugins.linux import sysctl
from cni_plugins.linux.netlink import NetlinkExistsError
from cni_plugins.linux.nlmsg import AF_INET6
from cni_plugins.spec.errors import CNIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cni_plugins.bridge.config import BridgeConf
    from cni_plugins.linux.netlink import Link, RouteSocket
    from cni_plugins.linux.netns import NetNS
    from cni_plugins.spec.ip import IPInterface
    from cni_plugins.spec.types import Result

DAD_TIMEOUT = 5.0
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40


def set_sysctls(pod_ns: NetNS, ifname: str, conf: BridgeConf, result: Result) -> None:
    """DAD per ``enabledad``, ``arp_notify``, and for IPv6 ``disable_ipv6=0`` on
    ``lo`` and the interface plus ``keep_addr_on_down=1``; before any address."""
    has_v6 = any(ipc.address.version == 6 for ipc in result.ips)
    with pod_ns.entered():
        if conf.enable_dad:
            _optional(sysctl.conf_key(ifname, "enhanced_dad", family=6), "1")
            _optional(sysctl.conf_key(ifname, "accept_dad", family=6), "1")
        else:
            _optional(sysctl.conf_key(ifname, "accept_dad", family=6), "0")
        _optional(sysctl.conf_key(ifname, "arp_notify"), "1")
        if has_v6:
            for name in ("lo", ifname):
                key = sysctl.conf_key(name, "disable_ipv6", family=6)
                if sysctl.read(key) != "0":
                    sysctl.write(key, "0")
            sysctl.write(sysctl.conf_key(ifname, "keep_addr_on_down", family=6), "1")


def _optional(key: tuple[str, ...], value: str) -> None:
    try:
        sysctl.write(key, value)
    except OSError:
        pass  # the reference ignores these (e.g. no IPv6 in the kernel)


def configure(pod: RouteSocket, link: Link, result: Result) -> None:
    """Addresses, link up, wait for DAD when there is a v6 gateway, then routes."""
    for ipc in result.ips:
        try:
            pod.add_address(link.index, ipc.address)
        except NetlinkExistsError as exc:
            raise CNIError(f'failed to add IP addr {ipc.address} to "{link.name}": {exc}') from exc
    pod.set_up(link.index)
    gateways = plan.first_gateways(result)
    if 6 in gateways:
        settle_addresses(pod, link, DAD_TIMEOUT)
    for route in result.routes:
        gw = plan.route_gateway(route, gateways)
        try:
            pod.add_route(
                route.dst,
                gateway=gw,
                oif=link.index,
                priority=route.priority or None,
                table=route.table,
                scope=route.scope,
                mtu=route.mtu or None,
                advmss=route.advmss or None,
            )
        except NetlinkExistsError as exc:
            raise CNIError(
                f"failed to add route '{route.dst} via {gw} dev {link.name}': {exc.strerror}"
            ) from exc


def settle_addresses(pod: RouteSocket, link: Link, timeout: float) -> None:
    """Wait until no IPv6 address on ``link`` is tentative (``SettleAddresses``)."""
    deadline = time.monotonic() + timeout
    while True:
        tentative = False
        for addr in pod.addresses(link.index, AF_INET6):
            if addr.flags & _IFA_F_DADFAILED:
                raise CNIError(
                    f"failed to settle addresses for {link.name!r}:"
                    f" {addr.interface} failed duplicate address detection"
                )
            if addr.flags & _IFA_F_TENTATIVE and not addr.interface.ip.is_link_local:
                tentative = True
        if not tentative:
            return
        if time.monotonic() > deadline:
            raise CNIError(
                f"failed to settle addresses for {link.name!r}: still tentative after {timeout:g}s"
            )
        time.sleep(0.05)


def is_our_port(node: RouteSocket, link: Link, bridge: str) -> bool:
    """Whether the pod's ``link`` is a veth whose node end is a port of ``bridge``
    (or whose bridge is gone: its pods must still be cleaned up)."""
    if link.kind != "veth" or not link.link:
        return False
    peer = node.find_link(link.link)
    if peer is None or peer.kind != "veth" or peer.link != link.index:
        return False
    master = node.find_link(bridge)
    return master is None or peer.master == master.index


def delete_interface(
    pod: RouteSocket, ifname: str, beside: Callable[[], None] | None = None
) -> list[IPInterface]:
    """Delete ``ifname`` (both veth ends go); its addresses, for masquerade teardown.
    Nothing there is fine (DEL twice).  ``beside`` runs on another thread while
    the kernel deletes the veth (that call waits ~15-20 ms for RCU grace
    periods, with the GIL released); it is finished when this returns."""
    link = pod.find_link(ifname)
    if link is None:
        return []
    addresses = [a.interface for a in pod.addresses(link.index)]
    if beside is None:
        pod.delete_link(link.index)
    else:
        run_beside(beside, lambda: pod.delete_link(link.index))
    return [a for a in addresses if not a.ip.is_link_local]


def run_beside(work: Callable[[], None], blocking: Callable[[], None]) -> None:
    """``blocking()`` here and ``work()`` on a new thread meanwhile; returns once
    both are done, raising what either raised (``blocking``'s first).

    ``blocking`` stays on this thread and ``work`` goes to the new one: the new
    thread gets the GIL only when this one blocks in the kernel, so the
    blocking call starts at once and ``work`` fills its wait.  ``_thread``,
    not ``threading``: one import less per exec."""
    import _thread

    done = _thread.allocate_lock()
    done.acquire()
    failure: list[BaseException] = []

    def body() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
            failure.append(exc)
        finally:
            done.release()

    _thread.start_new_thread(body, ())
    try:
        blocking()
    finally:
        with done:
            pass
    if failure:
        raise failure[0]
