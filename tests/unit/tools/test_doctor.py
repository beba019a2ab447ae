"""The pure parts of cni-doctor: findings and their JSON, the command line,
chain attribution, bridge address reasoning, range pools, crictl's JSON, the
build trailer and the liveness verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_plugins.linux.ipmasq import chain_name, comment
from cni_plugins.portmap.chains import dnat_chain_name
from cni_plugins.spec.ip import ip_address, ip_interface, ip_network
from cni_plugins.tools.doctor import bridge, chains, cri, findings, leaks, payloads
from cni_plugins.tools.doctor.evidence import Evidence
from cni_plugins.tools.doctor.main import Usage, parse_argv


def test_findings_json_shape_and_exit_status() -> None:
    f = findings.Finding("sysctls", findings.ERROR, "net.ipv4.ip_forward", "off", "turn it on")
    out = json.loads(findings.render_json([f]))
    assert out == {
        "findings": [
            {
                "check": "sysctls",
                "severity": "error",
                "subject": "net.ipv4.ip_forward",
                "message": "off",
                "fix": "turn it on",
                "repaired": False,
            }
        ]
    }
    assert findings.exit_status([f]) == 1
    f.repaired = True
    assert findings.exit_status([f]) == 0
    assert findings.exit_status([]) == 0
    assert "[repaired]" in findings.render_text([f])
    assert findings.render_text([]) == "cni-doctor: no problems found\n"
    with pytest.raises(ValueError, match="severity"):
        findings.Finding("x", "fatal", "s", "m", "f")


def test_command_line() -> None:
    options, reclaim = parse_argv(
        ["--conf-dir", "/c", "--bin-dir=/b", "--grace", "0", "--repair", "--json"],
        {"CNI_PLUGINS_CACHE_DIR": "/u"},
    )
    assert (options.conf_dir, options.bin_dir, options.grace) == ("/c", "/b", 0.0)
    assert options.repair and options.json and not reclaim
    assert options.unpack_cache == "/u" and options.cache_dir == "/var/lib/cni"
    assert parse_argv(["--reclaim-only"], {})[1]
    assert parse_argv([], {})[0].grace == 600.0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--grace", "soon"], "not a number"),
        (["--grace", "-1"], "0 or more"),
        (["--grace", "nan"], "0 or more"),
        (["--cri-socket"], "needs an argument"),
        (["--fix"], "unknown argument"),
        (["add"], "unknown argument"),
    ],
)
def test_command_line_errors(argv: list[str], says: str) -> None:
    with pytest.raises(Usage, match=says):
        parse_argv(argv, {})


CID = "c" * 64


def masq_rules(network: str, cid: str) -> list[list[str]]:
    name = chain_name(network, cid)
    note = comment(network, cid)
    return [
        ["-A", "POSTROUTING", "-s", "10.244.1.5/32", "-m", "comment", "--comment", note,
         "-j", name],
        ["-A", name, "-d", "10.244.1.0/24", "-m", "comment", "--comment", note, "-j", "ACCEPT"],
    ]  # fmt: skip


def dnat_rules(network: str, cid: str) -> list[list[str]]:
    name = dnat_chain_name(network, cid)
    note = f'dnat name: "{network}" id: "{cid}"'
    return [
        ["-A", "CNI-HOSTPORT-DNAT", "-p", "tcp", "-m", "comment", "--comment", note,
         "-m", "multiport", "--dports", "80", "-j", name],
        ["-A", name, "-p", "tcp", "-j", "DNAT", "--to-destination", "10.244.1.5:80"],
    ]  # fmt: skip


def test_chain_owners_only_when_the_comment_hashes_to_the_chain() -> None:
    rules = masq_rules("cbr0", CID) + dnat_rules("cbr0", CID)
    assert chains.owners(rules) == {
        chain_name("cbr0", CID): ("cbr0", CID),
        dnat_chain_name("cbr0", CID): ("cbr0", CID),
    }
    forged = [[*r[:-1], "CNI-" + "0" * 24] for r in masq_rules("cbr0", CID)[:1]]
    assert chains.owners(forged) == {}


def test_per_pod_chain_names() -> None:
    assert chains.per_pod_name(chain_name("n", CID))
    assert chains.per_pod_name(dnat_chain_name("n", CID))
    assert not chains.per_pod_name("CNI-HOSTPORT-DNAT")
    assert not chains.per_pod_name("CNI-FORWARD")
    assert not chains.per_pod_name("KUBE-SVC-ABCDEF0123456789")


def test_removal_deletes_jumps_then_chains() -> None:
    rules = masq_rules("cbr0", CID) + dnat_rules("cbr0", CID)
    doomed = {chain_name("cbr0", CID), dnat_chain_name("cbr0", CID)}
    text = chains.removal("nat", doomed, rules).text().splitlines()
    assert text[0] == "*nat" and text[-1] == "COMMIT"
    deletes = [ln for ln in text if ln.startswith("-D ")]
    assert [ln.split()[1] for ln in deletes] == ["POSTROUTING", "CNI-HOSTPORT-DNAT"]
    assert text.index(f"-F {min(doomed)}") < text.index(f"-X {min(doomed)}")
    assert max(text.index(d) for d in deletes) < min(
        i for i, ln in enumerate(text) if ln.startswith("-F ")
    )


def test_stale_bridge_addresses() -> None:
    lease = [ip_network("10.244.1.0/24"), ip_network("fd00:1::/64")]
    addrs = [ip_interface(a) for a in ("10.244.1.1/24", "10.244.9.1/24", "fe80::1/64",
                                       "fd00:1::1/64", "10.244.1.1/16")]  # fmt: skip
    assert [str(a) for a in bridge.stale_addresses(addrs, lease)] == [
        "10.244.9.1/24",
        "10.244.1.1/16",
    ]
    # a family the lease does not cover is not judged
    assert bridge.stale_addresses([ip_interface("10.0.0.1/24")], [lease[1]]) == []


def test_pool_of_a_flannel_subnet() -> None:
    pool = leaks._pool(ip_network("10.244.1.0/24"))
    assert pool.capacity() == 253  # .1 is the gateway, .0 and .255 are not hosts
    assert pool.contains(ip_address("10.244.1.254"))
    assert not pool.contains(ip_address("10.244.2.1"))


def test_crictl_json() -> None:
    data = json.dumps({"items": [{"id": "a1", "state": "SANDBOX_READY"}, {"id": "b2"}, {}]})
    assert cri.parse_pods(data.encode()) == {"a1", "b2"}
    for bad in (b"nope", b"[]", b'{"items": 3}'):
        with pytest.raises(cri.CRIError):
            cri.parse_pods(bad)


def test_trailer(tmp_path: Path) -> None:
    name, build = b"flannel".ljust(32, b"\0"), b"ab" * 32
    body = name + build + b"\0" * (payloads.TRAILER_SIZE - 32 - 64 - 8) + payloads.MAGIC
    ours = tmp_path / "flannel"
    ours.write_bytes(b"launcher" * 100 + body)
    (tmp_path / "go-plugin").write_bytes(b"\x7fELF" + b"\0" * 500)
    (tmp_path / "tiny").write_bytes(b"x")
    assert payloads.trailer(str(ours)) == ("flannel", "ab" * 32)
    assert payloads.installed(str(tmp_path)) == {"flannel": "ab" * 32}


def evidence(**kw: object) -> Evidence:
    base: dict[str, object] = {"in_flight": set(), "addresses": set(), "cached": {},
                               "sandboxes": None}  # fmt: skip
    base.update(kw)
    return Evidence(**base)  # type: ignore[arg-type]


def test_liveness_verdicts() -> None:
    ip = ip_address("10.244.1.5")
    assert evidence().alive("x", [ip]) == []
    assert evidence(in_flight={"x"}).alive("x", [])
    assert evidence(cached={"x": "/run/netns/p"}).alive("x", [])
    assert evidence(addresses={ip_address("10.244.1.5")}).alive("x", [ip])
    assert evidence(sandboxes={"x"}).alive("x", [])
    assert evidence(sandboxes={"y"}).alive("x", [ip]) == []
    # an unavailable sandbox list clears nobody
    assert evidence(sandbox_error="crictl is not installed").alive("x", [])


def binary(path: Path, name: str, build: str) -> None:
    body = name.encode().ljust(32, b"\0") + build.encode()
    path.write_bytes(b"launcher" + body + b"\0" * (payloads.TRAILER_SIZE - 96 - 8) + payloads.MAGIC)


def test_version_skew_and_leaked_payloads(tmp_path: Path) -> None:
    from cni_plugins.tools.doctor.node import Node, Options

    bins, cache = tmp_path / "bin", tmp_path / "cache"
    bins.mkdir()
    cache.mkdir()
    old, new = "a" * 64, "b" * 64
    binary(bins / "flannel", "flannel", new)
    binary(bins / "bridge", "bridge", new)
    for entry in (old, new):
        (cache / entry).mkdir()
        (cache / entry / ".complete").write_text("")
        (cache / entry / "bundle").write_bytes(b"x" * 1000)
    (cache / ("c" * 64)).mkdir()  # no marker: an unpack in progress, never touched
    node = Node(Options(conf_dir=str(tmp_path / "none"), bin_dir=str(bins),
                        unpack_cache=str(cache), repair=False))  # fmt: skip
    assert payloads.check_skew(node) == []
    [leak] = payloads.check_cache(node)
    assert old[:12] in leak.message and new[:12] not in leak.message and not leak.repaired

    binary(bins / "portmap", "portmap", old)
    [skew] = payloads.check_skew(node)
    assert "2 builds" in skew.message and "portmap" in skew.message
    assert payloads.check_cache(node) == []  # portmap uses the old payload now

    (bins / "portmap").unlink()
    node.options.repair = True
    [leak] = payloads.check_cache(node)
    assert leak.repaired
    assert sorted(p.name for p in cache.iterdir()) == sorted([".lock", "c" * 64, new])
    assert payloads.check_cache(node) == []


def test_crictl_is_asked_for_the_sandboxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crictl = tmp_path / "crictl"
    crictl.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/argv\n'
        """echo '{"items": [{"id": "s1"}]}'\n"""
    )
    crictl.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cri.sandbox_ids("/run/containerd/containerd.sock") == {"s1"}
    argv = (tmp_path / "argv").read_text().split()
    assert argv == ["--runtime-endpoint", "unix:///run/containerd/containerd.sock", "pods",
                    "-o", "json"]  # fmt: skip
    crictl.write_text("#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
    with pytest.raises(cri.CRIError, match="connection refused"):
        cri.sandbox_ids("unix:///x.sock")


def test_nft_rule_owners() -> None:
    from cni_plugins.linux.nftables import NftRule

    def rule(table: str, chain: str, note: str) -> NftRule:
        return NftRule("ip", table, chain, handle=1, comment=note, expr=[])

    assert chains.nft_owner(rule("cni_hostport", "hostports", CID)) == CID
    assert chains.nft_owner(rule("cni_hostport", "masquerading", CID)) == CID
    assert chains.nft_owner(rule("cni_hostport", "prerouting", "")) is None
    note = f"abcd-ef01, net: cbr0, if: eth0, id: {CID}"
    assert chains.nft_owner(rule("cni_plugins_masquerade", "masq_checks", note)) == CID
    assert chains.nft_owner(rule("cni_plugins_masquerade", "postrouting", "")) is None


def test_recent_failures_from_the_plugins_logs(tmp_path: Path) -> None:
    from cni_plugins.spec.errors import InvalidConfig
    from cni_plugins.spec.logfile import append, format_line
    from cni_plugins.tools.doctor import logs
    from cni_plugins.tools.doctor.node import Node, Options

    log = tmp_path / "plugins.log"
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    conflist = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "plugins": [
            {"type": "flannel", "LogFile": str(log)},  # folds, as the plugins read it
            {"type": "portmap", "logFile": str(log), "capabilities": {"portMappings": True}},
            {"type": "bandwidth", "logFile": "relative.log"},  # not a path the plugins take
        ],
    }
    (conf_dir / "10-flannel.conflist").write_text(json.dumps(conflist))
    node = Node(Options(conf_dir=str(conf_dir)))
    assert logs.log_files(node) == [str(log)]
    assert logs.check(node) == []  # no log yet: nothing to say

    env = {"CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0"}
    for verb, error in (("ADD", InvalidConfig("ipam: missing")), ("DEL", None)):
        line = format_line(
            plugin="flannel", command=verb, environ=env, duration=0.01, result=None, error=error
        )
        append(str(log), line)
    (found,) = logs.check(node)
    assert (found.check, found.severity, found.subject) == ("recent-failures", "warning", str(log))
    assert "flannel ADD c0ffee: code 7: ipam: missing" in found.message
    assert "DEL" not in found.message  # successes are not failures
