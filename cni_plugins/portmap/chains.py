"""The reference's iptables layout (table ``nat``) as pure data.

Byte-compatible with containernetworking/plugins ``plugins/meta/portmap``
(``portmap_iptables.go`` ``gen*Chain`` / ``fillDnatRules``, ``chain.go``), so a
node can switch between the Go binary and ours with pods running::

    PREROUTING, OUTPUT:  -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    POSTROUTING (first): -m comment --comment "CNI portfwd requiring masquerade"
                         -j CNI-HOSTPORT-MASQ
    CNI-HOSTPORT-DNAT:   -p tcp -m comment --comment "dnat name: \\"<net>\\" id: \\"<cid>\\""
                         -m multiport --dports 8080,8081 [conditions] -j CNI-DN-<hash>
    CNI-DN-<hash>:       -s <container net> -p tcp -m tcp --dport 8080
                         -j CNI-HOSTPORT-SETMARK                      (hairpin)
                         -s 127.0.0.1/32 -p tcp -m tcp --dport 8080
                         -j CNI-HOSTPORT-SETMARK                      (IPv4 localhost)
                         -p tcp -m tcp --dport 8080 -j DNAT --to-destination <ip>:80
    CNI-HOSTPORT-SETMARK: -m comment --comment "CNI portfwd masquerade mark"
                          -j MARK --set-xmark 0x2000/0x2000
    CNI-HOSTPORT-MASQ:    -m mark --mark 0x2000/0x2000 -j MASQUERADE

Rules are argument lists in the form ``iptables-save`` prints them (``-s`` /
``-d`` first, implicit ``-m tcp`` spelled out, addresses with their prefix
length), so they compare equal to what the kernel reports; only the
operator's ``conditions`` can come back reordered, which is why entry rules are
recognised by their comment and target rather than compared verbatim.

``setup``/``teardown`` turn a layout plus the parsed ``iptables-save`` output
into one ``Restore`` per family (one ``iptables-restore --noflush`` exec).
"""

from __future__ import annotations

from cni_plugins.linux.chainname import format_chain_name, parse_owner_comment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from cni_plugins.linux.iptables import Restore
    from cni_plugins.portmap.config import PortMapConf, PortMapping
    from cni_plugins.spec.ip import IPInterface

# The names of the top-level summary chains.
# These should never be changed, or else upgrading will require manual intervention.
TOP_LEVEL_DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
OLD_TOP_LEVEL_SNAT_CHAIN = "CNI-HOSTPORT-SNAT"
DNAT_PREFIX = "CNI-DN-"
OLD_SNAT_PREFIX = "CNI-SN-"
# Every chain above starts so: the rules that name none of them (most of a
# node's nat table) need not be parsed (``parse_save(..., MENTIONED)``).
MENTIONED = ("CNI-",)
# multiport matches at most 15 ports.
MULTIPORT_MAX = 15
# iptables' comment match limit.
COMMENT_MAX = 255
SETMARK_COMMENT = "CNI portfwd masquerade mark"
MASQ_COMMENT = "CNI portfwd requiring masquerade"


class Chain:
    """Go's ``chain``: a chain, its rules, and the rules jumping to it.

    ``rules`` and ``entry_rules`` hold arguments after the chain name; an entry
    rule gets ``-j <name>`` appended in each of ``entry_chains``.
    """

    __slots__ = ("entry_chains", "entry_rules", "name", "prepend_entry", "rules")

    def __init__(
        self,
        name: str,
        *,
        rules: Sequence[Sequence[str]] = (),
        entry_chains: Sequence[str] = (),
        entry_rules: Sequence[Sequence[str]] = (),
        prepend_entry: bool = False,
    ) -> None:
        self.name = name
        self.rules = [list(r) for r in rules]
        self.entry_chains = tuple(entry_chains)
        self.entry_rules = [list(r) for r in entry_rules]
        self.prepend_entry = prepend_entry

    def entries(self) -> list[list[str]]:
        """Every entry rule as ``iptables-save`` lists it: ``["-A", chain, ..., "-j", name]``."""
        return [
            ["-A", entry_chain, *rule, "-j", self.name]
            for entry_chain in self.entry_chains
            for rule in self.entry_rules
        ]

    def full_rules(self) -> list[list[str]]:
        return [["-A", self.name, *rule] for rule in self.rules]

    def __repr__(self) -> str:
        return f"Chain({self.name!r}, rules={self.rules!r}, entry_rules={self.entry_rules!r})"


