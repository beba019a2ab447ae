"""bridge CHECK against ``prevResult`` (reference ``cmdCheck``), plus masquerade rules.

The bridge must exist with the recorded MAC and the configured promiscuous
mode; the container interface must be a veth with the recorded MAC; some host
interface of the result must be its peer and enslaved to the bridge; every
address must be on the container interface with its subnet route, and every
route must be in the pod's table.  Masquerade rules are checked too (the spec
asks plugins to check what they track outside the result; the reference does not).
"""

from __future__ import annotations

from cni_plugins.linux.netlink import RouteSocket
from cni_plugins.linux.netns import open_netns_of
from cni_plugins.spec.errors import CNIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.bridge.config import BridgeConf
    from cni_plugins.linux.netlink import Link
    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.types import Interface, Result


def check(args: CmdArgs, conf: BridgeConf, result: Result) -> None:
    br_rec = next((i for i in result.interfaces if i.name == conf.bridge), None)
    cont_rec = next(
        (i for i in result.interfaces if i.name == args.ifname and i.sandbox == args.netns), None
    )
    with RouteSocket() as node, open_netns_of(args) as pod_ns, RouteSocket(pod_ns) as pod:
        bridge = _check_bridge(node, br_rec, conf)
        if cont_rec is None:
            raise CNIError(f"Sandbox in prevResult doesn't match configured netns: {args.netns}")
        cont = _check_container(pod, cont_rec)
        others = [i for i in result.interfaces if i.name not in (conf.bridge, cont_rec.name)]
        if not any(_is_our_veth(node, i, bridge, cont) for i in others):
            raise CNIError(f"CNI veth created for bridge {conf.bridge} was not found")
        _check_ips(pod, cont, result)
        _check_routes(pod, result)
    if conf.ip_masq and result.ips:
        from cni_plugins.linux import ipmasq

        addresses = [ipc.address for ipc in result.ips]
        ipmasq.check(conf.ip_masq_backend, addresses, conf.name, args.ifname, args.container_id)


def _check_bridge(node: RouteSocket, rec: Interface | None, conf: BridgeConf) -> Link:
    if rec is None:
        raise CNIError(f"CNI created bridge {conf.bridge} in host namespace was not found")
    if rec.sandbox:
        raise CNIError(f"Interface {rec.name} should not be in sandbox")
    link = node.find_link(rec.name)
    if link is None:
        raise CNIError(f"Interface name {rec.name} not found")
    if link.kind != "bridge":
        raise CNIError(f"Interface {rec.name} does not have link type of bridge")
    if rec.mac and rec.mac != link.mac:
        raise CNIError(f"Bridge interface {rec.name} Mac doesn't match: {rec.mac}")
    if link.promisc != conf.promisc_mode:
        raise CNIError(
            f"Bridge interface {rec.name} configured Promisc Mode {conf.promisc_mode}"
            f" doesn't match current state: {link.promisc}"
        )
    return link


def _check_container(pod: RouteSocket, rec: Interface) -> Link:
    link = pod.find_link(rec.name)
    if link is None:
        raise CNIError(f"Interface name {rec.name} not found")
    if link.kind != "veth":
        raise CNIError(f"Error: Container interface {rec.name} not of type veth")
    if rec.mac and rec.mac != link.mac:
        raise CNIError(
            f"Interface {rec.name} Mac {rec.mac} doesn't match container Mac: {link.mac}"
        )
    return link


def _is_our_veth(node: RouteSocket, rec: Interface, bridge: Link, cont: Link) -> bool:
    if rec.sandbox:
        return False
    link = node.find_link(rec.name)
    if link is None:
        raise CNIError(f"Interface name {rec.name} not found")
    if link.kind != "veth" or link.index != cont.link or cont.index != link.link:
        return False
    if link.master != bridge.index:
        return False
    if rec.mac and rec.mac != link.mac:
        raise CNIError(f"Interface {rec.name} Mac doesn't match: {rec.mac} not found")
    return True


def _check_ips(pod: RouteSocket, cont: Link, result: Result) -> None:
    present = {a.interface for a in pod.addresses(cont.index)}
    routes = pod.routes(table=None)
    for ipc in result.ips:
        if ipc.address not in present:
            raise CNIError(f"Failed to match addr {ipc.address} on interface {cont.name}")
        if not any(r.dst == ipc.address.network for r in routes):
            raise CNIError(f"Failed to find Gateway {ipc.gateway} for interface {cont.name}")


def _check_routes(pod: RouteSocket, result: Result) -> None:
    routes = pod.routes(table=None)
    for want in result.routes:
        found = any(r.dst == want.dst and (want.gw is None or r.gateway == want.gw) for r in routes)
        if not found:
            gw = f" via {want.gw}" if want.gw is not None else ""
            raise CNIError(f"Expected Route {want.dst}{gw} not found in routing table")
