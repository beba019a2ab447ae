"""bridge config keys match as Go's encoding/json (flannel's delegate map is
forwarded as written, and the bridge struct folds it)."""

from __future__ import annotations

from cni_plugins.bridge.config import BridgeConf
from cni_plugins.spec.types import DNS


def test_mixed_case_keys_fold() -> None:
    c = BridgeConf.from_json(
        {
            "cniVersion": "1.0.0",
            "name": "net",
            "Bridge": "br-x",
            "IsGateway": True,
            "IPMasq": True,
            "MTU": 1400,
            "HAIRPINMODE": True,
            "IPAM": {"Type": "host-local"},
            "DNS": {"Nameservers": ["10.0.0.10"], "Search": ["svc"]},
            "VlanTrunk": [{"MinID": 2, "MaxID": 3}, {"ID": 7}],
            "RuntimeConfig": {"MAC": "0a:58:0a:01:02:03"},
        },
        for_add=False,
    )
    assert (c.bridge, c.is_gateway, c.ip_masq, c.mtu, c.hairpin_mode) == (
        "br-x",
        True,
        True,
        1400,
        True,
    )
    assert c.ipam_type == "host-local"
    assert c.dns == DNS(("10.0.0.10",), search=("svc",))
    assert c.vlan_trunk == (2, 3, 7)
    assert c.mac == "0a:58:0a:01:02:03"


def test_args_cni_mac_folds() -> None:
    c = BridgeConf.from_json({"name": "n", "Args": {"CNI": {"Mac": "0a:58:0a:01:02:04"}}})
    assert c.mac == "0a:58:0a:01:02:04"


def test_flannel_style_duplicate_later_exact_key_wins() -> None:
    # flannel sets "ipMasq" beside a user's "IPMasq"; Go marshals the map sorted,
    # so "IPMasq" comes first and the later "ipMasq" decides.
    c = BridgeConf.from_json({"IPMasq": False, "ipMasq": True, "name": "n"})
    assert c.ip_masq is True


def test_kelvin_sign_and_long_s_fold() -> None:
    c = BridgeConf.from_json({"name": "n", "hairpinMode": True, "macspoofch\u212a": True})
    assert c.mac_spoof_check is True
    c = BridgeConf.from_json({"name": "n", "i\u017fGateway": True})
    assert c.is_gateway is True
