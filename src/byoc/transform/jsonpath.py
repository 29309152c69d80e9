"""The JSONPath subset of batch transform's ``InputFilter`` and ``OutputFilter``.

Supported, as the service documents them: ``$`` (the record), ``.name``,
``.*`` and ``[*]``, ``['a','b']`` (one or more quoted names), ``[i,j]``
(indexes; negative ones count from the end) and ``[start:end]`` (a slice,
either bound optional). An expression is at most 63 characters. A CSV row
is a JSON array of its fields, so only index forms apply to CSV.

A path made only of single names and single indexes selects one value and
yields it; any wildcard, list or slice yields the array of what it selects,
in document order (``$[0,-1]`` of ``["id42", "5.1", "0.93"]`` is
``["id42", "0.93"]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import JsonPathError

MAX_LENGTH = 63
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INT = re.compile(r"\s*(-?\d+)\s*")
_QUOTED = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*""")
_SLICE = re.compile(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*")


@dataclass(frozen=True)
class _Step:
    kind: str  # "name", "names", "wild", "index", "indexes", "slice"
    names: tuple[str, ...] = ()
    indexes: tuple[int, ...] = ()
    start: int | None = None
    end: int | None = None

    @property
    def single(self) -> bool:
        return self.kind in ("name", "index")


@dataclass(frozen=True)
class JsonPath:
    """A parsed expression; :meth:`apply` evaluates it on a JSON value."""

    text: str
    steps: tuple[_Step, ...]

    @property
    def is_identity(self) -> bool:
        return not self.steps

    @property
    def definite(self) -> bool:
        """True when it selects at most one value (no wildcard, list or slice)."""
        return all(step.single for step in self.steps)

    def apply(self, value: Any) -> Any:
        """The value(s) the path selects in *value*.

        :raises JsonPathError: when a definite path selects nothing.
        """
        nodes = [value]
        for step in self.steps:
            nodes = [found for node in nodes for found in _select(step, node)]
        if self.definite:
            if not nodes:
                raise JsonPathError(f"{self.text} selects nothing in this record")
            return nodes[0]
        return nodes


def parse(text: str) -> JsonPath:
    """Parse *text*; :raises JsonPathError: naming what is wrong and where."""
    if len(text) > MAX_LENGTH:
        raise JsonPathError(f"{text!r} is {len(text)} characters; SageMaker allows {MAX_LENGTH}")
    if not text.startswith("$"):
        raise JsonPathError(f"{text!r} must start with $")
    steps: list[_Step] = []
    at = 1
    while at < len(text):
        char = text[at]
        if char == ".":
            if text.startswith(".*", at):
                steps.append(_Step("wild"))
                at += 2
                continue
            match = _NAME.match(text, at + 1)
            if not match:
                raise JsonPathError(f"{text!r}: expected a name after '.' at position {at}")
            steps.append(_Step("name", names=(match.group(),)))
            at = match.end()
        elif char == "[":
            close = _closing_bracket(text, at)
            steps.append(_bracket(text, text[at + 1:close], at))
            at = close + 1
        else:
            raise JsonPathError(f"{text!r}: unexpected {char!r} at position {at};"
                                " use .name, .*, [*], ['name',...], [i,...] or [start:end]")
    return JsonPath(text, tuple(steps))


def _closing_bracket(text: str, start: int) -> int:
    quote = ""
    at = start + 1
    while at < len(text):
        char = text[at]
        if quote:
            if char == "\\":
                at += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "]":
            return at
        at += 1
    raise JsonPathError(f"{text!r}: '[' at position {start} is never closed")


def _bracket(text: str, inner: str, at: int) -> _Step:
    if inner.strip() == "*":
        return _Step("wild")
    if inner.strip().startswith(("'", '"')):
        names = []
        for part in _split_top(inner):
            match = _QUOTED.fullmatch(part)
            if not match:
                raise JsonPathError(f"{text!r}: {part.strip()!r} at position {at} is not a quoted name")
            raw = match.group(1) if match.group(1) is not None else match.group(2)
            names.append(re.sub(r"\\(.)", r"\1", raw))
        return _Step("name" if len(names) == 1 else "names", names=tuple(names))
    if ":" in inner:
        match = _SLICE.fullmatch(inner)
        if not match:
            raise JsonPathError(f"{text!r}: [{inner}] at position {at} is not a [start:end] slice")
        start, end = (int(group) if group is not None else None for group in match.groups())
        return _Step("slice", start=start, end=end)
    indexes = []
    for part in inner.split(","):
        match = _INT.fullmatch(part)
        if not match:
            raise JsonPathError(f"{text!r}: {part.strip() or 'an empty item'!r} at position {at}"
                                " is not an index; use [i], [i,j], [start:end], ['name'] or [*]")
        indexes.append(int(match.group(1)))
    return _Step("index" if len(indexes) == 1 else "indexes", indexes=tuple(indexes))


def _split_top(inner: str) -> list[str]:
    """Split on commas outside quotes."""
    parts, current, quote, escaped = [], "", "", False
    for char in inner:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            current += char
            quote = char
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _select(step: _Step, node: Any) -> list[Any]:
    if step.kind in ("name", "names"):
        if not isinstance(node, dict):
            return []
        return [node[name] for name in step.names if name in node]
    if step.kind == "wild":
        if isinstance(node, dict):
            return list(node.values())
        return list(node) if isinstance(node, list) else []
    if not isinstance(node, list):
        return []
    if step.kind == "slice":
        return node[step.start:step.end]
    size = len(node)
    return [node[index] for index in step.indexes if -size <= index < size]
