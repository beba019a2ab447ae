"""Entry point of the one PyInstaller bundle that carries all five plugins.

The C launcher (build/launcher/launcher.c) execs the bundle's executable with
``argv[0]`` set to the plugin name it was built for; this module imports only
that plugin's module (each plugin's import graph stays its own cost) and runs
its ``main()``.  build/build.py copies this file into its work directory with
``BUILD_VERSION`` stamped in.
"""

from __future__ import annotations

import os
import sys

from cni_plugins.plugins import BINARIES

# binary name -> module in cni_plugins.plugins (build.py gives PyInstaller these
# modules as hidden imports: the imports below are dynamic)
PLUGINS = BINARIES

BUILD_VERSION: str | None = None

# CNI's "internal error" code (Go's types.ErrInternal): the binary is
# misinstalled, nothing the caller's config or environment can fix.
ERR_INTERNAL = 999


def _release_cache_lock_fd() -> None:
    """Keep the launcher's cache lock to ourselves.

    The launcher holds a shared flock on the cache entry we run from (so a
    pruner never deletes files we may still import) and execs us with that
    descriptor open.  We keep it for our lifetime but mark it close-on-exec so
    delegates and iptables do not inherit it.  It is the lowest free descriptor
    at the launcher's start, so a short scan finds it.
    """
    try:
        home = os.stat(os.path.dirname(sys.executable))
    except OSError:
        return
    for fd in range(3, 10):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_ino == home.st_ino and st.st_dev == home.st_dev:
            os.set_inheritable(fd, False)


# The launcher's trailer (build.py TRAILER, launcher.c struct trailer):
# name[32], id[64] (hex SHA-256 of the payload), sizes, crc, reserved, magic[8].
_TRAILER_SIZE = 128
_MAGIC = b"CNIPYPL1"


def _own_build_id() -> str:
    """The launcher runs us from ``<cache>/<id>/``: the directory name is our
    build's payload hash."""
    return os.path.basename(os.path.dirname(os.path.realpath(sys.executable)))


def _trailer_of(path: str) -> tuple[str, str] | None:
    """(plugin name, build id) from a binary's trailer, None if it has none."""
    try:
        with open(path, "rb") as f:
            f.seek(-_TRAILER_SIZE, os.SEEK_END)
            raw = f.read(_TRAILER_SIZE)
    except OSError:
        return None
    if len(raw) != _TRAILER_SIZE or raw[-8:] != _MAGIC:
        return None
    return raw[:32].rstrip(b"\0").decode(errors="replace"), raw[32:96].decode(errors="replace")


def _install_in_process_delegation() -> None:
    """Delegates that are binaries of this very build (same payload hash) run in
    this process: same code, same environment and stdin, no exec (DESIGN.md
    section 4).  Anything else, including our binaries of another build, is
    exec'd as the spec describes."""
    from cni_plugins.spec import invoke, skel

    own = _own_build_id()
    if len(own) != 64:
        return  # not running from a cache entry: always exec

    def resolve(path: str) -> invoke.Runner | None:
        found = _trailer_of(path)
        if found is None or found[1] != own or found[0] not in PLUGINS:
            return None
        module = f"cni_plugins.plugins.{PLUGINS[found[0]]}"
        __import__(module)
        plugin = sys.modules[module].PLUGIN
        return lambda stdin, environ: skel.run_in_process(plugin, stdin, environ)

    invoke.set_in_process_resolver(resolve)


def unknown_name(name: str) -> int:
    import json

    valid = ", ".join(sorted(PLUGINS))
    err = {
        "cniVersion": "1.1.0",
        "code": ERR_INTERNAL,
        "msg": f"unknown plugin name {name!r}: this multicall binary runs one of {valid}",
        "details": "argv[0] names the plugin to run; the launcher sets it from its build",
    }
    sys.stdout.write(json.dumps(err, indent=4) + "\n")
    sys.stdout.flush()
    return 1


def main() -> None:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    module = PLUGINS.get(name)
    if module is None:
        sys.exit(unknown_name(name))
    if getattr(sys, "frozen", False):
        _release_cache_lock_fd()
        if module in ("flannel", "bridge"):  # the plugins that delegate
            _install_in_process_delegation()
    if BUILD_VERSION is not None:
        import cni_plugins

        cni_plugins.__version__ = BUILD_VERSION
    __import__(f"cni_plugins.plugins.{module}")
    sys.modules[f"cni_plugins.plugins.{module}"].main()


if __name__ == "__main__":
    main()
