"""The one place byoc opens a Docker client."""

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
