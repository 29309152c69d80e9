"""A training job's MetricDefinitions: the one :class:`MetricDefinition`, its checks, and how a
regex reads the numbers a training prints.

Each definition is ``{"Name", "Regex"}`` as CreateTrainingJob takes it; the scanner that searches a
running job's log lines with them is :mod:`byoc.local.scanner`. A regex must not hold byoc hostage: one
that repeats a group which itself repeats without bound (``(a+)+``) is refused up front, and every
search runs through the ``regex`` module with a timeout (:data:`MATCH_TIMEOUT`), on at most
:data:`MAX_LINE` characters of a line.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex as _regex

from ..errors import ConfigError
from ..project import ProjectConfig
from .limits import MAX_METRIC_DEFINITIONS, METRIC_NAME_LIMIT, METRIC_REGEX_LIMIT

MAX_DEFINITIONS = MAX_METRIC_DEFINITIONS
NAME_LIMIT = METRIC_NAME_LIMIT
REGEX_LIMIT = METRIC_REGEX_LIMIT
#: Seconds one search of one line may take before it counts as no match.
MATCH_TIMEOUT = 0.5
#: Characters of a line that are searched (a metric is printed near the start of its line).
MAX_LINE = 65536
#: A number as the service reads it: sign, digits with an optional point, optional exponent.
NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: A regex for ``NAME=VALUE`` or ``NAME: VALUE`` that captures every number the service keeps,
#: and ``nan``/``inf`` (which it then drops).
VALUE_PATTERN = r"([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:nan|inf)\b)"


@dataclass(frozen=True)
class MetricDefinition:
    """``{"Name", "Regex"}``: each log line is searched and group 1 is the value.

    Made by :func:`definition`, which checks it; two compare equal by name and regex.
    """

    name: str
    regex: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)
    #: The same regex compiled by the ``regex`` module, which scans with a timeout.
    matcher: Any = field(default=None, compare=False, repr=False)

    def search(self, line: str) -> Any:
        """The match in *line* (its first :data:`MAX_LINE` characters), or None.

        :raises TimeoutError: when the search took longer than :data:`MATCH_TIMEOUT`.
        """
        line = line[:MAX_LINE]
        if self.matcher is None:
            return self.pattern.search(line)
        return self.matcher.search(line, timeout=MATCH_TIMEOUT, concurrent=True)

    def as_api(self) -> dict[str, str]:
        """The ``{"Name", "Regex"}`` entry of a request."""
        return {"Name": self.name, "Regex": self.regex}

    request = as_api



def definition(name: str, regex: str, where: str = "MetricDefinitions") -> MetricDefinition:
    """One definition checked as CreateTrainingJob checks it. :raises ConfigError:"""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_LIMIT:
        raise ConfigError(f"{where}: Name must be 1-{NAME_LIMIT} characters, got {name!r}")
    if not isinstance(regex, str) or not 1 <= len(regex) <= REGEX_LIMIT:
        shown = regex if not isinstance(regex, str) else f"{len(regex)} characters"
        raise ConfigError(f"{where} {name!r}: Regex must be 1-{REGEX_LIMIT} characters, got {shown}")
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"{where} {name!r}: Regex does not compile: {exc}") from exc
    if pattern.groups < 1:
        raise ConfigError(f"{where} {name!r}: Regex has no capture group; the first group is the value")
    if nested_repeat(regex):
        raise ConfigError(f"{where} {name!r}: Regex repeats a group that itself repeats without"
                          " bound, as (a+)+ does: its backtracking grows exponentially on a line"
                          " that almost matches; repeat the inner part once (a+, not (a+)+)")
    try:
        matcher = _regex.compile(regex)
    except _regex.error:  # a construct only Python's re reads: searched without a timeout
        matcher = None
    return MetricDefinition(name, regex, pattern, matcher)


def nested_repeat(regex: str) -> bool:
    """Whether *regex* repeats without bound a part that itself holds a repeat without bound
    (``(a+)+``, ``(x*y)*``, ``(?:a|b+)*``): the shape of catastrophic backtracking."""
    parser: Any = importlib.import_module("re._parser")
    repeats = (parser.MAX_REPEAT, parser.MIN_REPEAT)

    def unbounded(items: Any) -> bool:  # an atomic group never backtracks into itself
        return any((op in repeats and value[1] == parser.MAXREPEAT)
                   or (op != parser.ATOMIC_GROUP
                       and any(unbounded(part) for part in _parts(value, parser.SubPattern)))
                   for op, value in items)

    def nested(items: Any) -> bool:
        return any((op in repeats and value[1] == parser.MAXREPEAT and unbounded(value[2]))
                   or any(nested(part) for part in _parts(value, parser.SubPattern))
                   for op, value in items)

    try:
        return nested(parser.parse(regex))
    except re.error:
        return False


def _parts(value: Any, kind: type) -> Iterable[Any]:
    """The sub-patterns inside one node's argument of a parsed regex."""
    if isinstance(value, kind):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _parts(item, kind)


