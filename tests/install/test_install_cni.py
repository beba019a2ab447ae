"""install-cni.sh against a temporary host root, under dash and busybox sh.

Every test builds its own "image" directory (fake plugins: small sh scripts that
answer VERSION) and "host" directories in tmp_path and runs the script as a
subprocess with a minimal environment; nothing outside tmp_path is touched and
no privileges are needed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "install-cni.sh"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ install-cni: \S")
Starter = Callable[..., tuple[subprocess.Popen[bytes], Path]]
PLUGINS = ("bridge", "flannel", "host-local", "loopback", "portmap")

CONFLIST = {
    "name": "cbr0",
    "cniVersion": "1.0.0",  # as deploy/kube-flannel.yml ships it
    "cniVersions": ["1.1.0", "1.0.0", "0.3.1"],
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


@dataclass(frozen=True)
class Shell:
    argv: list[str]
    path: str  # PATH given to install-cni.sh


def _shells() -> list[object]:
    params: list[object] = []
    for ident, argv in (
        ("dash", ["dash"]),
        ("busybox", ["busybox", "sh"]),
        ("busybox-applets", ["busybox", "sh"]),  # PATH = busybox applets only
    ):
        marks = []
        if shutil.which(argv[0]) is None:
            marks.append(pytest.mark.skip(reason=f"{argv[0]} not installed"))
        params.append(pytest.param((ident, argv), id=ident, marks=marks))
    return params


@pytest.fixture(scope="session")
def busybox_applets(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding only busybox applet links: a busybox-image userland."""
    applets = tmp_path_factory.mktemp("busybox-applets")
    busybox = shutil.which("busybox")
    assert busybox is not None
    subprocess.run([busybox, "--install", "-s", str(applets)], check=True)
    return str(applets)


@pytest.fixture(params=_shells())
def shell(request: pytest.FixtureRequest) -> Shell:
    ident, argv = request.param
    if ident == "busybox-applets":
        path: str = request.getfixturevalue("busybox_applets")
        return Shell(argv, path)
    return Shell(argv, PATH)


def fake_plugin(tag: str, pad_kib: int = 0) -> bytes:
    """A plugin that answers VERSION with a tag; the answer is at the END of the
    file, after pad_kib KiB of comments, so a partially written copy is silent."""
    pad = ("# " + "x" * 1021 + "\n") * pad_kib
    return (
        "#!/bin/sh\n"
        + pad
        + 'if [ "$CNI_COMMAND" = VERSION ]; then\n'
        + '  printf \'%s\\n\' \'{"cniVersion":"1.1.0","supportedVersions":'
        + f'["0.3.1","1.0.0","1.1.0"],"tag":"{tag}"}}\'\n'
        + "  exit 0\n"
        + "fi\n"
        + "exit 1\n"
    ).encode()


BROKEN = {
    "exits-nonzero": b'#!/bin/sh\necho "boom: missing libpython" >&2\nexit 1\n',
    "wrong-output": b"#!/bin/sh\necho hello\nexit 0\n",
    "not-executable-format": b"\x7fELF\x02\x01\x01garbage" * 10,
}


@dataclass
class Host:
    root: Path
    shell: Shell
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def src(self) -> Path:
        return self.root / "image" / "opt" / "cni" / "bin"

    @property
    def bin(self) -> Path:
        return self.root / "host" / "opt" / "cni" / "bin"

    @property
    def conf(self) -> Path:
        return self.root / "host" / "etc" / "cni" / "net.d"

    @property
    def cfg(self) -> Path:
        return self.root / "image" / "etc" / "kube-flannel" / "cni-conf.json"

    @property
    def conflist(self) -> Path:
        return self.conf / "10-flannel.conflist"

    def put_src(self, name: str, data: bytes, mode: int = 0o755) -> None:
        self.src.mkdir(parents=True, exist_ok=True)
        path = self.src / name
        path.write_bytes(data)
        path.chmod(mode)

    def put_bin(self, name: str, data: bytes) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        path = self.bin / name
        path.write_bytes(data)
        path.chmod(0o755)

    def put_cfg(self, text: str) -> None:
        self.cfg.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cfg.with_name(".cfg.tmp")
        tmp.write_text(text)
        tmp.replace(self.cfg)

    def env(self, **extra: str) -> dict[str, str]:
        tmpdir = self.root / "tmp"
        tmpdir.mkdir(exist_ok=True)
        env = {
            "PATH": self.shell.path,
            "TMPDIR": str(tmpdir),
            "CNI_BIN_SRC": str(self.src),
            "CNI_BIN_DIR": str(self.bin),
            "CNI_CONF_DIR": str(self.conf),
            "CNI_NETWORK_CONFIG_FILE": str(self.cfg),
            "SLEEP": "false",
            # the binaries' unpack cache, which install-cni.sh also warms: never the host's
            "CNI_PLUGINS_CACHE_DIR": str(self.root / "unpack-cache"),
        }
        env.update(self.extra_env)
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [*self.shell.argv, str(SCRIPT), *args]

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args),
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for line in proc.stderr.splitlines():
            assert LOG_LINE.match(line), f"not a log line: {line!r}"
        return proc


