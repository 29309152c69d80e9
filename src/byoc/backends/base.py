"""What a backend runs, and the supervision both backends share."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from .. import contract

#: Receives one log line and the host it came from.
LogSink = Callable[[str, str], None]


@dataclass(frozen=True)
class HostSpec:
    """One training host: its /opt/ml tree and its channels' source dirs (read-only)."""

    host: str
    root: Path
    channels: Mapping[str, Path]
    #: The host directory behind CheckpointConfig.LocalPath, when checkpoints are configured.
    checkpoints: Path | None = None


@dataclass(frozen=True)
class TrainSpec:
    job_name: str
    hosts: Sequence[HostSpec]
    env: Mapping[str, str]
    log_dir: Path
    grace_seconds: float = 120.0
    #: Tells the user what stopping is waiting for (see :func:`stop_all`).
    notify: Callable[[str], None] | None = None
    #: Told the host and its status when a host fails and the others are being stopped.
    on_host_failure: Callable[[str, int], None] | None = None
    #: Set to stop every host as StopTrainingJob does (SIGTERM, SIGKILL after the grace).
    stop: threading.Event | None = None
    #: CheckpointConfig.LocalPath inside the container.
    checkpoint_path: str = contract.CHECKPOINT_PATH


@dataclass(frozen=True)
class ProcessingHost:
    """One processing host: its /opt/ml tree (``config/``, ``output/`` and each output's
    folder at its LocalPath under it) and what its inputs hold, by LocalPath (read-only)."""

    host: str
    root: Path
    #: LocalPath -> the folder on this machine the container sees there, read-only.
    inputs: Mapping[str, Path]
    #: The outputs' LocalPaths: each is ``root``'s folder at that path, writable.
    outputs: Sequence[str] = ()


@dataclass(frozen=True)
class ProcessingSpec:
    """A processing job's hosts and how their containers start (AppSpecification)."""

    job_name: str
    hosts: Sequence[ProcessingHost]
    env: Mapping[str, str]
    log_dir: Path
    #: ContainerEntrypoint and ContainerArguments; None keeps the image's ENTRYPOINT or CMD.
    entrypoint: Sequence[str] | None = None
    arguments: Sequence[str] | None = None
    grace_seconds: float = 120.0
    notify: Callable[[str], None] | None = None
    on_host_failure: Callable[[str, int], None] | None = None
    stop: threading.Event | None = None
    #: Told each host's process id as it starts (the process backend), for reaping.
    on_start: Callable[[str, int], None] | None = None


@dataclass(frozen=True)
class ServeSpec:
    #: The /opt/ml/model directory to serve (mounted or copied read-only).
    model_dir: Path
    #: A scratch /opt/ml tree the server may use.
    root: Path
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    grace_seconds: float = 30.0


class Run(Protocol):
    """One running container or process."""

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""

    def terminate(self) -> None:
        """Send SIGTERM."""

    def kill(self) -> None:
        """Send SIGKILL."""


class Server(Run, Protocol):
    url: str

    def log_tail(self) -> str:
        """The last lines it logged."""

    def close(self) -> None:
        """Release everything it holds (container, temp files)."""


class Backend(Protocol):
    @property
    def name(self) -> str:
        """``docker`` or ``process``."""

    def train(self, spec: TrainSpec, log: LogSink) -> dict[str, int]:
        """Run every host of *spec* to the end; return each host's exit status."""

    def start_server(self, spec: ServeSpec, log: LogSink) -> Server:
        """Start ``serve``; the caller waits for /ping and closes the server."""


class ProcessingBackend(Backend, Protocol):
    """A backend that also runs processing jobs (both of byoc's do)."""

    def process(self, spec: ProcessingSpec, log: LogSink) -> dict[str, int]:
        """Run every host of a processing job to the end; return each host's exit status."""


class LogPump:
    """Copies the lines of a byte stream to a sink and a log file, keeping a tail."""

    def __init__(self, host: str, sink: LogSink, log_file: Path | None = None, tail: int = 60):
        self.host = host
        self.sink = sink
        self.tail: deque[str] = deque(maxlen=tail)
        self._file: IO[str] | None = None
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self._file = log_file.open("a", encoding="utf-8")
        self._thread: threading.Thread | None = None

    def start(self, chunks: Iterable[bytes]) -> None:
        self._thread = threading.Thread(target=self._pump, args=(chunks,), daemon=True)
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        if self._file is not None:
            self._file.close()
            self._file = None

    def text(self) -> str:
        return "\n".join(self.tail)

    def _pump(self, chunks: Iterable[bytes]) -> None:
        pending = b""
        try:
            for chunk in chunks:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(line)
        except Exception:  # the stream ends when the container or process goes away
            pass
        if pending:
            self._emit(pending)

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        self.tail.append(line)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        self.sink(self.host, line)


def supervise(runs: Mapping[str, Run], grace_seconds: float, poll: float = 0.2,
              say: Callable[[str], None] | None = None,
              on_failure: Callable[[str, int], None] | None = None,
              stop: threading.Event | None = None) -> dict[str, int]:
    """Wait for every run to exit; when one fails (*on_failure* is told first), or *stop* is
    set, stop the others.

    On any exception (KeyboardInterrupt included) every run still going is
    stopped, SIGTERM first and SIGKILL after *grace_seconds* (see :func:`stop_all`),
    and the exception propagates.
    """
    try:
        while True:
            statuses = {host: run.poll() for host, run in runs.items()}
            if all(status is not None for status in statuses.values()):
                return {host: int(status) for host, status in statuses.items() if status is not None}
            failed = [(host, status) for host, status in statuses.items() if status not in (None, 0)]
            if failed or (stop is not None and stop.is_set()):
                if failed and on_failure is not None and any(s is None for s in statuses.values()):
                    on_failure(*failed[0])
                stop_all(runs, grace_seconds, say=say)
                continue
            time.sleep(poll)
    except BaseException:
        stop_all(runs, grace_seconds, say=say)
        raise


#: A run still going this long after SIGTERM makes :func:`stop_all` say what it waits for.
QUIET_STOP_SECONDS = 1.0


def stop_all(runs: Mapping[str, Run], grace_seconds: float, poll: float = 0.1,
             say: Callable[[str], None] | None = None) -> None:
    """SIGTERM every run still going; SIGKILL what is left after *grace_seconds*.

    When a run outlives SIGTERM by :data:`QUIET_STOP_SECONDS`, *say* is told
    ``stopping; waiting up to N s; Ctrl-C again to kill``; a Ctrl-C (or SIGTERM
    raised as KeyboardInterrupt) while waiting kills what is left at once. Pass
    no *say* for a shutdown nobody asked about (a server whose work is done).
    """
    running = [run for run in runs.values() if run.poll() is None]
    for run in running:
        run.terminate()
    sent = time.monotonic()
    deadline = sent + grace_seconds
    told = say is None
    try:
        while any(run.poll() is None for run in running):
            now = time.monotonic()
            if now > deadline:
                break
            if not told and now - sent >= QUIET_STOP_SECONDS:
                told = True
                assert say is not None
                say(f"stopping; waiting up to {max(0.0, deadline - now):.0f} s; Ctrl-C again to kill")
            time.sleep(poll)
    except KeyboardInterrupt:
        if say is not None:
            say("killing")
    for run in running:
        if run.poll() is None:
            run.kill()
