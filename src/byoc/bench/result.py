"""What ``byoc local bench`` measured: the result types, shared by the runner and the report."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from .compute import ComputeCeiling
from .load import LoadResult

SCHEMA = 1


@dataclass(frozen=True)
class ServerUsage:
    """What the server's processes used during one load run."""

    #: CPU seconds (user + system) of all the server's processes over the run.
    cpu_s: float
    #: cpu_s over the run's duration: 1.0 is one core busy all the time.
    cpu_cores: float
    cpu_ms_per_request: float | None
    processes: int
    #: Sum of VmRSS after the run: a page shared by forked workers counts once per process.
    rss_bytes: int
    #: Sum of PSS after the run: shared pages divided among their sharers (None if unreadable).
    pss_bytes: int | None
    #: docker-proxy, which relays the published port on this machine (None without one).
    proxy_cpu_cores: float | None = None


@dataclass(frozen=True)
class Run:
    target: str
    load: LoadResult
    server: ServerUsage


@dataclass(frozen=True)
class Ratio:
    """A figure divided by the same figure of a ceiling (None where a ceiling is missing)."""

    stack: float | None
    compute: float | None


@dataclass(frozen=True)
class Level:
    """The results at one concurrency."""

    concurrency: int
    invocations: Run
    ping: Run
    rows_per_s: float | None
    #: requests/s, p50 latency and server CPU per request against both ceilings.
    ratios: dict[str, Ratio]


@dataclass(frozen=True)
class ColdStart:
    """Seconds from starting the server (container or process) to the first 200 from /ping."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass(frozen=True)
class BenchResult:
    date: str
    backend: str
    target: str
    model: str
    payload: str
    content_type: str
    payload_bytes: int
    rows_per_request: int | None
    duration_s: int
    generator: str
    cpus: int
    machine: str
    env: dict[str, str]
    cold_start: ColdStart
    compute: ComputeCeiling
    levels: list[Level]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of everything measured (``schema`` 1)."""
        data = {"schema": SCHEMA, **asdict(self)}
        data["cold_start"]["median_s"] = self.cold_start.median
        for level, raw in zip(self.levels, data["levels"], strict=True):
            for run, key in ((level.invocations, "invocations"), (level.ping, "ping")):
                raw[key]["load"]["socket_errors"] = run.load.socket_errors
        return data
