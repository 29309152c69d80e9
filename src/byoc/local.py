"""``byoc local``: run a BYOC image's train and serve exactly as SageMaker would."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from . import _jobs, archive, contract
from ._docker import docker_available
from .backends.base import Backend, LogSink, Server, ServeSpec, TrainSpec, stop_all
from .backends.docker import DockerBackend
from .backends.process import ProcessBackend, check_toolchain
from .errors import ConfigError, ContainerFailedError, Interrupted, ServeError
from .project import Project

Say = Callable[[str], None]
BACKENDS = ("auto", "docker", "process")
DEFAULT_PORT = 8080
#: SageMaker's ping window at endpoint creation (ContainerStartupHealthCheckTimeoutInSeconds).
DEFAULT_STARTUP_TIMEOUT = 240.0
PING_TIMEOUT = 2.0
TRAIN_GRACE = 120.0
SERVE_GRACE = 30.0
ACCOUNT = "000000000000"


def _quiet(message: str) -> None:
    pass


def choose_backend(kind: str, project: Project | None, image: str | None,
                   say: Say = _quiet, environ: Mapping[str, str] | None = None) -> Backend:
    """The backend *kind* names; ``auto`` is Docker when an engine answers, else processes.

    :raises ConfigError: when the process backend is asked for an image byoc did not make.
    """
    if kind not in BACKENDS:
        raise ConfigError(f"unknown backend {kind!r}; use auto, docker or process")
    if kind == "auto":
        if docker_available(environ):
            kind = "docker"
        elif project is not None and image is None:
            kind = "process"
        else:
            kind = "docker"  # an --image needs an engine: let it say why there is none
        say(f"backend: {kind}" + (" (a Docker engine answers)" if kind == "docker" else
                                  " (no Docker engine answers; running the programs as processes)"))
    if kind == "process":
        if project is None or image is not None:
            raise ConfigError("--backend process runs a byoc project's programs; --image needs Docker")
        if not (project.program_dir / "train").is_file():
            raise ConfigError(f"{project.program_dir} has no train program")
        check_toolchain(project.program_dir)
        return ProcessBackend(project.program_dir)
    if image is None:
        if project is None:
            raise ConfigError("pass --image, or run inside a byoc project")
        image = f"{project.image}:latest"
    return DockerBackend(image, environ)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM to byoc like Ctrl-C, so cleanup runs."""
    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class TrainResult:
    job_name: str
    job_dir: Path
    model_archive: Path
    output_archive: Path
    exit_statuses: dict[str, int]
    failure_reason: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return all(status == 0 for status in self.exit_statuses.values())


def project_defaults(project: Project) -> tuple[dict[str, Path], dict[str, Any], dict[str, str]]:
    """Channels, hyperparameters and content types from ``local_test/test_dir``."""
    tree = contract.OptMl(project.test_dir)
    channels = {p.name: p for p in sorted(tree.data_dir.glob("*")) if p.is_dir()} \
        if tree.data_dir.is_dir() else {}
    hyperparameters = _read_json(tree.hyperparameters_json) if tree.hyperparameters_json.exists() \
        else {}
    config = _read_json(tree.inputdataconfig_json) if tree.inputdataconfig_json.exists() else {}
    types = {name: str(entry["ContentType"]) for name, entry in config.items()
             if isinstance(entry, dict) and entry.get("ContentType")}
    return channels, hyperparameters, types


