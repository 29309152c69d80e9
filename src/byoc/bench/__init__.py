"""``byoc local bench``: how fast a served model answers, and how far from its ceilings.

:func:`bench` starts the server as ``byoc local serve`` does, then for each
concurrency drives the same load (connections, duration) against
``POST /invocations`` with the payload and against ``GET /ping``: the same
nginx -> gunicorn -> Flask stack doing no work, the *stack ceiling*. It also
times parse + predict + serialise of the payload in a loop with no HTTP, the
*compute ceiling* (see :mod:`byoc.bench.compute`). Every figure is measured in one
run on the same cores, so the ratios between them are what to compare across
machines; absolute figures are samples of a noisy machine.

Usage::

    backend = local.choose_backend("auto", project, None)
    result = bench(backend=backend, model=local.resolve_model(None, project),
                   payload=project.root / "local_test" / "payload.csv", content_type="text/csv",
                   concurrency=[1, 8], duration=10)
    print(render(result))
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import contract, invoke, local
from ..backends.base import Backend, LogSink, Server, ServeSpec, TrainSpec
from ..backends.docker import ContainerServer
from ..backends.process import ProcessBackend, ProcessServer
from ..errors import ConfigError, PredictError, ServeError
from ..say import Say, quiet
from . import compute, procstats
from .compute import ComputeCeiling as ComputeCeiling
from .load import LoadResult as LoadResult
from .load import LoadSpec, pick_generator, run_load
from .report import render as render
from .result import SCHEMA as SCHEMA
from .result import BenchResult as BenchResult
from .result import ColdStart as ColdStart
from .result import Level as Level
from .result import Ratio as Ratio
from .result import Run as Run
from .result import ServerUsage as ServerUsage

DEFAULT_CONCURRENCY = (1, 8, 32)
DEFAULT_DURATION = 30
#: Seconds the compute loop runs at most (it settles fast; a longer run tells nothing new).
COMPUTE_SECONDS = 10.0
#: /ping poll period while timing a cold start.
READY_INTERVAL = 0.02
#: Seconds between SIGTERM and SIGKILL when stopping the server: a bench needs no graceful drain.
STOP_GRACE = 5.0


def parse_duration(text: str) -> int:
    """``30s``, ``2m``, ``1h`` or plain seconds -> whole seconds (at least 1).

    :raises ConfigError: for anything else.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text.lower())
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"] \
        if match else 0.0
    if not match or seconds < 1 or seconds != int(seconds):
        raise ConfigError(f"--duration takes whole seconds like 30s, 2m or 45, got {text!r}")
    return int(seconds)


def parse_concurrency(text: str) -> list[int]:
    """``1,8,32`` -> ``[1, 8, 32]``; :raises ConfigError: unless each is an integer 1..10000."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and 1 <= int(part) <= 10000 for part in parts):
        raise ConfigError(f"--concurrency takes integers from 1 to 10000 separated by commas,"
                          f" like 1,8,32; got {text!r}")
    return list(dict.fromkeys(int(part) for part in parts))


def count_rows(body: bytes, content_type: str) -> int | None:
    """Rows in *body*: CSV and JSON Lines lines, a JSON list's length, a .npy's first dimension.

    None for a type it does not know or a body it cannot read.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        if kind == "text/csv" or kind in ("application/jsonlines", "application/x-jsonlines",
                                          "application/jsonl"):
            return sum(1 for line in body.decode("utf-8-sig").splitlines() if line.strip())
        if kind == "application/json":
            data = json.loads(body)
            data = data.get("instances") if isinstance(data, dict) else data
            if not isinstance(data, list):
                return None
            return len(data) if data and isinstance(data[0], list | dict) else 1
        if kind == "application/x-npy":
            import io

            import numpy as np

            shape = np.load(io.BytesIO(body), allow_pickle=False).shape
            return int(shape[0]) if len(shape) >= 2 else 1
    except (ValueError, OSError, EOFError, UnicodeDecodeError, IndexError, AttributeError,
            ImportError):  # numpy is the container's, not byoc's: rows unknown without it
        return None
    return None


