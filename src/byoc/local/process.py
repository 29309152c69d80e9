"""Run a :class:`~byoc.job.ProcessingJobDefinition` on this machine as SageMaker would run the
processing job (``CreateProcessingJob``).

Each host gets a tree under ``<job_dir>/hosts/<host>`` standing for its /opt/ml:
``config/processingjobconfig.json`` (the job's request) and ``config/resourceconfig.json``,
``output/`` (where ``message`` becomes ExitMessage), and a folder at each output's LocalPath.
Inputs are seen read-only at their LocalPath (``ShardedByS3Key`` deals an input's files across
the hosts, as for a training channel). When the hosts have ended, what each output's folder holds
is copied into the output's destination folder (symbolic links skipped, as SageMaker does not
upload them); a ``Continuous`` output is also copied while the job runs. The job's record,
``job.json``, is shaped like DescribeProcessingJob.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import contract
from ..backends.base import LogSink, ProcessingBackend, ProcessingHost, ProcessingSpec
from ..backends.docker import DockerBackend
from ..backends.process import ProcessBackend, check_processing
from ..errors import ByocError, ConfigError, ContainerFailedError, JobStoppedError
from ..job import ProcessingJobDefinition, channel_files, check_job_name, default_job_name, limits
from ..project import Project
from ..say import Say, quiet
from . import record as jobrecord
from . import staging, stopping
from .backend import interrupted, sigterm_interrupts
from .train import LocalRun

#: How often a Continuous output is copied while the job runs (seconds).
CONTINUOUS_INTERVAL = 0.5


@dataclass(frozen=True)
class ProcessResult:
    job_name: str
    job_dir: Path
    #: ProcessingJobStatus: Completed, Failed or Stopped.
    status: str
    exit_statuses: dict[str, int]
    exit_message: str | None
    failure_reason: str | None
    #: Each output's destination folder, by OutputName.
    outputs: dict[str, Path]
    notes: list[str] = field(default_factory=list)
    #: Why the job stopped early (MaxRuntimeExceeded, Stopped), if it did.
    stop_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == jobrecord.COMPLETED


def check_local_processing(definition: ProcessingJobDefinition, backend: str) -> None:
    """Refuse what this machine cannot run of a valid processing job, before anything starts:
    ``s3://`` inputs and outputs, Pipe input (and so compressed input), manifest files, more
    hosts than a local run starts, and on the process backend (*backend* ``process``) more
    than one host or no command.

    :raises ConfigError: naming the input or output and the fix.
    """
    for item in definition.inputs:
        where = f"input {item.name!r}"
        if item.remote:
            raise ConfigError(f"{where} is in S3 ({item.source}); a local run needs a local path")
        if item.input_mode == "Pipe":
            raise ConfigError(f"{where}: S3InputMode Pipe is not run locally (a processing job's"
                              f" Pipe input is not emulated); use --input-mode {item.name}=File")
        if item.s3_data_type != "S3Prefix":
            raise ConfigError(f"{where}: S3DataType {item.s3_data_type} is not run locally; pass"
                              " the folder or file itself")
    for out in definition.outputs:
        if out.remote:
            raise ConfigError(f"output {out.name!r} goes to S3 ({out.destination}); a local run"
                              " needs a local folder")
    if definition.instance_count > limits.MAX_LOCAL_INSTANCES:
        raise ConfigError(f"--instance-count {definition.instance_count}: a local run starts at"
                          f" most {limits.MAX_LOCAL_INSTANCES} hosts")
    if backend == "process":
        check_processing(definition.instance_count, definition.entrypoint, definition.arguments)


def has_program(backend: ProcessingBackend, name: str) -> bool:
    """Whether *backend* can run the program *name* (``evaluate``): a file in the project's
    ``container/<program>``, or on the image's PATH."""
    if isinstance(backend, ProcessBackend):
        return (backend.program_dir / name).is_file()
    if isinstance(backend, DockerBackend):
        return backend.has_program(name)
    return True


def check_destinations(definition: ProcessingJobDefinition, protected: Mapping[str, Path]) -> None:
    """Refuse, before the job starts, an output destination that is not a new (or empty)
    folder apart from the inputs and the other outputs
    (:meth:`~byoc.job.ProcessingJobDefinition.check_output_folders`), that holds one of the
    *protected* folders (the jobs directory, the project's ``.byoc/``), or that cannot be
    written: nothing already there may be overwritten, and nothing is lost.

    :raises ConfigError:
    """
    definition.check_output_folders()
    for out in definition.outputs:
        where = f"--output {out.name}"
        destination = Path(out.destination).resolve()
        for what, folder in protected.items():
            folder = folder.resolve()
            if destination == folder or folder.is_relative_to(destination):
                raise ConfigError(f"{where}: {out.destination} holds {what} ({folder}); name"
                                  " another folder")
        staging.check_writable(destination, where)


