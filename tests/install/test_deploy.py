"""deploy/: the kube-flannel manifest and the image recipe.

The manifest is parsed as multi-document YAML (PyYAML, locked in
requirements-dev.txt) and checked for the fields a
flannel node needs, and for consistency with install-cni.sh and the recipe.
docker cannot run here, so the recipe is checked through
deploy/assemble-image-tree.sh, which builds the same file tree in a directory.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFEST = DEPLOY / "kube-flannel.yml"
RECIPE = DEPLOY / "Containerfile"
ASSEMBLE = DEPLOY / "assemble-image-tree.sh"
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


def recipe_config(tree: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (tree / "config").read_text().splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return out


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
    assert conf["cniVersion"] == "1.1.0"
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
    cfg = PurePosixPath(env["CNI_NETWORK_CONFIG_FILE"])
    cm_volume = volumes[mounts[str(cfg.parent)]["name"]]
    assert cm_volume["configMap"]["name"] == "kube-flannel-cfg"
    assert cfg.name in one(docs, "ConfigMap")["data"]
    assert env["CNI_CONF_NAME"] == "10-flannel.conflist"
    assert env["CNI_OLD_NAME"] == "10-flannel.conf"


def test_install_containers_match_the_image_recipe(docs: list[Obj], tmp_path: Path) -> None:
    tree = assemble(fake_context(tmp_path), tmp_path / "tree")
    config = recipe_config(tree)
    (entrypoint,) = config["ENTRYPOINT"]
    image_env = dict(kv.split("=", 1) for kv in config.get("ENV", []))
    images = set()
    for name in ("install-cni", "install-cni-sidecar"):
        c = containers(docs)[name]
        images.add(c["image"])
        assert c["command"] == json.loads(entrypoint)
        env = {e["name"]: e.get("value") for e in c["env"]}
        # the binaries the manifest says to install are where the image has them
        assert env["CNI_BIN_SRC"] == image_env["CNI_BIN_SRC"]
        assert (tree / "rootfs" / env["CNI_BIN_SRC"].lstrip("/")).is_dir()
    assert len(images) == 1


def test_script_environment_is_documented() -> None:
    header = SCRIPT.read_text().split("\nPROG=", 1)[0]
    for name in script_env_names():
        assert re.search(rf"^#\s+{name}\s", header, re.MULTILINE), f"{name} not documented"


# --------------------------------------------------------------------- image


def fake_plugin() -> str:
    return '#!/bin/sh\necho \'{"cniVersion":"1.1.0","supportedVersions":["1.1.0"]}\'\n'


def fake_context(tmp_path: Path, names: tuple[str, ...] = ("bridge", "flannel", "portmap")) -> Path:
    ctx = tmp_path / "context"
    (ctx / "deploy").mkdir(parents=True)
    shutil.copy(RECIPE, ctx / "deploy" / "Containerfile")
    shutil.copy(SCRIPT, ctx / "install-cni.sh")
    (ctx / "dist" / "bin").mkdir(parents=True)
    for name in names:
        p = ctx / "dist" / "bin" / name
        p.write_text(fake_plugin())
        p.chmod(0o644)  # the recipe's --chmod must make it executable
    return ctx


def assemble(ctx: Path, out: Path, shell: str = "dash") -> Path:
    proc = subprocess.run(
        [shell, str(ASSEMBLE), str(out), str(ctx)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": PATH},
    )
    assert proc.returncode == 0, proc.stderr
    return out


def tree_listing(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_assembled_tree_matches_recipe(tmp_path: Path, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    ctx = fake_context(tmp_path)
    argv0 = "dash" if shell == "dash" else "busybox"
    proc = subprocess.run(
        [
            argv0,
            *(["sh"] if shell == "busybox" else []),
            str(ASSEMBLE),
            str(tmp_path / "t"),
            str(ctx),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": PATH},
    )
    assert proc.returncode == 0, proc.stderr
    tree = tmp_path / "t"
    rootfs = tree / "rootfs"
    assert tree_listing(rootfs) == {
        "install-cni.sh": 0o755,
        "opt/cni/bin/bridge": 0o755,
        "opt/cni/bin/flannel": 0o755,
        "opt/cni/bin/portmap": 0o755,
    }
    assert (rootfs / "install-cni.sh").read_bytes() == SCRIPT.read_bytes()
    for name in ("bridge", "flannel", "portmap"):
        assert (rootfs / "opt/cni/bin" / name).read_bytes() == (
            ctx / "dist/bin" / name
        ).read_bytes()
    config = recipe_config(tree)
    assert config["ENTRYPOINT"] == ['["/install-cni.sh"]']
    assert config["ENV"] == ["CNI_BIN_SRC=/opt/cni/bin"]
    (base,) = config["FROM"]
    assert base.startswith("docker.io/library/debian:")


def test_assembled_image_installs_onto_a_host(tmp_path: Path) -> None:
    """What the init container does, with the image tree standing in for the image."""
    tree = assemble(fake_context(tmp_path), tmp_path / "tree")
    rootfs = tree / "rootfs"
    cfg = tmp_path / "cni-conf.json"
    cfg.write_text(load_configmap_conf())
    image_env = dict(kv.split("=", 1) for kv in recipe_config(tree)["ENV"])
    host = tmp_path / "host"
    proc = subprocess.run(
        [str(rootfs / "install-cni.sh"), "--no-sleep"],
        env={
            "PATH": PATH,
            "TMPDIR": str(tmp_path),
            "CNI_BIN_SRC": str(rootfs / image_env["CNI_BIN_SRC"].lstrip("/")),
            "CNI_BIN_DIR": str(host / "opt/cni/bin"),
            "CNI_CONF_DIR": str(host / "etc/cni/net.d"),
            "CNI_NETWORK_CONFIG_FILE": str(cfg),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (host / "opt/cni/bin").iterdir()) == [
        "bridge",
        "flannel",
        "portmap",
    ]
    assert (host / "etc/cni/net.d/10-flannel.conflist").exists()


def load_configmap_conf() -> str:
    docs = load_yaml_documents(MANIFEST)
    text: str = one(docs, "ConfigMap")["data"]["cni-conf.json"]
    return text


def test_dockerignore_lets_exactly_the_copied_sources_through() -> None:
    sources = []
    for line in RECIPE.read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            sources.append(next(w for w in words[1:] if not w.startswith("--")))
    ignore = (DEPLOY / "Containerfile.dockerignore").read_text().split()
    ignore = [w for w in ignore if not w.startswith("#") and w.isascii()]
    assert "*" in ignore
    assert sorted(w[1:] for w in ignore if w.startswith("!")) == sorted(sources)


def test_assemble_refuses_unknown_instructions(tmp_path: Path) -> None:
    ctx = fake_context(tmp_path)
    recipe = ctx / "deploy" / "Containerfile"
    recipe.write_text(recipe.read_text() + "RUN apt-get install -y jq\n")
    proc = subprocess.run(
        ["dash", str(ASSEMBLE), str(tmp_path / "t"), str(ctx)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": PATH},
    )
    assert proc.returncode != 0
    assert "instruction not understood" in proc.stderr


def test_assemble_refuses_a_non_empty_output(tmp_path: Path) -> None:
    out = tmp_path / "t"
    out.mkdir()
    (out / "x").write_text("")
    proc = subprocess.run(
        ["dash", str(ASSEMBLE), str(out), str(fake_context(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": PATH},
    )
    assert proc.returncode != 0
    assert "not empty" in proc.stderr


def test_assemble_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", str(ASSEMBLE)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


@pytest.mark.binaries
def test_assembled_tree_from_the_real_build(tmp_path: Path) -> None:
    dist = REPO / "dist" / "bin"
    if not dist.is_dir() or not any(dist.iterdir()):
        pytest.skip("dist/bin not built")
    tree = assemble(REPO, tmp_path / "tree")
    bin_dir = tree / "rootfs" / "opt" / "cni" / "bin"
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(p.name for p in dist.iterdir())
    for p in bin_dir.iterdir():
        assert p.read_bytes() == (dist / p.name).read_bytes()
        assert stat.S_IMODE(p.stat().st_mode) == 0o755
