"""Request bodies in, predictions out: edit decode/encode for requests that are not numeric rows.

Requests are rows of numeric features (no label). Responses hold one
prediction per row: CSV lines, ``{"predictions": [...]}`` for JSON, a value
per line for JSON Lines, a 1-d array for NumPy.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import math

import numpy as np

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"
SUPPORTED = (CSV, JSON, JSONLINES, NPY)
ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES}
#: Up to this many values a request is "small": checked value by value in Python.
SMALL = 64


class PayloadError(Exception):
    """The request cannot be answered; ``status`` is the HTTP status to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def media_type(header: str | None) -> str:
    """``'Text/CSV; charset=utf-8'`` -> ``'text/csv'``."""
    kind = (header or "").split(";", 1)[0].strip().lower()
    return ALIASES.get(kind, kind)


@functools.lru_cache(maxsize=64)  # a header's meaning depends on nothing else: parse it once
def request_type(header: str | None) -> str:
    kind = media_type(header)
    if kind not in SUPPORTED:
        shown = repr(header) if header else "none"
        raise PayloadError(415, f"unsupported Content-Type {shown}; use one of {', '.join(SUPPORTED)}")
    return kind


def response_type(accept: str | None, request_kind: str) -> str:
    """Pick the response type from *accept*; missing or ``*/*`` means *request_kind*.

    ``text/*`` and ``application/*`` mean *request_kind* if it matches, else the
    first supported type that does.
    """
    if not accept or accept == "*/*":  # most clients: nothing to parse
        return request_kind
    return _negotiated(accept, request_kind)


@functools.lru_cache(maxsize=64)
def _negotiated(accept: str, request_kind: str) -> str:
    if not accept.strip():
        return request_kind
    ranked = []
    for position, part in enumerate(accept.split(",")):
        kind, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, media_type(kind)))
    for quality, _, kind in sorted(ranked):
        if quality == 0:
            continue
        if kind in ("*/*", ""):
            return request_kind
        if kind in SUPPORTED:
            return kind
        if kind.endswith("/*"):
            family = kind[:-1]
            matching = [option for option in (request_kind, *SUPPORTED) if option.startswith(family)]
            if matching:
                return matching[0]
    raise PayloadError(406, f"cannot answer with Accept {accept!r}; use one of {', '.join(SUPPORTED)}")


def decode(body: bytes, kind: str, n_features: int | None, *, accepts_missing: bool = False
           ) -> np.ndarray:
    """Parse *body* into a 2-d float array of *n_features* columns (any width if None).

    Empty CSV cells, NaN and JSON ``null`` are missing values: NaN in the array
    when *accepts_missing*, else refused.

    :raises PayloadError: 400 for empty, malformed or infinite data, missing
        values the model does not accept, and rows of the wrong width.
    """
    if not body.strip():
        raise PayloadError(400, "the request body is empty")
    if kind == NPY:
        rows = _npy_rows(body)
    else:
        try:
            # a byte-order mark is not data (as the utf-8-sig codec reads it, which is slower)
            text = (body[len(codecs.BOM_UTF8):] if body.startswith(codecs.BOM_UTF8) else body).decode()
        except UnicodeDecodeError as exc:
            raise PayloadError(400, f"the body is not UTF-8 text (byte {exc.start})") from None
        if not text.strip():  # a byte-order mark alone
            raise PayloadError(400, "the request body is empty")
        rows = _csv_rows(text, n_features) if kind == CSV else _json_rows(text, kind)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise PayloadError(400, "expected one or more rows of numbers")
    if n_features is not None and rows.shape[1] != n_features:
        raise PayloadError(400, f"expected {n_features} features per row, got {rows.shape[1]}")
    if not _all_finite(rows):
        infinite = np.isinf(rows)
        if infinite.any():
            row = int(np.argwhere(infinite)[0][0]) + 1
            raise PayloadError(400, f"row {row}: features must be finite numbers (no Inf)")
        if not accepts_missing:
            row = int(np.argwhere(np.isnan(rows))[0][0]) + 1
            raise PayloadError(400, f"row {row}: a missing value (empty cell, NaN or null);"
                                    " this model does not accept missing values")
    return rows


