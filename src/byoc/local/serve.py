"""Serve a model on this machine as a SageMaker endpoint's container would be served."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import archive, contract
from ..backends.base import Backend, LogSink, Server, ServeSpec, stop_all
from ..errors import (
    ArchiveError,
    ConfigError,
    ServeError,
)
from ..project import Project
from ..say import Say, quiet
from . import staging
from .backend import interrupted, sigterm_interrupts

DEFAULT_PORT = contract.PORT
#: SageMaker's ping window at endpoint creation (ContainerStartupHealthCheckTimeoutInSeconds).
DEFAULT_STARTUP_TIMEOUT = contract.STARTUP_TIMEOUT
PING_TIMEOUT = contract.PING_TIMEOUT
SERVE_GRACE = contract.SERVE_STOP_GRACE
#: A server that cannot load its model answers /ping 503 with this header set to ``failed``
#: (and its reason as plain text); ``loading`` while it loads.
LOAD_STATUS_HEADER = "X-Model-Load-Status"
LOAD_FAILED = "failed"


@dataclass(frozen=True)
class RunningServer:
    url: str
    server: Server


def check_port_free(port: int) -> None:
    """:raises PortInUseError: when something listens on 127.0.0.1:*port*.

    The probe binds with ``SO_REUSEADDR``, as servers do, so connections of a stopped server
    still in TIME-WAIT do not count: only a listener (or a socket bound without that option)
    makes the port busy.
    """
    from ..errors import PortInUseError

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(f"port {port} on 127.0.0.1 is in use; pick another with --port"
                                 ) from exc


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def resolve_model(model: Path | None, project: Project | None) -> Path:
    """*model* when given, else the project's latest model.

    :raises ConfigError: when *model* does not exist or there is no model to default to.
    """
    if model is not None:
        if not model.exists():
            raise ConfigError(f"--model {model} does not exist")
        return model
    found = project.latest_model if project else None
    if found is None:
        raise ConfigError("no model to serve: train one with `byoc local train`, or pass --model")
    return found


@contextlib.contextmanager
def serve(*, backend: Backend, model: Path, port: int = DEFAULT_PORT,
          env: Mapping[str, str] | None = None, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
          grace_seconds: float = SERVE_GRACE, log: LogSink | None = None,
          say: Say = quiet, ready_interval: float = 0.25) -> Iterator[RunningServer]:
    """Serve *model* (a ``model.tar.gz`` or a directory) and yield once ``/ping`` answers 200.

    ``/ping`` is polled every *ready_interval* seconds.

    :raises ArchiveError: for an unsafe or unreadable archive, or one that holds no file
        (nothing is extracted).
    :raises PortInUseError: when the port is taken.
    :raises ServeError: when the server exits or is not ready within *startup_timeout*; its
        detail is the server's log tail (also when *log* got every line: the caller decides what
        it shows again).
    """
    check_port_free(port)
    scratch = Path(tempfile.mkdtemp(prefix="byoc-serve-"))
    server: Server | None = None
    work_done = False  # the caller's block ended normally: nobody asked for the stop
    try:
        model_dir = scratch / "model"
        if model.is_dir():
            model_dir = model.resolve()
        elif archive.extract(model, model_dir).files == 0:
            raise ArchiveError(f"model {model}: the archive holds no model (no file); the job that"
                               " made it saved nothing")
        spec = ServeSpec(model_dir=model_dir, root=scratch / "opt_ml", port=port, env=dict(env or {}),
                         grace_seconds=grace_seconds)
        spec.root.mkdir()
        server = backend.start_server(spec, log or (lambda host, line: None))
        say(f"waiting for {server.url}/ping (up to {startup_timeout:.0f} s)")
        with sigterm_interrupts():
            try:
                wait_until_ready(server, startup_timeout, ready_interval)
                yield RunningServer(server.url, server)
                work_done = True
            except KeyboardInterrupt as exc:
                raise interrupted("server stopped", exc) from None
    finally:
        try:
            if server is not None:
                try:
                    # a server shut down because its work is done stops without a word
                    stop_all({"serve": server}, grace_seconds, say=None if work_done else say)
                finally:
                    server.close()
        finally:  # also on a second Ctrl-C while the server stops
            staging.remove_tree(scratch)


def wait_until_ready(server: Server, timeout: float, interval: float = 0.25) -> None:
    """Poll ``GET /ping`` (2 s per check) until it answers 200.

    A server that is still loading its model gets the whole *timeout*; one that answers
    ``/ping`` with ``X-Model-Load-Status: failed`` has given up, and its reason (the body's
    first line) is reported at once, as is a server that exits.

    :raises ServeError: when the server exits, says the model failed to load, or is not ready
        within *timeout*.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        status = server.poll()
        if status is not None:
            raise ServeError(f"the server exited with status {status} before /ping answered 200",
                             detail=server.log_tail())
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=PING_TIMEOUT) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read(2000).decode(errors="replace").strip()
            if exc.headers.get(LOAD_STATUS_HEADER, "").strip().lower() == LOAD_FAILED:
                reason = text.splitlines()[0] if text else f"HTTP {exc.code} with no reason given"
                raise ServeError(f"the server cannot load the model: {reason}",
                                 detail=server.log_tail()) from None
            last = f"HTTP {exc.code}: {text[:200]}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() > deadline:
            raise ServeError(f"/ping did not answer 200 within {timeout:.0f} s (last: {last})",
                             detail=server.log_tail())
        time.sleep(interval)


