"""The table of a tuning job's training jobs: refreshed in place on a terminal, else one line
per change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

from .runner import JobState

MAX_ROWS = 25
#: Characters of a failed job's FailureReason shown (its first line; the whole is in job.json).
REASON_LIMIT = 100
#: The live table's status column at most (a quarter of the terminal's width): a failure's
#: reason is cut there (the summary at the end and the line-per-job output show REASON_LIMIT
#: characters of it).
STATUS_WIDTH = 40


def _objective(job: JobState) -> str:
    return "" if job.objective is None else f"{job.objective:.6g}"


def _short(value: str) -> str:
    """A long number shown with 6 significant digits (the full value is in tuning.json)."""
    if len(value) <= 10:
        return value
    try:
        return f"{float(value):.6g}"
    except ValueError:
        return value


def first_line(reason: str, limit: int = REASON_LIMIT) -> str:
    """The first non-blank line of a FailureReason, cut to *limit* characters (with an ellipsis)."""
    line = next((text.strip() for text in reason.splitlines() if text.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"


def _status(job: JobState) -> str:
    if job.status == "Stopped" and job.stop_reason:
        return f"Stopped ({job.stop_reason})"
    if job.status == "Failed" and job.failure_reason:
        return f"Failed: {first_line(job.failure_reason)}"
    return job.status


class LiveTable:
    """A rich Live table on *stream*; call :meth:`close` at the end."""

    def __init__(self, stream: IO[str], metric: str, interval: float = 0.25) -> None:
        from rich.console import Console
        from rich.live import Live

        self.metric = metric
        self.interval = interval
        self._last = 0.0
        self.live = Live(console=Console(file=stream), auto_refresh=False, transient=False)
        self.live.start()

    def __call__(self, jobs: list[JobState], status: str) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and status == "InProgress":
            return
        self._last = now
        self.live.update(self._table(jobs, status), refresh=True)

    def _table(self, jobs: list[JobState], status: str) -> Any:
        from rich.table import Table

        names = list(dict.fromkeys(name for job in jobs for name in job.tuned))
        done = sum(1 for job in jobs if job.done)
        table = Table(title=f"tuning: {status}, {done}/{len(jobs)} training jobs ended")
        table.add_column("#", overflow="fold")
        # the job's name whole, whatever the width: the status (a failure's reason) wraps instead
        table.add_column("training job", no_wrap=True,
                         min_width=max((len(job.name) for job in jobs), default=12))
        table.add_column("status", no_wrap=True, overflow="ellipsis",
                         max_width=max(16, min(STATUS_WIDTH, self.live.console.width // 4)))
        for column in (*names, self.metric):
            table.add_column(column, overflow="fold")
        for job in jobs[-MAX_ROWS:]:
            table.add_row(str(job.number), job.name, _status(job),
                          *(_short(job.tuned.get(n, "")) for n in names), _objective(job))
        return table

    def close(self) -> None:
        self.live.stop()


class LineTable:
    """One line per training job when it starts and when it ends (for logs and pipes)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.seen: dict[str, str] = {}

    def __call__(self, jobs: list[JobState], status: str) -> None:
        for job in jobs:
            if self.seen.get(job.name) == job.status:
                continue
            self.seen[job.name] = job.status
            tuned = " ".join(f"{k}={v}" for k, v in job.tuned.items())
            objective = f" objective={_objective(job)}" if job.done and job.objective is not None else ""
            self.say(f"{job.name} {_status(job)} {tuned}{objective}")

    def close(self) -> None:
        pass
