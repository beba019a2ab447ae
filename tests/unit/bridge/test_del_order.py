"""bridge DEL with fakes: IPAM's release runs beside the veth's delete, runs
exactly once on every path, and every step's error still reaches the caller in
a fixed order."""

from __future__ import annotations

import _thread
from typing import Any

import pytest

from cni_plugins.bridge.container import run_beside
from cni_plugins.plugins import bridge
from cni_plugins.spec import invoke
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.errors import CNIError


def test_work_runs_while_the_blocking_call_waits() -> None:
    gate = _thread.allocate_lock()
    gate.acquire()
    seen: list[bool] = []
    # Only ``work`` opens the gate that ``blocking`` waits at: sequential would time out.
    run_beside(gate.release, lambda: seen.append(gate.acquire(timeout=5)))
    assert seen == [True]


def test_errors_of_either_side_are_raised_after_both_finished() -> None:
    finished: list[str] = []

    def work() -> None:
        finished.append("work")
        raise CNIError("from work")

    with pytest.raises(CNIError, match="from work"):
        run_beside(work, lambda: finished.append("blocking"))
    assert sorted(finished) == ["blocking", "work"]

    def blocking() -> None:
        raise CNIError("from blocking")

    with pytest.raises(CNIError, match="from blocking"):
        run_beside(work, blocking)  # the blocking call's error first


def _args(**conf: Any) -> CmdArgs:
    config = {"cniVersion": "1.0.0", "name": "cbr0", "type": "bridge", **conf}
    return CmdArgs(
        command="DEL",
        container_id="c1",
        netns="/run/netns/x",
        ifname="eth0",
        path=("/opt/cni/bin",),
        config=config,
        stdin=b"{}",
        cni_version="1.0.0",
        plugin="bridge",
    )


class Steps:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[str] = []
        self.delete_error: CNIError | None = None
        self.deletes = True  # the veth is there and ours
        self.ipam_error: CNIError | None = None
        monkeypatch.setattr(bridge, "_delete_interface", self.delete_interface)
        monkeypatch.setattr(invoke, "delegate_del", self.ipam_del)

    def delete_interface(self, args: CmdArgs, name: str, beside: Any) -> None:
        if not self.deletes:
            self.log.append("nothing to delete")
            return
        if beside is None:
            self.log.append("delete")
        else:
            run_beside(beside, lambda: self.log.append("delete"))
        if self.delete_error is not None:
            raise self.delete_error

    def ipam_del(self, plugin_type: str, stdin: bytes, args: CmdArgs) -> None:
        self.log.append(f"release {plugin_type}")
        if self.ipam_error is not None:
            raise self.ipam_error


def test_ipam_released_once_beside_the_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch)
    bridge.cmd_del(_args(ipam={"type": "host-local"}))
    assert sorted(steps.log) == ["delete", "release host-local"]


def test_ipam_released_after_when_nothing_is_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch)
    steps.deletes = False
    bridge.cmd_del(_args(ipam={"type": "host-local"}))
    assert steps.log == ["nothing to delete", "release host-local"]


def test_no_ipam_no_release(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch)
    bridge.cmd_del(_args())
    assert steps.log == ["delete"]


def test_every_error_is_raised_interface_first(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch)
    steps.delete_error = CNIError("veth stuck")
    steps.ipam_error = CNIError("ipam store unreadable")
    with pytest.raises(CNIError) as caught:
        bridge.cmd_del(_args(ipam={"type": "host-local"}))
    assert str(caught.value) == "veth stuck; ipam store unreadable"
    assert steps.log.count("release host-local") == 1