@pytest.fixture
def host(tmp_path: Path, shell: Shell) -> Host:
    h = Host(tmp_path, shell)
    for name in PLUGINS:
        h.put_src(name, fake_plugin("v2"))
    h.put_cfg(json.dumps(CONFLIST, indent=2))
    return h


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under root (dot files included): mode and content."""
    out: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(path).encode()
        elif stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
        else:
            data = b""
        out[str(path.relative_to(root))] = (st.st_mode, data)
    return out


def assert_no_temp_files(h: Host) -> None:
    for d in (h.bin, h.conf):
        if d.exists():
            leftovers = [p.name for p in d.iterdir() if p.name.startswith(".")]
            assert leftovers == [], f"temporary files left in {d}: {leftovers}"


def version_tag(path: Path) -> str:
    out = subprocess.run(
        [str(path)],
        env={"PATH": PATH, "CNI_COMMAND": "VERSION"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tag: str = json.loads(out)["tag"]
    return tag


# --------------------------------------------------------------------- basics


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_script_is_executable_with_sh_shebang() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")


def test_fresh_install(host: Host) -> None:
    proc = host.run()
    assert proc.returncode == 0, proc.stderr
    for name in PLUGINS:
        dst = host.bin / name
        assert dst.read_bytes() == (host.src / name).read_bytes()
        assert stat.S_IMODE(dst.stat().st_mode) == 0o755
        assert version_tag(dst) == "v2"
    assert json.loads(host.conflist.read_text()) == CONFLIST
    assert stat.S_IMODE(host.conflist.stat().st_mode) == 0o644
    assert sorted(p.name for p in host.conf.iterdir()) == ["10-flannel.conflist"]
    assert_no_temp_files(host)
    assert "installed" in proc.stderr
    assert proc.stderr.rstrip().endswith("install-cni: done")


def test_rerun_skips_identical_files(host: Host) -> None:
    assert host.run().returncode == 0
    inodes = {p.name: p.stat().st_ino for p in [*host.bin.iterdir(), host.conflist]}
    proc = host.run()
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.stat().st_ino for p in [*host.bin.iterdir(), host.conflist]} == inodes
    assert proc.stderr.count("is up to date") == len(PLUGINS) + 1
    assert "installed " not in proc.stderr


def test_binaries_are_installed_before_the_conflist(host: Host) -> None:
    proc = host.run()
    assert proc.returncode == 0
    lines = proc.stderr.splitlines()
    last_bin = max(i for i, line in enumerate(lines) if "installed " in line)
    conf = next(i for i, line in enumerate(lines) if "wrote " in line)
    assert last_bin < conf


def test_changed_binary_is_replaced_atomically(host: Host) -> None:
    host.put_bin("flannel", fake_plugin("v1"))
    old_inode = (host.bin / "flannel").stat().st_ino
    assert host.run().returncode == 0
    assert version_tag(host.bin / "flannel") == "v2"
    # rename(2) of a new file, never an in-place rewrite
    assert (host.bin / "flannel").stat().st_ino != old_inode


def test_upgrade_while_old_binary_is_running(host: Host) -> None:
    """The premise of ETXTBSY: an ELF being executed cannot be opened for writing.
    install-cni must still replace it (rename), and the running process is unaffected."""
    sleep = Path(shutil.which("sleep") or "/bin/sleep").resolve()
    if not sleep.read_bytes().startswith(b"\x7fELF"):
        pytest.skip("sleep is not an ELF executable")
    host.put_bin("portmap", sleep.read_bytes())
    running = subprocess.Popen([str(host.bin / "portmap"), "30"])
    try:
        time.sleep(0.2)
        with pytest.raises(OSError) as exc:
            (host.bin / "portmap").open("r+b")
        assert exc.value.errno == errno.ETXTBSY  # what a plain `cp` over it would hit
        proc = host.run()
        assert proc.returncode == 0, proc.stderr
        assert version_tag(host.bin / "portmap") == "v2"
        assert running.poll() is None
    finally:
        running.kill()
        running.wait()


LOOP = r"""
ok=0
bad=0
while [ ! -e "$STOP" ]; do
  for p in flannel portmap; do
    if out=$(CNI_COMMAND=VERSION "$BIN/$p" </dev/null 2>&1); then
      case $out in
      *'"supportedVersions"'*) ok=$((ok + 1)); printf '%s\n' "$out" >>"$SEEN" ;;
      *) bad=$((bad + 1)); printf 'bad output from %s: %s\n' "$p" "$out" >>"$ERRORS" ;;
      esac
    else
      bad=$((bad + 1)); printf 'exec of %s failed: %s\n' "$p" "$out" >>"$ERRORS"
    fi
  done
