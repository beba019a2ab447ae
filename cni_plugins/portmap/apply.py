"""Thin apply layer: the layouts of ``chains`` / ``nft`` onto the node.

iptables: one ``-save`` and at most one ``-restore --noflush`` per family per
invocation (DEL: at most one ``-restore``, and no ``-save``: see
``_iptables_remove_known``).  nftables: over nf_tables netlink, no ``nft``
(``linux.nftnl``): one table dump and one batch per family (``nft -f -``
only for ADD with ``conditionsV4/V6``, which are nft syntax).  Removal (DEL, GC) needs neither
addresses nor mappings: the per-container chain name and the nft comment are
deterministic, and both backends are cleaned (the pod may have been added by
another version or configuration), skipping tools that are not installed and,
without an exec, families and tables the kernel says do not exist
(``linux.nfprobe``).
"""

from __future__ import annotations

import sys

from cni_plugins.portmap import chains, nft
from cni_plugins.spec.errors import CNIError, PluginNotAvailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from cni_plugins.linux.iptables import Iptables
    from cni_plugins.linux.nfmsg import Rule
    from cni_plugins.linux.nfprobe import Netfilter
    from cni_plugins.portmap.config import PortMapConf, PortMapping
    from cni_plugins.spec.ip import IPAddress, IPInterface


def log(message: str) -> None:
    print(f"portmap: {message}", file=sys.stderr)


# -- ADD --------------------------------------------------------------------------------------


def forward(
    conf: PortMapConf, network: str, container_id: str, addresses: Sequence[IPInterface]
) -> None:
    """Install the mappings for each container address (at most one per family),
    then flush stale UDP conntrack entries of both families at once and, for
    IPv4 with ``snat``, allow 127/8 sources towards the container
    (``route_localnet``).  The reference does rules, flush, sysctl per family
    in turn; the outcome is the same.  On failure everything this container
    has is removed (the reference leaves the IPv4 rules when IPv6 fails)."""
    try:
        if conf.backend == "nftables":
            _nft_forward(conf, container_id, addresses)
        else:
            _iptables_forward_all(conf, network, container_id, addresses)
        # After the rules are in place, so new packets meet them.
        flush_udp_conntrack(conf.mappings, [a.version for a in addresses])
        if conf.snat:
            for address in addresses:
                if address.version == 4:
                    enable_route_localnet(address.ip)
    except BaseException:
        try:
            unforward(network, container_id)
        except CNIError as exc:
            log(f"undo after a failed ADD failed too: {exc}")
        raise


def _iptables_forward_all(
    conf: PortMapConf, network: str, container_id: str, addresses: Sequence[IPInterface]
) -> None:
    """Per family, one nf_tables transaction (``nfsetup``, no exec) when the
    kernel's iptables backend is nf_tables and every rule can be encoded;
    else the ``-save`` + ``-restore`` way."""
    from cni_plugins.linux.nfprobe import Netfilter

    with Netfilter() as nf:
        for address in addresses:
            layout = chains.layout(conf, network, container_id, address)
            if not netlink_forward(nf, address.version, layout):
                restore_forward(address.version, layout)


def netlink_forward(nf: Netfilter, family: int, layout: Sequence[chains.Chain]) -> bool:
    """``layout``'s setup in one nf_tables batch; False: nothing done, restore."""
    from cni_plugins.linux import nfadd
    from cni_plugins.portmap import nfsetup

    planner = nfsetup.planner(family, layout)
    return planner is not None and nfadd.apply(nf, family, "nat", planner)


def restore_forward(family: int, layout: Sequence[chains.Chain]) -> None:
    """``layout``'s setup with ``iptables-save`` and ``-restore`` (any backend)."""
    from cni_plugins.linux.iptables import Iptables, parse_save

    ipt = Iptables(family)
    existing_chains, existing_rules = parse_save(ipt.save("nat"), chains.MENTIONED)
    _create_shared(ipt, chains.missing_shared(layout, existing_chains))
    ipt.restore(chains.setup(layout, existing_chains, existing_rules))


def _create_shared(ipt: Iptables, names: list[str]) -> None:
    """Create the missing shared chains, tolerating a concurrent ADD that
    creates them too (``chains.create``).  One more exec, on a node's first
    ADD per family only.  ``-N`` of all at once fails if any exists; then each
    alone, and one that still fails exists now (if not, ``setup``'s restore
    says so)."""
    from cni_plugins.linux.iptables import ToolFailed

    if not names:
        return
    try:
        ipt.restore(chains.create(names))
    except ToolFailed:
        for name in names:
            try:
                ipt.restore(chains.create([name]))
            except ToolFailed:
                continue


