"""bridge: connect the pod to a Linux bridge on the node through a veth pair.

The first plugin of a chain (a ``prevResult`` on ADD is ignored, as upstream).
ADD creates or reuses the bridge, creates the veth (the pod end directly in the
pod namespace), runs the IPAM plugin with the whole config, configures
addresses/routes in the pod, puts the gateway on the bridge, and installs
masquerading (iptables or nftables, reference chain names and comments).  Any
failure undoes what this ADD did, IPAM reservation included.  DEL removes the
pod interface, releases IPAM and removes masquerading even when the namespace
is gone (the reference leaks the rules then, plugins#810).  CHECK verifies
prevResult against the kernel; STATUS asks the IPAM plugin; GC forwards to IPAM
and removes masquerading of attachments no longer valid (the reference has no GC).

Config keys: see ``cni_plugins.bridge.config``.  Known limits: the bridge, its
gateway address and a VLAN gateway interface are never removed (shared by pods);
routes are not ECMP-merged as the reference's ``RouteAddEcmp`` does.
"""

from __future__ import annotations

import sys

from cni_plugins.bridge.config import BridgeConf
from cni_plugins.spec import invoke, skel
from cni_plugins.spec.errors import CNIError, InvalidConfig

# netlink, netns and the verbs' own modules are imported where used: each
# module is paid at every exec, and VERSION (or DEL without a netns) needs none.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.types import Result


def cmd_add(args: CmdArgs) -> Result:
    from cni_plugins.bridge.add import add
    from cni_plugins.linux.netlink import map_netlink_errors

    conf = BridgeConf.parse(args)
    with map_netlink_errors("bridge"):
        return add(args, conf)


def cmd_del(args: CmdArgs) -> None:
    """Best effort: every step runs; the errors are raised together at the end."""
    conf = BridgeConf.parse(args, for_add=False)
    errors: list[CNIError] = []
    ipam_errors: list[CNIError] = []
    released = False

    def release() -> None:
        nonlocal released
        released = True
        _collect(ipam_errors, invoke.delegate_del, conf.ipam_type, args.stdin, args)

    if args.netns:
        # IPAM's release runs beside the veth's delete, which waits in the kernel.
        _collect(errors, _delete_interface, args, conf.bridge, release if conf.ipam_type else None)
    if conf.ipam_type and not released:  # nothing was deleted, or it failed before
        release()
    errors += ipam_errors
    if conf.mac_spoof_check:
        from cni_plugins.bridge import spoofcheck

        _collect(errors, spoofcheck.teardown, spoofcheck.ref_id(args.container_id, args.ifname))
    if conf.ip_masq:
        from cni_plugins.linux import ipmasq

        _collect(errors, ipmasq.teardown, conf.name, args.ifname, args.container_id)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CNIError("; ".join(str(e) for e in errors))


def _delete_interface(args: CmdArgs, bridge: str, beside: Callable[[], None] | None) -> None:
    from cni_plugins.bridge.container import delete_interface, is_our_port
    from cni_plugins.linux.netlink import RouteSocket, map_netlink_errors
    from cni_plugins.linux.netns import NetNSNotFound, open_netns_of

    try:
        ns = open_netns_of(args)
    except NetNSNotFound:
        return  # gone with its interfaces; IPAM and rules are still ours to release
    with ns, RouteSocket(ns) as pod, RouteSocket() as node, map_netlink_errors("bridge DEL"):
        link = pod.find_link(args.ifname)
        if link is None:
            return
        # An upper plugin undoing a failed ADD (flannel, per the spec) calls DEL
        # when ADD refused a pre-existing interface: that one is not ours to delete.
        if not is_our_port(node, link, bridge):
            print(
                f"bridge: {args.ifname!r} in {args.netns} is not a veth on {bridge!r};"
                " leaving it alone",
                file=sys.stderr,
            )
            return
        delete_interface(pod, args.ifname, beside)


def _collect(errors: list[CNIError], step: Callable[..., None], *a: object) -> None:
    try:
        step(*a)
    except CNIError as exc:
        errors.append(exc)


def cmd_check(args: CmdArgs) -> None:
    from cni_plugins.bridge.check import check
    from cni_plugins.linux.netlink import map_netlink_errors

    conf = BridgeConf.parse(args, for_add=False)
    if args.prev_result is None:
        raise InvalidConfig("Required prevResult missing")
    if conf.ipam_type:
        invoke.delegate_check(conf.ipam_type, args.stdin, args)
    with map_netlink_errors("bridge CHECK"):
        check(args, conf, args.prev_result)


def cmd_status(args: CmdArgs) -> None:
    conf = BridgeConf.parse(args, for_add=False)
    if conf.ipam_type:
        invoke.delegate_status(conf.ipam_type, args.stdin, args)


def cmd_gc(args: CmdArgs) -> None:
    """Forward GC to IPAM, then drop masquerading of attachments not listed in
    ``cni.dev/valid-attachments`` (absent list: none is valid)."""
    from cni_plugins.spec.args import valid_attachments

    conf = BridgeConf.parse(args, for_add=False)
    valid = valid_attachments(args.config)
    errors: list[CNIError] = []
    if conf.ipam_type:
        _collect(errors, invoke.delegate_gc, conf.ipam_type, args.stdin, args)
    from cni_plugins.linux import ipmasq

    _collect(errors, ipmasq.gc, conf.name, valid)
    if errors:
        raise errors[0] if len(errors) == 1 else CNIError("; ".join(map(str, errors)))


PLUGIN = skel.Plugin(
    "bridge", add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc
)


def main() -> NoReturn:
    skel.main(PLUGIN)


if __name__ == "__main__":
    main()