def train(*, backend: Backend, project: Project | None = None,
          channels: Mapping[str, Path] | None = None,
          hyperparameters: Mapping[str, Any] | None = None,
          content_types: Mapping[str, str] | None = None,
          distribution: Mapping[str, str] | None = None, instance_count: int = 1,
          env: Mapping[str, str] | None = None, output_dir: Path | None = None,
          job_name: str | None = None, region: str | None = None,
          grace_seconds: float = TRAIN_GRACE, log: LogSink | None = None,
          say: Say = _quiet) -> TrainResult:
    """Run one training job; return its result even when it failed.

    Channels, hyperparameters and content types default to the project's
    ``local_test/test_dir``. Artifacts go to ``<output_dir>/<job_name>/``.

    :raises ConfigError: for input CreateTrainingJob would refuse.
    :raises ContainerFailedError: when a host exited non-zero (artifacts are collected first).
    :raises Interrupted: on Ctrl-C or SIGTERM, after every container is removed.
    """
    default_channels, default_hps, default_types = project_defaults(project) if project else ({}, {}, {})
    sources = dict(channels if channels is not None else default_channels)
    hps, notes = contract.stringify_hyperparameters(
        hyperparameters if hyperparameters is not None else default_hps)
    types = {**default_types, **(content_types or {})}
    distribution = dict(distribution or {})
    env = dict(env or {})
    base = project.name if project else "byoc-job"
    job_name = job_name or _jobs.default_job_name(base)
    _jobs.check_job_inputs(job_name, sources, hps, env, distribution, instance_count)
    jobs_dir = (output_dir or (project.jobs_dir if project else Path.cwd() / ".byoc" / "jobs"))
    job_dir = jobs_dir.resolve() / job_name
    if job_dir.exists():
        raise ConfigError(f"{job_dir} exists already; pick another --job-name")
    for note in notes:
        say(f"warning: {note}")

    hosts = contract.host_names(instance_count)
    channel_specs = [contract.Channel(name, content_type=types.get(name),
                                      distribution=distribution.get(name, "FullyReplicated"))
                     for name in sorted(sources)]
    region = region or (project.region if project else None) or "us-east-1"
    job_env = {**env, "TRAINING_JOB_NAME": job_name, "AWS_REGION": region,
               "TRAINING_JOB_ARN": f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{job_name}"}
    job_dir.mkdir(parents=True)
    say(f"job {job_name}: {len(hosts)} host(s) on {backend.name}; artifacts in {job_dir}")
    statuses: dict[str, int] = {}
    try:
        specs, staged_notes = _jobs.stage_hosts(job_dir, hosts, channel_specs, sources, hps)
        notes += staged_notes
        for note in staged_notes:
            say(f"warning: {note}")
        spec = TrainSpec(job_name, specs, job_env, job_dir / "logs", grace_seconds)
        sink = log or (lambda host, line: None)
        interrupted = False
        try:
            with _sigterm_interrupts():
                statuses = backend.train(spec, sink)
        except KeyboardInterrupt:
            interrupted = True
        collected = _jobs.collect(job_dir, specs, statuses)
        if interrupted:
            raise Interrupted(f"training job {job_name} interrupted: every host was stopped and"
                              f" removed; what they wrote is in {job_dir}")
    finally:
        _jobs.remove_tree(job_dir / "hosts")
        _jobs.remove_tree(job_dir / "shards")
    result = TrainResult(job_name, job_dir, collected.model_archive, collected.output_archive,
                         statuses, collected.failure_reason, notes + collected.notes)
    if not result.succeeded:
        failed = collected.failed_host or "?"
        reason = collected.failure_reason or f"{failed} wrote no /opt/ml/output/failure"
        raise ContainerFailedError(
            f"training job {job_name} failed: {failed} exited with status {statuses.get(failed)}:"
            f" {reason.splitlines()[0] if reason else ''}",
            exit_status=statuses.get(failed, 1), failure_reason=collected.failure_reason,
            detail=f"logs and artifacts: {job_dir}")
    _jobs.record_latest(jobs_dir, job_dir)
    return result


@dataclass(frozen=True)
class RunningServer:
    url: str
    server: Server


def check_port_free(port: int) -> None:
    """:raises PortInUseError: when something listens on 127.0.0.1:*port*."""
    from .errors import PortInUseError

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(f"port {port} on 127.0.0.1 is in use; pick another with --port"
                                 ) from exc


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def resolve_model(model: Path | None, project: Project | None) -> Path:
    if model is not None:
        if not model.exists():
            raise ConfigError(f"--model {model} does not exist")
        return model
    found = _jobs.latest_model(project.jobs_dir) if project else None
    if found is None:
        raise ConfigError("no model to serve: train one with `byoc local train`, or pass --model")
    return found


@contextlib.contextmanager
def serve(*, backend: Backend, model: Path, port: int = DEFAULT_PORT,
          env: Mapping[str, str] | None = None, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
          grace_seconds: float = SERVE_GRACE, log: LogSink | None = None,
          say: Say = _quiet, ready_interval: float = 0.25) -> Iterator[RunningServer]:
    """Serve *model* (a ``model.tar.gz`` or a directory) and yield once ``/ping`` answers 200.

    ``/ping`` is polled every *ready_interval* seconds.

    :raises ArchiveError: for an unsafe archive (nothing is extracted).
    :raises PortInUseError: when the port is taken.
    :raises ServeError: when the server exits or is not ready within *startup_timeout*.
    """
    check_port_free(port)
    scratch = Path(tempfile.mkdtemp(prefix="byoc-serve-"))
    server: Server | None = None
    try:
        model_dir = scratch / "model"
        if model.is_dir():
            model_dir = model.resolve()
        else:
            archive.extract(model, model_dir)
        spec = ServeSpec(model_dir=model_dir, root=scratch / "opt_ml", port=port, env=dict(env or {}),
                         grace_seconds=grace_seconds)
        spec.root.mkdir()
        server = backend.start_server(spec, log or (lambda host, line: None))
        say(f"waiting for {server.url}/ping (up to {startup_timeout:.0f} s)")
        with _sigterm_interrupts():
            try:
                wait_until_ready(server, startup_timeout, ready_interval)
                yield RunningServer(server.url, server)
            except KeyboardInterrupt:
                raise Interrupted("server stopped") from None
    finally:
        if server is not None:
            stop_all({"serve": server}, grace_seconds)
            server.close()
        _jobs.remove_tree(scratch)


def wait_until_ready(server: Server, timeout: float, interval: float = 0.25) -> None:
    """Poll ``GET /ping`` (2 s per check) until it answers 200."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        status = server.poll()
        if status is not None:
            raise ServeError(f"the server exited with status {status} before /ping answered 200",
                             detail=server.log_tail())
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=PING_TIMEOUT) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read(200).decode(errors='replace').strip()}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() > deadline:
            raise ServeError(f"/ping did not answer 200 within {timeout:.0f} s (last: {last})",
                             detail=server.log_tail())
        time.sleep(interval)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data
