"""A small CBOR (RFC 8949) codec for the ``smithy-rpc-v2-cbor`` protocol that current AWS SDKs speak to
CloudWatch.

Decodes every major type (definite and indefinite lengths, half/single/double floats, tags: tag 1 epoch
timestamps become floats, others give their content). Encodes the plain values panoflow answers with.
Malformed input raises :class:`CborError` (a ``ValueError``), never anything else.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["CborError", "decode", "encode"]

_MAX_DEPTH = 64
_BREAK = object()


class CborError(ValueError):
    """The bytes are not well-formed CBOR (or nest too deep)."""


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CborError(f"truncated CBOR at byte {self.pos}: {n} more byte(s) expected")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def argument(self, info: int) -> int | None:
        """The argument of an initial byte's additional info; None for indefinite length (31)."""
        if info < 24:
            return info
        if info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            return int.from_bytes(self.take(size), "big")
        if info == 31:
            return None
        raise CborError(f"reserved additional information {info} at byte {self.pos - 1}")

    def item(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise CborError("CBOR nests too deep")
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        arg = self.argument(info)
        if major == 0:
            return self._definite(arg)
        if major == 1:
            return -1 - self._definite(arg)
        if major in (2, 3):
            return self._string(major, arg, depth)
        if major == 4:
            if arg is None:
                items = []
                while (value := self.item(depth + 1)) is not _BREAK:
                    items.append(value)
                return items
            return [self._no_break(self.item(depth + 1)) for _ in range(arg)]
        if major == 5:
            out: dict[Any, Any] = {}
            count = 0
            while arg is None or count < arg:
                key = self.item(depth + 1)
                if key is _BREAK and arg is None:
                    break
                key = self._no_break(key)
                if isinstance(key, (list, dict)):
                    raise CborError("a CBOR map key must not be an array or a map")
                out[key] = self._no_break(self.item(depth + 1))
                count += 1
            return out
        # major 6: a tag; tag 1 is an epoch timestamp, the rest decode to their content
        value = self._no_break(self.item(depth + 1))
        if arg == 1 and not isinstance(value, (int, float)):
            raise CborError("CBOR tag 1 (epoch time) must wrap a number")
        return value

    @staticmethod
    def _definite(arg: int | None) -> int:
        if arg is None:
            raise CborError("an integer cannot have indefinite length")
        return arg

    @staticmethod
    def _no_break(value: Any) -> Any:
        if value is _BREAK:
            raise CborError("unexpected CBOR break outside an indefinite-length item")
        return value

    def _string(self, major: int, arg: int | None, depth: int) -> bytes | str:
        if arg is None:
            parts = []
            while (chunk := self.item(depth + 1)) is not _BREAK:
                if not isinstance(chunk, bytes if major == 2 else str):
                    raise CborError("an indefinite-length string holds a chunk of another type")
                parts.append(chunk)
            if major == 2:
                return b"".join(part for part in parts if isinstance(part, bytes))
            return "".join(part for part in parts if isinstance(part, str))
        raw = self.take(arg)
        if major == 2:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CborError(f"a CBOR text string is not UTF-8 (ending at byte {self.pos})") from None

    def _simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 24:
            self.take(1)
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            return _BREAK
        if info < 20:
            return None
        raise CborError(f"reserved simple value {info}")


def decode(data: bytes) -> Any:
    """The one CBOR item in ``data`` (trailing bytes are an error)."""
    reader = _Reader(bytes(data))
    value = reader._no_break(reader.item())
    if reader.pos != len(reader.data):
        raise CborError(f"{len(reader.data) - reader.pos} byte(s) after the CBOR item")
    return value


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise CborError("integer too large for CBOR")


def encode(value: Any) -> bytes:
    """CBOR for None, bools, ints, floats (as doubles), str, bytes, lists and dicts."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(value, (bytes, bytearray)):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    raise CborError(f"cannot encode {type(value).__name__} as CBOR")
