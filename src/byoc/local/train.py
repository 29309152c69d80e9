"""Run a :class:`~byoc.job.JobDefinition` on this machine as SageMaker would run the training job."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import archive, contract
from ..backends.base import Backend, LogSink, TrainSpec
from ..backends.docker import DockerBackend
from ..backends.process import ProcessBackend
from ..errors import (
    ByocError,
    ConfigError,
    ContainerFailedError,
    JobStoppedError,
)
from ..job import ChannelDefinition, JobDefinition, check_job_name, default_job_name, limits
from ..project import Project, record_latest
from ..say import Say, quiet
from . import checkpoints, staging, stopping
from . import record as jobrecord
from .backend import interrupted, sigterm_interrupts
from .inputs import pipe
from .scanner import MetricScanner

TRAIN_GRACE = contract.TRAIN_STOP_GRACE


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
    check_local(definition, run)
    grace_seconds, interrupt_after = run.grace_seconds, run.interrupt_after
    incremental_from, output_dir = run.incremental_from, run.output_dir
    if incremental_from is not None:
        if any(channel.name == "model" for channel in definition.channels):
            raise ConfigError("--incremental-from and --channel model=... both name the model channel;"
                              " pass one")
        if incremental_from.is_file():  # the program would fail on it, or unpack a bomb
            archive.check_model(incremental_from, "--incremental-from")
        # the job with its model channel, checked again as a whole
        definition = replace(definition, channels=(
            *definition.channels, ChannelDefinition("model", str(incremental_from))))
    definition = replace(definition, channels=tuple(
        replace(channel, content_type=contract.MODEL_CHANNEL_CONTENT_TYPE)
        if channel.name == "model" and not channel.content_type and Path(channel.source).is_file()
        else channel for channel in definition.channels))
    sources = {channel.name: Path(channel.source) for channel in definition.channels}
    hps = dict(definition.hyperparameters)
    notes: list[str] = []
    env = dict(definition.environment)
    instance_count, spot = definition.instance_count, definition.spot
    max_runtime: float | None = definition.max_runtime
    max_wait: float | None = definition.max_wait
    checkpoint_dir = definition.local_checkpoint
    checkpoint_local_path = definition.checkpoint_local_path
    job_name = run.job_name or default_job_name(definition.base_name)
    check_job_name(job_name)
    if checkpoint_dir is not None:
        staging.check_checkpoint_config(checkpoint_dir, checkpoint_local_path, sources, backend.name)
    streamed = pipe.load_channels(definition.channels, definition.input_mode)
    jobs_dir = (output_dir or (project.jobs_dir if project else Path.cwd() / ".byoc" / "jobs"))
    job_dir = jobs_dir.resolve() / job_name
    if job_dir.exists():
        raise staging.job_exists(job_name, jobs_dir)
    protected = {"the project's .byoc/": project.state_dir} if project is not None else {}
    protected["the job output directory"] = jobs_dir
    if checkpoint_dir is not None:
        protected["the checkpoint directory"] = checkpoint_dir
    staging.check_channel_sources(sources, protected)
    if spot and interrupt_after and checkpoint_dir is None:
        say("warning: no --checkpoint-uri: each simulated spot interruption restarts the job"
            " from scratch, as SageMaker does for a job without CheckpointConfig")
    metrics = scanner if scanner is not None else (
        MetricScanner(list(definition.metric_definitions)) if definition.metric_definitions
        else None)
    image = run.image or getattr(backend, "image", None)  # the one a Docker backend runs

    hosts = contract.host_names(instance_count)
    channel_specs = [channel.contract_channel(definition.input_mode)
                     for channel in sorted(definition.channels, key=lambda c: c.name)]
    region = run.region or (project.region if project else None) or contract.DEFAULT_REGION
    job_env = {**env, **contract.job_env(job_name, region)}
    if isinstance(backend, DockerBackend):
        backend.client  # noqa: B018  (an engine and the image, before anything is written)
    elif isinstance(backend, ProcessBackend):
        backend.check_hosts(hosts)  # peers it cannot name: refused before anything is written
    staging.claim_job_dir(jobs_dir.resolve(), job_name)
    try:
        record = jobrecord.JobRecord.create(job_dir, staging.describe_fields(
            job_name=job_name, input_mode=definition.input_mode, arn=job_env["TRAINING_JOB_ARN"],
            image=image, hyperparameters=hps,
            channels=channel_specs, sources=sources, instance_count=instance_count, env=env,
            spot=spot, max_runtime=max_runtime, max_wait=max_wait, checkpoint_dir=checkpoint_dir,
            checkpoint_local_path=checkpoint_local_path, backend=backend.name))
    except BaseException:
        staging.remove_tree(job_dir)
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
    seeds = {channel.name: channel.shuffle_seed for channel in definition.channels
             if channel.shuffle_seed is not None}
    sink = log or (lambda host, line: None)
    if metrics is not None:
        sink = metrics.tee(sink)
    try:
        if isinstance(backend, ProcessBackend):
            # the environment is made before any attempt's clock starts (MaxRuntimeInSeconds,
            # --interrupt-after): SageMaker counts training time, not the image's download
            backend.prepare("train")
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                record.transition("Starting")
                for scratch in ("hosts", "shards", "pipe-scratch"):
                    staging.remove_tree(job_dir / scratch)
            record.transition("Downloading")
            specs, staged_notes = staging.stage_hosts(
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
        collected = staging.collect(job_dir, specs, statuses)
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
            staging.remove_tree(job_dir / scratch)
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
    record_latest(jobs_dir, job_dir)
    return result


def left_model(model_archive: Path, files: int) -> str:
    """What a stopped job left: its model, or that it saved none."""
    if files == 0:
        return f"it saved no model: {model_archive} is empty"
    return f"the model it left: {model_archive}"


def check_local(definition: JobDefinition, run: LocalRun = LocalRun()) -> None:
    """Refuse what this machine cannot run of a valid job: ``s3://`` inputs, more hosts than a
    local run starts, simulated reclaims without spot. :raises ConfigError:"""
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


def resolve_incremental(value: str, jobs_dir: Path) -> Path:
    """``--incremental-from``: a local job's name, a job directory or a ``model.tar.gz``."""
    for candidate in (Path(value), Path(value) / "model.tar.gz", jobs_dir / value / "model.tar.gz"):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"--incremental-from {value}: no such local job in {jobs_dir}, and not a"
                      " model.tar.gz or a directory holding one")


