"""Serverless inference (ServerlessConfig): the container runs as a non-root user on a
read-only root file system with a writable ``/tmp`` only, under a memory limit of 1024 to
6144 MB and without GPUs; it must answer ``/ping`` within 3 minutes of starting, and the
platform refuses any request body over 4 MB before it reaches the container."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from ... import contract
from ...backends.base import Backend, LogSink
from ...backends.docker import ContainerOptions
from ...errors import ConfigError, UpstreamError
from ...say import Say, quiet
from .common import (
    Endpoint,
    docker_backend,
    endpoint,
    inner_port,
    passed_headers,
    ping,
    relay,
    stage_model,
    upstream_failure,
)
from .front import Handle, Reply, Request, Upstream

#: The user a serverless container runs as here: "nobody", any non-root UID would do.
USER = "65534:65534"
#: The ephemeral disk a serverless endpoint has (5 GB), as the size of the /tmp tmpfs.
TMP_SIZE = "5g"
RULE = "ServerlessConfig"


def check(memory_mb: int | None, gpus: str | None = None, startup_timeout: float | None = None) -> int:
    """The memory size, checked as CreateEndpointConfig checks ServerlessConfig.

    :raises ConfigError: naming the serverless rule that is broken.
    """
    sizes = contract.SERVERLESS_MEMORY_MB
    if memory_mb is None:
        raise ConfigError(f"--serverless needs --memory MB ({RULE}.MemorySizeInMB: one of"
                          f" {', '.join(map(str, sizes))})")
    if memory_mb not in sizes:
        raise ConfigError(f"--memory {memory_mb}: {RULE}.MemorySizeInMB is {sizes[0]} to"
                          f" {sizes[-1]} MB in steps of 1024 (one of {', '.join(map(str, sizes))})")
    if gpus is not None:
        raise ConfigError(f"--gpus with --serverless: a serverless endpoint ({RULE}) has no GPUs")
    limit = contract.SERVERLESS_STARTUP_TIMEOUT
    if startup_timeout is not None and startup_timeout > limit:
        raise ConfigError(f"--startup-timeout {startup_timeout:g}: a serverless endpoint ({RULE})"
                          f" must answer /ping within {limit:.0f} s of starting")
    return memory_mb


def options(name: str, memory_mb: int, port: int, model_dir: Path | None,
            env: Mapping[str, str]) -> ContainerOptions:
    """The container as a serverless endpoint runs it: non-root, read-only, /tmp writable."""
    mounts = [(model_dir, contract.IN_CONTAINER.model_dir.as_posix(), True)] if model_dir else []
    return ContainerOptions(
        name=name, env=dict(env), publish={contract.PORT: port}, user=USER, read_only=True,
        tmpfs={"/tmp": f"rw,exec,size={TMP_SIZE},mode=1777"}, memory_mb=memory_mb,
        mounts=mounts, gpus=False)


def handler(upstream: Upstream, limit: int = contract.SERVERLESS_MAX_PAYLOAD_BYTES) -> Handle:
    """The platform's side of each request: bodies over *limit* are refused unread."""

    def handle(request: Request) -> Reply:
        if request.method == "GET" and request.path == "/ping":
            return ping(upstream)
        if request.path != "/invocations" or request.method != "POST":
            return Reply.text(404, f"no route {request.method} {request.path}: POST /invocations")
        if request.length > limit:
            return Reply.text(413, f"ValidationError: the request body is {request.length} bytes;"
                                   f" a serverless endpoint ({RULE}) accepts at most {limit} (4 MB)")
        body = request.read()
        try:
            answer = upstream.call("POST", "/invocations", body, passed_headers(request.headers))
        except UpstreamError as exc:
            return Reply.text(*upstream_failure(exc, "primary"))
        return relay(answer)

    return handle


@contextlib.contextmanager
def serve(*, backend: Backend, model: Path | None, memory_mb: int, port: int,
          env: Mapping[str, str] | None = None,
          startup_timeout: float = contract.SERVERLESS_STARTUP_TIMEOUT,
          grace_seconds: float = contract.SERVE_STOP_GRACE, log: LogSink | None = None,
          say: Say = quiet) -> Iterator[Endpoint]:
    """Serve *model* as a serverless endpoint would; yield once ``/ping`` answers 200.

    :raises ConfigError: for a memory size ServerlessConfig refuses, or a backend other than
        Docker.
    :raises ServeError: when the container exits or misses the startup window.
    """
    check(memory_mb, startup_timeout=startup_timeout)
    docker = docker_backend(backend, "serverless")
    with endpoint(docker, port, grace_seconds, log, say) as served:
        model_dir = stage_model(model, served.scratch)
        inside = inner_port()
        served.start("primary", options(served.name("serverless"), memory_mb, inside, model_dir,
                                        env or {}), url=f"http://127.0.0.1:{inside}")
        say(f"serverless: user {USER}, read-only root file system, /tmp writable, {memory_mb} MB;"
            f" waiting for /ping (up to {startup_timeout:.0f} s)")
        served.wait(startup_timeout)
        address = served.address("primary", contract.PORT, inside)
        served.serve(handler(Upstream(address, contract.INVOCATION_TIMEOUT)))
        yield served
