"""``byoc build``: build a project's image with a live log."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from ._docker import docker_client, explain, stream_error
from .errors import BuildError, ConfigError
from .say import Say, quiet

TAIL_LINES = 25
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")


def build(context: Path, *, tag: str, build_args: Mapping[str, str] | None = None,
          platform: str | None = None, no_cache: bool = False, network: str | None = None,
          log: Say = quiet, environ: Mapping[str, str] | None = None) -> str:
    """Build the Dockerfile in *context* as *tag*, streaming the log to *log*.

    :returns: the image reference (*tag*).
    :raises BuildError: with the failing step and the tail of the log.
    :raises DockerUnavailableError: when no engine answers.
    """
    if not TAG_PATTERN.fullmatch(tag):
        raise ConfigError(f"invalid image tag {tag!r}")
    if not (context / "Dockerfile").is_file():
        raise ConfigError(f"no Dockerfile in {context}")
    client = docker_client(environ)
    import docker.errors

    tail: deque[str] = deque(maxlen=TAIL_LINES)
    step = ""
    try:
        stream = client.api.build(path=str(context), tag=tag, buildargs=dict(build_args or {}),
                                  platform=platform, nocache=no_cache, network_mode=network,
                                  rm=True, forcerm=True, decode=True)
        for chunk in stream:
            error = stream_error(chunk)
            if error:
                raise BuildError(f"build failed at {step or 'the first step'}: {error}",
                                 detail="\n".join(tail))
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in text.splitlines():
                if not line.strip():
                    continue
                if line.startswith("Step "):
                    step = line.strip()
                tail.append(line)
                log(line)
    except docker.errors.APIError as exc:
        raise BuildError(f"build failed: {explain(exc)}", detail="\n".join(tail)) from exc
    return tag


def image_exists(reference: str, environ: Mapping[str, str] | None = None) -> bool:
    import docker.errors

    try:
        docker_client(environ).images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True
