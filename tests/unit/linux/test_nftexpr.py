"""linux.nftexpr: nft rules encoded as nft 1.0.6 stores them, and decoded by meaning.

The goldens are the kernel's dumps of the same rules written by nft 1.0.6
(golden/capture_nftexpr.py): the encoding must be those bytes exactly, and
the decoder must read each golden back to what its text says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.linux import nfmsg
from cni_plugins.linux import nftexpr as x
from cni_plugins.spec.ip import ip_address, ip_network

GOLDEN: dict[str, Any] = json.loads(
    (Path(__file__).parent / "golden" / "nftexpr-nft-1.0.6.json").read_text()
)
BY_ID = {g["id"]: g for g in GOLDEN["rules"]}
A4, A6 = ip_address("10.244.1.2"), ip_address("fd00:10:244:1::2")


def net(text: str) -> Any:
    return ip_network(text)


def inet(family: int, text: str, *, destination: bool, negate: bool = False) -> bytes:
    return x.nfproto(family) + x.address(net(text), destination=destination, negate=negate)


# id -> (our expressions, our userdata, what decode must read)
ENCODINGS: dict[str, tuple[bytes, bytes, list[tuple[str, str, object]], tuple[object, ...]]] = {
    "jump": (x.jump("j"), b"", [], ("jump", "j")),
    "goto": (x.goto("j"), b"", [], ("goto", "j")),
    "fib-local-jump": (
        x.fib_daddr_local() + x.jump("j"), b"", [("fib daddr type", "==", 2)], ("jump", "j"),
    ),
    "tcp-dnat-v4": (
        x.dport("tcp", 8080) + x.dnat(A4, 80), x.comment("cid1"),
        [("l4proto", "==", "tcp"), ("dport", "==", 8080)], ("dnat", A4, 80),
    ),
    "daddr-udp-dnat-v4": (
        x.address(net("192.168.1.5/32"), destination=True) + x.dport("udp", 53) + x.dnat(A4, 53),
        x.comment("cid1"),
        [("ip daddr", "==", net("192.168.1.5/32")), ("l4proto", "==", "udp"), ("dport", "==", 53)],
        ("dnat", A4, 53),
    ),
    "sctp-dnat-v4": (
        x.dport("sctp", 99) + x.dnat(A4, 99), x.comment("cid1"),
        [("l4proto", "==", "sctp"), ("dport", "==", 99)], ("dnat", A4, 99),
    ),
    "tcp-dnat-v6": (
        x.dport("tcp", 8080) + x.dnat(A6, 80), x.comment("cid1"),
        [("l4proto", "==", "tcp"), ("dport", "==", 8080)], ("dnat", A6, 80),
    ),
    "daddr-udp-dnat-v6": (
        x.address(net("fd00::5/128"), destination=True) + x.dport("udp", 53) + x.dnat(A6, 53),
        x.comment("cid1"),
        [("ip6 daddr", "==", net("fd00::5/128")), ("l4proto", "==", "udp"), ("dport", "==", 53)],
        ("dnat", A6, 53),
    ),
    "masq-v4": (
        x.address(net("10.244.1.2/32"), destination=False)
        + x.address(net("10.244.1.2/32"), destination=True) + x.masquerade(),
        x.comment("cid1"),
        [("ip saddr", "==", net("10.244.1.2/32")), ("ip daddr", "==", net("10.244.1.2/32"))],
        ("masquerade",),
    ),
    "masq-all-v4": (
        x.address(net("0.0.0.0/0"), destination=False)
        + x.address(net("10.244.1.2/32"), destination=True) + x.masquerade(),
        x.comment("cid1"),
        [("ip saddr", "==", net("0.0.0.0/0")), ("ip daddr", "==", net("10.244.1.2/32"))],
        ("masquerade",),
    ),
    "masq-all-v6": (
        x.address(net("::/0"), destination=False)
        + x.address(net("fd00:10:244:1::2/128"), destination=True) + x.masquerade(),
        x.comment("cid1"),
        [("ip6 saddr", "==", net("::/0")), ("ip6 daddr", "==", net("fd00:10:244:1::2/128"))],
        ("masquerade",),
    ),
    "multicast-return-v4": (
        inet(4, "224.0.0.0/4", destination=True) + x.return_(), b"",
        [("ip daddr", "==", net("224.0.0.0/4"))], ("return",),
    ),
    "multicast-return-v6": (
        inet(6, "ff00::/8", destination=True) + x.return_(), b"",
        [("ip6 daddr", "==", net("ff00::/8"))], ("return",),
    ),
    "inet-masq-24": (
        inet(4, "10.244.1.2/32", destination=False)
        + x.address(net("10.244.1.0/24"), destination=True, negate=True) + x.masquerade(),
        x.comment("abc"),
        [("ip saddr", "==", net("10.244.1.2/32")), ("ip daddr", "!=", net("10.244.1.0/24"))],
        ("masquerade",),
    ),
    "inet-masq-20": (
        inet(4, "10.244.1.2/32", destination=False)
        + x.address(net("10.244.0.0/20"), destination=True, negate=True) + x.masquerade(),
        x.comment("abc"),
        [("ip saddr", "==", net("10.244.1.2/32")), ("ip daddr", "!=", net("10.244.0.0/20"))],
        ("masquerade",),
    ),
    "inet-masq-v6": (
        inet(6, "fd00:10:244:1::2/128", destination=False)
        + x.address(net("fd00:10:244:1::/64"), destination=True, negate=True) + x.masquerade(),
        x.comment("abc"),
        [
            ("ip6 saddr", "==", net("fd00:10:244:1::2/128")),
            ("ip6 daddr", "!=", net("fd00:10:244:1::/64")),
        ],
        ("masquerade",),
    ),
}  # fmt: skip
FAMILY = {"ip": 4, "ip6": 6, "inet": None}


def test_every_golden_has_an_encoding() -> None:
    assert sorted(ENCODINGS) == sorted(BY_ID)


@pytest.mark.parametrize("ident", sorted(BY_ID))
def test_encoding_is_what_nft_stores(ident: str) -> None:
    exprs, userdata, _matches, _action = ENCODINGS[ident]
    assert exprs.hex() == BY_ID[ident]["exprs"], BY_ID[ident]["rule"]
    assert userdata.hex() == BY_ID[ident]["userdata"]


@pytest.mark.parametrize("ident", sorted(BY_ID))
def test_decode_reads_what_nft_wrote(ident: str) -> None:
    golden = BY_ID[ident]
    _exprs, _userdata, matches, action = ENCODINGS[ident]
    decoded = x.decode(nfmsg.parse_exprs(bytes.fromhex(golden["exprs"])), FAMILY[golden["family"]])
    assert decoded is not None, golden["rule"]
    assert decoded.matches == matches
    assert decoded.action == action
    if golden["userdata"]:
        assert x.parse_comment(bytes.fromhex(golden["userdata"])) in ("cid1", "abc")


def test_table_and_chain_comments_are_nfts_userdata() -> None:
    assert x.comment("CNI portmap plugin").hex() == GOLDEN["table_userdata"]
    assert x.comment("Masquerade traffic from certain IPs").hex() == GOLDEN["chain_userdata"]


def test_a_comment_longer_than_nft_stores_is_refused() -> None:
    # nft 1.0.6 takes 128 characters and refuses 129 ("comment too long").
    assert len(x.comment("c" * 128)) == 2 + 129
    with pytest.raises(x.TooLong):
        x.comment("c" * 129)


@pytest.mark.parametrize(
    ("exprs", "family"),
    [
        (x.meta(3) + x.cmp(b"\x01\0\0\0") + x.jump("j"), 4),  # meta mark: not read here
        (x.dport("tcp", 80), 4),  # no action
        (x.jump("j") + x.masquerade(), 4),  # something after the action
        (x.payload(2, 0, 2) + x.cmp(b"\0\x50") + x.jump("j"), 4),  # sport, no l4proto
        (x.address(net("10.0.0.1/32"), destination=True) + x.jump("j"), None),  # inet, no nfproto
        (x.expr("counter") + x.expr("log") + x.masquerade(), 4),
        (x.nfproto(4) + x.jump("j"), 4),  # nfproto in an ip table
    ],
)
def test_unknown_shapes_decode_to_none(exprs: bytes, family: int | None) -> None:
    assert x.decode(nfmsg.parse_exprs(exprs), family) is None