def _nft_forward(conf: PortMapConf, container_id: str, addresses: Sequence[IPInterface]) -> None:
    """One nf_tables batch per family over netlink (no ``nft``); with
    ``conditionsV4``/``V6`` (nft syntax) one ``nft -f -`` transaction instead."""
    if any(nft.needs_nft(conf, a.version) for a in addresses):
        _nft_forward_text(conf, container_id, addresses)
        return
    from cni_plugins.linux import nftnl
    from cni_plugins.linux.nfprobe import Netfilter

    with Netfilter() as nf:
        for address in addresses:

            def plan(rules: list[Rule] | None, address: IPInterface = address) -> nftnl.Batch:
                return nft.setup_batch(conf, container_id, address, rules)

            nftnl.apply(nf, nft.family_name(address.version), nft.TABLE, plan)


def _nft_forward_text(
    conf: PortMapConf, container_id: str, addresses: Sequence[IPInterface]
) -> None:
    from cni_plugins.linux.iptables import ToolNotFound
    from cni_plugins.linux.nftables import Nft

    client = Nft()
    if not client.available():
        raise ToolNotFound(
            "portmap: conditionsV4/conditionsV6 are nft syntax and need the nft program,"
            " which is not installed"
        )
    commands: list[str] = []
    for address in addresses:
        listed = client.list_table_rules(nft.family_name(address.version), nft.TABLE) or []
        stale = nft.rules_of(listed, [container_id])
        commands += nft.setup_commands(conf, container_id, address, stale)
    client.apply(commands)


def flush_udp_conntrack(mappings: Iterable[PortMapping], families: Iterable[int]) -> None:
    """Delete conntrack entries to the UDP host ports (plugins#123: a stale entry
    keeps blackholing a re-created pod's traffic)."""
    ports = {m.host_port for m in mappings if m.protocol == "udp"}
    _flush_udp_ports({family: ports for family in families})


def _flush_udp_ports(ports_by_family: dict[int, set[int]]) -> None:
    """One ``conntrack -D`` per (family, port), all running at once (each waits
    ~10-30 ms on the kernel's table walk).  Failures are only logged, as in the
    reference."""
    todo = sorted((fam, port) for fam, ports in ports_by_family.items() for port in ports)
    if not todo:
        return
    from cni_plugins.linux.iptables import ToolNotFound, run_tools

    argvs = [
        ["conntrack", "-D", "-f", f"ipv{fam}", "-p", "udp", "--orig-port-dst", str(port)]
        for fam, port in todo
    ]
    try:
        results = run_tools(argvs)
    except ToolNotFound:
        log("conntrack not found: stale UDP conntrack entries not flushed")
        return
    except CNIError as exc:
        log(f"failed to delete stale UDP conntrack entries: {exc}")
        return
    for (_fam, port), (status, _out, err) in zip(todo, results, strict=True):
        text = err.decode(errors="replace").strip()
        # Exit status 1 with "0 flow entries have been deleted" means there were none.
        if status != 0 and "0 flow entries" not in text:
            log(f"failed to delete stale UDP conntrack entries for port {port}: {text}")


def enable_route_localnet(container_ip: IPAddress) -> None:
    """``net.ipv4.conf.<if>.route_localnet=1`` on the node interface that routes to
    the container, so 127.0.0.1-sourced packets may cross to it (DNAT from
    localhost).  No route to the container: nothing to do, as the reference."""
    from cni_plugins.linux import sysctl
    from cni_plugins.linux.netlink import NetlinkError, RouteSocket

    try:
        with RouteSocket() as nl:
            route = nl.route_get(container_ip)
            if not route.oif:
                return
            ifname = nl.link(route.oif).name
    except NetlinkError:
        return
    try:
        sysctl.write(sysctl.conf_key(ifname, "route_localnet"), 1)
    except OSError as exc:
        raise CNIError(f"unable to enable route_localnet on {ifname}: {exc}") from exc


# -- DEL and GC -------------------------------------------------------------------------------


def unforward(network: str, container_id: str) -> None:
    """Remove this container's mappings: its CNI-DN- chain (and the legacy CNI-SN-
    one) with every rule jumping to them, in both iptables families, and its
    commented rules in both nft tables; then flush the conntrack entries of the
    UDP host ports those rules mapped (read from the rules: the runtime may
    send no mappings on DEL).  Idempotent."""
    from cni_plugins.linux.nfprobe import Netfilter

    dnat = chains.dnat_chain_name(network, container_id)
    old_snat = chains.old_snat_chain_name(network, container_id)
    removed = _Removed()
    # One netfilter socket for every probe and removal, closed last: its close
    # waits out the kernel's freeing of what was removed (Netfilter).
    with Netfilter() as nf:
        for family in (4, 6):
            if not _iptables_remove_known(nf, family, dnat, old_snat, removed):
                _iptables_remove_family(family, lambda _rules: {dnat, old_snat}, removed)
        _nft_remove(nf, lambda rules: nft.native_rules_of(rules, [container_id]), removed)
        removed.flush_and_raise()


