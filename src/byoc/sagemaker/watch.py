"""Following a SageMaker job: status transitions as they happen, CloudWatch logs per host.

Training logs are in the group ``/aws/sagemaker/TrainingJobs``, one stream per host and container
start, ``<job>/algo-<n>-<epoch>``. Streams appear only once a container writes, and the group may
not exist yet, so a missing group is no error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..say import Say
from ._aws import Aws

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
TRAINING_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
HOST_OF_STREAM = re.compile(r"^(?P<host>.+?)-\d{9,}$")

LogSink = Callable[[str, str], None]


def poll(describe: Callable[[], dict[str, Any]], *, ended: Callable[[dict[str, Any]], bool],
         line: Callable[[dict[str, Any]], str], say: Say, poll_seconds: float,
         timeout: float | None = None) -> dict[str, Any]:
    """Call *describe* until *ended* holds for its answer (or *timeout* seconds have passed),
    saying ``line(answer)`` each time it changes; the last answer."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        answer = describe()
        text = line(answer)
        if text != last:
            say(text)
            last = text
        if ended(answer) or (deadline is not None and time.monotonic() > deadline):
            return answer
        time.sleep(poll_seconds)


def host_of(stream: str, job: str) -> str:
    """``job/algo-2-1700000000`` -> ``algo-2``."""
    tail = stream[len(job) + 1:] if stream.startswith(job + "/") else stream
    match = HOST_OF_STREAM.match(tail)
    return match.group("host") if match else tail


@dataclass
class LogTail:
    """Reads every stream of one job from where it left off."""

    aws: Aws
    group: str
    job: str
    _tokens: dict[str, str] = field(default_factory=dict)

    def poll(self) -> list[tuple[str, str]]:
        """New ``(host, message)`` lines of every stream, streams in name order."""
        lines: list[tuple[str, str]] = []
        for stream in self._streams():
            lines += [(host_of(stream, self.job), message) for message in self._read(stream)]
        return lines

    def _streams(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            extra = {"nextToken": token} if token else {}
            page = self.aws.lookup("logs", "DescribeLogStreams", logGroupName=self.group,
                                   logStreamNamePrefix=self.job + "/",
                                   missing=frozenset({"ResourceNotFoundException"}), **extra)
            if page is None:
                return []
            names += [str(s["logStreamName"]) for s in page.get("logStreams") or ()]
            token = page.get("nextToken")
            if not token:
                return sorted(names)

    def _read(self, stream: str) -> list[str]:
        messages: list[str] = []
        while True:
            token = self._tokens.get(stream)
            extra = {"nextToken": token} if token else {"startFromHead": True}
            page = self.aws.call("logs", "GetLogEvents", logGroupName=self.group,
                                 logStreamName=stream, **extra)
            messages += [str(e.get("message", "")).rstrip("\n") for e in page.get("events") or ()]
            following = page.get("nextForwardToken")
            if not following or following == token:
                return messages
            self._tokens[stream] = str(following)
            if not page.get("events"):
                return messages


def transitions_text(transitions: list[dict[str, Any]]) -> list[str]:
    """``<time> <Status> - <StatusMessage>`` per SecondaryStatusTransitions entry."""
    lines = []
    for entry in transitions:
        start = entry.get("StartTime")
        stamp = start.strftime("%Y-%m-%d %H:%M:%S") if isinstance(start, datetime) \
            else str(start or "")
        message = entry.get("StatusMessage")
        lines.append(f"{stamp} {entry.get('Status')}" + (f" - {message}" if message else ""))
    return lines
