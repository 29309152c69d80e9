"""The platform's side of SageMaker's hosting modes, played on this machine: byoc's front on
the served port does what the service does in front of the containers.

:mod:`.serverless` (ServerlessConfig), :mod:`.pipeline` (inference pipelines, Serial or
Direct), :mod:`.asynchronous` (AsyncInferenceConfig) and :mod:`.multimodel` (MultiModel);
:mod:`.front` is the HTTP front and its client, :mod:`.common` the endpoint's lifecycle.
Every mode runs on Docker only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ... import contract
from ...backends.base import Backend, LogSink
from ...errors import ConfigError
from ...say import Say, quiet
from . import asynchronous, multimodel, pipeline, serverless
from .common import Endpoint, require_docker

__all__ = ["Endpoint", "Mode", "pipeline_backend", "serve"]


@dataclass(frozen=True)
class Mode:
    """The hosting-mode options of ``byoc local serve``, as given."""

    serverless: bool = False
    memory_mb: int | None = None
    pipeline: str | None = None
    direct: bool = False
    asynchronous: bool = False
    async_output: Path | None = None
    async_failure: Path | None = None
    invocation_timeout: int | None = None
    max_concurrent: int | None = None
    multi_model: Path | None = None
    gpus: str | None = None
    startup_timeout: float | None = None

    @property
    def name(self) -> str | None:
        chosen = self._chosen()
        return chosen[0] if chosen else None

    @property
    def title(self) -> str:
        return {"serverless": "serverless", "pipeline": "Direct multi-container" if self.direct
                else "Serial inference pipeline", "async": "asynchronous",
                "multi-model": "multi-model"}.get(self.name or "", "real-time")

    @property
    def images(self) -> list[str] | None:
        if self.pipeline is None:
            return None
        return [part.strip() for part in self.pipeline.split(",") if part.strip()]

    @property
    def needs_model(self) -> bool:
        return self.name in ("serverless", "async")

    def _chosen(self) -> list[str]:
        return [name for name, on in (("serverless", self.serverless),
                                      ("pipeline", self.pipeline is not None),
                                      ("async", self.asynchronous),
                                      ("multi-model", self.multi_model is not None)) if on]

    def check(self, backend: str) -> None:
        """The refusals that need no engine: combinations, ranges, the backend.

        :raises ConfigError: naming the option and the SageMaker rule it breaks.
        """
        chosen = self._chosen()
        if len(chosen) > 1:
            if "serverless" in chosen:
                other = next(name for name in chosen if name != "serverless")
                raise ConfigError(f"--serverless with --{other}: a serverless endpoint"
                                  f" ({serverless.RULE}) is neither multi-model, multi-container"
                                  " nor asynchronous")
            raise ConfigError(f"pick one hosting mode: {', '.join('--' + name for name in chosen)}")
        mode = chosen[0] if chosen else None
        for given, option, owner in ((self.direct, "--direct", "pipeline"),
                                     (self.async_output is not None, "--async-output", "async"),
                                     (self.async_failure is not None, "--async-failure", "async"),
                                     (self.invocation_timeout is not None, "--invocation-timeout",
                                      "async"),
                                     (self.max_concurrent is not None, "--max-concurrent", "async")):
            if given and mode != owner:
                raise ConfigError(f"{option} goes with --{owner}")
        if self.memory_mb is not None and mode not in ("serverless", "multi-model"):
            raise ConfigError("--memory goes with --serverless or --multi-model")
        if mode is None:
            return
        require_docker(backend, mode)
        if mode == "serverless":
            serverless.check(self.memory_mb, self.gpus, self.startup_timeout)
        elif mode == "pipeline":
            pipeline.check_images(self.images or [])
        elif mode == "async":
            asynchronous.check_timeout(self.invocation_timeout)
        elif mode == "multi-model":
            multimodel.check_dir(self.multi_model)
            if self.memory_mb is not None and self.memory_mb < 1:
                raise ConfigError("--memory must be a positive number of MB")


def pipeline_backend(images: list[str], backend: str, gpus: str | None) -> Backend:
    """The Docker backend a pipeline's containers run on (the first image names it)."""
    from ...backends.docker import DockerBackend

    require_docker(backend, "pipeline")
    return DockerBackend(images[0], environ=os.environ, gpus=gpus)


@contextlib.contextmanager
def serve(mode: Mode, *, backend: Backend, model: Path | None, port: int,
          env: Mapping[str, str] | None = None, grace_seconds: float = contract.SERVE_STOP_GRACE,
          log: LogSink | None = None, say: Say = quiet) -> Iterator[Endpoint]:
    """The endpoint *mode* names, ready (every container's /ping answered 200)."""
    name = mode.name
    startup = mode.startup_timeout
    if name == "serverless":
        assert mode.memory_mb is not None
        with serverless.serve(backend=backend, model=model, memory_mb=mode.memory_mb, port=port,
                              env=env, startup_timeout=startup or contract.SERVERLESS_STARTUP_TIMEOUT,
                              grace_seconds=grace_seconds, log=log, say=say) as served:
            yield served
    elif name == "pipeline":
        with pipeline.serve(backend=backend, images=mode.images or [], direct=mode.direct,
                            model=model, port=port, env=env,
                            startup_timeout=startup or contract.STARTUP_TIMEOUT,
                            grace_seconds=grace_seconds, log=log, say=say) as served:
            yield served
    elif name == "async":
        with asynchronous.serve(backend=backend, model=model, port=port, env=env,
                                output=mode.async_output or Path("async-output"),
                                failures=mode.async_failure,
                                invocation_timeout=mode.invocation_timeout
                                or contract.ASYNC_INVOCATION_TIMEOUT,
                                max_concurrent=mode.max_concurrent or os.cpu_count() or 1,
                                startup_timeout=startup or contract.STARTUP_TIMEOUT,
                                grace_seconds=grace_seconds, log=log, say=say) as served:
            yield served
    elif name == "multi-model":
        assert mode.multi_model is not None
        with multimodel.serve(backend=backend, models=mode.multi_model, memory_mb=mode.memory_mb,
                              port=port, env=env, startup_timeout=startup or contract.STARTUP_TIMEOUT,
                              grace_seconds=grace_seconds, log=log, say=say) as served:
            yield served
    else:
        raise ConfigError("no hosting mode given")