def _iptables_remove_known(
    nf: Netfilter, family: int, dnat: str, old_snat: str, removed: _Removed
) -> bool:
    """DEL's cheap ways for one family; False: take the full way (``-save`` of
    the whole table), which also reports what went wrong here.

    The kernel tells (``nfprobe``, no exec) whether the container's chains
    exist: neither, and there is nothing to do (no jump can target a missing
    chain).  Its DNAT chain alone: it goes with the entry rules in
    CNI-HOSTPORT-DNAT that jump to it, in one nf_tables transaction
    (``nfremove``, no exec either), its UDP ports read from its rules as the
    kernel holds them.  When that cannot be done (the legacy backend, rules in
    a shape not read there, a jump from elsewhere), the same two chains are
    listed (``-S``) and removed with one restore.  The old SNAT chain, or any
    doubt: the full way."""
    from cni_plugins.linux import nfremove
    from cni_plugins.portmap import nfrules

    top = chains.TOP_LEVEL_DNAT_CHAIN
    present = nf.iptables_chains(family, "nat", (dnat, old_snat, top))
    if present is None or old_snat in present:
        return False
    if dnat not in present:
        return True
    referrers = [top] if top in present else []
    ports = nfremove.remove_chains(
        nf, family, "nat", [dnat], referrers=referrers, inspect=nfrules.udp_ports
    )
    if ports is None:
        return _iptables_remove_listed(family, dnat, referrers, removed)
    removed.udp_ports[family] |= ports
    return True


def _iptables_remove_listed(
    family: int, dnat: str, referrers: list[str], removed: _Removed
) -> bool:
    """List ``dnat`` and its ``referrers`` (``-S``, not the whole nat table) and
    remove them with one restore; False: take the full way.  A jump from
    anywhere else makes the chain's ``-X`` fail the (atomic) restore, and the
    full way then finds that jump too."""
    from cni_plugins.linux.iptables import Iptables, parse_save

    ipt = Iptables(family)
    try:
        # Its own rules name the UDP ports to flush; not the entry rules, which
        # a concurrent ADD's restore may have flushed away (chains.setup).
        listed = ipt.list_chains("nat", [*referrers, dnat])
        rules = [rule for text in listed for rule in parse_save(text, (dnat,))[1]]
        ipt.restore(chains.teardown({dnat}, rules, {dnat}))
    except CNIError:
        return False
    removed.udp_ports[family] |= chains.udp_ports(rules, {dnat})
    return True


def gc(network: str, valid_ids: set[str]) -> None:
    """Remove the mappings of containers not in ``valid_ids``.

    iptables: chains of *this* network only (the entry rule's comment names the
    network and hashes to the chain).  nftables: the reference's comment is the
    bare container ID, so rules of any container ID not in ``valid_ids`` go; on a
    node where several networks use the nftables backend, GC one of them only
    with the container IDs of all of them.
    """
    from cni_plugins.linux.nfprobe import Netfilter
    from cni_plugins.linux.nftnl import comment_of

    removed = _Removed()
    _iptables_remove(lambda rules: chains.stale_chains(rules, network, valid_ids), removed)
    with Netfilter() as nf:
        _nft_remove(
            nf,
            lambda rules: [r for r in nft.native_rules_of(rules) if comment_of(r) not in valid_ids],
            removed,
        )
    removed.flush_and_raise()


class _Removed:
    """What a removal pass did: errors, and UDP host ports per family."""

    __slots__ = ("errors", "udp_ports")

    def __init__(self) -> None:
        self.errors: list[CNIError] = []
        self.udp_ports: dict[int, set[int]] = {4: set(), 6: set()}

    def flush_and_raise(self) -> None:
        _flush_udp_ports(self.udp_ports)
        _raise_joined(self.errors)


def _iptables_remove(select: Callable[[list[list[str]]], set[str]], removed: _Removed) -> None:
    for family in (4, 6):
        _iptables_remove_family(family, select, removed)


def _iptables_remove_family(
    family: int, select: Callable[[list[list[str]]], set[str]], removed: _Removed
) -> None:
    """The full way: ``-save`` the nat table, remove the chains ``select`` picks."""
    from cni_plugins.linux.iptables import Iptables, ToolNotFound, parse_save

    ipt = Iptables(family)
    try:
        existing_chains, existing_rules = parse_save(ipt.save("nat"), chains.MENTIONED)
        doomed = select(existing_rules)
        ipt.restore(chains.teardown(existing_chains, existing_rules, doomed))
    except ToolNotFound:
        return
    except CNIError as exc:
        removed.errors.append(exc)
        return
    removed.udp_ports[family] |= chains.udp_ports(existing_rules, doomed)


