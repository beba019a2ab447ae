"""loopback: bring ``lo`` up in the pod's network namespace.

Chainable: given a ``prevResult`` it passes it through unchanged, otherwise it
reports ``lo`` with its addresses, converted properly to the requested version
(the reference prints 1.x-shaped output labelled 0.2.0/0.3.x; plugins#381).
``CNI_IFNAME`` is ignored, as in the reference: the interface is always ``lo``.
DEL succeeds when the namespace is already gone (kubernetes#43014).
"""

from __future__ import annotations

from cni_plugins.spec import skel
from cni_plugins.spec.errors import CNIError

# The verbs import netlink and the result types themselves: each module is paid
# at every exec, and VERSION needs none of them.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.types import Result

LO = "lo"


def cmd_add(args: CmdArgs) -> Result:
    from cni_plugins.linux.netlink import RouteSocket, map_netlink_errors
    from cni_plugins.linux.netns import open_netns_of
    from cni_plugins.spec.ip import ip_interface
    from cni_plugins.spec.types import Interface, IPConfig, Result

    with open_netns_of(args) as ns, RouteSocket(ns) as nl, map_netlink_errors("loopback"):
        nl.set_up(LO)
        addresses = [a.interface for a in nl.addresses(LO)]
    for addr in addresses:
        if not addr.ip.is_loopback:
            raise CNIError(f"loopback interface found with non-loopback address {str(addr)!r}")
    if args.prev_result is not None:
        return args.prev_result
    if not addresses:  # lo comes with them; keep a result that every version can express
        addresses = [ip_interface("127.0.0.1/8"), ip_interface("::1/128")]
    return Result(
        interfaces=[Interface(LO, "00:00:00:00:00:00", args.netns)],
        ips=[IPConfig(a, interface=0) for a in addresses],
    )


def cmd_del(args: CmdArgs) -> None:
    if not args.netns:
        return
    from cni_plugins.linux.netlink import RouteSocket, map_netlink_errors
    from cni_plugins.linux.netns import NetNSNotFound, open_netns_of

    try:
        ns = open_netns_of(args)
    except NetNSNotFound:
        return  # the runtime already removed the namespace: nothing left to undo
    with ns, RouteSocket(ns) as nl, map_netlink_errors("loopback"):
        nl.set_down(LO)


def cmd_check(args: CmdArgs) -> None:
    from cni_plugins.linux.netlink import RouteSocket, map_netlink_errors
    from cni_plugins.linux.netns import open_netns_of

    with open_netns_of(args) as ns, RouteSocket(ns) as nl, map_netlink_errors("loopback"):
        if not nl.link(LO).is_up:
            raise CNIError("loopback interface is down")


PLUGIN = skel.Plugin("loopback", add=cmd_add, delete=cmd_del, check=cmd_check)


def main() -> NoReturn:
    skel.main(PLUGIN)


if __name__ == "__main__":
    main()
