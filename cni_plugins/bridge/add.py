"""bridge ADD as a sequence of small steps with an undo stack.

Every step that changes the node pushes its inverse first; if any later step
fails, the inverses run in reverse order (IPAM DEL, masquerade rules, the veth)
and the original error is raised.  A failed ADD leaves nothing of its own
behind (the reference leaves the veth until DEL).  Shared objects stay: the
bridge, its gateway address and the ``<bridge>.<vlan>`` gateway interface may
already serve other pods.
"""

from __future__ import annotations

import sys

from cni_plugins.bridge import container, links, plan
from cni_plugins.linux.netlink import RouteSocket
from cni_plugins.linux.netns import open_netns_of
from cni_plugins.spec import invoke
from cni_plugins.spec.errors import CNIError
from cni_plugins.spec.types import Interface, Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cni_plugins.bridge.config import BridgeConf
    from cni_plugins.linux.netlink import Link
    from cni_plugins.linux.netns import NetNS
    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.ip import IPInterface


class Undo:
    """Inverse actions, run newest first; their own failures go to stderr only."""

    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, action: Callable[[], object]) -> None:
        self._steps.append((what, action))

    def run(self) -> None:
        while self._steps:
            what, action = self._steps.pop()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - keep undoing, report the first error
                print(f"bridge: undo {what} failed: {exc}", file=sys.stderr)


class _Ctx:
    """What the steps share: args, config, both sockets, the pod namespace, undo."""

    __slots__ = ("args", "conf", "node", "own_port", "pod", "pod_ns", "undo")

    def __init__(
        self, args: CmdArgs, conf: BridgeConf, node: RouteSocket, pod: RouteSocket, pod_ns: NetNS
    ) -> None:
        self.args = args
        self.conf = conf
        self.node = node
        self.pod = pod
        self.pod_ns = pod_ns
        self.own_port = 0  # ifindex of this pod's host veth, once made
        self.undo = Undo()


def add(args: CmdArgs, conf: BridgeConf) -> Result:
    with open_netns_of(args) as pod_ns, RouteSocket() as node, RouteSocket(pod_ns) as pod:
        ctx = _Ctx(args, conf, node, pod, pod_ns)
        try:
            return _add(ctx)
        except BaseException:
            ctx.undo.run()
            raise


def _add(ctx: _Ctx) -> Result:
    conf, args = ctx.conf, ctx.args
    if ctx.pod.find_link(args.ifname) is not None:  # before anything changes on the node
        raise CNIError(links.exists_message(args.ifname, "(none)"))
    bridge = links.ensure_bridge(ctx.node, conf)
    host, cont = _veth(ctx, bridge)
    interfaces = [
        Interface(bridge.name, bridge.mac),
        Interface(host.name, host.mac),
        Interface(cont.name, cont.mac, args.netns),
    ]
    if conf.mac_spoof_check:
        _spoofcheck(ctx, host.name, cont.mac)
    if conf.ipam_type:
        result = _layer3(ctx, bridge, cont, interfaces)
    else:
        result = Result(interfaces=interfaces, dns=conf.dns)
        if not conf.disable_container_interface:
            ctx.pod.set_up(cont.index)
    if not conf.disable_container_interface:
        host = links.wait_port_up(ctx.node, host)
    # MACs may have changed: the host end's, and the bridge's when its first port came.
    result.interfaces[plan.HOST_INDEX].mac = host.mac
    result.interfaces[plan.BRIDGE_INDEX].mac = ctx.node.link(bridge.index).mac
    return result


def _veth(ctx: _Ctx, bridge: Link) -> tuple[Link, Link]:
    host, cont = links.create_veth(ctx.node, ctx.pod, ctx.pod_ns, ctx.args.ifname, ctx.conf)
    # Deleting the pod end deletes the pair.
    ctx.undo.push("delete veth", lambda: ctx.pod.delete_link(cont.index))
    ctx.own_port = host.index
    links.setup_port(ctx.node, host, bridge, ctx.conf)
    return host, cont


def _spoofcheck(ctx: _Ctx, host_name: str, mac: str) -> None:
    from cni_plugins.bridge import spoofcheck

    ref = spoofcheck.ref_id(ctx.args.container_id, ctx.args.ifname)
    ctx.undo.push("macspoofchk teardown", lambda: spoofcheck.teardown(ref))
    spoofcheck.setup(host_name, mac, ref)


def _layer3(ctx: _Ctx, bridge: Link, cont: Link, interfaces: list[Interface]) -> Result:
    conf, args = ctx.conf, ctx.args
    # Spec section 4: a failed delegate ADD is followed by its DEL too.
    ctx.undo.push("IPAM DEL", lambda: invoke.delegate_del(conf.ipam_type, args.stdin, args))
    ipam = invoke.delegate_add(conf.ipam_type, args.stdin, args)
    result, gateways = plan.build_result(conf, ipam, interfaces)
    container.set_sysctls(ctx.pod_ns, args.ifname, conf, result)
    container.configure(ctx.pod, cont, result)
    if conf.is_gateway:
        _gateways(ctx, bridge, gateways, result)
    if conf.ip_masq:
        _masquerade(ctx, plan.container_addresses(result))
    return result


def _gateways(
    ctx: _Ctx, bridge: Link, gateways: dict[int, list[IPInterface]], result: Result
) -> None:
    conf = ctx.conf
    target, what = bridge, "failed to set bridge addr"
    if conf.vlan and any(gateways.values()):
        target, _created = links.ensure_vlan_gateway(ctx.node, bridge, conf)
        result.interfaces.append(Interface(target.name, target.mac))
        what = "failed to set vlan interface for bridge with addr"
    for family, addresses in sorted(gateways.items()):
        for gw in addresses:
            links.ensure_gateway_address(
                ctx.node,
                target,
                gw,
                conf.force_address,
                what,
                own_port=ctx.own_port,
                holders=lambda stale: _stale_holders(ctx, stale),
            )
        if addresses:
            links.enable_forwarding(family)


def _stale_holders(ctx: _Ctx, stale: list[IPInterface]) -> list[str]:
    """Container IDs that host-local's store has holding an address in one of
    the ``stale`` gateway subnets (for the message only: [] when unknown)."""
    if ctx.conf.ipam_type != "host-local":
        return []
    from cni_plugins.ipam.host_local.config import data_dir
    from cni_plugins.ipam.host_local.disk_store import DiskStore

    try:
        store = DiskStore(data_dir(ctx.args.config), ctx.conf.name)
        if not store.exists():
            return []
        with store.locked():
            reservations = store.reservations()
    except (CNIError, OSError):
        return []
    return sorted(
        {
            owner[0]
            for ip, owner in reservations.items()
            if owner is not None and any(ip in gw.network for gw in stale)
        }
    )


def _masquerade(ctx: _Ctx, addresses: list[IPInterface]) -> None:
    from cni_plugins.linux import ipmasq

    conf, args = ctx.conf, ctx.args
    ctx.undo.push(
        "masquerade teardown",
        lambda: ipmasq.teardown(conf.name, args.ifname, args.container_id),
    )
    ipmasq.setup(conf.ip_masq_backend, addresses, conf.name, args.ifname, args.container_id)
