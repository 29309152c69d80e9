"""``byoc local train | serve | predict``: options in, library calls out."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .. import contract, invoke, jobrecord, metrics, stopping
from .. import local as harness
from ..errors import ConfigError, Interrupted, ServeError
from ..inputs.config import InputOptions
from ..project import Project
from .options import BACKEND, ENV, IMAGE, PROJECT, channel_paths, echo_err, log_line, pairs


@click.group(name="local")
def local_group() -> None:
    """Run an image's train and serve locally, as SageMaker would."""


@local_group.command()
@PROJECT
@IMAGE
@BACKEND
@click.option("--channel", multiple=True, metavar="NAME=PATH",
              help="Input channel from a directory or file (default: local_test/test_dir/input/data/*).")
@click.option("--content-type", "content_types", multiple=True, metavar="NAME=TYPE",
              help="ContentType of a channel in inputdataconfig.json.")
@click.option("--hyperparameter", multiple=True, metavar="KEY=VALUE",
              help="A hyperparameter, sent as the string given. Repeatable.")
@click.option("--hyperparameters", "hyperparameters_file", type=click.Path(dir_okay=False, exists=True,
              path_type=Path), help="JSON file of hyperparameters (default: local_test's).")
@click.option("--instance-count", default=1, show_default=True, type=int,
              help="Hosts algo-1..algo-N, each in its own container.")
@click.option("--distribution", multiple=True, metavar="NAME=KIND",
              help="S3DistributionType of a channel: FullyReplicated or ShardedByS3Key.")
@click.option("--input-mode", metavar="File|FastFile|Pipe",
              help="TrainingInputMode of the job (default: byoc.toml's [train] input_mode, else File).")
@click.option("--channel-input-mode", "channel_modes", multiple=True, metavar="NAME=MODE",
              help="A channel's own InputMode, over --input-mode.")
@click.option("--record-wrapper", "record_wrappers", multiple=True, metavar="NAME=RecordIO",
              help="RecordWrapperType of a Pipe channel: each file (or manifest attribute) becomes"
                   " one RecordIO record.")
@click.option("--compression", "compressions", multiple=True, metavar="NAME=Gzip",
              help="CompressionType of a Pipe channel: its files are gunzipped into the pipe.")
@click.option("--shuffle", "shuffles", multiple=True, metavar="NAME=SEED",
              help="ShuffleConfig of a channel: Pipe mode reshuffles its objects every epoch.")
@click.option("--attribute-names", "attribute_names", multiple=True, metavar="NAME=A,B",
              help="Make channel NAME an AugmentedManifestFile (a JSON-lines file) streaming these"
                   " attributes in order (Pipe mode only).")
@ENV
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the job's directory goes (default: .byoc/jobs in the project).")
@click.option("--job-name", help="Training job name (default: <project>-<timestamp>).")
@click.option("--grace", default=harness.TRAIN_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when stopping.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path),
              help="CheckpointConfig.S3Uri: a local directory playing S3. Restored into every host"
                   " at start, synced while the job runs.")
@click.option("--checkpoint-local-path", default=contract.CHECKPOINT_PATH, show_default=True,
              help="CheckpointConfig.LocalPath in the container.")
@click.option("--spot", is_flag=True, help="EnableManagedSpotTraining (simulated).")
@click.option("--max-run", metavar="DURATION",
              help="StoppingCondition.MaxRuntimeInSeconds, e.g. 3600, 90s, 5m, 2h (default 1 day).")
@click.option("--max-wait", metavar="DURATION",
              help="StoppingCondition.MaxWaitTimeInSeconds (with --spot): at least --max-run.")
@click.option("--interrupt-after", metavar="DURATION[,DURATION...]",
              help="With --spot: simulate a capacity reclaim this long into each attempt's"
                   " training, e.g. 30s,1m (two interruptions).")
@click.option("--incremental-from", metavar="JOB|PATH",
              help="Incremental training: a local job's (or any) model.tar.gz as the model channel.")
@click.option("--metric", multiple=True, metavar="NAME=REGEX",
              help="A MetricDefinition over the logs (the first group is the value), added to"
                   " byoc.toml's metric_definitions. Repeatable.")
