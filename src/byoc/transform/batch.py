"""Group records into request bodies by ``BatchStrategy`` and ``MaxPayloadInMB``.

``MultiRecord`` packs as many whole records into one body as fit in the
limit, measured in bytes (MiB, as SageMaker counts MaxPayloadInMB), never
across files. ``SingleRecord`` sends each record alone. A single record
larger than the limit is refused: the service fails that file.
``MaxPayloadInMB`` 0 means no limit (the body goes out chunked).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import RecordTooLargeError
from .split import Record

STRATEGIES = ("SingleRecord", "MultiRecord")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Batch:
    """One request: its body and which records of the file it holds."""

    #: 0-based position of the batch in its file.
    number: int
    body: bytes
    #: 1-based index of its first record in the file, and how many it holds.
    first: int
    count: int
    #: Byte offset of its first record in the file, and the bytes its records take there.
    offset: int
    size: int
    #: The records themselves (empty from :func:`line_batches`, which never splits them out).
    records: tuple[Record, ...] = ()

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def where(self) -> str:
        """``record 7`` or ``records 1-512``, with the byte offset of the first."""
        span = f"record {self.first}" if self.count == 1 else f"records {self.first}-{self.last}"
        return f"{span} (from byte {self.offset})"


def _batch(number: int, body: bytes, records: list[Record]) -> Batch:
    return Batch(number, body, records[0].index, len(records), records[0].offset,
                 sum(len(record.framed) for record in records), tuple(records))


def batches(records: Iterable[Record], strategy: str, max_payload_mb: int,
            body_of: Callable[[Record, bool], bytes] | None = None) -> Iterator[Batch]:
    """The request bodies for *records*.

    *body_of(record, multi)* gives a record's bytes in a body; by default the
    framed record for MultiRecord and the bare payload for SingleRecord.

    :raises RecordTooLargeError: when one record alone is over the limit.
    :raises ValueError: for an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown BatchStrategy {strategy!r}; use SingleRecord or MultiRecord")
    limit = max_payload_mb * MIB
    multi = strategy == "MultiRecord"
    piece = body_of or (lambda record, whole: record.framed if whole else record.payload)
    number = 0
    pending: list[Record] = []
    parts: list[bytes] = []
    size = 0
    for record in records:
        data = piece(record, multi)
        if limit and len(data) > limit:
            raise RecordTooLargeError(record.index, record.offset, len(data), limit)
        if not multi:
            yield _batch(number, data, [record])
            number += 1
            continue
        if pending and limit and size + len(data) > limit:
            yield _batch(number, b"".join(parts), pending)
            number += 1
            pending, parts, size = [], [], 0
        pending.append(record)
        parts.append(data)
        size += len(data)
    if pending:
        yield _batch(number, b"".join(parts), pending)


def line_batches(stream: BinaryIO, max_payload_mb: int) -> Iterator[Batch]:
    """MultiRecord batches of ``Line`` records, cut straight from the bytes.

    The same bodies as ``batches(split(stream, "Line"), "MultiRecord", ...)`` with the
    default pieces (whole lines packed greedily up to the limit), without making an object
    per line.

    :raises RecordTooLargeError: when one line alone is over the limit.
    """
    limit = max_payload_mb * MIB
    read_size = max(limit, MIB)
    data = b""
    eof = False
    number, index, offset = 0, 1, 0
    while True:
        while not eof and (not limit or len(data) <= limit):
            chunk = stream.read(read_size)
            eof = not chunk
            data += chunk
        if not data:
            return
        if eof and (not limit or len(data) <= limit):
            cut = len(data)
        else:
            newline = data.rfind(b"\n", 0, limit)
            if newline < 0:
                end = data.find(b"\n")
                while end < 0 and not eof:
                    chunk = stream.read(read_size)
                    eof = not chunk
                    data += chunk
                    end = data.find(b"\n")
                size = end + 1 if end >= 0 else len(data)
                record = Record(b"", b"", index, offset)
                raise RecordTooLargeError(record.index, record.offset, size, limit)
            cut = newline + 1
        body, data = data[:cut], data[cut:]
        count = body.count(b"\n") + (not body.endswith(b"\n"))
        yield Batch(number, body, index, count, offset, len(body))
        number += 1
        index += count
        offset += len(body)
