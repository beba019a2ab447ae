"""Delegation (SPEC.md section 4): find a plugin in CNI_PATH and exec it.

The delegate gets the caller's environment with only ``CNI_COMMAND`` changed and
the caller's whole config on stdin; its stderr is ours; its error JSON is
re-raised with its own code, unwrapped.  Stdin is handed over as a memfd, so a
delegate that never reads it cannot deadlock us, and no shell is involved.

Fast path: when the file found in CNI_PATH is provably a binary of our own build
(the multicall entry registers a resolver that checks the binary's build id),
its handler runs in this process with the same environment and stdin, and its
output is parsed exactly as an exec'd delegate's would be.  Each exec of a
Python plugin costs tens of milliseconds; external delegates are always exec'd.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from cni_plugins.spec import jsonio, trace
from cni_plugins.spec.errors import CNIError, InternalError, InvalidConfig, InvalidEnvironment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.types import Result

    Runner = Callable[[bytes, Mapping[str, str]], tuple[int, bytes]]

# Go's libcni retries "text file busy" 5 times; an install-cni.sh that renames
# binaries into place never causes it, a `cp` over a running binary does.
_ETXTBSY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)


def find_plugin(plugin_type: str, paths: tuple[str, ...]) -> str:
    """First regular, executable file named ``plugin_type`` in ``paths``."""
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise InvalidConfig(f"invalid plugin type {plugin_type!r}: must be a plain file name")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and os.access(candidate, os.X_OK):
            return candidate
    raise InvalidEnvironment(
        f'failed to find plugin "{plugin_type}" in path [{" ".join(paths)}]',
        "CNI_PATH must name the directories holding the CNI plugin binaries",
    )


# The launcher moves the caller's LD_PRELOAD and LD_AUDIT here (they would load
# host libraries into the bundle, which runs on its own glibc); must match
# HOST_STASH in build/launcher/launcher.c.
HOST_STASH = "_CNI_HOST_"


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for a program we exec, without a frozen bundle's leftovers.

    The PyInstaller bootloader of our bundle points LD_LIBRARY_PATH at the bundle
    and sets ``_PYI_*``; a child inheriting them loads the wrong libraries or
    mistakes itself for part of our bundle.  The launcher moved the caller's
    LD_PRELOAD and LD_AUDIT aside (``_CNI_HOST_*``); they go back.  Without all
    this a frozen child starts as its own instance, and the delegate sees exactly
    the caller's environment (which the spec asks for).
    """
    env = {k: v for k, v in environ.items() if not k.startswith(("_PYI_", "_MEI"))}
    if getattr(sys, "frozen", False):
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            env.pop("LD_LIBRARY_PATH", None)
        else:
            env["LD_LIBRARY_PATH"] = original
        for key in [k for k in env if k.startswith(HOST_STASH)]:
            env[key.removeprefix(HOST_STASH)] = env.pop(key)
    return env


def exec_plugin(path: str, stdin: bytes, environ: Mapping[str, str]) -> tuple[int, bytes]:
    """Run ``path`` with ``stdin`` and ``environ``; returns (exit status, stdout)."""
    t = trace.now() if trace.ON else 0
    try:
        return _exec_plugin(path, stdin, environ)
    finally:
        if trace.ON:
            trace.span("exec", t, os.path.basename(path))


def _exec_plugin(path: str, stdin: bytes, environ: Mapping[str, str]) -> tuple[int, bytes]:
    stdin_fd = os.memfd_create("cni-stdin", os.MFD_CLOEXEC)
    out_r, out_w = os.pipe()
    try:
        os.write(stdin_fd, stdin)
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        actions = [(os.POSIX_SPAWN_DUP2, stdin_fd, 0), (os.POSIX_SPAWN_DUP2, out_w, 1)]
        env = clean_environ(environ)
        for delay in (*_ETXTBSY_DELAYS, None):
            try:
                pid = os.posix_spawn(path, [path], env, file_actions=actions)
                break
            except OSError as exc:
                if exc.errno != errno.ETXTBSY or delay is None:
                    raise InternalError(f"failed to exec plugin {path}: {exc.strerror}") from exc
                time.sleep(delay)
        os.close(out_w)
        out_w = -1
        chunks = []
        while chunk := os.read(out_r, 65536):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(stdin_fd)
        os.close(out_r)
        if out_w >= 0:
            os.close(out_w)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


