"""``--experiment NAME``: a local job logged as an MLflow run once it is over
(:mod:`byoc.local.experiments`).

A command that runs a local job takes :data:`EXPERIMENT`, calls :func:`tracking` before the
job starts (so a missing MLflow is an ``Error:`` before anything runs) and runs the job inside
:func:`logged`, which logs whatever the job left, whatever its outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from ..local import experiments
from ..project import Project
from .options import echo_err

EXPERIMENT = click.option(
    "--experiment", metavar="NAME",
    help="Log the job as a run of this MLflow experiment (default: byoc.toml's [experiment]"
         f" name), in $MLFLOW_TRACKING_URI or the project's mlflow.db. Needs {experiments.INSTALL}.")


def tracking(name: str | None, project: Project | None) -> experiments.Tracking | None:
    """Where the job's run goes (None: not logged). :raises ConfigError: without MLflow."""
    return experiments.resolve(name, project)


@contextlib.contextmanager
def logged(where: experiments.Tracking | None, job_dir: Path | None,
           log: Callable[..., str | None] = experiments.log_job, *, new: bool = True) -> Iterator[None]:
    """Run the body (the job), then log *job_dir* with *log*, even when the job failed or was
    interrupted; with *new*, a directory that was there before the body (another job's, in the
    way) is not logged."""
    existed = new and job_dir is not None and job_dir.exists()
    try:
        yield
    finally:
        if where is not None and job_dir is not None and not existed and job_dir.is_dir():
            log(where, job_dir, say=echo_err)
