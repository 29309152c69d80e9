{#- A template may bring its own reader as templates/<framework>/dataset.py; else this one. -#}
{%- set override %}{% include cookiecutter.framework ~ "/dataset.py" ignore missing %}{% endset -%}
{%- if override %}{{ override }}{% else -%}
"""Yours: the training data reader, the one place to change for data that is not CSV.

``read(channel)`` turns a channel into what ``model.fit`` and ``model.metrics``
take. This one reads CSV: the label in column 1, numeric features after it, no
header (set ``HEADER_ROWS = 1`` for files that start with one). It works in
File, FastFile and Pipe mode alike: ``channel.sources()`` yields each input as
a binary stream, whatever the mode (see channels.py).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from channels import Channel, DataError

#: Lines to skip at the top of every file (or Pipe-mode stream or record).
HEADER_ROWS = 0


@dataclass(frozen=True)
class Table:
    """Rows of a channel: features (2-d floats) and their labels (1-d text)."""

    features: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def read(channel: Channel, like: Table | None = None) -> Table:
    """Read every input of *channel*; *like* is the training data, when reading another channel.

    :raises DataError: for a missing or empty channel, rows of differing width
        (or of another width than *like*), an empty label or a feature that is
        not a finite number, naming the file and line.
    """
    features: list[list[float]] = []
    labels: list[str] = []
    width = 0
    first = ""
    count = 0
    for source in channel.sources():
        count += 1
        # utf-8-sig: a byte-order mark (Excel adds one) must not join the first label
        text = io.TextIOWrapper(source.stream, encoding="utf-8-sig", newline="")
        try:
            for lineno, row in enumerate(csv.reader(text), start=1):
                if lineno <= HEADER_ROWS or not any(cell.strip() for cell in row):
                    continue
                where = f"{source.name}:{lineno}"
                if not width:
                    width, first = len(row), where
                    if width < 2:
                        raise DataError(f"{where}: a row needs a label and at least one feature,"
                                        f" found {width} column")
                elif len(row) != width:
                    raise DataError(f"{where}: expected {width} columns (as at {first}), found {len(row)}")
                features.append(_numbers(row, where))
                label = row[0].strip()
                if not label:
                    raise DataError(f"{where}: the label (column 1) is empty")
                labels.append(label)
        except UnicodeDecodeError as exc:
            raise DataError(f"{source.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise DataError(f"{source.name}: malformed CSV: {exc}") from None
        finally:
            text.detach()  # the channel closes the stream
    if not features:
        raise DataError(f"channel {channel.name!r} has no data rows in {count} input(s)")
    table = Table(np.asarray(features, dtype=np.float64), np.asarray(labels))
    if like is not None and table.features.shape[1] != like.features.shape[1]:
        raise DataError(f"channel {channel.name!r} has {table.features.shape[1]} feature columns,"
                        f" the training channel has {like.features.shape[1]}")
    return table


def _numbers(row: list[str], where: str) -> list[float]:
    values = []
    for column, cell in enumerate(row[1:], start=2):
        try:
            value = float(cell)
        except ValueError:
            raise DataError(f"{where}: column {column} is not a number: {cell.strip()[:40]!r}") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: column {column} is not a finite number: {cell.strip()[:40]!r}")
        values.append(value)
    return values
{% endif %}