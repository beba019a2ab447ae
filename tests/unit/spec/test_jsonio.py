"""spec.jsonio must agree with the json package byte for byte, errors included,
and must not import it (nor re) on the normal path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cni_plugins.spec import jsonio

REPO = Path(__file__).resolve().parents[3]

DOCUMENTS = [
    "{}",
    "[]",
    '"x"',
    "0",
    "-12",
    "12345678901234567890123456789",
    "1.5e300",
    "-0.0",
    "1e400",
    "NaN",
    "[Infinity, -Infinity]",
    "true",
    "null",
    ' \t\n{"a": 1, "a": 2}\r\n ',
    '{"cniVersion": "1.0.0", "name": "cbr0", "plugins": [{"type": "flannel",'
    ' "delegate": {"hairpinMode": true, "isDefaultGateway": true}}, {"type": "portmap",'
    ' "capabilities": {"portMappings": true}, "snat": true}]}',
    '{"s": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\n \\t \\u0001", "e": [[], {}, [{}]]}',
    '{"z": 1, "a": {"y": [3, 2, 1], "b": null}, "m": 0.1}',
]

MALFORMED: list[str | bytes] = [
    "",
    "   ",
    "{",
    '{"a": 1} x',
    "[1,]",
    '{"a" 1}',
    "{'a': 1}",
    '"\x01"',
    "\ufeff{}",
    "[" * 100_000,
    b"\xff",
    b'{"a": "\xc3"}',
]

BYTES_DOCUMENTS = [
    b'{"a": 1}',
    b" [1, 2] ",
    b"\xef\xbb\xbf{}",
    '{"a": "é"}'.encode("utf-16"),
    '{"a": "é"}'.encode(),
]


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        return "ok", repr(fn(*args, **kwargs))
    except (ValueError, RecursionError, TypeError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_matches_json(text: str) -> None:
    assert repr(jsonio.loads(text)) == repr(json.loads(text))
    assert repr(jsonio.loads(text.encode())) == repr(json.loads(text.encode()))


@pytest.mark.parametrize("data", BYTES_DOCUMENTS)
def test_loads_bytes_matches_json(data: bytes) -> None:
    assert _outcome(jsonio.loads, data) == _outcome(json.loads, data)


@pytest.mark.parametrize("data", MALFORMED, ids=lambda d: repr(d)[:30])
def test_errors_match_json(data: str | bytes) -> None:
    ours = _outcome(jsonio.loads, data)
    assert ours[0] != "ok"
    assert ours == _outcome(json.loads, data)


@pytest.mark.parametrize("text", DOCUMENTS)
@pytest.mark.parametrize(
    "kwargs", [{}, {"indent": 4}, {"indent": 0}, {"indent": 2, "sort_keys": True}]
)
def test_dumps_matches_json(text: str, kwargs: dict[str, Any]) -> None:
    obj = json.loads(text)
    assert jsonio.dumps(obj, **kwargs) == json.dumps(obj, **kwargs)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_compact_sorted_dumps_matches_json(text: str) -> None:
    obj = json.loads(text)
    expected = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert jsonio.dumps(obj, sort_keys=True, compact=True) == expected


@pytest.mark.parametrize(
    "obj",
    [{1: "int key"}, {"a": {None: 1}}, (1, 2), {"t": (1, [2])}, True, {"n": 2**70}],
    ids=repr,
)
def test_dumps_other_values_like_json(obj: Any) -> None:
    assert jsonio.dumps(obj) == json.dumps(obj)
    assert jsonio.dumps(obj, indent=4) == json.dumps(obj, indent=4)


def test_dumps_refuses_what_json_refuses() -> None:
    assert _outcome(jsonio.dumps, {"a": {1, 2}}) == _outcome(json.dumps, {"a": {1, 2}})
    assert _outcome(jsonio.dumps, {"a": {1, 2}})[0] == "TypeError"


def _fresh_python(code: str) -> str:
    """Stripped stdout of ``code`` in a new interpreter (nothing imported yet)."""
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys\nsys.path[:0] = [{str(REPO)!r}]\n{code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_no_json_or_re_import_on_the_normal_path() -> None:
    code = (
        "from cni_plugins.spec import jsonio\n"
        'obj = jsonio.loads(b\'{"cniVersion": "1.0.0", "x": [1, 2.5, null]}\')\n'
        "jsonio.dumps(obj, indent=4)\n"
        "jsonio.dumps(obj, sort_keys=True, compact=True)\n"
        "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))\n"
    )
    assert _fresh_python(code) == "[]"


@pytest.mark.parametrize("data", MALFORMED, ids=lambda d: repr(d)[:30])
def test_errors_match_json_in_a_fresh_interpreter(data: str | bytes) -> None:
    """Without ``json`` imported the C scanner cannot build its error (it only
    looks in sys.modules); the error must still be json's."""
    code = (
        "from cni_plugins.spec import jsonio\n"
        f"data = {data!r}\n"
        "def outcome(fn):\n"
        "    try:\n"
        "        return 'ok', repr(fn(data))\n"
        "    except (ValueError, RecursionError) as exc:\n"
        "        return type(exc).__name__, str(exc)\n"
        "ours = outcome(jsonio.loads)\n"
        "import json\n"
        "print(ours[0] != 'ok' and ours == outcome(json.loads))\n"
    )
    assert _fresh_python(code) == "True"


def _last_position(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        out.pop(k, None)
        out[k] = v
    return out


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": 2, "a": 3}',
        '[{"x": {"k": 1, "K": 2, "k": 3}}, "s"]',
        '\ufeff{"a": 1}',  # left to json, which raises its BOM error
        '{"a": 1, "b": 2, "a": 3} x',
    ],
)
def test_go_key_order_matches_json_with_a_last_position_hook(text: str) -> None:
    got = _outcome(lambda t: jsonio.loads(t, go_key_order=True), text)
    assert got == _outcome(lambda t: json.loads(t, object_pairs_hook=_last_position), text)
    data = text.encode()
    assert _outcome(lambda d: jsonio.loads(d, go_key_order=True), data) == _outcome(
        lambda d: json.loads(d, object_pairs_hook=_last_position), data
    )


def test_go_key_order_golden() -> None:
    obj = jsonio.loads(b'{"a": 1, "b": 2, "a": 3}', go_key_order=True)
    assert list(obj.items()) == [("b", 2), ("a", 3)]
    assert list(jsonio.loads(b'{"a": 1, "b": 2, "a": 3}').items()) == [("a", 3), ("b", 2)]
