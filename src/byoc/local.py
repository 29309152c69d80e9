"""``byoc local``: run a BYOC image's train and serve exactly as SageMaker would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from . import _jobs, archive, checkpoints, contract, images, jobrecord, stopping
from ._docker import docker_available
from .backends.base import Backend, LogSink, Server, ServeSpec, TrainSpec, stop_all
from .backends.docker import DockerBackend, device_request
from .backends.process import ProcessBackend, check_toolchain
from .errors import (
    ArchiveError,
    ByocError,
    ConfigError,
    ContainerFailedError,
    Interrupted,
    JobStoppedError,
    ServeError,
    Terminated,
)
from .inputs import pipe
from .inputs.config import InputOptions
from .job import JobDefinition, check_job_name, limits
from .metrics import MetricScanner
from .project import Project
from .say import Say as Say
from .say import quiet

BACKENDS = ("auto", "docker", "process")
DEFAULT_PORT = contract.PORT
#: SageMaker's ping window at endpoint creation (ContainerStartupHealthCheckTimeoutInSeconds).
DEFAULT_STARTUP_TIMEOUT = contract.STARTUP_TIMEOUT
PING_TIMEOUT = contract.PING_TIMEOUT
TRAIN_GRACE = contract.TRAIN_STOP_GRACE
SERVE_GRACE = contract.SERVE_STOP_GRACE
#: A server that cannot load its model answers /ping 503 with this header set to ``failed``
#: (and its reason as plain text); ``loading`` while it loads.
LOAD_STATUS_HEADER = "X-Model-Load-Status"
LOAD_FAILED = "failed"


def choose_backend(kind: str, project: Project | None, image: str | None,
                   say: Say = quiet, environ: Mapping[str, str] | None = None,
                   gpus: str | None = None) -> Backend:
    """The backend *kind* names; ``auto`` is Docker when an engine answers, else processes.

    On Docker without *image*, the project's ``<image>:latest`` is built when missing and rebuilt
    when the project changed since it was built (:func:`byoc.images.ensure_current`).

    :param gpus: GPUs for every container (``docker run --gpus``): Docker only.
    :raises ConfigError: when the process backend is asked for an image byoc did not make,
        or for GPUs.
    :raises BuildError: when that build fails.
    """
    if kind not in BACKENDS:
        raise ConfigError(f"unknown backend {kind!r}; use auto, docker or process")
    if gpus is not None:
        try:
            device_request(gpus)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if kind == "auto":
        if gpus is not None or docker_available(environ):
            kind = "docker"
        elif project is not None and image is None:
            kind = "process"
        else:
            kind = "docker"  # an --image needs an engine: let it say why there is none
        say(f"backend: {kind}" + (" (a Docker engine answers)" if kind == "docker" else
                                  " (no Docker engine answers; running the programs as processes)"))
    if kind == "process":
        if gpus is not None:
            raise ConfigError("--gpus needs the docker backend: the process backend runs the"
                              " programs on this machine, which sees its own GPUs as they are")
        if project is None or image is not None:
            raise ConfigError("--backend process runs a byoc project's programs; --image needs Docker")
        if not (project.program_dir / "train").is_file():
            raise ConfigError(f"{project.program_dir} has no train program")
        check_toolchain(project.program_dir)
        return ProcessBackend(project.program_dir, say=say)
    if image is None:
        if project is None:
            raise ConfigError("pass --image, or run inside a byoc project")
        image = f"{project.image}:latest"
        # the project's image must be what the project is now: built when missing, rebuilt
        # when the project changed since (an --image is run as it is)
        images.ensure_current(project.root, image, log=say, environ=environ)
    return DockerBackend(image, environ, gpus=gpus)


class SigTerm(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so the same cleanup runs."""


