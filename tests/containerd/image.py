"""The pod image: busybox-static and an httpd document root, written directly
as a docker-archive (what ``buildah push docker-archive:`` produces) so no
registry, image builder or container storage is needed.  One tag serves as
CRI's sandbox (pause) image and as the app image."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
IMAGE = "localhost/cnit-pod:1"
APPLETS = ("sh", "httpd", "wget", "sleep", "timeout", "hostname", "ip", "cat", "echo", "ls")
# The sandbox (pause) process: busybox as PID 1 ignores SIGTERM, and CRI kills
# sandboxes with SIGKILL anyway.
PAUSE_CMD = ["/bin/sleep", "2147483647"]
# The app: serve $POD_NAME on port 80 (each test sets it, to know who answered).
HTTPD_CMD = ["/bin/sh", "-c", 'echo "$POD_NAME" > /www/index.html && exec httpd -f -p 80 -h /www']


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "www", "tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        page = b"cnit-pod\n"
        info = tarfile.TarInfo("www/index.html")
        info.size, info.mode = len(page), 0o644
        tar.addfile(info, io.BytesIO(page))
    return buf.getvalue()


def write_docker_archive(path: Path, tag: str = IMAGE) -> Path:
    layer = _layer()
    layer_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": PAUSE_CMD, "Env": ["PATH=/bin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{layer_id}/layer.tar"]}]
    ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (
            (f"{layer_id}/layer.tar", layer),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
