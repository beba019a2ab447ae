"""The CNI execution protocol: environment + stdin in, JSON out, one exit status.

``run`` takes all I/O as parameters so tests drive it without a process.  It
owns the only two ``except`` clauses that print: a ``CNIError`` becomes
``{"cniVersion","code","msg","details"}`` on stdout, anything else becomes code
999 with the traceback on stderr only.  Either way the exit status is 1.
VERSION needs none of ``args`` and ``convert``: they load with the verbs that
use them (every module imported is paid at each exec).
"""

from __future__ import annotations

import os
import sys

from cni_plugins.spec import jsonio, trace
from cni_plugins.spec import version as versions
from cni_plugins.spec.errors import (
    CNIError,
    DecodingFailure,
    IncompatibleVersion,
    InternalError,
    InvalidConfig,
    InvalidEnvironment,
    InvalidNetNS,
    IOFailure,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, BinaryIO, NoReturn, TextIO

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.types import Result

    Handler = Callable[[CmdArgs], None]

# Configs are a few KiB; anything this large is a mistake or an attack.
MAX_STDIN = 1 << 20

# Which CNI_* variables each verb needs.  CNI_PATH is required where a plugin
# may delegate, as Go's skel does; the spec makes it optional for STATUS.
_REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
}


class Plugin:
    """A plugin's handlers.  A missing STATUS or GC handler means "nothing to do"."""

    __slots__ = ("add", "check", "delete", "gc", "name", "status", "version", "versions")

    def __init__(
        self,
        name: str,
        *,
        add: Callable[[CmdArgs], Result],
        delete: Handler,
        check: Handler,
        status: Handler | None = None,
        gc: Handler | None = None,
        supported: tuple[str, ...] = versions.SUPPORTED_VERSIONS,
        version: str = "",
    ) -> None:
        self.name = name
        self.add = add
        self.delete = delete
        self.check = check
        self.status = status
        self.gc = gc
        self.versions = supported
        self.version = version

    def about(self) -> str:
        from cni_plugins import __version__

        return (
            f"CNI {self.name} plugin {self.version or __version__}\n"
            f"CNI protocol versions supported: {', '.join(self.versions)}\n"
        )