def process(definition: ProcessingJobDefinition, *, backend: ProcessingBackend,
            project: Project | None = None, run: LocalRun | None = None, say: Say = quiet,
            log: LogSink | None = None, stop: threading.Event | None = None) -> ProcessResult:
    """Run *definition* as one processing job on this machine; return its result when it
    completed or was stopped on request.

    Artifacts (``job.json``, each host's log) go to ``<output_dir>/<job_name>/``; each output's
    files to its destination folder, also when the job failed. Setting *stop* (or ``byoc local
    stop``) stops the job as StopProcessingJob does; MaxRuntimeInSeconds as the service does.

    :raises ConfigError: for what a local run cannot do, before anything starts.
    :raises ContainerFailedError: when a host exited non-zero (outputs are collected first).
    :raises JobStoppedError: when MaxRuntimeInSeconds stopped the job (outputs collected first).
    :raises Interrupted: on Ctrl-C or SIGTERM, after every container is removed.
    """
    run = run or LocalRun()
    check_local_processing(definition, backend.name)
    job_name = run.job_name or default_job_name(definition.base_name)
    check_job_name(job_name)
    jobs_dir = (run.output_dir or (project.jobs_dir if project else Path.cwd() / ".byoc" / "jobs"))
    jobs_dir = jobs_dir.resolve()
    job_dir = jobs_dir / job_name
    if job_dir.exists():
        raise staging.job_exists(job_name, jobs_dir)
    sources = {item.name: Path(item.source) for item in definition.inputs}
    protected = {"the project's .byoc/": project.state_dir} if project is not None else {}
    protected["the job output directory"] = jobs_dir
    staging.check_channel_sources(sources, protected, what="input")
    check_destinations(definition, {"the job's own directory": job_dir, **protected})
    image = run.image or getattr(backend, "image", None)
    if isinstance(backend, DockerBackend):
        backend.client  # noqa: B018  (an engine and the image, before anything is written)
    hosts = contract.host_names(definition.instance_count)
    region = run.region or (project.region if project else None) or contract.DEFAULT_REGION
    request = definition.local_request(job_name=job_name, image=image)
    arn = str(request.get("ProcessingJobArn") or contract.arn("processing-job", job_name, region))
    staging.claim_job_dir(jobs_dir, job_name)
    try:
        record = jobrecord.JobRecord.create_processing(job_dir, describe_fields(
            request, arn=arn, backend=backend.name))
    except BaseException:
        staging.remove_tree(job_dir)
        raise
    say(f"processing job {job_name}: {len(hosts)} host(s) on {backend.name}; record in {job_dir}")
    destinations = {out.name: Path(out.destination).resolve() for out in definition.outputs}
    notes: list[str] = []
    statuses: dict[str, int] = {}
    first_failure: list[str] = []
    stopped_by: KeyboardInterrupt | None = None
    watch = stopping.StopWatch(job_dir, max_runtime=definition.max_runtime, external=stop)
    copier: OutputCopier | None = None
    specs: list[ProcessingHost] = []
    try:
        specs, staged_notes = stage_hosts(job_dir, hosts, definition, request)
        notes += staged_notes
        for note in staged_notes:
            say(f"warning: {note}")
        for destination in destinations.values():
            destination.mkdir(parents=True, exist_ok=True)
        outputs = [(out.local_path, destinations[out.name], out.upload_mode == "Continuous")
                   for out in definition.outputs]
        copier = OutputCopier(specs, outputs, say)

        def host_failed(host: str, status: int) -> None:
            first_failure.append(host)
            say(f"{host} exited with status {status}: stopping the other hosts (SIGTERM, SIGKILL"
                f" after {run.grace_seconds:.0f} s), as SageMaker stops a job when one host fails")

        def started(host: str, pid: int) -> None:
            processes = {**record.data.get("Local", {}).get("Processes", {}),
                         host: [pid, staging.process_start(pid)]}
            record.update(Local={"Processes": processes})

        def stopping_now() -> None:
            while not copier_done.wait(0.1):
                if watch.event.is_set():
                    record.processing_stopping()
                    return

        spec = ProcessingSpec(job_name, specs, dict(definition.environment), job_dir / "logs",
                              entrypoint=definition.entrypoint, arguments=definition.arguments,
                              grace_seconds=run.grace_seconds, notify=say,
                              on_host_failure=host_failed, stop=watch.event, on_start=started)
        copier_done = threading.Event()
        marker = threading.Thread(target=stopping_now, name="stopping", daemon=True)
        record.processing_started()
        watch.start_attempt()
        copier.start()
        marker.start()
        try:
            with sigterm_interrupts():
                statuses = backend.process(spec, log or (lambda host, line: None))
        except KeyboardInterrupt as exc:
            stopped_by = exc
            watch.stop(stopping.STOPPED)
        finally:
            watch.end_attempt()
            copier_done.set()
            marker.join()
            copier.stop()
        notes += copier.final_copy()
    except ByocError as exc:
        # the job cannot go on (Docker refused it, an environment does not build): Failed now
        staging.remove_tree(job_dir / "hosts")
        record.finish_processing(jobrecord.FAILED, failure_reason=exc.message)
        raise
    except BaseException as exc:
        staging.remove_tree(job_dir / "hosts")
        record.finish_processing(jobrecord.FAILED, failure_reason=(
            "byoc was interrupted before the hosts started; nothing was left running"
            if isinstance(exc, KeyboardInterrupt) else f"byoc failed while the job ran: {exc}"))
        raise
    finally:
        watch.close()
        if copier is not None:
            copier.stop()
        staging.remove_tree(job_dir / "shards")
    messages = {host.host: contract.read_exit_message(contract.ProcessingTree(host.root))
                for host in specs}
    message = "".join(part for part in messages.values() if part) or None
    staging.remove_tree(job_dir / "hosts")
    record.update(Local={"ExitStatuses": statuses,
                         "Outputs": {name: str(path) for name, path in destinations.items()}})
    if watch.reason is not None:
        record.finish_processing(jobrecord.STOPPED, exit_message=message, failure_reason=(
            None if watch.reason == stopping.STOPPED else jobrecord.MESSAGES[watch.reason]))
        result = ProcessResult(job_name, job_dir, jobrecord.STOPPED, statuses, message, None,
                               destinations, notes, stop_reason=watch.reason)
        if stopped_by is not None:
            raise interrupted(f"processing job {job_name} interrupted: every host was stopped and"
                              f" removed; outputs so far are in their folders", stopped_by)
        if watch.reason != stopping.STOPPED:
            raise JobStoppedError(f"processing job {job_name} stopped:"
                                  f" {jobrecord.MESSAGES[watch.reason]}",
                                  detail=f"outputs so far: {_named_folders(destinations)}")
        return result
    failed = [host for host in hosts if statuses.get(host, -1) != 0]
    if failed:
        host = (first_failure or failed)[0]
        status = statuses.get(host, -1)
        own = messages.get(host)
        reason = f"{host} exited with status {status}" + (
            f": {own.strip().splitlines()[0]}" if own and own.strip() else "")
        record.finish_processing(jobrecord.FAILED, exit_message=message, failure_reason=reason)
        raise ContainerFailedError(f"processing job {job_name} failed: {reason}",
                                   exit_status=status if status > 0 else 1,
                                   failure_reason=reason,
                                   detail=f"logs: {job_dir / 'logs'}; outputs:"
                                          f" {_named_folders(destinations)}")
    record.finish_processing(jobrecord.COMPLETED, exit_message=message)
    return ProcessResult(job_name, job_dir, jobrecord.COMPLETED, statuses, message, None,
                         destinations, notes)


