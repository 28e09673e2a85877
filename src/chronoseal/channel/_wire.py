"""Unambiguous byte encodings shared by the stream framing and the channel handshake.

Every variable-length field is length-prefixed with a fixed-width big-endian length, so two
different field tuples can never encode to the same bytes (no delimiter games in an AAD).
"""

from __future__ import annotations

import struct
from typing import Protocol

from chronoseal.errors import ChannelError

U8 = struct.Struct(">B")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")


class ByteSource(Protocol):
    """A binary reader: ``socket.makefile("rb")``, ``io.BytesIO``, an open file."""

    def read(self, n: int, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class ByteSink(Protocol):
    """A binary writer that consumes ``data`` before returning (a socket, ``io.BytesIO``)."""

    def write(self, data: bytes | memoryview, /) -> object: ...


def lp16(field: bytes) -> bytes:
    """Prefix ``field`` with its 16-bit length; refuses fields that do not fit."""
    if len(field) > 0xFFFF:
        raise ChannelError(
            f"a {len(field)}-byte field exceeds the 65535-byte limit of its length prefix",
            id="channel.encoding.field_too_long",
        )
    return U16.pack(len(field)) + field


def lp32(field: bytes) -> bytes:
    """Prefix ``field`` with its 32-bit length."""
    if len(field) > 0xFFFFFFFF:
        raise ChannelError("field exceeds 4 GiB", id="channel.encoding.field_too_long")
    return U32.pack(len(field)) + field


def read_exact(source: ByteSource, n: int) -> bytes | None:
    """Read exactly ``n`` bytes; ``None`` if the source ends first (the caller names the error)."""
    parts: list[bytes] = []
    remaining = n
    while remaining:
        part = source.read(remaining)
        if not part:
            return None
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def read_exact_into(source: ByteSource, view: memoryview) -> bool:
    """Fill ``view`` from ``source``; ``False`` if the source ends first."""
    filled = 0
    while filled < len(view):
        got = source.readinto(view[filled:])
        if not got:
            return False
        filled += got
    return True


class Reader:
    """Strict cursor over one in-memory message; ``fail`` names the error for short input."""

    def __init__(self, data: bytes, *, fail: type[ChannelError], error_id: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._fail = fail
        self._error_id = error_id

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise self._fail("message ends in the middle of a field", id=self._error_id)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return out

    def u64(self) -> int:
        return int(U64.unpack(self.take(8))[0])

    def lp16(self) -> bytes:
        return self.take(int(U16.unpack(self.take(2))[0]))

    def lp32(self) -> bytes:
        return self.take(int(U32.unpack(self.take(4))[0]))

    def end(self) -> None:
        if self._pos != len(self._data):
            raise self._fail("unexpected bytes after the last field", id=self._error_id)