def _nft_remove(
    nf: Netfilter, select: Callable[[list[Rule]], list[Rule]], removed: _Removed
) -> None:
    """Delete the rules ``select`` picks of both ``cni_hostport`` tables, read
    and deleted over netlink (one batch per table, no ``nft``)."""
    families = _nft_tables(nf)
    if not families or nf.sock is None:
        return  # without nfnetlink there is no nftables table either
    from cni_plugins.linux import nftnl

    for name in families:
        family = 4 if name == "ip" else 6
        doomed: list[Rule] = []

        def plan(
            rules: list[Rule] | None, name: str = name, doomed: list[Rule] = doomed
        ) -> nftnl.Batch:
            doomed[:] = select(rules or [])
            batch = nftnl.Batch(name, nft.TABLE)
            for rule in doomed:
                batch.delete(rule)
            return batch

        try:
            nftnl.apply(nf, name, nft.TABLE, plan)
        except CNIError as exc:
            removed.errors.append(exc)
            continue
        for rule in doomed:
            signature = nft.native_signature(rule, family)
            if signature is not None and signature[0] == "udp":
                removed.udp_ports[family].add(signature[1])


def _nft_tables(nf: Netfilter) -> list[str]:
    """Families (``ip``, ``ip6``) that may have a ``cni_hostport`` table (the
    kernel answers over netlink; when it cannot tell, reading will)."""
    return [fam for fam in ("ip", "ip6") if nf.nft_table_exists(fam, nft.TABLE) is not False]


def _raise_joined(errors: Sequence[CNIError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CNIError("; ".join(str(e) for e in errors))


# -- CHECK and STATUS -------------------------------------------------------------------------


def check(
    conf: PortMapConf, network: str, container_id: str, addresses: Sequence[IPInterface]
) -> None:
    """The rules ADD made for each address are in place (only the families the
    container has: Go 1.1.1 also checked IPv6 for IPv4-only pods and failed)."""
    for address in addresses:
        if conf.backend == "nftables":
            _nft_check(conf, container_id, address)
        else:
            _iptables_check(conf, network, container_id, address)


def _iptables_check(
    conf: PortMapConf, network: str, container_id: str, address: IPInterface
) -> None:
    from cni_plugins.linux.iptables import Iptables, parse_save

    existing_chains, existing_rules = parse_save(
        Iptables(address.version).save("nat"), chains.MENTIONED
    )
    layout = chains.layout(conf, network, container_id, address)
    problems = chains.check(layout, existing_chains, existing_rules)
    if problems:
        raise CNIError(
            f"could not check ipv{address.version} dnat: {problems[0]}", "; ".join(problems)
        )


def _nft_check(conf: PortMapConf, container_id: str, address: IPInterface) -> None:
    """Read over netlink; each DNAT rule recognised by meaning (``native_signature``)."""
    from cni_plugins.linux import nftnl
    from cni_plugins.linux.nfprobe import Netfilter

    with Netfilter() as nf:
        listed = nftnl.read(nf, nft.family_name(address.version), nft.TABLE) or []
    mine = nft.native_rules_of(listed, [container_id])
    family = f"{nft.family_name(address.version)} {nft.TABLE}"
    have = {nft.native_signature(r, address.version) for r in mine if r.chain == nft.HOSTPORTS}
    for want in nft.expected_dnats(conf, address):
        if want not in have:
            proto, port, host, to_addr, to_port = want
            raise CNIError(
                f"missing hostport rules in {nft.HOSTPORTS!r} chain",
                f"{family}: no {proto} dport {port}{f' daddr {host}' if host else ''}"
                f" dnat to {to_addr} port {to_port}",
            )
    _want_dnat, want_masq = nft.expected_counts(conf, address.version)
    masq = sum(1 for r in mine if r.chain == nft.MASQUERADING)
    if masq < want_masq:
        raise CNIError(
            f"missing hostport rules in {nft.MASQUERADING!r} chain",
            f"{family}: {masq} of {want_masq} found",
        )


def status(conf: PortMapConf) -> None:
    """Ready when the chosen backend's tools work here (code 50 otherwise)."""
    from cni_plugins.linux.iptables import Iptables

    try:
        if conf.backend == "nftables":
            from cni_plugins.linux import nfremove
            from cni_plugins.linux.nfprobe import Netfilter

            with Netfilter() as nf:
                if nf.sock is None:
                    raise CNIError("nf_tables netlink is not available")
                try:
                    nfremove.generation(nf.sock)
                except (OSError, ValueError) as exc:
                    raise CNIError(f"nf_tables netlink: {exc}") from None
        else:
            Iptables(4).save("nat")
    except CNIError as exc:
        raise PluginNotAvailable(f"portmap: {conf.backend} backend not usable: {exc}") from exc
