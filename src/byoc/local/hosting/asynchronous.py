"""Asynchronous inference (AsyncInferenceConfig): requests are queued, each body is read from
its InputLocation (a file here, at most 1 GB) and POSTed to ``/invocations`` with the
invocation timeout (default 900 s, at most 3600); the answer goes to
``<output>/<inference-id>.out``, a failure to ``<failures>/<inference-id>-error.out``
(S3FailurePath; default: the output directory); at most
MaxConcurrentInvocationsPerInstance requests are in flight, the rest wait in the queue."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ... import contract
from ...backends.base import Backend, LogSink
from ...backends.docker import ContainerOptions
from ...errors import ConfigError, UpstreamError
from ...say import Say, quiet
from .common import Endpoint, docker_backend, endpoint, inner_port, ping, stage_model, upstream_failure
from .front import Handle, Reply, Request, Upstream

RULE = "AsyncInferenceConfig"
#: What an inference ID may be here: it names the output files.
INFERENCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CONTENT_TYPE_HEADER = "X-Amzn-SageMaker-Content-Type"
ACCEPT_HEADER = "X-Amzn-SageMaker-Accept"


def check_timeout(seconds: int | None) -> int:
    """:raises ConfigError: for an InvocationTimeoutSeconds outside 1..3600."""
    if seconds is None:
        return contract.ASYNC_INVOCATION_TIMEOUT
    if not 1 <= seconds <= contract.ASYNC_INVOCATION_TIMEOUT_MAX:
        raise ConfigError(f"--invocation-timeout {seconds}: InvocationTimeoutSeconds ({RULE}) is 1"
                          f" to {contract.ASYNC_INVOCATION_TIMEOUT_MAX} seconds")
    return seconds


def check_input(path: Path) -> int:
    """The size of an InputLocation. :raises ConfigError: for a missing file or one over 1 GB."""
    if not path.is_file():
        raise ConfigError(f"InputLocation {path} is not a file")
    size = path.stat().st_size
    if size > contract.ASYNC_MAX_INPUT_BYTES:
        raise ConfigError(f"InputLocation {path} is {size} bytes; an asynchronous request ({RULE})"
                          f" is at most {contract.ASYNC_MAX_INPUT_BYTES} bytes (1 GB)")
    return size


def output_file(output: Path, inference_id: str) -> Path:
    return output / f"{inference_id}.out"


def failure_file(output: Path, inference_id: str) -> Path:
    return output / f"{inference_id}-error.out"


@dataclass(frozen=True)
class Job:
    inference_id: str
    path: Path
    size: int
    content_type: str | None
    accept: str | None
    timeout: float


class Queue:
    """The platform's queue: *workers* threads, each with one request in flight at a time."""

    def __init__(self, upstream: Upstream, output: Path, workers: int, say: Say,
                 failures: Path | None = None) -> None:
        self.upstream = upstream
        self.output = output
        self.failures = failures or output
        self.say = say
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"byoc-async-{index}", daemon=True)
                         for index in range(workers)]
        for thread in self._threads:
            thread.start()

    def put(self, job: Job) -> int:
        self._jobs.put(job)
        return self._jobs.qsize()

    def close(self) -> None:
        """Stop: the requests in flight run to their end; those still queued are not sent (the
        container is stopping) and get no file, each one named in a line."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self.say(f"inference {job.inference_id}: not run, the endpoint stopped while it"
                         " was queued")
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(1.0)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._run(job)
            except Exception as exc:  # one failed request never stops the queue
                self._fail(job, f"byoc could not run the request: {type(exc).__name__}: {exc}")

    def _run(self, job: Job) -> None:
        headers = {"Content-Length": str(job.size)}
        if job.content_type:
            headers["Content-Type"] = job.content_type
        if job.accept:
            headers["Accept"] = job.accept
        partial = self.output / f".{job.inference_id}.out.partial"
        try:
            with job.path.open("rb") as body, partial.open("wb") as sink:
                answer = self.upstream.call("POST", "/invocations", body, headers,
                                            timeout=job.timeout, sink=sink)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            self._fail(job, f"ClientError: cannot read InputLocation {job.path}: {exc}")
            return
        except UpstreamError as exc:
            partial.unlink(missing_ok=True)
            self._fail(job, upstream_failure(exc, "primary")[1])
            return
        if 200 <= answer.status < 300:
            target = output_file(self.output, job.inference_id)
            os.replace(partial, target)
            self.say(f"inference {job.inference_id}: done, {target}")
            return
        with partial.open("rb") as handle:
            text = handle.read(1 << 20).decode("utf-8", "replace").strip()
        partial.unlink(missing_ok=True)
        self._fail(job, f"ModelError: Received server error ({answer.status}) from primary with"
                        f" message \"{text}\"")

    def _fail(self, job: Job, message: str) -> None:
        target = failure_file(self.failures, job.inference_id)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(message + "\n", encoding="utf-8")
        os.replace(partial, target)
        self.say(f"inference {job.inference_id}: failed, {target}")


def input_path(location: str) -> Path:
    """An InputLocation as a local path: ``file://`` URI or a plain path."""
    if location.startswith("file://"):
        return Path(unquote(urlparse(location).path))
    return Path(location)


