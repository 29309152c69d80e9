"""RecordIO framing as SageMaker writes it when ``RecordWrapperType`` is ``RecordIO``.

A record is ``magic | lrec | payload | zero padding to 4 bytes``, both words
uint32 little-endian; ``lrec`` holds the payload length in its low 29 bits and
a continuation flag in its top 3 (0 whole record, 1 first part, 2 middle, 3 last).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

MAGIC = 0xCED7230A
LENGTH_BITS = 29
MAX_PART = (1 << LENGTH_BITS) - 1
WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3
_WORDS = struct.Struct("<II")


def header(length: int, flag: int = WHOLE) -> bytes:
    """The 8 bytes before a payload of *length* bytes."""
    if not 0 <= length <= MAX_PART:
        raise ValueError(f"a RecordIO part holds at most {MAX_PART} bytes, not {length}")
    return _WORDS.pack(MAGIC, (flag << LENGTH_BITS) | length)


def padding(length: int) -> bytes:
    """The zero bytes after a payload of *length* bytes."""
    return bytes((4 - length % 4) % 4)


def parts(length: int, max_part: int = MAX_PART) -> Iterator[tuple[int, int, int]]:
    """``(offset, size, flag)`` of each part of a *length*-byte object.

    Objects up to ``MAX_PART`` bytes make one whole record; longer ones are cut
    into parts flagged first, middle.., last, as the dmlc RecordIO format does.
    """
    if length <= max_part:
        yield 0, length, WHOLE
        return
    offset = 0
    while offset < length:
        size = min(max_part, length - offset)
        flag = FIRST if offset == 0 else (LAST if offset + size == length else MIDDLE)
        yield offset, size, flag
        offset += size


def frame(payload: bytes) -> bytes:
    """*payload* as RecordIO record(s)."""
    out = bytearray()
    for offset, size, flag in parts(len(payload)):
        out += header(size, flag) + payload[offset:offset + size] + padding(size)
    return bytes(out)
