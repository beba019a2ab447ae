"""The shipped conflist as the two generations of libcni read it.

Which version a runtime asks its plugins for is libcni's choice, and libcni
changed it in 1.2 (containernetworking/cni):

* libcni 1.1 (``v1.1.2``: ``libcni/conf.go`` ``ConfListFromBytes``) takes the
  list's ``cniVersion`` as it is and knows nothing of ``cniVersions``; a result
  can only be parsed at a version of ``pkg/version/version.go`` ``All``
  (0.1.0 ... 1.0.0), anything else fails with ``unsupported CNI result version``
  (``pkg/types/internal/create.go``).  containerd 1.6 and 1.7 ship it.
* libcni 1.2 (``v1.2.0``: ``libcni/conf.go``) takes every ``cniVersions``
  entry not greater than its own ``version.Current()`` (1.1.0) plus
  ``cniVersion``, and uses the highest.

The models below are those rules, nothing more.  The manifest's ConfigMap must
give each generation a version it accepts, and our binaries (and Debian's Go
delegates where they support the version) must ADD and DEL a pod through the
list at the version each generation picks.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.netns import World, world
from conformance.runtime import Attachment, Runtime
from tests.conftest import built_bin_dir

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kube-flannel.yml"
GO_PLUGINS = Path("/usr/lib/cni")

Json = dict[str, Any]

# containernetworking/cni v1.1.2 pkg/version/version.go: All
LIBCNI_1_1_RESULT_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
# containernetworking/cni v1.2.0 pkg/version/version.go: Current()
LIBCNI_1_2_CURRENT = "1.1.0"


class Unsupported(Exception):
    pass


def semver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def libcni_1_1_version(conflist: Json) -> str:
    """The version libcni 1.1 runs the list at; Unsupported if it cannot parse
    the plugins' results at that version."""
    version = str(conflist.get("cniVersion", ""))
    if version not in LIBCNI_1_1_RESULT_VERSIONS:
        raise Unsupported(f'unsupported CNI result version "{version}"')
    return version


def libcni_1_2_version(conflist: Json) -> str:
    candidates = [str(v) for v in conflist.get("cniVersions", [])]
    if conflist.get("cniVersion"):
        candidates.append(str(conflist["cniVersion"]))
    usable = [v for v in candidates if semver(v) <= semver(LIBCNI_1_2_CURRENT)]
    return max(usable, key=semver) if usable else str(conflist.get("cniVersion", ""))


MODELS = {"libcni-1.1": libcni_1_1_version, "libcni-1.2": libcni_1_2_version}


def shipped_conflist() -> Json:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    conf: Json = json.loads(cm["data"]["cni-conf.json"])
    return conf


def as_seen_by(model: str, conflist: Json) -> Json:
    """The list with the version this libcni generation runs it at, the way
    conformance.runtime.Runtime (which picks the highest it knows) then uses it."""
    seen = copy.deepcopy(conflist)
    seen["cniVersion"] = MODELS[model](conflist)
    seen.pop("cniVersions", None)
    return seen


# --------------------------------------------------------------------- models


def test_libcni_1_1_runs_the_shipped_list_at_1_0_0() -> None:
    assert libcni_1_1_version(shipped_conflist()) == "1.0.0"


def test_libcni_1_2_negotiates_1_1_0() -> None:
    assert libcni_1_2_version(shipped_conflist()) == "1.1.0"


def test_the_old_list_fails_every_pod_under_libcni_1_1() -> None:
    """What the manifest used to ship: cniVersion 1.1.0."""
    old = {**shipped_conflist(), "cniVersion": "1.1.0"}
    with pytest.raises(Unsupported, match=re.escape('unsupported CNI result version "1.1.0"')):
        libcni_1_1_version(old)
    assert libcni_1_2_version(old) == "1.1.0"


def test_libcni_1_2_skips_versions_newer_than_it_knows() -> None:
    conf = {"cniVersion": "1.0.0", "cniVersions": ["9.0.0", "1.1.0", "0.3.1"]}
    assert libcni_1_2_version(conf) == "1.1.0"
    assert libcni_1_2_version({"cniVersion": "1.0.0"}) == "1.0.0"


# ------------------------------------------------------- at the picked version


@pytest.fixture
def node() -> Iterator[World]:
    with world() as w:
        w.node.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield w


def node_conflist(w: World) -> Json:
    """The shipped list with the node's state paths kept in the test's tmp dir."""
    conf = shipped_conflist()
    subnet_env = w.tmp / "subnet.env"
    subnet_env.write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
    )
    flannel = conf["plugins"][0]
    assert flannel["type"] == "flannel"
    flannel["subnetFile"] = str(subnet_env)
    flannel["dataDir"] = str(w.tmp / "flannel")
    flannel["ipam"] = {"dataDir": str(w.tmp / "ipam")}
    return conf


CASES = [
    pytest.param("libcni-1.1", "ours", id="libcni-1.1-ours"),
    # Debian's Go bridge/host-local/portmap (v1.1.1) stop at 1.0.0, which is
    # what libcni 1.1 asks for; there is no Go flannel there, so ours delegates.
    pytest.param("libcni-1.1", "go-delegates", id="libcni-1.1-go-delegates"),
    pytest.param("libcni-1.2", "ours", id="libcni-1.2-ours"),
]


@pytest.mark.privileged
@pytest.mark.binaries
@pytest.mark.parametrize(("model", "delegates"), CASES)
def test_add_del_at_the_picked_version(
    node: World, tmp_path: Path, model: str, delegates: str
) -> None:
    dist = built_bin_dir()
    if dist is None:
        pytest.skip("dist/bin not built")
    if delegates == "go-delegates":
        if not (GO_PLUGINS / "bridge").exists():
            pytest.skip("Debian's containernetworking-plugins not installed")
        only_flannel = tmp_path / "flannel-only"
        only_flannel.mkdir()
        shutil.copy2(dist / "flannel", only_flannel / "flannel")
        cni_path = [only_flannel, GO_PLUGINS]
    else:
        cni_path = [dist]
    conflist = as_seen_by(model, node_conflist(node))
    runtime = Runtime(
        cni_path,
        node.node.name,
        tmp_path / "libcni-cache",
        env={"CNI_PLUGINS_CACHE_DIR": str(tmp_path / "unpack-cache")},
    )
    pod = node.new_pod()
    att = Attachment(
        container_id=f"ctr-{secrets.token_hex(4)}",
        netns=pod.path,
        capability_args={
            "portMappings": [{"hostPort": 30080, "containerPort": 80, "protocol": "tcp"}]
        },
    )
    result = runtime.add(conflist, att)
    assert result["cniVersion"] == conflist["cniVersion"]
    assert [ip["address"] for ip in result["ips"]] == ["10.244.7.2/24"]
    assert (node.tmp / "ipam" / "cbr0" / "10.244.7.2").exists()
    eth0 = pod.link("eth0")
    assert eth0 is not None
    assert any(a["local"] == "10.244.7.2" for a in eth0["addr_info"])
    assert any("30080" in rule for rule in node.node.nat_rules())
    runtime.delete(conflist, att)
    assert pod.link("eth0") is None
    assert not any("30080" in rule for rule in node.node.nat_rules())
    assert not (node.tmp / "ipam" / "cbr0" / "10.244.7.2").exists()
