"""Yours: the training data reader, CSV or libsvm as the channel's ContentType says.

``read(channel)`` turns a channel into what ``model.fit`` and ``model.metrics``
take, as SageMaker's XGBoost reads its input:

- ``text/csv`` (or no ContentType): the label in column 1, numeric features
  after it, no header; an empty cell is a missing value (NaN);
- ``text/libsvm``: ``<label> <index>:<value> ...`` per line, the index being
  the feature's column (from 0, as XGBoost reads libsvm); a feature a row does
  not list is missing.

It works in File, FastFile and Pipe mode alike: ``channel.sources()`` yields
each input as a binary stream, whatever the mode (see channels.py).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from channels import Channel, DataError

CSV_TYPES = ("text/csv", "csv")
LIBSVM_TYPES = ("text/libsvm", "text/x-libsvm", "libsvm")


@dataclass(frozen=True)
class Table:
    """Rows of a channel: features (2-d floats, NaN where missing) and their labels (1-d text)."""

    features: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def read(channel: Channel, like: Table | None = None) -> Table:
    """Read every input of *channel*; *like* is the training data, when reading another channel.

    :raises DataError: for a missing or empty channel, an unknown ContentType,
        rows of differing width, an empty label or a value that is not a number,
        naming the file and line.
    """
    kind = (channel.content_type or "text/csv").split(";", 1)[0].strip().lower()
    if kind in CSV_TYPES:
        labels, rows, width = _read_csv(channel)
    elif kind in LIBSVM_TYPES:
        labels, rows, width = _read_libsvm(channel)
    else:
        raise DataError(f"channel {channel.name!r}: ContentType {channel.content_type!r} is not"
                        f" supported; use text/csv or text/libsvm")
    if not labels:
        raise DataError(f"channel {channel.name!r} has no data rows")
    if like is not None:
        if kind in CSV_TYPES and width != like.features.shape[1]:
            raise DataError(f"channel {channel.name!r} has {width} feature columns,"
                            f" the training channel has {like.features.shape[1]}")
        width = max(width, like.features.shape[1])
    features = np.full((len(rows), width), np.nan)
    for number, row in enumerate(rows):
        for column, value in row.items():
            features[number, column] = value
    return Table(features, np.asarray(labels))


def _read_csv(channel: Channel) -> tuple[list[str], list[dict[int, float]], int]:
    labels: list[str] = []
    rows: list[dict[int, float]] = []
    width = 0
    for name, lineno, line in _lines(channel):
        row = next(csv.reader([line]))
        where = f"{name}:{lineno}"
        if not width:
            width = len(row)
            if width < 2:
                raise DataError(f"{where}: a row needs a label and at least one feature")
        elif len(row) != width:
            raise DataError(f"{where}: expected {width} columns, found {len(row)}")
        labels.append(_label(row[0], where))
        rows.append({column: _number(cell, where, column + 2)
                     for column, cell in enumerate(row[1:]) if cell.strip()})
    return labels, rows, width - 1


def _read_libsvm(channel: Channel) -> tuple[list[str], list[dict[int, float]], int]:
    labels: list[str] = []
    rows: list[dict[int, float]] = []
    width = 0
    for name, lineno, line in _lines(channel):
        where = f"{name}:{lineno}"
        label, *pairs = line.split("#", 1)[0].split()
        labels.append(_label(label, where))
        row: dict[int, float] = {}
        for pair in pairs:
            index, colon, value = pair.partition(":")
            if not colon or not index.isdigit():
                raise DataError(f"{where}: expected <index>:<value>, found {pair[:40]!r}")
            row[int(index)] = _number(value, where, int(index))
        width = max(width, max(row, default=-1) + 1)
        rows.append(row)
    return labels, rows, width


def _lines(channel: Channel) -> Iterator[tuple[str, int, str]]:
    """``(source, line number, line)`` for every non-blank line of every input."""
    for source in channel.sources():
        text = io.TextIOWrapper(source.stream, encoding="utf-8-sig", newline="")
        try:
            for lineno, line in enumerate(text, start=1):
                if line.strip():
                    yield source.name, lineno, line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise DataError(f"{source.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        finally:
            text.detach()  # the channel closes the stream


def _label(text: str, where: str) -> str:
    label = text.strip()
    if not label:
        raise DataError(f"{where}: the label is empty")
    return label


def _number(text: str, where: str, column: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: column {column} is not a number: {text.strip()[:40]!r}") from None
    if math.isinf(value):
        raise DataError(f"{where}: column {column} is not a finite number: {text.strip()[:40]!r}")
    return value
