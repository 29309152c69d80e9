"""What the validate checks share: the Check record, the image's facts, and containers.

Every container a check starts goes through :class:`Session`, which labels it
and removes it (and the scratch directory) in :meth:`Session.close`.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .._docker import explain
from ..backends.base import LogPump, LogSink
from ..backends.docker import ContainerRun
from ..errors import CannotValidateError
from ..local import staging
from ..say import Say

PASS = "pass"
FAIL = "fail"
WARN = "warn"
SKIPPED = "skipped"
RESULTS = (PASS, FAIL, WARN, SKIPPED)
LABEL = "com.byoc.validate"
#: Entrypoint programs that take ``train``/``serve`` for their own arguments (A1).
#: Exit statuses of a command that could not be found or run (a shell's, and docker run's).
NOT_FOUND_STATUSES = (126, 127)
INIT_PROGRAMS = ("tini", "tini-static")



@dataclass(frozen=True)
class Check:
    """One check's outcome.

    :param name: e.g. ``train.failure``.
    :param rule: the section of the container contract it enforces, e.g. ``A6``.
    :param result: ``pass``, ``fail``, ``warn`` or ``skipped``.
    :param saw: what the check observed, in a line.
    :param fix: for a failure or warning, what to change.
    :param detail: supporting text, e.g. the container's last log lines.
    """

    name: str
    rule: str
    result: str
    saw: str
    fix: str = ""
    detail: str = ""


@dataclass(frozen=True)
class ImageFacts:
    reference: str
    entrypoint: list[str]
    cmd: list[str]
    user: str
    labels: dict[str, str]
    os: str
    architecture: str
    size: int

    @classmethod
    def inspect(cls, image: Any, reference: str) -> ImageFacts:
        attrs = image.attrs
        config = attrs.get("Config") or {}
        return cls(reference=reference, entrypoint=list(config.get("Entrypoint") or []),
                   cmd=list(config.get("Cmd") or []), user=str(config.get("User") or ""),
                   labels=dict(config.get("Labels") or {}), os=str(attrs.get("Os", "")),
                   architecture=str(attrs.get("Architecture", "")), size=int(attrs.get("Size", 0)))

    def entrypoint_problem(self, program: str) -> str | None:
        """Why ``docker run IMAGE <program>`` may not run *program* (A1/B1), if the config shows it."""
        if not self.entrypoint:
            return None
        if self.entrypoint[:2] in (["/bin/sh", "-c"], ["sh", "-c"], ["/bin/bash", "-c"]):
            return (f"the ENTRYPOINT is in shell form: the shell takes {program!r} as $0 and drops"
                    " it")
        init = PurePosixPath(self.entrypoint[0]).name
        if init in INIT_PROGRAMS:
            return (f"the ENTRYPOINT runs {init}, which SageMaker's guide forbids: {program!r} goes"
                    f" to {init} (or the program it was told to start), not to {program}")
        return None

    def describe_start(self, program: str) -> str:
        if self.entrypoint:
            return f"ENTRYPOINT {self.entrypoint} + [{program!r}]"
        return f"no ENTRYPOINT; {program!r} runs from PATH"


@dataclass
class Started:
    """A container a check started, with its log pump."""

    run: ContainerRun
    started_at: float
    #: Whether :meth:`stop`'s SIGTERM reached a running container (None: not sent yet).
    term_delivered: bool | None = None

    @property
    def container(self) -> Any:
        return self.run.container

    def poll(self) -> int | None:
        return self.run.poll()

    def wait(self, timeout: float, interval: float = 0.2) -> int | None:
        """The exit status, or None if it still runs after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while (status := self.poll()) is None and time.monotonic() < deadline:
            time.sleep(interval)
        return status

    def stop(self, grace: float) -> tuple[bool, float, int | None]:
        """SIGTERM, then SIGKILL after *grace*: (stopped without SIGKILL, seconds, status)."""
        import docker.errors

        sent = time.monotonic()
        try:
            self.container.kill(signal="SIGTERM")
            self.term_delivered = True
        except docker.errors.APIError:  # 409: it is not running (any more)
            self.term_delivered = False
        status = self.wait(grace, interval=0.1)
        seconds = time.monotonic() - sent
        if status is not None:
            return True, seconds, status
        self.run.kill()
        return False, seconds, self.wait(10)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(list(self.run.pump.tail)[-lines:])

    def has_logged(self) -> bool:
        return len(self.run.pump.tail) > 0

    def diff(self) -> list[dict[str, Any]]:
        return list(self.container.diff() or [])


class Session:
    """Opens containers for the checks and removes all of them on :meth:`close`."""

    def __init__(self, client: Any, image: str, say: Say, container_log: LogSink | None) -> None:
        self.client = client
        self.image = image
        self.say = say
        self.container_log = container_log or (lambda name, line: None)
        self.id = uuid.uuid4().hex[:8]
        self.scratch = Path(tempfile.mkdtemp(prefix=f"byoc-validate-{self.id}-"))
        self._containers: list[Any] = []
        self._runs: list[ContainerRun] = []
        self._count = 0

    def name(self, role: str) -> str:
        self._count += 1
        return f"byoc-validate-{self.id}-{self._count}-{role}"

    def create(self, role: str, **kwargs: Any) -> Any:
        """``containers.create`` with a label and a name; tracked for removal."""
        import docker.errors

        labels = {LABEL: self.id, **kwargs.pop("labels", {})}
        try:
            container = self.client.containers.create(self.image, name=self.name(role), labels=labels,
                                                      **kwargs)
        except docker.errors.APIError as exc:
            raise CannotValidateError(f"Docker refused to create the {role} container:"
                                   f" {explain(exc)}") from exc
        self._containers.append(container)
        return container

    def start(self, container: Any, role: str) -> Started:
        """Start *container* and pump its log. :raises docker.errors.APIError: when it cannot start."""
        run = ContainerRun(container, LogPump(role, self.container_log))
        self._runs.append(run)
        container.start()
        run.pump.start(container.logs(stream=True, follow=True))
        return Started(run, time.monotonic())

    def tree(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True)
        return path

    def close(self) -> None:
        import docker.errors

        for container in reversed(self._containers):
            try:
                container.remove(force=True, v=True)
            except docker.errors.APIError:
                pass
        for run in self._runs:
            run.pump.join(timeout=2)
        self._containers.clear()
        try:
            staging.remove_tree(self.scratch)
        except OSError as exc:  # e.g. files a container wrote as root, when byoc is not root
            self.say(f"warning: could not remove {self.scratch}: {exc}")


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - the loop returns


def first_line(text: str | None, limit: int = 160) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_lines(text: str, count: int = 3, limit: int = 300) -> str:
    """The last non-blank *count* lines of a log, joined with `` / `` for a one-line ``saw``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()][-count:]
    joined = " / ".join(lines)
    return joined if len(joined) <= limit else "..." + joined[-(limit - 3):]
