"""A running job's log lines searched with its MetricDefinitions (:mod:`byoc.job.metrics`).

Every line of every host's stdout
and stderr is searched with each regex (Python's ``re`` dialect); the first
capture group is the value. A capture that is not a plain decimal number is
dropped without a word, as the service drops it; ``nan`` and ``inf`` are
dropped too, because CloudWatch, where the service puts metrics, takes no
NaN or Infinity. The last value of each metric is its ``FinalMetricDataList``
entry, as ``DescribeTrainingJob`` reports it.

Each sample keeps its time and its step: the ordinal (from 0) of that metric's
values on that host, as ``metrics.json`` saves them (``Timestamp``, ``Step``);
a log line names no epoch the scanner could trust, and the nth value of a
metric is what a plot or an MLflow run takes as its step.

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

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..job.metrics import MATCH_TIMEOUT, MAX_LINE, MetricDefinition, parse_value

__all__ = ["MATCH_TIMEOUT", "MAX_LINE", "MAX_TIMEOUTS", "MetricDefinition", "MetricScanner",
           "Sample", "iso", "load_samples"]

METRICS_FILE = "metrics.json"
PLOT_FILE = "metrics.png"
#: Searches of a definition that may time out before it is switched off for the job.
MAX_TIMEOUTS = 3


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    timestamp: datetime
    host: str
    #: The ordinal (from 0) of this value among the metric's values on its host.
    step: int = 0

    def as_api(self) -> dict[str, Any]:
        return {"MetricName": self.name, "Value": self.value, "Timestamp": iso(self.timestamp)}

    def as_saved(self) -> dict[str, Any]:
        """The sample as ``metrics.json`` keeps it: the API's fields and its ``Step``."""
        return {**self.as_api(), "Step": self.step}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


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
        #: Values seen so far per (metric, host): the next sample's step.
        self._steps: dict[tuple[str, str], int] = {}
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
                step = self._steps.get((item.name, host), 0)
                self._steps[(item.name, host)] = step + 1
                sample = Sample(item.name, value, self._clock(), host, step)
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
        from . import record as jobrecord

        with self._lock:
            samples = list(self.samples)
            dropped = dict(self.dropped)
            timed_out = dict(self.timed_out)
        by_host: dict[str, list[dict[str, Any]]] = {}
        for sample in samples:
            by_host.setdefault(sample.host, []).append(sample.as_saved())
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
    """The samples a job's ``metrics.json`` holds (none when it has none), host by host in
    the order they were read; a file saved without ``Step`` numbers them in that order."""
    path = job_dir / METRICS_FILE
    if not path.is_file():
        return []
    document = json.loads(path.read_text(encoding="utf-8"))
    found: list[Sample] = []
    for host, entries in document.get("Samples", {}).items():
        seen: dict[str, int] = {}
        for entry in entries:
            name = entry["MetricName"]
            step = entry.get("Step", seen.get(name, 0))
            seen[name] = int(step) + 1
            found.append(Sample(name, float(entry["Value"]), datetime.fromisoformat(entry["Timestamp"]),
                                host, int(step)))
    return found


