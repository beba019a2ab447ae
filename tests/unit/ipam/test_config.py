"""host-local config: defaults, range-set assembly, requested addresses, and every
validation error with its code (7 unless the environment is at fault: 4)."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.ipam.host_local.config import (
    DEFAULT_DATA_DIR,
    data_dir,
    load_ipam_config,
)
from cni_plugins.spec import ip as ipa
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.errors import INVALID_CONFIG, INVALID_ENVIRONMENT, CNIError


def make_args(
    ipam_section: dict[str, Any] | None,
    /,
    *,
    version: str = "1.0.0",
    cni_args: str = "",
    **top: Any,
) -> CmdArgs:
    config: dict[str, Any] = {"cniVersion": version, "name": "net1", **top}
    if ipam_section is not None:
        config["ipam"] = {"type": "host-local", **ipam_section}
    return CmdArgs(
        command="ADD",
        config=config,
        cni_version=version,
        container_id="ctr1",
        ifname="eth0",
        cni_args=cni_args,
    )


def ranges(*subnets: str) -> dict[str, Any]:
    return {"ranges": [[{"subnet": s}] for s in subnets]}


def test_defaults_follow_go() -> None:
    conf = load_ipam_config(make_args(ranges("10.1.2.0/24", "fd00:1::/64")))
    v4, v6 = (rs.ranges[0] for rs in conf.range_sets)
    assert (str(v4.start), str(v4.end), str(v4.gateway)) == ("10.1.2.1", "10.1.2.254", "10.1.2.1")
    assert (str(v6.start), str(v6.end)) == ("fd00:1::1", "fd00:1::ffff:ffff:ffff:ffff")
    assert str(conf.range_sets[0]) == "10.1.2.1-10.1.2.254"
    assert conf.data_dir == DEFAULT_DATA_DIR
    assert conf.name == "net1"
    assert conf.routes == () and conf.resolv_conf == "" and conf.requested_ips == ()


def test_explicit_range_and_routes() -> None:
    conf = load_ipam_config(
        make_args(
            {
                "ranges": [
                    [
                        {
                            "subnet": "10.1.2.0/24",
                            "rangeStart": "10.1.2.10",
                            "rangeEnd": "10.1.2.20",
                            "gateway": "10.1.2.254",
                        },
                        {"subnet": "10.9.0.0/30"},
                    ]
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.0.0.0/8", "gw": "10.1.2.254"}],
                "dataDir": "/tmp/x",
                "resolvConf": "/etc/resolv.conf",
            }
        )
    )
    (rs,) = conf.range_sets
    assert [str(r) for r in rs.ranges] == ["10.1.2.10-10.1.2.20", "10.9.0.1-10.9.0.2"]
    assert rs.capacity() == 11 + 1  # 10.9.0.1 is that range's gateway
    assert [str(r.dst) for r in conf.routes] == ["0.0.0.0/0", "10.0.0.0/8"]
    assert conf.data_dir == "/tmp/x" and conf.resolv_conf == "/etc/resolv.conf"


def test_legacy_range_then_runtime_ranges_are_prepended() -> None:
    args = make_args(
        {"subnet": "10.2.0.0/24", "gateway": "10.2.0.9", **ranges("10.3.0.0/24")},
        runtimeConfig={"ipRanges": [[{"subnet": "10.1.0.0/24"}]]},
    )
    conf = load_ipam_config(args)
    assert [str(rs.ranges[0].subnet) for rs in conf.range_sets] == [
        "10.1.0.0/24",
        "10.2.0.0/24",
        "10.3.0.0/24",
    ]
    assert str(conf.range_sets[1].ranges[0].gateway) == "10.2.0.9"


BAD_CONFIGS: list[tuple[str, dict[str, Any] | None, dict[str, Any], str]] = [
    ("no ipam", None, {}, "IPAM config missing 'ipam' key"),
    ("ipam not object", None, {"ipam": "x"}, "ipam must be a JSON object"),
    ("no ranges", {}, {}, "no IP ranges specified"),
    ("empty ranges", {"ranges": []}, {}, "no IP ranges specified"),
    ("ranges not list", {"ranges": "x"}, {}, "ipam.ranges must be a list"),
    ("set not list", {"ranges": ["x"]}, {}, "invalid range set 0: must be a list of range"),
    ("empty set", {"ranges": [[]]}, {}, "invalid range set 0: empty range set"),
    ("range not object", {"ranges": [[1]]}, {}, "invalid range set 0: each range must be"),
    ("no subnet", {"ranges": [[{}]]}, {}, "invalid range set 0: subnet must be a CIDR"),
    ("bad subnet", {"ranges": [[{"subnet": "10.0.0.0/33"}]]}, {}, "invalid range set 0: subnet"),
    (
        "host bits",
        {"subnet": "10.0.0.5/24"},
        {},
        "invalid range set 0: Network has host bits set. For a subnet mask of length 24 "
        "the network address is 10.0.0.0",
    ),
    (
        "v4 /31",
        ranges("10.0.0.0/31"),
        {},
        "invalid range set 0: Network 10.0.0.0/31 too small to allocate from",
    ),
    ("v4 /32", ranges("10.0.0.0/32"), {}, "Network 10.0.0.0/32 too small to allocate from"),
    ("v6 /127", ranges("fd00::/127"), {}, "Network fd00::/127 too small to allocate from"),
    ("v6 /128", ranges("fd00::/128"), {}, "Network fd00::/128 too small to allocate from"),
    (
        "start outside",
        {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}]]},
        {},
        "invalid range set 0: RangeStart 10.0.1.1 not in network 10.0.0.0/24",
    ),
    (
        "end outside",
        {"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.1"}]]},
        {},
        "invalid range set 0: RangeEnd 10.0.1.1 not in network 10.0.0.0/24",
    ),
    (
        "end other family",
        {"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "fd00::1"}]]},
        {},
        "RangeEnd fd00::1 not in network 10.0.0.0/24",
    ),
    (
        "start after end",
        {
            "ranges": [
                [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.50", "rangeEnd": "10.0.0.9"}]
            ]
        },
        {},
        "invalid range set 0: RangeStart 10.0.0.50 is after RangeEnd 10.0.0.9",
    ),
    (
        "gateway outside",
        {"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]]},
        {},
        "invalid range set 0: gateway 10.0.1.1 not in network 10.0.0.0/24",
    ),
    (
        "bad start",
        {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "nope"}]]},
        {},
        "invalid range set 0: rangeStart",
    ),
    (
        "mixed families",
        {"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]},
        {},
        "invalid range set 0: mixed address families",
    ),
    (
        "overlap in set",
        {"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]},
        {},
        "invalid range set 0: subnets 10.0.0.1-10.0.0.254 and 10.0.0.1-10.0.0.126 overlap",
    ),
    ("overlapping sets", ranges("10.0.0.0/24", "10.0.0.0/25"), {}, "range set 0 overlaps with 1"),
    (
        "second set bad",
        ranges("10.0.0.0/24", "10.1.0.0/32"),
        {},
        "invalid range set 1: Network 10.1.0.0/32 too small",
    ),
    ("routes not list", {**ranges("10.0.0.0/24"), "routes": {}}, {}, "ipam.routes must be a list"),
    (
        "route bad dst",
        {**ranges("10.0.0.0/24"), "routes": [{"dst": "x"}]},
        {},
        "ipam.routes[0].dst must be a CIDR",
    ),
    ("dataDir type", {**ranges("10.0.0.0/24"), "dataDir": 5}, {}, "ipam.dataDir must be"),
    ("resolvConf type", {**ranges("10.0.0.0/24"), "resolvConf": []}, {}, "ipam.resolvConf"),
    (
        "runtime ipRanges type",
        ranges("10.0.0.0/24"),
        {"runtimeConfig": {"ipRanges": "x"}},
        "runtimeConfig.ipRanges must be a list",
    ),
    ("runtimeConfig type", ranges("10.0.0.0/24"), {"runtimeConfig": []}, "runtimeConfig must be"),
]


@pytest.mark.parametrize(
    ("ipam", "top", "message"),
    [pytest.param(i, t, m, id=name) for name, i, t, m in BAD_CONFIGS],
)
def test_invalid_config_is_code_7_naming_the_problem(
    ipam: dict[str, Any] | None, top: dict[str, Any], message: str
) -> None:
    with pytest.raises(CNIError) as info:
        load_ipam_config(make_args(ipam, **top), with_requests=True)
    assert info.value.code == INVALID_CONFIG
    assert message in info.value.msg


def test_more_than_one_set_per_family_needs_030() -> None:
    two_v4 = ranges("10.0.0.0/24", "10.1.0.0/24")
    with pytest.raises(CNIError) as info:
        load_ipam_config(make_args(two_v4, version="0.2.0"))
    assert info.value.code == INVALID_CONFIG
    assert info.value.msg == "CNI version 0.2.0 does not support more than 1 address per family"
    assert len(load_ipam_config(make_args(two_v4, version="0.3.0")).range_sets) == 2
    # one per family is fine for the legacy result shape
    assert (
        len(
            load_ipam_config(
                make_args(ranges("10.0.0.0/24", "fd00::/64"), version="0.1.0")
            ).range_sets
        )
        == 2
    )


def ip(text: str) -> ipa.IPAddress:
    return ipa.ip_address(text)


def test_requested_ips_from_all_sources_in_go_order() -> None:
    args = make_args(
        ranges("10.0.0.0/24", "fd00::/64"),
        cni_args="IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.7",
        runtimeConfig={"ips": ["fd00::7/64", "10.0.0.7/24"]},
    )
    conf = load_ipam_config(args, with_requests=True)
    assert conf.requested_ips == (ip("10.0.0.7"), ip("fd00::7"))  # duplicates collapse


def test_args_cni_ips_override_cni_args() -> None:
    args = make_args(
        ranges("10.0.0.0/24"),
        cni_args="IP=10.0.0.7;Unknown=1",  # not even parsed: CONVENTIONS.md
        args={"cni": {"ips": ["10.0.0.8", "::ffff:10.0.0.9"]}},
    )
    conf = load_ipam_config(args, with_requests=True)
    assert conf.requested_ips == (ip("10.0.0.8"), ip("10.0.0.9"))


def test_requests_are_ignored_unless_asked_for() -> None:
    args = make_args(ranges("10.0.0.0/24"), cni_args="Unknown=1")
    assert load_ipam_config(args).requested_ips == ()


@pytest.mark.parametrize(
    ("cni_args", "top", "code", "message"),
    [
        ("K8S_POD_NAME=x", {}, INVALID_ENVIRONMENT, "CNI_ARGS: unknown args"),
        ("IP=10.0.0", {}, INVALID_ENVIRONMENT, "CNI_ARGS IP"),
        ("", {"args": {"cni": {"ips": "10.0.0.1"}}}, INVALID_CONFIG, "args.cni.ips must be a list"),
        ("", {"args": {"cni": {"ips": [5]}}}, INVALID_CONFIG, "args.cni.ips[0]"),
        ("", {"args": []}, INVALID_CONFIG, "args must be a JSON object"),
        ("", {"runtimeConfig": {"ips": ["10.0.0.1/99"]}}, INVALID_CONFIG, "cannot understand ip"),
    ],
)
def test_bad_requests(cni_args: str, top: dict[str, Any], code: int, message: str) -> None:
    with pytest.raises(CNIError) as info:
        load_ipam_config(
            make_args(ranges("10.0.0.0/24"), cni_args=cni_args, **top), with_requests=True
        )
    assert info.value.code == code
    assert message in info.value.msg


def test_data_dir_needs_only_the_ipam_object() -> None:
    # DEL and GC release with a range config that would not load.
    config = {"name": "n", "ipam": {"type": "host-local", "ranges": "broken", "dataDir": "/d"}}
    assert data_dir(config) == "/d"
    assert data_dir({"ipam": {}}) == DEFAULT_DATA_DIR
