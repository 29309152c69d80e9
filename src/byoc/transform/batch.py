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

from .split import Record

STRATEGIES = ("SingleRecord", "MultiRecord")
MIB = 1024 * 1024


class RecordTooLargeError(ValueError):
    """A record alone exceeds MaxPayloadInMB."""

    def __init__(self, record: Record, size: int, limit: int) -> None:
        super().__init__(f"record {record.index} (byte {record.offset}) is {size} bytes, more than"
                         f" MaxPayloadInMB allows ({limit} bytes); raise --max-payload or split the"
                         " input finer")
        self.record = record


@dataclass(frozen=True)
class Batch:
    """One request: its body and the records in it."""

    #: 0-based position of the batch in its file.
    number: int
    body: bytes
    records: tuple[Record, ...]

    @property
    def first(self) -> int:
        return self.records[0].index

    @property
    def last(self) -> int:
        return self.records[-1].index

    def where(self) -> str:
        """``record 7`` or ``records 1-512``, with the byte offset of the first."""
        span = f"record {self.first}" if self.first == self.last else f"records {self.first}-{self.last}"
        return f"{span} (from byte {self.records[0].offset})"


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
            raise RecordTooLargeError(record, len(data), limit)
        if not multi:
            yield Batch(number, data, (record,))
            number += 1
            continue
        if pending and limit and size + len(data) > limit:
            yield Batch(number, b"".join(parts), tuple(pending))
            number += 1
            pending, parts, size = [], [], 0
        pending.append(record)
        parts.append(data)
        size += len(data)
    if pending:
        yield Batch(number, b"".join(parts), tuple(pending))
