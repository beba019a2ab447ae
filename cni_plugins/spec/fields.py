"""Typed getters for config values; every error is code 7 and names its key."""

from __future__ import annotations

from cni_plugins.spec.errors import InvalidConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def typename(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), "object" if isinstance(value, dict) else type(value).__name__
    )


def optional_bool(raw: Mapping[str, Any], key: str) -> bool | None:
    """``raw[key]`` as a boolean; None when absent or null."""
    value = raw.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidConfig(f"{key}: must be a boolean, got {typename(value)} {value!r}")


def boolean(raw: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = optional_bool(raw, key)
    return default if value is None else value


def integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(f"{key}: must be an integer, got {typename(value)} {value!r}")
    return value
