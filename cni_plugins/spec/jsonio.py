"""JSON in and out without importing the ``json`` package.

``json.decoder``, ``json.scanner`` and ``json.encoder`` compile regular
expressions at import time, which pulls in ``re``, ``enum``, ``functools`` and
``collections``: about 10 ms of every plugin exec, more than the plugin's own
work on a VERSION call.  The C accelerator ``_json`` that ``json`` itself uses
needs none of that, so this module drives it directly.

``loads`` and ``dumps`` give exactly what ``json.loads`` / ``json.dumps`` give
for the same arguments, errors included: any input this module does not handle
itself (bytes in another encoding, a byte-order mark, keys that are not
strings, types JSON has no form for) and every error message are handed to the
``json`` package, imported only then.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"
_INF = float("inf")
_CONSTANTS = {"NaN": float("nan"), "Infinity": _INF, "-Infinity": -_INF}


class _Context:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``,
    with ``json.loads``'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _last_position(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose repeated key sits where it last occurred (json.loads keeps
    the first position): Go's decoder assigns a struct field at every
    occurrence, so the last one decides also against case variants of it."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.pop(key, None)
        out[key] = value
    return out


class _GoOrderContext(_Context):
    object_pairs_hook = staticmethod(_last_position)  # type: ignore[assignment]


_scan_once = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed decoder
_scan_go_order = _json.make_scanner(_GoOrderContext())  # type: ignore[arg-type]
_quote = _json.encode_basestring_ascii


def loads(data: str | bytes | bytearray, *, go_key_order: bool = False) -> Any:
    """``json.loads(data)``; ``go_key_order`` puts a repeated key of an object
    at its last position instead of its first (for ``spec.gokeys``)."""
    hook = {"object_pairs_hook": _last_position} if go_key_order else {}
    scan = _scan_go_order if go_key_order else _scan_once
    if isinstance(data, (bytes, bytearray)):
        # json.loads sniffs UTF-16/32 from NULs in the first bytes and strips
        # a UTF-8 BOM; leave those rare inputs to it.
        if data[:3] == b"\xef\xbb\xbf" or b"\0" in data[:4]:
            return _stdlib().loads(data, **hook)
        text = data.decode("utf-8", "surrogatepass")
    elif isinstance(data, str):
        text = data
    else:
        return _stdlib().loads(data, **hook)
    if text.startswith("\ufeff"):
        return _stdlib().loads(text, **hook)  # raises its "Unexpected UTF-8 BOM" error
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        obj, end = scan(text, start)
    except Exception:  # noqa: BLE001 - json.loads raises the right error
        # StopIteration for "Expecting value"; for other syntax errors the 3.11
        # scanner looks up json.decoder.JSONDecodeError in sys.modules only and,
        # json not being imported, fails with a SystemError instead.
        return _stdlib().loads(text, **hook)
    if text[end:].strip(_WHITESPACE):
        return _stdlib().loads(text, **hook)  # raises its "Extra data" error
    return obj


def dumps(
    obj: Any, *, indent: int | None = None, sort_keys: bool = False, compact: bool = False
) -> str:
    """``json.dumps(obj, indent=indent, sort_keys=sort_keys)``; ``compact``
    stands for ``separators=(",", ":")``.  No circular-reference check: the
    plugins only encode trees they built."""
    separators = (",", ":") if compact else (",", ": ") if indent is not None else (", ", ": ")
    encoder = _Encoder(None if indent is None else " " * indent, separators, sort_keys)
    try:
        encoder.encode(obj, "\n")
    except _Unsupported:
        return str(_stdlib().dumps(obj, indent=indent, sort_keys=sort_keys, separators=separators))
    return "".join(encoder.out)


class _Unsupported(Exception):
    """A value this encoder leaves to ``json.dumps``."""


class _Encoder:
    def __init__(self, indent: str | None, separators: tuple[str, str], sort_keys: bool) -> None:
        self.indent = indent
        self.item_sep, self.key_sep = separators
        self.sort_keys = sort_keys
        self.out: list[str] = []

    def encode(self, obj: Any, newline: str) -> None:
        """Append ``obj``; ``newline`` is the line break plus the indentation
        of the enclosing level."""
        out = self.out
        if isinstance(obj, str):
            out.append(_quote(obj))
        elif obj is None:
            out.append("null")
        elif obj is True:  # before int: True is an int
            out.append("true")
        elif obj is False:
            out.append("false")
        elif type(obj) is int:
            out.append(int.__repr__(obj))
        elif type(obj) is float:
            out.append(_float(obj))
        elif isinstance(obj, (dict, list, tuple)):
            self._container(obj, newline)
        else:
            raise _Unsupported

    def _container(self, obj: dict[Any, Any] | list[Any] | tuple[Any, ...], newline: str) -> None:
        is_dict = isinstance(obj, dict)
        opening, closing = ("{", "}") if is_dict else ("[", "]")
        if not obj:
            self.out.append(opening + closing)
            return
        if self.indent is None:
            inner = newline = ""
        else:
            inner = newline + self.indent
        self.out.append(opening + inner)
        separator = self.item_sep + inner
        if isinstance(obj, dict):
            if not all(isinstance(key, str) for key in obj):
                raise _Unsupported
            items = sorted(obj.items()) if self.sort_keys else obj.items()
            for i, (key, value) in enumerate(items):
                if i:
                    self.out.append(separator)
                self.out.append(_quote(key) + self.key_sep)
                self.encode(value, inner)
        else:
            for i, value in enumerate(obj):
                if i:
                    self.out.append(separator)
                self.encode(value, inner)
        self.out.append(newline + closing)


def _float(value: float) -> str:
    if value in (_INF, -_INF):
        return "Infinity" if value > 0 else "-Infinity"
    if value == value:  # noqa: PLR0124 - false only for NaN
        return float.__repr__(value)
    return "NaN"


def _stdlib() -> Any:
    import json

    return json
