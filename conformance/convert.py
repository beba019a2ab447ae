"""Result conversion between spec versions, written independently of any plugin.

The suite needs it to build prevResults in each request version and to compare a
chained plugin's output with the prevResult it was given.  Rules follow the reference
doc section 1.10 (and libcni): canonical form is the 1.x shape.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from conformance.versions import has_ip_version, is_legacy

Result = dict[str, Any]


def _family(cidr: str) -> int:
    return ipaddress.ip_interface(cidr).version


def to_canonical(result: Result) -> Result:
    """Any version's result -> 1.x shape (no ips[].version; ip4/ip6 expanded)."""
    result = copy.deepcopy(result)
    if "ip4" in result or "ip6" in result:
        ips: list[dict[str, Any]] = []
        routes: list[dict[str, Any]] = []
        for key in ("ip4", "ip6"):
            conf = result.pop(key, None)
            if not conf:
                continue
            entry = {"address": conf["ip"]}
            if conf.get("gateway"):
                entry["gateway"] = conf["gateway"]
            ips.append(entry)
            routes.extend(conf.get("routes") or [])
        result["ips"] = ips
        if routes:
            result["routes"] = routes
    for ip in result.get("ips") or []:
        ip.pop("version", None)
    return result


def to_version(result: Result, version: str) -> Result:
    """Render any version's result in ``version``'s shape, labelled ``version``."""
    canon = to_canonical(result)
    canon["cniVersion"] = version
    if is_legacy(version):
        legacy: Result = {"cniVersion": version}
        for fam, key in ((4, "ip4"), (6, "ip6")):
            first = next(
                (ip for ip in canon.get("ips") or [] if _family(ip["address"]) == fam), None
            )
            if first is None:
                continue
            conf: dict[str, Any] = {"ip": first["address"]}
            if first.get("gateway"):
                conf["gateway"] = first["gateway"]
            routes = [
                {k: v for k, v in r.items() if k in ("dst", "gw")}
                for r in canon.get("routes") or []
                if _family(r["dst"]) == fam
            ]
            if routes:
                conf["routes"] = routes
            legacy[key] = conf
        if "dns" in canon:
            legacy["dns"] = canon["dns"]
        return legacy
    if has_ip_version(version):
        for ip in canon.get("ips") or []:
            ip["version"] = str(_family(ip["address"]))
    return canon


def normalise(result: Result) -> Result:
    """Drop presentation-only differences: an empty ``dns`` (Go 1.1.1 prints ``{}``,
    HEAD omits it) and empty lists."""
    out = copy.deepcopy(result)
    for key in ("dns", "interfaces", "ips", "routes"):
        if key in out and not out[key]:
            del out[key]
    return out
