"""``byoc validate IMAGE``: options in, :func:`byoc.validate.validate` out, a table back."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from .. import validate as api
from ..errors import ConfigError
from ..project import Project
from .options import channel_paths, echo_err, log_line, pairs


@click.command(name="validate")
@click.argument("image", required=False)
@click.option("--channel", multiple=True, metavar="NAME=PATH",
              help="Training channel (default: the project's local_test/test_dir/input/data/*).")
@click.option("--hyperparameter", multiple=True, metavar="KEY=VALUE",
              help="Hyperparameter for training (added to the project's local_test ones).")
@click.option("--payload", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Sample request body for /invocations (default: the project's local_test/payload.*).")
@click.option("--content-type", help="Content-Type of --payload (default: from its suffix).")
@click.option("--model", type=click.Path(exists=True, path_type=Path),
              help="Serve this model.tar.gz or directory instead of the one training wrote.")
@click.option("--train-only", is_flag=True, help="Check training only.")
@click.option("--serve-only", is_flag=True, help="Check serving only (needs --model outside a project"
                                                  " with a local training job).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report as JSON to this file.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report as JUnit XML to this file.")
@click.option("--bad-hyperparameter", metavar="KEY=VALUE",
              help="A hyperparameter value the image must refuse (default: the first hyperparameter,"
                   " set to a nonsense value).")
@click.option("--startup-timeout", type=float, default=api.STARTUP_TIMEOUT, show_default=True,
              help="Seconds /ping may take to answer 200 after serve starts.")
@click.option("--train-timeout", type=float, default=api.TRAIN_TIMEOUT, show_default=True,
              help="Seconds one training run may take.")
@click.option("--train-grace", type=float, default=api.TRAIN_GRACE, hidden=True,
              help="Seconds from SIGTERM to SIGKILL for train (SageMaker: 120).")
@click.option("--serve-grace", type=float, default=api.SERVE_GRACE, hidden=True,
              help="Seconds from SIGTERM to SIGKILL for serve (SageMaker: 30).")
@click.option("--mode", "modes", multiple=True, metavar="MODE",
              type=click.Choice([*api.MODES, "all"], case_sensitive=False),
              help="Check a hosting mode instead of training and serving: multi-model, pipeline,"
                   " async, serverless or all (repeatable). Serves --model.")
@click.option("--memory", type=click.IntRange(min=6), metavar="MB",
              help="With --mode: the serverless container's memory (default 1024); for"
                   " multi-model, a limit under which copies of the model are loaded until the"
                   " server answers 507.")
@click.option("--verbose", "-v", is_flag=True, help="Show the containers' logs.")
def validate_command(image: str | None, channel: tuple[str, ...], hyperparameter: tuple[str, ...],
                     payload: Path | None, content_type: str | None, model: Path | None,
                     train_only: bool, serve_only: bool, json_file: Path | None,
                     junit_file: Path | None, bad_hyperparameter: str | None,
                     startup_timeout: float, train_timeout: float, train_grace: float,
                     serve_grace: float, modes: tuple[str, ...], memory: int | None,
                     verbose: bool) -> None:
    """Check that IMAGE honours SageMaker's container contract; exit 1 if a check fails.

    Runs `docker run IMAGE train` on the channels with no network, then `docker
    run IMAGE serve` with the model it wrote, and prints one line per check:
    pass, fail, warn or skipped, what it saw, the rule of SageMaker's container
    contract it enforces (A1 start and stop, A2 paths, A6 exit status and failure
    file, B1 serve start and stop, B2 HTTP) and for a failure what to change.
    Exit 0: nothing failed; 1: a check failed; 2: it could not run (bad input,
    no Docker engine, no such image).

    The server runs with --network none and is probed from a second container
    made from IMAGE that shares its network namespace, so IMAGE needs a python3
    for that. Without one, serve's ports are published on 127.0.0.1 and the
    no-network check is skipped.

    With --mode, IMAGE is started as SageMaker starts it for each hosting mode
    named (H1 multi-model, H2 pipeline, H3 async, H4 serverless) and serves
    --model (or the project's last local model) instead.
    """
    if modes and (train_only or serve_only):
        raise ConfigError("--mode checks serving in a hosting mode: leave out --train-only and"
                          " --serve-only")
    if modes and (channel or hyperparameter or bad_hyperparameter):
        raise ConfigError("--mode does not train: leave out --channel, --hyperparameter and"
                          " --bad-hyperparameter")
    if train_only and serve_only:
        raise ConfigError("--train-only and --serve-only exclude each other")
    bad = None
    if bad_hyperparameter is not None:
        bad = next(iter(pairs([bad_hyperparameter], "--bad-hyperparameter").items()))
    channels = channel_paths(channel)
    report = api.validate(
        image, project=Project.find(required=False), channels=channels,
        hyperparameters=pairs(hyperparameter, "--hyperparameter"), payload=payload,
        content_type=content_type, model=model, train=not serve_only, serve=not train_only,
        bad_hyperparameter=bad, train_grace=train_grace, serve_grace=serve_grace,
        startup_timeout=startup_timeout, train_timeout=train_timeout, say=echo_err,
        container_log=log_line if verbose else None, modes=modes, memory=memory)
    for path, text in ((json_file, report.to_json()), (junit_file, report.to_junit())):
        if path is not None:
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    width = shutil.get_terminal_size((120, 24)).columns
    click.echo(report.to_text(width))
    if report.failed:
        raise click.exceptions.Exit(report.exit_code)
