"""The reference's nftables layout (``portmap_nftables.go`` at HEAD) as pure data.

Tables ``ip cni_hostport`` and ``ip6 cni_hostport`` (comment "CNI portmap
plugin"), chains::

    hostports          every DNAT rule:  [ip daddr <hostIP>] tcp dport 8080 dnat to 10.244.1.2:80
    hostip_hostports   legacy, kept (empty) so upgrades stay transparent
    hostports_all      jump hostip_hostports; jump hostports
    prerouting         nat/prerouting/dstnat: [conditions] fib daddr type local jump hostports_all
    output             nat/output/dstnat:     [conditions] fib daddr type local jump hostports_all
    masquerading       nat/postrouting/srcnat:
                       ip saddr <cip|0.0.0.0/0> ip daddr <cip> masquerade
                       ip saddr 127.0.0.1 ip daddr <cip> masquerade      (IPv4, not masqAll)

The layout comes twice: as nft text commands (``setup_commands``, used only
for an ADD with ``conditionsV4/V6``, which are nft syntax) and as one
nf_tables batch over netlink (``setup_batch``, every other ADD: no ``nft``).
Both give the same ruleset (tests/integration/portmap/test_nft_paths.py).
DEL, GC and CHECK read the tables over netlink; a DNAT rule is recognised by
what it means (``native_signature`` over ``linux.nftexpr.decode``).

Every per-container rule carries the container ID as its comment; that is how
DEL (ours and Go's) finds them.  The comment holds no network name, so GC can
only tell containers apart, not networks (see ``apply.gc``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from cni_plugins.linux.nfmsg import Rule
    from cni_plugins.linux.nftables import NftRule
    from cni_plugins.linux.nftnl import Batch
    from cni_plugins.portmap.config import PortMapConf
    from cni_plugins.spec.ip import IPAddress, IPInterface, IPNetwork

TABLE = "cni_hostport"
TABLE_COMMENT = "CNI portmap plugin"
HOSTPORTS = "hostports"
HOSTIP_HOSTPORTS = "hostip_hostports"
HOSTPORTS_ALL = "hostports_all"
MASQUERADING = "masquerading"
# Chains that hold per-container rules (DEL/GC look in all three).
CONTAINER_CHAINS = (HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING)


def family_name(family: int) -> str:
    return "ip" if family == 4 else "ip6"


def _q(text: str) -> str:
    from cni_plugins.linux.nftables import quote

    return quote(text)


def setup_commands(
    conf: PortMapConf, container_id: str, address: IPInterface, stale: Iterable[NftRule] = ()
) -> list[str]:
    """One family's part of the ADD transaction: the skeleton ensured (the
    jump chains rewritten), this container's previous rules (``stale``)
    deleted, its rules added."""
    fam = family_name(address.version)
    t = f"{fam} {TABLE}"
    note = f"comment {_q(container_id)}"
    conditions = " ".join(conf.conditions(address.version))
    local = f"{conditions} fib daddr type local" if conditions else "fib daddr type local"
    cmds = [
        f"add table {t} {{ comment {_q(TABLE_COMMENT)} ; }}",
        f"add chain {t} {HOSTPORTS}",
        f"add chain {t} {HOSTIP_HOSTPORTS}",
        f"add chain {t} {HOSTPORTS_ALL}",
        f"flush chain {t} {HOSTPORTS_ALL}",
        f"add rule {t} {HOSTPORTS_ALL} jump {HOSTIP_HOSTPORTS}",
        f"add rule {t} {HOSTPORTS_ALL} jump {HOSTPORTS}",
        f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat ; }}",
        f"flush chain {t} prerouting",
        f"add rule {t} prerouting {local} jump {HOSTPORTS_ALL}",
        f"add chain {t} output {{ type nat hook output priority -100 ; }}",
        f"flush chain {t} output",
        f"add rule {t} output {local} jump {HOSTPORTS_ALL}",
    ]
    if conf.snat:
        cmds.append(
            f"add chain {t} {MASQUERADING} {{ type nat hook postrouting priority srcnat ; }}"
        )
    cmds += [rule.delete_command() for rule in stale]
    ip = address.ip
    for m in conf.mappings:
        if not m.applies_to(address.version):
            continue
        dst = m.destination()
        match = f"{fam} daddr {dst} " if dst is not None else ""
        to = f"[{ip}]:{m.container_port}" if address.version == 6 else f"{ip}:{m.container_port}"
        cmds.append(
            f"add rule {t} {HOSTPORTS} {match}{m.protocol} dport {m.host_port} dnat to {to} {note}"
        )
    if conf.snat:
        src = ("::/0" if address.version == 6 else "0.0.0.0/0") if conf.masq_all else str(ip)
        cmds.append(
            f"add rule {t} {MASQUERADING} {fam} saddr {src} {fam} daddr {ip} masquerade {note}"
        )
        if address.version == 4 and not conf.masq_all:
            cmds.append(
                f"add rule {t} {MASQUERADING} ip saddr 127.0.0.1 ip daddr {ip} masquerade {note}"
            )
    return cmds


def expected_counts(conf: PortMapConf, family: int) -> tuple[int, int]:
    """(DNAT rules, masquerade rules) ADD makes for a container address of ``family``."""
    hostports = sum(1 for m in conf.mappings if m.applies_to(family))
    masq = 0
    if conf.snat:
        masq = 2 if family == 4 and not conf.masq_all else 1
    return hostports, masq


def expected_dnats(
    conf: PortMapConf, address: IPInterface
) -> list[tuple[str, int, str | None, str, int]]:
    """What each DNAT rule of ``address`` must match: (protocol, host port,
    host address or None, container address, container port)."""
    out = []
    for m in conf.mappings:
        if m.applies_to(address.version):
            dst = m.destination()
            host = None if dst is None else str(dst)
            out.append((m.protocol, m.host_port, host, str(address.ip), m.container_port))
    return out


def dnat_signature(expr: Sequence[Any]) -> tuple[str, int, str | None, str, int] | None:
    """The ``expected_dnats`` tuple of a listed rule's JSON expression, or None."""
    proto = daddr = to_addr = None
    port = to_port = None
    for item in expr:
        if not isinstance(item, dict):
            continue
        match = item.get("match")
        if isinstance(match, dict) and match.get("op", "==") == "==":
            left = match.get("left")
            payload = left.get("payload") if isinstance(left, dict) else None
            if isinstance(payload, dict):
                if payload.get("field") == "dport":
                    proto, port = payload.get("protocol"), match.get("right")
                elif payload.get("field") == "daddr":
                    daddr = match.get("right")
        dnat = item.get("dnat")
        if isinstance(dnat, dict):
            to_addr, to_port = dnat.get("addr"), dnat.get("port")
    if not (isinstance(proto, str) and isinstance(port, int) and isinstance(to_port, int)):
        return None
    if not isinstance(to_addr, str) or not (daddr is None or isinstance(daddr, str)):
        return None
    return proto, port, daddr, to_addr, to_port


