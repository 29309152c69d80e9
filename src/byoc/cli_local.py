"""``byoc local train | serve | predict``: options in, library calls out."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import invoke
from . import local as harness
from ._cliutil import echo_err, pairs
from .errors import ConfigError, Interrupted, ServeError
from .project import Project

PROJECT = click.argument("project", required=False,
                         type=click.Path(file_okay=False, exists=True, path_type=Path))
IMAGE = click.option("--image", help="Run this image instead of the project's (needs Docker).")
BACKEND = click.option("--backend", type=click.Choice(harness.BACKENDS), default="auto",
                       show_default=True,
                       help="docker, process (the project's programs on this machine) or auto.")
GPUS = click.option("--gpus", metavar="all|N|device=ID,..",
                    help="GPUs for the container(s), as `docker run --gpus` (Docker backend only).")
ENV = click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
                   help="Environment variable for the container. Repeatable.")


def _project(path: Path | None, image: str | None) -> Project | None:
    """The project at *path* (or around the current directory); optional with --image."""
    try:
        return Project.load(path)
    except ConfigError:
        if image is not None and path is None:
            return None
        raise


def _log_line(host: str, line: str) -> None:
    click.echo(f"{host} | {line}", err=True)


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
@ENV
@GPUS
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the job's directory goes (default: .byoc/jobs in the project).")
@click.option("--job-name", help="Training job name (default: <project>-<timestamp>).")
@click.option("--grace", default=harness.TRAIN_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when stopping.")
def train(project: Path | None, image: str | None, backend: str, channel: tuple[str, ...],
          content_types: tuple[str, ...], hyperparameter: tuple[str, ...],
          hyperparameters_file: Path | None, instance_count: int, distribution: tuple[str, ...],
          env: tuple[str, ...], gpus: str | None, output_dir: Path | None, job_name: str | None,
          grace: float) -> None:
    """Run a training job against local channels; print the model archive's path."""
    loaded = _project(project, image)
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err, gpus=gpus)
    channels = {name: Path(path) for name, path in pairs(channel, "--channel").items()} or None
    hyperparameters: dict[str, object] | None = None
    if hyperparameters_file is not None:
        try:
            hyperparameters = json.loads(hyperparameters_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {hyperparameters_file}: {exc}") from exc
        if not isinstance(hyperparameters, dict):
            raise ConfigError(f"{hyperparameters_file} must hold a JSON object")
    if hyperparameter:
        base = hyperparameters if hyperparameters is not None else (
            harness.project_defaults(loaded)[1] if loaded else {})
        hyperparameters = {**base, **pairs(hyperparameter, "--hyperparameter")}
    result = harness.train(
        backend=chosen, project=loaded, channels=channels, hyperparameters=hyperparameters,
        content_types=pairs(content_types, "--content-type"),
        distribution=pairs(distribution, "--distribution"), instance_count=instance_count,
        env=pairs(env, "--env"), output_dir=output_dir, job_name=job_name,
        grace_seconds=grace, log=_log_line, say=echo_err)
    for note in result.notes:
        echo_err(f"note: {note}")
    echo_err(f"training job {result.job_name} completed; output: {result.output_archive}")
    click.echo(str(result.model_archive))


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
    loaded = _project(project, image)
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err, gpus=gpus)
    model_path = harness.resolve_model(model, loaded)
    echo_err(f"model: {model_path}")
    try:
        with harness.serve(backend=chosen, model=model_path, port=port, env=pairs(env, "--env"),
                           startup_timeout=startup_timeout, grace_seconds=grace, log=_log_line,
                           say=echo_err) as running:
            echo_err(f"ready: POST {running.url}/invocations (Ctrl-C to stop)")
            click.echo(running.url)
            sys.stdout.flush()
            while (status := running.server.poll()) is None:
                time.sleep(0.5)
            raise ServeError(f"the server exited with status {status}",
                             detail=running.server.log_tail())
    except Interrupted:
        echo_err("stopped; the server and its files are removed")


@local_group.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--url", default=f"http://127.0.0.1:{harness.DEFAULT_PORT}", show_default=True,
              help="Where the server listens.")
@click.option("--content-type", help="Content-Type of the body (default: from the file's suffix).")
@click.option("--accept", help="Accept header: the response type wanted.")
def predict(file: Path | None, url: str, content_type: str | None, accept: str | None) -> None:
    """POST FILE (or - for stdin) to /invocations and print the answer."""
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
    answer = invoke.predict(url, body, kind, accept)
    sys.stdout.buffer.write(answer.body)
    sys.stdout.flush()


from . import cli_bench  # noqa: E402  (it takes this module's options)

local_group.add_command(cli_bench.bench_command)