def _named_folders(destinations: Mapping[str, Path]) -> str:
    return ", ".join(f"{name}={path}" for name, path in destinations.items()) or "none"


def describe_fields(request: Mapping[str, object], *, arn: str, backend: str) -> dict[str, object]:
    """The request half of a DescribeProcessingJob record (``file://`` URIs standing for S3)."""
    fields = {key: value for key, value in request.items() if key != "RoleArn"}
    fields["ProcessingJobArn"] = arn
    fields["Local"] = {"Backend": backend, "Pid": os.getpid(),
                       "ProcessStart": staging.process_start(os.getpid())}
    return fields


def stage_hosts(job_dir: Path, hosts: Sequence[str], definition: ProcessingJobDefinition,
                request: Mapping[str, object]) -> tuple[list[ProcessingHost], list[str]]:
    """Every host's tree (config files, ``output/``, each output's folder) and what each of its
    inputs holds: the source folder itself, or (a file, or ``ShardedByS3Key``) a folder of
    links to the files the host gets."""
    notes: list[str] = []
    inputs: dict[str, dict[str, Path]] = {host: {} for host in hosts}
    for item in definition.inputs:
        source = Path(item.source).resolve()
        if item.distribution == "ShardedByS3Key" or source.is_file():
            base = source.parent if source.is_file() else source
            files = channel_files(source)
            dealt = staging.shard(files, hosts) if item.distribution == "ShardedByS3Key" \
                else {host: files for host in hosts}
            for host, mine in dealt.items():
                if not mine:
                    notes.append(f"{host}: input {item.name!r} gets no files ({len(files)} file(s)"
                                 f" for {len(hosts)} hosts)")
                inputs[host][item.local_path] = staging.link_files(
                    mine, base, job_dir / "shards" / host / item.name)
        else:
            for host in hosts:
                inputs[host][item.local_path] = source
    specs = []
    for host in hosts:
        tree = contract.ProcessingTree(job_dir / "hosts" / host)
        contract.write_processing_config(tree, request, host, hosts)
        tree.output_dir.mkdir(parents=True, exist_ok=True)
        for out in definition.outputs:
            tree.local_path(out.local_path).mkdir(parents=True, exist_ok=True)
        specs.append(ProcessingHost(host, tree.root, inputs[host],
                                    tuple(out.local_path for out in definition.outputs)))
    return specs, notes


