"""Local jobs as MLflow runs, logged after the job from what it left in its directory.

A finished job's directory holds everything a run needs: ``job.json`` (the record, shaped like
DescribeTrainingJob), ``metrics.json`` (every metric sample the scanner read, with its step and
time), ``model.tar.gz``, ``output.tar.gz`` and any ``evaluation.json``. :func:`log_job` turns
one into one MLflow run; :func:`log_tuning_job` turns a local tuning job's directory
(``tuning.json`` and its training jobs' records) into a parent run with a child run per training
job. The jobs' own code knows nothing of MLflow: the CLI calls these once the job is over,
whatever its outcome.

The one call for any command that runs a local job (``byoc local process`` included)::

    tracking = experiments.resolve(name, project)     # before the job: Error when MLflow is missing
    ...run the job into job_dir...
    experiments.log_job(tracking, job_dir, say=echo_err)   # after it, in a finally
    # (artifacts=[...]: files outside job_dir too, e.g. an output folder's evaluation.json)

:func:`log_job` and :func:`log_tuning_job` never raise for the tracking store: a store that
cannot be reached or written costs one ``warning:`` line and leaves the job's own results and
exit status alone.

MLflow is optional (``pip install 'byoc[experiments]'``) and imported here only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..project import Project
from ..say import Say, quiet
from . import record as jobrecord
from . import scanner

INSTALL = "pip install 'byoc[experiments]'"
#: Where MLflow's tracking store is named, as MLflow itself reads it.
URI_ENV = "MLFLOW_TRACKING_URI"
#: The default store, in the project: MLflow's own default (``mlflow ui`` opens it) ...
DEFAULT_DB = "mlflow.db"
#: ... and the folder its experiments keep artifacts in.
DEFAULT_ARTIFACTS = "mlruns"
#: The job's files logged as artifacts, when it has them (``evaluation.json`` anywhere in it).
ARTIFACTS = ("model.tar.gz", "output.tar.gz", jobrecord.RECORD)
EVALUATION = "evaluation.json"
#: A job's primary status to an MLflow run status; anything else (a job still marked
#: InProgress after byoc stopped) ends KILLED.
RUN_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}
#: Tags are SageMaker's field names under this prefix (byoc's own facts under ``byoc.``).
TAG = "sagemaker."
PARENT_TAG = "mlflow.parentRunId"
#: What MLflow takes in a param, metric or tag key; anything else becomes ``_``.
_KEY = re.compile(r"[^\w./\- :]")
_MAX_TAG = 5000
_MAX_PARAM = 6000
#: A tracking server that does not answer costs seconds, not MLflow's minutes of retries
#: (7, backing off to 2 minutes): its variables, when the user has not set them.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


@dataclass(frozen=True)
class Tracking:
    """Where runs go: an MLflow experiment in a tracking store."""

    experiment: str
    uri: str
    #: For byoc's default store only: the folder the experiment keeps artifacts in.
    artifact_root: Path | None = None


def require(asked_by: str = "--experiment") -> None:
    """:raises ConfigError: when MLflow cannot be imported (with the install command), naming
    what asked for it (*asked_by*)."""
    try:
        importlib.import_module("mlflow")
    except ImportError as exc:
        raise ConfigError(f"{asked_by} needs MLflow, which cannot be imported ({exc}):"
                          f" {INSTALL}") from None


def resolve(name: str | None, project: Project | None, *,
            environ: Mapping[str, str] | None = None) -> Tracking | None:
    """The tracking for a job: *name* (``--experiment``) or ``[experiment] name`` of the
    project's ``byoc.toml``; None when neither names one. The store is ``$MLFLOW_TRACKING_URI``,
    else ``[experiment] tracking_uri``, else ``sqlite:///<project>/mlflow.db`` (artifacts in
    ``<project>/mlruns``; the current directory outside a project).

    Checks that MLflow can be imported, so call it before the job starts.

    :raises ConfigError: for a bad ``[experiment]`` table or when MLflow is missing.
    """
    table = project.config.experiment if project is not None else {}
    experiment = name if name is not None else table.get("name")
    if experiment is None:
        return None
    if not experiment.strip():
        raise ConfigError("--experiment: the experiment name is empty")
    if name is None and project is not None:  # no --experiment: the project's table asked
        require(f"[experiment] in {project.root / 'byoc.toml'}")
    else:
        require()
    environ = os.environ if environ is None else environ
    uri = environ.get(URI_ENV) or table.get("tracking_uri")
    if uri:
        return Tracking(experiment.strip(), uri)
    root = (project.root if project is not None else Path.cwd()).resolve()
    return Tracking(experiment.strip(), f"sqlite:///{root / DEFAULT_DB}", root / DEFAULT_ARTIFACTS)


def log_job(tracking: Tracking, job_dir: Path, *, say: Say = quiet,
            artifacts: Sequence[Path] = ()) -> str | None:
    """Log the job in *job_dir* as one run; its id, or None (with one ``warning:`` line said)
    when the job left no record or the tracking store failed. *artifacts*: files outside the
    job's directory to log as well (a processing job's ``evaluation.json`` in its output
    folder), each under its own name; those that do not exist are skipped."""
    if not (job_dir / jobrecord.RECORD).is_file():
        return None
    try:
        with _mlflow_quiet():
            client = _client(tracking)
            experiment_id = _experiment_id(client, tracking)
            return _log_job(client, experiment_id, job_dir, files=artifacts)
    except Exception as exc:  # noqa: BLE001  (the store's failure must not become the job's)
        say(_warning(tracking, exc))
        return None


def log_tuning_job(tracking: Tracking, tuning_dir: Path, *, say: Say = quiet) -> str | None:
    """Log a local tuning job as a parent run (ranges, strategy and objective as params, the
    best training job as a tag, its objective value as a metric) with a child run per training
    job in ``<tuning_dir>/jobs``; the parent's id, or None (with one ``warning:``) as
    :func:`log_job`. Logging a tuning job again (after ``--resume``) updates its parent run
    and adds the training jobs not logged yet."""
    description = _read(tuning_dir / "tuning.json")
    if not description:
        return None
    try:
        with _mlflow_quiet():
            client = _client(tracking)
            experiment_id = _experiment_id(client, tracking)
            return _log_tuning_job(client, experiment_id, tuning_dir, description)
    except Exception as exc:  # noqa: BLE001
        say(_warning(tracking, exc))
        return None


def _warning(tracking: Tracking, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (f"warning: not logged to MLflow experiment {tracking.experiment!r} at {tracking.uri}:"
            f" {first} (the job's own results are in its directory)")


@contextlib.contextmanager
def _mlflow_quiet() -> Iterator[None]:
    """MLflow's and its database's chatter (INFO lines, deprecation warnings) kept off the
    user's terminal while byoc logs, and :data:`HTTP_DEFAULTS` in force."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    added = [name for name in HTTP_DEFAULTS if name not in os.environ]
    os.environ.update({name: HTTP_DEFAULTS[name] for name in added})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _client(tracking: Tracking) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking.uri)