# -- names ------------------------------------------------------------------------------------


def _chain_name(prefix: str, network: str, container_id: str) -> str:
    return format_chain_name(prefix, network, container_id)


def dnat_chain_name(network: str, container_id: str) -> str:
    return _chain_name(DNAT_PREFIX, network, container_id)


def old_snat_chain_name(network: str, container_id: str) -> str:
    """The per-container chain of the old SNAT design, removed on DEL if found."""
    return _chain_name(OLD_SNAT_PREFIX, network, container_id)


def comment(network: str, container_id: str) -> str:
    """``dnat name: "<net>" id: "<cid>"`` (Go ``%s``, not ``%q``), trimmed like Go."""
    text = f'dnat name: "{network}" id: "{container_id}"'
    return text if len(text) <= COMMENT_MAX else text[:253] + "..."


def parse_comment(text: str) -> tuple[str, str] | None:
    """(network, containerID) of a ``comment()`` string, else None."""
    return parse_owner_comment(text, "dnat ", escaped=False)


# -- the layout -------------------------------------------------------------------------------


def toplevel_dnat_chain() -> Chain:
    return Chain(
        TOP_LEVEL_DNAT_CHAIN,
        entry_chains=("PREROUTING", "OUTPUT"),
        entry_rules=[["-m", "addrtype", "--dst-type", "LOCAL"]],
    )


def setmark_chain(mark: str) -> Chain:
    return Chain(
        SETMARK_CHAIN,
        rules=[["-m", "comment", "--comment", SETMARK_COMMENT, "-j", "MARK", "--set-xmark", mark]],
    )


def masq_chain(mark: str) -> Chain:
    # Prepended, "because otherwise it is stomped on by the masquerading rules
    # created by the CNI ptp and bridge plugins" (the reference).
    return Chain(
        MASQ_CHAIN,
        rules=[["-m", "mark", "--mark", mark, "-j", "MASQUERADE"]],
        entry_chains=("POSTROUTING",),
        entry_rules=[["-m", "comment", "--comment", MASQ_COMMENT]],
        prepend_entry=True,
    )


def _host(address: IPInterface) -> str:
    """An address with its full prefix length, as iptables-save prints it."""
    return f"{address.ip}/{address.max_prefixlen}"


def _to_destination(address: IPInterface, port: int) -> str:
    return f"[{address.ip}]:{port}" if address.version == 6 else f"{address.ip}:{port}"


def group_ports(mappings: Iterable[PortMapping]) -> list[tuple[str, list[str]]]:
    """(protocol, multiport spec) per entry rule: protocols sorted, host ports in
    mapping order (duplicates kept, as Go), at most 15 per spec."""
    by_proto: dict[str, list[int]] = {}
    for m in mappings:
        by_proto.setdefault(m.protocol, []).append(m.host_port)
    out = []
    for proto in sorted(by_proto):
        ports = by_proto[proto]
        specs = [
            ",".join(str(p) for p in ports[i : i + MULTIPORT_MAX])
            for i in range(0, len(ports), MULTIPORT_MAX)
        ]
        out.append((proto, specs))
    return out


def entry_rule(proto: str, spec: str, note: str, conditions: Sequence[str] = ()) -> list[str]:
    return [
        "-p",
        proto,
        "-m",
        "comment",
        "--comment",
        note,
        "-m",
        "multiport",
        "--dports",
        spec,
        *conditions,
    ]