def rules_of(rules: Iterable[NftRule], container_ids: Sequence[str] | None = None) -> list[NftRule]:
    """Per-container rules among ``rules``: in one of ``CONTAINER_CHAINS``, with
    a non-empty comment that is one of ``container_ids`` (None: any)."""
    return [
        r
        for r in rules
        if r.chain in CONTAINER_CHAINS
        and r.comment
        and (container_ids is None or r.comment in container_ids)
    ]


# -- the same layout over nf_tables netlink (no ``nft``) ----------------------------------------


def needs_nft(conf: PortMapConf, family: int) -> bool:
    """``conditionsV4``/``V6`` are operator-written nft syntax: only ``nft`` can
    turn them into expressions, so ADD with them goes through ``nft``."""
    return bool(conf.conditions(family))


def setup_batch(
    conf: PortMapConf, container_id: str, address: IPInterface, rules: list[Rule] | None
) -> Batch:
    """``setup_commands`` (without conditions) as one nf_tables batch: ``rules``
    is the table's content now (None: no table); this container's old rules go."""
    from cni_plugins.linux import nftexpr as x
    from cni_plugins.linux.nftnl import Batch

    b = Batch(family_name(address.version), TABLE)
    b.new_table(TABLE_COMMENT)
    for chain in (HOSTPORTS, HOSTIP_HOSTPORTS, HOSTPORTS_ALL):
        b.new_chain(chain)
    b.flush(HOSTPORTS_ALL)
    b.add_rule(HOSTPORTS_ALL, x.jump(HOSTIP_HOSTPORTS))
    b.add_rule(HOSTPORTS_ALL, x.jump(HOSTPORTS))
    for chain in ("prerouting", "output"):
        b.new_chain(chain, hook=(chain, -100))
        b.flush(chain)
        b.add_rule(chain, x.fib_daddr_local() + x.jump(HOSTPORTS_ALL))
    if conf.snat:
        b.new_chain(MASQUERADING, hook=("postrouting", 100))
    for rule in native_rules_of(rules or [], [container_id]):
        b.delete(rule)
    ip = address.ip
    for m in conf.mappings:
        if not m.applies_to(address.version):
            continue
        dst = m.destination()
        match = b"" if dst is None else x.address(_host(dst), destination=True)
        exprs = match + x.dport(m.protocol, m.host_port) + x.dnat(ip, m.container_port)
        b.add_rule(HOSTPORTS, exprs, container_id)
    if conf.snat:
        cip = _host(ip)
        if conf.masq_all:
            src = x.address(_any(address.version), destination=False)
        else:
            src = x.address(cip, destination=False)
        to = x.address(cip, destination=True) + x.masquerade()
        b.add_rule(MASQUERADING, src + to, container_id)
        if address.version == 4 and not conf.masq_all:
            local = x.address(_host(_loopback()), destination=False)
            b.add_rule(MASQUERADING, local + to, container_id)
    return b


