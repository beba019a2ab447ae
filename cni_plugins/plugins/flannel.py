"""flannel: render this node's bridge + host-local config from flanneld's lease
and delegate to it.

Not chainable itself (it is the first plugin of flannel's conflist; portmap
follows it).  Beyond the reference (flannel-io/cni-plugin):

* ADD on a node whose flanneld has not written ``subnet.env`` yet is code 11,
  try again later, naming the file; STATUS says code 50 in that state.
* A failed delegate ADD is undone (delegate DEL, saved file removed): the
  reference leaks both (plugins#426).
* DEL removes the saved file only after the delegate DEL succeeded, so a retry
  can still release the address (the reference deletes it regardless).
* CHECK replays the saved config to the delegate's CHECK; GC is forwarded to the
  delegate and drops saved files of attachments that no longer exist.
"""

from __future__ import annotations

import sys

from cni_plugins.flannel import config, store, subnet_env
from cni_plugins.spec import invoke, jsonio, skel
from cni_plugins.spec.errors import (
    INVALID_CONFIG,
    CNIError,
    IOFailure,
    PluginNotAvailable,
    TryAgainLater,
    UnknownContainer,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from cni_plugins.spec.args import CmdArgs
    from cni_plugins.spec.types import Result


def cmd_add(args: CmdArgs) -> Result:
    conf = config.FlannelConf(args.config)
    try:
        env = subnet_env.load(conf.subnet_file)
    except subnet_env.SubnetEnvError as exc:
        raise TryAgainLater(str(exc), "flanneld has not written a valid subnet file yet") from exc
    delegate = config.render_delegate(conf, env)
    data = config.encode(delegate)
    # A delegate that is not there did nothing: fail before saving anything.
    invoke.find_plugin(conf.delegate_type, args.path)
    _log(f"flannel: delegating to {conf.delegate_type}: {data.decode()}")
    _save(conf, args.container_id, data)
    try:
        return invoke.delegate_add(conf.delegate_type, data, args)
    except BaseException:
        _undo_failed_add(conf, args, data)
        raise


def _undo_failed_add(conf: config.FlannelConf, args: CmdArgs, data: bytes) -> None:
    """The delegate ADD failed: release what it may have done, then forget it."""
    try:
        invoke.delegate_del(conf.delegate_type, data, args)
    except CNIError as exc:
        _log(f"flannel: delegate DEL after failed ADD failed too: {exc}")
        if exc.code != INVALID_CONFIG:
            # Keep the file: the runtime's DEL will replay it and retry the release.
            return
        # The delegate rejects this config outright (a bad 'delegate' value in
        # the conflist): replaying it could never succeed, and would only make
        # every DEL of this pod fail.
    store.remove(conf.data_dir, args.container_id)


def cmd_del(args: CmdArgs) -> None:
    conf = config.FlannelConf(args.config)
    try:
        saved = _load_saved(conf, args)
    except _Unusable as exc:
        # A torn or corrupt file must not block the pod's teardown (flannel#1662),
        # nor leak its address and rules: replay what ADD renders today instead.
        saved = _rendered_for_del(conf, args)
        _log(
            f"flannel: {exc}; "
            + ("deleting with the config rendered from the subnet file" if saved else "ignoring it")
        )
        if saved is None:
            return
    if saved is None:
        return
    delegate_type, data = saved
    invoke.delegate_del(delegate_type, data, args)
    store.remove(conf.data_dir, args.container_id)


def cmd_check(args: CmdArgs) -> None:
    conf = config.FlannelConf(args.config)
    try:
        saved = _load_saved(conf, args)
    except _Unusable as exc:
        raise UnknownContainer(f"flannel: {exc}") from None
    if saved is None:
        raise UnknownContainer(
            f"flannel: no saved config for container {args.container_id} in {conf.data_dir}"
        )
    delegate_type, data = saved
    invoke.delegate_check(delegate_type, data, args)


def cmd_status(args: CmdArgs) -> None:
    conf = config.FlannelConf(args.config)
    try:
        env = subnet_env.load(conf.subnet_file)
    except subnet_env.SubnetEnvError as exc:
        raise PluginNotAvailable(str(exc)) from exc
    delegate = config.render_delegate(conf, env)
    invoke.delegate_status(conf.delegate_type, config.encode(delegate), args)


def cmd_gc(args: CmdArgs) -> None:
    # Here, not at the top: only GC needs it, and every module is paid at each exec.
    from cni_plugins.spec.args import VALID_ATTACHMENTS_KEYS, valid_attachments

    conf = config.FlannelConf(args.config)
    valid = {cid for cid, _ifname in valid_attachments(args.config)}
    template = _gc_template(conf, args)
    if template is not None:
        for key in VALID_ATTACHMENTS_KEYS:
            if key in args.config:
                template[key] = args.config[key]
        invoke.delegate_gc(str(template.get("type", "bridge")), config.encode(template), args)
    for container_id in store.container_ids(conf.data_dir):
        if container_id not in valid:
            store.remove(conf.data_dir, container_id)


def _gc_template(conf: config.FlannelConf, args: CmdArgs) -> dict[str, Any] | None:
    """The delegate config to send GC with: rendered from the current lease, or
    else any saved one (flanneld may be down while the runtime collects)."""
    try:
        return config.render_delegate(conf, subnet_env.load(conf.subnet_file))
    except subnet_env.SubnetEnvError:
        pass
    for container_id in store.container_ids(conf.data_dir):
        try:
            data = store.load(conf.data_dir, container_id)
            obj = jsonio.loads(data or b"")
        except (store.SavedConfigError, ValueError):
            continue
        if isinstance(obj, dict):
            obj["cniVersion"] = args.cni_version
            return obj
    return None


class _Unusable(Exception):
    """The saved file exists but cannot be replayed (unreadable, a symlink, corrupt)."""


def _load_saved(conf: config.FlannelConf, args: CmdArgs) -> tuple[str, bytes] | None:
    """The saved delegate config, with this call's prevResult added when the
    versions agree; ``None`` when there is none; ``_Unusable`` when it is broken."""
    try:
        data = store.load(conf.data_dir, args.container_id)
    except store.SavedConfigError as exc:
        raise _Unusable(str(exc)) from None
    if data is None:
        return None
    try:
        obj = jsonio.loads(data)
        if not isinstance(obj, dict) or not _plain_name(obj.get("type", "bridge")):
            raise ValueError("not a JSON object with a plain file name as 'type'")
    except ValueError as exc:  # UnicodeDecodeError included
        raise _Unusable(f"saved config for {args.container_id} is unusable ({exc})") from None
    return _with_prev(obj, args, data)


def _rendered_for_del(conf: config.FlannelConf, args: CmdArgs) -> tuple[str, bytes] | None:
    """The delegate config ADD would render now (host-local and bridge DEL need
    only its name, bridge and dataDir), or ``None`` without a valid subnet file."""
    try:
        obj = config.render_delegate(conf, subnet_env.load(conf.subnet_file))
    except subnet_env.SubnetEnvError:
        return None
    return _with_prev(obj, args)


def _with_prev(obj: dict[str, Any], args: CmdArgs, data: bytes | None = None) -> tuple[str, bytes]:
    """(delegate type, config bytes): ``data`` as saved, unless this call's
    prevResult is added (when the versions agree)."""
    prev = args.config.get("prevResult")
    if prev is not None and obj.get("cniVersion", "") == args.config.get("cniVersion", ""):
        obj["prevResult"] = prev
        data = None
    return str(obj.get("type", "bridge")), data if data is not None else config.encode(obj)


def _plain_name(value: object) -> bool:
    return isinstance(value, str) and value not in ("", ".", "..") and "/" not in value


def _save(conf: config.FlannelConf, container_id: str, data: bytes) -> None:
    try:
        store.save(conf.data_dir, container_id, data)
    except OSError as exc:
        raise IOFailure(
            f"flannel: cannot save delegate config in {conf.data_dir}: {exc.strerror}"
        ) from exc


def _log(message: str) -> None:
    print(message, file=sys.stderr)


PLUGIN = skel.Plugin(
    "flannel", add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc
)


def main() -> NoReturn:
    skel.main(PLUGIN)


if __name__ == "__main__":
    main()
