"""Split an input file into records by ``SplitType``, as batch transform does.

Each :class:`Record` carries two byte strings: ``payload``, what a request
holds with ``SingleRecord`` (the bare record: binary framing and padding
removed), and ``framed``, what a ``MultiRecord`` batch holds (for ``Line``
the line with its terminator; for ``RecordIO`` and ``TFRecord`` the record
with its framing, so the container gets a stream it can parse).

RecordIO (MXNet's framing, little-endian)::

    uint32 magic 0xCED7230A | uint32 (cflag << 29) | length | payload | zero pad to 4 bytes

``cflag`` 0 is a whole record; 1, 2, 3 are the first, middle and last parts
of one record split over several frames. TFRecord::

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

with ``masked(c) = ((c >> 15 | c << 17) + 0xA282EAD8) mod 2**32``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import google_crc32c

from ..errors import SplitError

SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")
RECORDIO_MAGIC = 0xCED7230A
RECORDIO_LENGTH_MASK = (1 << 29) - 1
TFRECORD_MASK_DELTA = 0xA282EAD8
READ_SIZE = 1 << 20


@dataclass(frozen=True)
class Record:
    #: What SingleRecord sends: the bare record.
    payload: bytes
    #: What a MultiRecord batch holds: the record as it is in the file.
    framed: bytes
    #: 1-based position of the record in its file.
    index: int
    #: Byte offset of the record in the (decompressed) file.
    offset: int


def split(stream: BinaryIO, split_type: str) -> Iterator[Record]:
    """Yield the records of *stream*.

    :raises SplitError: for bytes that are not records of *split_type*.
    :raises ValueError: for an unknown split type.
    """
    if split_type == "None":
        data = stream.read()
        yield Record(data, data, 1, 0)
    elif split_type == "Line":
        yield from _lines(stream)
    elif split_type == "RecordIO":
        yield from _recordio(stream)
    elif split_type == "TFRecord":
        yield from _tfrecord(stream)
    else:
        raise ValueError(f"unknown SplitType {split_type!r}; use one of {', '.join(SPLIT_TYPES)}")


def _lines(stream: BinaryIO) -> Iterator[Record]:
    """Lines, each with its ``\\n`` (a last line without one is a record too)."""
    offset = 0
    for index, line in enumerate(stream, start=1):
        yield Record(line, line, index, offset)
        offset += len(line)


def _read_exact(stream: BinaryIO, size: int, what: str, offset: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise SplitError(f"truncated {what} at byte {offset}: expected {size} bytes, found {len(data)}")
    return data


def _recordio(stream: BinaryIO) -> Iterator[Record]:
    offset = 0
    index = 0
    while True:
        start = offset
        parts: list[bytes] = []
        frames: list[bytes] = []
        while True:
            header = stream.read(8)
            if not header and not parts:
                return
            if len(header) != 8:
                raise SplitError(f"truncated RecordIO header at byte {offset}: {len(header)} of 8 bytes")
            magic, word = struct.unpack("<II", header)
            if magic != RECORDIO_MAGIC:
                raise SplitError(f"no RecordIO magic number at byte {offset}"
                                 f" (found 0x{magic:08X}, expected 0x{RECORDIO_MAGIC:08X})")
            cflag, length = word >> 29, word & RECORDIO_LENGTH_MASK
            padding = (4 - length % 4) % 4
            body = _read_exact(stream, length + padding, "RecordIO record", offset)
            frames.append(header + body)
            offset += 8 + length + padding
            expected = (0, 1) if not parts else (2, 3)
            if cflag not in expected:
                raise SplitError(f"RecordIO frame at byte {offset - 8 - length - padding} has part flag"
                                 f" {cflag} where {' or '.join(map(str, expected))} belongs")
            parts.append(body[:length])
            if cflag in (0, 3):
                break
        index += 1
        yield Record(b"".join(parts), b"".join(frames), index, start)


def masked_crc32c(data: bytes) -> int:
    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + TFRECORD_MASK_DELTA) & 0xFFFFFFFF


def _tfrecord(stream: BinaryIO) -> Iterator[Record]:
    offset = 0
    index = 0
    while True:
        header = stream.read(12)
        if not header:
            return
        if len(header) != 12:
            raise SplitError(f"truncated TFRecord header at byte {offset}: {len(header)} of 12 bytes")
        length_bytes = header[:8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", header[8:])
        if masked_crc32c(length_bytes) != length_crc:
            raise SplitError(f"TFRecord length checksum mismatch at byte {offset}")
        body = _read_exact(stream, length + 4, "TFRecord record", offset)
        data = body[:length]
        (data_crc,) = struct.unpack("<I", body[length:])
        if masked_crc32c(data) != data_crc:
            raise SplitError(f"TFRecord data checksum mismatch in the record at byte {offset}")
        index += 1
        yield Record(data, header + body, index, offset)
        offset += 12 + length + 4


def recordio_frame(payload: bytes) -> bytes:
    """One RecordIO frame holding *payload* whole (cflag 0)."""
    if len(payload) > RECORDIO_LENGTH_MASK:
        raise ValueError("a RecordIO frame holds at most 2**29 - 1 bytes")
    return (struct.pack("<II", RECORDIO_MAGIC, len(payload)) + payload
            + b"\0" * ((4 - len(payload) % 4) % 4))


def tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord holding *data*."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc32c(length)) + data
            + struct.pack("<I", masked_crc32c(data)))
