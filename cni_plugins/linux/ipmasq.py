"""IP masquerade for pod addresses, iptables or nftables, as the Go plugins lay it out.

Byte-compatible with containernetworking/plugins ``pkg/ip/ipmasq_*_linux.go``, so
a node can switch between the Go binaries and ours with pods running:

iptables (table ``nat``), per (network, container):
    :CNI-<sha512(network + containerID) hex>[:28]
    -A POSTROUTING -s <ip>/32 -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j CNI-...
    -A CNI-... -d <subnet> -m comment --comment "..." -j ACCEPT
    -A CNI-... ! -d 224.0.0.0/4 -m comment --comment "..." -j MASQUERADE   (v6: ff00::/8)

nftables: table ``inet cni_plugins_masquerade``; base chain ``postrouting``
(multicast ``return``, ``goto masq_checks``); one rule per address in
``masq_checks``: ``ip saddr == <ip> ip daddr != <subnet> masquerade`` with the
comment ``<sha512(net)[:16]>-<sha512(ifname:cid)[:16]>, net: ..., if: ..., id: ...``.

Unlike the reference, teardown needs no addresses (plugins#810: it leaked the
rules when CNI_NETNS was empty): the chain name and the comment hash are
deterministic, so DEL finds them in the kernel.  GC (which the reference does not
implement for iptables) recognises our chains by their comment.

The rule sets are built as data by pure functions (unit-tested) and applied
with one restore per family (iptables) or one nf_tables batch over netlink
(nftables: ``linux.nftnl``, no ``nft`` program needed).  What is
there already is read as cheaply as it can be known: ``setup`` and ``teardown``
ask the kernel first (``nfprobe``, no exec) and list POSTROUTING alone
(``-S``) when the attachment's chain exists, nothing when it does not;
``check``, ``gc`` and the fallbacks read the table with one ``-save``.
"""

from __future__ import annotations

from cni_plugins.linux.chainname import (
    CHAIN_LENGTH,
    format_chain_name,
    parse_owner_comment,
    sha512_hex,
)
from cni_plugins.spec.errors import CNIError, InvalidConfig
from cni_plugins.spec.text import is_lower_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from cni_plugins.linux import nftnl
    from cni_plugins.linux.iptables import Iptables, Restore
    from cni_plugins.linux.nfmsg import Rule
    from cni_plugins.linux.nfprobe import Netfilter
    from cni_plugins.linux.nftables import NftRule
    from cni_plugins.spec.ip import IPInterface

# These should never be changed, or else upgrading will require manual intervention.
CHAIN_PREFIX = "CNI-"
NFT_FAMILY = "inet"
NFT_TABLE = "cni_plugins_masquerade"
NFT_MASQ_CHAIN = "masq_checks"
NFT_POSTROUTING = "postrouting"
NFT_TABLE_COMMENT = "Masquerading for plugins from github.com/containernetworking/plugins"
NFT_CHAIN_COMMENT = (
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
)
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}

BACKENDS = ("iptables", "nftables")


# -- names ------------------------------------------------------------------------------------


def chain_name(network: str, container_id: str) -> str:
    """Go ``utils.FormatChainName``: ``("CNI-" + sha512(network + id).hex)[:28]``."""
    return format_chain_name(CHAIN_PREFIX, network, container_id)