class OutputCopier:
    """Copies what the hosts leave in each output's folder to its destination: a Continuous
    output every :data:`CONTINUOUS_INTERVAL` while the job runs (a file again whenever its size
    or modification time changed), every output once at the end. Symbolic links are skipped,
    each with one warning, as SageMaker does not upload them."""

    def __init__(self, hosts: Sequence[ProcessingHost], outputs: Sequence[tuple[str, Path, bool]],
                 say: Say = quiet, interval: float = CONTINUOUS_INTERVAL) -> None:
        self.hosts = hosts
        self.outputs = outputs
        self.say = say
        self.interval = interval
        self._copied: dict[Path, tuple[int, int]] = {}
        self._skipped: set[Path] = set()
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if any(continuous for _, _, continuous in self.outputs):
            self._thread = threading.Thread(target=self._run, name="continuous-upload",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def final_copy(self) -> list[str]:
        """Copy every output now (the job has ended); the notes of everything skipped."""
        self.stop()
        try:
            self.copy(continuous_only=False)
        except OSError as exc:  # a full disk, a folder made read-only meanwhile
            raise ByocError(f"cannot copy the outputs to their folders: {exc}") from exc
        return list(self._notes)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.copy(continuous_only=True)
            except OSError as exc:  # a file the program removes while it is read: next round
                self.say(f"warning: continuous upload: {exc}")

    def copy(self, *, continuous_only: bool) -> int:
        """Copy what changed since the last copy; return how many files were copied."""
        copied = 0
        with self._lock:
            for local_path, destination, continuous in self.outputs:
                if continuous_only and not continuous:
                    continue
                for host in self.hosts:
                    folder = contract.ProcessingTree(host.root).local_path(local_path)
                    copied += self._copy_tree(folder, destination, host.host, local_path)
        return copied

    def _copy_tree(self, folder: Path, destination: Path, host: str, local_path: str) -> int:
        copied = 0
        for top, dirs, files in os.walk(folder):
            here = Path(top)
            for name in [*dirs]:
                if (here / name).is_symlink():
                    dirs.remove(name)
                    self._skip(here / name, folder, host, local_path)
            for name in sorted(files):
                path = here / name
                if path.is_symlink():
                    self._skip(path, folder, host, local_path)
                    continue
                try:
                    found = path.stat()
                except FileNotFoundError:
                    continue
                key = (found.st_size, found.st_mtime_ns)
                if self._copied.get(path) == key:
                    continue
                target = destination / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.byoc-partial")
                shutil.copyfile(path, partial)
                os.replace(partial, target)
                self._copied[path] = key
                copied += 1
        return copied

    def _skip(self, path: Path, folder: Path, host: str, local_path: str) -> None:
        if path in self._skipped:
            return
        self._skipped.add(path)
        note = (f"skipped symbolic link {local_path}/{path.relative_to(folder)} on {host}"
                " (SageMaker does not upload symbolic links)")
        self._notes.append(note)
        self.say(f"warning: {note}")
