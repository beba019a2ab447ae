"""Character-class checks for names and config values, without ``re``.

Importing ``re`` costs ~5 ms per exec (it brings ``enum`` and ``functools``),
more than these checks ever take; each function states the pattern it stands for.
"""

from __future__ import annotations

_NAME_PUNCT = str.maketrans("", "", "_.-")
_HEX = frozenset("0123456789abcdefABCDEF")


def is_name(value: str, *, underscore_first: bool = False) -> bool:
    """``[A-Za-z0-9][A-Za-z0-9_.-]*`` (ASCII only); with ``underscore_first``
    the first character may also be ``_``."""
    if not value.isascii():
        return False  # str.isalnum is ASCII-only below this point
    first = value[:1]
    if not (first.isalnum() or (underscore_first and first == "_")):
        return False
    rest = value[1:].translate(_NAME_PUNCT)
    return not rest or rest.isalnum()


def has_control(value: str) -> bool:
    """Contains ``[\\x00-\\x1f\\x7f]``."""
    return any(c < " " or c == "\x7f" for c in value)


def is_mac(value: str) -> bool:
    """Six hex pairs separated all by ``:`` or all by ``-``."""
    if len(value) != 17 or value[2] not in ":-":
        return False
    pairs = value.split(value[2])
    return len(pairs) == 6 and all(len(p) == 2 and p[0] in _HEX and p[1] in _HEX for p in pairs)


def is_lower_hex(value: str) -> bool:
    """``[0-9a-f]*``."""
    return all(c in "0123456789abcdef" for c in value)
