"""``byoc doctor``: the CLI over :mod:`byoc.doctor`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ByocError


@click.command("doctor")
@click.argument("project", required=False, type=click.Path(file_okay=False, path_type=Path))
def doctor_command(project: Path | None) -> None:
    """Say which backends can run here (Docker engine; for the process backend uv, Python and
    nginx, or for an R project Rscript, its packages and nginx) and how to fix what is missing.
    Exits 1 when no backend can run."""
    from .. import doctor
    from ..project import Project

    found = Project.find(project, required=project is not None)  # outside a project: a new one's
    root = found.root if found else None
    report = doctor.diagnose(root)
    click.echo(doctor.render(report))
    if not report.usable:
        raise ByocError("no backend can run here; apply a fix above")
