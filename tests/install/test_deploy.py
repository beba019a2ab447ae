"""deploy/: the kube-flannel manifest and the image recipe.

The manifest is parsed as multi-document YAML (PyYAML, locked in
requirements-dev.txt), validated against the Kubernetes API schemas
(kubernetes-validate, which ships them: offline) and checked for the fields a
flannel node needs and for consistency with install-cni.sh.  The image itself
is built and run in tests/install/test_image.py.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_schemas

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFEST = DEPLOY / "kube-flannel.yml"
RECIPE = DEPLOY / "Containerfile"
SCRIPT = REPO / "install-cni.sh"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Obj = dict[str, Any]


def load_yaml_documents(path: Path) -> list[Obj]:
    docs: list[Obj | None] = list(yaml.safe_load_all(path.read_text()))
    return [d for d in docs if d is not None]


@pytest.fixture(scope="module")
def docs() -> list[Obj]:
    return load_yaml_documents(MANIFEST)


def one(docs: list[Obj], kind: str) -> Obj:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def script_env_names() -> set[str]:
    """Variables install-cni.sh takes from the environment (NAME=${NAME...} lines)."""
    text = SCRIPT.read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=\$\{\1[:-]", text, re.MULTILINE))


# ------------------------------------------------------------------ manifest


def test_kinds_and_api_versions(docs: list[Obj]) -> None:
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("v1", "ConfigMap"),
        ("apps/v1", "DaemonSet"),
    ]
    for d in docs:
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == "kube-flannel"


def test_namespace_is_privileged(docs: list[Obj]) -> None:
    ns = one(docs, "Namespace")
    assert ns["metadata"]["name"] == "kube-flannel"
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_rbac(docs: list[Obj]) -> None:
    role = one(docs, "ClusterRole")
    grants = {
        (res, verb)
        for rule in role["rules"]
        for res in rule["resources"]
        for verb in rule["verbs"]
        if rule["apiGroups"] == [""]
    }
    assert grants == {
        ("pods", "get"),
        ("nodes", "get"),
        ("nodes", "list"),
        ("nodes", "watch"),
        ("nodes/status", "patch"),
    }
    sa = one(docs, "ServiceAccount")
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "kube-flannel"}
    ]
    ds = one(docs, "DaemonSet")
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_configmap_cni_conf(docs: list[Obj]) -> None:
    cm = one(docs, "ConfigMap")
    assert cm["metadata"]["name"] == "kube-flannel-cfg"
    conf = json.loads(cm["data"]["cni-conf.json"])
    assert conf["name"] == "cbr0"
    # libcni 1.1 reads only cniVersion and knows results up to 1.0.0;
    # tests/install/test_conflist_versions.py models both libcni generations
    assert conf["cniVersion"] == "1.0.0"
    assert conf["cniVersions"] == ["1.1.0", "1.0.0", "0.3.1"]
    flannel, portmap = conf["plugins"]
    assert flannel == {
        "type": "flannel",
        "delegate": {"hairpinMode": True, "isDefaultGateway": True},
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    net = json.loads(cm["data"]["net-conf.json"])
    assert net["Network"] == "10.244.0.0/16"
    assert net["Backend"] == {"Type": "vxlan"}


def test_configmap_cni_conf_accepted_by_install_cni(docs: list[Obj], tmp_path: Path) -> None:
    text = one(docs, "ConfigMap")["data"]["cni-conf.json"]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("flannel", "portmap"):
        p = src / name
        p.write_text('#!/bin/sh\necho \'{"cniVersion":"1.1.0","supportedVersions":["1.1.0"]}\'\n')
        p.chmod(0o755)
    proc = subprocess.run(
        ["dash", str(SCRIPT), "--no-sleep"],
        env={
            "PATH": PATH,
            "TMPDIR": str(tmp_path),
            "CNI_BIN_SRC": str(src),
            "CNI_BIN_DIR": str(tmp_path / "bin"),
            "CNI_CONF_DIR": str(tmp_path / "net.d"),
            "CNI_NETWORK_CONFIG": text,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr
    installed = (tmp_path / "net.d" / "10-flannel.conflist").read_text()
    assert json.loads(installed) == json.loads(text)


def pod_spec(docs: list[Obj]) -> Obj:
    spec: Obj = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    return spec


def containers(docs: list[Obj]) -> dict[str, Obj]:
    spec = pod_spec(docs)
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def test_daemonset_basics(docs: list[Obj]) -> None:
    ds = one(docs, "DaemonSet")
    assert ds["metadata"]["name"] == "kube-flannel-ds"
    selector = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    spec = pod_spec(docs)
    assert spec["hostNetwork"] is True
    assert spec["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert [c["name"] for c in spec["initContainers"]] == ["install-cni"]
    assert [c["name"] for c in spec["containers"]] == ["kube-flannel", "install-cni-sidecar"]


def test_flanneld_container(docs: list[Obj]) -> None:
    c = containers(docs)["kube-flannel"]
    assert c["image"].startswith("ghcr.io/flannel-io/flannel:v0.28.")
    assert c["command"] == ["/opt/bin/flanneld"]
    assert {"--ip-masq", "--kube-subnet-mgr"} <= set(c["args"])
    caps = c["securityContext"]["capabilities"]["add"]
    assert sorted(caps) == ["NET_ADMIN", "NET_RAW"]
    assert c["securityContext"].get("privileged", False) is False
    env = {e["name"] for e in c["env"]}
    assert {"POD_NAME", "POD_NAMESPACE"} <= env
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["mountPath"].rstrip("/"): volumes[m["name"]] for m in c["volumeMounts"]}
    assert mounts["/run/flannel"]["hostPath"]["path"] == "/run/flannel"
    assert mounts["/run/xtables.lock"]["hostPath"] == {
        "path": "/run/xtables.lock",
        "type": "FileOrCreate",
    }
    assert mounts["/etc/kube-flannel"]["configMap"]["name"] == "kube-flannel-cfg"


def test_every_mount_has_a_volume(docs: list[Obj]) -> None:
    volumes = {v["name"] for v in pod_spec(docs)["volumes"]}
    for c in containers(docs).values():
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes, (c["name"], m["name"])


@pytest.mark.parametrize(
    ("name", "sleep"), [("install-cni", "false"), ("install-cni-sidecar", "true")]
)
def test_install_cni_containers(docs: list[Obj], name: str, sleep: str) -> None:
    c = containers(docs)[name]
    env = {e["name"]: e.get("value") for e in c["env"]}
    # every variable the manifest sets is one install-cni.sh reads
    assert set(env) <= script_env_names(), set(env) - script_env_names()
    assert env["SLEEP"] == sleep
    assert c["args"] == ["--sleep" if sleep == "true" else "--no-sleep"]

    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["mountPath"].rstrip("/"): m for m in c["volumeMounts"]}

    def host_path(container_path: str) -> str:
        m = mounts[container_path]
        assert not m.get("readOnly", False), container_path
        path: str = volumes[m["name"]]["hostPath"]["path"]
        return path

    assert host_path(env["CNI_BIN_DIR"]) == "/opt/cni/bin"
    assert host_path(env["CNI_CONF_DIR"]) == "/etc/cni/net.d"
    # the launcher's default cache on the host (build/README.md), warmed and pruned
    assert host_path(env["CNI_PLUGINS_CACHE_DIR"]) == "/var/lib/cni/cni-plugins-py"
    cfg = PurePosixPath(env["CNI_NETWORK_CONFIG_FILE"])
    cm_volume = volumes[mounts[str(cfg.parent)]["name"]]
    assert cm_volume["configMap"]["name"] == "kube-flannel-cfg"
    assert cfg.name in one(docs, "ConfigMap")["data"]
    assert env["CNI_CONF_NAME"] == "10-flannel.conflist"
    assert env["CNI_OLD_NAME"] == "10-flannel.conf"


def test_script_environment_is_documented() -> None:
    header = SCRIPT.read_text().split("\nPROG=", 1)[0]
    for name in script_env_names():
        assert re.search(rf"^#\s+{name}\s", header, re.MULTILINE), f"{name} not documented"


# ---------------------------------------------------------------- schemas

# The oldest and the newest Kubernetes release whose schemas kubernetes-validate
# (requirements-dev.txt) ships; the manifest's API versions and fields (pod
# security labels, apps/v1, rbac/v1) are all GA in this whole range.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")


def test_schema_versions_are_shipped() -> None:
    shipped = set(kubernetes_schemas.all_versions())
    assert set(KUBERNETES_VERSIONS) <= shipped, sorted(shipped)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifest_is_valid_kubernetes(docs: list[Obj], version: str) -> None:
    for doc in docs:
        # strict: a field the schema does not have (a typo, a field of a newer
        # release) is an error, not silently dropped as kubectl would
        kubernetes_schemas.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_schema_validation_catches_a_broken_daemonset(docs: list[Obj], version: str) -> None:
    ds = copy.deepcopy(one(docs, "DaemonSet"))
    ds["spec"]["template"]["spec"]["initContainers"][0]["volumeMount"] = []  # typo
    with pytest.raises(kubernetes_schemas.ValidationError):
        kubernetes_schemas.validate(ds, version, strict=True)
    ds = copy.deepcopy(one(docs, "DaemonSet"))
    ds["spec"]["template"]["spec"]["volumes"][1]["hostPath"]["path"] = 7
    with pytest.raises(kubernetes_schemas.ValidationError):
        kubernetes_schemas.validate(ds, version, strict=True)


# --------------------------------------------------------------------- image


def test_dockerignore_lets_exactly_the_copied_sources_through() -> None:
    sources = []
    for line in RECIPE.read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            source = next(w for w in words[1:] if not w.startswith("--"))
            # dist/bin by default, dist/bin-<arch> with PER_ARCH=1 (multi-arch)
            per_arch = "${PER_ARCH:+-$TARGETARCH}"
            if per_arch in source:
                sources.append(source.replace(per_arch, "-*"))
                source = source.replace(per_arch, "")
            sources.append(source)
    ignore = (DEPLOY / "Containerfile.dockerignore").read_text().split()
    ignore = [w for w in ignore if not w.startswith("#") and w.isascii()]
    assert "*" in ignore
    assert sorted(w[1:] for w in ignore if w.startswith("!")) == sorted(sources)
