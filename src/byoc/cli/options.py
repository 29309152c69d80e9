"""Pieces the CLI modules share: error display and KEY=VALUE options."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from ..errors import ByocError, ConfigError


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
