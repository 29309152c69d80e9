"""Training data: every CSV file of a channel, label in column 0, no header."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A channel is missing, empty or holds rows that cannot be used."""


def channel_files(directory: Path) -> list[Path]:
    """Every regular file under *directory*, sorted, hidden ones skipped."""
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def read_labelled_csv(directory: Path, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the rows of every file in *directory* into ``(features, labels)``.

    :raises DataError: for a missing or empty channel, rows of differing width,
        an empty label or a feature that is not a finite number, naming the file
        and line.
    """
    if not directory.is_dir():
        raise DataError(f"channel {channel!r} has no data: {directory} does not exist")
    files = channel_files(directory)
    if not files:
        raise DataError(f"channel {channel!r} is empty: no files in {directory}")
    features: list[list[float]] = []
    labels: list[str] = []
    width = 0
    first = ""
    for path in files:
        try:
            # utf-8-sig: a byte-order mark (Excel adds one) must not join the first label
            with path.open(newline="", encoding="utf-8-sig") as handle:
                for lineno, row in enumerate(csv.reader(handle), start=1):
                    if not any(cell.strip() for cell in row):
                        continue
                    where = f"{path}:{lineno}"
                    if not width:
                        width, first = len(row), where
                        if width < 2:
                            raise DataError(
                                f"{where}: a row needs a label and at least one feature,"
                                f" found {width} column"
                            )
                    elif len(row) != width:
                        raise DataError(
                            f"{where}: expected {width} columns (as at {first}),"
                            f" found {len(row)}"
                        )
                    features.append(_numbers(row, where))
                    label = row[0].strip()
                    if not label:
                        raise DataError(f"{where}: the label (column 1) is empty")
                    labels.append(label)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise DataError(f"{path}: malformed CSV: {exc}") from None
    if not features:
        raise DataError(f"channel {channel!r} has no data rows in {len(files)} file(s)")
    return np.asarray(features, dtype=np.float64), np.asarray(labels)


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
