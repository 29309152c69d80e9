"""Runtime: you should not need to edit this. A training channel's inputs, in any input mode.

SageMaker delivers a channel in one of three input modes (``TrainingInputMode``
in ``inputdataconfig.json``):

- ``File``: the channel's objects are files under ``/opt/ml/input/data/<channel>/``;
- ``FastFile``: the same view, streamed from S3 as it is read;
- ``Pipe``: no directory, but one named pipe per epoch, ``<channel>_0``,
  ``<channel>_1``, ... The reader opens the next one when it wants another
  pass over the data; it may appear a little later, so it is polled for. With
  ``RecordWrapperType: RecordIO`` each S3 object arrives as one RecordIO record.

:meth:`Channel.sources` hides the difference: it yields each input as a named
binary stream, so a reader (dataset.py) works in every mode unchanged.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

INPUT_MODES = ("File", "FastFile", "Pipe")
#: How often a Pipe-mode reader looks for the next epoch's named pipe.
PIPE_POLL_SECONDS = 0.1
#: RecordIO: each record starts with this magic number, then its length (little-endian uint32s).
RECORDIO_MAGIC = 0xCED7230A
_LENGTH_MASK = (1 << 29) - 1


class DataError(ValueError):
    """A channel is missing, empty or holds data that cannot be used."""


@dataclass(frozen=True)
class Source:
    """One input of a channel: a file, a named pipe, or a record of one."""

    name: str  # for messages: a path, or a path and record number
    stream: BinaryIO


@dataclass(frozen=True)
class Channel:
    """A channel as ``inputdataconfig.json`` configures it."""

    name: str
    data_dir: Path  # /opt/ml/input/data
    input_mode: str = "File"
    record_wrapper: str = "None"
    content_type: str | None = None

    @classmethod
    def from_config(cls, name: str, entry: Any, data_dir: Path) -> Channel:
        """:raises DataError: if *entry* is not a channel's config or names an unknown mode."""
        entry = entry or {}
        if not isinstance(entry, Mapping):
            raise DataError(f"channel {name!r}: its inputdataconfig.json entry must be a JSON object")
        mode = entry.get("TrainingInputMode", "File")
        if mode not in INPUT_MODES:
            raise DataError(f"channel {name!r}: input mode {mode!r} is not supported;"
                            f" use one of {', '.join(INPUT_MODES)}")
        return cls(name=name, data_dir=data_dir, input_mode=mode,
                   record_wrapper=str(entry.get("RecordWrapperType") or "None"),
                   content_type=entry.get("ContentType"))

    @property
    def directory(self) -> Path:
        """Where File and FastFile mode put the channel's files."""
        return self.data_dir / self.name

    def pipe(self, epoch: int) -> Path:
        """The named pipe of *epoch* in Pipe mode."""
        return self.data_dir / f"{self.name}_{epoch}"

    def sources(self, epoch: int = 0) -> Iterator[Source]:
        """Each input of *epoch*, open for reading; each is closed when the next is asked for.

        File and FastFile mode give every file, sorted, for any epoch. Pipe mode
        waits for the epoch's named pipe and gives it whole, or record by record
        when RecordIO-wrapped.

        :raises DataError: for a missing or empty channel directory, or bad RecordIO.
        """
        if self.input_mode == "Pipe":
            path = self.pipe(epoch)
            while not path.exists():
                time.sleep(PIPE_POLL_SECONDS)  # SIGTERM still stops the job here
            with path.open("rb") as stream:
                if self.record_wrapper == "RecordIO":
                    for number, record in enumerate(read_recordio(stream, str(path)), start=1):
                        yield Source(f"{path} record {number}", io.BytesIO(record))
                else:
                    yield Source(str(path), stream)
            return
        for path in self.files():
            with path.open("rb") as stream:
                yield Source(str(path), stream)

    def files(self) -> list[Path]:
        """File and FastFile mode: every regular file, sorted, hidden ones skipped."""
        directory = self.directory
        if not directory.is_dir():
            raise DataError(f"channel {self.name!r} has no data: {directory} does not exist")
        found = sorted(
            path for path in directory.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
        )
        if not found:
            raise DataError(f"channel {self.name!r} is empty: no files in {directory}")
        return found


def read_recordio(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """The records of a RecordIO stream; multi-part records are joined.

    :raises DataError: if a header lacks the magic number or the stream ends mid-record.
    """
    parts: list[bytes] = []
    while True:
        header = _read_exactly(stream, 8, name, allow_eof=not parts)
        if not header:
            return
        magic, word = struct.unpack("<II", header)
        if magic != RECORDIO_MAGIC:
            raise DataError(f"{name}: not RecordIO: a record header does not start with the magic number")
        length, flag = word & _LENGTH_MASK, word >> 29
        parts.append(_read_exactly(stream, length, name))
        _read_exactly(stream, (4 - length % 4) % 4, name)  # padding
        if flag in (0, 3):  # a whole record, or the last part of one
            yield b"".join(parts)
            parts = []


def _read_exactly(stream: BinaryIO, size: int, name: str, allow_eof: bool = False) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            if allow_eof and not data:
                return b""
            raise DataError(f"{name}: the RecordIO stream ends in the middle of a record")
        data += chunk
    return data
