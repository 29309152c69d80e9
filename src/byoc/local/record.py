"""A local job's record, ``job.json``: a training job's shaped like DescribeTrainingJob, a
processing job's like DescribeProcessingJob (:attr:`JobRecord.kind` tells them apart).

The record is rewritten atomically at every status change, so another
terminal (``byoc local jobs``, ``byoc local describe``) always reads a whole
one. byoc's own facts that the service has no field for (the backend, the
hosts' exit statuses, the process running the job) live under ``Local``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import ConfigError
from ..project import LATEST

RECORD = "job.json"
RECORD_FILE = RECORD
_LOCK = threading.Lock()
#: What :attr:`JobRecord.kind` says.
TRAINING, PROCESSING = "training", "processing"
PROCESSING_STATUS = "ProcessingJobStatus"
#: The primary statuses DescribeTrainingJob reports.
IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED = (
    "InProgress", "Completed", "Failed", "Stopping", "Stopped")
#: The service's status messages for the secondary statuses byoc goes through.
MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Interrupted": "The job was interrupted: the spot capacity was reclaimed",
    "Stopping": "Stopping the training job",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopped": "The training job was stopped",
    "MaxRuntimeExceeded": "The job stopped: it reached MaxRuntimeInSeconds",
    "MaxWaitTimeExceeded": "The job stopped: it reached MaxWaitTimeInSeconds",
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _seconds(start: str, end: str) -> int:
    return max(0, round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()))


@dataclass
class JobRecord:
    """The record of one job in *job_dir*; every change is written at once."""

    job_dir: Path
    data: dict[str, Any]

    @classmethod
    def create(cls, job_dir: Path, fields: Mapping[str, Any]) -> JobRecord:
        stamp = now()
        data: dict[str, Any] = {
            **fields,
            "TrainingJobStatus": IN_PROGRESS,
            "SecondaryStatus": "Starting",
            "CreationTime": stamp,
            "LastModifiedTime": stamp,
            "SecondaryStatusTransitions": [],
        }
        record = cls(job_dir, data)
        record.transition("Starting")
        return record

    @classmethod
    def load(cls, job_dir: Path) -> JobRecord:
        path = job_dir / RECORD
        data = contract.read_json(path, dict, "a job record (a JSON object)")
        return cls(job_dir, data)

    @classmethod
    def create_processing(cls, job_dir: Path, fields: Mapping[str, Any]) -> JobRecord:
        """A processing job's record: *fields* (the request's half) with ProcessingJobStatus
        InProgress and the times."""
        stamp = now()
        record = cls(job_dir, {**fields, PROCESSING_STATUS: IN_PROGRESS, "CreationTime": stamp,
                               "LastModifiedTime": stamp})
        record.write()
        return record

    @property
    def kind(self) -> str:
        """``processing`` for a processing job's record, else ``training``."""
        return PROCESSING if "ProcessingJobName" in self.data else TRAINING

    @property
    def name(self) -> str:
        return str(self.data.get("TrainingJobName") or self.data.get("ProcessingJobName")
                   or self.job_dir.name)

    @property
    def status(self) -> str:
        key = PROCESSING_STATUS if self.kind == PROCESSING else "TrainingJobStatus"
        return str(self.data.get(key, ""))

    @property
    def arn(self) -> str:
        return str(self.data.get("TrainingJobArn") or self.data.get("ProcessingJobArn") or "")

    def processing_started(self) -> None:
        """The processing job's containers start now (ProcessingStartTime)."""
        stamp = now()
        self.update(ProcessingStartTime=stamp, LastModifiedTime=stamp)

    def processing_stopping(self) -> None:
        self.update(**{PROCESSING_STATUS: STOPPING, "LastModifiedTime": now()})

    def finish_processing(self, status: str, *, exit_message: str | None = None,
                          failure_reason: str | None = None) -> None:
        """End a processing job: its status, ExitMessage, FailureReason and end time."""
        stamp = now()
        fields: dict[str, Any] = {PROCESSING_STATUS: status, "ProcessingEndTime": stamp,
                                  "LastModifiedTime": stamp}
        if exit_message:
            fields["ExitMessage"] = exit_message
        if failure_reason:
            fields["FailureReason"] = failure_reason[:contract.FAILURE_REASON_LIMIT]
        self.update(**fields)

    def fail(self, reason: str) -> None:
        """End the job Failed with *reason*, whatever its kind."""
        if self.kind == PROCESSING:
            self.finish_processing(FAILED, failure_reason=reason)
        else:
            self.finish(FAILED, FAILED, failure_reason=reason)

    @property
    def secondary(self) -> str:
        return str(self.data.get("SecondaryStatus", ""))

    @property
    def running(self) -> bool:
        return self.status in (IN_PROGRESS, STOPPING)

    def duration(self, at: str | None = None) -> int | None:
        """Seconds of training: TrainingTimeInSeconds for a job that ended, the time so far
        (from TrainingStartTime, else CreationTime, to *at*, default now) for one still running,
        None when the record cannot tell."""
        seconds = self.data.get("TrainingTimeInSeconds")
        if isinstance(seconds, int):
            return seconds
        if self.kind == PROCESSING:
            start = self.data.get("ProcessingStartTime") or self.data.get("CreationTime")
            end = self.data.get("ProcessingEndTime")
            if isinstance(start, str) and isinstance(end, str):
                return _seconds(start, end)
        else:
            start = self.data.get("TrainingStartTime") or self.data.get("CreationTime")
        if not self.running or not isinstance(start, str):
            return None
        try:
            return _seconds(start, at or now())
        except ValueError:
            return None

    def transition(self, secondary: str, message: str | None = None) -> None:
        """Enter the secondary status *secondary*, closing the one before."""
        stamp = now()
        transitions: list[dict[str, str]] = self.data.setdefault("SecondaryStatusTransitions", [])
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = stamp
        transitions.append({"Status": secondary, "StartTime": stamp,
                            "StatusMessage": message or MESSAGES.get(secondary, secondary)})
        self.data["SecondaryStatus"] = secondary
        if secondary == "Training" and "TrainingStartTime" not in self.data:
            self.data["TrainingStartTime"] = stamp
        if secondary == "Stopping":
            self.data["TrainingJobStatus"] = STOPPING
        self.update(LastModifiedTime=stamp)

    def finish(self, status: str, secondary: str, failure_reason: str | None = None,
               billable_seconds: int | None = None) -> None:
        """End the job: the last transition, the primary status and the times."""
        self.transition(secondary)
        end = self.data["LastModifiedTime"]
        start = self.data.get("TrainingStartTime", self.data["CreationTime"])
        self.data["TrainingJobStatus"] = status
        self.data["TrainingEndTime"] = end
        self.data["TrainingTimeInSeconds"] = _seconds(start, end)
        self.data["BillableTimeInSeconds"] = (
            billable_seconds if billable_seconds is not None else self.data["TrainingTimeInSeconds"])
        if failure_reason:
            self.data["FailureReason"] = failure_reason
        self.write()

    def update(self, **fields: Any) -> None:
        """Merge *fields* into the record and write it."""
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        """Write the record, keeping the keys other writers merged into the file (metrics)."""
        try:
            self.job_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only output directory, a file in the way
            raise ConfigError(f"cannot create the job directory {self.job_dir}:"
                              f" {exc.strerror or exc}; pick a writable --output-dir") from exc
        self.data = merge(self.job_dir, self.data)


