"""``byoc local train | serve | predict``: options in, library calls out."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from .. import invoke, job
from .. import local as harness
from ..errors import Interrupted, ServeError
from ..local import hosting
from ..local import record as jobrecord
from ..project import LATEST, Project
from ..tune.runner import JOBS as TUNING_JOBS
from ..tune.runner import REQUEST_FILE as TUNING_REQUEST
from ..tune.runner import reap_all
from .experiment import EXPERIMENT, logged, tracking
from .jobdef import definition_from_options, job_options
from .options import BACKEND, ENV, GPUS, IMAGE, PROJECT, echo_err, log_line, pairs, read_payload
from .process import evaluate_command, process_command


@click.group(name="local")
def local_group() -> None:
    """Run an image's train and serve locally, as SageMaker would."""


@local_group.command()
@PROJECT
@IMAGE
@BACKEND
@job_options
@GPUS
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the job's directory goes (default: .byoc/jobs in the project).")
@click.option("--grace", default=harness.TRAIN_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when stopping.")
@click.option("--interrupt-after", metavar="DURATION[,DURATION...]",
              help="With --spot: simulate a capacity reclaim this long into each attempt's"
                   " training, e.g. 30s,1m (two interruptions).")
@click.option("--incremental-from", metavar="JOB|PATH",
              help="Incremental training: a local job's (or any) model.tar.gz as the model channel.")
@EXPERIMENT
def train(project: Path | None, image: str | None, backend: str, output_dir: Path | None,
          grace: float, interrupt_after: str | None, incremental_from: str | None,
          gpus: str | None, experiment: str | None, **options: Any) -> None:
    """Run a training job against local channels; print the model archive's path.

    The job options are byoc sagemaker train's: the same command line runs the same job there.
    """
    loaded = Project.find(project, required=image is None)
    where = tracking(experiment, loaded)  # before the job: MLflow missing is an Error now
    harness.reap_orphans(loaded.jobs_dir if loaded else None, say=echo_err)
    definition, notes = definition_from_options(loaded, options)
    harness.check_local(definition)  # before a backend is chosen (or an image built)
    for gap in definition.local_gaps():
        echo_err(f"warning: a local run ignores {gap}")
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err, gpus=gpus)
    jobs_dir = output_dir or (loaded.jobs_dir if loaded else Path.cwd() / ".byoc" / "jobs")
    previous = harness.resolve_incremental(jobrecord.resolve_name(jobs_dir, incremental_from),
                                           jobs_dir) if incremental_from else None
    for note in notes:
        echo_err(f"warning: {note}")
    job_name = options.pop("job_name")
    if where is not None and job_name is None:  # named here, so its directory is known after
        job_name = job.default_job_name(definition.base_name)
    run = harness.LocalRun(
        job_name=job_name, output_dir=output_dir, grace_seconds=grace,
        interrupt_after=tuple(job.parse_duration(part, "--interrupt-after")
                              for part in interrupt_after.split(",")) if interrupt_after else (),
        incremental_from=previous, image=getattr(chosen, "image", None))
    if options:
        raise click.UsageError(f"unexpected options: {', '.join(sorted(options))}")
    with logged(where, jobs_dir.resolve() / job_name if job_name else None):
        result = harness.train(definition, backend=chosen, project=loaded, run=run, log=log_line,
                               say=echo_err)
    for note in result.notes:
        echo_err(f"note: {note}")
    if result.status == jobrecord.STOPPED:
        echo_err(f"training job {result.job_name} stopped on request; "
                 + harness.left_model(result.model_archive, result.model_files))
        if result.model_files == 0:
            return
    else:
        echo_err(f"training job {result.job_name} completed; output: {result.output_archive}")
    click.echo(str(result.model_archive))


@local_group.command(name="stop")
@click.argument("job")
@click.option("--project", "project_path", type=click.Path(file_okay=False, exists=True,
              path_type=Path), help="The project (default: around the current directory).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The jobs directory the job was started with (default: the project's).")
