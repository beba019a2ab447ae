"""Running one plugin of a list as libcni does (libcni/api.go buildOneConfig,
injectRuntimeConfig; pkg/invoke).

The plugin's stdin is its config with the list's ``name`` and ``cniVersion``,
``prevResult`` and, for the capabilities it declares true, ``runtimeConfig``
from CAP_ARGS, re-marshalled the way Go does (sorted keys, compact).  Plugins
are always exec'd from CNI_PATH, never run in this process: cnitool is what an
operator uses to see what a runtime would see, so our binaries get exactly the
treatment Go's plugins get (own process, environment, exit status), and the
few tens of milliseconds an exec costs do not matter to a person at a shell.
Stderr is collected: printed after a success, folded into the error otherwise
(pkg/invoke RawExec).
"""

from __future__ import annotations

import errno
import os
import sys
import time

from cni_plugins.spec import jsonio
from cni_plugins.spec.invoke import clean_environ
from cni_plugins.tools.cnitool.conflist import go_marshal, go_quote
from cni_plugins.tools.cnitool.errors import PluginError, ToolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cni_plugins.tools.cnitool.conflist import PluginConf
    from cni_plugins.tools.cnitool.runtime import RuntimeConf

# libcni retries a plugin that is being written ("text file busy") 5 times.
_ETXTBSY_RETRIES = 5
_ETXTBSY_DELAY = 1.0


def find_in_path(plugin_type: str, paths: list[str]) -> str:
    """pkg/invoke FindInPath: the first regular file of that name."""
    if not plugin_type:
        raise ToolError("no plugin name provided")
    if "/" in plugin_type:
        raise ToolError(f"invalid plugin name: {plugin_type}")
    if not paths:
        raise ToolError("no paths provided")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate):
            return candidate
    raise ToolError(f"failed to find plugin {go_quote(plugin_type)} in path [{' '.join(paths)}]")


def plugin_stdin(
    plugin: PluginConf,
    name: str,
    cni_version: str,
    prev_result: dict[str, Any] | None,
    rt: RuntimeConf | None,
) -> bytes:
    """libcni's buildOneConfig; ``rt`` None for GC and STATUS (no runtimeConfig)."""
    config = jsonio.loads(plugin.bytes)
    config["name"] = name
    config["cniVersion"] = cni_version
    if prev_result is not None:
        config["prevResult"] = prev_result
    runtime = {
        cap: rt.capability_args[cap]
        for cap, wanted in plugin.capabilities.items()
        if rt is not None and wanted and cap in rt.capability_args
    }
    if runtime:
        # a second re-marshal in libcni: prevResult's keys get sorted too
        config["runtimeConfig"] = runtime
        return go_marshal(config)
    # Go marshals the injected prevResult as a struct: in field order
    body = ",".join(
        jsonio.dumps(key) + ":" + jsonio.dumps(value, sort_keys=key != "prevResult", compact=True)
        for key, value in sorted(config.items())
    )
    return ("{" + body + "}").encode()


def environment(command: str, rt: RuntimeConf, paths: list[str]) -> dict[str, str]:
    """Our environment with the CNI_* variables of this call (pkg/invoke Args.AsEnv)."""
    env = clean_environ(os.environ)
    env.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=rt.container_id,
        CNI_NETNS=rt.netns,
        CNI_ARGS=rt.cni_args_string(),
        CNI_IFNAME=rt.ifname,
        CNI_PATH=":".join(paths),
    )
    return env


def run(path: str, stdin: bytes, env: dict[str, str]) -> bytes:
    """Exec the plugin; its stdout on success, else a PluginError (its CNI error)."""
    status, out, err = _spawn(path, stdin, env)
    if status == 0:
        if err:
            sys.stderr.buffer.write(err)
            sys.stderr.flush()
        return out
    raise _plugin_error(status, out, err)


def _spawn(path: str, stdin: bytes, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr).  All three streams are memfds: nothing to
    pump while the plugin runs, so no threads and no deadlock on a chatty
    plugin (the subprocess module would import threading into the tool)."""
    fds = [os.memfd_create(name, os.MFD_CLOEXEC) for name in ("stdin", "stdout", "stderr")]
    try:
        os.write(fds[0], stdin)
        os.lseek(fds[0], 0, os.SEEK_SET)
        actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(fds)]
        for attempt in range(_ETXTBSY_RETRIES + 1):
            try:
                pid = os.posix_spawn(path, [path], env, file_actions=actions)
                break
            except OSError as exc:
                if exc.errno == errno.ETXTBSY and attempt < _ETXTBSY_RETRIES:
                    time.sleep(_ETXTBSY_DELAY)
                    continue
                raise ToolError(f"fork/exec {path}: {str(exc.strerror).lower()}") from None
        _, wait_status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(wait_status), _read_all(fds[1]), _read_all(fds[2])
    finally:
        for fd in fds:
            os.close(fd)


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _plugin_error(status: int, stdout: bytes, stderr: bytes) -> PluginError:
    err = go_quote(stderr.decode(errors="replace"))
    how = f"exit status {status}" if status > 0 else f"signal: {_signal_name(-status)}"
    if not stdout:
        if not stderr:
            return PluginError(0, f"netplugin failed with no error message: {how}")
        return PluginError(0, f"netplugin failed: {err}: {how}")
    try:
        obj = jsonio.loads(stdout)
    except ValueError as exc:
        text = go_quote(stdout.decode(errors="replace"))
        return PluginError(
            0, f"netplugin failed but error parsing its diagnostic message {text}: {exc}"
        )
    if not isinstance(obj, dict):
        return PluginError(0, f"netplugin failed: {go_quote(stdout.decode(errors='replace'))}")
    code = obj.get("code", 0)
    return PluginError(
        code if isinstance(code, int) else 0, str(obj.get("msg", "")), str(obj.get("details", ""))
    )


def _signal_name(number: int) -> str:
    import signal

    try:
        return (signal.strsignal(number) or str(number)).lower()
    except ValueError:
        return str(number)