done
printf '%s %s\n' "$ok" "$bad" >"$RESULT"
"""


def test_upgrade_under_constant_execution(host: Host, tmp_path: Path) -> None:
    """A background loop executes the plugins nonstop while install-cni swaps large
    versions back and forth: every single exec must answer VERSION."""
    rounds = 12
    for name in PLUGINS:
        host.put_src(name, fake_plugin("v1", pad_kib=512))
    assert host.run().returncode == 0
    files = {k: tmp_path / k for k in ("stop", "seen", "errors", "result")}
    loop = subprocess.Popen(
        [*host.shell.argv, "-c", LOOP],
        env={
            "PATH": host.shell.path,
            "BIN": str(host.bin),
            **{k.upper(): str(v) for k, v in files.items()},
        },
    )
    try:
        time.sleep(0.3)
        for i in range(rounds):
            tag = f"v{i + 2}"
            for name in PLUGINS:
                host.put_src(name, fake_plugin(tag, pad_kib=512))
            proc = host.run()
            assert proc.returncode == 0, proc.stderr
            assert version_tag(host.bin / "flannel") == tag
        time.sleep(0.3)
    finally:
        files["stop"].touch()
        loop.wait(timeout=60)
    ok, bad = (int(x) for x in files["result"].read_text().split())
    errors = files["errors"].read_text() if files["errors"].exists() else ""
    assert bad == 0, errors
    assert ok > rounds
    tags = {json.loads(line)["tag"] for line in files["seen"].read_text().splitlines()}
    assert len(tags) >= 3, tags  # the loop really ran across several swaps
    assert_no_temp_files(host)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_new_binary_leaves_host_unchanged(host: Host, kind: str) -> None:
    for name in PLUGINS:
        host.put_bin(name, fake_plugin("v1"))
    host.conf.mkdir(parents=True)
    host.conflist.write_text('{"name":"old","cniVersion":"0.3.1","plugins":[{"type":"flannel"}]}')
    # bridge, flannel and host-local sort before portmap: they pass and are staged
    # first, and must not be swapped in when portmap fails.
    host.put_src("portmap", BROKEN[kind])
    before = snapshot(host.root / "host")
    proc = host.run()
    assert proc.returncode != 0
    assert "new portmap refused" in proc.stderr
    assert "host left unchanged" in proc.stderr
    if kind == "exits-nonzero":
        assert "boom: missing libpython" in proc.stderr
    assert snapshot(host.root / "host") == before
    assert version_tag(host.bin / "flannel") == "v1"


def test_broken_binary_refused_on_fresh_host(host: Host) -> None:
    host.put_src("bridge", BROKEN["wrong-output"])
    proc = host.run()
    assert proc.returncode != 0
    assert "supportedVersions" in proc.stderr
    assert not host.bin.exists() or list(host.bin.iterdir()) == []
    assert not host.conflist.exists()


BAD_CONFIGS = {
    "syntax": (
        '{"name":"cbr0","cniVersion":"1.1.0","plugins":[{"type":"flannel"},]}',
        "invalid JSON",
    ),
    "truncated": ('{"name":"cbr0","cniVersion":"1.1.0","plugins":[{"type":"flan', "invalid JSON"),
    "not-object": ('[{"type":"flannel"}]', "not a JSON object"),
    "empty": ("   \n", "empty"),
    "trailing": (
        '{"name":"a","cniVersion":"1.1.0","plugins":[{"type":"x"}]} {}',
        "after the object",
    ),
    "no-plugins": ('{"name":"cbr0","cniVersion":"1.1.0"}', '"plugins" array'),
    "empty-plugins": ('{"name":"cbr0","cniVersion":"1.1.0","plugins":[]}', "is empty"),
    "plugin-no-type": (
        '{"name":"cbr0","cniVersion":"1.1.0","plugins":[{"type":"flannel"},{"capabilities":{}}]}',
        'plugins[1] has no "type"',
    ),
    "no-name": ('{"cniVersion":"1.1.0","plugins":[{"type":"flannel"}]}', '"name"'),
    "version-number": (
        '{"name":"a","cniVersion":1.1,"plugins":[{"type":"x"}]}',
        "must be a string",
    ),
    "version-garbage": (
        '{"name":"a","cniVersion":"latest","plugins":[{"type":"x"}]}',
        "not a version",
    ),
    "control-char": ('{"name":"a\tb","cniVersion":"1.1.0","plugins":[{"type":"x"}]}', "control"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_refused_old_conflist_kept(host: Host, case: str) -> None:
    text, reason = BAD_CONFIGS[case]
    host.conf.mkdir(parents=True)
    old = '{"name":"old","cniVersion":"0.3.1","plugins":[{"type":"flannel"}]}\n'
    host.conflist.write_text(old)
    host.put_cfg(text)
    proc = host.run()
    assert proc.returncode != 0
    assert "configuration refused" in proc.stderr
    assert reason in proc.stderr
    assert host.conflist.read_text() == old
    assert_no_temp_files(host)
    # binaries come first and were installed; the configuration alone was refused
    assert (host.bin / "flannel").exists()


def test_config_survives_byte_for_byte(host: Host) -> None:
    text = (
        '{\n  "name": "cbr0", "cniVersion": "1.1.0",\n'
        '  "x": {"s": "\\u00e9\\n\\"q\\" \\\\ é", "n": -1.5e-3, "b": [true, false, null]},\n'
        '  "plugins": [ {"type": "flannel"} ]\n}\n'
    )
    host.put_cfg(text)
    proc = host.run()
    assert proc.returncode == 0, proc.stderr
    assert host.conflist.read_text() == text


def test_missing_cniversion_gets_default(host: Host) -> None:
    cfg = {k: v for k, v in CONFLIST.items() if k != "cniVersion"}
    host.put_cfg(json.dumps(cfg))
    proc = host.run()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(host.conflist.read_text()) == {**cfg, "cniVersion": "0.3.1"}
    assert "WARNING: the configuration has no cniVersion" in proc.stderr


def test_missing_cniversion_custom_default(host: Host) -> None:
    host.put_cfg(' \n{ "name":"cbr0", "plugins":[{"type":"flannel"}]}')
    proc = host.run(CNI_DEFAULT_CNI_VERSION="1.1.0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(host.conflist.read_text())["cniVersion"] == "1.1.0"


def test_missing_cniversion_refused_when_no_default(host: Host) -> None:
    host.put_cfg('{"name":"cbr0","plugins":[{"type":"flannel"}]}')
    proc = host.run(CNI_DEFAULT_CNI_VERSION="")
    assert proc.returncode != 0
    assert 'has no "cniVersion"' in proc.stderr
    assert not host.conflist.exists()


def test_env_config_wins_and_is_never_shell_expanded(host: Host, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cfg = {
        "name": "cbr0",
        "cniVersion": "1.0.0",
        "comment": f"$HOME ${{PATH}} `touch {marker}` $(touch {marker}) \\ '\"",
        "plugins": [{"type": "flannel"}],
    }
    text = json.dumps(cfg)
    proc = host.run(CNI_NETWORK_CONFIG=text)
    assert proc.returncode == 0, proc.stderr
    assert host.conflist.read_text() == text + "\n"
    assert not marker.exists()


def test_no_config_source_is_an_error(host: Host) -> None:
    host.cfg.unlink()
    proc = host.run()
    assert proc.returncode != 0
    assert "no network configuration" in proc.stderr


def test_single_plugin_conf_name(host: Host) -> None:
    host.put_cfg('{"cniVersion":"1.0.0","name":"n","type":"bridge"}')
    proc = host.run(CNI_CONF_NAME="20-single.conf")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((host.conf / "20-single.conf").read_text())["type"] == "bridge"
    host.put_cfg(json.dumps(CONFLIST))
    proc = host.run(CNI_CONF_NAME="20-single.conf")
    assert proc.returncode != 0
    assert 'needs a non-empty "type"' in proc.stderr


def test_warns_about_plugin_types_without_binary(host: Host) -> None:
    cfg = {**CONFLIST, "plugins": [*CONFLIST["plugins"], {"type": "bandwidth"}]}
    host.put_cfg(json.dumps(cfg))
    proc = host.run()
    assert proc.returncode == 0
    assert 'uses plugin "bandwidth", which is not in' in proc.stderr
    assert 'plugin "flannel"' not in proc.stderr


# ------------------------------------------------------------- name handling


def test_old_name_removed_other_files_kept(host: Host) -> None:
    host.conf.mkdir(parents=True)
    (host.conf / "10-flannel.conf").write_text('{"name":"cbr0","type":"flannel"}')
    (host.conf / "99-other.conflist").write_text("{}")
    proc = host.run()
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in host.conf.iterdir()) == [
        "10-flannel.conflist",
        "99-other.conflist",
    ]
    assert "removed old" in proc.stderr


def test_old_name_equal_to_new_name_is_kept(host: Host) -> None:
    proc = host.run(CNI_CONF_NAME="10-flannel.conflist", CNI_OLD_NAME="10-flannel.conflist")
    assert proc.returncode == 0, proc.stderr
    assert host.conflist.exists()


def test_custom_names(host: Host) -> None:
    host.conf.mkdir(parents=True)
    (host.conf / "05-legacy.conflist").write_text("{}")
    proc = host.run(CNI_CONF_NAME="00-mine.conflist", CNI_OLD_NAME="05-legacy.conflist")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in host.conf.iterdir()) == ["00-mine.conflist"]


@pytest.mark.parametrize(
    ("var", "value", "reason"),
    [
        ("UPDATE_CNI_BINARIES", "maybe", "UPDATE_CNI_BINARIES must be true or false"),
        ("SLEEP", "yes", "SLEEP must be true or false"),
        ("CNI_CONF_POLL_SECONDS", "0", "CNI_CONF_POLL_SECONDS must be"),
        ("CNI_RECLAIM_SECONDS", "1m", "CNI_RECLAIM_SECONDS must be"),
        ("CNI_CONF_NAME", "10-flannel.txt", "must end in .conflist, .conf or .json"),
        ("CNI_CONF_NAME", "../evil.conflist", "not a plain file name"),
        ("CNI_OLD_NAME", "a/b", "not a plain file name"),
        ("CNI_DEFAULT_CNI_VERSION", "v1", "not a version"),
    ],
)
def test_bad_settings_refused_before_touching_the_host(
    host: Host, var: str, value: str, reason: str
) -> None:
    proc = host.run(**{var: value})
    assert proc.returncode != 0
    assert reason in proc.stderr
    assert not (host.root / "host").exists()


def test_unknown_argument(host: Host) -> None:
    proc = host.run("--frobnicate")
    assert proc.returncode != 0
    assert "unknown argument: --frobnicate" in proc.stderr


def test_empty_source_dir_is_an_error(host: Host) -> None:
    shutil.rmtree(host.src)
    host.src.mkdir()
    proc = host.run()
    assert proc.returncode != 0
    assert "no binaries found" in proc.stderr


def test_stale_temp_files_removed_fresh_ones_kept(host: Host) -> None:
    host.bin.mkdir(parents=True)
    stale = host.bin / ".install-cni.4242.flannel.tmp"
    fresh = host.bin / ".install-cni.4343.flannel.tmp"
    for p in (stale, fresh):
        p.write_text("partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert host.run().returncode == 0
    assert not stale.exists()
    assert fresh.exists()  # may belong to a concurrent run


# ----------------------------------------------------------------- switches


def test_skip_cni_binaries(host: Host) -> None:
    proc = host.run(SKIP_CNI_BINARIES="bridge, portmap")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in host.bin.iterdir()) == ["flannel", "host-local", "loopback"]
    assert "skipping bridge (in SKIP_CNI_BINARIES)" in proc.stderr


def test_skipped_broken_binary_is_not_checked(host: Host) -> None:
    host.put_src("portmap", BROKEN["exits-nonzero"])
    proc = host.run(SKIP_CNI_BINARIES="portmap")
    assert proc.returncode == 0, proc.stderr
    assert not (host.bin / "portmap").exists()


def test_update_cni_binaries_false_keeps_existing(host: Host) -> None:
    host.put_bin("flannel", fake_plugin("v1"))
    proc = host.run(UPDATE_CNI_BINARIES="false")
    assert proc.returncode == 0, proc.stderr
    assert version_tag(host.bin / "flannel") == "v1"
    assert version_tag(host.bin / "bridge") == "v2"  # missing ones are still installed
    assert "keeping existing" in proc.stderr


def test_no_sleep_flag_overrides_env(host: Host) -> None:
    proc = host.run("--no-sleep", SLEEP="true")
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ sidecar


def wait_for(pred: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture
def sidecar(host: Host, tmp_path: Path) -> Iterator[Starter]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"sidecar{len(started)}.log"
        env = host.env(**extra)
        del env["SLEEP"]  # the default is to stay running
        with log.open("wb") as out:
            proc = subprocess.Popen(
                host.argv(*args), env=env, stdout=out, stderr=out, start_new_session=True
            )
        started.append(proc)
        assert wait_for(lambda: "sidecar mode" in log.read_text()), log.read_text()
        return proc, log

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def process_group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sidecar_follows_config_changes(host: Host, sidecar: Starter) -> None:
    proc, log = sidecar(CNI_CONF_POLL_SECONDS="1")
    assert json.loads(host.conflist.read_text()) == CONFLIST

    changed = {**CONFLIST, "name": "changed"}
    host.put_cfg(json.dumps(changed))
    assert wait_for(lambda: json.loads(host.conflist.read_text()) == changed), log.read_text()

    # a broken edit is reported once and the installed conflist stays
    host.put_cfg('{"name": "broken",')
    assert wait_for(lambda: "configuration refused" in log.read_text())
    time.sleep(2.5)
    assert json.loads(host.conflist.read_text()) == changed
    assert log.read_text().count("configuration refused") == 1
    assert proc.poll() is None

    # fixed again
    host.put_cfg(json.dumps(CONFLIST))
    assert wait_for(lambda: json.loads(host.conflist.read_text()) == CONFLIST)

    # the installed copy is removed or edited on the host: restored
    host.conflist.unlink()
    assert wait_for(host.conflist.exists), log.read_text()
    host.conflist.write_text("{}")
    assert wait_for(lambda: host.conflist.read_text() != "{}")
    assert json.loads(host.conflist.read_text()) == CONFLIST

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert "received SIGTERM, exiting" in log.read_text()
    assert_no_temp_files(host)
    for line in log.read_text().splitlines():
        assert LOG_LINE.match(line), line


def fake_doctor(calls: Path) -> bytes:
    """A cni-doctor that answers VERSION and otherwise records its arguments."""
    return (
        fake_plugin("doctor")
        .decode()
        .replace("exit 1\n", f'echo "$@" >> {calls}\necho "1 problem(s) found, 0 left"\nexit 1\n')
    ).encode()


def test_sidecar_runs_the_reclaim_when_asked(host: Host, sidecar: Starter, tmp_path: Path) -> None:
    calls = tmp_path / "doctor-calls"
    host.put_src("cni-doctor", fake_doctor(calls))
    proc, log = sidecar(
        CNI_CONF_POLL_SECONDS="1", CNI_RECLAIM_SECONDS="1", CNI_RECLAIM_ARGS="--grace 0"
    )
    assert wait_for(lambda: calls.exists() and len(calls.read_text().splitlines()) >= 2)
    for line in calls.read_text().splitlines():
        assert line.split() == [
            "--reclaim-only", "--repair", "--conf-dir", str(host.conf),
            "--bin-dir", str(host.bin), "--grace", "0",
        ]  # fmt: skip
    assert "reclaim: 1 problem(s) found, 0 left" in log.read_text()
    assert proc.poll() is None


def test_sidecar_does_not_reclaim_by_default(host: Host, sidecar: Starter, tmp_path: Path) -> None:
    calls = tmp_path / "doctor-calls"
    host.put_src("cni-doctor", fake_doctor(calls))
    proc, log = sidecar(CNI_CONF_POLL_SECONDS="1")
    time.sleep(2.5)
    assert not calls.exists()
    assert "reclaim:" not in log.read_text() and "reclaiming" not in log.read_text()
    assert proc.poll() is None


def test_sidecar_exits_promptly_on_sigterm(host: Host, sidecar: Starter, tmp_path: Path) -> None:
    proc, _log = sidecar(CNI_CONF_POLL_SECONDS="300")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - t0 < 3
    # its sleep child is gone too, and its state directory was removed
    assert wait_for(lambda: process_group_gone(proc.pid), timeout=3)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_sleep_flag(host: Host, sidecar: Starter) -> None:
    proc, _ = sidecar("--sleep", SLEEP="false")
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


# ------------------------------------------------------- real built binaries


@pytest.mark.binaries
def test_installs_the_built_binaries(tmp_path: Path, shell: Shell) -> None:
    dist = REPO / "dist" / "bin"
    if not dist.is_dir() or not any(dist.iterdir()):
        pytest.skip("dist/bin not built")
    h = Host(tmp_path, shell)
    h.put_cfg(json.dumps(CONFLIST))
    proc = h.run(CNI_BIN_SRC=str(dist))
    assert proc.returncode == 0, proc.stderr
    for src in dist.iterdir():
        assert (h.bin / src.name).read_bytes() == src.read_bytes()


# --------------------------------------------------------------- unpack cache


def launcher_like(payload_id: str, name: str = "flannel") -> bytes:
    """A plugin that behaves, for install-cni.sh, like one of our built binaries:
    its VERSION answer unpacks (here: creates) the entry of its payload in
    $CNI_PLUGINS_CACHE_DIR, and it ends in the launcher's 128-byte trailer
    (name[32] id[64] sizes and crc[24] magic[8], build/README.md)."""
    script = (
        "#!/bin/sh\n"
        'if [ "$CNI_COMMAND" = VERSION ]; then\n'
        '  if [ -n "$CNI_PLUGINS_CACHE_DIR" ]; then\n'
        f'    mkdir -p "$CNI_PLUGINS_CACHE_DIR/{payload_id}" &&\n'
        f'      : >"$CNI_PLUGINS_CACHE_DIR/{payload_id}/.complete"\n'
        "  fi\n"
        '  echo \'{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}\'\n'
        "  exit 0\n"
        "fi\n"
        "exit 1\n"
    ).encode()
    trailer = name.encode().ljust(32, b"\0") + payload_id.encode() + b"\0" * 24 + b"CNIPYPL1"
    assert len(trailer) == 128
    return script + trailer


NEW_ID, OLD_ID, OTHER_ID, HALF_ID, LINKED_ID = ("b" * 64, "a" * 64, "c" * 64, "d" * 64, "e" * 64)


def cache_entry(cache: Path, name: str, *, complete: bool = True) -> Path:
    entry = cache / name
    (entry / "_internal").mkdir(parents=True)
    (entry / "cni-plugins").write_bytes(b"bundle")
    if complete:
        (entry / ".complete").write_bytes(b"")
    return entry


@pytest.fixture
def cached_host(host: Host) -> tuple[Host, Path]:
    cache = host.root / "host" / "var" / "lib" / "cni" / "cni-plugins-py"
    for name in PLUGINS:
        host.put_src(name, launcher_like(NEW_ID, name))
    host.put_bin("flannel", launcher_like(OLD_ID))  # the installed build, replaced now
    host.put_bin("other-plugin", launcher_like(OTHER_ID))  # ours too, not in the image
    elsewhere = host.root / "elsewhere" / "linked-plugin"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(launcher_like(LINKED_ID))
    (host.bin / "linked-plugin").symlink_to(elsewhere)  # the runtime execs its target
    cache_entry(cache, OLD_ID)
    cache_entry(cache, OTHER_ID)
    cache_entry(cache, LINKED_ID)
    cache_entry(cache, HALF_ID, complete=False)  # no marker: not provably an entry
    cache_entry(cache, "not-a-payload-id")
    return host, cache


def can_prune(host: Host) -> bool:
    return shutil.which("flock", path=host.shell.path) is not None


def test_cache_warmed_and_unused_payloads_removed(cached_host: tuple[Host, Path]) -> None:
    host, cache = cached_host
    proc = host.run(CNI_PLUGINS_CACHE_DIR=str(cache))
    assert proc.returncode == 0, proc.stderr
    assert (cache / NEW_ID / ".complete").is_file()  # the new payload is unpacked
    kept = {p.name for p in cache.iterdir() if not p.name.startswith(".")}
    assert {NEW_ID, OTHER_ID, LINKED_ID, HALF_ID, "not-a-payload-id"} <= kept
    if can_prune(host):
        assert OLD_ID not in kept
        assert f"removed unused payload {OLD_ID}" in proc.stderr
        assert not [p for p in cache.iterdir() if p.name.startswith(".trash-")]
    else:  # a busybox-only userland has no flock(1): nothing is removed
        assert OLD_ID in kept
        assert "no flock(1): not pruning" in proc.stderr


def test_cache_payload_in_use_is_kept(cached_host: tuple[Host, Path]) -> None:
    host, cache = cached_host
    if not can_prune(host):
        pytest.skip("no flock(1) in this userland")
    # a process running from an entry holds a shared lock on it (launcher.c open_entry)
    fd = os.open(cache / OLD_ID, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        proc = host.run(CNI_PLUGINS_CACHE_DIR=str(cache))
    finally:
        os.close(fd)
    assert proc.returncode == 0, proc.stderr
    assert (cache / OLD_ID / ".complete").is_file()
    assert f"kept payload {OLD_ID}" in proc.stderr
    # released: the next run (e.g. the sidecar's start) removes it
    proc = host.run(CNI_PLUGINS_CACHE_DIR=str(cache))
    assert not (cache / OLD_ID).exists(), proc.stderr


def test_cache_untouched_without_the_setting(cached_host: tuple[Host, Path]) -> None:
    host, cache = cached_host
    before = snapshot(cache)
    proc = host.run()
    assert proc.returncode == 0, proc.stderr
    assert snapshot(cache) == before


def _dirs_case(host: Host, case: str) -> tuple[str, str]:
    """(CNI_BIN_DIR, CNI_CONF_DIR) for one way of pointing both at one tree."""
    base = host.root / "host"
    real = base / "real"
    real.mkdir(parents=True)
    (base / "link").symlink_to(real)
    return {
        "same": (f"{real}", f"{real}/"),
        "symlink": (f"{real}", f"{base}/link"),
        "conf-inside-bin": (f"{base}/link", f"{real}/net.d/not-yet"),
        "bin-inside-conf": (f"{base}/link/../link/bin", f"{real}"),
        "root": ("/", f"{real}"),
    }[case]


@pytest.mark.parametrize("case", ["same", "symlink", "conf-inside-bin", "bin-inside-conf", "root"])
def test_bin_dir_and_conf_dir_must_be_apart(host: Host, case: str) -> None:
    bin_dir, conf_dir = _dirs_case(host, case)
    before = snapshot(host.root / "host")
    proc = host.run(CNI_BIN_DIR=bin_dir, CNI_CONF_DIR=conf_dir)
    assert proc.returncode != 0
    assert "use separate directories (host left unchanged)" in proc.stderr
    reason = "are the same directory" if case in ("same", "symlink") else "nest: "
    assert reason in proc.stderr
    assert snapshot(host.root / "host") == before  # nothing copied, nothing created


def test_bin_dir_and_conf_dir_sharing_a_name_prefix_are_apart(host: Host) -> None:
    base = host.root / "host"
    proc = host.run(CNI_BIN_DIR=f"{base}/cni", CNI_CONF_DIR=f"{base}/cni.d")
    assert proc.returncode == 0, proc.stderr
    assert (base / "cni" / "flannel").exists() and (base / "cni.d" / "10-flannel.conflist").exists()
