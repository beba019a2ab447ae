"""``cni-doctor [--conf-dir DIR] [--bin-dir DIR] [--cache-dir DIR] [--cri-socket PATH]
[--grace SECONDS] [--repair] [--reclaim-only] [--json]``.

Reads the node (run it in the node's network namespace, as root) and prints
what is wrong, with the evidence and the fix; ``--repair`` applies the fixes
that cannot hurt a live pod, each logged on stderr.  ``--reclaim-only`` runs
only the leak and orphan-chain checks (install-cni.sh's reclaim loop).  The
unpack cache looked at is CNI_PLUGINS_CACHE_DIR's, else the launcher's default.

Exit status: 0 nothing (left) to do, 1 something found and not repaired, 2 usage.
Run without arguments under ``CNI_COMMAND=VERSION`` it answers as a plugin
would, as cnitool does (installers check every binary of the plugin dir).
"""

from __future__ import annotations

import os
import sys

from cni_plugins.tools.doctor import findings as fmodel
from cni_plugins.tools.doctor.node import DEFAULT_UNPACK_CACHE, Node, Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

USAGE = """\
usage: cni-doctor [--conf-dir DIR] [--bin-dir DIR] [--cache-dir DIR] [--cri-socket PATH]
                  [--grace SECONDS] [--repair] [--reclaim-only] [--json]
  --conf-dir DIR      CNI conf dir the runtime reads          [/etc/cni/net.d]
  --bin-dir DIR       CNI bin dir                             [/opt/cni/bin]
  --cache-dir DIR     libcni's cache dir                      [/var/lib/cni]
  --cri-socket PATH   the runtime's CRI socket (needs crictl): its sandbox list
                      keeps pods alive
  --grace SECONDS     never release state younger than this   [600]
  --repair            apply the safe fixes
  --reclaim-only      only leaked reservations and orphan chains
  --json              {"findings": [{check, severity, subject, message, fix, repaired}]}
exit status: 0 clean, 1 problems left, 2 usage error
"""

_VALUED = {
    "--conf-dir": "conf_dir",
    "--bin-dir": "bin_dir",
    "--cache-dir": "cache_dir",
    "--cri-socket": "cri_socket",
    "--grace": "grace",
}
_FLAGS = {"--repair": "repair", "--json": "json", "--reclaim-only": "reclaim_only"}


class Usage(Exception):
    pass


def parse_argv(argv: list[str], environ: Mapping[str, str]) -> tuple[Options, bool]:
    """(options, reclaim only)."""
    values: dict[str, object] = {}
    args = iter(argv)
    for arg in args:
        if arg in ("-h", "--help"):
            raise Usage
        key, eq, inline = arg.partition("=")
        if key in _VALUED:
            value = inline if eq else next(args, None)
            if value is None or value == "":
                raise Usage(f"flag needs an argument: {key}")
            values[_VALUED[key]] = value
        elif arg in _FLAGS:
            values[_FLAGS[arg]] = True
        else:
            raise Usage(f"unknown argument: {arg}")
    grace_text = str(values.pop("grace", "600"))
    try:
        grace = float(grace_text)
    except ValueError:
        raise Usage(f"--grace: not a number of seconds: {grace_text!r}") from None
    if not grace >= 0:
        raise Usage(f"--grace: must be 0 or more, not {grace_text}")
    reclaim_only = bool(values.pop("reclaim_only", False))
    options = Options(
        grace=grace,
        unpack_cache=environ.get("CNI_PLUGINS_CACHE_DIR", "") or DEFAULT_UNPACK_CACHE,
        **values,  # type: ignore[arg-type]
    )
    return options, reclaim_only


def run(argv: list[str], environ: Mapping[str, str]) -> int:
    from cni_plugins.tools.doctor import runner

    if not argv and environ.get("CNI_COMMAND") == "VERSION":
        # it ships in the plugin directory: installers (install-cni.sh) check
        # every binary there as a plugin
        from cni_plugins.tools.cnitool.main import version_info

        sys.stdout.write(version_info() + "\n")
        return 0
    options, reclaim_only = parse_argv(argv, environ)
    node = Node(options)
    found = runner.reclaim(node) if reclaim_only else runner.run(node)
    out = fmodel.render_json(found) if options.json else fmodel.render_text(found)
    sys.stdout.write(out)
    return fmodel.exit_status(found)


def main() -> None:
    try:
        status = run(sys.argv[1:], os.environ)
    except Usage as exc:
        if exc.args:
            sys.stderr.write(f"cni-doctor: {exc.args[0]}\n")
        sys.stderr.write(USAGE)
        status = 0 if not exc.args else 2
    sys.stdout.flush()
    sys.exit(status)


if __name__ == "__main__":
    main()
