"""Capture the goldens of test_nfrule.py: what iptables-nft stores for each rule.

Run as root: ``python tests/unit/linux/golden/capture_nfrule.py > nfrule-iptables-nft.json``.
Each rule is written by ``iptables-nft-restore`` into a private network
namespace (created and deleted here), then read back from the kernel with an
NFT_MSG_GETRULE dump; the golden is the rule's NFTA_RULE_EXPRESSIONS payload
with the counters as a new rule has them (zero).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from cni_plugins.linux import iptables, nfmsg
from cni_plugins.linux import nlmsg as m
from cni_plugins.linux.netns import open_netns
from cni_plugins.linux.nlsock import NetlinkSocket

CHAINS = ("CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-DNAT", "CNI-DN-abc", "CNI-x")
COMMENT = 'dnat name: "cbr0" id: "abc"'
MASQ_NOTE = 'name: "cbr0" id: "abc"'
RULES = {
    4: [
        ["-m", "comment", "--comment", "CNI portfwd masquerade mark",
         "-j", "MARK", "--set-xmark", "0x2000/0x2000"],
        ["-m", "mark", "--mark", "0x2000/0x2000", "-j", "MASQUERADE"],
        ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
        ["-m", "comment", "--comment", "CNI portfwd requiring masquerade",
         "-j", "CNI-HOSTPORT-MASQ"],
        ["-p", "tcp", "-m", "comment", "--comment", COMMENT,
         "-m", "multiport", "--dports", "8080,8081", "-j", "CNI-DN-abc"],
        ["-s", "10.244.1.0/24", "-p", "tcp", "-m", "tcp", "--dport", "8080",
         "-j", "CNI-HOSTPORT-SETMARK"],
        ["-s", "127.0.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "8080",
         "-j", "CNI-HOSTPORT-SETMARK"],
        ["-s", "10.244.0.0/15", "-p", "udp", "-m", "udp", "--dport", "53",
         "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT",
         "--to-destination", "10.244.1.2:80"],
        ["-d", "192.168.1.5/32", "-p", "udp", "-m", "udp", "--dport", "53", "-j", "DNAT",
         "--to-destination", "10.244.1.2:53"],
        ["-d", "10.244.1.0/24", "-m", "comment", "--comment", MASQ_NOTE, "-j", "ACCEPT"],
        ["!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", MASQ_NOTE, "-j", "MASQUERADE"],
        ["-s", "10.244.1.2/32", "-m", "comment", "--comment", MASQ_NOTE, "-j", "CNI-x"],
        ["-p", "udp", "-m", "udp", "--dport", "53", "-j", "RETURN"],
    ],
    6: [
        ["-m", "mark", "--mark", "0x2000/0x2000", "-j", "MASQUERADE"],
        ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
        ["-p", "udp", "-m", "comment", "--comment", COMMENT,
         "-m", "multiport", "--dports", "53", "-j", "CNI-DN-abc"],
        ["-s", "fd00:10:244:1::/64", "-p", "tcp", "-m", "tcp", "--dport", "8080",
         "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "DNAT",
         "--to-destination", "[fd00:10:244:1::2]:80"],
        ["-d", "fd00::5/128", "-p", "udp", "-m", "udp", "--dport", "53", "-j", "DNAT",
         "--to-destination", "[fd00:10:244:1::2]:53"],
        ["-d", "fd00:10:244:1::/64", "-m", "comment", "--comment", MASQ_NOTE, "-j", "ACCEPT"],
        ["!", "-d", "ff00::/8", "-m", "comment", "--comment", MASQ_NOTE, "-j", "MASQUERADE"],
        ["-s", "fd00:10:244:1::2/128", "-m", "comment", "--comment", MASQ_NOTE, "-j", "CNI-x"],
    ],
}  # fmt: skip
NAMESPACE = "nfrule-capture"


def zero_counters(exprs: bytes) -> bytes:
    out = b""
    for kind, elem in m.iter_attrs(exprs):
        fields = m.parse_attrs(elem)
        if m.get_str(fields[nfmsg.NFTA_EXPR_NAME]) == "counter":
            data = m.attr(1, bytes(8)) + m.attr(2, bytes(8))
            zeroed = m.attr(nfmsg.NFTA_EXPR_NAME, fields[nfmsg.NFTA_EXPR_NAME]) + m.attr(2, data)
            out += m.attr(kind, zeroed)
        else:
            out += m.attr(kind, elem)
    return out


def main() -> None:
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    try:
        goldens = []
        for family, rules in RULES.items():
            tool = "iptables-nft-restore" if family == 4 else "ip6tables-nft-restore"
            for rule in rules:
                lines = ["*nat", *(f":{c} - [0:0]" for c in CHAINS)]
                lines += ["-A CNI-x " + " ".join(map(iptables.quote, rule)), "COMMIT", ""]
                subprocess.run(
                    ["ip", "netns", "exec", NAMESPACE, tool],
                    input="\n".join(lines).encode(),
                    check=True,
                )
                goldens.append({"family": family, "rule": rule, "exprs": dump(family).hex()})
        json.dump(goldens, sys.stdout, indent=1)
        print()
    finally:
        subprocess.run(["ip", "netns", "del", NAMESPACE], check=True)


def dump(family: int) -> bytes:
    with (
        open_netns(f"/run/netns/{NAMESPACE}") as ns,
        NetlinkSocket(ns, protocol=nfmsg.NETLINK_NETFILTER) as sock,
    ):
        bodies = sock.dump(
            nfmsg.message_type(nfmsg.NFT_MSG_GETRULE),
            nfmsg.getrule_dump_request(nfmsg.iptables_family(family), "nat", "CNI-x"),
        )
    (body,) = bodies  # restore's ":CNI-x" flushed the chain: one rule
    attrs = m.parse_attrs(body, 4)
    return zero_counters(attrs[nfmsg.NFTA_RULE_EXPRESSIONS])


if __name__ == "__main__":
    main()