def handler(jobs: Queue, upstream: Upstream, default_timeout: int) -> Handle:
    def handle(request: Request) -> Reply:
        if request.method == "GET" and request.path == "/ping":
            return ping(upstream)
        if request.path == "/invocations":
            return Reply.text(400, "ValidationError: this is an asynchronous endpoint: call"
                                   " InvokeEndpointAsync (byoc local predict --async FILE)")
        if request.path != "/async-invocations" or request.method != "POST":
            return Reply.text(404, f"no route {request.method} {request.path}:"
                                   " POST /async-invocations")
        location = request.header(contract.INPUT_LOCATION_HEADER)
        if not location:
            return Reply.text(400, f"ValidationError: InputLocation is required"
                                   f" ({contract.INPUT_LOCATION_HEADER})")
        inference_id = request.header(contract.INFERENCE_ID_HEADER) or str(uuid.uuid4())
        if not INFERENCE_ID.fullmatch(inference_id):
            return Reply.text(400, f"ValidationError: InferenceId {inference_id!r}: use 1 to 64"
                                   " letters, digits, '.', '_' or '-'")
        timeout = default_timeout
        given = request.header(contract.INVOCATION_TIMEOUT_HEADER)
        if given:
            try:
                timeout = check_timeout(int(given))
            except (ValueError, ConfigError):
                return Reply.text(400, f"ValidationError: InvocationTimeoutSeconds {given!r}: 1 to"
                                       f" {contract.ASYNC_INVOCATION_TIMEOUT_MAX}")
        path = input_path(location)
        try:
            size = check_input(path)
        except ConfigError as exc:
            return Reply.text(400, f"ValidationError: {exc.message}")
        waiting = jobs.put(Job(inference_id, path.resolve(), size,
                               request.header(CONTENT_TYPE_HEADER), request.header(ACCEPT_HEADER),
                               float(timeout)))
        answer = {"InferenceId": inference_id,
                  "OutputLocation": str(output_file(jobs.output, inference_id)),
                  "FailureLocation": str(failure_file(jobs.failures, inference_id)),
                  "Queued": waiting}
        return Reply(202, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    return handle


@contextlib.contextmanager
def serve(*, backend: Backend, model: Path | None, port: int, output: Path,
          failures: Path | None = None, env: Mapping[str, str] | None = None,
          invocation_timeout: int = contract.ASYNC_INVOCATION_TIMEOUT, max_concurrent: int = 1,
          startup_timeout: float = contract.STARTUP_TIMEOUT,
          grace_seconds: float = contract.SERVE_STOP_GRACE, log: LogSink | None = None,
          say: Say = quiet) -> Iterator[Endpoint]:
    """Serve *model* as an asynchronous endpoint; yield once ``/ping`` answers 200.

    The container is told the mode's limits through ``SAGEMAKER_MAX_PAYLOAD_IN_MB`` (1024)
    and ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` (*invocation_timeout*), unless *env* sets them.
    """
    check_timeout(invocation_timeout)
    docker = docker_backend(backend, "async")
    output = output.resolve()
    failures = failures.resolve() if failures is not None else output
    for folder in (output, failures):
        folder.mkdir(parents=True, exist_ok=True)
    container_env = {contract.MAX_PAYLOAD_ENV: str(contract.ASYNC_MAX_INPUT_BYTES // (1024 * 1024)),
                     contract.MODEL_SERVER_TIMEOUT_ENV: str(invocation_timeout), **(env or {})}
    with endpoint(docker, port, grace_seconds, log, say) as served:
        model_dir = stage_model(model, served.scratch)
        inside = inner_port()
        mounts = [(model_dir, contract.IN_CONTAINER.model_dir.as_posix(), True)] if model_dir else []
        served.start("primary", ContainerOptions(
            name=served.name("async"), env=container_env, publish={contract.PORT: inside},
            mounts=mounts), url=f"http://127.0.0.1:{inside}")
        say(f"waiting for /ping (up to {startup_timeout:.0f} s)")
        served.wait(startup_timeout)
        upstream = Upstream(served.address("primary", contract.PORT, inside),
                            float(invocation_timeout))
        jobs = Queue(upstream, output, max_concurrent, say, failures)
        try:
            served.serve(handler(jobs, upstream, invocation_timeout))
            say(f"asynchronous: answers in {output}, {max_concurrent} in flight at most,"
                f" InvocationTimeoutSeconds {invocation_timeout}")
            yield served
        finally:
            jobs.close()
