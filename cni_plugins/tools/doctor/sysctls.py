"""Kernel settings pods need for service traffic (read in the doctor's own
network namespace: run it in the node's).

* ``net.ipv4.ip_forward`` off: nothing leaves the node from a pod;
* ``br_netfilter`` not loaded, or ``net.bridge.bridge-nf-call-iptables`` off:
  traffic between pods of one bridge skips iptables, so kube-proxy's service
  DNAT never applies to it.

Reported only: a kernel setting is the node's policy, not the doctor's.
"""

from __future__ import annotations

from cni_plugins.linux import sysctl
from cni_plugins.tools.doctor.findings import ERROR, WARNING, Finding

CHECK = "sysctls"


def check() -> list[Finding]:
    findings: list[Finding] = []
    forward = _read("net.ipv4.ip_forward")
    if forward == "0":
        findings.append(
            Finding(
                CHECK,
                ERROR,
                "net.ipv4.ip_forward",
                "net.ipv4.ip_forward is 0: the node does not route pod traffic",
                "sysctl -w net.ipv4.ip_forward=1, and persist it in /etc/sysctl.d",
            )
        )
    nf = _read("net.bridge.bridge-nf-call-iptables")
    if nf is None:
        findings.append(
            Finding(
                CHECK,
                WARNING,
                "br_netfilter",
                "br_netfilter is not loaded (no /proc/sys/net/bridge): bridged pod-to-pod traffic"
                " skips iptables, so service addresses do not work between pods of this node",
                "modprobe br_netfilter, and list it in /etc/modules-load.d",
            )
        )
    elif nf == "0":
        findings.append(
            Finding(
                CHECK,
                WARNING,
                "net.bridge.bridge-nf-call-iptables",
                "net.bridge.bridge-nf-call-iptables is 0: bridged traffic skips iptables"
                " (kube-proxy's service rules)",
                "sysctl -w net.bridge.bridge-nf-call-iptables=1, and persist it",
            )
        )
    return findings


def _read(name: str) -> str | None:
    try:
        return sysctl.read(name)
    except OSError:
        return None