def dnat_chain(conf: PortMapConf, network: str, container_id: str, address: IPInterface) -> Chain:
    """Go ``genDnatChain`` + ``fillDnatRules`` for one container address.

    Entry rules cover every mapping (also those whose hostIP is of the other
    family, as the reference); the chain's rules skip those.  Per mapping: the
    hairpin mark (source = the container's network, or everything with
    ``masqAll``), the localhost mark (IPv4, not ``masqAll``), then the DNAT.
    """
    v6 = address.version == 6
    note = comment(network, container_id)
    conditions = conf.conditions(address.version)
    entry_rules = [
        entry_rule(proto, spec, note, conditions)
        for proto, specs in group_ports(conf.mappings)
        for spec in specs
    ]
    mark_chain = conf.external_set_mark_chain or SETMARK_CHAIN
    rules: list[list[str]] = []
    for m in conf.mappings:
        if not m.applies_to(address.version):
            continue
        dst = m.destination()
        dst_args = ["-d", f"{dst}/{dst.max_prefixlen}"] if dst is not None else []
        match = ["-p", m.protocol, "-m", m.protocol, "--dport", str(m.host_port)]
        if conf.snat:
            # "-s 0.0.0.0/0" / "-s ::/0" match everything; iptables-save omits them.
            src = [] if conf.masq_all else ["-s", str(address.network)]
            rules.append([*src, *dst_args, *match, "-j", mark_chain])
            if not v6 and not conf.masq_all:
                rules.append(["-s", "127.0.0.1/32", *dst_args, *match, "-j", mark_chain])
        to = _to_destination(address, m.container_port)
        rules.append([*dst_args, *match, "-j", "DNAT", "--to-destination", to])
    return Chain(
        dnat_chain_name(network, container_id),
        rules=rules,
        entry_chains=(TOP_LEVEL_DNAT_CHAIN,),
        entry_rules=entry_rules,
    )


def layout(conf: PortMapConf, network: str, container_id: str, address: IPInterface) -> list[Chain]:
    """Every chain ADD needs for ``address``, shared ones first (the DNAT rules
    jump to SETMARK, so it must exist before them)."""
    chains = []
    if conf.snat and conf.external_set_mark_chain is None:
        chains += [setmark_chain(conf.mark), masq_chain(conf.mark)]
    chains.append(toplevel_dnat_chain())
    chains.append(dnat_chain(conf, network, container_id, address))
    return chains


# -- turning it into one restore --------------------------------------------------------------


def missing_shared(chains: Sequence[Chain], existing_chains: set[str]) -> list[str]:
    """The shared chains of a layout (all but the last) that do not exist yet."""
    return [c.name for c in chains[:-1] if c.name not in existing_chains]


def create(names: Iterable[str]) -> Restore:
    """The restore that creates ``names`` with ``-N``: it fails, rather than
    empties, a chain that exists.  Shared chains are created so, apart from
    ``setup``'s restore: declaring them there (``:NAME``) would empty one that
    a concurrent ADD has just created and filled, losing its pod's entry rules
    (4 of 10 trials with 4 concurrent first ADDs on a fresh node did)."""
    from cni_plugins.linux.iptables import Restore

    r = Restore("nat")
    for name in names:
        r.new_chain(name)
    return r


def setup(
    chains: Sequence[Chain], existing_chains: set[str], existing_rules: Sequence[list[str]]
) -> Restore:
    """The restore that installs ``chains``: the shared ones idempotently (they
    must exist already, see ``create``; rules and entry rules added when
    missing, never flushed: other pods use them), the last one (per container)
    replaced wholesale: created or flushed, refilled, and its old entry rules
    swapped for the new ones."""
    from cni_plugins.linux.iptables import Restore

    r = Restore("nat")
    *shared, own = chains
    present = [list(rule) for rule in existing_rules]
    r.chain(own.name)
    for chain in shared:
        for rule in chain.full_rules():
            if rule not in present:
                r.lines.append(rule)
    r.lines += own.full_rules()
    for chain in shared:
        for rule in chain.entries():
            if rule in present:
                continue
            if chain.prepend_entry:
                r.insert(*rule[1:])
            else:
                r.lines.append(rule)
    for rule in present:
        if jump_target(rule) == own.name and rule[1] != own.name:
            r.delete(*rule[1:])
    r.lines += own.entries()
    return r


