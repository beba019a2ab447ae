"""spec.gokeys against Go's encoding/json key matching: goldens for the odd cases,
and a property test against a plain model of Go's algorithm."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni_plugins.spec.gokeys import NETCONF, Struct, fold

KELVIN = "\u212a"
LONG_S = "\u017f"
PORT_ENTRY = Struct("hostPort", "containerPort", "protocol", "hostIP")


# -- goldens ------------------------------------------------------------------------------------


def test_go_cni_port_mapping_gets_the_reference_names() -> None:
    given_ = {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}
    assert PORT_ENTRY.decode(given_) == {
        "hostPort": 18080,
        "containerPort": 80,
        "protocol": "tcp",
        "hostIP": "",
    }


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("SUBNET", "subnet"),
        ("sUbNeT", "subnet"),
        (f"{KELVIN}ey", "key"),  # Kelvin sign folds to k
        (f"{LONG_S}ubnet", "subnet"),  # long s folds to s
        (f"SUBNET{LONG_S}", None),  # one rune too many
        ("subnet\u0131", None),
        ("\u0131d", None),  # dotless i folds only to itself in Go (caseOrbit)
        ("\u0130d", None),  # so does dotted capital I
        ("\u00dfubnet", None),  # sharp s has no simple fold
        ("subnet ", None),
        ("sub_net", None),
    ],
)
def test_fold_matches(key: str, field: str | None) -> None:
    struct = Struct("key", "subnet", "id")
    assert struct.field(key) == field


def test_exact_name_beats_an_earlier_fold_match() -> None:
    # Go: byExactName first, else the first field (in struct order) of the fold class.
    struct = Struct("Name", "name")
    assert struct.field("name") == "name"
    assert struct.field("Name") == "Name"
    assert struct.field("NAME") == "Name"
    assert struct.field("nAME") == "Name"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"hostPort": 1, "HostPort": 2}, 2),
        ({"HostPort": 2, "hostPort": 1}, 1),  # the exact key does not win when earlier
        ({"HOSTPORT": 3, "HostPort": 2}, 2),
    ],
)
def test_later_key_for_one_field_wins(obj: dict[str, int], expected: int) -> None:
    assert PORT_ENTRY.decode(obj) == {"hostPort": expected}


def test_unknown_keys_are_dropped_or_kept_as_written() -> None:
    obj = {"Name": "n", "isGateway": True, "HostPort": 1}
    assert NETCONF.decode(obj) == {"name": "n"}
    assert NETCONF.decode(obj, keep_unknown=True) == {
        "name": "n",
        "isGateway": True,
        "HostPort": 1,
    }


def test_sorted_decoding_is_go_remarshalling_a_map() -> None:
    # "IPs" sorts before "ips": after Go's re-marshal the exact key comes last.
    assert Struct("ips").decode({"ips": 1, "IPs": 2}, sort=True) == {"ips": 1}
    assert Struct("ips").decode({"ips": 1, "IPs": 2}) == {"ips": 2}


def test_extend_puts_the_embedded_fields_first_and_lets_the_outer_dominate() -> None:
    outer = Struct("a", "ipam").extend("ipam", "b")
    assert outer.fields == ("a", "ipam", "b")


def test_spelling_names_the_deciding_key() -> None:
    assert PORT_ENTRY.spelling({"HostPort": 0}, "hostPort") == "HostPort"
    assert PORT_ENTRY.spelling({"HostPort": 0, "hostport": 1}, "hostPort") == "hostport"
    assert PORT_ENTRY.spelling({}, "hostPort") == "hostPort"


def test_field_names_must_be_ascii() -> None:
    with pytest.raises(ValueError, match="not ASCII"):
        Struct("caf\u00e9")


def test_only_kelvin_and_long_s_fold_into_ascii() -> None:
    """The premise of ``fold``: of all non-ASCII code points, only these two
    case-fold (Unicode CaseFolding.txt, status C) to an ASCII character."""
    to_ascii = [
        c
        for c in map(chr, range(0x80, 0x110000))
        if len(c.casefold()) == 1 and c.casefold().isascii()
    ]
    assert to_ascii == [LONG_S, KELVIN]
    assert fold(KELVIN + LONG_S) == "KS"


# -- property test against a plain model of Go's decoder -----------------------------------------

# Go's simple-fold orbits for the runes drawn below (unicode.SimpleFold).
_ORBITS = [{"k", "K", KELVIN}, {"s", "S", LONG_S}]


def _same_rune(a: str, b: str) -> bool:
    if a == b:
        return True
    if a.isascii() and b.isascii() and a.isalpha() and b.isalpha():
        return a.lower() == b.lower()
    return any(a in orbit and b in orbit for orbit in _ORBITS)


def _equal_fold(a: str, b: str) -> bool:
    return len(a) == len(b) and all(_same_rune(x, y) for x, y in zip(a, b, strict=True))


def _model_decode(fields: list[str], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """decode.go object(): per key, an exact field, else the first fold-equal
    field; each key assigns its field in turn."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        field = key if key in fields else next((f for f in fields if _equal_fold(f, key)), None)
        if field is not None:
            out[field] = value
    return out


_FIELD_CHARS = "aks-KS1"
_KEY_CHARS = _FIELD_CHARS + f"AKS{KELVIN}{LONG_S}\u0131\u0130\u00df"
fields_st = st.lists(st.text(_FIELD_CHARS, min_size=1, max_size=4), max_size=6, unique=True)
keys_st = st.lists(st.text(_KEY_CHARS, min_size=1, max_size=4), max_size=8, unique=True)


@given(fields_st, keys_st, st.data())
def test_decode_matches_the_model(fields: list[str], keys: list[str], data: st.DataObject) -> None:
    # Keys are drawn also from variants of the fields, so matches are common.
    variants = [
        "".join(data.draw(st.sampled_from(sorted(_variants(c)))) for c in f) for f in fields
    ]
    pairs = [(k, n) for n, k in enumerate(dict.fromkeys(keys + variants))]
    pairs = data.draw(st.permutations(pairs))
    assert Struct(*fields).decode(dict(pairs)) == _model_decode(fields, pairs)


def _variants(c: str) -> set[str]:
    found = {c, c.lower(), c.upper()} if c.isascii() else {c}
    return found | next((orbit for orbit in _ORBITS if c in orbit), set())
