# ruff: noqa: E501
"""Capture the goldens of test_nftexpr.py: what nft 1.0.6 stores for each rule.

Run as root: ``python tests/unit/linux/golden/capture_nftexpr.py > nftexpr-nft-1.0.6.json``.
Each rule is added with ``nft`` into a private network namespace (created and
deleted here) and read back from the kernel with an NFT_MSG_GETRULE dump; the
golden is the rule's NFTA_RULE_EXPRESSIONS payload and its userdata, in hex.
The tables' and chains' comments are read back the same way (GETTABLE, GETCHAIN).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from cni_plugins.linux import nfmsg
from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.netns import open_netns
from cni_plugins.linux.nlsock import NetlinkSocket

NAMESPACE = "nftexpr-capture"
SETUP = """
add table ip t { comment "CNI portmap plugin" ; }
add table ip6 t
add table inet t
add chain ip t c
add chain ip6 t c
add chain inet t c { comment "Masquerade traffic from certain IPs" ; }
add chain ip t j
add chain ip6 t j
add chain inet t j
add chain ip t prerouting { type nat hook prerouting priority dstnat ; }
add chain ip t output { type nat hook output priority -100 ; }
add chain ip6 t masquerading { type nat hook postrouting priority srcnat ; }
"""
# (id, family, rule text after "add rule <family> t c")
RULES = [
    ("jump", "ip", "jump j"),
    ("goto", "inet", "goto j"),
    ("fib-local-jump", "ip", "fib daddr type local jump j"),
    ("tcp-dnat-v4", "ip", 'tcp dport 8080 dnat to 10.244.1.2:80 comment "cid1"'),
    ("daddr-udp-dnat-v4", "ip", 'ip daddr 192.168.1.5 udp dport 53 dnat to 10.244.1.2:53 comment "cid1"'),
    ("sctp-dnat-v4", "ip", 'sctp dport 99 dnat to 10.244.1.2:99 comment "cid1"'),
    ("tcp-dnat-v6", "ip6", 'tcp dport 8080 dnat to [fd00:10:244:1::2]:80 comment "cid1"'),
    ("daddr-udp-dnat-v6", "ip6", 'ip6 daddr fd00::5 udp dport 53 dnat to [fd00:10:244:1::2]:53 comment "cid1"'),
    ("masq-v4", "ip", 'ip saddr 10.244.1.2 ip daddr 10.244.1.2 masquerade comment "cid1"'),
    ("masq-all-v4", "ip", 'ip saddr 0.0.0.0/0 ip daddr 10.244.1.2 masquerade comment "cid1"'),
    ("masq-all-v6", "ip6", 'ip6 saddr ::/0 ip6 daddr fd00:10:244:1::2 masquerade comment "cid1"'),
    ("multicast-return-v4", "inet", "ip daddr == 224.0.0.0/4 return"),
    ("multicast-return-v6", "inet", "ip6 daddr == ff00::/8 return"),
    ("inet-masq-24", "inet", 'ip saddr == 10.244.1.2 ip daddr != 10.244.1.0/24 masquerade comment "abc"'),
    ("inet-masq-20", "inet", 'ip saddr == 10.244.1.2 ip daddr != 10.244.0.0/20 masquerade comment "abc"'),
    ("inet-masq-v6", "inet", 'ip6 saddr == fd00:10:244:1::2 ip6 daddr != fd00:10:244:1::/64 masquerade comment "abc"'),
]  # fmt: skip


def nft(script: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", NAMESPACE, "nft", "-f", "-"], input=script.encode(), check=True
    )


def main() -> None:
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    try:
        nft(SETUP)
        rules = []
        for ident, family, text in RULES:
            nft(f"flush chain {family} t c\nadd rule {family} t c {text}\n")
            (body,) = dump(nfmsg.NFT_MSG_GETRULE, nfmsg.getrule_dump_request(family, "t", "c"))
            attrs = m.parse_attrs(body, 4)
            rules.append({
                "id": ident, "family": family, "rule": text,
                "exprs": attrs[nfmsg.NFTA_RULE_EXPRESSIONS].hex(),
                "userdata": attrs.get(nfmsg.NFTA_RULE_USERDATA, b"").hex(),
            })  # fmt: skip
        (table,) = dump(nfmsg.NFT_MSG_GETTABLE, nfmsg.gettable_request("ip", "t"), single=True)
        (chain,) = dump(nfmsg.NFT_MSG_GETCHAIN, nfmsg.getchain_request("inet", "t", "c"), True)
        bases = {}
        for family, name in (("ip", "prerouting"), ("ip", "output"), ("ip6", "masquerading")):
            (body,) = dump(nfmsg.NFT_MSG_GETCHAIN, nfmsg.getchain_request(family, "t", name), True)
            attrs = m.parse_attrs(body, 4)
            bases[name] = {"hook": attrs[4].hex(), "type": m.get_str(attrs[7])}
        out = {
            "rules": rules,
            "table_userdata": m.parse_attrs(table, 4)[6].hex(),
            "chain_userdata": m.parse_attrs(chain, 4)[12].hex(),
            "base_chains": bases,
        }
        json.dump(out, sys.stdout, indent=1)
        print()
    finally:
        subprocess.run(["ip", "netns", "del", NAMESPACE], check=True)


def dump(msg: int, body: bytes, single: bool = False) -> list[bytes]:
    with (
        open_netns(f"/run/netns/{NAMESPACE}") as ns,
        NetlinkSocket(ns, protocol=nfmsg.NETLINK_NETFILTER) as sock,
    ):
        if single:
            return sock.request(nfmsg.message_type(msg), body)
        return sock.dump(nfmsg.message_type(msg), body)


if __name__ == "__main__":
    main()
