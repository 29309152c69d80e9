"""``byoc doctor``: the CLI over :mod:`byoc.doctor`."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import ByocError, ConfigError


@click.command("doctor")
@click.argument("project", required=False, type=click.Path(file_okay=False, path_type=Path))
def doctor_command(project: Path | None) -> None:
    """Say which backends can run here (Docker engine; uv, Python, nginx for the process
    backend) and how to fix what is missing. Exits 1 when no backend can run."""
    from . import doctor
    from .project import Project

    try:
        root: Path | None = Project.load(project).root
    except ConfigError:
        if project is not None:
            raise
        root = None  # outside a project: check for a new one
    report = doctor.diagnose(root)
    click.echo(doctor.render(report))
    if not report.usable:
        raise ByocError("no backend can run here; apply a fix above")
