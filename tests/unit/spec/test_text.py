"""spec.text's checks and linux.chainname's comment parser against the regular
expressions they replaced (kept here as the specification)."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from cni_plugins.linux.chainname import parse_owner_comment
from cni_plugins.spec import text

NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z")
NAME_UNDERSCORE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAC = re.compile(r"[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}\Z")
ESCAPED_COMMENT = re.compile(r'name: "((?:[^"\\]|\\.)*)" id: "((?:[^"\\]|\\.)*)"\Z', re.DOTALL)
PLAIN_COMMENT = re.compile(r'dnat name: "([^"]*)" id: "([^"]*)"\Z')

# Characters that matter to the patterns, plus some that must not match.
ALPHABET = st.sampled_from([*list('aZ09_.-:"\\ /\n\x00\x7f\x1fé٣ﬀfF'), "name: ", " id: "])
TEXT = st.lists(ALPHABET, max_size=12).map("".join)


@given(TEXT)
@example("a")
@example("_a")
@example("٣")  # a non-ASCII digit: str.isalnum() says yes, the pattern no
@example("aﬀ")
def test_is_name(value: str) -> None:
    assert text.is_name(value) == bool(NAME.match(value))
    assert text.is_name(value, underscore_first=True) == bool(NAME_UNDERSCORE.match(value))


@given(TEXT)
def test_has_control(value: str) -> None:
    assert text.has_control(value) == bool(CONTROL.search(value))


@given(st.lists(st.sampled_from(list("0aF:-g ")), min_size=15, max_size=19).map("".join))
@example("aa:bb:cc:dd:ee:ff")
@example("AA-BB-CC-DD-EE-FF")
@example("aa:bb-cc:dd:ee:ff")
@example("aa:bb:cc:dd:ee:ff\n")
def test_is_mac(value: str) -> None:
    assert text.is_mac(value) == bool(MAC.match(value))


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value, flags=re.DOTALL)


@given(TEXT)
@example('name: "a\\"b" id: "c\\\\"')
@example('name: "a" id: "b" ')
@example('name: "a\\')
def test_escaped_comment(value: str) -> None:
    match = ESCAPED_COMMENT.match(value)
    expected = None if match is None else (_unescape(match[1]), _unescape(match[2]))
    assert parse_owner_comment(value, "", escaped=True) == expected


@given(TEXT.map(lambda v: "dnat " + v))
@example('dnat name: "cbr0" id: "pod1"')
@example('dnat name: "a\\" id: "b"')
def test_plain_comment(value: str) -> None:
    match = PLAIN_COMMENT.match(value)
    expected = None if match is None else (match[1], match[2])
    assert parse_owner_comment(value, "dnat ", escaped=False) == expected


def test_is_lower_hex() -> None:
    assert text.is_lower_hex("0123456789abcdef")
    assert not text.is_lower_hex("0A")
    assert not text.is_lower_hex("g")