def records(jobs_dir: Path) -> Iterator[JobRecord]:
    """Every job under *jobs_dir* that has a readable record, newest first."""
    if not jobs_dir.is_dir():
        return
    found = []
    for path in jobs_dir.glob(f"*/{RECORD}"):
        try:
            found.append(JobRecord.load(path.parent))
        except ConfigError:
            continue
    yield from sorted(found, key=lambda r: str(r.data.get("CreationTime", "")), reverse=True)


def resolve_name(jobs_dir: Path, name: str) -> str:
    """*name*, or for ``latest`` the name of the job ``<jobs_dir>/latest`` points at (the last
    local training job that succeeded); a job really named ``latest`` comes first.

    :raises ConfigError: for ``latest`` when no job has succeeded in *jobs_dir* yet.
    """
    if name != LATEST or (jobs_dir / LATEST).is_dir():
        return name
    pointer = jobs_dir / LATEST
    try:
        target = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        target = ""
    if not target or "/" in target or target in (".", ".."):
        raise ConfigError(f"no latest local job in {jobs_dir}: no training job has completed there"
                          " yet; `byoc local jobs` lists them")
    return target


def latest_running(jobs_dir: Path) -> JobRecord:
    """The newest job in *jobs_dir* that is still running: what ``byoc local stop latest`` stops.

    :raises ConfigError: when none is running.
    """
    for record in records(jobs_dir):
        if record.status in (IN_PROGRESS, STOPPING):
            return record
    raise ConfigError(f"no local training job is running in {jobs_dir}; `byoc local jobs` lists"
                      " them")


def find(jobs_dir: Path, name: str) -> JobRecord:
    """The record of job *name* (a job directory, or ``latest``, also works). :raises ConfigError:"""
    name = resolve_name(jobs_dir, name)
    candidate = Path(name)
    for job_dir in (candidate, jobs_dir / name):
        if (job_dir / RECORD).is_file():
            return JobRecord.load(job_dir)
    raise ConfigError(f"no local job {name!r} in {jobs_dir}; `byoc local jobs` lists them")


def read(job_dir: Path) -> dict[str, Any]:
    """The record of the job in *job_dir* ({} when it has none or it cannot be read)."""
    try:
        data = contract.read_json(job_dir / RECORD, object)
    except ConfigError:
        return {}
    return data if isinstance(data, dict) else {}


def merge(job_dir: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Merge *fields* into ``job.json`` (objects key by key, anything else replaced), atomically;
    return the record written."""
    with _LOCK:
        record = _merged(read(job_dir), fields)
        handle, name = tempfile.mkstemp(prefix=".job-", suffix=".json", dir=job_dir)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(record, indent=2) + "\n")
        os.replace(name, job_dir / RECORD)
        return record


def _merged(base: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in fields.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result
