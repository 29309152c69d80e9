"""The local tuning loop: training jobs in parallel, as the service would run them.

Each training job runs through :func:`byoc.local.train` in its own thread
with its own directory under ``<tuning dir>/jobs/``; metric lines feed the
strategy (Hyperband) and the median rule (early stopping ``Auto``) as they
arrive. The loop ends at MaxNumberOfTrainingJobs, MaxRuntimeInSeconds or a
TuningJobCompletionCriteria, or on Ctrl-C, which stops every running job and
keeps what finished. ``tuning.json`` is written after every job.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import contract
from .. import job as job_api
from .. import local as harness
from ..backends.base import Backend
from ..backends.docker import DockerBackend
from ..errors import ByocError, ConfigError, ContainerFailedError, JobStoppedError
from ..job import JobDefinition, check_job_name
from ..local import record as jobrecord
from ..local import scanner as metrics
from ..local import staging
from ..project import Project
from ..say import Say, quiet
from . import config, report, strategies, warmstart
from .completion import Completion
from .config import TuningRequest
from .strategies import COMPLETE, FAILED, STOPPED, MedianRule, Strategy, Trial, make

REQUEST_FILE = "request.json"
INTERRUPTED_FILE = "interrupted.json"
JOBS = "jobs"
#: In a tuning job\'s directory: the folders that play each job\'s s3:// CheckpointConfig.
CHECKPOINTS = "checkpoints"
POLL = 0.1
#: tuning.json's FailureReason once the byoc running the tuning job was found gone.
LOST = ("byoc stopped while the tuning job ran (killed?): its running training jobs were marked"
        " Failed and removed; --resume continues it")
#: A lost training job's FailureReason when its own record has none.
LOST_JOB = "byoc stopped while the job ran (killed?); its hosts were removed"


@dataclass
class JobState:
    number: int
    name: str
    tuned: dict[str, str]
    trial: Trial
    job_dir: Path
    status: str = "InProgress"
    objective: float | None = None
    curve: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None
    failure_reason: str | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: datetime | None = None
    ended: datetime | None = None
    model_archive: Path | None = None
    thread: threading.Thread | None = None

    def stop_for(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    @property
    def done(self) -> bool:
        return self.status != "InProgress"


@dataclass(frozen=True)
class TuningResult:
    tuning_dir: Path
    description: dict[str, Any]
    best_model: Path | None


@dataclass
class Tuner:
    request: TuningRequest
    backend: Backend
    tuning_dir: Path
    project: Project | None = None
    channels: Mapping[str, Path] | None = None
    #: The training job each trial runs (see :func:`check`).
    definition: JobDefinition | None = None
    grace_seconds: float = harness.TRAIN_GRACE
    say: Say = quiet
    table: Callable[[list[JobState], str], None] | None = None
    source: Mapping[str, Any] = field(default_factory=dict)
    jobs: list[JobState] = field(default_factory=list)
    previous: list[dict[str, Any]] = field(default_factory=list)
    parents: list[dict[str, Any]] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.strategy: Strategy = make(self.request)
        self.median = MedianRule(self.request.minimize) \
            if self.request.early_stopping == "Auto" else None
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.wake = threading.Event()
        self.created = datetime.now(UTC)
        self.ending: str | None = None
        self.status = "InProgress"
        self.completion = Completion(self.request)

    # the loop -----------------------------------------------------------------------------
    def run(self) -> TuningResult:
        started = time.monotonic()
        number = max((report.job_number(item["TrainingJobName"]) for item in self.previous), default=0)
        launched = len(self.previous) - len(self.interrupted)
        exhausted = False
        interrupted: KeyboardInterrupt | None = None
        try:
            with harness.sigterm_interrupts():
                while True:
                    running = [job for job in self.jobs if not job.done]
                    while (self.ending is None and not exhausted and len(running) <
                           self.request.max_parallel and launched < self.request.max_jobs):
                        trial = self.strategy.ask(number + 1)
                        if trial is None:
                            exhausted = True
                            break
                        number += 1
                        launched += 1
                        running.append(self._launch(trial))
                    if not running and (self.ending is not None or exhausted
                                        or launched >= self.request.max_jobs):
                        break
                    if (self.request.max_runtime is not None and self.ending is None
                            and time.monotonic() - started > self.request.max_runtime):
                        self._end("MaxRuntimeInSeconds reached")
                    self._show()
                    self.wake.wait(POLL)
                    self.wake.clear()
        except KeyboardInterrupt as exc:
            interrupted = exc
            self.say("stopping: SIGTERM to every running training job, SIGKILL after the grace period")
            for job in self.jobs:
                if not job.done:
                    job.stop_for("interrupted")
            for job in self.jobs:
                while job.thread is not None and job.thread.is_alive():
                    try:
                        job.thread.join()
                    except KeyboardInterrupt:
                        continue
        for job in self.jobs:  # their records and plots
            if job.thread is not None:
                job.thread.join()
        self.status = "Stopped" if interrupted is not None else "Completed"
        self._show()
        description = self.write(final=True)
        if interrupted is not None:
            names = [job.name for job in self.jobs if job.stop_reason == "interrupted"]
            (self.tuning_dir / INTERRUPTED_FILE).write_text(json.dumps(
                sorted(set(names) | set(self._interrupted_before())), indent=2) + "\n",
                encoding="utf-8")
            raise harness.interrupted(f"tuning job {self.request.name} stopped: what finished is"
                                    f" kept in {self.tuning_dir}; --resume continues it",
                                    interrupted)
        return TuningResult(self.tuning_dir, description, self._best_model(description))

    def _definition(self) -> JobDefinition:
        if self.definition is None:
            self.definition = check(self.request, self.backend, self.channels or {}, self.project)
        return self.definition

    def _trial(self, job: JobState) -> JobDefinition:
        """The trial's training job: the request's, with the trial's hyperparameters; an
        ``s3://`` checkpoint location is played by a folder of its own in the tuning job's."""
        definition = self._definition().with_hyperparameters(self.request.hyperparameters(job.tuned))
        if definition.checkpoint_uri is not None and job_api.is_s3(definition.checkpoint_uri):
            folder = self.tuning_dir / CHECKPOINTS / job.name
            definition = dataclasses.replace(definition, checkpoint_uri=str(folder))
        return definition

    def _launch(self, trial: Trial) -> JobState:
        name = f"{self.request.name}-{trial.number:03d}-{uuid.uuid4().hex[:8]}"
        job = JobState(trial.number, name, trial.tuned, trial, self.tuning_dir / JOBS / name)
        job.thread = threading.Thread(target=self._run_job, args=(job,), name=name, daemon=True)
        with self.lock:
            self.jobs.append(job)
        job.thread.start()
        self.write(final=False)  # listed InProgress from its start, as the service lists it
        return job

    def _run_job(self, job: JobState) -> None:
        scanner = metrics.MetricScanner(self.request.metric_definitions,
                                        on_sample=lambda sample: self._on_sample(job, sample))
        scanner.defer_plot = True
        status = "Failed"
        timer = None
        if self.request.job_max_runtime is not None:
            timer = threading.Timer(float(self.request.job_max_runtime), job.stop_for,
                                    args=("MaxRuntimeExceeded",))
            timer.daemon = True
            timer.start()
        job.started = datetime.now(UTC)
        try:
            result = harness.train(
                self._trial(job),
                backend=self.backend, project=self.project,
                run=harness.LocalRun(job_name=job.name, output_dir=self.tuning_dir / JOBS,
                                     grace_seconds=self.grace_seconds),
                scanner=scanner, stop=job.stop)
            job.model_archive = result.model_archive
            status = "Stopped" if job.stop.is_set() else "Completed"
        except JobStoppedError as exc:  # its StoppingCondition: the service stops it too
            job.model_archive = job.job_dir / "model.tar.gz"
            status = "Stopped"
            job.failure_reason = exc.message
        except ContainerFailedError as exc:
            job.model_archive = job.job_dir / "model.tar.gz"
            status = "Stopped" if job.stop.is_set() else "Failed"
            job.failure_reason = exc.failure_reason or exc.message
        except ByocError as exc:
            job.failure_reason = exc.message
        except Exception as exc:  # a bug must not take the other jobs down
            job.failure_reason = f"{type(exc).__name__}: {exc}"
        finally:
            if timer is not None:
                timer.cancel()
        job.ended = datetime.now(UTC)
        series = scanner.series(self.request.objective_metric)
        job.objective = series[-1].value if series else None
        outcome = {"Completed": COMPLETE, "Stopped": STOPPED}.get(status, FAILED)
        self.strategy.tell(job.trial, job.objective, outcome, job.curve)
        self._account(job, status)
        job.status = status  # the job's slot is free from here on
        self.wake.set()
        if job.job_dir.is_dir():
            jobrecord.merge(job.job_dir, self.summary(job, full=True))
        if job.stop_reason != "interrupted":
            self.write(final=False)
        if job.job_dir.is_dir():
            scanner.plot(job.job_dir)

    def _on_sample(self, job: JobState, sample: metrics.Sample) -> None:
        if sample.name != self.request.objective_metric:
            return
        job.objective = sample.value
        if sample.host != "algo-1":  # one host's curve, so that duplicated lines count once
            return
        job.curve.append(sample.value)
        if job.stop.is_set():
            return
        if self.request.strategy == "Hyperband" and len(job.curve) >= self.request.hyperband_max:
            # at MaxResource the job has had its full budget: one told it through its epoch
            # hyperparameter ends by itself; any other is stopped, as the service does
            if self.request.epoch_hyperparameter is None:
                job.stop_for("Hyperband MaxResource")
            return
        if self.strategy.report(job.trial, len(job.curve), sample.value):
            job.stop_for("Hyperband")
        elif self.median is not None and self.median.add(job.number, sample.value):
            job.stop_for("early stopping")

    def _account(self, job: JobState, status: str) -> None:
        """The completion criteria, once a job has ended with *status*."""
        if job.stop_reason == "interrupted":
            return  # Ctrl-C: --resume runs it again
        value = job.objective if status in ("Completed", "Stopped") else None
        with self.lock:
            converged = self.completion.converged
            reason = self.completion.add(value)
            if reason is not None:
                self._end(reason)
            elif converged is None and self.completion.converged is not None:
                self.say("convergence detected (TuningJobCompletionDetails.ConvergenceDetectedTime);"
                         " the tuning job goes on: CompleteOnConvergence is not Enabled")

    def _end(self, reason: str) -> None:
        if self.ending is None:
            self.ending = reason
            self.say(f"tuning job ends: {reason}")
            for job in self.jobs:
                if not job.done:
                    job.stop_for("tuning job complete")

    def _show(self) -> None:
        if self.table is not None:
            with self.lock:
                jobs = list(self.jobs)
            self.table(jobs, self.status)

    # records ------------------------------------------------------------------------------
    def summary(self, job: JobState, full: bool = False) -> dict[str, Any]:
        """A HyperParameterTrainingJobSummary (with ``full``: the keys of its job.json)."""
        entry: dict[str, Any] = {
            "TrainingJobName": job.name,
            "TrainingJobArn": _arn(self.request, "training-job", job.name),
            "TuningJobName": self.request.name,
            "CreationTime": metrics.iso(job.created),
            "TrainingJobStatus": job.status,
            "TunedHyperParameters": dict(job.tuned),
            "ObjectiveStatus": "Succeeded" if job.objective is not None and job.status in (
                "Completed", "Stopped") else ("Pending" if job.status == "InProgress" else "Failed"),
        }
        if job.started is not None:
            entry["TrainingStartTime"] = metrics.iso(job.started)
        if job.ended is not None:
            entry["TrainingEndTime"] = metrics.iso(job.ended)
        if job.failure_reason:
            entry["FailureReason"] = job.failure_reason[:1024]
        if job.objective is not None:
            entry["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": self.request.objective_type, "MetricName": self.request.objective_metric,
                "Value": job.objective}
        if full:  # the DescribeTrainingJob keys of the job's own record
            for key in ("TunedHyperParameters", "ObjectiveStatus", "TuningJobName",
                        "FinalHyperParameterTuningJobObjectiveMetric"):
                entry.pop(key, None)
            entry.update({"TuningJobArn": _arn(self.request, "hyper-parameter-tuning-job",
                                               self.request.name),
                          "HyperParameters": self.request.hyperparameters(job.tuned)})
        return entry

    def write(self, final: bool) -> dict[str, Any]:
        with self.lock:
            jobs = list(self.jobs)
        summaries = self.previous + [self.summary(job) for job in jobs]
        description = report.describe(self.request, summaries, self.parents, self.created,
                                      self.status if final else "InProgress")
        description["TuningJobCompletionDetails"] = self.completion.details()
        # the byoc running the tuning job: once it is gone, an InProgress record is reaped
        description["Local"] = {"Pid": os.getpid(), "ProcessStart": staging.process_start(os.getpid())}
        with self.write_lock:
            report.write(self.tuning_dir, description, summaries, self.request,
                         say=self.say if final else None, plot=final)
        return description

    def _best_model(self, description: Mapping[str, Any]) -> Path | None:
        best = description.get("BestTrainingJob")
        if not best:
            return None
        path = self.tuning_dir / JOBS / best["TrainingJobName"] / "model.tar.gz"
        return path if path.is_file() else None

    def _interrupted_before(self) -> list[str]:
        path = self.tuning_dir / INTERRUPTED_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    # resume and warm start ----------------------------------------------------------------
    def restore(self) -> None:
        """Take the jobs of an earlier run of this tuning job (``--resume``).

        Jobs that Ctrl-C stopped stay listed as Stopped but do not count towards
        MaxNumberOfTrainingJobs, and the strategy does not learn from them. A tuning job
        whose finished jobs already meet its TuningJobCompletionCriteria runs no more.
        """
        reap(self.tuning_dir, say=self.say)
        skipped = set(self._interrupted_before())
        met: str | None = None
        for entry in report.read_summaries(self.tuning_dir):
            self.previous.append(entry)
            if entry["TrainingJobName"] in skipped or entry["TrainingJobStatus"] == "InProgress":
                self.interrupted.append(entry["TrainingJobName"])  # listed, not counted
                continue
            value = entry.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
            outcome = {"Completed": COMPLETE, "Stopped": STOPPED}.get(entry["TrainingJobStatus"], FAILED)
            curve = report.objective_curve(self.tuning_dir / JOBS / entry["TrainingJobName"],
                                           self.request.objective_metric)
            self.strategy.seed(entry["TunedHyperParameters"], value, outcome, curve)
            if self.median is not None and curve:
                self.median.seed(report.job_number(entry["TrainingJobName"]), curve)
            met = self.completion.seed(value if outcome != FAILED else None) or met
        if met is not None:  # the earlier run had ended on its TuningJobCompletionCriteria
            self._end(met)

    def warm_start(self, parents: list[dict[str, Any]]) -> None:
        """Seed the strategy with the parents' jobs (WarmStartConfig, see :mod:`.warmstart`)."""
        self.parents = parents
        for index, (tuned, value, outcome, curve) in enumerate(
                warmstart.seeds(self.request, self.parents)):
            self.strategy.seed(tuned, value, outcome, curve)
            if self.median is not None and curve:
                self.median.seed(-1 - index, curve)


