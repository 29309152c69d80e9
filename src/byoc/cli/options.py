"""Pieces the CLI modules share: error display, KEY=VALUE pairs and the common options."""

from __future__ import annotations

import functools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from .. import contract, local
from ..errors import BuildError, ByocError, ConfigError, Interrupted

F = TypeVar("F", bound=Callable[..., Any])

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
ENV_FILE_HELP = ("File of KEY=VALUE lines, as `docker run --env-file` reads: # comments, a bare"
                 " KEY takes byoc's value; --env wins over it. Repeatable. Values never appear"
                 " on a command line.")


def env_options(help: str = "Environment variable for the container. Repeatable."
                ) -> Callable[[F], F]:
    """``--env KEY=VALUE`` and ``--env-file FILE``; the command gets one ``env`` tuple of
    ``KEY=VALUE`` items, the files' first, so that ``--env`` overrides them."""
    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, env: tuple[str, ...] = (), env_file: tuple[Path, ...] = (),
                **kwargs: Any) -> Any:
            from_files = [item for path in env_file for item in read_env_file(path)]
            return command(*args, env=(*from_files, *env), **kwargs)

        with_file = click.option("--env-file", "env_file", multiple=True, metavar="FILE",
                                 type=click.Path(dir_okay=False, path_type=Path),
                                 help=ENV_FILE_HELP)(run)
        return cast(F, click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
                                    help=help)(with_file))
    return decorate


ENV = env_options()


def read_env_file(path: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``KEY=VALUE`` items of an env file, as ``docker run --env-file`` reads one: a line
    per variable, leading blanks dropped, ``#`` lines and empty lines skipped, the value taken
    as it is (no quotes removed); a bare ``KEY`` takes *environ*'s (byoc's) value, or is
    skipped when it has none.

    :raises ConfigError: when the file cannot be read, or a line has no name or a name with
        blanks in it.
    """
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"--env-file {path}: cannot read it: {reason}") from None
    items = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise ConfigError(f"--env-file {path} line {number}: expected KEY=VALUE, with no blanks"
                              " in KEY")
        if sep:
            items.append(f"{key}={value}")
        elif key in env:
            items.append(f"{key}={env[key]}")
    return items


#: The log lines this command has streamed to the terminal (:func:`log_line`), the last of them.
STREAMED: deque[str] = deque(maxlen=2000)


def already_streamed(detail: str) -> bool:
    """Whether every line of *detail* (a log's tail) was streamed by :func:`log_line` already."""
    lines = [line.rstrip() for line in detail.splitlines() if line.strip()]
    return bool(lines) and set(lines) <= set(STREAMED)


class ByocGroup(click.Group):
    """Shows a :class:`ByocError` as ``Error: <message>`` on stderr and exits with its code.

    Its detail follows, unless it is a log's tail the user saw as it came (one rule for every
    command: a detail already streamed is not printed twice).
    """

    def invoke(self, ctx: click.Context) -> Any:
        STREAMED.clear()
        try:
            return super().invoke(ctx)
        except BuildError as exc:
            # a log's tail goes above the Error: line, which stays last on the screen
            if exc.detail and not already_streamed(exc.detail):
                click.echo(exc.detail.rstrip(), err=True)
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except ByocError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.detail and not already_streamed(exc.detail):
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
    STREAMED.append(line.rstrip())


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