def train(project: Path | None, image: str | None, backend: str, channel: tuple[str, ...],
          content_types: tuple[str, ...], hyperparameter: tuple[str, ...],
          hyperparameters_file: Path | None, instance_count: int, distribution: tuple[str, ...],
          input_mode: str | None, channel_modes: tuple[str, ...], record_wrappers: tuple[str, ...],
          compressions: tuple[str, ...], shuffles: tuple[str, ...], attribute_names: tuple[str, ...],
          env: tuple[str, ...], output_dir: Path | None, job_name: str | None, grace: float,
          checkpoint_dir: Path | None, checkpoint_local_path: str, spot: bool,
          max_run: str | None, max_wait: str | None, interrupt_after: str | None,
          incremental_from: str | None, metric: tuple[str, ...]) -> None:
    """Run a training job against local channels; print the model archive's path."""
    inputs = InputOptions.parse(
        input_mode=input_mode, channel_modes=pairs(channel_modes, "--channel-input-mode"),
        record_wrappers=pairs(record_wrappers, "--record-wrapper"),
        compressions=pairs(compressions, "--compression"), shuffle_seeds=pairs(shuffles, "--shuffle"),
        attribute_names=pairs(attribute_names, "--attribute-names"))
    loaded = Project.find(project, required=image is None)
    harness.reap_orphans(loaded.jobs_dir if loaded else None, say=echo_err)
    scanner = metrics.scanner_for(loaded, metric)
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err)
    jobs_dir = output_dir or (loaded.jobs_dir if loaded else Path.cwd() / ".byoc" / "jobs")
    previous = harness.resolve_incremental(incremental_from, jobs_dir) if incremental_from else None
    channels = channel_paths(channel)
    hyperparameters = harness.hyperparameters_of(loaded, hyperparameters_file,
                                                 pairs(hyperparameter, "--hyperparameter"))
    result = harness.train(
        backend=chosen, project=loaded, channels=channels, hyperparameters=hyperparameters,
        content_types=pairs(content_types, "--content-type"),
        distribution=pairs(distribution, "--distribution"), instance_count=instance_count,
        env=pairs(env, "--env"), output_dir=output_dir, job_name=job_name,
        grace_seconds=grace, log=log_line, say=echo_err, inputs=inputs,
        checkpoint_dir=checkpoint_dir, checkpoint_local_path=checkpoint_local_path, spot=spot,
        max_runtime=stopping.parse_duration(max_run, "--max-run") if max_run else None,
        max_wait=stopping.parse_duration(max_wait, "--max-wait") if max_wait else None,
        interrupt_after=[stopping.parse_duration(part, "--interrupt-after")
                         for part in interrupt_after.split(",")] if interrupt_after else (),
        incremental_from=previous, image=getattr(chosen, "image", None), metrics=scanner)
    for note in result.notes:
        echo_err(f"note: {note}")
    if result.status == jobrecord.STOPPED:
        echo_err(f"training job {result.job_name} stopped on request; the model it left:")
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
    """Stop a running local training job, as StopTrainingJob does.

    Every host gets SIGTERM, then SIGKILL after the job's grace period; the
    model the hosts left is still collected, and the job ends Stopped.
    """
    record = jobrecord.find(_jobs_dir(project_path, output_dir), job)
    harness.stop_job(record)
    echo_err(f"stopping {record.name}: the byoc running it stops its hosts and collects the model")


@local_group.command(name="jobs")
@click.option("--project", "project_path", type=click.Path(file_okay=False, exists=True,
              path_type=Path), help="The project (default: around the current directory).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="A jobs directory given to `byoc local train --output-dir`.")
def jobs(project_path: Path | None, output_dir: Path | None) -> None:
    """List local training jobs, newest first."""
    jobs_dir = _jobs_dir(project_path, output_dir)
    harness.reap_orphans(jobs_dir, say=echo_err)
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "status", "secondary status", "duration", "started", box=None)
    for record in jobrecord.records(jobs_dir):
        seconds = record.data.get("TrainingTimeInSeconds")
        table.add_row(record.name, record.status, record.secondary,
                      f"{seconds} s" if seconds is not None else "-",
                      str(record.data.get("CreationTime", ""))[:19].replace("T", " "))
    Console(soft_wrap=True).print(table)


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
@click.option("--startup-timeout", default=harness.DEFAULT_STARTUP_TIMEOUT, show_default=True,
              type=float, help="Seconds to wait for /ping to answer 200.")
@click.option("--grace", default=harness.SERVE_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when stopping.")
def serve(project: Path | None, image: str | None, backend: str, model: Path | None, port: int,
          env: tuple[str, ...], startup_timeout: float, grace: float) -> None:
    """Serve a model on 127.0.0.1 until Ctrl-C."""
    loaded = Project.find(project, required=image is None)
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err)
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
    if file is None:
        raise ConfigError("pass a payload FILE, or - to read standard input")
    if str(file) == "-":
        body = sys.stdin.buffer.read()
        kind = content_type or invoke.guess_content_type(None)
    else:
        try:
            body = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror}") from exc
        kind = content_type or invoke.guess_content_type(file)
    answer = invoke.predict(url, body, kind, accept, limit=limit)
    sys.stdout.buffer.write(answer.body)
    sys.stdout.flush()
