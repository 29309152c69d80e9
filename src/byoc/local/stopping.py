"""Why a local training job stops early: StopTrainingJob, the time limits, spot reclaims.

A :class:`StopWatch` runs beside a job's hosts and sets its :attr:`event`
with a reason when one of these comes due:

- ``Stopped``: ``byoc local stop JOB`` (a request file in the job's directory);
- ``MaxRuntimeExceeded``: ``StoppingCondition.MaxRuntimeInSeconds`` of
  training time, counted over every attempt of a spot job;
- ``MaxWaitTimeExceeded``: ``MaxWaitTimeInSeconds`` since the job was created
  (managed spot only);
- ``Interrupted``: the next simulated spot reclaim (``--interrupt-after``),
  counted from the start of the current attempt's training.

The backends react to the event as SageMaker does: SIGTERM to every host,
SIGKILL after the grace period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_REQUEST = "stop-requested"
STOPPED, MAX_RUNTIME, MAX_WAIT, INTERRUPTED = (
    "Stopped", "MaxRuntimeExceeded", "MaxWaitTimeExceeded", "Interrupted")


def request_stop(job_dir: Path) -> None:
    """What ``byoc local stop`` does: ask the byoc running the job to stop it."""
    (job_dir / STOP_REQUEST).write_text(f"{time.time()}\n", encoding="utf-8")


@dataclass
class StopWatch:
    """Watches the clock and the job directory; sets :attr:`event` with a :attr:`reason`."""

    job_dir: Path
    max_runtime: float | None = None
    max_wait: float | None = None
    interrupts: Sequence[float] = ()
    #: Set by another thread (a tuning job stopping one of its training jobs): ``Stopped``.
    external: threading.Event | None = None
    poll: float = 0.1
    event: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None
    created: float = field(default_factory=time.monotonic)
    #: Training seconds of the attempts that ended.
    trained: float = 0.0
    _attempt_start: float | None = None
    _interrupts_done: int = 0
    _thread: threading.Thread | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def start_attempt(self) -> None:
        """Training of a (new) attempt starts now; clear the last stop."""
        self.event.clear()
        self.reason = None
        self._attempt_start = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="stopwatch", daemon=True)
            self._thread.start()

    def end_attempt(self) -> None:
        if self._attempt_start is not None:
            self.trained += time.monotonic() - self._attempt_start
            self._attempt_start = None
        if self.reason == INTERRUPTED:
            self._interrupts_done += 1

    @property
    def interrupts_done(self) -> int:
        """How many simulated spot interruptions have happened."""
        return self._interrupts_done

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def stop(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def due(self, now: float) -> str | None:
        """The reason to stop at monotonic time *now*, if any."""
        if (self.job_dir / STOP_REQUEST).exists() or (
                self.external is not None and self.external.is_set()):
            return STOPPED
        if self.max_wait is not None and now - self.created >= self.max_wait:
            return MAX_WAIT
        running = now - self._attempt_start if self._attempt_start is not None else 0.0
        if self.max_runtime is not None and self.trained + running >= self.max_runtime:
            return MAX_RUNTIME
        if (self._attempt_start is not None and self._interrupts_done < len(self.interrupts)
                and running >= self.interrupts[self._interrupts_done]):
            return INTERRUPTED
        return None

    def _watch(self) -> None:
        while not self._done.wait(self.poll):
            if self._attempt_start is None or self.event.is_set():
                continue
            reason = self.due(time.monotonic())
            if reason is not None:
                self.stop(reason)
