"""The bare start of our bundled interpreter: the floor VERSION is held against.

Issue 18 measures our VERSION against ``python -S -I -c pass`` of the same
interpreter.  The bundle has no ``python`` executable: its interpreter is
``libpython`` in the unpacked payload, started by PyInstaller's bootloader.  So
this builds one, a ``main`` that calls ``Py_BytesMain``, linked against the
payload's own ``libpython`` (``cc``, as build/ needs), and runs it the way the
launcher runs the bundle: through the payload's dynamic loader with
``--inhibit-cache --library-path <entry>/_internal``.  What it does not share
with a plugin exec: the launcher, the bootloader and the payload's stdlib
archive (``-S -I`` imports only ``encodings``, from the build interpreter's
stdlib; the rest of a bare start is frozen in ``libpython``).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.proc import BASE_ENV, run

STUB_C = b"extern int Py_BytesMain(int, char **);\n" \
    b"int main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n"  # fmt: skip
_TRAILER_SIZE = 128
_MAGIC = b"CNIPYPL1"


def build_id(binary: Path) -> str | None:
    """The payload hash in one of our binaries' trailer (build/README.md)."""
    try:
        with binary.open("rb") as f:
            f.seek(-_TRAILER_SIZE, os.SEEK_END)
            raw = f.read(_TRAILER_SIZE)
    except OSError:
        return None
    if raw[-8:] != _MAGIC:
        return None
    return raw[32:96].decode(errors="replace")


def cache_entry(bin_dir: Path) -> Path | None:
    """The unpacked payload of ``bin_dir``'s build, in the launcher's candidate
    cache directories (build/README.md, "At exec"); None when not unpacked."""
    found = build_id(bin_dir / "bridge")
    if found is None:
        return None
    candidates = [
        BASE_ENV.get("CNI_PLUGINS_CACHE_DIR", ""),
        "/var/lib/cni/cni-plugins-py",
        str(bin_dir / ".cni-plugins-cache"),
        f"/tmp/cni-plugins-py-{os.geteuid()}",
    ]
    for directory in filter(None, candidates):
        entry = Path(directory) / found
        if (entry / "_internal" / "ld-linux-x86-64.so.2").exists():
            return entry
    return None


def bare_argv(bin_dir: Path, work: Path) -> tuple[list[str] | None, str]:
    """(argv of the bare start, "") or (None, why not)."""
    entry = cache_entry(bin_dir)
    if entry is None:
        return None, "payload not unpacked"
    internal = entry / "_internal"
    libpython = sorted(internal.glob("libpython3*.so.1.0"))
    cc = next((p for p in ("/usr/bin/cc", "/usr/bin/gcc") if os.path.exists(p)), None)
    if not libpython or cc is None:
        return None, "no libpython in the payload" if not libpython else "no cc"
    source, stub = work / "pystub.c", work / "pystub"
    source.write_bytes(STUB_C)
    built = run([cc, "-O2", "-o", str(stub), str(source), str(libpython[0])], b"", BASE_ENV)
    if not built.ok:
        return None, "cc failed: " + built.stderr.decode(errors="replace")[:200]
    loader = internal / "ld-linux-x86-64.so.2"
    argv = [str(loader), "--inhibit-cache", "--library-path", str(internal), str(stub)]
    return [*argv, "-S", "-I", "-c", "pass"], ""