def stop(job: str, project_path: Path | None, output_dir: Path | None) -> None:
    """Stop a running local training or processing job, as StopTrainingJob (StopProcessingJob)
    does (``latest``: the newest job still running).

    Every host gets SIGTERM, then SIGKILL after the job's grace period; the
    model (or the outputs) the hosts left is still collected, and the job ends Stopped.
    """
    jobs_dir = _jobs_dir(project_path, output_dir)
    running_latest = job == LATEST and not (jobs_dir / LATEST).is_dir()
    record = jobrecord.latest_running(jobs_dir) if running_latest else jobrecord.find(jobs_dir, job)
    harness.stop_job(record)
    left = "outputs" if record.kind == jobrecord.PROCESSING else "model"
    echo_err(f"stopping {record.name}: the byoc running it stops its hosts and collects the {left}")


@local_group.command(name="jobs")
@click.option("--project", "project_path", type=click.Path(file_okay=False, exists=True,
              path_type=Path), help="The project (default: around the current directory).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="A jobs directory given to `byoc local train --output-dir`, or a tuning job's directory.")
def jobs(project_path: Path | None, output_dir: Path | None) -> None:
    """List local training and processing jobs, newest first: name, status, secondary status
    (training jobs), duration (so far, for a running job), start and kind (TrainingJob or
    ProcessingJob).

    On a terminal this is a table with a header; piped, one tab-separated line per job and no
    header. Names are never shortened, so they can be copied whole.
    """
    jobs_dir = _jobs_dir(project_path, output_dir)
    if (jobs_dir / TUNING_REQUEST).is_file():  # a tuning job's directory: its training jobs
        jobs_dir = jobs_dir / TUNING_JOBS
    harness.reap_orphans(jobs_dir, say=echo_err)
    reap_all(jobs_dir, say=echo_err)  # the tuning jobs there, or beside, whose byoc died
    rows = [_job_row(record) for record in jobrecord.records(jobs_dir)]
    if not rows:
        echo_err(f"no local training jobs in {jobs_dir}")
    if not sys.stdout.isatty():
        for row in rows:
            click.echo("\t".join(row))
        return
    # aligned columns as wide as their longest value: nothing is cut, a narrow terminal wraps
    table = [("name", "status", "secondary status", "duration", "started", "kind"), *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        cells = (value.ljust(width) for value, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _job_row(record: jobrecord.JobRecord) -> tuple[str, str, str, str, str, str]:
    seconds = record.duration()
    duration = "-" if seconds is None else f"{seconds} s" + (" so far" if record.running else "")
    started = str(record.data.get("CreationTime", ""))[:19].replace("T", " ")
    kind = "ProcessingJob" if record.kind == jobrecord.PROCESSING else "TrainingJob"
    return (record.name, record.status, record.secondary or "-", duration, started or "-", kind)


def _jobs_dir(project_path: Path | None, output_dir: Path | None) -> Path:
    if output_dir is not None:
        return output_dir
    return Project.find(project_path).jobs_dir


@local_group.command()
@PROJECT
@IMAGE
@BACKEND
@click.option("--model", type=click.Path(exists=True, path_type=Path),
              help="model.tar.gz or a directory (default: the last local training job's).")
@click.option("--port", default=harness.DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535),
              help="Port on 127.0.0.1.")
@ENV
@GPUS
@click.option("--startup-timeout", type=float, show_default=f"{harness.DEFAULT_STARTUP_TIMEOUT:g}",
              help="Seconds to wait for /ping to answer 200 (serverless: at most 180).")
@click.option("--grace", default=harness.SERVE_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when stopping.")
@click.option("--serverless", is_flag=True,
              help="Serverless inference: non-root, read-only root file system with /tmp writable,"
                   " --memory MB, 4 MB payloads, 3 minutes to start, no GPUs (Docker).")
@click.option("--memory", "memory_mb", type=int, metavar="MB",
              help="--serverless: MemorySizeInMB (1024-6144 in steps of 1024); --multi-model: the"
                   " model cache's budget (sum of the extracted models' sizes).")
@click.option("--pipeline", metavar="IMAGE,IMAGE[,...]",
              help="An inference pipeline of 2-15 images sharing one network namespace, each on"
                   " its own SAGEMAKER_BIND_TO_PORT, chained in order (Serial) (Docker).")
@click.option("--direct", is_flag=True,
              help="--pipeline: Direct mode, each request goes to the container named by"
                   " `byoc local predict --target-container HOST`.")
@click.option("--async", "asynchronous", is_flag=True,
              help="Asynchronous inference: `byoc local predict --async FILE` queues FILE; the"
                   " answer is written to --async-output (Docker).")
@click.option("--async-output", type=click.Path(file_okay=False, path_type=Path),
              help="--async: where <inference-id>.out and <inference-id>-error.out go"
                   " (default: ./async-output).")
@click.option("--async-failure", type=click.Path(file_okay=False, path_type=Path),
              help="--async: where <inference-id>-error.out goes (S3FailurePath; default: the"
                   " --async-output directory).")
@click.option("--invocation-timeout", type=click.IntRange(1), metavar="S",
              help="--async: InvocationTimeoutSeconds, default 900, at most 3600.")
@click.option("--max-concurrent", type=click.IntRange(1), metavar="N",
              help="--async: MaxConcurrentInvocationsPerInstance; the rest wait in the queue"
                   " (default: the number of CPUs).")
@click.option("--multi-model", "multi_model", type=click.Path(path_type=Path), metavar="DIR",
              help="A multi-model endpoint: DIR of .tar.gz archives plays the S3 prefix;"
                   " `byoc local predict --target-model REL.tar.gz` picks one (Docker).")
def serve(project: Path | None, image: str | None, backend: str, model: Path | None, port: int,
          env: tuple[str, ...], gpus: str | None, startup_timeout: float | None, grace: float,
          serverless: bool, memory_mb: int | None, pipeline: str | None, direct: bool,
          asynchronous: bool, async_output: Path | None, async_failure: Path | None,
          invocation_timeout: int | None,
          max_concurrent: int | None, multi_model: Path | None) -> None:
    """Serve a model on 127.0.0.1 until Ctrl-C; with a hosting mode option, as that kind of
    SageMaker endpoint serves it (byoc plays the platform in front of the containers)."""
    mode = hosting.Mode(serverless=serverless, memory_mb=memory_mb, pipeline=pipeline,
                        direct=direct, asynchronous=asynchronous, async_output=async_output,
                        async_failure=async_failure,
                        invocation_timeout=invocation_timeout, max_concurrent=max_concurrent,
                        multi_model=multi_model, gpus=gpus, startup_timeout=startup_timeout)
    mode.check(backend)  # the platform's refusals come before any image is built or started
    if mode.images is not None and image is not None:
        raise click.UsageError("--image goes without --pipeline: the pipeline names its images")
    if mode.name is None:
        _serve_plain(project, image, backend, model, port, env, gpus,
                     harness.DEFAULT_STARTUP_TIMEOUT if startup_timeout is None else startup_timeout,
                     grace)
        return
    loaded = Project.find(project, required=image is None and mode.images is None)
    if mode.images is not None:
        chosen: Any = hosting.pipeline_backend(mode.images, backend, gpus)
    else:
        chosen = harness.choose_backend(backend, loaded, image, say=echo_err, gpus=gpus)
    model_path = harness.resolve_model(model, loaded) if model or mode.needs_model else None
    if model_path is not None:
        echo_err(f"model: {model_path}")
    try:
        with hosting.serve(mode, backend=chosen, model=model_path, port=port,
                           env=pairs(env, "--env"), grace_seconds=grace, log=log_line,
                           say=echo_err) as running:
            article = "an" if mode.title[:1] in "aeiou" else "a"
            echo_err(f"ready: {running.url} plays {article} {mode.title} endpoint (Ctrl-C to stop)")
            click.echo(running.url)
            sys.stdout.flush()
            while (exited := running.poll()) is None:
                time.sleep(0.5)
            key, status = exited
            raise ServeError(f"container {key} exited with status {status}",
                             detail=running.log_tail(key))
    except Interrupted as exc:
        echo_err("stopped; the containers and their files are removed")
        raise click.exceptions.Exit(exc.exit_code) from None


def _serve_plain(project: Path | None, image: str | None, backend: str, model: Path | None,
                 port: int, env: tuple[str, ...], gpus: str | None, startup_timeout: float,
                 grace: float) -> None:
    loaded = Project.find(project, required=image is None)
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err, gpus=gpus)
    model_path = harness.resolve_model(model, loaded)
    echo_err(f"model: {model_path}")
    try:
        with harness.serve(backend=chosen, model=model_path, port=port, env=pairs(env, "--env"),
                           startup_timeout=startup_timeout, grace_seconds=grace, log=log_line,
                           say=echo_err) as running:
            echo_err(f"ready: POST {running.url}/invocations (Ctrl-C to stop)")
            click.echo(running.url)
            sys.stdout.flush()
            while (status := running.server.poll()) is None:
                time.sleep(0.5)
            raise ServeError(f"the server exited with status {status}",
                             detail=running.server.log_tail())
    except Interrupted as exc:
        echo_err("stopped; the server and its files are removed")
        raise click.exceptions.Exit(exc.exit_code) from None


@local_group.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--url", default=f"http://127.0.0.1:{harness.DEFAULT_PORT}", show_default=True,
              help="Where the server listens.")
@click.option("--content-type", help="Content-Type of the body (default: from the file's suffix).")
@click.option("--accept", help="Accept header: the response type wanted.")
@click.option("--max-payload", type=float, metavar="MB",
              help=f"Largest body to send, in MiB (default: ${invoke.MAX_PAYLOAD_ENV} when set, as"
                   " the server reads it, else InvokeEndpoint's 6).")
@click.option("--target-model", metavar="REL.tar.gz",
              help="A multi-model endpoint's model: the archive's path under its prefix"
                   " (TargetModel).")
@click.option("--target-container", metavar="HOST",
              help="A Direct multi-container endpoint's container (TargetContainerHostname).")
@click.option("--async", "asynchronous", is_flag=True,
              help="InvokeEndpointAsync: queue FILE (at most 1 GB) on `byoc local serve --async`;"
                   " prints the inference ID (the answer's path goes to stderr).")
@click.option("--inference-id", help="--async: the InferenceId (default: a new UUID).")
def predict(file: Path | None, url: str, content_type: str | None, accept: str | None,
            max_payload: float | None, target_model: str | None, target_container: str | None,
            asynchronous: bool, inference_id: str | None) -> None:
    """POST FILE (or - for stdin) to /invocations and print the answer."""
    if asynchronous:
        if file is None or str(file) == "-":
            raise click.UsageError("--async takes a FILE (its InputLocation), not standard input")
        if target_model or target_container:
            raise click.UsageError("--async goes without --target-model and --target-container")
        kind = content_type or invoke.guess_content_type(file)
        queued = invoke.predict_async(url, file, kind, accept, inference_id)
        echo_err(f"queued; the answer goes to {queued.output_location}"
                 f" (a failure to {queued.failure_location})")
        click.echo(queued.inference_id)
        return
    if inference_id:
        raise click.UsageError("--inference-id goes with --async")
    limit = invoke.max_body(max_payload)
    body, kind = read_payload(file, content_type)
    answer = invoke.predict(url, body, kind, accept, limit=limit, target_model=target_model,
                            target_container=target_container)
    sys.stdout.buffer.write(answer.body)
    sys.stdout.flush()


local_group.add_command(process_command)
local_group.add_command(evaluate_command)
