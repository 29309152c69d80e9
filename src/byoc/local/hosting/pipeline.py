"""Inference pipelines (Serial) and multi-container endpoints (Direct): 2 to 15 containers of
one model share one instance, here one network namespace (a placeholder container owns it and
publishes their ports), each told its own ``SAGEMAKER_BIND_TO_PORT`` and
``SAGEMAKER_SAFE_PORT_RANGE``. Serial: container i's answer is container i+1's request, its
Content-Type carried along, the client's Accept given to the last container only. Direct: the
``X-Amzn-SageMaker-Target-Container-Hostname`` header picks the one container invoked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
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
    label_is_true,
    passed_headers,
    relay,
    stage_model,
    upstream_failure,
)
from .front import Handle, Reply, Request, Upstream

#: Container i listens on FIRST_PORT + i (never 8080: a container that ignores
#: SAGEMAKER_BIND_TO_PORT is not found where it was told to listen).
FIRST_PORT = contract.PORT + 1
#: Container i may take extra ports from SAFE_PORTS_FROM + i*1000 .. +999.
SAFE_PORTS_FROM = 20000


def check_images(images: Sequence[str]) -> None:
    """:raises ConfigError: unless there are 2 to 15 images (CreateModel's Containers)."""
    low, high = contract.PIPELINE_CONTAINERS
    if not low <= len(images) <= high:
        raise ConfigError(f"--pipeline has {len(images)} image(s); a model holds {low} to {high}"
                          " containers (CreateModel Containers)")


def refusal(image: str) -> str:
    """CreateModel's message for an image without the bind-to-port label."""
    return (f"CreateModel would refuse this model: ValidationException: Your Ecr Image {image} does"
            f" not contain required {contract.BIND_TO_PORT_LABEL}=true Docker label(s).")


def serial_handler(upstreams: Sequence[tuple[str, Upstream]],
                   limit: int = contract.MAX_PAYLOAD_BYTES) -> Handle:
    def handle(request: Request) -> Reply:
        routed = _common(request, upstreams[0][1], limit)
        if routed is not None:
            return routed
        if request.header(contract.TARGET_CONTAINER_HEADER):
            return Reply.text(400, "ValidationError: TargetContainerHostname is for Direct"
                                   " multi-container endpoints; this one is a Serial pipeline")
        body = request.read()
        headers = passed_headers(request.headers, accept=False)
        accept = request.header("Accept")
        for index, (host, upstream) in enumerate(upstreams):
            last = index == len(upstreams) - 1
            if last and accept:
                headers["Accept"] = accept
            try:
                answer = upstream.call("POST", "/invocations", body, headers)
            except UpstreamError as exc:
                return Reply.text(*upstream_failure(exc, host))
            if not 200 <= answer.status < 300 or last:
                if not 200 <= answer.status < 300:
                    return Reply.text(answer.status, f"container {host} answered {answer.status}:"
                                      f" {answer.body[:2000].decode('utf-8', 'replace').strip()}")
                return relay(answer)
            body = answer.body
            headers = {name: value for name, value in headers.items()
                       if name.lower() not in ("content-type", "accept")}
            if answer.content_type:
                headers["Content-Type"] = answer.content_type
        raise AssertionError("unreachable")

    return handle


def direct_handler(upstreams: Mapping[str, Upstream], limit: int = contract.MAX_PAYLOAD_BYTES) -> Handle:
    known = ", ".join(upstreams)

    def handle(request: Request) -> Reply:
        routed = _common(request, next(iter(upstreams.values())), limit)
        if routed is not None:
            return routed
        target = request.header(contract.TARGET_CONTAINER_HEADER)
        if not target:
            return Reply.text(400, "ValidationError: a Direct multi-container endpoint needs"
                                   " TargetContainerHostname (byoc local predict --target-container"
                                   f" HOST); its containers: {known}")
        upstream = upstreams.get(target)
        if upstream is None:
            return Reply.text(400, f"ValidationError: no container {target!r} in this model; its"
                                   f" containers: {known}")
        body = request.read()
        try:
            return relay(upstream.call("POST", "/invocations", body, passed_headers(request.headers)))
        except UpstreamError as exc:
            return Reply.text(*upstream_failure(exc, target))

    return handle


def _common(request: Request, first: Upstream, limit: int) -> Reply | None:
    if request.method == "GET" and request.path == "/ping":
        try:
            return relay(first.call("GET", "/ping", timeout=contract.PING_TIMEOUT))
        except UpstreamError as exc:
            return Reply.text(*upstream_failure(exc, "1"))
    if request.path != "/invocations" or request.method != "POST":
        return Reply.text(404, f"no route {request.method} {request.path}: POST /invocations")
    if request.length > limit:
        return Reply.text(413, f"ValidationError: the request body is {request.length} bytes;"
                               f" InvokeEndpoint accepts at most {limit} (6 MB)")
    return None


@contextlib.contextmanager
def serve(*, backend: Backend, images: Sequence[str], direct: bool = False,
          model: Path | None = None, port: int, env: Mapping[str, str] | None = None,
          startup_timeout: float = contract.STARTUP_TIMEOUT,
          grace_seconds: float = contract.SERVE_STOP_GRACE, log: LogSink | None = None,
          say: Say = quiet) -> Iterator[Endpoint]:
    """Serve *images* as one model's containers; yield once every ``/ping`` answers 200.

    :raises ConfigError: for a count CreateModel refuses or an image without the label.
    :raises ImageNotFoundError: for an image the engine does not have.
    :raises ServeError: when a container exits or misses the startup window.
    """
    check_images(images)
    docker = docker_backend(backend, "pipeline")
    for image in images:
        if not label_is_true(docker.image_labels(image), contract.BIND_TO_PORT_LABEL):
            raise ConfigError(refusal(image))
    names = contract.container_hostnames(images)
    inside = [FIRST_PORT + index for index in range(len(images))]
    published = {port_in: inner_port() for port_in in inside}
    with endpoint(docker, port, grace_seconds, log, say) as served:
        model_dir = stage_model(model, served.scratch)
        mounts = [(model_dir, contract.IN_CONTAINER.model_dir.as_posix(), True)] if model_dir else []
        network = served.hold_network(published)
        for index, (image, host, port_in) in enumerate(zip(images, names, inside, strict=True)):
            safe = SAFE_PORTS_FROM + index * 1000
            container_env = {**(env or {}), contract.BIND_TO_PORT_ENV: str(port_in),
                             contract.SAFE_PORT_RANGE_ENV: f"{safe}-{safe + 999}"}
            served.start(host, ContainerOptions(
                name=served.name(f"{index + 1}-{host}")[:120], image=image, env=container_env,
                network_mode=network, mounts=mounts), url=f"http://127.0.0.1:{published[port_in]}")
            say(f"container {index + 1}: {host} ({image}) on SAGEMAKER_BIND_TO_PORT={port_in}")
        say(f"waiting for each container's /ping (up to {startup_timeout:.0f} s)")
        served.wait(startup_timeout)
        upstreams = [(host, Upstream(served.address(host, port_in, published[port_in]),
                                     contract.INVOCATION_TIMEOUT))
                     for host, port_in in zip(names, inside, strict=True)]
        served.state = upstreams
        served.serve(direct_handler(dict(upstreams)) if direct else serial_handler(upstreams))
        yield served