def _experiment_id(client: Any, tracking: Tracking) -> str:
    found = client.get_experiment_by_name(tracking.experiment)
    if found is not None:
        if found.lifecycle_stage != "active":
            raise ConfigError(f"experiment {tracking.experiment!r} is deleted in {tracking.uri};"
                              " restore it (mlflow experiments restore) or pick another name")
        return str(found.experiment_id)
    location = None
    if tracking.artifact_root is not None:
        folder = tracking.artifact_root / (_KEY.sub("_", tracking.experiment).strip(". ") or "experiment")
        location = folder.as_uri()
    return str(client.create_experiment(tracking.experiment, artifact_location=location))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _millis(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        return None


def _key(name: str) -> str:
    return _KEY.sub("_", name)[:250]


def _find_run(client: Any, experiment_id: str, tag: str, value: str) -> Any:
    quoted = value.replace("'", "\\'")
    found = client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{quoted}'",
                               max_results=1)
    return found[0] if found else None


# What a job's record calls each fact, for a training job and a processing job.
_FIELDS = {
    "name": ("TrainingJobName", "ProcessingJobName"),
    "arn": ("TrainingJobArn", "ProcessingJobArn"),
    "status": ("TrainingJobStatus", "ProcessingJobStatus"),
    "start": ("TrainingStartTime", "ProcessingStartTime", "CreationTime"),
    "end": ("TrainingEndTime", "ProcessingEndTime", "LastModifiedTime"),
}


