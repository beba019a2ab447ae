"""portmap: forward host ports to a pod (hostPort), with hairpin and localhost SNAT.

A chained plugin: ADD needs ``prevResult`` (the container addresses come from
it: the first IPv4 and IPv6 of ``CNI_IFNAME``) and prints it unchanged.  For
each ``runtimeConfig.portMappings`` entry it installs a DNAT from
``[hostIP:]hostPort`` to ``containerIP:containerPort``, plus masquerading of
hairpin (pod to its own host port) and 127.0.0.1-sourced traffic, with the
reference's iptables chains (or its nftables tables), then flushes stale UDP
conntrack entries of the mapped ports and sets ``route_localnet`` on the node
interface towards the pod.

Beyond the reference: DEL removes the container's rules even when the runtime
sends no mappings, no prevResult and no netns (the chain name and nft comment
are deterministic), from both backends; a re-ADD replaces the container's
rules instead of piling up; GC removes rules of containers that are no longer
valid attachments; STATUS reports whether the backend's tools work; CHECK only
checks the families the pod has (Go 1.1.1 fails IPv4-only pods).

Known limits (as the reference): no host-port reservation (the last pod to map
a port wins); no forwarding from ``::1`` (IPv6 has no ``route_localnet``).
Config keys: see ``cni_plugins.portmap.config``.
"""

from __future__ import annotations

from cni_plugins.portmap.config import PortMapConf, container_addresses
from cni_plugins.spec import skel
from cni_plugins.spec.args import valid_attachments
from cni_plugins.spec.errors import InvalidConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.ip import IPInterface
    from cni_plugins.spec.types import Result


def cmd_add(args: CmdArgs) -> Result:
    conf = PortMapConf.parse(args)
    if args.prev_result is None:
        raise InvalidConfig("must be called as chained plugin")
    if conf.mappings:
        from cni_plugins.portmap import apply

        apply.forward(conf, args.name, args.container_id, _addresses(args))
    return args.prev_result


def cmd_del(args: CmdArgs) -> None:
    """Always by name: the runtime may omit the mappings on DEL."""
    PortMapConf.parse(args)
    from cni_plugins.portmap import apply

    apply.unforward(args.name, args.container_id)


def cmd_check(args: CmdArgs) -> None:
    conf = PortMapConf.parse(args)
    if args.prev_result is None:
        raise InvalidConfig("Required prevResult missing")
    if conf.mappings:
        from cni_plugins.portmap import apply

        apply.check(conf, args.name, args.container_id, _addresses(args))


def cmd_status(args: CmdArgs) -> None:
    from cni_plugins.portmap import apply

    apply.status(PortMapConf.parse(args))


def cmd_gc(args: CmdArgs) -> None:
    """Remove the mappings of attachments not in ``cni.dev/valid-attachments``
    (an absent list: none is valid, as ``cnitool gc`` sends it)."""
    PortMapConf.parse(args)
    from cni_plugins.portmap import apply

    apply.gc(args.name, {cid for cid, _ifname in valid_attachments(args.config)})


def _addresses(args: CmdArgs) -> list[IPInterface]:
    assert args.prev_result is not None
    v4, v6 = container_addresses(args.prev_result, args.ifname)
    return [a for a in (v4, v6) if a is not None]


PLUGIN = skel.Plugin(
    "portmap", add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc
)


def main() -> NoReturn:
    skel.main(PLUGIN)


if __name__ == "__main__":
    main()
