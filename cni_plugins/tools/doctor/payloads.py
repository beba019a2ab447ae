"""Our binaries' build stamps (the launcher's trailer) and the unpack cache.

Every binary of one build carries the same payload id (build/README.md); a bin
dir holding binaries of several builds is a half-finished upgrade (version
skew: flannel exec's bridge of another build, with other bugs and defaults).
Payloads in the unpack cache that no installed binary names are leftovers of
old builds: install-cni.sh prunes them at install, the launcher after 7 days;
the repair removes them the way install-cni.sh does (under the cache's
extraction lock and an exclusive non-blocking lock of the entry, which every
process running from it holds shared).
"""

from __future__ import annotations

import fcntl
import os

from cni_plugins.tools.doctor.findings import WARNING, Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.tools.doctor.node import Node

# build.py TRAILER / launcher.c struct trailer: name[32] id[64] ... magic[8]
TRAILER_SIZE = 128
MAGIC = b"CNIPYPL1"
CHECK_SKEW = "version-skew"
CHECK_CACHE = "unpack-cache"


def trailer(path: str) -> tuple[str, str] | None:
    """(binary name, payload id) of one of our binaries, None for anything else."""
    try:
        with open(path, "rb") as f:
            f.seek(-TRAILER_SIZE, os.SEEK_END)
            raw = f.read(TRAILER_SIZE)
    except OSError:
        return None
    if len(raw) != TRAILER_SIZE or raw[-8:] != MAGIC:
        return None
    return raw[:32].rstrip(b"\0").decode(errors="replace"), raw[32:96].decode(errors="replace")


def installed(bin_dir: str) -> dict[str, str]:
    """file name -> payload id for our binaries in ``bin_dir``."""
    out: dict[str, str] = {}
    try:
        names = sorted(os.listdir(bin_dir))
    except OSError:
        return out
    for name in names:
        found = trailer(os.path.join(bin_dir, name))
        if found is not None:
            out[name] = found[1]
    return out


def check_skew(node: Node) -> list[Finding]:
    ids = installed(node.options.bin_dir)
    builds: dict[str, list[str]] = {}
    for name, build in ids.items():
        builds.setdefault(build, []).append(name)
    if len(builds) < 2:
        return []
    detail = "; ".join(f"build {b[:12]}: {', '.join(n)}" for b, n in sorted(builds.items()))
    return [
        Finding(
            CHECK_SKEW,
            WARNING,
            node.options.bin_dir,
            f"binaries of {len(builds)} builds are installed ({detail}): a half-finished upgrade",
            "reinstall all binaries from one image (restart the kube-flannel pod: install-cni.sh"
            " installs them together)",
        )
    ]


def check_cache(node: Node) -> list[Finding]:
    cache = node.options.unpack_cache
    if not os.path.isdir(cache) or os.path.islink(cache):
        return []
    keep = set(installed(node.options.bin_dir).values())
    leaked = []
    for name in sorted(os.listdir(cache)):
        entry = os.path.join(cache, name)
        if len(name) != 64 or any(c not in "0123456789abcdef" for c in name) or name in keep:
            continue
        if os.path.islink(entry) or not os.path.isfile(os.path.join(entry, ".complete")):
            continue
        leaked.append(name)
    if not leaked:
        return []
    size = sum(_size(os.path.join(cache, n)) for n in leaked) // (1024 * 1024)
    f = Finding(
        CHECK_CACHE,
        WARNING,
        cache,
        f"{len(leaked)} unpacked payload(s) no binary of {node.options.bin_dir} names"
        f" ({', '.join(n[:12] for n in leaked)}; {size} MiB)",
        "remove them: cni-doctor --repair (install-cni.sh does it at its next install)",
    )
    if node.options.repair:
        kept = [n for n in leaked if not _prune(node, cache, n)]
        if kept:
            f.message += f"; kept (in use): {', '.join(n[:12] for n in kept)}"
        else:
            f.repaired = True
    return [f]


def _prune(node: Node, cache: str, name: str) -> bool:
    entry = os.path.join(cache, name)
    lock = os.open(os.path.join(cache, ".lock"), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a process runs from it
            trash = os.path.join(cache, f".trash-cni-doctor-{os.getpid()}-{name}")
            os.rename(entry, trash)
        finally:
            os.close(fd)
        _remove_tree(trash)
    finally:
        os.close(lock)
    node.log(f"removed unused payload {name} from {cache}")
    return True


def _size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _remove_tree(path: str) -> None:
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            full = os.path.join(root, name)
            os.unlink(full) if os.path.islink(full) else os.rmdir(full)
    os.rmdir(path)