def _field(record: Mapping[str, Any], fact: str) -> Any:
    return next((record[key] for key in _FIELDS[fact] if record.get(key) is not None), None)


def _job_tags(record: Mapping[str, Any]) -> dict[str, str]:
    """The job's SageMaker facts as tags, under their SageMaker names."""
    algorithm = record.get("AlgorithmSpecification") or {}
    app = record.get("AppSpecification") or {}
    resources = record.get("ResourceConfig") or (
        (record.get("ProcessingResources") or {}).get("ClusterConfig") or {})
    local = record.get("Local") or {}
    facts: dict[str, Any] = {key: record.get(key) for key in (*_FIELDS["name"], *_FIELDS["arn"],
                                                              *_FIELDS["status"], "SecondaryStatus",
                                                              "FailureReason", "TuningJobName")}
    facts["TrainingImage"] = algorithm.get("TrainingImage")
    facts["ImageUri"] = app.get("ImageUri")
    facts["TrainingInputMode"] = algorithm.get("TrainingInputMode")
    facts["InstanceCount"] = resources.get("InstanceCount")
    facts["InstanceType"] = resources.get("InstanceType")
    tags = {TAG + key: str(value)[:_MAX_TAG] for key, value in facts.items() if value not in (None, "")}
    if local.get("Backend"):
        tags["byoc.backend"] = str(local["Backend"])
    return tags


def _metrics(record: Mapping[str, Any], job_dir: Path) -> list[Any]:
    """Every sample the scanner read, with its step and time; a job with samples from more
    than one host keeps each host's series apart (``NAME/algo-N``) and logs the final value
    (``FinalMetricDataList``) as ``NAME``."""
    from mlflow.entities import Metric

    samples = scanner.load_samples(job_dir)
    hosts = {sample.host for sample in samples}
    found = [Metric(_key(sample.name if len(hosts) == 1 else f"{sample.name}/{sample.host}"),
                    sample.value, int(sample.timestamp.timestamp() * 1000), sample.step)
             for sample in samples]
    logged = {sample.name for sample in samples} if len(hosts) == 1 else set()
    for entry in record.get("FinalMetricDataList") or []:
        name = str(entry.get("MetricName", ""))
        if not name or name in logged or not isinstance(entry.get("Value"), int | float):
            continue
        steps = [sample.step for sample in samples if sample.name == name]
        found.append(Metric(_key(name), float(entry["Value"]),
                            _millis(entry.get("Timestamp")) or 0, max(steps, default=0)))
    return found


def _params(record: Mapping[str, Any]) -> dict[str, Any]:
    """A training job's hyperparameters; a processing job's entrypoint and arguments (as JSON
    lists: its environment may hold secrets and is left out)."""
    params = dict(record.get("HyperParameters") or {})
    app = record.get("AppSpecification") or {}
    for key in ("ContainerEntrypoint", "ContainerArguments"):
        if app.get(key) is not None:
            params[key] = json.dumps(app[key])
    return params


def _log_job(client: Any, experiment_id: str, job_dir: Path,
             parent: str | None = None, extra_tags: Mapping[str, str] | None = None,
             files: Sequence[Path] = ()) -> str:
    from mlflow.entities import Param

    record = _read(job_dir / jobrecord.RECORD)
    name = str(_field(record, "name") or job_dir.name)
    tags = {**_job_tags(record), **(extra_tags or {})}
    if parent is not None:
        tags[PARENT_TAG] = parent
    run = client.create_run(experiment_id, start_time=_millis(_field(record, "start")),
                            tags=tags, run_name=name)
    run_id = str(run.info.run_id)
    status = RUN_STATUS.get(str(_field(record, "status") or ""), "KILLED")
    end = _millis(_field(record, "end"))
    try:
        params = [Param(_key(key), str(value)[:_MAX_PARAM]) for key, value in _params(record).items()]
        metrics = _metrics(record, job_dir)
        for start in range(0, max(len(params), len(metrics), 1), 100):  # MLflow's batch limits
            client.log_batch(run_id, metrics=metrics[start:start + 100],
                             params=params[start:start + 100])
        for artifact in ARTIFACTS:
            if (job_dir / artifact).is_file():
                client.log_artifact(run_id, str(job_dir / artifact))
        for evaluation in sorted(job_dir.rglob(EVALUATION)):
            folder = evaluation.parent.relative_to(job_dir).as_posix()
            client.log_artifact(run_id, str(evaluation), None if folder == "." else folder)
        for extra in files:
            if extra.is_file():
                client.log_artifact(run_id, str(extra))
    except Exception:
        with contextlib.suppress(Exception):  # the run ends with the job's status, however partial
            client.set_terminated(run_id, status, end_time=end)
        raise
    client.set_terminated(run_id, status, end_time=end)
    return run_id


