"""Golden delegate configs (flannel-io/cni-plugin flannel_linux_test.go cases and more)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cni_plugins.flannel import config, subnet_env
from cni_plugins.spec.errors import InvalidConfig

V4 = (
    "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n"
    "FLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n"
)
V6 = (
    "FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\n"
    "FLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n"
)
DUAL = V4 + "FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\n"
MULTI = (
    "FLANNEL_NETWORK=10.1.0.0/16,192.168.0.0/16,10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n"
    "FLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n"
)


def render(env_text: str, **conf: Any) -> dict[str, Any]:
    raw = {"name": "cni-flannel", "type": "flannel", **conf}
    return config.render_delegate(config.FlannelConf(raw), subnet_env.parse(env_text))


def test_ipv4_matches_reference_golden() -> None:
    assert render(V4) == {
        "ipMasq": False,
        "isGateway": True,
        "mtu": 1472,
        "name": "cni-flannel",
        "type": "bridge",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.1.17.0/24"}]],
            "routes": [{"dst": "10.1.0.0/16"}],
        },
    }


def test_ipv6_only() -> None:
    assert render(V6, cniVersion="1.0.0")["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "fc00::/64"}]],
        "routes": [{"dst": "fc00::/48"}],
    }
    assert render(V6, cniVersion="1.0.0")["cniVersion"] == "1.0.0"


def test_dual_stack_has_two_range_sets_v4_first() -> None:
    ipam = render(DUAL)["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.1.17.0/24"}], [{"subnet": "fc00::/64"}]]
    assert ipam["routes"] == [{"dst": "10.1.0.0/16"}, {"dst": "fc00::/48"}]


def test_several_networks_deduplicated_and_ipmasq_false_means_bridge_masquerades() -> None:
    delegate = render(MULTI)
    assert delegate["ipMasq"] is True
    assert delegate["ipam"]["routes"] == [{"dst": "10.1.0.0/16"}, {"dst": "192.168.0.0/16"}]


def test_delegate_overrides_and_passthrough() -> None:
    delegate = render(
        V4,
        cniVersion="0.3.1",
        delegate={
            "hairpinMode": True,
            "isDefaultGateway": True,
            "forceAddress": True,
            "mtu": 1400,
            "ipMasq": True,
            "isGateway": False,
            "bridge": "cbr7",
        },
        ipam={"dataDir": "/run/ipam", "routes": [{"dst": "172.16.0.0/12", "gw": "10.1.17.254"}]},
        runtimeConfig={
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
        },
        args={"cni": {"ips": ["10.1.17.9"]}},
    )
    assert delegate == {
        "name": "cni-flannel",
        "type": "bridge",
        "cniVersion": "0.3.1",
        "hairpinMode": True,
        "isDefaultGateway": True,
        "forceAddress": True,
        "mtu": 1400,
        "ipMasq": True,
        "isGateway": False,
        "bridge": "cbr7",
        "ipam": {
            "type": "host-local",
            "dataDir": "/run/ipam",
            "ranges": [[{"subnet": "10.1.17.0/24"}]],
            "routes": [{"dst": "172.16.0.0/12", "gw": "10.1.17.254"}, {"dst": "10.1.0.0/16"}],
        },
        "runtimeConfig": {
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
        },
        "args": {"cni": {"ips": ["10.1.17.9"]}},
    }


def test_non_bridge_delegate_gets_no_is_gateway() -> None:
    delegate = render(V4, delegate={"type": "ipvlan", "master": "eth0"})
    assert "isGateway" not in delegate and delegate["type"] == "ipvlan"


def test_encoding_is_compact_and_sorted_like_go() -> None:
    data = config.encode(render(V4))
    assert data.startswith(b'{"ipMasq":false,"ipam":{"ranges"')
    assert json.loads(data) == render(V4)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"delegate": {"name": "x"}}, "must not have 'name' field"),
        ({"delegate": {"ipam": {}}}, "must not have 'ipam' field"),
        ({"delegate": {"type": 5}}, "'type' must be a string"),
        ({"delegate": "bridge"}, "'delegate' must be a JSON object"),
        ({"ipam": []}, "'ipam' must be a JSON object"),
        ({"ipam": {"routes": {}}}, "'routes' must be a list"),
        ({"subnetFile": "relative/subnet.env"}, "'subnetFile' must be an absolute path"),
        ({"dataDir": 7}, "'dataDir' must be an absolute path"),
    ],
)
def test_bad_config_names_the_field(conf: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        config.FlannelConf({"name": "n", **conf})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, "
            "FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ",
        ),
        (
            "FLANNEL_NETWORK=10.0.0.0/8\nFLANNEL_SUBNET=10.1.0.1/24\n",
            "is missing FLANNEL_MTU, FLANNEL_IPMASQ",
        ),
        (V4.replace("1472", "abc"), "FLANNEL_MTU='abc' is not an MTU"),
        (V4.replace("10.1.17.1/24", "10.1.17.1"), None),
        (V4.replace("10.1.17.1/24", "nonsense"), "FLANNEL_SUBNET='nonsense' is not a CIDR"),
        (V4.replace("10.1.0.0/16", "fc00::/48"), "is not an IPv4 CIDR"),
    ],
)
def test_subnet_env_errors_name_every_problem(text: str, message: str | None) -> None:
    if message is None:  # a bare address is a /32: valid, if odd
        assert subnet_env.parse(text).subnet is not None
        return
    with pytest.raises(subnet_env.SubnetEnvError, match=message):
        subnet_env.parse(text, "/run/flannel/subnet.env")


def test_missing_file_names_it(tmp_path: Any) -> None:
    with pytest.raises(subnet_env.SubnetEnvError, match=r"subnet\.env.*No such file"):
        subnet_env.load(str(tmp_path / "subnet.env"))


def test_own_keys_fold_but_map_keys_stay_exact() -> None:
    """flannel's NetConf folds ("SubnetFile", "Delegate"); its delegate and ipam are
    Go maps, forwarded as written (the delegate's struct folds them later)."""
    conf = config.FlannelConf(
        {
            "Name": "n",
            "SubnetFile": "/run/x/subnet.env",
            "DataDir": "/var/lib/x",
            "Delegate": {"IsGateway": False, "Type": "ignored-by-flannel"},
            "IPAM": {"Routes": [{"Dst": "10.9.0.0/16"}]},
        }
    )
    assert (conf.name, conf.subnet_file, conf.data_dir) == ("n", "/run/x/subnet.env", "/var/lib/x")
    assert conf.delegate_type == "bridge"  # "Type" is not the map key "type"
    out = config.render_delegate(conf, subnet_env.parse(V4))
    assert out["IsGateway"] is False and out["isGateway"] is True
    assert out["Type"] == "ignored-by-flannel"
    # "Routes" is not the map key "routes": only flannel's own route is rendered.
    assert out["ipam"]["routes"] == [{"dst": "10.1.0.0/16"}]
    assert out["ipam"]["Routes"] == [{"Dst": "10.9.0.0/16"}]


def test_user_routes_are_rewritten_as_go_route_structs() -> None:
    out = render(V4, ipam={"routes": [{"Dst": "10.9.0.0/16", "GW": "10.1.17.1", "x": 1}]})
    assert out["ipam"]["routes"] == [
        {"dst": "10.9.0.0/16", "gw": "10.1.17.1"},
        {"dst": "10.1.0.0/16"},
    ]


def test_delegate_name_check_is_exact() -> None:
    # Go's hasKey(n.Delegate, "name") is a map lookup: "Name" passes.
    config.FlannelConf({"name": "n", "delegate": {"Name": "x"}})
    with pytest.raises(InvalidConfig, match="must not have 'name'"):
        config.FlannelConf({"name": "n", "delegate": {"name": "x"}})