def _is_masq_chain(chain: str) -> bool:
    """``CNI-`` + 24 lowercase hex digits: the shape of ``chain_name``."""
    return (
        len(chain) == CHAIN_LENGTH
        and chain.startswith(CHAIN_PREFIX)
        and is_lower_hex(chain[len(CHAIN_PREFIX) :])
    )


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the characters CNI names can hold (and quotes/backslashes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(network: str, container_id: str) -> str:
    """Go ``utils.FormatComment``: ``name: "<net>" id: "<cid>"``."""
    return f"name: {_go_quote(network)} id: {_go_quote(container_id)}"


def parse_comment(text: str) -> tuple[str, str] | None:
    """(network, containerID) of a ``comment()`` string, else None."""
    return parse_owner_comment(text, "", escaped=True)


def nft_network_hash(network: str) -> str:
    return sha512_hex(network)[:16]


def nft_instance_hash(network: str, ifname: str, container_id: str) -> str:
    return nft_network_hash(network) + "-" + sha512_hex(f"{ifname}:{container_id}")[:16]


def nft_comment(network: str, ifname: str, container_id: str) -> str:
    """The reference's rule comment: hash first (for lookup), then a readable tail."""
    from cni_plugins.linux.nftables import COMMENT_MAX

    net, ifn, cid = (s.replace('"', "") for s in (network, ifname, container_id))
    text = f"{nft_instance_hash(network, ifname, container_id)}, net: {net}, if: {ifn}, id: {cid}"
    return text[:COMMENT_MAX]


# -- iptables rules as data -------------------------------------------------------------------


def _comment_args(text: str) -> list[str]:
    return ["-m", "comment", "--comment", text]


def iptables_rules(
    addresses: Sequence[IPInterface], network: str, container_id: str
) -> dict[int, list[list[str]]]:
    """Per family, the rules ``SetupIPMasq`` makes, in its order, as argument lists
    (``["-A", chain, ...]``, the way ``iptables-save`` prints them).

    For each address: ``-d <subnet> ACCEPT`` in our chain, the multicast-excluding
    MASQUERADE once, and the POSTROUTING jump once per address.
    """
    chain = chain_name(network, container_id)
    note = _comment_args(comment(network, container_id))
    out: dict[int, list[list[str]]] = {}
    for addr in addresses:
        rules = out.setdefault(addr.version, [])
        accept = ["-A", chain, "-d", str(addr.network), *note, "-j", "ACCEPT"]
        masq = ["-A", chain, "!", "-d", MULTICAST[addr.version], *note, "-j", "MASQUERADE"]
        host = f"{addr.ip}/{addr.max_prefixlen}"
        jump = ["-A", "POSTROUTING", "-s", host, *note, "-j", chain]
        for rule in (accept, masq, jump):
            if rule not in rules:
                rules.append(rule)
    return out


def iptables_setup(
    rules: list[list[str]], existing_rules: Iterable[list[str]], chain: str
) -> Restore:
    """The restore that installs ``rules``: (re)create our chain with exactly its
    rules, and add the POSTROUTING jumps not already there (AppendUnique)."""
    from cni_plugins.linux.iptables import Restore

    present = [r for r in existing_rules if r[:2] == ["-A", "POSTROUTING"]]
    r = Restore("nat")
    r.chain(chain)
    for rule in rules:
        if rule[1] == chain:
            r.lines.append(rule)
    for rule in rules:
        if rule[1] == "POSTROUTING" and rule not in present:
            r.lines.append(rule)
    return r


def iptables_teardown(
    chains: set[str], existing_rules: Iterable[list[str]], doomed: Iterable[str]
) -> Restore:
    """The restore that removes the chains ``doomed``: every rule jumping to one
    (also the legacy ``-s <cidr>`` form), then flush and delete each chain."""
    from cni_plugins.linux.iptables import Restore

    doomed_set = set(doomed)
    r = Restore("nat")
    for rule in existing_rules:
        target = _jump_target(rule)
        if target in doomed_set and rule[1] not in doomed_set:
            r.delete(*rule[1:])
    for chain in sorted(doomed_set & chains):
        r.flush(chain)
        r.delete_chain(chain)
    return r


def _jump_target(rule: list[str]) -> str | None:
    for i, arg in enumerate(rule[:-1]):
        if arg in ("-j", "--jump", "-g", "--goto"):
            return rule[i + 1]
    return None


def iptables_stale_chains(
    existing_rules: Iterable[list[str]], network: str, valid_ids: set[str]
) -> set[str]:
    """Our chains of ``network`` whose container is not in ``valid_ids``.

    A chain is ours when its name is ``CNI-`` + 24 hex digits, and a rule in it
    carries our comment whose (network, containerID) hashes to that very name;
    portmap's ``CNI-DN-...`` chains and other tools' chains never match.
    """
    stale: set[str] = set()
    for rule in existing_rules:
        chain = rule[1]
        if not _is_masq_chain(chain) or "--comment" not in rule:
            continue
        parsed = parse_comment(rule[rule.index("--comment") + 1])
        if parsed is None:
            continue
        net, cid = parsed
        if net == network and cid not in valid_ids and chain_name(net, cid) == chain:
            stale.add(chain)
    return stale


# -- nftables commands as data ----------------------------------------------------------------


def _nft(cmd: str, *rest: str) -> str:
    return " ".join((cmd, NFT_FAMILY, NFT_TABLE, *rest))


def nft_setup_commands(
    addresses: Sequence[IPInterface],
    network: str,
    ifname: str,
    container_id: str,
    stale: Iterable[NftRule] = (),
) -> list[str]:
    """One transaction: table and chains ensured, postrouting rewritten, this
    attachment's old rules deleted and one masquerade rule per address added."""
    from cni_plugins.linux.nftables import quote

    note = quote(nft_comment(network, ifname, container_id))
    cmds = [
        _nft("add table") + f" {{ comment {quote(NFT_TABLE_COMMENT)} ; }}",
        _nft("add chain", NFT_MASQ_CHAIN) + f" {{ comment {quote(NFT_CHAIN_COMMENT)} ; }}",
        _nft("add chain", NFT_POSTROUTING) + " { type nat hook postrouting priority srcnat ; }",
        _nft("flush chain", NFT_POSTROUTING),
        _nft("add rule", NFT_POSTROUTING, "ip daddr == 224.0.0.0/4 return"),
        _nft("add rule", NFT_POSTROUTING, "ip6 daddr == ff00::/8 return"),
        _nft("add rule", NFT_POSTROUTING, "goto", NFT_MASQ_CHAIN),
    ]
    cmds += [rule.delete_command() for rule in stale]
    for addr in addresses:
        ip = "ip" if addr.version == 4 else "ip6"
        match = f"{ip} saddr == {addr.ip} {ip} daddr != {addr.network} masquerade"
        cmds.append(_nft("add rule", NFT_MASQ_CHAIN, match, "comment", note))
    return cmds


def nft_rules_of(rules: Iterable[NftRule], prefix: str) -> list[NftRule]:
    return [r for r in rules if r.comment.startswith(prefix)]


# -- applying ---------------------------------------------------------------------------------


def resolve_backend(backend: str | None) -> str:
    """``iptables`` or ``nftables`` for a configured ``ipMasqBackend`` (None/"auto":
    iptables when it is installed, as the reference decides; else nftables,
    which needs no ``nft`` here)."""
    if backend in BACKENDS:
        return backend
    if backend not in (None, "auto"):
        raise InvalidConfig(f"ipMasqBackend: unknown ipmasq backend {backend!r}")
    from cni_plugins.linux.iptables import Iptables

    if Iptables(4).available():
        return "iptables"
    # The reference picks nftables when only nft is installed; with neither,
    # ours still works (nftables over netlink), where iptables cannot.
    return "nftables"


def setup(
    backend: str | None,
    addresses: Sequence[IPInterface],
    network: str,
    ifname: str,
    container_id: str,
) -> None:
    """Install masquerading for ``addresses`` (``SetupIPMasqForNetworks``)."""
    if resolve_backend(backend) == "nftables":
        _nft_setup(addresses, network, ifname, container_id)
        return
    from cni_plugins.linux.nfprobe import Netfilter

    chain = chain_name(network, container_id)
    with Netfilter() as nf:
        for family, rules in sorted(iptables_rules(addresses, network, container_id).items()):
            if not netlink_setup(nf, family, rules, chain):
                restore_setup(family, rules, chain)


def netlink_setup(nf: Netfilter, family: int, rules: list[list[str]], chain: str) -> bool:
    """``iptables_setup``'s changes in one nf_tables batch (``nfadd``, no
    exec), in its order: ``chain`` created or flushed and refilled, the
    POSTROUTING jumps not there yet appended.  False: nothing done (legacy
    backend, an unencodable rule, a jump to ``chain`` in a shape not ours)."""
    from cni_plugins.linux import nfadd

    own = nfadd.encode_all(family, [r[2:] for r in rules if r[1] == chain])
    jumps = nfadd.encode_all(family, [r[2:] for r in rules if r[1] == "POSTROUTING"])
    if own is None or jumps is None:
        return False

    def plan(reader: nfadd.Reader) -> nfadd.Plan:
        present = reader.chains([chain, "POSTROUTING"])
        out = nfadd.Plan(family, "nat")
        if not present and not reader.table_exists():
            out.new_table()
        if chain in present:
            out.flush(chain)
        else:
            out.new_chain(chain)
        for rule in own:
            out.append(chain, rule)
        have = reader.rules("POSTROUTING") if "POSTROUTING" in present else []
        if any(r.jump_target() == chain and not any(nfadd.same(r, j) for j in jumps) for r in have):
            raise nfadd.Unplannable(f"a jump to {chain} not recognised")
        for rule in jumps:
            if any(nfadd.same(r, rule) for r in have):
                continue
            if "POSTROUTING" not in present:
                out.new_builtin("POSTROUTING")
                present.add("POSTROUTING")
            out.append("POSTROUTING", rule)
        return out

    return nfadd.apply(nf, family, "nat", plan)


def restore_setup(family: int, rules: list[list[str]], chain: str) -> None:
    """``iptables_setup`` with one ``iptables-restore`` (any backend)."""
    from cni_plugins.linux.iptables import Iptables

    ipt = Iptables(family)
    ipt.restore(iptables_setup(rules, _jumps_to(ipt, chain), chain))


def _jumps_to(ipt: Iptables, chain: str) -> list[list[str]]:
    """POSTROUTING's rules naming ``chain``, so ADD does not add a jump twice.
    None can exist when the kernel says the chain does not (no exec: the usual
    first ADD); else ``-S POSTROUTING`` rather than the whole table."""
    from cni_plugins.linux import nfprobe
    from cni_plugins.linux.iptables import parse_save

    present = nfprobe.iptables_chains(ipt.family, "nat", (chain, "POSTROUTING"))
    if present is not None and not {chain, "POSTROUTING"} <= present:
        return []
    return parse_save(ipt.list_chain("nat", "POSTROUTING"), (chain,))[1]


def _nft_setup(
    addresses: Sequence[IPInterface], network: str, ifname: str, container_id: str
) -> None:
    """``nft_setup_commands`` as one nf_tables batch over netlink (no ``nft``)."""
    from cni_plugins.linux import nftnl
    from cni_plugins.linux.nfprobe import Netfilter

    with Netfilter() as nf:
        nftnl.apply(
            nf,
            NFT_FAMILY,
            NFT_TABLE,
            lambda rules: nft_setup_batch(addresses, network, ifname, container_id, rules),
        )


def nft_setup_batch(
    addresses: Sequence[IPInterface],
    network: str,
    ifname: str,
    container_id: str,
    rules: list[Rule] | None,
) -> nftnl.Batch:
    """``nft_setup_commands``' transaction as a batch; ``rules``: the table's now."""
    from cni_plugins.linux import nftexpr as x
    from cni_plugins.linux import nftnl
    from cni_plugins.spec.ip import IPNetwork, ip_network

    b = nftnl.Batch(NFT_FAMILY, NFT_TABLE)
    b.new_table(NFT_TABLE_COMMENT)
    b.new_chain(NFT_MASQ_CHAIN, comment=NFT_CHAIN_COMMENT)
    b.new_chain(NFT_POSTROUTING, hook=("postrouting", 100))
    b.flush(NFT_POSTROUTING)
    for family in (4, 6):
        multicast = ip_network(MULTICAST[family])
        b.add_rule(
            NFT_POSTROUTING,
            x.nfproto(family) + x.address(multicast, destination=True) + x.return_(),
        )
    b.add_rule(NFT_POSTROUTING, x.goto(NFT_MASQ_CHAIN))
    prefix = nft_instance_hash(network, ifname, container_id)
    for rule in rules or []:
        if rule.chain == NFT_MASQ_CHAIN and nftnl.comment_of(rule).startswith(prefix):
            b.delete(rule)
    note = nft_comment(network, ifname, container_id)
    for addr in addresses:
        host = IPNetwork(addr.ip, addr.max_prefixlen)
        exprs = (
            x.nfproto(addr.version)
            + x.address(host, destination=False)
            + x.address(addr.network, destination=True, negate=True)
            + x.masquerade()
        )
        b.add_rule(NFT_MASQ_CHAIN, exprs, note)
    return b


def teardown(network: str, ifname: str, container_id: str) -> None:
    """Remove this attachment's masquerading; absent rules and a missing tool
    are fine, and no addresses are needed.  iptables first (both families);
    nftables only when iptables had nothing of it: an attachment has rules in
    one backend, and the pod may have been added by another version or
    configuration than this DEL's.  Saves an ``nft`` exec on the common path."""
    from cni_plugins.linux.nfprobe import Netfilter

    chain = chain_name(network, container_id)
    # One netfilter socket for the probes and the removal, closed last (Netfilter).
    with Netfilter() as nf:
        found = _remove_iptables_chains(lambda _rules: {chain}, known=chain, nf=nf)
        if not found:
            _nft_remove(
                nf,
                lambda rules: nft_native_rules_of(
                    rules, nft_instance_hash(network, ifname, container_id)
                ),
            )


def gc(network: str, valid: Iterable[tuple[str, str]]) -> None:
    """Remove masquerading of ``network`` attachments not in ``valid``
    ((containerID, ifname) pairs), in both backends."""
    valid = list(valid)
    ids = {cid for cid, _ifname in valid}
    _remove_iptables_chains(lambda rules: iptables_stale_chains(rules, network, ids))
    keep = {nft_comment(network, ifname, cid) for cid, ifname in valid}

    def stale_nft(rules: list[Rule]) -> list[Rule]:
        from cni_plugins.linux.nftnl import comment_of

        mine = nft_native_rules_of(rules, nft_network_hash(network) + "-")
        return [r for r in mine if comment_of(r) not in keep]

    from cni_plugins.linux.nfprobe import Netfilter

    with Netfilter() as nf:
        _nft_remove(nf, stale_nft)


def _remove_iptables_chains(
    select: Callable[[list[list[str]]], set[str]],
    known: str | None = None,
    nf: Netfilter | None = None,
) -> bool:
    """Remove the selected chains and the rules jumping to them, in both
    families; whether any of them existed.  ``known``: the one chain
    ``select`` picks, whatever the rules, which allows the cheap ways first
    (through ``nf``)."""
    from cni_plugins.linux.iptables import Iptables, ToolNotFound, parse_save

    errors: list[CNIError] = []
    found = False
    for family in (4, 6):
        cheap = None if known is None or nf is None else _remove_known_chain(nf, family, known)
        if cheap is not None:
            found = found or cheap
            continue
        ipt = Iptables(family)
        try:
            chains, existing = parse_save(ipt.save("nat"), (CHAIN_PREFIX,))
            doomed = select(existing)
            found = found or bool(doomed & set(chains))
            ipt.restore(iptables_teardown(chains, existing, doomed))
        except ToolNotFound:
            continue
        except CNIError as exc:
            errors.append(exc)
    if errors:
        raise _joined(errors)
    return found


def _remove_known_chain(nf: Netfilter, family: int, chain: str) -> bool | None:
    """Remove ``chain`` without dumping the nat table; whether it existed, or
    None: take the full way (``-save``), which also reports failures.

    The kernel tells (``nfprobe``, no exec) whether the chain exists; absent,
    nothing can jump to it.  Present: it goes with its jumps from POSTROUTING
    (where they live, also the legacy ``-s <cidr>`` form) in one nf_tables
    transaction (``nfremove``, no exec).  When that cannot be done (legacy
    backend, a jump from elsewhere), POSTROUTING alone is listed and one
    restore removes them; a jump from anywhere else fails the chain's ``-X``
    and with it the atomic restore, and the full way then finds it.  Any
    doubt: None."""
    from cni_plugins.linux import nfremove
    from cni_plugins.linux.iptables import Iptables, parse_save

    present = nf.iptables_chains(family, "nat", (chain, "POSTROUTING"))
    if present is None:
        return None
    if chain not in present:
        return False
    referrers = ["POSTROUTING"] if "POSTROUTING" in present else []
    if nfremove.remove_chains(
        nf, family, "nat", [chain], referrers=referrers, inspect=lambda _rules: True
    ):
        return True
    ipt = Iptables(family)
    try:
        rules = (
            parse_save(ipt.list_chain("nat", "POSTROUTING"), (chain,))[1]
            if "POSTROUTING" in present
            else []
        )
        ipt.restore(iptables_teardown({chain}, rules, {chain}))
    except CNIError:
        return None
    return True


def _nft_remove(nf: Netfilter, select: Callable[[list[Rule]], list[Rule]]) -> None:
    """Delete the ``masq_checks`` rules ``select`` picks: one dump, one batch
    over netlink (no ``nft``)."""
    if nf.sock is None or nf.nft_table_exists(NFT_FAMILY, NFT_TABLE) is False:
        return  # no table (without nfnetlink there is no nftables table either)
    from cni_plugins.linux import nftnl

    def plan(rules: list[Rule] | None) -> nftnl.Batch:
        batch = nftnl.Batch(NFT_FAMILY, NFT_TABLE)
        for rule in select([r for r in rules or [] if r.chain == NFT_MASQ_CHAIN]):
            batch.delete(rule)
        return batch

    nftnl.apply(nf, NFT_FAMILY, NFT_TABLE, plan)


def nft_native_rules_of(rules: Iterable[Rule], prefix: str) -> list[Rule]:
    """Rules read over netlink whose comment starts with ``prefix``."""
    from cni_plugins.linux.nftnl import comment_of

    return [r for r in rules if comment_of(r).startswith(prefix)]


def check(
    backend: str | None,
    addresses: Sequence[IPInterface],
    network: str,
    ifname: str,
    container_id: str,
) -> None:
    """CHECK: the masquerade rules for ``addresses`` are in place."""
    if resolve_backend(backend) == "nftables":
        from cni_plugins.linux import nftnl
        from cni_plugins.linux.nfprobe import Netfilter

        with Netfilter() as nf:
            listed = nftnl.read(nf, NFT_FAMILY, NFT_TABLE) or []
        in_chain = [r for r in listed if r.chain == NFT_MASQ_CHAIN]
        mine = nft_native_rules_of(in_chain, nft_instance_hash(network, ifname, container_id))
        if len(mine) < len(addresses):
            raise CNIError(
                f"nftables masquerade rules for {container_id} missing:"
                f" {len(mine)} of {len(addresses)} found"
            )
        return
    from cni_plugins.linux.iptables import Iptables, parse_save

    for family, rules in sorted(iptables_rules(addresses, network, container_id).items()):
        _chains, existing = parse_save(
            Iptables(family).save("nat"), (chain_name(network, container_id),)
        )
        missing = [r for r in rules if r not in existing]
        if missing:
            raise CNIError(
                f"masquerade rule missing in table nat: {' '.join(missing[0])}",
                f"chain {chain_name(network, container_id)}",
            )


def _joined(errors: Sequence[CNIError]) -> CNIError:
    if len(errors) == 1:
        return errors[0]
    return CNIError("; ".join(str(e) for e in errors))
