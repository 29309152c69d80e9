"""SageMaker's MetricDefinitions over a training job's log lines.

Each definition is ``{"Name", "Regex"}``. Every line of every host's stdout
and stderr is searched with each regex (Python's ``re`` dialect); the first
capture group is the value. A capture that is not a plain decimal number is
dropped without a word, as the service drops it; ``nan`` and ``inf`` are
dropped too, because CloudWatch, where the service puts metrics, takes no
NaN or Infinity. The last value of each metric is its ``FinalMetricDataList``
entry, as ``DescribeTrainingJob`` reports it.

A regex must not hold byoc hostage: one that repeats a group which itself
repeats without bound (``(a+)+``, whose backtracking grows exponentially
with the line) is refused up front; every search runs through the ``regex``
module, which lets go of the GIL while it matches (so Ctrl-C, SIGTERM and
``byoc local stop`` still work) and gives up after :data:`MATCH_TIMEOUT`
seconds; only the first :data:`MAX_LINE` characters of a line are searched,
and a definition whose searches time out :data:`MAX_TIMEOUTS` times is
switched off for the rest of the job (``metrics.json`` counts them under
``TimedOutLines``).
"""

from __future__ import annotations

import importlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import regex as _regex

from .errors import ConfigError
from .project import ProjectConfig

MAX_DEFINITIONS = 40
NAME_LIMIT = 255
REGEX_LIMIT = 500
METRICS_FILE = "metrics.json"
PLOT_FILE = "metrics.png"
#: Seconds one search of one line may take before it counts as no match.
MATCH_TIMEOUT = 0.5
#: Searches of a definition that may time out before it is switched off for the job.
MAX_TIMEOUTS = 3
#: Characters of a line that are searched (a metric is printed near the start of its line).
MAX_LINE = 65536
#: A number as the service reads it: sign, digits with an optional point, optional exponent.
NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: A regex for ``NAME=VALUE`` or ``NAME: VALUE`` that captures every number the service keeps,
#: and ``nan``/``inf`` (which it then drops).
VALUE_PATTERN = r"([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:nan|inf)\b)"


@dataclass(frozen=True)
class MetricDefinition:
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
        return {"Name": self.name, "Regex": self.regex}


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    timestamp: datetime
    host: str

    def as_api(self) -> dict[str, Any]:
        return {"MetricName": self.name, "Value": self.value, "Timestamp": iso(self.timestamp)}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


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


def from_options(values: Iterable[str]) -> list[MetricDefinition]:
    """``--metric NAME=REGEX`` (the first ``=`` splits). :raises ConfigError:"""
    result = []
    for value in values:
        name, sep, regex = value.partition("=")
        if not sep or not name:
            raise ConfigError(f"--metric takes NAME=REGEX, got {value!r}")
        result.append(definition(name, regex, "--metric"))
    return result


def from_config(config: ProjectConfig) -> list[MetricDefinition]:
    """The ``[[metric_definitions]]`` tables (``Name``, ``Regex``) of a project's ``byoc.toml``."""
    return definitions(config.metric_definitions, f"{config.path.name} metric_definitions")


def merge(base: Sequence[MetricDefinition], override: Sequence[MetricDefinition]
          ) -> list[MetricDefinition]:
    """*base* with the same-named entries of *override* replaced and the rest appended."""
    names = {item.name for item in override}
    return checked([item for item in base if item.name not in names] + list(override))


def parse_value(text: str) -> float | None:
    """The number *text* holds, or None when the service would drop it."""
    stripped = text.strip()
    if not NUMBER.fullmatch(stripped):
        return None
    value = float(stripped)
    return value if math.isfinite(value) else None


SampleHook = Callable[[Sample], None]


