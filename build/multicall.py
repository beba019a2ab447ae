"""Entry point of the one PyInstaller bundle that carries all five plugins.

The C launcher (build/launcher/launcher.c) execs the bundle's executable with
``argv[0]`` set to the plugin name it was built for; this module imports only
that plugin's module (each plugin's import graph stays its own cost) and runs
its ``main()``.  build/build.py copies this file into its work directory with
``BUILD_VERSION`` stamped in.
"""

from __future__ import annotations

import marshal
import os
import sys
from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, ModuleType

# The bundle's copy of our own package: every cni_plugins module's code object,
# compiled by build.py (optimize 2, like the PYZ) into one file in the bundle's
# _internal/, so that a start reads one file instead of going through
# PyInstaller's path finder and reopening the PYZ archive for every module.
# Format (build.py, write_code_blob): CODE_MAGIC, the interpreter's bytecode
# magic, u32 little-endian index size, marshal({name: (is package, offset,
# size)}), then the marshalled code objects (offsets count from there).
CODE_BLOB = "cni_plugins.codes"
CODE_MAGIC = b"CNICODE1"


class BundledCode:
    """Meta-path finder and loader for the modules in CODE_BLOB, first in
    sys.meta_path; names it does not hold go on to the other finders.  A code
    object is unmarshalled when its module is imported.  No ``__file__`` (there
    is no file; tracebacks name the repository-relative source path), packages
    get ``__path__ = []``: the blob holds all their submodules."""

    def __init__(self, path: str, data: bytes) -> None:
        head = CODE_MAGIC + MAGIC_NUMBER
        if not data.startswith(head):
            raise ImportError(f"{path}: not a code blob for this interpreter")
        size = int.from_bytes(data[len(head) : len(head) + 4], "little")
        start = len(head) + 4
        self.path = path
        self.index: dict[str, tuple[bool, int, int]] = marshal.loads(data[start : start + size])
        self.codes = memoryview(data)[start + size :]

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> ModuleSpec | None:
        entry = self.index.get(fullname)
        if entry is None:
            return None
        # typeshed wants an importlib.abc.Loader; importing importlib.abc costs ~1 ms
        return ModuleSpec(fullname, self, origin=self.path, is_package=entry[0])  # type: ignore[arg-type]

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname: str) -> CodeType:
        _, offset, size = self._entry(fullname)
        code: CodeType = marshal.loads(self.codes[offset : offset + size])
        return code

    def is_package(self, fullname: str) -> bool:
        return self._entry(fullname)[0]

    def get_source(self, fullname: str) -> None:
        self._entry(fullname)

    def _entry(self, fullname: str) -> tuple[bool, int, int]:
        entry = self.index.get(fullname)
        if entry is None:
            raise ImportError(f"{fullname} is not in {self.path}", name=fullname)
        return entry


def _install_bundled_code() -> None:
    """Put BundledCode first in sys.meta_path (frozen bundle only)."""
    path = os.path.join(getattr(sys, "_MEIPASS"), CODE_BLOB)  # noqa: B009
    with open(path, "rb") as f:
        sys.meta_path.insert(0, BundledCode(path, f.read()))


if getattr(sys, "frozen", False):
    _install_bundled_code()

from cni_plugins.plugins import BINARIES, TOOLS  # noqa: E402 - after the finder

# binary name -> module in cni_plugins.plugins (build.py gives PyInstaller these
# modules as hidden imports: the imports below are dynamic)
PLUGINS = BINARIES
# TOOLS: tool name -> its entry module (cnitool); they exec their plugins

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
    tools = ", ".join(sorted(TOOLS))
    err = {
        "cniVersion": "1.1.0",
        "code": ERR_INTERNAL,
        "msg": f"unknown plugin name {name!r}: this multicall binary runs one of {valid}"
        f" (and the tools {tools})",
        "details": "argv[0] names the plugin to run; the launcher sets it from its build",
    }
    sys.stdout.write(json.dumps(err, indent=4) + "\n")
    sys.stdout.flush()
    return 1


def main() -> None:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    module = PLUGINS.get(name)
    tool = TOOLS.get(name)
    if module is None and tool is None:
        sys.exit(unknown_name(name))
    if getattr(sys, "frozen", False):
        _release_cache_lock_fd()
    if BUILD_VERSION is not None:
        import cni_plugins

        cni_plugins.__version__ = BUILD_VERSION
    if tool is not None:
        __import__(tool)
        sys.modules[tool].main()
        return
    assert module is not None
    if getattr(sys, "frozen", False) and module in ("flannel", "bridge"):
        _install_in_process_delegation()  # the plugins that delegate
    __import__(f"cni_plugins.plugins.{module}")
    sys.modules[f"cni_plugins.plugins.{module}"].main()


if __name__ == "__main__":
    main()
