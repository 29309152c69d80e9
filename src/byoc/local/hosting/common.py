"""What every hosting mode shares: the Docker-only rule, the endpoint's lifecycle (containers,
front, scratch directory) and the answers the platform gives for its own refusals."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ... import contract
from ...backends.base import Backend, LogSink, Server, stop_all
from ...backends.docker import ContainerOptions, ContainerServer, DockerBackend
from ...errors import ArchiveError, ConfigError, ServeError, UpstreamError
from ...say import Say, quiet
from .. import staging
from ..backend import interrupted, sigterm_interrupts
from ..serve import check_port_free, free_port, wait_until_ready
from .front import Answer, Front, Handle, Reply, Upstream

MODES = ("multi-model", "pipeline", "async", "serverless")


def require_docker(backend: Backend | str, mode: str) -> None:
    """:raises ConfigError: when *backend* is not Docker: the platform's side of *mode* runs
    containers with their own network, users, file systems and limits."""
    name = backend if isinstance(backend, str) else backend.name
    if name == "process":
        raise ConfigError(f"--{mode} needs the docker backend: SageMaker runs this hosting mode"
                          " as containers (its own ports, users, read-only file systems, memory"
                          " limits and model volumes), which plain processes cannot rehearse;"
                          " use --backend docker")


def docker_backend(backend: Backend, mode: str) -> DockerBackend:
    require_docker(backend, mode)
    if not isinstance(backend, DockerBackend):
        raise ConfigError(f"--{mode} needs the docker backend")
    return backend


class Endpoint:
    """The containers and the front of one local endpoint; closed by :func:`endpoint`."""

    def __init__(self, backend: DockerBackend, port: int, log: LogSink, say: Say) -> None:
        self.backend = backend
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.say = say
        self.scratch = Path(tempfile.mkdtemp(prefix="byoc-host-"))
        self.suffix = uuid.uuid4().hex[:6]
        self.servers: dict[str, ContainerServer] = {}
        self.holders: list[ContainerServer] = []
        self.front: Front | None = None
        #: The mode's own state (the multi-model cache).
        self.state: Any = None

    def name(self, part: str) -> str:
        return f"byoc-serve-{self.port}-{part}-{self.suffix}"

    def start(self, key: str, options: ContainerOptions, url: str = "") -> ContainerServer:
        server = self.backend.run_container(options, self.log, url=url)
        self.servers[key] = server
        return server

    def hold_network(self, publish: dict[int, int]) -> str:
        """A placeholder owning the network namespace the containers share; its ``network_mode``."""
        holder = self.backend.network_holder(self.name("net"), publish, self.log)
        self.holders.append(holder)
        return f"container:{holder.container.id}"

    def address(self, key: str, inside: int, published: int) -> tuple[str, int]:
        """Where the front reaches a ready container: its own address on the engine's bridge,
        as the platform reaches its containers (no ``docker-proxy`` hop), when this machine can
        connect to it; else its port published on 127.0.0.1 (Docker Desktop)."""
        owner = self.holders[0] if self.holders else self.servers[key]
        try:
            owner.container.reload()
            settings = owner.container.attrs.get("NetworkSettings") or {}
            ips = [settings.get("IPAddress")] + [network.get("IPAddress") for network in
                                                 (settings.get("Networks") or {}).values()]
            for ip in filter(None, ips):
                with contextlib.suppress(OSError), socket.create_connection((ip, inside), 0.5):
                    return ip, inside
        except Exception:  # an engine that says less: the published port always works
            pass
        return "127.0.0.1", published

    def wait(self, timeout: float, interval: float = 0.25) -> None:
        """Every container's ``/ping`` answers 200 within *timeout* (counted from now)."""
        deadline = time.monotonic() + timeout
        for key, server in self.servers.items():
            try:
                wait_until_ready(server, max(0.0, deadline - time.monotonic()), interval)
            except ServeError as exc:
                raise ServeError(f"container {key}: {exc.message}", detail=exc.detail) from None

    def serve(self, handle: Handle) -> None:
        self.front = Front(self.port, handle)

    def poll(self) -> tuple[str, int] | None:
        """The first container that exited, and its status."""
        for key, server in self.servers.items():
            status = server.poll()
            if status is not None:
                return key, status
        return None

    def log_tail(self, key: str) -> str:
        return self.servers[key].log_tail()

    def close(self, grace: float, say: Say | None) -> None:
        try:
            if self.front is not None:
                self.front.close()
        finally:
            runs: dict[str, Server] = dict(self.servers)
            try:
                stop_all(runs, grace, say=say)
            finally:
                for server in [*self.servers.values(), *self.holders]:
                    server.close()
                staging.remove_tree(self.scratch)


@contextlib.contextmanager
def endpoint(backend: DockerBackend, port: int, grace: float, log: LogSink | None,
             say: Say = quiet) -> Iterator[Endpoint]:
    """An :class:`Endpoint` on 127.0.0.1:*port*: everything it started is removed on the way
    out, also on failure and Ctrl-C (which raises :class:`~byoc.errors.Interrupted`)."""
    check_port_free(port)
    served = Endpoint(backend, port, log or (lambda host, line: None), say)
    work_done = False
    try:
        with sigterm_interrupts():
            try:
                yield served
                work_done = True
            except KeyboardInterrupt as exc:
                raise interrupted("server stopped", exc) from None
    finally:
        served.close(grace, None if work_done else say)


def inner_port() -> int:
    """A free port on 127.0.0.1 for a container's published port (the front owns the served one)."""
    return free_port()


def upstream_failure(exc: UpstreamError, container: str) -> tuple[int, str]:
    """The status and message InvokeEndpoint gives when a container does not answer (ModelError)."""
    if exc.timed_out:
        return 424, (f"ModelError: Your invocation timed out while waiting for a response from"
                     f" container {container}.")
    return 424, f"ModelError: container {container} did not answer: {exc}"


def label_is_true(labels: dict[str, Any], label: str) -> bool:
    return str(labels.get(label, "")).strip().lower() == "true"


def stage_model(model: Path | None, scratch: Path) -> Path | None:
    """*model* as the directory to mount at /opt/ml/model (an archive is extracted into
    *scratch*). :raises ArchiveError: for an unsafe archive or one that holds no file."""
    from ... import archive

    if model is None:
        return None
    if model.is_dir():
        return model.resolve()
    target = scratch / "model"
    if archive.extract(model, target).files == 0:
        raise ArchiveError(f"--model {model}: the archive holds no model (no file); the job that"
                           " made it saved nothing")
    return target


def passed_headers(request_headers: Any, accept: bool = True) -> dict[str, str]:
    """The headers InvokeEndpoint passes to a container: Content-Type, Accept and the
    ``X-Amzn-SageMaker-*`` ones."""
    kept = {}
    for name, value in request_headers.items():
        lower = name.lower()
        if lower == "content-type" or (accept and lower == "accept") \
                or lower.startswith("x-amzn-sagemaker-"):
            kept[name] = value
    return kept


def relay(answer: Answer) -> Reply:
    """A container's answer as the front's reply (status, body, Content-Type)."""
    headers = {"Content-Type": answer.content_type} if answer.content_type else {}
    return Reply(answer.status, answer.body, headers)


def ping(upstream: Upstream, container: str = "primary") -> Reply:
    """The platform's health check: the container's ``/ping`` answer, or the ModelError it
    gives when the container does not answer in time."""
    try:
        return relay(upstream.call("GET", "/ping", timeout=contract.PING_TIMEOUT))
    except UpstreamError as exc:
        return Reply.text(*upstream_failure(exc, container))
