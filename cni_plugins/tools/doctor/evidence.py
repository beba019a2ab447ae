"""Evidence that a container is alive, gathered before anything is released.

A reservation (or a saved flannel config, or a per-pod chain) is released only
when nothing below shows its container alive:

* a libcni cache entry for it whose netns still exists (what the runtime
  recorded after a successful ADD);
* a process whose environment has ``CNI_CONTAINERID=<id>``: a plugin of an
  ADD, CHECK or DEL for it is running right now;
* its address on an interface of some network namespace (the pod's eth0), found
  through every namespace the node has: ``/run/netns``, ``/var/run/netns`` and
  ``/proc/*/ns/net``;
* its ID in the runtime's sandbox list (``--cri-socket``);
* the reservation or saved config being younger than ``--grace``.

Why the in-flight and address evidence: the cache entry appears only after ADD
returns, so with a short grace an ADD in progress has none.  The scans are done
*after* the stores were read, in this order: a plugin that has exited has
already put the address into the pod's namespace, so a container read from a
store is either still seen running or seen by its address.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cni_plugins.spec.ip import IPAddress
    from cni_plugins.tools.doctor.node import Node

NETNS_DIRS = ("/run/netns", "/var/run/netns")


class Evidence:
    """The scans, each done once, after the candidates were read."""

    def __init__(
        self,
        *,
        in_flight: set[str],
        addresses: set[IPAddress],
        cached: dict[str, str],
        sandboxes: set[str] | None,
        sandbox_error: str = "",
    ) -> None:
        self.in_flight = in_flight
        self.addresses = addresses
        self.cached = cached  # container ID -> netns of a cache entry whose netns exists
        self.sandboxes = sandboxes  # None: no CRI socket given, or it failed
        self.sandbox_error = sandbox_error

    def alive(self, container_id: str, ips: list[IPAddress]) -> list[str]:
        """Why ``container_id`` must be kept; empty when nothing says it lives."""
        why = []
        if container_id in self.in_flight:
            why.append("a plugin is running for it (CNI_CONTAINERID in a process environment)")
        if container_id in self.cached:
            why.append(
                f"libcni's cache names it with netns {self.cached[container_id]}, which exists"
            )
        held = [str(ip) for ip in ips if ip in self.addresses]
        if held:
            why.append(f"{', '.join(held)} is configured in a network namespace")
        if self.sandboxes is not None and container_id in self.sandboxes:
            why.append("the runtime lists it as a sandbox")
        if self.sandbox_error:
            why.append(f"the runtime's sandbox list is unavailable ({self.sandbox_error})")
        return why


def gather(node: Node) -> Evidence:
    in_flight = processes_with_container_ids()
    addresses = namespace_addresses()
    cached = live_cache_entries(node.options.cache_dir)
    sandboxes: set[str] | None = None
    error = ""
    if node.options.cri_socket:
        from cni_plugins.tools.doctor import cri

        try:
            sandboxes = cri.sandbox_ids(node.options.cri_socket)
        except cri.CRIError as exc:
            error = str(exc)
    return Evidence(
        in_flight=in_flight,
        addresses=addresses,
        cached=cached,
        sandboxes=sandboxes,
        sandbox_error=error,
    )


def processes_with_container_ids() -> set[str]:
    found: set[str] = set()
    own = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == own:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue  # gone, or a kernel thread
        for item in environ.split(b"\0"):
            if item.startswith(b"CNI_CONTAINERID="):
                value = item[len(b"CNI_CONTAINERID=") :].decode(errors="replace")
                if value:
                    found.add(value)
    return found


def namespace_paths() -> list[str]:
    """One path per network namespace other than ours."""
    seen: set[tuple[int, int]] = set()
    own = os.stat("/proc/self/ns/net")
    seen.add((own.st_dev, own.st_ino))
    paths: list[str] = []
    candidates: list[str] = []
    for directory in NETNS_DIRS:
        try:
            candidates += [os.path.join(directory, n) for n in sorted(os.listdir(directory))]
        except OSError:
            continue
    candidates += [f"/proc/{p}/ns/net" for p in os.listdir("/proc") if p.isdigit()]
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            paths.append(path)
    return paths


def namespace_addresses() -> set[IPAddress]:
    from cni_plugins.linux.netlink import NetlinkError, RouteSocket
    from cni_plugins.linux.netns import open_netns
    from cni_plugins.spec.errors import CNIError

    found: set[IPAddress] = set()
    for path in namespace_paths():
        try:
            with open_netns(path) as ns, RouteSocket(ns) as sock:
                found.update(a.interface.ip for a in sock.addresses())
        except (CNIError, NetlinkError, OSError):
            continue  # gone meanwhile, or not a netns we may enter
    return found


def live_cache_entries(cache_dir: str) -> dict[str, str]:
    from cni_plugins.tools.cnitool.cache import Cache

    out: dict[str, str] = {}
    for _network, attachment in Cache(cache_dir).attachments():
        if attachment.netns and os.path.exists(attachment.netns):
            out[attachment.container_id] = attachment.netns
    return out
