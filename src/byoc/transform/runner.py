"""Run a batch transform job locally, as CreateTransformJob runs it.

:func:`transform` starts ``InstanceCount`` servers of the image (as ``byoc
local serve`` does, on either backend) with the environment the service sets
for transform containers, waits for ``/ping``, reads ``GET
/execution-parameters``, then deals the input files to the instances in key
order (file *i* to instance *i* mod N). Each instance works through its files
one after the other with up to ``MaxConcurrentTransforms`` requests in
flight, and writes each file's answers in input order to a hidden temporary
name that is renamed to ``<name>.out`` once the whole file succeeded. A file
that fails gets no ``.out`` (a stale one is removed); the others go on, and
the job is failed at the end, as the service does.

Usage::

    result = transform(backend=local.choose_backend("auto", project, None),
                       model=local.resolve_model(None, project), source=Path("data"),
                       output_dir=Path("out"),
                       params=TransformParams(content_type="text/csv", split_type="Line"))
    assert not result.failures
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .. import local
from ..backends.base import Backend, LogSink
from ..errors import (
    DataProcessingError,
    Interrupted,
    InvocationFailed,
    JsonPathError,
    OutputLinkError,
    ParameterError,
    RecordTooLargeError,
    SplitError,
    TransformError,
)
from ..local import staging
from ..say import Say, quiet
from . import inputs as inputs_mod
from .batch import Batch, batches, line_batches
from .dataprocessing import DataProcessing
from .inputs import InputFile
from .invoke import Invoker
from .params import Effective, TransformParams, resolve
from .split import Record, split

EXECUTION_PARAMETERS_TIMEOUT = 5.0
#: How often a waiting instance looks whether the job was stopped.
POLL = 0.2
#: Seconds between SIGTERM and SIGKILL when the job ends: by then no request is in flight (or,
#: after Ctrl-C, none is wanted), so there is nothing for the server to drain.
STOP_GRACE = 2.0


class ProgressSink(Protocol):
    """What a progress display is told; called from several threads."""

    def start(self, files: int, total_bytes: int | None) -> None: ...

    def advance(self, records: int, nbytes: int) -> None: ...

    def file_done(self, key: str, ok: bool) -> None: ...

    def stop(self) -> None: ...


class _NoProgress:
    def start(self, files: int, total_bytes: int | None) -> None:
        pass

    def advance(self, records: int, nbytes: int) -> None:
        pass

    def file_done(self, key: str, ok: bool) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass(frozen=True)
class FileFailure:
    key: str
    message: str


@dataclass
class TransformResult:
    output_dir: Path
    effective: Effective
    instances: int
    files: int
    outputs: list[Path] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    records: int = 0
    bytes_in: int = 0
    requests: int = 0
    #: Seconds from the first request to the last answer (servers' start-up excluded).
    seconds: float = 0.0
    startup_seconds: float = 0.0
    execution_parameters: Mapping[str, Any] | None = None

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> bool:
        return bool(self.failures)


class _Stopped(Exception):
    pass


@dataclass
class _Job:
    params: TransformParams
    processing: DataProcessing
    effective: Effective
    output_dir: Path
    progress: ProgressSink
    result: TransformResult
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, batch: Batch) -> None:
        with self.lock:
            self.result.records += batch.count
            self.result.bytes_in += batch.size
            self.result.requests += 1
        self.progress.advance(batch.count, batch.size)


def read_execution_parameters(url: str) -> dict[str, Any] | None:
    """The JSON object ``GET /execution-parameters`` answers with 200, else None."""
    try:
        with urllib.request.urlopen(f"{url}/execution-parameters",
                                    timeout=EXECUTION_PARAMETERS_TIMEOUT) as response:
            if response.status != 200:
                return None
            data = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def transform(*, backend: Backend, model: Path, source: Path, output_dir: Path,
              params: TransformParams, startup_timeout: float = local.DEFAULT_STARTUP_TIMEOUT,
              grace_seconds: float = STOP_GRACE, log: LogSink | None = None,
              progress: ProgressSink | None = None, say: Say = quiet) -> TransformResult:
    """Transform every file of *source* into ``<output_dir>/<key>.out``.

    Returns the result also when files failed (see :attr:`TransformResult.failures`).

    :raises ConfigError: for settings CreateTransformJob refuses (:class:`ParameterError`), or
        unusable paths (:class:`InputError`).
    :raises ServeError: when a server does not start.
    :raises Interrupted: on Ctrl-C or SIGTERM, after the servers are stopped; finished
        outputs are kept, unfinished ones removed.
    """
    processing = params.check()
    items = inputs_mod.list_inputs(source)
    inputs_mod.check_output_dir(source, output_dir)
    staging.check_writable(output_dir, "--output")  # before any server starts
    sink = progress or _NoProgress()
    env = params.container_env()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        urls = _start_servers(stack, params.instance_count, lambda: local.serve(
            backend=backend, model=model, port=local.free_port(), env=env,
            startup_timeout=startup_timeout, grace_seconds=grace_seconds, log=log, say=say))
        say(f"{len(urls)} instance(s) ready: {', '.join(urls)}")
        startup = time.monotonic() - started
        answered = read_execution_parameters(urls[0])
        try:
            effective = resolve(params, answered)
        except ParameterError as exc:
            raise TransformError(str(exc)) from None
        say("BatchStrategy {0.strategy}, MaxPayloadInMB {0.max_payload_mb}, MaxConcurrentTransforms"
            " {0.max_concurrent} ({1})".format(effective, ", ".join(
                f"{name} from {where}" for name, where in effective.sources.items())))
        result = TransformResult(output_dir, effective, params.instance_count, len(items),
                                 startup_seconds=startup, execution_parameters=answered)
        job = _Job(params, processing, effective, output_dir, sink, result)
        inputs_mod.make_output_dir(output_dir)
        sink.start(len(items), None if params.compression == "Gzip" else sum(i.size for i in items))
        began = time.monotonic()
        try:
            with local.sigterm_interrupts():
                _run_instances(job, urls, items)
        except KeyboardInterrupt:
            job.stop.set()
            sink.stop()
            raise Interrupted(
                f"transform stopped: the servers were stopped; {len(result.outputs)} finished"
                f" output(s) kept in {output_dir}, unfinished ones removed") from None
        finally:
            result.seconds = time.monotonic() - began
            sink.stop()
    result.outputs.sort()
    return result


def _start_servers(stack: contextlib.ExitStack, count: int,
                   start: Callable[[], contextlib.AbstractContextManager[local.RunningServer]]
                   ) -> list[str]:
    """Start *count* servers at once, as the service starts its instances; their URLs.

    Every server that started is stopped with *stack*, also when another failed to start
    (whose error is raised) or on Ctrl-C (after the other starts have ended).
    """
    managers = [start() for _ in range(count)]
    entered: list[local.RunningServer | None] = [None] * count
    failures: list[BaseException] = []

    def enter(number: int) -> None:
        try:
            entered[number] = managers[number].__enter__()
        except BaseException as exc:  # noqa: B036  (handed to the main thread)
            failures.append(exc)

    if count == 1:
        enter(0)
    else:
        threads = [threading.Thread(target=enter, args=(number,), daemon=True) for number in range(count)]
        try:
            _start_and_join(threads)
        finally:
            for thread in threads:
                thread.join()
    for manager, running in zip(managers, entered, strict=True):
        if running is not None:
            stack.push(manager.__exit__)
    if failures:
        raise failures[0]
    return [running.url for running in entered if running is not None]


def _start_and_join(threads: Sequence[threading.Thread]) -> None:
    """Start every thread and wait for all, in short joins so that Ctrl-C gets through."""
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(POLL)


def _run_instances(job: _Job, urls: Sequence[str], items: Sequence[InputFile]) -> None:
    shares = [list(items[number::len(urls)]) for number in range(len(urls))]
    threads = [threading.Thread(target=_run_instance, args=(job, url, share), daemon=True,
                                name=f"transform-{number + 1}")
               for number, (url, share) in enumerate(zip(urls, shares, strict=True)) if share]
    try:
        _start_and_join(threads)
    except BaseException:
        job.stop.set()
        for thread in threads:
            thread.join(10.0)
        raise


def _run_instance(job: _Job, url: str, share: Sequence[InputFile]) -> None:
    params = job.params
    invoker = Invoker(url, params.content_type, params.accept, float(params.invocation_timeout),
                      params.max_retries, chunked=job.effective.max_payload_mb == 0)
    pool = ThreadPoolExecutor(job.effective.max_concurrent, thread_name_prefix="invoke")
    try:
        for item in share:
            if job.stop.is_set():
                return
            _run_file(job, item, invoker, pool)
    finally:
        pool.shutdown(wait=not job.stop.is_set(), cancel_futures=True)
        invoker.close()


def _run_file(job: _Job, item: InputFile, invoker: Invoker, pool: ThreadPoolExecutor) -> None:
    final = item.output(job.output_dir)
    temp = inputs_mod.temp_output(final)
    window: deque[tuple[Batch, Future[bytes]]] = deque()
    depth = 2 * job.effective.max_concurrent
    line = job.params.assemble_with == "Line"
    try:
        inputs_mod.output_parent(job.output_dir, final)
        with inputs_mod.open_input(item, job.params.compression) as stream, \
                inputs_mod.open_output(temp) as out:
            for batch in _batches(job, stream):
                if job.stop.is_set():
                    raise _Stopped
                window.append((batch, pool.submit(invoker.invoke, batch.body)))
                while len(window) >= depth or (window and window[0][1].done()):
                    _write(job, out, *window.popleft(), line)
            while window:
                _write(job, out, *window.popleft(), line)
        temp.replace(final)
    except _Stopped:
        _discard(window, temp)
        final.unlink(missing_ok=True)  # an earlier run's output of this file is not this run's
        return
    except Exception as exc:  # every failure fails the file: none may pass for a success
        _discard(window, temp)
        final.unlink(missing_ok=True)
        with job.lock:
            job.result.failures.append(FileFailure(item.key, _reason(exc)))
        job.progress.file_done(item.key, False)
        return
    with job.lock:
        job.result.outputs.append(final)
    job.progress.file_done(item.key, True)


def _reason(exc: Exception) -> str:
    if isinstance(exc, SplitError | RecordTooLargeError | _BatchFailed | EOFError | zlib.error
                  | gzip.BadGzipFile | OutputLinkError):
        return str(exc)
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return f"{type(exc).__name__}: {exc}"


class _BatchFailed(Exception):
    pass


def _batches(job: _Job, stream: BinaryIO) -> Iterator[Batch]:
    if job.params.split_type == "Line" and job.effective.strategy == "MultiRecord" \
            and job.processing.input_filter.is_identity and not job.processing.per_record_output:
        return line_batches(stream, job.effective.max_payload_mb)  # the same bodies, faster
    return batches(split(stream, job.params.split_type), job.effective.strategy,
                   job.effective.max_payload_mb, _body_of(job.processing))


def _body_of(processing: DataProcessing) -> Callable[[Record, bool], bytes]:
    def piece(record: Record, multi: bool) -> bytes:
        try:
            return processing.request_piece(record, multi)
        except (DataProcessingError, JsonPathError) as exc:
            raise _BatchFailed(f"record {record.index}: InputFilter: {exc}") from None
    return piece


def _write(job: _Job, out: Any, batch: Batch, future: Future[bytes], line: bool) -> None:
    while True:
        if job.stop.is_set():
            raise _Stopped
        try:
            body = future.result(timeout=POLL)
            break
        except TimeoutError:
            continue
        except InvocationFailed as exc:
            raise _BatchFailed(f"{batch.where()}: {exc.message}") from None
    if job.processing.per_record_output:
        try:
            pieces = job.processing.outputs(body, batch.records)
        except (DataProcessingError, JsonPathError) as exc:
            raise _BatchFailed(f"{batch.where()}: OutputFilter/JoinSource: {exc}") from None
        for piece in pieces:
            out.write(piece + b"\n" if line else piece)
    else:
        out.write(body)
        if line:
            out.write(b"\n")
    job.count(batch)


def _discard(window: deque[tuple[Batch, Future[bytes]]], temp: Path) -> None:
    for _, future in window:
        future.cancel()
    temp.unlink(missing_ok=True)
