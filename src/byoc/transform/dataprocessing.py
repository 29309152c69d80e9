"""``DataProcessing``: ``InputFilter``, ``JoinSource`` and ``OutputFilter`` per record.

A record is parsed by its content type: a CSV line becomes the array of its
fields (text, as written), a JSON or JSON Lines record its JSON value. The
InputFilter picks what is sent; the container's answer is taken one line per
record (a batch's answer must have as many lines as the batch has records);
with ``JoinSource Input`` the *unfiltered* input is joined with the answer
(CSV: the output's fields after the input's; JSON: the answer under
``SageMakerOutput`` in an input object, else ``{"SageMakerInput": input,
"SageMakerOutput": answer}``); the OutputFilter then picks what is written.
JSON is written compact (no spaces), CSV with the minimal quoting.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DataProcessingError, JsonPathError
from . import jsonpath
from .split import Record

CSV = "text/csv"
JSON_TYPES = ("application/json", "application/jsonlines")
SUPPORTED = (CSV, *JSON_TYPES)
JOIN_SOURCES = ("None", "Input")
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def family(content_type: str | None) -> str:
    kind = media_type(content_type)
    if kind == CSV:
        return "csv"
    if kind in JSON_TYPES:
        return "json"
    return ""


@dataclass(frozen=True)
class DataProcessing:
    input_filter: jsonpath.JsonPath
    output_filter: jsonpath.JsonPath
    join_source: str
    #: ``csv`` or ``json``: how input records and answers are parsed.
    input_family: str
    output_family: str

    @classmethod
    def create(cls, input_filter: str, output_filter: str, join_source: str,
               content_type: str | None, accept: str | None) -> DataProcessing:
        """:raises DataProcessingError: for settings CreateTransformJob refuses."""
        if join_source not in JOIN_SOURCES:
            raise DataProcessingError(f"JoinSource must be None or Input, got {join_source!r}")
        try:
            parsed_in, parsed_out = jsonpath.parse(input_filter), jsonpath.parse(output_filter)
        except JsonPathError as exc:
            raise DataProcessingError(str(exc)) from None
        processing = cls(parsed_in, parsed_out, join_source, family(content_type),
                         family(accept or content_type))
        if processing.active:
            for name, value in (("ContentType", content_type), ("Accept", accept or content_type)):
                if not family(value):
                    raise DataProcessingError(
                        f"DataProcessing needs {name} {', '.join(SUPPORTED)}; got {value or 'none'}")
            if join_source == "Input" and processing.input_family != processing.output_family:
                raise DataProcessingError("JoinSource Input needs the input and the output in one"
                                          " format (CSV with CSV, JSON with JSON)")
        return processing

    @property
    def active(self) -> bool:
        return not (self.input_filter.is_identity and self.output_filter.is_identity
                    and self.join_source == "None")

    @property
    def per_record_output(self) -> bool:
        """True when the answer is taken apart record by record."""
        return self.join_source == "Input" or not self.output_filter.is_identity

    def request_piece(self, record: Record, multi: bool) -> bytes:
        """The bytes of *record* in a request body, after the InputFilter."""
        if self.input_filter.is_identity:
            return record.framed if multi else record.payload
        value = self.input_filter.apply(parse_record(record.payload, self.input_family, record))
        return serialise(value, self.input_family) + b"\n"

    def outputs(self, body: bytes, records: Sequence[Record]) -> list[bytes]:
        """One serialised output per record of the batch *body* answers.

        :raises DataProcessingError: when the answer has not one line per record, or a line or
            record cannot be parsed.
        """
        answers = split_answer(body, len(records))
        result = []
        for record, answer in zip(records, answers, strict=True):
            output = parse_text(answer, self.output_family, f"the answer to record {record.index}")
            if self.join_source == "Input":
                source = parse_record(record.payload, self.input_family, record)
                output = join(source, output, self.input_family)
            result.append(serialise(self.output_filter.apply(output), self.output_family))
        return result


def split_answer(body: bytes, count: int) -> list[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataProcessingError(f"the answer is not UTF-8 text (byte {exc.start})") from None
    text = text[:-1] if text.endswith("\n") else text
    text = text[:-1] if text.endswith("\r") else text
    if count == 1:
        return [text]
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if len(lines) != count:
        raise DataProcessingError(f"the answer has {len(lines)} line(s) for {count} records; with"
                                  " DataProcessing it needs one line per record")
    return lines


def parse_record(payload: bytes, kind: str, record: Record) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataProcessingError(f"record {record.index} is not UTF-8 text (byte {exc.start})"
                                  ) from None
    return parse_text(text.rstrip("\r\n"), kind, f"record {record.index}")


def parse_text(text: str, kind: str, what: str) -> Any:
    if kind == "csv":
        rows = list(csv.reader([text]))
        return rows[0] if rows else []
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataProcessingError(f"{what} is not JSON: {exc}") from None


def join(source: Any, output: Any, kind: str) -> Any:
    if kind == "csv":
        return [*_as_list(source), *_as_list(output)]
    if isinstance(source, dict):
        return {**source, OUTPUT_KEY: output}
    return {INPUT_KEY: source, OUTPUT_KEY: output}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def serialise(value: Any, kind: str) -> bytes:
    if kind == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(
            [_csv_cell(item) for item in _as_list(value)])
        return buffer.getvalue().encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _csv_cell(item: Any) -> str:
    if isinstance(item, str):
        return item
    return json.dumps(item, separators=(",", ":"))
