"""host-local: IPAM from local range sets with reservations on disk.

Called as a delegate (bridge, flannel's bridge) with the upper plugin's whole
config; returns an abbreviated result (``ips`` without ``interface``, the
configured ``routes``, ``dns`` from ``resolvConf``).  The state is Go's on-disk
format (``ipam/host_local/disk_store.py``), so either implementation can DEL
what the other added.

Beyond the Go plugin: STATUS (50 when a range set is full) and GC (release
reservations of attachments the runtime no longer lists); DEL and GC only need
``dataDir``, so they still release with a broken range config; CHECK also
compares prevResult's addresses with the reservations.
"""

from __future__ import annotations

from cni_plugins.ipam.host_local import allocator, config
from cni_plugins.ipam.host_local.disk_store import DiskStore
from cni_plugins.ipam.host_local.dns import parse_resolv_conf
from cni_plugins.spec import skel
from cni_plugins.spec.args import valid_attachments
from cni_plugins.spec.skel import Plugin
from cni_plugins.spec.types import Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from cni_plugins.spec.args import CmdArgs


def cmd_add(args: CmdArgs) -> Result:
    conf = config.load_ipam_config(args, with_requests=True)
    # Read before allocating, so a bad resolvConf fails with nothing reserved.
    dns = parse_resolv_conf(conf.resolv_conf) if conf.resolv_conf else None
    store = DiskStore(conf.data_dir, conf.name)
    ips = allocator.allocate(
        store, conf.range_sets, args.container_id, args.ifname, conf.requested_ips
    )
    return Result(ips=ips, routes=list(conf.routes), dns=dns)


def cmd_del(args: CmdArgs) -> None:
    store = DiskStore(config.data_dir(args.config), args.name)
    allocator.release_by_id(store, args.container_id, args.ifname)


def cmd_check(args: CmdArgs) -> None:
    conf = config.load_ipam_config(args)
    store = DiskStore(conf.data_dir, conf.name)
    allocator.check(store, conf.range_sets, args.container_id, args.ifname, args.prev_result)


def cmd_status(args: CmdArgs) -> None:
    conf = config.load_ipam_config(args)
    allocator.status(DiskStore(conf.data_dir, conf.name), conf.range_sets)


def cmd_gc(args: CmdArgs) -> None:
    valid = valid_attachments(args.config)
    store = DiskStore(config.data_dir(args.config), args.name)
    allocator.collect_garbage(store, valid)


PLUGIN = Plugin(
    "host-local",
    add=cmd_add,
    delete=cmd_del,
    check=cmd_check,
    status=cmd_status,
    gc=cmd_gc,
)


def main() -> NoReturn:
    skel.main(PLUGIN)


if __name__ == "__main__":
    main()