# A binary's path -> a runner of it in this process, ``(stdin, environ) ->
# (exit status, stdout)``, or None unless it is provably of our own build.
_in_process_resolver: Callable[[str], Runner | None] | None = None
# flannel -> bridge -> host-local is 2 deep; a loop between configs is not.
_MAX_IN_PROCESS_DEPTH = 8
_in_process_depth = 0


def set_in_process_resolver(resolver: Callable[[str], Runner | None]) -> None:
    """Installed by the frozen multicall entry, which can prove a binary is ours."""
    global _in_process_resolver
    _in_process_resolver = resolver


def delegate(command: str, plugin_type: str, stdin: bytes, args: CmdArgs) -> Result | None:
    """Run ``plugin_type`` for ``command`` with the caller's environment.

    Returns the parsed result for ADD (in the canonical model), else None.
    """
    if plugin_type == args.plugin:
        # flannel delegating to flannel (or bridge's ipam.type "bridge") would
        # recurse until the node runs out of processes.
        raise InvalidConfig(f'plugin "{args.plugin}" cannot delegate to itself')
    path = find_plugin(plugin_type, args.path)
    env = dict(args.environ)
    env["CNI_COMMAND"] = command
    runner = _in_process_resolver(path) if _in_process_resolver is not None else None
    if runner is not None:
        global _in_process_depth
        if _in_process_depth >= _MAX_IN_PROCESS_DEPTH:
            raise InvalidConfig(
                f'delegation to "{plugin_type}" nested more than {_MAX_IN_PROCESS_DEPTH} deep:'
                " the configs delegate in a loop"
            )
        _in_process_depth += 1
        try:
            status, out = runner(stdin, env)
        finally:
            _in_process_depth -= 1
    else:
        status, out = exec_plugin(path, stdin, env)
    if status != 0:
        raise _delegate_error(plugin_type, command, status, out)
    if command != "ADD":
        return None
    from cni_plugins.spec.convert import result_from_wire  # ADD only

    try:
        raw = jsonio.loads(out)
    except ValueError as exc:
        raise InternalError(
            f'plugin "{plugin_type}" printed an invalid result for ADD', str(exc)
        ) from None
    return result_from_wire(raw, args.cni_version, f'result of plugin "{plugin_type}"')


def _delegate_error(plugin_type: str, command: str, status: int, out: bytes) -> CNIError:
    try:
        obj = jsonio.loads(out)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("code"), int) and "msg" in obj:
        return CNIError(str(obj["msg"]), str(obj.get("details", "")), code=obj["code"])
    text = out.decode(errors="replace").strip()
    return InternalError(
        f'plugin "{plugin_type}" failed ({command}, exit status {status})'
        + ("" if text else " with no error message"),
        text,
    )


def delegate_add(plugin_type: str, stdin: bytes, args: CmdArgs) -> Result:
    result = delegate("ADD", plugin_type, stdin, args)
    assert result is not None
    return result


def delegate_del(plugin_type: str, stdin: bytes, args: CmdArgs) -> None:
    delegate("DEL", plugin_type, stdin, args)


def delegate_check(plugin_type: str, stdin: bytes, args: CmdArgs) -> None:
    delegate("CHECK", plugin_type, stdin, args)


def delegate_status(plugin_type: str, stdin: bytes, args: CmdArgs) -> None:
    delegate("STATUS", plugin_type, stdin, args)


def delegate_gc(plugin_type: str, stdin: bytes, args: CmdArgs) -> None:
    delegate("GC", plugin_type, stdin, args)
