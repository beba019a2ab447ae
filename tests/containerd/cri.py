"""A CRI (runtime.v1) client for the handful of calls a kubelet makes to start,
inspect and remove pods: raw-bytes unary gRPC over containerd's unix socket,
messages written with tests.containerd.protowire (field numbers from
kubernetes/cri-api pkg/apis/runtime/v1/api.proto)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc

from tests.containerd.protowire import Field, Message, encode, string_map

_SERVICE = "/runtime.v1.RuntimeService/"
PROTOCOLS = {"tcp": 0, "udp": 1, "sctp": 2}
SANDBOX_READY = 0


@dataclass
class PodSpec:
    """What a kubelet puts in a PodSandboxConfig (only what these tests vary)."""

    name: str
    namespace: str = "default"
    uid: str = ""
    attempt: int = 0
    # (protocol, container port, host port, host IP)
    ports: Sequence[tuple[str, int, int, str]] = ()
    dns_servers: Sequence[str] = ()
    dns_searches: Sequence[str] = ()
    dns_options: Sequence[str] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""

    def config(self) -> list[Field]:
        metadata: list[Field] = [
            (1, self.name),
            (2, self.uid or f"uid-{self.name}"),
            (3, self.namespace),
            (4, self.attempt),
        ]
        dns: list[Field] = [
            *((1, s) for s in self.dns_servers),
            *((2, s) for s in self.dns_searches),
            *((3, s) for s in self.dns_options),
        ]
        ports: list[Field] = [
            (5, [(1, PROTOCOLS[proto]), (2, cport), (3, hport), (4, hip)])
            for proto, cport, hport, hip in self.ports
        ]
        return [
            (1, metadata),
            (2, self.name),
            (4, dns),
            *ports,
            *string_map(7, self.annotations),
            (8, [(1, self.cgroup_parent)]),
        ]


@dataclass
class SandboxStatus:
    id: str
    state: int
    ip: str
    additional_ips: list[str]
    info: dict[str, str]


@dataclass
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


class RuntimeClient:
    def __init__(self, socket: str, timeout: float = 120.0) -> None:
        self._channel = grpc.insecure_channel(f"unix://{socket}")
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: list[Field], timeout: float | None = None) -> Message:
        call = self._channel.unary_unary(_SERVICE + method)
        reply = call(encode(request), timeout=timeout or self._timeout)
        assert isinstance(reply, bytes)
        return Message(reply)

    def version(self) -> str:
        return self._call("Version", [(1, "v1")], timeout=5).string(3)

    def status_info(self) -> dict[str, str]:
        """Status(verbose): the runtime's info map (containerd's "cniconfig"
        holds the network configuration its CRI plugin has loaded)."""
        return self._call("Status", [(1, True)]).string_map(2)

    def run_pod_sandbox(self, pod: PodSpec) -> str:
        return self._call("RunPodSandbox", [(1, pod.config())]).string(1)

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._call("StopPodSandbox", [(1, sandbox_id)])

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._call("RemovePodSandbox", [(1, sandbox_id)])

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> SandboxStatus:
        reply = self._call("PodSandboxStatus", [(1, sandbox_id), (2, verbose)])
        status = reply.message(1)
        network = status.message(5)
        return SandboxStatus(
            id=status.string(1),
            state=status.integer(3),
            ip=network.string(1),
            additional_ips=[m.string(1) for m in network.messages(2)],
            info=reply.string_map(2),
        )

    def list_pod_sandboxes(self) -> list[str]:
        return [m.string(1) for m in self._call("ListPodSandbox", []).messages(1)]

    def create_container(
        self, sandbox_id: str, pod: PodSpec, name: str, image: str, command: Sequence[str]
    ) -> str:
        config: list[Field] = [
            (1, [(1, name)]),
            (2, [(1, image)]),
            *((3, arg) for arg in command),
            (6, [(1, "POD_NAME"), (2, pod.name)]),
        ]
        request: list[Field] = [(1, sandbox_id), (2, config), (3, pod.config())]
        return self._call("CreateContainer", request).string(1)

    def start_container(self, container_id: str) -> None:
        self._call("StartContainer", [(1, container_id)])

    def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: int = 20) -> ExecResult:
        reply = self._call(
            "ExecSync",
            [(1, container_id), *((2, a) for a in cmd), (3, timeout)],
            timeout=timeout + 10,
        )
        raw_out, raw_err = reply.fields.get(1, [b""]), reply.fields.get(2, [b""])
        out, err = raw_out[-1], raw_err[-1]
        assert isinstance(out, bytes) and isinstance(err, bytes)
        return ExecResult(out, err, reply.integer(3))


def wait_ready(client: RuntimeClient, attempts: int = 100) -> str:
    """Poll Version until the CRI plugin answers; returns the runtime version."""
    import time

    last: Exception | None = None
    for _ in range(attempts):
        try:
            return client.version()
        except grpc.RpcError as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"containerd CRI did not answer: {last}")