def _arn(request: TuningRequest, kind: str, name: str) -> str:
    return contract.arn(kind, name)


def check(request: TuningRequest, backend: Backend, channels: Mapping[str, Path],
          project: Project | None = None, say: Say = quiet) -> JobDefinition:
    """Refuse, before anything is written, what would make every training job fail: a strategy
    whose package is missing, what CreateTrainingJob refuses of the jobs' inputs, an image the
    engine does not have.

    The training job is the request's whole ``TrainingJobDefinition``
    (:func:`byoc.job.from_tuning_request`); *channels* (``--channel``) play its ``s3://``
    channels, and one that no folder plays is refused here, before any job starts.

    :returns: the training job every trial runs (with the trial's hyperparameters laid over it).
    :raises ConfigError: (or the backend's error for the image)
    """
    strategies.check_available(request)
    check_job_name(f"{request.name}-001-00000000")
    definition, notes = job_api.from_tuning_request(
        request.raw.get("TrainingJobDefinition") or {}, project=project,
        channels={name: str(path) for name, path in channels.items()}, base_name=request.name)
    for channel in definition.channels:
        if channel.remote:
            raise ConfigError(f"channel {channel.name!r} is {channel.source} in the request; a local"
                              f" tuning job reads local files: pass --channel {channel.name}=PATH")
    if not definition.channels:
        raise ConfigError("no channels: pass --channel NAME=PATH")
    for note in notes:
        say(f"note: {note}")
    if isinstance(backend, DockerBackend):
        backend.client  # noqa: B018  (an engine and the image)
    return definition