def _tuning_params(description: Mapping[str, Any]) -> dict[str, str]:
    config = description.get("HyperParameterTuningJobConfig") or {}
    objective = config.get("HyperParameterTuningJobObjective") or {}
    params = {"Strategy": config.get("Strategy"), "Objective.Type": objective.get("Type"),
              "Objective.MetricName": objective.get("MetricName"),
              "RandomSeed": config.get("RandomSeed"),
              "TrainingJobEarlyStoppingType": config.get("TrainingJobEarlyStoppingType")}
    for key, value in (config.get("ResourceLimits") or {}).items():
        params[f"ResourceLimits.{key}"] = value
    for kind, ranges in (config.get("ParameterRanges") or {}).items():
        for entry in ranges:
            spec = {key: value for key, value in entry.items() if key != "Name"}
            params[f"ParameterRanges.{entry.get('Name')}"] = json.dumps(
                {"Type": kind.removesuffix("ParameterRanges"), **spec}, sort_keys=True)
    static = (description.get("TrainingJobDefinition") or {}).get("StaticHyperParameters") or {}
    for key, value in static.items():
        params[f"StaticHyperParameters.{key}"] = value
    return {_key(key): str(value) for key, value in params.items() if value is not None}


def _log_tuning_job(client: Any, experiment_id: str, tuning_dir: Path,
                    description: Mapping[str, Any]) -> str:
    from mlflow.entities import Metric, Param

    name = str(description.get("HyperParameterTuningJobName") or tuning_dir.name)
    best = description.get("BestTrainingJob") or {}
    tags = {TAG + "HyperParameterTuningJobName": name,
            TAG + "HyperParameterTuningJobArn": description.get("HyperParameterTuningJobArn"),
            TAG + "HyperParameterTuningJobStatus": description.get("HyperParameterTuningJobStatus"),
            TAG + "FailureReason": description.get("FailureReason"),
            TAG + "BestTrainingJob": best.get("TrainingJobName")}
    existing = _find_run(client, experiment_id, TAG + "HyperParameterTuningJobName", name)
    if existing is not None:  # logged before: --resume went on with it
        run_id = str(existing.info.run_id)
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = str(client.create_run(experiment_id, start_time=_millis(description.get("CreationTime")),
                                       run_name=name).info.run_id)
        client.log_batch(run_id, params=[Param(key, value)
                                         for key, value in _tuning_params(description).items()])
    backends: set[str] = set()
    for record_file in sorted((tuning_dir / "jobs").glob(f"*/{jobrecord.RECORD}")):
        record = _read(record_file)
        backends.add(str((record.get("Local") or {}).get("Backend") or ""))
        job_name = str(record.get("TrainingJobName") or record_file.parent.name)
        if _find_run(client, experiment_id, TAG + "TrainingJobName", job_name) is None:
            _log_job(client, experiment_id, record_file.parent, parent=run_id,
                     extra_tags={TAG + "TuningJobName": name})
    tags["byoc.backend"] = ",".join(sorted(backends - {""}))
    metric = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    metrics = []
    if isinstance(metric.get("Value"), int | float) and metric.get("MetricName"):
        metrics.append(Metric(_key(str(metric["MetricName"])), float(metric["Value"]),
                              _millis(best.get("TrainingEndTime")) or 0, 0))
    client.log_batch(run_id, metrics=metrics,
                     tags=[_tag(key, str(value)) for key, value in tags.items() if value])
    status = str(description.get("HyperParameterTuningJobStatus") or "")
    client.set_terminated(run_id, RUN_STATUS.get(status, "KILLED"),
                          end_time=_millis(description.get("HyperParameterTuningEndTime")
                                           or description.get("LastModifiedTime")))
    return run_id


def _tag(key: str, value: str) -> Any:
    from mlflow.entities import RunTag

    return RunTag(key, value[:_MAX_TAG])
