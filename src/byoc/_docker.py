"""The one place byoc opens a Docker client and turns Docker's errors into text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import DockerUnavailableError


def docker_client(environ: Mapping[str, str] | None = None, *, timeout: int = 600,
                  alternative: str = "") -> Any:
    """A connected ``docker.DockerClient``.

    :param alternative: what the user may do instead, added to the error (e.g. ``use --backend
        process`` where there is such an option).
    :raises DockerUnavailableError: when the SDK is missing or no engine answers.
    """
    try:
        import docker
        import docker.errors
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise DockerUnavailableError("the docker Python package is not installed") from exc
    try:
        client = docker.from_env(environment=dict(environ) if environ is not None else None,
                                 timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailableError(
            "no Docker engine answers; start one" + (f" (or {alternative})" if alternative else ""),
            detail=str(exc)) from exc
    return client


def docker_available(environ: Mapping[str, str] | None = None) -> bool:
    try:
        docker_client(environ, timeout=5).close()
    except DockerUnavailableError:
        return False
    return True


def explain(exc: BaseException) -> str:
    """A Docker SDK error in one line: the engine's explanation when it gave one."""
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


def stream_error(chunk: Mapping[str, Any]) -> str:
    """The error of one chunk of a build or push stream ('' when it reports none).

    The engine reports a failed step or push in the stream, with HTTP status 200.
    """
    if "error" in chunk or "errorDetail" in chunk:
        detail = chunk.get("errorDetail") or {}
        return str(chunk.get("error") or detail.get("message") or "unknown error").strip()
    return ""
