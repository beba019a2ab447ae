"""host-local config keys match as Go's encoding/json (Net, IPAMConfig, Range,
runtimeConfig and args structs)."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.ipam.host_local.config import data_dir, load_ipam_config
from cni_plugins.spec import ip as ipa
from cni_plugins.spec.args import CmdArgs
from cni_plugins.spec.errors import InvalidConfig


def make_args(config: dict[str, Any]) -> CmdArgs:
    config = {"cniVersion": "1.0.0", "name": "net1", **config}
    return CmdArgs(command="ADD", config=config, cni_version="1.0.0", container_id="c", ifname="e")


def test_runtime_ip_ranges_with_go_field_names() -> None:
    args = make_args(
        {
            "ipam": {"type": "host-local"},
            "runtimeConfig": {"ipRanges": [[{"Subnet": "10.9.0.0/24", "RangeStart": "10.9.0.5"}]]},
        }
    )
    (rs,) = load_ipam_config(args).range_sets
    assert str(rs.ranges[0].subnet) == "10.9.0.0/24"
    assert str(rs.ranges[0].start) == "10.9.0.5"


def test_mixed_case_ipam_keys() -> None:
    args = make_args(
        {
            "IPAM": {
                "Type": "host-local",
                "Ranges": [[{"SUBNET": "10.1.0.0/24", "Gateway": "10.1.0.254"}]],
                "Routes": [{"Dst": "0.0.0.0/0", "GW": "10.1.0.254"}],
                "DataDir": "/tmp/x",
                "ResolvConf": "",
            },
            "RuntimeConfig": {"IPs": ["10.1.0.7"]},
            "Args": {"Cni": {"IPS": ["10.1.0.8"]}},
        }
    )
    conf = load_ipam_config(args, with_requests=True)
    assert str(conf.range_sets[0].ranges[0].gateway) == "10.1.0.254"
    assert [str(r.dst) for r in conf.routes] == ["0.0.0.0/0"]
    assert str(conf.routes[0].gw) == "10.1.0.254"
    assert conf.data_dir == "/tmp/x" == data_dir(args.config)
    assert conf.requested_ips == (ipa.ip_address("10.1.0.8"), ipa.ip_address("10.1.0.7"))


def test_single_range_keys_fold() -> None:
    args = make_args({"ipam": {"Subnet": "10.2.0.0/24", "rangeEND": "10.2.0.9"}})
    (rs,) = load_ipam_config(args).range_sets
    assert str(rs.ranges[0].end) == "10.2.0.9"


def test_values_keep_their_validation() -> None:
    args = make_args({"ipam": {"Ranges": [[{"Subnet": "10.2.0.0/24", "Gateway": "10.3.0.1"}]]}})
    with pytest.raises(InvalidConfig, match=r"gateway 10.3.0.1 not in network 10.2.0.0/24"):
        load_ipam_config(args)
