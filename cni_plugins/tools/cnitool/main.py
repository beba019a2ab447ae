"""``cnitool [-i IFNAME] add|check|del|gc|status <network> <netns>``.

The command line, environment, output and exit status of upstream's cnitool
(containernetworking/cni cnitool/): the list named ``<network>`` is loaded from
NETCONFPATH (default /etc/cni/net.d), plugins come from CNI_PATH, the interface
is ``-i``/``--ifname``, else CNI_IFNAME, else eth0; CNI_ARGS (``K=V;...``) and
CAP_ARGS (a JSON object) are passed on.  The container ID is derived from the
absolute netns path.  ADD prints the result (JSON, 4-space indent, as Go's
Result.Print); any failure prints the error on stderr and exits 1.

Two additions: CNITOOL_CACHE_DIR moves libcni's cache (default /var/lib/cni);
run without arguments under ``CNI_COMMAND=VERSION`` it answers as a plugin
would (the spec versions it drives), because it ships in the plugin directory
and installers such as install-cni.sh check every binary there that way.
"""

from __future__ import annotations

import os
import sys

from cni_plugins.spec import jsonio
from cni_plugins.spec.convert import result_to_wire
from cni_plugins.tools.cnitool import conflist, runtime
from cni_plugins.tools.cnitool.cache import DEFAULT_CACHE_DIR, Cache
from cni_plugins.tools.cnitool.errors import ToolError
from cni_plugins.tools.cnitool.ops import Runner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

COMMANDS = ("add", "check", "del", "gc", "status")

USAGE = """\
{exe}: Add, check, remove, gc or status network interfaces from a network namespace
  {exe} [-i IFNAME] add    <net> <netns>
  {exe} [-i IFNAME] check  <net> <netns>
  {exe} [-i IFNAME] del    <net> <netns>
  {exe} [-i IFNAME] gc     <net> <netns>
  {exe} [-i IFNAME] status <net> <netns>
environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
  CNI_ARGS, CAP_ARGS (JSON), CNITOOL_CACHE_DIR (default /var/lib/cni)
"""


class Usage(Exception):
    pass


def parse_argv(argv: list[str]) -> tuple[list[str], str]:
    """(positional arguments, ifname flag) from ``argv`` (without the program);
    flags may stand anywhere, as with upstream's cobra command line."""
    positional: list[str] = []
    ifname = ""
    args = iter(argv)
    for arg in args:
        if arg in ("-h", "--help"):
            raise Usage
        if arg in ("-i", "--ifname"):
            value = next(args, None)
            if value is None:
                raise Usage(f"flag needs an argument: {arg}")
            ifname = value
        elif arg.startswith("--ifname="):
            ifname = arg.partition("=")[2]
        elif arg.startswith("-i") and len(arg) > 2:
            ifname = arg[2:]
        elif arg == "--":
            positional.extend(args)
        elif arg.startswith("-") and arg != "-":
            raise Usage(f"unknown flag: {arg}")
        else:
            positional.append(arg)
    if not positional or positional[0] not in COMMANDS:
        what = f"unknown command {positional[0]!r}" if positional else "no command"
        raise Usage(what)
    if len(positional) < 3:
        raise Usage("network name and namespace are required")
    return positional, ifname


def version_info() -> str:
    from cni_plugins.spec.version import CURRENT, SUPPORTED_VERSIONS

    return jsonio.dumps({"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED_VERSIONS)})


def run(argv: list[str], environ: Mapping[str, str]) -> int:
    if not argv and environ.get("CNI_COMMAND") == "VERSION":
        sys.stdout.write(version_info() + "\n")
        return 0
    positional, ifname = parse_argv(argv)
    command, name, netns = positional[:3]
    netdir = environ.get("NETCONFPATH", "") or runtime.DEFAULT_NETCONFPATH
    network = conflist.load(netdir, name)
    rt = runtime.from_environ(netns, environ, ifname)
    cni_path = environ.get("CNI_PATH", "")
    paths = cni_path.split(":") if cni_path else []
    tool = Runner(paths, Cache(environ.get("CNITOOL_CACHE_DIR", "") or DEFAULT_CACHE_DIR))
    if command == "add":
        result, version = tool.add(network, rt)
        sys.stdout.write(jsonio.dumps(result_to_wire(result, version), indent=4))
        sys.stdout.flush()
    elif command == "check":
        tool.check(network, rt)
    elif command == "del":
        tool.delete(network, rt)
    elif command == "gc":
        tool.gc(network)
    else:
        tool.status(network)
    return 0


def main() -> None:
    exe = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "cnitool"
    try:
        status = run(sys.argv[1:], os.environ)
    except Usage as exc:
        if exc.args:
            sys.stderr.write(f"{exe}: {exc.args[0]}\n")
        sys.stderr.write(USAGE.format(exe=exe))
        status = 0 if not exc.args else 1
    except ToolError as exc:
        sys.stderr.write(f"{exc}\n")
        status = 1
    sys.stdout.flush()
    sys.exit(status)


if __name__ == "__main__":
    main()
