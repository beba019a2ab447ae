"""How a plugin process ends, for the source-tree entry and the built binary.

``skel.main`` flushes stdout and stderr and leaves with ``os._exit`` (no
interpreter finalization).  Whatever the plugin printed must still reach the
caller, the exit status must be the plugin's, and an unwritable stdout must
still fail the call.  Runs without root: host-local works in a tmp dataDir,
flannel delegates to a shell script, the built binaries unpack into a tmp cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import built_bin_dir, write_script_plugins

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
ENTRIES = ["source", "built"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(params=ENTRIES)
def bin_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> Path:
    if request.param == "source":
        return write_script_plugins(tmp_path_factory.mktemp("script-bin"))
    built = built_bin_dir()
    if built is None:
        pytest.skip("dist/bin not built (python build/build.py)")
    return built


def call(
    binary: Path,
    command: str | None,
    stdin: bytes,
    cache_dir: Path,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    full = {"PATH": PATH, "CNI_PLUGINS_CACHE_DIR": str(cache_dir), **(env or {})}
    if command is not None:
        full["CNI_COMMAND"] = command
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([str(binary)], input=stdin, env=full, timeout=60, check=False, **kwargs)


def attachment(cid: str = "ctr-exit") -> dict[str, str]:
    return {
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/nonexistent/netns",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }


def host_local_conf(data_dir: Path, routes: int) -> bytes:
    ipam = {
        "type": "host-local",
        "dataDir": str(data_dir),
        "ranges": [[{"subnet": "10.66.0.0/24"}]],
        "routes": [{"dst": f"10.{n // 256}.{n % 256}.0/24"} for n in range(routes)],
    }
    return json.dumps({"cniVersion": "1.1.0", "name": "exit", "ipam": ipam}).encode()


def test_the_exit_status_is_the_plugins(bin_dir: Path, cache_dir: Path) -> None:
    ok = call(bin_dir / "bridge", "VERSION", b"{}", cache_dir)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["cniVersion"] == "1.1.0"
    failed = call(bin_dir / "bridge", "ADD", b"{}", cache_dir)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["code"] == 4  # CNI_* variables missing


@pytest.mark.parametrize("routes", [5000, 300])
def test_a_large_result_arrives_whole(
    bin_dir: Path, cache_dir: Path, tmp_path: Path, routes: int
) -> None:
    """5000 routes: ~300 KiB, several times a pipe's capacity, read while the
    plugin writes.  300 routes: fits in the pipe, read only after the plugin
    exited, so everything was flushed before ``os._exit``."""
    conf = host_local_conf(tmp_path, routes)
    env = {"PATH": PATH, "CNI_PLUGINS_CACHE_DIR": str(cache_dir), "CNI_COMMAND": "ADD"}
    env.update(attachment())
    with subprocess.Popen(
        [str(bin_dir / "host-local")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        if routes > 1000:
            out, err = proc.communicate(conf, timeout=60)
        else:
            assert proc.stdin and proc.stdout and proc.stderr
            proc.stdin.write(conf)
            proc.stdin.close()
            proc.wait(timeout=60)
            out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0, err
    assert out.endswith(b"}\n")
    result = json.loads(out)
    assert len(result["routes"]) == routes
    assert result["routes"][-1] == {"dst": f"10.{(routes - 1) // 256}.{(routes - 1) % 256}.0/24"}
    assert result["ips"][0]["address"] == "10.66.0.2/24"


def test_stderr_arrives_with_the_result_and_the_delegates_output(
    bin_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """flannel logs on stderr, execs an external delegate (whose stderr is
    ours) and prints its result."""
    delegates = tmp_path / "delegates"
    delegates.mkdir()
    fake = delegates / "fake-bridge"
    fake.write_text(
        "#!/bin/sh\ncat >/dev/null\necho 'fake-bridge: on stderr' >&2\n"
        'echo \'{"cniVersion": "1.0.0", "ips": [{"address": "10.244.7.9/24"}]}\'\n'
    )
    fake.chmod(0o755)
    subnet = tmp_path / "subnet.env"
    subnet.write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
    )
    conf = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "flannel",
        "subnetFile": str(subnet),
        "dataDir": str(tmp_path / "flannel"),
        "delegate": {"type": "fake-bridge"},
    }
    env = {**attachment(), "CNI_PATH": str(delegates)}
    proc = call(bin_dir / "flannel", "ADD", json.dumps(conf).encode(), cache_dir, env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ips"] == [{"address": "10.244.7.9/24"}]
    assert b"flannel: delegating to fake-bridge: {" in proc.stderr
    assert b"fake-bridge: on stderr\n" in proc.stderr


def test_about_text_on_stderr_without_a_command(bin_dir: Path, cache_dir: Path) -> None:
    proc = call(bin_dir / "loopback", None, b"", cache_dir)
    assert (proc.returncode, proc.stdout) == (0, b"")
    assert proc.stderr.startswith(b"CNI loopback plugin ")
    assert proc.stderr.endswith(b"1.1.0\n")


def test_a_closed_stdout_fails_the_call(bin_dir: Path, cache_dir: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = call(bin_dir / "bridge", "VERSION", b"{}", cache_dir, stdout=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode != 0
    assert b"BrokenPipeError" in proc.stderr


def test_a_full_stdout_fails_the_call(bin_dir: Path, cache_dir: Path) -> None:
    with open("/dev/full", "wb") as full:
        proc = call(bin_dir / "bridge", "VERSION", b"{}", cache_dir, stdout=full)
    assert proc.returncode != 0
    assert b"No space left on device" in proc.stderr


def test_the_cache_lock_goes_with_the_process(cache_dir: Path) -> None:
    """The launcher's shared flock on the cache entry is held by the plugin
    until it ends; after ``os._exit`` a pruner can take the entry."""
    built = built_bin_dir()
    if built is None:
        pytest.skip("dist/bin not built (python build/build.py)")
    assert call(built / "loopback", "VERSION", b"{}", cache_dir).returncode == 0
    (entry,) = [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
