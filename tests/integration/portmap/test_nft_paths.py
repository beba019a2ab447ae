"""portmap's nftables backend with no ``nft`` and no ``iptables*`` on PATH.

ADD, CHECK, DEL and GC read and change ``cni_hostport`` over nf_tables
netlink (linux.nftnl).  The PATH holds only logging wrappers (any exec of nft
or iptables is recorded, and fails); the test itself runs ``nft`` to see the
ruleset, which must be exactly what nft makes of the reference's text
commands (portmap.nft.setup_commands), written in a namespace of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.portmap import nft
from cni_plugins.portmap.config import PortMapConf
from cni_plugins.spec.ip import ip_interface
from cni_plugins.spec.trace import parse_line
from tests.conftest import unpack_cache_dir
from tests.integration.portmap.conftest import NODE_V4, NODE_V6, Pod, World
from tests.integration.portmap.test_portmap import answers, leftovers, tcp_udp

pytestmark = pytest.mark.privileged
IP = shutil.which("ip") or "/usr/sbin/ip"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
SH = shutil.which("sh") or "/bin/sh"
MOUNT = shutil.which("mount") or "/usr/bin/mount"


def installed_tools() -> list[str]:
    """The real nft/iptables programs of this machine (sbin directories)."""
    found = []
    for directory in ("/usr/sbin", "/usr/local/sbin"):
        for entry in sorted(Path(directory).glob("*")):
            name = entry.name
            if name == "nft" or name.startswith(("iptables", "ip6tables", "xtables")):
                found.append(str(entry))
    return found


TOOLS = ("nft", "iptables", "iptables-restore", "iptables-save", "ip6tables",
         "ip6tables-restore", "ip6tables-save", "iptables-nft", "iptables-legacy")  # fmt: skip


def refusing_wrappers(directory: Path) -> tuple[Path, Path]:
    """A directory of nft/iptables wrappers that log their command line and fail."""
    wrappers, logged = directory / "no-tools", directory / "tools.log"
    wrappers.mkdir()
    for name in TOOLS:
        tool = wrappers / name
        tool.write_text(f'#!/bin/sh\necho "$0 $*" >> {logged}\nexit 127\n')
        tool.chmod(0o755)
    return wrappers, logged


def run(
    world: World, command: str, pod: Pod, conf: dict[str, Any], path: Path, *, lookups: bool = False
) -> Any:
    """The plugin as a runtime runs it, with PATH ``path`` only (``ip`` itself
    is named by its absolute path, so it needs no PATH)."""
    env = {
        "PATH": str(path),
        "CNI_COMMAND": command,
        "CNI_PLUGINS_CACHE_DIR": unpack_cache_dir(),
        "CNI_CONTAINERID": pod.cid,
        "CNI_NETNS": pod.path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(world.node.plugin_dir),
        "CNI_PLUGINS_TRACE": "1",
    }
    # The plugin also looks in the sbin directories: the real tools are hidden
    # there, in a mount namespace of this run only.
    hide = " ".join(f"{MOUNT} --bind /dev/null {t} &&" for t in installed_tools())
    script = f'{hide} exec "$0"'
    exe = str(Path(world.portmap).resolve())
    argv = [IP, "netns", "exec", world.node.name, UNSHARE, "-m", SH, "-c", script, exe]
    data = json.dumps(conf).encode()
    proc = subprocess.run(argv, check=False, input=data, env=env, capture_output=True, timeout=60)
    # The trace names every program the plugin ran: none of nft, iptables*.
    parsed = [parse_line(ln) for ln in proc.stderr.decode().splitlines()]
    execs = [p[2] for p in parsed if p is not None and p[0] == "exec"]
    # (The span is written for a lookup that finds no program, too: ``lookups``
    # allows those; the programs are hidden, so none of them can run anyway.)
    assert lookups or not [e for e in execs if "nft" in e or "tables" in e], execs
    return proc


def text_reference(conf: dict[str, Any], pods: list[Pod]) -> dict[str, str]:
    """``nft list table`` of both families after nft itself ran setup_commands
    for ``pods`` in a throwaway namespace."""
    ns = "cnit-nftref"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for pod in pods:
            parsed = PortMapConf.from_json(dict(conf, prevResult=pod.result))
            script = ""
            for ip in pod.result["ips"]:
                address = ip_interface(ip["address"])
                script += "".join(x + "\n" for x in nft.setup_commands(parsed, pod.cid, address))
            subprocess.run(
                ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script.encode(), check=True
            )
        return {f: listing(["ip", "netns", "exec", ns], f) for f in ("ip", "ip6")}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


def listing(prefix: list[str], family: str) -> str:
    argv = [*prefix, "nft", "list", "table", family, nft.TABLE]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def NODE_EXEC(world: World) -> list[str]:
    return ["ip", "netns", "exec", world.node.name]


def test_add_check_del_gc_without_nft_or_iptables(world: World, tmp_path: Path) -> None:
    path, logged = refusing_wrappers(tmp_path)
    pods = [world.add_pod(v6=True, listen=80), world.add_pod(v6=True, listen=80)]
    confs = []
    for i, pod in enumerate(pods):
        mappings = tcp_udp(8070 + i, 80)
        mappings.append(
            {"hostPort": 8075 + i, "containerPort": 80, "protocol": "tcp", "hostIP": NODE_V4}
        )
        conf = world.portmap_conf(pod, mappings, backend="nftables")
        confs.append(conf)
        proc = run(world, "ADD", pod, conf, path)
        assert proc.returncode == 0, proc.stderr
        assert run(world, "CHECK", pod, conf, path).returncode == 0
    assert not logged.exists(), logged.read_text()
    assert listing(NODE_EXEC(world), "ip").count("dnat to") == 6
    for i, pod in enumerate(pods):
        for host in (NODE_V4, NODE_V6):
            got = answers(world, world.client, host, 8070 + i)
            assert got["tcp"] is not None and got["tcp"].startswith(pod.cid), (host, got)
            assert got["udp"] is not None and got["udp"].startswith(pod.cid), (host, got)
        assert (world.ask(world.client, "tcp", NODE_V4, 8075 + i) or "").startswith(pod.cid)
    # DEL of the first pod; CHECK of it now fails, the second one's still passes.
    proc = run(world, "DEL", pods[0], confs[0], path)
    assert proc.returncode == 0, proc.stderr
    assert leftovers(world, pods[0]) == []
    failed = run(world, "CHECK", pods[0], confs[0], path)
    assert failed.returncode != 0 and b"missing hostport rules" in failed.stdout
    assert run(world, "CHECK", pods[1], confs[1], path).returncode == 0
    # GC with no valid attachments removes the second pod's rules.
    gc = dict(confs[1], cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
    gc.pop("prevResult")
    for wrapper in path.iterdir():
        wrapper.unlink()  # GC also cleans the iptables backend: here none is installed
    proc = run(world, "GC", pods[1], gc, path, lookups=True)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert leftovers(world, pods[1]) == []
    assert not logged.exists(), logged.read_text()


def test_ruleset_is_what_nft_makes_of_the_text(world: World, tmp_path: Path) -> None:
    path, logged = refusing_wrappers(tmp_path)
    pod = world.add_pod(v6=True, listen=80)
    mappings = tcp_udp(8080, 80)
    mappings.append({"hostPort": 8081, "containerPort": 81, "protocol": "sctp", "hostIP": NODE_V4})
    mappings.append({"hostPort": 8082, "containerPort": 82, "protocol": "tcp", "hostIP": NODE_V6})
    for extra in ({}, {"masqAll": True}):
        conf = world.portmap_conf(pod, mappings, backend="nftables", snat=True, **extra)
        proc = run(world, "ADD", pod, conf, path)
        assert proc.returncode == 0, proc.stderr
        assert not logged.exists(), logged.read_text()
        want = text_reference(conf, [pod])
        for family in ("ip", "ip6"):
            assert listing(NODE_EXEC(world), family) == want[family]


def test_conditions_without_nft_is_a_clear_error(world: World, tmp_path: Path) -> None:
    path, _logged = refusing_wrappers(tmp_path)
    (path / "nft").unlink()  # not installed at all
    pod = world.add_pod(listen=80)
    conf = world.portmap_conf(
        pod, tcp_udp(8090, 80), backend="nftables", conditionsV4=["ip", "saddr", "10.0.0.0/8"]
    )
    proc = run(world, "ADD", pod, conf, path)
    assert proc.returncode != 0
    error = json.loads(proc.stdout)
    assert "conditionsV4/conditionsV6" in error["msg"] and "nft" in error["msg"]
    assert leftovers(world, pod) == []


def test_an_over_long_container_id_is_a_cni_error(world: World, tmp_path: Path) -> None:
    path, logged = refusing_wrappers(tmp_path)
    pod = world.add_pod(listen=80)
    long = Pod(pod.ns, "c" * 129, pod.result)
    conf = world.portmap_conf(pod, tcp_udp(8091, 80), backend="nftables")
    proc = run(world, "ADD", long, conf, path)
    assert proc.returncode != 0
    error = json.loads(proc.stdout)
    assert "comment" in error["msg"] and "128" in error["msg"], error
    assert not logged.exists()


def test_rules_nft_wrote_are_checked_and_deleted(world: World, tmp_path: Path) -> None:
    """The reference's rules as nft writes them from its text (what the Go
    plugin's nftables backend sends; Debian's Go 1.1.1 here has none to run):
    our CHECK recognises them by meaning and our DEL removes them, no nft run."""
    path, logged = refusing_wrappers(tmp_path)
    pod = world.add_pod(v6=True, listen=80)
    mappings = tcp_udp(8060, 80)
    mappings.append({"hostPort": 8061, "containerPort": 80, "protocol": "tcp", "hostIP": NODE_V4})
    conf = world.portmap_conf(pod, mappings, backend="nftables")
    parsed = PortMapConf.from_json(conf)
    script = "".join(
        c + "\n"
        for ip in pod.result["ips"]
        for c in nft.setup_commands(parsed, pod.cid, ip_interface(ip["address"]))
    )
    subprocess.run([*NODE_EXEC(world), "nft", "-f", "-"], input=script.encode(), check=True)
    assert (world.ask(world.client, "tcp", NODE_V4, 8061) or "").startswith(pod.cid)
    proc = run(world, "CHECK", pod, conf, path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    # One DNAT rule changed by hand (another container port): CHECK says so.
    other = dict(conf, runtimeConfig={"portMappings": tcp_udp(8060, 99)})
    proc = run(world, "CHECK", pod, other, path)
    assert proc.returncode != 0 and b"missing hostport rules" in proc.stdout
    proc = run(world, "DEL", pod, conf, path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert leftovers(world, pod) == []
    assert not logged.exists(), logged.read_text()
