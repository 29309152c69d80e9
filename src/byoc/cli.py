"""The ``byoc`` command: a thin layer of options over the library API."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import images, scaffold
from .errors import ByocError, ConfigError
from .project import Project

F = TypeVar("F", bound=Callable[..., Any])


class ByocGroup(click.Group):
    """Shows a :class:`ByocError` as ``Error: <message>`` on stderr and exits with its code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ByocError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.detail:
                click.echo(exc.detail.rstrip(), err=True)
            ctx.exit(exc.exit_code)


def pairs(values: Iterable[str], option: str) -> dict[str, str]:
    """``("K=V", ...)`` -> ``{"K": "V"}``; :raises ConfigError: for an item without ``=``."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} takes KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def echo_err(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=ByocGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="byoc")
def cli() -> None:
    """Build, run locally and ship Amazon SageMaker bring-your-own-container images."""


@cli.command()
@click.argument("name")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Where to create the project directory.")
@click.option("--no-input", is_flag=True, help="Take the template's defaults; do not prompt.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set a template variable (program, framework, aws_region, ecr_repository,"
                   " description). Repeatable.")
def new(name: str, output_dir: Path, no_input: bool, settings: tuple[str, ...]) -> None:
    """Create the project NAME: a SageMaker container with train and serve."""
    target = scaffold.new_project(name, output_dir=output_dir, no_input=no_input,
                                  extra_context=pairs(settings, "--set"))
    echo_err(f"Created {target}. Next: cd {target} && make test")
    click.echo(str(target))


@cli.command()
@click.argument("project", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--tag", "-t", help="Image reference to build (default: <image>:latest from byoc.toml).")
@click.option("--build-arg", multiple=True, metavar="KEY=VALUE", help="Docker build argument.")
@click.option("--platform", help="Target platform; SageMaker runs linux/amd64.")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--network", help="Network for RUN steps (e.g. host).")
def build(project: Path | None, tag: str | None, build_arg: tuple[str, ...], platform: str | None,
          no_cache: bool, network: str | None) -> None:
    """Build the project's Docker image, streaming the build log."""
    loaded = Project.load(project)
    reference = images.build(loaded.root, tag=tag or f"{loaded.image}:latest",
                             build_args=pairs(build_arg, "--build-arg"), platform=platform,
                             no_cache=no_cache, network=network, log=echo_err)
    click.echo(reference)


def main() -> None:
    cli.main(prog_name="byoc")


