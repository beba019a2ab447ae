"""A small but spec-correct loopback CNI plugin, used to test the conformance suite.

The self-tests copy it into a temp bin dir as ``loopback`` with MODE replaced to make
deliberately broken variants; the suite must fail every broken one and pass "correct".
Stdlib only; brings lo up/down with ``ip`` inside CNI_NETNS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

MODE = "correct"
VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
MIN_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
REQUIRED = {
    "ADD": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    "CHECK": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    "DEL": ["CNI_CONTAINERID", "CNI_IFNAME"],
    "STATUS": [],
    "GC": [],
}
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


class CNIError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def vkey(v: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in v.split("."))


def ip_netns(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={netns}", "ip", *args], capture_output=True, text=True, check=False
    )


def result_for(version: str, netns: str) -> dict[str, Any]:
    if vkey(version) < vkey("0.3.0"):
        return {"cniVersion": version, "ip4": {"ip": "127.0.0.1/8"}, "ip6": {"ip": "::1/128"}}
    ips: list[dict[str, Any]] = [
        {"interface": 0, "address": "127.0.0.1/8"},
        {"interface": 0, "address": "::1/128"},
    ]
    if vkey(version) < vkey("1.0.0") and MODE != "wrong-version-shape":
        for ip, fam in zip(ips, ("4", "6"), strict=True):
            ip["version"] = fam
    return {
        "cniVersion": version,
        "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": netns}],
        "ips": ips,
    }


def validate_env(command: str, env: dict[str, str]) -> None:
    missing = [k for k in REQUIRED[command] if not env.get(k)]
    if missing:
        raise CNIError(4, f"required env variables [{','.join(missing)}] missing")
    cid = env.get("CNI_CONTAINERID")
    if command in ("ADD", "CHECK", "DEL") and not NAME_RE.match(cid or ""):
        raise CNIError(4, "invalid characters in containerID", cid or "")
    ifname = env.get("CNI_IFNAME", "")
    bad_ifname = len(ifname) > 15 or ifname in (".", "..") or re.search(r"[/:\s]", ifname)
    if command in ("ADD", "CHECK", "DEL") and bad_ifname:
        raise CNIError(4, "invalid CNI_IFNAME", ifname)


def run(env: dict[str, str], stdin: bytes) -> dict[str, Any] | None:
    command = env.get("CNI_COMMAND", "")
    if command == "VERSION":
        return {"cniVersion": VERSIONS[-1], "supportedVersions": VERSIONS}
    if command not in REQUIRED:
        raise CNIError(4, f"unknown CNI_COMMAND: {command}")
    validate_env(command, env)
    try:
        conf = json.loads(stdin)
    except ValueError as exc:
        raise CNIError(6, f"error decoding network config: {exc}") from None
    name = conf.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CNIError(7, "missing or invalid network name", str(name))
    version = conf.get("cniVersion", "0.1.0")
    if version not in VERSIONS:
        raise CNIError(1, "incompatible CNI versions", f"plugin supports {VERSIONS}")
    if vkey(version) < vkey(MIN_VERSION.get(command, "0.1.0")):
        raise CNIError(1, f"config version does not allow {command}")
    netns = env.get("CNI_NETNS", "")
    if command == "ADD":
        proc = ip_netns(netns, "link", "set", "lo", "up")
        if proc.returncode != 0:
            raise CNIError(999, f"cannot set lo up: {proc.stderr.strip()}")
        if MODE == "logs-on-stdout":
            print("bringing lo up")
        if conf.get("prevResult"):
            return {**conf["prevResult"], "cniVersion": version}
        return result_for(version, netns)
    if command == "DEL":
        if MODE == "fail-second-del":
            here = os.path.dirname(os.path.abspath(__file__))
            marker = os.path.join(here, f"deleted-{env['CNI_CONTAINERID']}")
            if os.path.exists(marker):
                raise CNIError(999, "already deleted")
            open(marker, "w").close()
        if netns and os.path.exists(netns):
            ip_netns(netns, "link", "set", "lo", "down")
        return None
    if command == "CHECK":
        proc = ip_netns(netns, "-j", "link", "show", "lo")
        if proc.returncode != 0 or "UP" not in json.loads(proc.stdout)[0].get("flags", []):
            raise CNIError(999, "loopback interface is down")
    return None


def main() -> int:
    env = dict(os.environ)
    if not env.get("CNI_COMMAND"):
        print("fake loopback (conformance self-test)", file=sys.stderr)
        return 0
    stdin = sys.stdin.buffer.read()
    try:
        out = run(env, stdin)
    except CNIError as exc:
        if MODE == "bad-error-shape":
            print(json.dumps({"error": exc.msg, "code": str(exc.code)}))
        else:
            err = {"code": exc.code, "msg": exc.msg}
            if exc.details:
                err["details"] = exc.details
            print(json.dumps(err))
        return 1
    if out is not None:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
