"""cnitool's config loading: libcni's LoadNetworkConf rules (libcni/conf.go)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_plugins.tools.cnitool import conflist
from cni_plugins.tools.cnitool.errors import ToolError


def write(directory: Path, name: str, obj: object) -> Path:
    path = directory / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def a_list(name: str, *types: str, **extra: object) -> dict[str, object]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [{"type": t} for t in types], **extra}


def test_the_list_is_picked_by_name_from_sorted_conflist_files(tmp_path: Path) -> None:
    write(tmp_path, "20-b.conflist", a_list("net", "second"))
    write(tmp_path, "10-a.conflist", a_list("other", "x"))
    write(tmp_path, "30-c.conflist", a_list("net", "third"))
    network = conflist.load(str(tmp_path), "net")
    assert [p.type for p in network.plugins] == ["second"]
    # the cache keeps the file's bytes, not a re-encoding
    assert network.bytes == (tmp_path / "20-b.conflist").read_bytes()


def test_a_broken_conflist_before_the_match_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "10-broken.conflist", "{not json")
    write(tmp_path, "20-good.conflist", a_list("net", "bridge"))
    with pytest.raises(ToolError, match="error parsing configuration list"):
        conflist.load(str(tmp_path), "net")


def test_a_single_conf_is_wrapped_into_a_list_as_libcni_does(tmp_path: Path) -> None:
    write(tmp_path, "10-one.conf", {"name": "net", "cniVersion": "0.4.0", "type": "bridge", "z": 1})
    network = conflist.load(str(tmp_path), "net")
    assert network.cni_version == "0.4.0"
    assert [p.type for p in network.plugins] == ["bridge"]
    # ConfListFromConf: json.Marshal of {cniVersion, name, plugins}: sorted, compact
    assert network.bytes == (
        b'{"cniVersion":"0.4.0","name":"net","plugins":'
        b'[{"cniVersion":"0.4.0","name":"net","type":"bridge","z":1}]}'
    )


def test_conflists_take_precedence_and_json_files_count_as_confs(tmp_path: Path) -> None:
    write(tmp_path, "00-net.json", {"name": "net", "cniVersion": "1.0.0", "type": "from-json"})
    write(tmp_path, "99-net.conflist", a_list("net", "from-conflist"))
    assert conflist.load(str(tmp_path), "net").plugins[0].type == "from-conflist"
    (tmp_path / "99-net.conflist").unlink()
    assert conflist.load(str(tmp_path), "net").plugins[0].type == "from-json"


def test_not_found_messages_are_libcnis(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=f"^no net configurations found in {tmp_path}$"):
        conflist.load(str(tmp_path), "net")
    write(tmp_path, "10-a.conflist", a_list("other", "x"))
    with pytest.raises(ToolError, match=f'^no net configuration with name "net" in {tmp_path}$'):
        conflist.load(str(tmp_path), "net")
    assert conflist.conf_files(str(tmp_path / "missing"), (".conf",)) == []


def test_plugins_of_the_networks_directory_are_appended(tmp_path: Path) -> None:
    write(tmp_path, "10.conflist", a_list("net", "inline"))
    (tmp_path / "net").mkdir()
    write(tmp_path / "net", "b.conf", {"type": "dir-b"})
    write(tmp_path / "net", "a.conf", {"type": "dir-a"})
    write(tmp_path / "net", "c.json", {"type": "not-a-conf"})
    assert [p.type for p in conflist.load(str(tmp_path), "net").plugins] == [
        "inline",
        "dir-a",
        "dir-b",
    ]
    write(tmp_path, "10.conflist", a_list("net", "inline", loadOnlyInlinedPlugins=True))
    assert [p.type for p in conflist.load(str(tmp_path), "net").plugins] == ["inline"]


def test_a_list_without_plugins_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "10.conflist", {"cniVersion": "1.0.0", "name": "net"})
    with pytest.raises(ToolError, match=r"^no plugin configs found$"):
        conflist.load(str(tmp_path), "net")
    with pytest.raises(ToolError, match="no plugins in list"):
        conflist.list_from_bytes(b'{"name": "net", "plugins": []}')
    with pytest.raises(ToolError, match=r"failed to parse plugin config 1: .*missing 'type'"):
        conflist.list_from_bytes(b'{"name": "net", "plugins": [{"type": "a"}, {"x": 1}]}')


@pytest.mark.parametrize(
    ("versions", "version", "expected"),
    [
        (["0.3.1", "1.0.0", "0.4.0"], "", "1.0.0"),
        (["1.0.0", "2.0.0", "1.1.0"], "", "1.1.0"),  # newer than this tool: skipped
        (["0.3.1"], "1.0.0", "1.0.0"),  # cniVersion takes part
        (["9.0.0"], "0.4.0", "0.4.0"),
        (["9.0.0"], "", ""),
    ],
)
def test_cni_versions_negotiate_the_highest_usable(
    versions: list[str], version: str, expected: str
) -> None:
    raw = {"name": "net", "cniVersions": versions, "plugins": [{"type": "a"}]}
    if version:
        raw["cniVersion"] = version
    assert conflist.list_from_bytes(json.dumps(raw).encode()).cni_version == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cniVersions": "1.0.0"}, "invalid type for cniVersions: string"),
        ({"cniVersions": ["1.0.0", 1]}, "invalid type for cniVersions index 1: float64"),
        ({"cniVersions": ["x.0"]}, "invalid cniVersions entry x.0 at index 0"),
        ({"cniVersion": 1}, "invalid cniVersion type float64"),
        ({"name": 5}, "invalid name type float64"),
        ({"disableCheck": "maybe"}, 'invalid value "maybe" for disableCheck'),
        ({"disableGC": 1}, "invalid type float64 for disableGC"),
    ],
)
def test_bad_lists_are_named(raw: dict[str, object], message: str) -> None:
    full = {"name": "net", "plugins": [{"type": "a"}], **raw}
    with pytest.raises(ToolError, match=message):
        conflist.list_from_bytes(json.dumps(full).encode())


def test_flags_accept_booleans_and_their_strings() -> None:
    raw = {"name": "n", "disableCheck": "TRUE", "disableGC": True, "plugins": [{"type": "a"}]}
    network = conflist.list_from_bytes(json.dumps(raw).encode())
    assert network.disable_check and network.disable_gc


def test_plugin_description_names_type_and_own_name() -> None:
    network = conflist.list_from_bytes(
        b'{"name": "n", "plugins": [{"type": "bridge"}, {"type": "x", "name": "y"}]}'
    )
    assert [p.description() for p in network.plugins] == ['type="bridge"', 'type="x" name="y"']


@pytest.mark.parametrize(
    ("version", "parsed"),
    [("", (0, 1, 0)), ("1", (1, 0, 0)), ("0.4", (0, 4, 0)), ("1.1.0", (1, 1, 0))],
)
def test_versions_compare_as_pkg_version_does(version: str, parsed: tuple[int, int, int]) -> None:
    assert conflist.go_version(version) == parsed
    with pytest.raises(ToolError, match="too many parts"):
        conflist.go_version("1.0.0.0")


# --- keys: the list is a Go map (exact), each plugin a types.PluginConf (folded)


def test_plugin_keys_fold_as_go_decodes_types_pluginconf() -> None:
    plugin = conflist.PluginConf(
        b'{"Type": "portmap", "NAME": "pm", "CNIVersion": "1.0.0",'
        b' "Capabilities": {"portMappings": true, "PortMappings": false}}'
    )
    assert (plugin.type, plugin.name, plugin.cni_version) == ("portmap", "pm", "1.0.0")
    # keys of the capabilities map stay exact: two different capabilities
    assert plugin.capabilities == {"portMappings": True, "PortMappings": False}


def test_the_later_of_two_spellings_wins_as_in_go() -> None:
    assert conflist.PluginConf(b'{"type": "a", "TYPE": "b"}').type == "b"
    assert conflist.PluginConf(b'{"Type": "a", "type": "b", "Type": "c"}').type == "c"


def test_a_folded_type_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ToolError, match="must be strings"):
        conflist.PluginConf(b'{"Type": 7}')
    with pytest.raises(ToolError, match="missing 'type'"):
        conflist.PluginConf(b'{"typ": "bridge"}')


def test_capitalised_plugin_keys_in_a_conflist_work(tmp_path: Path) -> None:
    write(
        tmp_path,
        "10-net.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "net",
            "plugins": [{"Type": "flannel"}, {"TYPE": "portmap"}],
        },
    )
    assert [p.type for p in conflist.load(str(tmp_path), "net").plugins] == ["flannel", "portmap"]


def test_list_keys_stay_exact_as_libcni_reads_a_map(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="no name"):
        conflist.list_from_bytes(b'{"Name": "net", "plugins": [{"type": "bridge"}]}')
    # "Plugins" is not "plugins": no inlined plugin, and none in <dir>/net/
    write(tmp_path, "10-net.conflist", {"name": "net", "Plugins": [{"type": "bridge"}]})
    with pytest.raises(ToolError, match="no plugin configs found"):
        conflist.load(str(tmp_path), "net")
    network = conflist.list_from_bytes(
        b'{"name": "n", "DisableCheck": true, "plugins": [{"type": "x"}]}'
    )
    assert network.disable_check is False


def test_a_single_conf_is_matched_and_wrapped_by_its_folded_name_and_version(
    tmp_path: Path,
) -> None:
    write(tmp_path, "10-one.conf", {"Name": "net", "CNIVERSION": "0.4.0", "Type": "bridge"})
    network = conflist.load(str(tmp_path), "net")
    assert (network.name, network.cni_version) == ("net", "0.4.0")
    assert [p.type for p in network.plugins] == ["bridge"]
    assert network.bytes.startswith(b'{"cniVersion":"0.4.0","name":"net","plugins":')