def prepare(request: TuningRequest, output_root: Path, resume: bool) -> Path:
    """The tuning job's directory, created (or, with *resume*, checked). :raises ConfigError:"""
    tuning_dir = output_root.resolve() / request.name
    stored = tuning_dir / REQUEST_FILE
    if tuning_dir.exists():
        if not resume:
            raise ConfigError(f"{tuning_dir} exists: pass --resume to continue that tuning job, or"
                              " pick another HyperParameterTuningJobName")
        if not stored.is_file():
            raise ConfigError(f"{tuning_dir} is not a local tuning job (no {REQUEST_FILE})")
        if json.loads(stored.read_text(encoding="utf-8")) != dict(request.raw):
            raise ConfigError(f"--resume: the request differs from the one {request.name} started"
                              f" with ({stored}); give the tuning job a new name")
        return tuning_dir
    if resume:
        raise ConfigError(f"--resume: there is no tuning job {request.name} in {output_root}")
    try:
        (tuning_dir / JOBS).mkdir(parents=True)
        stored.write_text(json.dumps(request.raw, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:  # a read-only --output-dir, a file in the way
        raise ConfigError(f"cannot create the tuning job's directory {tuning_dir}:"
                          f" {exc.strerror or exc}; pick a writable --output-dir") from None
    return tuning_dir


def reap(tuning_dir: Path, say: Say = quiet, environ: Mapping[str, str] | None = None) -> list[str]:
    """Settle a tuning job whose byoc died (SIGKILL) while it ran; return the training jobs lost.

    Its running training jobs are marked Failed and their containers and processes removed
    (:func:`byoc.local.reap_orphans`); they are listed so, with a FailureReason, and, like the
    jobs Ctrl-C stops, do not count towards MaxNumberOfTrainingJobs on ``--resume``. The
    tuning job is marked Stopped with its counters recounted. A tuning job still running, or
    one that ended, is left as it is.
    """
    description = report.read(tuning_dir)
    if description.get("HyperParameterTuningJobStatus") != "InProgress" \
            or staging.owner_alive(description.get("Local") or {}):
        return []
    stored = tuning_dir / REQUEST_FILE
    try:
        request = config.parse(json.loads(stored.read_text(encoding="utf-8")))
    except (OSError, ValueError, ConfigError):
        return []  # not a tuning job byoc can read: nothing to settle
    harness.reap_orphans(tuning_dir / JOBS, say=say, environ=environ)
    summaries = report.read_summaries(tuning_dir)
    listed = {entry["TrainingJobName"] for entry in summaries}
    tuned_names = {item.name for item in request.ranges}
    for record in jobrecord.records(tuning_dir / JOBS):  # started after training-jobs.json was written
        if record.name not in listed:
            hyperparameters = record.data.get("HyperParameters") or {}
            summaries.append({
                "TrainingJobName": record.name,
                "TrainingJobArn": record.data.get("TrainingJobArn", _arn(request, "training-job",
                                                                         record.name)),
                "TuningJobName": request.name, "CreationTime": record.data.get("CreationTime"),
                "TrainingJobStatus": "InProgress",
                "TunedHyperParameters": {k: v for k, v in hyperparameters.items() if k in tuned_names},
                "ObjectiveStatus": "Pending"})
    summaries.sort(key=lambda entry: report.job_number(entry["TrainingJobName"]))
    lost: list[str] = []
    for entry in summaries:
        if entry["TrainingJobStatus"] != "InProgress":
            continue
        found = jobrecord.read(tuning_dir / JOBS / entry["TrainingJobName"])
        status = found.get("TrainingJobStatus")
        entry["TrainingJobStatus"] = status if status in ("Completed", "Failed", "Stopped") else "Failed"
        entry["FailureReason"] = str(found.get("FailureReason") or LOST_JOB)[:1024]
        entry["TrainingEndTime"] = found.get("TrainingEndTime") or metrics.iso(datetime.now(UTC))
        entry["ObjectiveStatus"] = "Failed"
        entry.pop("FinalHyperParameterTuningJobObjectiveMetric", None)
        lost.append(entry["TrainingJobName"])
    counters, objectives = report.count(summaries)
    now = metrics.iso(datetime.now(UTC))
    description.update({"HyperParameterTuningJobStatus": "Stopped", "FailureReason": LOST,
                        "TrainingJobStatusCounters": counters, "ObjectiveStatusCounters": objectives,
                        "LastModifiedTime": now, "HyperParameterTuningEndTime": now})
    before = tuning_dir / INTERRUPTED_FILE
    skipped = json.loads(before.read_text(encoding="utf-8")) if before.is_file() else []
    before.write_text(json.dumps(sorted(set(skipped) | set(lost)), indent=2) + "\n", encoding="utf-8")
    report.write(tuning_dir, description, summaries, request)
    say(f"note: tuning job {request.name} lost the byoc running it: marked Stopped; {len(lost)}"
        " running training job(s) marked Failed and removed (--resume continues it)")
    return lost


def reap_all(directory: Path, say: Say = quiet, environ: Mapping[str, str] | None = None) -> None:
    """:func:`reap` every tuning job at or around *directory*: a tuning job's directory, its
    ``jobs/`` or one of its training jobs, a directory of tuning jobs, or a jobs directory beside
    ``tuning/`` (a project's ``.byoc/jobs``)."""
    candidates = [directory, directory.parent, directory.parent.parent]
    for root in (directory, directory.parent / "tuning"):
        if root.is_dir():
            candidates += sorted(root.iterdir())
    seen: set[Path] = set()
    for candidate in candidates:
        if candidate in seen or not (candidate / report.TUNING_FILE).is_file() \
                or not (candidate / REQUEST_FILE).is_file():
            continue
        seen.add(candidate)
        reap(candidate, say=say, environ=environ)