def jump_target(rule: Sequence[str]) -> str | None:
    for i, arg in enumerate(rule[:-1]):
        if arg in ("-j", "--jump", "-g", "--goto"):
            return rule[i + 1]
    return None


def teardown(
    existing_chains: set[str], existing_rules: Sequence[list[str]], doomed: Iterable[str]
) -> Restore:
    """The restore that removes the chains ``doomed``: every rule jumping to one
    (wherever it is, so entry rules with any conditions go too), then flush and
    delete each chain that exists.  Empty when there is nothing to remove."""
    from cni_plugins.linux.iptables import Restore

    doomed_set = set(doomed)
    r = Restore("nat")
    for rule in existing_rules:
        if jump_target(rule) in doomed_set and rule[1] not in doomed_set:
            r.delete(*rule[1:])
    for chain in sorted(doomed_set & existing_chains):
        r.flush(chain)
        r.delete_chain(chain)
    return r


def udp_ports(existing_rules: Iterable[list[str]], chain_names: Iterable[str]) -> set[int]:
    """UDP host ports that rules of ``chain_names`` DNAT (for the conntrack flush)."""
    names = set(chain_names)
    ports = set()
    for rule in existing_rules:
        if rule[1] in names and jump_target(rule) == "DNAT" and _option(rule, "-p") == "udp":
            port = _option(rule, "--dport")
            if port is not None and port.isdigit():
                ports.add(int(port))
    return ports


def stale_chains(
    existing_rules: Iterable[list[str]], network: str, valid_ids: set[str]
) -> set[str]:
    """Per-container chains of ``network`` whose container is not in ``valid_ids``:
    an entry rule in CNI-HOSTPORT-DNAT carries our comment, and the comment's
    (network, containerID) hashes to the very chain it jumps to."""
    stale: set[str] = set()
    for rule in existing_rules:
        if rule[1] != TOP_LEVEL_DNAT_CHAIN or "--comment" not in rule:
            continue
        parsed = parse_comment(rule[rule.index("--comment") + 1])
        if parsed is None:
            continue
        net, cid = parsed
        target = jump_target(rule)
        if net == network and cid not in valid_ids and target == dnat_chain_name(net, cid):
            stale.add(target)
    return stale


def check(
    chains: Sequence[Chain], existing_chains: set[str], existing_rules: Sequence[list[str]]
) -> list[str]:
    """What is missing of ``chains`` (empty: all there).  Chain rules compare
    verbatim; entry rules of the per-container chain by protocol, ports, comment
    and target (the operator's conditions may come back reordered)."""
    present = [list(rule) for rule in existing_rules]
    problems = []
    *shared, own = chains
    for chain in (*shared, own):
        if chain.name not in existing_chains:
            problems.append(f"chain {chain.name} not found in table nat")
            continue
        for rule in chain.full_rules():
            if rule not in present:
                problems.append(f"rule {' '.join(rule)} not found")
    for chain in shared:
        for rule in chain.entries():
            if rule not in present:
                problems.append(f"rule {' '.join(rule)} not found")
    for rule in own.entries():
        if not any(_same_entry(rule, have) for have in present):
            problems.append(f"rule {' '.join(rule)} not found")
    return problems


def _same_entry(want: list[str], have: list[str]) -> bool:
    if have[:2] != want[:2] or jump_target(have) != jump_target(want):
        return False
    return all(_option(have, opt) == _option(want, opt) for opt in ("-p", "--comment", "--dports"))


def _option(rule: list[str], name: str) -> str | None:
    try:
        return rule[rule.index(name) + 1]
    except (ValueError, IndexError):
        return None