def _host(address: IPAddress) -> IPNetwork:
    from cni_plugins.spec.ip import IPNetwork

    return IPNetwork(address, address.max_prefixlen)


def _any(family: int) -> IPNetwork:
    from cni_plugins.spec.ip import ip_network

    return ip_network("0.0.0.0/0" if family == 4 else "::/0")


def _loopback() -> IPAddress:
    from cni_plugins.spec.ip import ip_address

    return ip_address("127.0.0.1")


def native_rules_of(
    rules: Iterable[Rule], container_ids: Sequence[str] | None = None
) -> list[Rule]:
    """``rules_of`` for rules read over netlink."""
    from cni_plugins.linux.nftnl import comment_of

    out = []
    for rule in rules:
        note = comment_of(rule) if rule.chain in CONTAINER_CHAINS else ""
        if note and (container_ids is None or note in container_ids):
            out.append(rule)
    return out


def native_signature(rule: Rule, family: int) -> tuple[str, int, str | None, str, int] | None:
    """The ``expected_dnats`` tuple of a DNAT rule read over netlink, by meaning
    (a rule Go's nft wrote reads the same), or None for any other shape."""
    from cni_plugins.linux import nftexpr

    decoded = nftexpr.decode(rule.exprs, family)
    if decoded is None or decoded.action is None or decoded.action[0] != "dnat":
        return None
    ip = family_name(family)
    host = proto = port = None
    for field, op, value in decoded.matches:
        if op != "==":
            return None
        if field == f"{ip} daddr" and host is None:
            net = cast_network(value)
            if net.prefixlen != net.max_prefixlen:
                return None
            host = str(net.network_address)
        elif field == "l4proto" and proto is None:
            proto = str(value)
        elif field == "dport" and port is None and proto is not None:
            port = int(value)  # type: ignore[call-overload]
        else:
            return None
    if proto is None or port is None:
        return None
    _kind, to_addr, to_port = decoded.action
    return proto, port, host, str(to_addr), int(to_port)  # type: ignore[call-overload]


def cast_network(value: object) -> IPNetwork:
    from cni_plugins.spec.ip import IPNetwork

    if not isinstance(value, IPNetwork):
        raise TypeError(value)
    return value
