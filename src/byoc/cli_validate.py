"""``byoc validate IMAGE``: options in, :func:`byoc.validate.validate` out, a table back."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import click

from . import validate as api
from ._cliutil import channel_paths, echo_err, pairs
from .errors import ConfigError
from .project import Project

RESULT_SHOWN = {api.PASS: "pass", api.FAIL: "FAIL", api.WARN: "warn", api.SKIPPED: "skipped"}


def _project() -> Project | None:
    try:
        return Project.load(None)
    except ConfigError:
        return None


def _log_line(name: str, line: str) -> None:
    click.echo(f"{name} | {line}", err=True)


def format_report(report: api.Report, width: int | None = None) -> str:
    """The checks as a table: check, result, rule, what it saw; a fix under each failure and warning."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    name_width = max(len("CHECK"), *(len(check.name) for check in report.checks))
    lead = name_width + 2 + 7 + 2 + 4 + 2
    wrap = max(40, width - lead)
    lines = [f"{'CHECK':<{name_width}}  {'RESULT':<7}  {'RULE':<4}  SAW"]
    for check in report.checks:
        saw = textwrap.wrap(check.saw, wrap) or [""]
        lines.append(f"{check.name:<{name_width}}  {RESULT_SHOWN[check.result]:<7}  "
                     f"{check.rule or '-':<4}  {saw[0]}")
        lines += [" " * lead + more for more in saw[1:]]
        if check.fix and check.result in (api.FAIL, api.WARN):
            lines += [" " * lead + part for part in textwrap.wrap(f"fix: {check.fix}", wrap)]
    counts = report.counts
    lines.append("")
    lines.append(f"{report.image}: {counts[api.PASS]} passed, {counts[api.FAIL]} failed,"
                 f" {counts[api.WARN]} warned, {counts[api.SKIPPED]} skipped"
                 f" in {report.seconds:.0f} s")
    return "\n".join(lines)


@click.command(name="validate")
@click.argument("image")
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
@click.option("--verbose", "-v", is_flag=True, help="Show the containers' logs.")
def validate_command(image: str, channel: tuple[str, ...], hyperparameter: tuple[str, ...],
                     payload: Path | None, content_type: str | None, model: Path | None,
                     train_only: bool, serve_only: bool, json_file: Path | None,
                     junit_file: Path | None, bad_hyperparameter: str | None,
                     startup_timeout: float, train_timeout: float, train_grace: float,
                     serve_grace: float, verbose: bool) -> None:
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
    """
    if train_only and serve_only:
        raise ConfigError("--train-only and --serve-only exclude each other")
    bad = None
    if bad_hyperparameter is not None:
        bad = next(iter(pairs([bad_hyperparameter], "--bad-hyperparameter").items()))
    channels = channel_paths(channel)
    report = api.validate(
        image, project=_project(), channels=channels,
        hyperparameters=pairs(hyperparameter, "--hyperparameter"), payload=payload,
        content_type=content_type, model=model, train=not serve_only, serve=not train_only,
        bad_hyperparameter=bad, train_grace=train_grace, serve_grace=serve_grace,
        startup_timeout=startup_timeout, train_timeout=train_timeout, say=echo_err,
        container_log=_log_line if verbose else None)
    for path, text in ((json_file, report.to_json()), (junit_file, report.to_junit())):
        if path is not None:
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    click.echo(format_report(report))
    if report.failed:
        raise click.exceptions.Exit(report.exit_code)
