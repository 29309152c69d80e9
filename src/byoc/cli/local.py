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
from ..local import record as jobrecord
from ..project import LATEST, Project
from ..tune.runner import JOBS as TUNING_JOBS
from ..tune.runner import REQUEST_FILE as TUNING_REQUEST
from ..tune.runner import reap_all
from .jobdef import definition_from_options, job_options
from .options import BACKEND, ENV, GPUS, IMAGE, PROJECT, echo_err, log_line, pairs, read_payload


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
def train(project: Path | None, image: str | None, backend: str, output_dir: Path | None,
          grace: float, interrupt_after: str | None, incremental_from: str | None,
          gpus: str | None, **options: Any) -> None:
    """Run a training job against local channels; print the model archive's path.

    The job options are byoc sagemaker train's: the same command line runs the same job there.
    """
    loaded = Project.find(project, required=image is None)
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
    run = harness.LocalRun(
        job_name=options.pop("job_name"), output_dir=output_dir, grace_seconds=grace,
        interrupt_after=tuple(job.parse_duration(part, "--interrupt-after")
                              for part in interrupt_after.split(",")) if interrupt_after else (),
        incremental_from=previous, image=getattr(chosen, "image", None))
    if options:
        raise click.UsageError(f"unexpected options: {', '.join(sorted(options))}")
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
    """Stop a running local training job, as StopTrainingJob does (``latest``: the newest
    job still running).

    Every host gets SIGTERM, then SIGKILL after the job's grace period; the
    model the hosts left is still collected, and the job ends Stopped.
    """
    jobs_dir = _jobs_dir(project_path, output_dir)
    running_latest = job == LATEST and not (jobs_dir / LATEST).is_dir()
    record = jobrecord.latest_running(jobs_dir) if running_latest else jobrecord.find(jobs_dir, job)
    harness.stop_job(record)
    echo_err(f"stopping {record.name}: the byoc running it stops its hosts and collects the model")


@local_group.command(name="jobs")
@click.option("--project", "project_path", type=click.Path(file_okay=False, exists=True,
              path_type=Path), help="The project (default: around the current directory).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="A jobs directory given to `byoc local train --output-dir`, or a tuning job's directory.")
def jobs(project_path: Path | None, output_dir: Path | None) -> None:
    """List local training jobs, newest first: name, status, secondary status, duration (so far,
    for a running job) and start.

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
    table = [("name", "status", "secondary status", "duration", "started"), *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        cells = (value.ljust(width) for value, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _job_row(record: jobrecord.JobRecord) -> tuple[str, str, str, str, str]:
    seconds = record.duration()
    duration = "-" if seconds is None else f"{seconds} s" + (" so far" if record.running else "")
    started = str(record.data.get("CreationTime", ""))[:19].replace("T", " ")
    return record.name, record.status, record.secondary, duration, started or "-"


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
@click.option("--startup-timeout", default=harness.DEFAULT_STARTUP_TIMEOUT, show_default=True,
              type=float, help="Seconds to wait for /ping to answer 200.")
@click.option("--grace", default=harness.SERVE_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when stopping.")
def serve(project: Path | None, image: str | None, backend: str, model: Path | None, port: int,
          env: tuple[str, ...], gpus: str | None, startup_timeout: float, grace: float) -> None:
    """Serve a model on 127.0.0.1 until Ctrl-C."""
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
def predict(file: Path | None, url: str, content_type: str | None, accept: str | None,
            max_payload: float | None) -> None:
    """POST FILE (or - for stdin) to /invocations and print the answer."""
    limit = invoke.max_body(max_payload)
    body, kind = read_payload(file, content_type)
    answer = invoke.predict(url, body, kind, accept, limit=limit)
    sys.stdout.buffer.write(answer.body)
    sys.stdout.flush()
