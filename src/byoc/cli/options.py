"""Pieces the CLI modules share: error display, KEY=VALUE pairs and the common options."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from .. import contract, local
from ..errors import BuildError, ByocError, ConfigError, Interrupted

PROJECT = click.argument("project", required=False,
                         type=click.Path(file_okay=False, exists=True, path_type=Path))
IMAGE = click.option("--image", help="Run this image as it is instead of the project's (needs"
                                    " Docker). The project's is built when missing or older than"
                                    " the project.")
BACKEND = click.option("--backend", type=click.Choice(local.BACKENDS), default="auto",
                       show_default=True,
                       help="docker, process (the project's programs on this machine) or auto.")
GPUS = click.option("--gpus", metavar="all|N|device=ID,..",
                    help="GPUs for the container(s), as `docker run --gpus` (Docker backend only).")
ENV = click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
                   help="Environment variable for the container. Repeatable.")


class ByocGroup(click.Group):
    """Shows a :class:`ByocError` as ``Error: <message>`` on stderr and exits with its code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BuildError as exc:
            # a log's tail goes above the Error: line, which stays last on the screen (a build
            # whose log was shown as it ran has no tail to repeat)
            if exc.detail:
                click.echo(exc.detail.rstrip(), err=True)
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except ByocError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.detail:
                click.echo(exc.detail.rstrip(), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            ctx.exit(Interrupted.exit_code)


def pairs(values: Iterable[str], option: str) -> dict[str, str]:
    """``("K=V", ...)`` -> ``{"K": "V"}``; :raises ConfigError: for an item without ``=``."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} takes KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def channel_paths(values: Iterable[str]) -> dict[str, Path] | None:
    """``--channel NAME=PATH`` options; None when there are none. :raises ConfigError: for an
    empty PATH (it would mean the current directory)."""
    channels: dict[str, Path] = {}
    for name, path in pairs(values, "--channel").items():
        contract.check_channel_name(name)
        if not path.strip():
            raise ConfigError(f"--channel {name}= has an empty path; give the channel's directory")
        channels[name] = Path(path)
    return channels or None


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def log_line(source: str, line: str) -> None:
    """Show one line of a container's (or host's) log on stderr, prefixed with its name."""
    click.echo(f"{source} | {line}", err=True)


def read_payload(file: Path | None, content_type: str | None) -> tuple[bytes, str]:
    """The request body from FILE (``-``: standard input) and its Content-Type (given, else
    guessed from the file's suffix). :raises ConfigError: without FILE or when it cannot be read.
    """
    from .. import invoke

    if file is None:
        raise ConfigError("pass a payload FILE, or - to read standard input")
    if str(file) == "-":
        return sys.stdin.buffer.read(), content_type or invoke.guess_content_type(None)
    try:
        body = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from exc
    return body, content_type or invoke.guess_content_type(file)
