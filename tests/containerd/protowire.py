"""Just enough of the protobuf wire format for the CRI messages the tests send.

A message is written as a list of ``(field number, value)`` pairs: ``int``/``bool``
become varints, ``str``/``bytes`` length-delimited, a nested list a nested
message.  Repeated fields are simply repeated pairs; a proto ``map`` is a
repeated ``{1: key, 2: value}`` message.  Decoding gives every field number's
raw values in wire order, and the caller says which ones are messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

Value: TypeAlias = "int | bool | str | bytes | Sequence[Field]"
Field: TypeAlias = "tuple[int, Value]"

_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5


def _varint(n: int) -> bytes:
    if n < 0:  # int32/int64 negatives are 10-byte two's complement
        n += 1 << 64
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def encode(fields: Sequence[Field]) -> bytes:
    out = bytearray()
    for number, value in fields:
        if isinstance(value, bool | int):
            out += _varint(number << 3 | _VARINT) + _varint(int(value))
            continue
        if isinstance(value, str):
            payload = value.encode()
        elif isinstance(value, bytes):
            payload = value
        else:
            payload = encode(value)
        out += _varint(number << 3 | _LEN) + _varint(len(payload)) + payload
    return bytes(out)


def string_map(number: int, mapping: Mapping[str, str]) -> list[Field]:
    return [(number, [(1, k), (2, v)]) for k, v in mapping.items()]


class Message:
    """A decoded message: raw values per field number."""

    def __init__(self, data: bytes) -> None:
        self.fields: dict[int, list[int | bytes]] = {}
        pos = 0
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            number, wire = key >> 3, key & 7
            value: int | bytes
            if wire == _VARINT:
                value, pos = _read_varint(data, pos)
            elif wire == _LEN:
                size, pos = _read_varint(data, pos)
                value, pos = data[pos : pos + size], pos + size
            elif wire == _I64:
                value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
            elif wire == _I32:
                value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
            else:
                raise ValueError(f"unsupported wire type {wire} for field {number}")
            self.fields.setdefault(number, []).append(value)

    def _raw(self, number: int) -> list[bytes]:
        return [v for v in self.fields.get(number, []) if isinstance(v, bytes)]

    def string(self, number: int) -> str:
        raw = self._raw(number)
        return raw[-1].decode() if raw else ""

    def strings(self, number: int) -> list[str]:
        return [v.decode() for v in self._raw(number)]

    def integer(self, number: int) -> int:
        values = [v for v in self.fields.get(number, []) if isinstance(v, int)]
        return values[-1] if values else 0

    def message(self, number: int) -> Message:
        raw = self._raw(number)
        return Message(raw[-1] if raw else b"")

    def messages(self, number: int) -> list[Message]:
        return [Message(v) for v in self._raw(number)]

    def string_map(self, number: int) -> dict[str, str]:
        return {m.string(1): m.string(2) for m in self.messages(number)}


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
