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

Every per-container rule carries the container ID as its comment; that is how
DEL (ours and Go's) finds them.  The comment holds no network name, so GC can
only tell containers apart, not networks (see ``apply.gc``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from cni_plugins.linux.nftables import NftRule
    from cni_plugins.portmap.config import PortMapConf
    from cni_plugins.spec.ip import IPInterface

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