class _TimedBackend:
    """Wraps a backend to note when the server is started, for the cold start."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.started = 0.0

    @property
    def name(self) -> str:
        return self.backend.name

    def train(self, spec: TrainSpec, log: LogSink) -> dict[str, int]:
        return self.backend.train(spec, log)

    def start_server(self, spec: ServeSpec, log: LogSink) -> Server:
        self.started = time.monotonic()
        return self.backend.start_server(spec, log)


def bench(*, backend: Backend, model: Path, payload: Path, content_type: str,
          concurrency: Sequence[int] = DEFAULT_CONCURRENCY, duration: int = DEFAULT_DURATION,
          generator: str = "auto", port: int | None = None, env: Mapping[str, str] | None = None,
          cold_starts: int = 1, warmup: int = 2, compute_seconds: float | None = None,
          startup_timeout: float = local.DEFAULT_STARTUP_TIMEOUT, grace_seconds: float = STOP_GRACE,
          say: Say = quiet) -> BenchResult:
    """Serve *model* and measure it under load; see the module docstring.

    :param concurrency: open connections of each load run, one level each.
    :param duration: seconds of each load run (each level has two: /invocations and /ping).
    :param generator: ``wrk``, ``builtin`` or ``auto`` (wrk when installed).
    :param cold_starts: how many starts to time (the run's own plus restarts); the median is kept.
    :param warmup: seconds of unrecorded load before the first level.
    :param compute_seconds: how long the compute loop runs (default: duration, at most 10 s).
    :param grace_seconds: between SIGTERM and SIGKILL when stopping the server.
    :raises ConfigError: for a bad payload or option.
    :raises BenchError: when the load generator fails.
    :raises PredictError: when the server refuses the payload (checked once before any load).
    :raises ServeError: when the server does not start or stops during the run.
    """
    generator = pick_generator(generator)
    if not concurrency or min(concurrency) < 1 or duration < 1 or cold_starts < 1 or warmup < 0:
        raise ConfigError("concurrency, duration and cold starts must be at least 1")
    try:
        body = payload.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the payload {payload}: {exc.strerror or exc}") from exc
    if not body.strip():
        raise ConfigError(f"the payload {payload} is empty")
    if len(body) > contract.MAX_PAYLOAD_BYTES:
        raise ConfigError(f"the payload {payload} is {len(body)} bytes; SageMaker accepts at most"
                          f" {contract.MAX_PAYLOAD_BYTES} (6 MiB) per invocation")
    rows = count_rows(body, content_type)
    env = dict(env or {})
    timed = _TimedBackend(backend)
    chosen_port = port or local.free_port()
    serve_args: dict[str, Any] = {"model": model, "port": chosen_port, "env": env,
                                  "startup_timeout": startup_timeout, "ready_interval": READY_INTERVAL,
                                  "grace_seconds": grace_seconds}
    levels: list[Level] = []
    notes: list[str] = []
    say(f"starting the server ({backend.name}) on 127.0.0.1:{chosen_port}")
    with local.serve(backend=timed, say=say, **serve_args) as running:
        samples = [time.monotonic() - timed.started]
        say(f"ready after {samples[0]:.2f} s; checking the payload once")
        _check_payload(running.url, body, content_type)
        ceiling = _compute_ceiling(backend, running.server, model, payload, content_type,
                                   compute_seconds or min(float(duration), COMPUTE_SECONDS), rows, say)
        watch = _Watch(running.server, chosen_port if isinstance(running.server, ContainerServer)
                       else None)
        if watch.proxy_pids:
            notes.append("docker-proxy relays the published port on this machine; its CPU is"
                         " reported apart (SageMaker has no such hop)")
        invocations = LoadSpec(f"{running.url}/invocations", max(concurrency), warmup, payload,
                               content_type)
        if warmup:
            say(f"warming up: {warmup} s at concurrency {max(concurrency)}")
            run_load(invocations, generator)
        for number, level in enumerate(concurrency, start=1):
            runs = {}
            for target, spec in (("/ping", LoadSpec(f"{running.url}/ping", level, duration)),
                                 ("/invocations", LoadSpec(invocations.url, level, duration, payload,
                                                           content_type))):
                say(f"[{number}/{len(concurrency)}] concurrency {level}: {target} for {duration} s")
                runs[target] = watch.measure(target, functools.partial(run_load, spec, generator))
            levels.append(_level(level, runs["/invocations"], runs["/ping"], ceiling, rows))
    for restart in range(2, cold_starts + 1):
        say(f"cold start {restart}/{cold_starts}")
        # a fresh port: the last one may hold TIME_WAIT connections, which keep it from binding
        with local.serve(backend=timed, **{**serve_args, "port": local.free_port()}):
            samples.append(time.monotonic() - timed.started)
    target = getattr(backend, "image", None) or str(getattr(backend, "program_dir", ""))
    return BenchResult(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        backend=backend.name, target=target, model=str(model), payload=str(payload),
        content_type=content_type, payload_bytes=len(body), rows_per_request=rows,
        duration_s=duration, generator=generator, cpus=os.cpu_count() or 1, env=env,
        machine=f"{platform.system()} {platform.machine()}", cold_start=ColdStart(samples),
        compute=ceiling, levels=levels, notes=notes)


def _check_payload(url: str, body: bytes, content_type: str) -> None:
    """One invocation; :raises PredictError: if it is refused."""
    try:
        invoke.predict(url, body, content_type)
    except PredictError as exc:
        raise PredictError(f"the server refuses the payload: {exc.message}") from None


def _compute_ceiling(backend: Backend, server: Server, model: Path, payload: Path,
                     content_type: str, seconds: float, rows: int | None, say: Say) -> ComputeCeiling:
    say(f"compute ceiling: parse + predict + serialise in a loop for {seconds:g} s")
    if isinstance(server, ContainerServer):
        result = compute.in_container(server.container, payload, content_type, seconds, rows)
    elif isinstance(backend, ProcessBackend):
        result = compute.in_process(backend.program_dir, model, payload, content_type, seconds, rows,
                                    python=backend.python())
    else:
        result = ComputeCeiling(False, f"not measurable on the {backend.name} backend")
    if not result.available:
        say(f"compute ceiling unavailable: {result.reason}")
    return result


class _Watch:
    """Reads the CPU and memory of a server's processes around load runs."""

    def __init__(self, server: Server, published_port: int | None) -> None:
        self.server = server
        self.proxy_pids = procstats.find(["docker-proxy", "-host-port", str(published_port)]) \
            if published_port else []

    def pids(self) -> list[int]:
        if isinstance(self.server, ContainerServer):
            import docker.errors

            container = self.server.container
            try:
                top = container.top()  # host PIDs: the engine runs on this machine
                column = top["Titles"].index("PID")
                return sorted(int(row[column]) for row in top["Processes"])
            except (docker.errors.APIError, ValueError, KeyError):  # no `ps` on the engine's host
                container.reload()
                root = int(container.attrs.get("State", {}).get("Pid") or 0)
                return procstats.tree_pids(root) if root else []
        if isinstance(self.server, ProcessServer):
            return procstats.tree_pids(self.server.process.pid)
        return []

    def measure(self, target: str, drive: Callable[[], LoadResult]) -> Run:
        before = procstats.cpu_seconds(self.pids())
        proxy_before = procstats.cpu_seconds(self.proxy_pids)
        load = drive()
        pids = self.pids()
        used = procstats.cpu_delta(before, procstats.cpu_seconds(pids))
        proxy = procstats.cpu_delta(proxy_before, procstats.cpu_seconds(self.proxy_pids))
        memory = procstats.memory(pids)
        if (status := self.server.poll()) is not None:
            raise ServeError(f"the server exited with status {status} during the {target} run",
                             detail=self.server.log_tail())
        return Run(target, load, ServerUsage(
            cpu_s=used, cpu_cores=used / load.duration_s,
            cpu_ms_per_request=used / load.requests * 1000 if load.requests else None,
            processes=memory.processes, rss_bytes=memory.rss_bytes, pss_bytes=memory.pss_bytes,
            proxy_cpu_cores=proxy / load.duration_s if self.proxy_pids else None))


def _level(concurrency: int, invocations: Run, ping: Run, compute: ComputeCeiling,
           rows: int | None) -> Level:
    def ratio(value: float | None, stack: float | None, ceiling: float | None) -> Ratio:
        return Ratio(_divide(value, stack), _divide(value, ceiling) if compute.available else None)

    load = invocations.load
    return Level(concurrency, invocations, ping, load.requests_per_s * rows if rows else None, {
        "requests_per_s": ratio(load.requests_per_s, ping.load.requests_per_s, compute.calls_per_s),
        "p50_ms": ratio(load.p50_ms, ping.load.p50_ms, compute.p50_ms),
        "cpu_ms_per_request": ratio(invocations.server.cpu_ms_per_request,
                                    ping.server.cpu_ms_per_request, compute.cpu_ms_per_call),
    })


def _divide(value: float | None, by: float | None) -> float | None:
    return value / by if value is not None and by else None