def run(
    plugin: Plugin,
    *,
    environ: Mapping[str, str],
    stdin: BinaryIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Handle one invocation; returns the process exit status."""
    if trace.ON:
        trace.imports_done()
    command = environ.get("CNI_COMMAND", "")
    if not command:
        stderr.write(plugin.about())
        return 0
    cni_version: str | None = None
    data = b""
    logged: _Logged | None = None
    try:
        if command == "VERSION":
            _print(stdout, _version_reply(plugin, _read_stdin(stdin)))
            return 0
        if command not in _REQUIRED_ENV:
            raise InvalidEnvironment(f"unknown CNI_COMMAND: {command}")
        data = _read_stdin(stdin)
        if _LOG_MARKER in data.lower():  # "logFile" in some spelling: time this one
            logged = _Logged(plugin.name, command, environ, data, stderr)
        t = trace.now() if trace.ON else 0
        args = parse_invocation(plugin, command, environ, data)
        if trace.ON:
            trace.span("parse", t, command)
        cni_version = args.cni_version
        result = dispatch(plugin, args)
        if result is not None:
            from cni_plugins.spec.convert import result_to_wire

            _print(stdout, result_to_wire(result, args.cni_version))
        if logged is not None:
            logged.done(args.config, result, None)
        return 0
    except CNIError as exc:
        error = exc
        _print(stdout, exc.to_json(cni_version))
    except Exception as exc:  # noqa: BLE001 - the one catch-all: never a traceback on stdout
        import traceback

        traceback.print_exc(file=stderr)
        error = InternalError(f"{type(exc).__name__}: {exc}")
        _print(stdout, error.to_json(cni_version))
    if logged is not None:
        logged.done(None, None, error)
    return 1


# spec.logfile.MARKER, kept here so an invocation without a log loads nothing of it.
_LOG_MARKER = b"logfile"


class _Logged:
    """An invocation whose config may name a ``logFile``: started now, its
    line written by ``done`` (which never raises)."""

    __slots__ = ("command", "data", "environ", "plugin", "started", "stderr")

    def __init__(
        self, plugin: str, command: str, environ: Mapping[str, str], data: bytes, stderr: TextIO
    ) -> None:
        from cni_plugins.spec import logfile

        self.started = logfile.clock()
        self.plugin = plugin
        self.command = command
        self.environ = environ
        self.data = data
        self.stderr = stderr

    def done(
        self, config: Mapping[str, Any] | None, result: Result | None, error: CNIError | None
    ) -> None:
        from cni_plugins.spec import logfile

        logfile.record(
            plugin=self.plugin,
            command=self.command,
            environ=self.environ,
            config=config,
            stdin=self.data,
            started=self.started,
            result=result,
            error=error,
            stderr=self.stderr,
        )


def dispatch(plugin: Plugin, args: CmdArgs) -> Result | None:
    """Run the handler of ``args.command`` after the version gate of that verb."""
    minimum = versions.MIN_VERSION_FOR_VERB.get(args.command)
    if minimum and not versions.at_least(args.cni_version, minimum):
        raise IncompatibleVersion(
            f"config version does not allow {args.command}",
            f'config is "{args.cni_version}", {args.command} needs {minimum} or later',
        )
    if args.command == "ADD":
        return plugin.add(args)
    handler = {
        "DEL": plugin.delete,
        "CHECK": plugin.check,
        "STATUS": plugin.status,
        "GC": plugin.gc,
    }[args.command]
    if handler is not None:
        handler(args)
    return None


def parse_invocation(
    plugin: Plugin, command: str, environ: Mapping[str, str], stdin: bytes
) -> CmdArgs:
    """Validate the environment and the config for ``command``; all problems of
    the environment are reported together (code 4)."""
    from cni_plugins.spec.args import (
        CmdArgs,
        validate_container_id,
        validate_ifname,
        validate_network_name,
    )

    required = _REQUIRED_ENV[command]
    missing = [name for name in required if not environ.get(name)]
    if missing:
        raise InvalidEnvironment(f"required env variables [{','.join(missing)}] missing")
    container_id = environ.get("CNI_CONTAINERID", "")
    ifname = environ.get("CNI_IFNAME", "")
    if "CNI_CONTAINERID" in required:
        validate_container_id(container_id)
    if "CNI_IFNAME" in required:
        validate_ifname(ifname)
    if command in ("ADD", "CHECK", "DEL"):
        refuse_own_netns(environ)
    from cni_plugins.spec.gokeys import NETCONF

    # Go decodes the config into a struct embedding types.NetConf: its keys match
    # case-insensitively.  The plugin's own keys are kept for its parser to match.
    config = NETCONF.decode(decode_config(stdin), keep_unknown=True)
    cni_version = config_version(config, plugin.versions)
    validate_network_name(config.get("name"))
    prev = config.get("prevResult")
    prev_result = None
    if prev:
        from cni_plugins.spec.convert import result_from_wire

        prev_result = result_from_wire(prev, cni_version, "prevResult", go_map=True)
    return CmdArgs(
        command=command,
        container_id=container_id,
        netns=environ.get("CNI_NETNS", ""),
        ifname=ifname,
        cni_args=environ.get("CNI_ARGS", ""),
        path=tuple(p for p in environ.get("CNI_PATH", "").split(os.pathsep) if p),
        stdin=stdin,
        config=config,
        cni_version=cni_version,
        prev_result=prev_result,
        environ=environ,
        plugin=plugin.name,
    )


def refuse_own_netns(environ: Mapping[str, str]) -> None:
    """Code 8 when CNI_NETNS is the plugin's own network namespace (a reused
    ``/proc/<pid>/ns/net`` now naming the host's: plugins#714), before any
    handler acts, so not even node-side state of the container is touched
    (Go's skel checks only after the handler ran).  ``CNI_NETNS_OVERRIDE=1``
    allows it, as in Go.  Paths that do not exist are left to the handlers
    (DEL succeeds for a namespace already gone)."""
    path = environ.get("CNI_NETNS", "")
    if not path or environ.get("CNI_NETNS_OVERRIDE", "").lower() in ("1", "true"):
        return
    try:
        st = os.stat(path)
        own = os.stat("/proc/thread-self/ns/net")
    except (OSError, ValueError):
        return
    if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
        raise InvalidNetNS(
            f"CNI_NETNS {path!r} is the plugin's own network namespace; refusing to act"
            " (set CNI_NETNS_OVERRIDE=1 to allow)"
        )


def decode_config(stdin: bytes) -> dict[str, Any]:
    try:
        config = jsonio.loads(stdin, go_key_order=True)
    except (ValueError, RecursionError) as exc:
        raise DecodingFailure("error decoding network config", str(exc)) from None
    if not isinstance(config, dict):
        raise DecodingFailure("error decoding network config", "not a JSON object")
    return config


def config_version(config: Mapping[str, Any], supported: tuple[str, ...]) -> str:
    raw = config.get("cniVersion")
    if raw is None or raw == "":
        return versions.IMPLICIT_VERSION
    if not isinstance(raw, str):
        raise DecodingFailure(f"cniVersion must be a string, got {raw!r}")
    return versions.require_supported(raw, supported)


def _version_reply(plugin: Plugin, stdin: bytes) -> dict[str, Any]:
    """Echo the caller's version when it is one we know (the spec's wording),
    else answer with the newest; stdin may be empty or junk."""
    echoed = versions.CURRENT
    try:
        raw = jsonio.loads(stdin).get("cniVersion") if stdin.strip() else None
    except (ValueError, AttributeError, RecursionError):
        raw = None
    if isinstance(raw, str) and raw in plugin.versions:
        echoed = raw
    return {"cniVersion": echoed, "supportedVersions": list(plugin.versions)}


def _read_stdin(stdin: BinaryIO) -> bytes:
    try:
        data = stdin.read(MAX_STDIN + 1)
    except OSError as exc:
        raise IOFailure("failed to read network config from stdin", exc.strerror or "") from exc
    if len(data) > MAX_STDIN:
        raise InvalidConfig(f"network config on stdin is larger than {MAX_STDIN} bytes")
    return data


def _print(stdout: TextIO, obj: Mapping[str, Any]) -> None:
    stdout.write(jsonio.dumps(obj, indent=4))
    stdout.write("\n")
    stdout.flush()


def run_in_process(plugin: Plugin, stdin: bytes, environ: Mapping[str, str]) -> tuple[int, bytes]:
    """Run ``plugin`` as if exec'd: same environment and stdin, stdout captured,
    stderr shared (a delegate's stderr is its caller's anyway)."""
    import io

    out = io.StringIO()
    code = run(plugin, environ=environ, stdin=io.BytesIO(stdin), stdout=out, stderr=sys.stderr)
    return code, out.getvalue().encode()


def main(plugin: Plugin) -> NoReturn:
    """Process entry point of every binary (never for in-process delegates)."""
    import io

    stdin = sys.stdin.buffer if sys.stdin is not None else io.BytesIO()
    code = run(plugin, environ=os.environ, stdin=stdin, stdout=sys.stdout, stderr=sys.stderr)
    exit_process(code)


def exit_process(code: int) -> NoReturn:
    """Flush stdout and stderr, then end the process without interpreter
    finalization (module teardown, GC, bootloader cleanup: ~4 ms per exec).
    Nothing needs it: the plugins join the threads they start, register no
    atexit handlers, keep no buffered files open and reap every child;
    descriptors and their flocks (the launcher's cache lock included) go with
    the process.  A failed flush lost
    output: then the ordinary exit, which reports it on stderr, non-zero."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # ValueError: a closed stream
        sys.exit(1)
    if trace.ON:
        trace.total()
    os._exit(code)
