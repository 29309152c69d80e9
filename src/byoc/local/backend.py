"""Which backend runs a local job (Docker or processes), and Ctrl-C/SIGTERM as one interruption."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Mapping
from types import FrameType

from .. import images
from .._docker import docker_available
from ..backends.base import ProcessingBackend
from ..backends.docker import DockerBackend, device_request
from ..backends.process import ProcessBackend, check_toolchain
from ..errors import (
    ConfigError,
    Interrupted,
    Terminated,
)
from ..project import Project
from ..say import Say, quiet

BACKENDS = ("auto", "docker", "process")


def choose_backend(kind: str, project: Project | None, image: str | None,
                   say: Say = quiet, environ: Mapping[str, str] | None = None,
                   gpus: str | None = None) -> ProcessingBackend:
    """The backend *kind* names; ``auto`` is Docker when an engine answers, else processes.

    On Docker without *image*, the project's ``<image>:latest`` is built when missing and rebuilt
    when the project changed since it was built (:func:`byoc.images.ensure_current`).

    :param gpus: GPUs for every container (``docker run --gpus``): Docker only.
    :raises ConfigError: when the process backend is asked for an image byoc did not make,
        or for GPUs.
    :raises BuildError: when that build fails.
    """
    if kind not in BACKENDS:
        raise ConfigError(f"unknown backend {kind!r}; use auto, docker or process")
    if gpus is not None:
        try:
            device_request(gpus)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if kind == "auto":
        if gpus is not None or docker_available(environ):
            kind = "docker"
        elif project is not None and image is None:
            kind = "process"
        else:
            kind = "docker"  # an --image needs an engine: let it say why there is none
        say(f"backend: {kind}" + (" (a Docker engine answers)" if kind == "docker" else
                                  " (no Docker engine answers; running the programs as processes)"))
    if kind == "process":
        if gpus is not None:
            raise ConfigError("--gpus needs the docker backend: the process backend runs the"
                              " programs on this machine, which sees its own GPUs as they are")
        if project is None or image is not None:
            raise ConfigError("--backend process runs a byoc project's programs; --image needs Docker")
        if not (project.program_dir / "train").is_file():
            raise ConfigError(f"{project.program_dir} has no train program")
        check_toolchain(project.program_dir)
        return ProcessBackend(project.program_dir, say=say)
    if image is None:
        if project is None:
            raise ConfigError("pass --image, or run inside a byoc project")
        image = f"{project.image}:latest"
        # the project's image must be what the project is now: built when missing, rebuilt
        # when the project changed since (an --image is run as it is)
        images.ensure_current(project.root, image, log=say, environ=environ)
    return DockerBackend(image, environ, gpus=gpus)


class SigTerm(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so the same cleanup runs."""


def interrupted(message: str, cause: BaseException) -> Interrupted:
    """The error to raise after *cause* (Ctrl-C or SIGTERM) stopped byoc: exit 130 or 143."""
    return Terminated(message) if isinstance(cause, SigTerm) else Interrupted(message)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM to byoc like Ctrl-C (as :class:`SigTerm`), so cleanup runs."""
    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise SigTerm

    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


