"""deploy/Containerfile builds an amd64 + arm64 manifest list, offline.

``buildah build --platform linux/amd64,linux/arm64 --build-arg PER_ARCH=1
--manifest`` (deploy/README.md) on a private vfs storage in a temp dir, then
``buildah manifest push --all`` into an OCI layout directory: every instance
must name its platform and carry that architecture's binaries, byte for byte.
Needs dist/bin and the arm64 build (dist/bin-arm64, or ``CNI_DIST_BIN_ARM64``);
skipped without them.  The recipe has no RUN step, so no emulation is needed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import built_bin_dir
from tests.install.images import build_context

REPO = Path(__file__).resolve().parents[2]
PLUGINS = ("bridge", "flannel", "host-local", "loopback", "portmap")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = [pytest.mark.privileged, pytest.mark.binaries, pytest.mark.timeout(600)]


def arm64_bin_dir() -> Path | None:
    d = Path(os.environ.get("CNI_DIST_BIN_ARM64", REPO / "dist" / "bin-arm64"))
    return d if all((d / p).exists() for p in PLUGINS) else None


class Buildah:
    """buildah on a private vfs storage, removed by ``close``."""

    def __init__(self, state: Path) -> None:
        self.state = state
        (state / "tmp").mkdir(parents=True)
        (state / "containers.conf").touch()

    def __call__(self, *args: str) -> str:
        argv = ["buildah", "--root", str(self.state / "root"), "--runroot", str(self.state / "run")]
        argv += ["--storage-driver", "vfs", *args]
        env = {
            "PATH": HOST_PATH,
            "TMPDIR": str(self.state / "tmp"),
            "CONTAINERS_CONF": str(self.state / "containers.conf"),
        }
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, f"buildah {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def close(self) -> None:
        try:
            self("rmi", "--all", "--force")
        finally:
            shutil.rmtree(self.state)


@pytest.fixture
def buildah() -> Iterator[Buildah]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if shutil.which("buildah") is None:
        pytest.skip("buildah not installed")
    tool = Buildah(Path(tempfile.mkdtemp(prefix="cnit-buildah-")))
    try:
        yield tool
    finally:
        tool.close()


def blob(layout: Path, digest: str) -> bytes:
    algo, _, hexdigest = digest.partition(":")
    data = (layout / "blobs" / algo / hexdigest).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hexdigest
    return data


def blob_json(layout: Path, digest: str) -> Any:
    return json.loads(blob(layout, digest))


def image_files(layout: Path, manifest: Any) -> dict[str, bytes]:
    """Regular files of an image's layers (later layers win), by path."""
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        data = blob(layout, layer["digest"])
        if layer["mediaType"].endswith("gzip"):
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member) if member.isfile() else None
                if f is not None:
                    files[member.name.lstrip("./")] = f.read()
    return files


def test_manifest_list_with_both_arches(buildah: Buildah, tmp_path: Path) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the native build (dist/bin) is taken as amd64")
    amd64, arm64 = built_bin_dir(), arm64_bin_dir()
    if amd64 is None or arm64 is None:
        pytest.skip("needs dist/bin and dist/bin-arm64 (build.py --arch arm64)")
    dists = {"amd64": amd64, "arm64": arm64}
    ctx = build_context(tmp_path, amd64, dists={f"bin-{a}": d for a, d in dists.items()})

    image = "localhost/cnit-multiarch:1"
    buildah(
        "build", "--pull=never", "--network", "none", "-q",
        "--platform", "linux/amd64,linux/arm64",
        "--build-arg", "PER_ARCH=1", "--build-arg", "BASE_IMAGE=scratch",
        "--manifest", image, "-f", str(ctx / "deploy" / "Containerfile"), str(ctx),
    )  # fmt: skip
    layout = tmp_path / "oci"
    buildah("manifest", "push", "--all", image, f"oci:{layout}:multi")

    (top,) = json.loads((layout / "index.json").read_text())["manifests"]
    index = blob_json(layout, top["digest"])
    by_arch = {m["platform"]["architecture"]: m for m in index["manifests"]}
    assert sorted(by_arch) == ["amd64", "arm64"]
    for arch, entry in by_arch.items():
        assert entry["platform"]["os"] == "linux"
        manifest = blob_json(layout, entry["digest"])
        assert blob_json(layout, manifest["config"]["digest"])["architecture"] == arch
        files = image_files(layout, manifest)
        assert files["install-cni.sh"] == (REPO / "install-cni.sh").read_bytes()
        for plugin in PLUGINS:
            want = (dists[arch] / plugin).read_bytes()
            assert files[f"opt/cni/bin/{plugin}"] == want, f"{arch}: {plugin} differs"