def _csv_rows(text: str, n_features: int | None) -> np.ndarray:
    """RFC 4180 CSV rows; unquoted bodies (the common case) take a faster path."""
    if '"' in text:
        try:
            table = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
        except csv.Error as exc:
            raise PayloadError(400, f"malformed CSV: {exc}") from None
        widths = [len(row) for row in table]
        cells = [cell for row in table for cell in row]
    else:
        line = text.rstrip("\r\n")
        if line.isprintable() and line.strip():  # one row, the commonest body: no line break inside
            widths = [line.count(",") + 1]
            cells = line.split(",")
        else:
            lines = [line for line in text.splitlines() if line.strip()]
            widths = [line.count(",") + 1 for line in lines]
            cells = ",".join(lines).split(",")
    width = n_features if n_features is not None else (widths[0] if widths else 0)
    for number, found in enumerate(widths, start=1):
        if found != width:
            raise PayloadError(400, f"row {number}: expected {width} features, got {found}")
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = np.array([_cell(cell, index // max(width, 1) + 1) for index, cell in enumerate(cells)],
                          dtype=np.float64)
    return values.reshape(len(widths), width)


def _all_finite(rows: np.ndarray) -> bool:
    """No NaN or Inf in *rows*; a few values are checked in Python, faster than numpy's ufunc."""
    if rows.size <= SMALL:
        return all(map(math.isfinite, rows.ravel().tolist()))
    return bool(np.isfinite(rows).all())


def _cell(cell: str, row: int) -> float:
    """One CSV cell as a float, an empty one as NaN (a missing value)."""
    text = cell.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise PayloadError(400, f"row {row}: {text[:40]!r} is not a number") from None


def _json_rows(text: str, kind: str) -> np.ndarray:
    try:
        if kind == JSON:
            data = json.loads(text)
            if isinstance(data, dict):
                if "instances" not in data:
                    raise PayloadError(400, 'expected a list of rows or {"instances": [...]}')
                data = data["instances"]
        else:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
            data = [row["features"] if isinstance(row, dict) and "features" in row else row
                    for row in data]
    except json.JSONDecodeError as exc:
        raise PayloadError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(400, "malformed JSON: nested too deeply") from None
    if kind == JSON and isinstance(data, list) and data and not isinstance(data[0], list):
        data = [data]  # one row
    try:
        return np.array(data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # OverflowError: an integer past float's range
        raise PayloadError(400, "expected rows of numbers, all of the same length") from None


def _npy_rows(body: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise PayloadError(400, f"not a NumPy .npy array: {exc}") from None
    except MemoryError:  # the header claims a shape far larger than the body
        raise PayloadError(400, "not a NumPy .npy array: its header claims too many values") from None
    if not isinstance(array, np.ndarray):  # np.load also opens .npz archives
        array.close()
        raise PayloadError(400, "expected a .npy array, got an .npz archive")
    if array.dtype.kind not in "biuf":
        raise PayloadError(400, f"expected a numeric array, got dtype {array.dtype}")
    rows = array.astype(np.float64)
    return rows.reshape(1, -1) if rows.ndim == 1 else rows


def encode(predictions: np.ndarray, kind: str) -> bytes:
    """Serialise one prediction per row as *kind*."""
    values = predictions.tolist()
    if kind == CSV:
        return ("\n".join(str(value) for value in values) + "\n").encode()
    if kind == JSON:
        return json.dumps({"predictions": values}).encode()
    if kind == JSONLINES:
        return ("\n".join(json.dumps(value) for value in values) + "\n").encode()
    buffer = io.BytesIO()
    np.save(buffer, predictions, allow_pickle=False)
    return buffer.getvalue()