def definitions(items: Iterable[Mapping[str, Any]], where: str = "MetricDefinitions"
                ) -> list[MetricDefinition]:
    """``[{"Name", "Regex"}, ...]`` checked: at most 40, unique names. :raises ConfigError:"""
    result: list[MetricDefinition] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) != {"Name", "Regex"}:
            raise ConfigError(f"{where}[{index}] must have exactly the keys Name and Regex")
        result.append(definition(item["Name"], item["Regex"], where))
    return checked(result, where)


def checked(items: Sequence[MetricDefinition], where: str = "MetricDefinitions"
            ) -> list[MetricDefinition]:
    if len(items) > MAX_DEFINITIONS:
        raise ConfigError(f"{where}: {len(items)} metric definitions; SageMaker allows at most"
                          f" {MAX_DEFINITIONS}")
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ConfigError(f"{where}: metric {item.name!r} is defined twice")
        seen.add(item.name)
    return list(items)


def from_config(config: ProjectConfig) -> list[MetricDefinition]:
    """The ``[[metric_definitions]]`` tables (``Name``, ``Regex``) of a project's ``byoc.toml``."""
    return definitions(config.metric_definitions, f"{config.path.name} metric_definitions")


def parse_value(text: str) -> float | None:
    """The number *text* holds, or None when the service would drop it."""
    stripped = text.strip()
    if not NUMBER.fullmatch(stripped):
        return None
    value = float(stripped)
    return value if math.isfinite(value) else None



#: What a training log may print for a metric, and the value SageMaker keeps (None: dropped).
SAMPLE_VALUES: tuple[tuple[str, float | None], ...] = (
    ("0.5", 0.5), ("3", 3.0), ("1e-05", 1e-05), ("-0.3", -0.3), ("+2.5E+03", 2500.0),
    (".75", 0.75), ("6.02e23", 6.02e23), ("nan", None), ("inf", None), ("-inf", None),
)


def regex_problems(regex: str, render: Callable[[str], str]) -> list[str]:
    """How *regex* misreads the lines a training prints (``render(value)`` gives one line).

    Every value of :data:`SAMPLE_VALUES` must be captured whole by the first
    group, so that a number reads as itself and ``nan``/``inf`` are seen and
    dropped, not cut short into another number. An empty list means it reads
    them all.
    """
    pattern = definition("check", regex).pattern
    problems = []
    for text, expected in SAMPLE_VALUES:
        line = render(text)
        match = pattern.search(line)
        captured = match.group(1) if match else None
        if captured != text:
            problems.append(f"{line!r}: captures {captured!r}, not {text!r}")
        elif parse_value(captured) != expected:
            problems.append(f"{line!r}: reads {parse_value(captured)!r}, not {expected!r}")
    return problems