class MetricScanner:
    """Scans log lines as they arrive; thread-safe (each host's pump has its own thread)."""

    def __init__(self, items: Sequence[MetricDefinition], on_sample: SampleHook | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.definitions = list(items)
        self.on_sample = on_sample
        self.samples: list[Sample] = []
        self.dropped: dict[str, int] = {}
        #: Lines whose search gave up after MATCH_TIMEOUT, per metric.
        self.timed_out: dict[str, int] = {}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        #: Leave the plot to a later :meth:`plot` call (a tuner draws it once the job's slot is free).
        self.defer_plot = False

    def scan(self, host: str, line: str) -> list[Sample]:
        found: list[Sample] = []
        for item in self.definitions:
            if self.timed_out.get(item.name, 0) >= MAX_TIMEOUTS:
                continue
            try:
                match = item.search(line)
            except TimeoutError:
                with self._lock:
                    self.timed_out[item.name] = self.timed_out.get(item.name, 0) + 1
                continue
            if match is None or match.group(1) is None:
                continue
            value = parse_value(match.group(1))
            with self._lock:
                if value is None:
                    self.dropped[item.name] = self.dropped.get(item.name, 0) + 1
                    continue
                sample = Sample(item.name, value, self._clock(), host)
                self.samples.append(sample)
            found.append(sample)
            if self.on_sample is not None:
                self.on_sample(sample)
        return found

    def tee(self, sink: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """A log sink that scans each line, then passes it on to *sink*."""
        def both(host: str, line: str) -> None:
            self.scan(host, line)
            sink(host, line)
        return both

    def final(self) -> list[Sample]:
        """The last value of each metric (any host), in definition order."""
        with self._lock:
            last: dict[str, Sample] = {}
            for sample in self.samples:
                last[sample.name] = sample
        return [last[item.name] for item in self.definitions if item.name in last]

    def series(self, name: str) -> list[Sample]:
        with self._lock:
            return [sample for sample in self.samples if sample.name == name]

    def save(self, job_dir: Path, say: Callable[[str], None] | None = None) -> None:
        """Write ``metrics.json``, ``FinalMetricDataList`` into ``job.json`` and ``metrics.png``."""
        from . import jobrecord

        with self._lock:
            samples = list(self.samples)
            dropped = dict(self.dropped)
            timed_out = dict(self.timed_out)
        by_host: dict[str, list[dict[str, Any]]] = {}
        for sample in samples:
            by_host.setdefault(sample.host, []).append(sample.as_api())
        document = {"MetricDefinitions": [item.as_api() for item in self.definitions],
                    "Samples": by_host, "DroppedValues": dropped}
        if timed_out:
            document["TimedOutLines"] = timed_out
        for name, count in timed_out.items():
            if say is not None:
                say(f"warning: metric {name!r}: its Regex took over {MATCH_TIMEOUT} s on {count}"
                    " line(s), which count as no match" + (
                        "; it was switched off for the rest of the job" if count >= MAX_TIMEOUTS
                        else ""))
        (job_dir / METRICS_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        jobrecord.merge(job_dir, {
            "FinalMetricDataList": [sample.as_api() for sample in self.final()],
            "AlgorithmSpecification": {"MetricDefinitions": document["MetricDefinitions"]}})
        if not self.defer_plot:
            self.plot(job_dir, say)

    def plot(self, job_dir: Path, say: Callable[[str], None] | None = None) -> None:
        """Draw ``metrics.png`` (nothing when no metric was seen)."""
        from . import plots

        with self._lock:
            samples = list(self.samples)
        if samples:
            plots.metrics_over_time(samples, job_dir / PLOT_FILE, title=job_dir.name, say=say)


def load_samples(job_dir: Path) -> list[Sample]:
    """The samples a job's ``metrics.json`` holds (none when it has none)."""
    path = job_dir / METRICS_FILE
    if not path.is_file():
        return []
    document = json.loads(path.read_text(encoding="utf-8"))
    return [Sample(entry["MetricName"], float(entry["Value"]),
                   datetime.fromisoformat(entry["Timestamp"]), host)
            for host, entries in document.get("Samples", {}).items() for entry in entries]


def scanner_for(project: Any, options: Sequence[str]) -> MetricScanner | None:
    """The scanner for a ``byoc local train``: the project's definitions, then ``--metric``."""
    base = from_config(project.config) if project is not None else []
    items = merge(base, from_options(options))
    return MetricScanner(items) if items else None


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