def interrupted(message: str, cause: BaseException) -> Interrupted:
    """The error to raise after *cause* (Ctrl-C or SIGTERM) stopped byoc: exit 130 or 143."""
    return Terminated(message) if isinstance(cause, SigTerm) else Interrupted(message)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM to byoc like Ctrl-C (as :class:`SigTerm`), so cleanup runs."""
    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise SigTerm

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
    #: TrainingJobStatus: Completed, Failed or Stopped.
    status: str = "Completed"
    #: Why the job stopped early (a SecondaryStatus such as MaxRuntimeExceeded), if it did.
    stop_reason: str | None = None
    #: How many files :attr:`model_archive` holds: 0 when the job saved no model.
    model_files: int = 0

    @property
    def succeeded(self) -> bool:
        return all(status == 0 for status in self.exit_statuses.values())


@dataclass(frozen=True)
class LocalRun:
    """What only a run on this machine has (the job itself is its :class:`~byoc.job.JobDefinition`).

    *job_name* defaults to ``<base_name>-<timestamp>``; the job's directory goes under
    *output_dir* (default: the project's ``.byoc/jobs``). *interrupt_after* simulates managed spot
    reclaims (each a fresh set of hosts, checkpoints restored); *incremental_from* is a
    ``model.tar.gz`` delivered as the ``model`` channel.
    """

    job_name: str | None = None
    output_dir: Path | None = None
    grace_seconds: float = TRAIN_GRACE
    interrupt_after: Sequence[float] = ()
    incremental_from: Path | None = None
    #: The image named in ``job.json`` (None for the process backend).
    image: str | None = None
    region: str | None = None


def train(definition: JobDefinition, *, backend: Backend, project: Project | None = None,
          run: LocalRun = LocalRun(), say: Say = quiet, log: LogSink | None = None,
          scanner: MetricScanner | None = None,
          stop: threading.Event | None = None) -> TrainResult:
    """Run *definition* as one training job on this machine; return its result even when it failed.

    The definition is the whole job (built and checked by :mod:`byoc.job`); *run* holds what
    only a local run has. Artifacts go to ``<output_dir>/<job_name>/``, with ``job.json``
    shaped like DescribeTrainingJob. A local checkpoint directory plays
    ``CheckpointConfig.S3Uri``; the StoppingCondition is enforced as the service does.
    *scanner* (default: one for the definition's metric definitions) scans every host's log
    lines; setting *stop* from another thread stops the job as StopTrainingJob would.

    :raises ConfigError: for what a local run cannot do (an ``s3://`` channel or checkpoint URI).
    :raises ContainerFailedError: when a host exited non-zero (artifacts are collected first).
    :raises JobStoppedError: when a time limit stopped the job (artifacts are collected first).
    :raises Interrupted: on Ctrl-C or SIGTERM, after every container is removed.
    """
    remote = [channel.name for channel in definition.channels if channel.remote]
    if remote:
        raise ConfigError(f"channel {remote[0]!r} is in S3; a local run needs a local path")
    if definition.checkpoint_uri is not None and definition.local_checkpoint is None:
        raise ConfigError(f"--checkpoint-uri {definition.checkpoint_uri} is in S3; a local run keeps"
                          " checkpoints in a local directory")
    if definition.instance_count > limits.MAX_LOCAL_INSTANCES:
        raise ConfigError(f"--instance-count {definition.instance_count}: a local run starts at most"
                          f" {limits.MAX_LOCAL_INSTANCES} hosts")
    if run.interrupt_after and not definition.spot:
        raise ConfigError("--interrupt-after simulates spot capacity reclaims; add --spot")
    grace_seconds, interrupt_after = run.grace_seconds, run.interrupt_after
    incremental_from, output_dir = run.incremental_from, run.output_dir
    sources = {channel.name: Path(channel.source) for channel in definition.channels}
    types = {c.name: c.content_type for c in definition.channels if c.content_type}
    if incremental_from is not None:
        if "model" in sources:
            raise ConfigError("--incremental-from and --channel model=... both name the model channel;"
                              " pass one")
        sources["model"] = incremental_from
        if incremental_from.is_file():  # the program would fail on it, or unpack a bomb
            archive.check_model(incremental_from, "--incremental-from")
    if "model" in sources and sources["model"].is_file():
        types.setdefault("model", contract.MODEL_CHANNEL_CONTENT_TYPE)
    hps = dict(definition.hyperparameters)
    notes: list[str] = []
    distribution = {channel.name: channel.distribution for channel in definition.channels}
    env = dict(definition.environment)
    instance_count, spot = definition.instance_count, definition.spot
    max_runtime: float | None = definition.max_runtime
    max_wait: float | None = definition.max_wait
    checkpoint_dir = definition.local_checkpoint
    checkpoint_local_path = definition.checkpoint_local_path
    job_name = run.job_name or _jobs.default_job_name(definition.base_name)
    check_job_name(job_name)
    if checkpoint_dir is not None:
        _jobs.check_checkpoint_config(checkpoint_dir, checkpoint_local_path, sources, backend.name)
    settings = _input_options(definition).resolve(sources)
    streamed = pipe.load_channels(settings, sources, distribution)
    jobs_dir = (output_dir or (project.jobs_dir if project else Path.cwd() / ".byoc" / "jobs"))
    job_dir = jobs_dir.resolve() / job_name
    if job_dir.exists():
        raise _jobs.job_exists(job_name, jobs_dir)
    protected = {"the project's .byoc/": project.state_dir} if project is not None else {}
    protected["the job output directory"] = jobs_dir
    if checkpoint_dir is not None:
        protected["the checkpoint directory"] = checkpoint_dir
    _jobs.check_channel_sources(sources, protected)
    if spot and interrupt_after and checkpoint_dir is None:
        say("warning: no --checkpoint-uri: each simulated spot interruption restarts the job"
            " from scratch, as SageMaker does for a job without CheckpointConfig")
    metrics = scanner if scanner is not None else (
        MetricScanner(list(definition.metric_definitions)) if definition.metric_definitions
        else None)
    image = run.image

    hosts = contract.host_names(instance_count)
    channel_specs = [contract.Channel(name, content_type=types.get(name),
                                      input_mode=settings[name].input_mode,
                                      distribution=distribution.get(name, "FullyReplicated"),
                                      record_wrapper=settings[name].record_wrapper)
                     for name in sorted(sources)]
    region = run.region or (project.region if project else None) or contract.DEFAULT_REGION
    job_env = {**env, **contract.job_env(job_name, region)}
    if isinstance(backend, DockerBackend):
        backend.client  # noqa: B018  (an engine and the image, before anything is written)
    elif isinstance(backend, ProcessBackend):
        backend.check_hosts(hosts)  # peers it cannot name: refused before anything is written
    _jobs.claim_job_dir(jobs_dir.resolve(), job_name)
    try:
        record = jobrecord.JobRecord.create(job_dir, _jobs.describe_fields(
            job_name=job_name, arn=job_env["TRAINING_JOB_ARN"], image=image, hyperparameters=hps,
            channels=channel_specs, sources=sources, instance_count=instance_count, env=env,
            spot=spot, max_runtime=max_runtime, max_wait=max_wait, checkpoint_dir=checkpoint_dir,
            checkpoint_local_path=checkpoint_local_path, backend=backend.name))
    except BaseException:
        _jobs.remove_tree(job_dir)
        raise
    say(f"job {job_name}: {len(hosts)} host(s) on {backend.name}; artifacts in {job_dir}")
    watch = stopping.StopWatch(job_dir, max_runtime=max_runtime,
                               max_wait=max_wait if spot else None, interrupts=interrupt_after,
                               external=stop)
    statuses: dict[str, int] = {}
    first_failure: list[str] = []

    def host_failed(host: str, status: int) -> None:
        first_failure.append(host)
        say(f"{host} exited with status {status}: stopping the other hosts (SIGTERM, SIGKILL"
            f" after {grace_seconds:.0f} s), as SageMaker stops a job when one host fails")

    stopped_by: KeyboardInterrupt | None = None
    billable = 0.0
    seeds = {name: found.shuffle_seed for name, found in settings.items()
             if found.shuffle_seed is not None}
    sink = log or (lambda host, line: None)
    if metrics is not None:
        sink = metrics.tee(sink)
    try:
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                record.transition("Starting")
                for scratch in ("hosts", "shards", "pipe-scratch"):
                    _jobs.remove_tree(job_dir / scratch)
            record.transition("Downloading")
            specs, staged_notes = _jobs.stage_hosts(
                job_dir, hosts, channel_specs, sources, hps, seeds,
                checkpoint_local_path=checkpoint_local_path if checkpoint_dir else None)
            notes += staged_notes
            for note in staged_notes:
                say(f"warning: {note}")
            spec = TrainSpec(job_name, specs, job_env, job_dir / "logs", grace_seconds, notify=say,
                             on_host_failure=host_failed, stop=watch.event,
                             checkpoint_path=checkpoint_local_path)
            syncs = [checkpoints.CheckpointSync(host.checkpoints, checkpoint_dir, host=host.host)
                     for host in specs if checkpoint_dir is not None and host.checkpoints]
            pipes = pipe.Pipes.for_job(specs, streamed, job_dir / "pipe-scratch")
            with contextlib.ExitStack() as stack:
                for sync in syncs:
                    stack.enter_context(sync)
                if syncs and syncs[0].restored:
                    say(f"restored {syncs[0].restored} checkpoint file(s) into"
                        f" {checkpoint_local_path} on every host")
                record.transition("Training")
                watch.start_attempt()
                began = time.monotonic()
                try:
                    with sigterm_interrupts(), pipes:
                        statuses = backend.train(spec, sink)
                except KeyboardInterrupt as exc:
                    stopped_by = exc
                    watch.stop(stopping.STOPPED)
                finally:
                    billable += (time.monotonic() - began) * instance_count
                    watch.end_attempt()
            notes += pipes.notes()
            if watch.reason == stopping.INTERRUPTED and stopped_by is None:
                record.transition("Interrupted")
                say(f"simulated spot interruption {attempt}: every host was stopped; restarting on"
                    " fresh hosts" + (" with the checkpoints restored" if checkpoint_dir
                                      else " from scratch"))
                continue
            break
        if watch.reason is not None:
            record.transition("Stopping")
        record.transition("Uploading")
        collected = _jobs.collect(job_dir, specs, statuses)
        if metrics is not None:
            metrics.save(job_dir, say)
    except ByocError as exc:
        # the job cannot go on (its environment does not build, a channel cannot be read):
        # Failed now, with the reason, not InProgress for the next command to find
        record.finish(jobrecord.FAILED, jobrecord.FAILED, failure_reason=exc.message,
                      billable_seconds=round(billable))
        raise
    finally:
        watch.close()
        for scratch in ("hosts", "shards", "pipe-scratch"):
            _jobs.remove_tree(job_dir / scratch)
    record.update(ModelArtifacts={"S3ModelArtifacts": collected.model_archive.as_uri()},
                  OutputDataConfig={"S3OutputPath": job_dir.as_uri()},
                  Local={**record.data.get("Local", {}), "ExitStatuses": statuses})
    planned, done = (len(interrupt_after) if spot else 0), watch.interrupts_done
    if planned:
        record.update(Local={**record.data.get("Local", {}), "PlannedInterruptions": planned,
                             "Interruptions": done})
    if done < planned and watch.reason is None:  # it ended on its own before the next one
        say(f"note: the job ended before simulated spot interruption {done + 1} of {planned}"
            f" (--interrupt-after {interrupt_after[done]:g} s into attempt {done + 1});"
            f" {done} happened")
    succeeded = all(status == 0 for status in statuses.values())
    status = jobrecord.STOPPED if watch.reason else (
        jobrecord.COMPLETED if succeeded else jobrecord.FAILED)
    result = TrainResult(job_name, job_dir, collected.model_archive, collected.output_archive,
                         statuses, collected.failure_reason, notes + collected.notes,
                         status=status, stop_reason=watch.reason,
                         model_files=collected.model_files)
    if watch.reason is not None:
        secondary = jobrecord.STOPPED if watch.reason == stopping.STOPPED else watch.reason
        record.finish(jobrecord.STOPPED, secondary, billable_seconds=round(billable))
        if stopped_by is not None:
            raise interrupted(f"training job {job_name} interrupted: every host was stopped and"
                              f" removed; what they wrote is in {job_dir}", stopped_by)
        if watch.reason != stopping.STOPPED:
            raise JobStoppedError(
                f"training job {job_name} stopped: {jobrecord.MESSAGES[watch.reason]}",
                detail=left_model(collected.model_archive, collected.model_files))
        return result
    if not succeeded:
        # the host that failed first, not one byoc stopped because of it
        failed = (first_failure or [collected.failed_host or "?"])[0]
        reason = collected.failure_reason or f"{failed} wrote no {contract.IN_CONTAINER.failure_file}"
        record.finish(jobrecord.FAILED, jobrecord.FAILED, failure_reason=reason,
                      billable_seconds=round(billable))
        raise ContainerFailedError(
            f"training job {job_name} failed: {failed} exited with status {statuses.get(failed)}:"
            f" {reason.splitlines()[0] if reason else ''}",
            exit_status=statuses.get(failed, 1), failure_reason=collected.failure_reason,
            detail=f"logs and artifacts: {job_dir}")
    record.finish(jobrecord.COMPLETED, jobrecord.COMPLETED, billable_seconds=round(billable))
    _jobs.record_latest(jobs_dir, job_dir)
    return result


def left_model(model_archive: Path, files: int) -> str:
    """What a stopped job left: its model, or that it saved none."""
    if files == 0:
        return f"it saved no model: {model_archive} is empty"
    return f"the model it left: {model_archive}"


@dataclass(frozen=True)
class RunningServer:
    url: str
    server: Server


def check_port_free(port: int) -> None:
    """:raises PortInUseError: when something listens on 127.0.0.1:*port*.

    The probe binds with ``SO_REUSEADDR``, as servers do, so connections of a stopped server
    still in TIME-WAIT do not count: only a listener (or a socket bound without that option)
    makes the port busy.
    """
    from .errors import PortInUseError

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    """*model* when given, else the project's latest model.

    :raises ConfigError: when *model* does not exist or there is no model to default to.
    """
    if model is not None:
        if not model.exists():
            raise ConfigError(f"--model {model} does not exist")
        return model
    found = project.latest_model if project else None
    if found is None:
        raise ConfigError("no model to serve: train one with `byoc local train`, or pass --model")
    return found


@contextlib.contextmanager
def serve(*, backend: Backend, model: Path, port: int = DEFAULT_PORT,
          env: Mapping[str, str] | None = None, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
          grace_seconds: float = SERVE_GRACE, log: LogSink | None = None,
          say: Say = quiet, ready_interval: float = 0.25) -> Iterator[RunningServer]:
    """Serve *model* (a ``model.tar.gz`` or a directory) and yield once ``/ping`` answers 200.

    ``/ping`` is polled every *ready_interval* seconds.

    :raises ArchiveError: for an unsafe or unreadable archive, or one that holds no file
        (nothing is extracted).
    :raises PortInUseError: when the port is taken.
    :raises ServeError: when the server exits or is not ready within *startup_timeout*.
    """
    check_port_free(port)
    scratch = Path(tempfile.mkdtemp(prefix="byoc-serve-"))
    server: Server | None = None
    work_done = False  # the caller's block ended normally: nobody asked for the stop
    try:
        model_dir = scratch / "model"
        if model.is_dir():
            model_dir = model.resolve()
        elif archive.extract(model, model_dir).files == 0:
            raise ArchiveError(f"model {model}: the archive holds no model (no file); the job that"
                               " made it saved nothing")
        spec = ServeSpec(model_dir=model_dir, root=scratch / "opt_ml", port=port, env=dict(env or {}),
                         grace_seconds=grace_seconds)
        spec.root.mkdir()
        server = backend.start_server(spec, log or (lambda host, line: None))
        say(f"waiting for {server.url}/ping (up to {startup_timeout:.0f} s)")
        with sigterm_interrupts():
            try:
                wait_until_ready(server, startup_timeout, ready_interval)
                yield RunningServer(server.url, server)
                work_done = True
            except KeyboardInterrupt as exc:
                raise interrupted("server stopped", exc) from None
    finally:
        try:
            if server is not None:
                try:
                    # a server shut down because its work is done stops without a word
                    stop_all({"serve": server}, grace_seconds, say=None if work_done else say)
                finally:
                    server.close()
        finally:  # also on a second Ctrl-C while the server stops
            _jobs.remove_tree(scratch)


def wait_until_ready(server: Server, timeout: float, interval: float = 0.25) -> None:
    """Poll ``GET /ping`` (2 s per check) until it answers 200.

    A server that is still loading its model gets the whole *timeout*; one that answers
    ``/ping`` with ``X-Model-Load-Status: failed`` has given up, and its reason (the body's
    first line) is reported at once, as is a server that exits.

    :raises ServeError: when the server exits, says the model failed to load, or is not ready
        within *timeout*.
    """
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
            with exc:
                text = exc.read(2000).decode(errors="replace").strip()
            if exc.headers.get(LOAD_STATUS_HEADER, "").strip().lower() == LOAD_FAILED:
                reason = text.splitlines()[0] if text else f"HTTP {exc.code} with no reason given"
                raise ServeError(f"the server cannot load the model: {reason}",
                                 detail=server.log_tail()) from None
            last = f"HTTP {exc.code}: {text[:200]}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() > deadline:
            raise ServeError(f"/ping did not answer 200 within {timeout:.0f} s (last: {last})",
                             detail=server.log_tail())
        time.sleep(interval)


def _input_options(definition: JobDefinition) -> InputOptions:
    """The definition's input settings, as the input modes take them."""
    channels = definition.channels
    return InputOptions(
        input_mode=definition.input_mode,
        channel_modes={c.name: c.input_mode for c in channels if c.input_mode},
        record_wrappers={c.name: c.record_wrapper for c in channels if c.record_wrapper},
        compressions={c.name: c.compression for c in channels if c.compression},
        shuffle_seeds={c.name: c.shuffle_seed for c in channels if c.shuffle_seed is not None},
        attribute_names={c.name: c.attribute_names for c in channels
                         if c.attribute_names is not None},
        manifest_roots={c.name: c.manifest_root for c in channels if c.manifest_root is not None})


def resolve_incremental(value: str, jobs_dir: Path) -> Path:
    """``--incremental-from``: a local job's name, a job directory or a ``model.tar.gz``."""
    for candidate in (Path(value), Path(value) / "model.tar.gz", jobs_dir / value / "model.tar.gz"):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"--incremental-from {value}: no such local job in {jobs_dir}, and not a"
                      " model.tar.gz or a directory holding one")


def stop_job(record: jobrecord.JobRecord) -> None:
    """Ask the byoc running *record*'s job to stop it, as StopTrainingJob does.

    :raises ConfigError: when the job is not running.
    """
    if record.status not in (jobrecord.IN_PROGRESS, jobrecord.STOPPING):
        raise ConfigError(f"training job {record.name} is not running (status {record.status})")
    if not _owner_alive(record):
        raise ConfigError(f"the byoc that ran {record.name} is gone; `byoc local jobs` marks the"
                          " job failed and removes what it left")
    stopping.request_stop(record.job_dir)


def _owner_alive(record: jobrecord.JobRecord) -> bool:
    local = record.data.get("Local", {})
    pid, started = local.get("Pid"), local.get("ProcessStart")
    if not isinstance(pid, int):
        return False
    if started is not None:
        return bool(_jobs.process_start(pid) == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(jobs_dir: Path | None, say: Say = quiet,
                 environ: Mapping[str, str] | None = None) -> list[str]:
    """Mark failed the jobs whose byoc died (SIGKILL) and remove what they left running.

    Containers and networks are found by their ``com.byoc.job`` label,
    processes of the process backend by the job's ARN in their environment.
    Returns the names of the jobs reaped.
    """
    reaped: list[str] = []
    if jobs_dir is None:
        return reaped
    for record in jobrecord.records(jobs_dir):
        if record.status not in (jobrecord.IN_PROGRESS, jobrecord.STOPPING) or _owner_alive(record):
            continue
        _remove_labelled(record.name, environ)
        _kill_job_processes(str(record.data.get("TrainingJobArn", "")))
        _jobs.remove_tree(record.job_dir / "hosts")
        _jobs.remove_tree(record.job_dir / "shards")
        record.finish(jobrecord.FAILED, jobrecord.FAILED, failure_reason=(
            "byoc stopped while the job ran (killed?); its hosts were removed"))
        say(f"note: training job {record.name} lost the byoc running it; marked Failed and cleaned up")
        reaped.append(record.name)
    return reaped


def _remove_labelled(job_name: str, environ: Mapping[str, str] | None) -> None:
    if not docker_available(environ):
        return
    import docker.errors

    from ._docker import docker_client
    from .backends.docker import LABEL

    client = docker_client(environ)
    try:
        for container in client.containers.list(all=True, filters={"label": f"{LABEL}={job_name}"}):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        for network in client.networks.list(filters={"label": f"{LABEL}={job_name}"}):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()
    finally:
        client.close()


def _kill_job_processes(arn: str) -> None:
    if not arn:
        return
    needle = f"TRAINING_JOB_ARN={arn}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environment:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(entry.name), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
