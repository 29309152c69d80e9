"""``tuning.json`` shaped like DescribeHyperParameterTuningJob, and the tuning plot."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import contract
from ..local import plots
from ..local import scanner as metrics
from .config import TuningRequest

TUNING_FILE = "tuning.json"
JOBS_FILE = "training-jobs.json"
PLOT_FILE = "tuning.png"
JOB_STATUSES = ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped")


def job_number(name: str) -> int:
    """NNN of ``<tuning job>-<NNN>-<suffix>``."""
    return int(name.rsplit("-", 2)[-2])


def best_job(request: TuningRequest, summaries: Sequence[Mapping[str, Any]]
             ) -> Mapping[str, Any] | None:
    """The Completed job with the best objective (the first of equals)."""
    best: Mapping[str, Any] | None = None
    for entry in summaries:
        metric = entry.get("FinalHyperParameterTuningJobObjectiveMetric")
        if entry.get("TrainingJobStatus") != "Completed" or not metric:
            continue
        if best is None or request.better(
                metric["Value"], best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]):
            best = entry
    return best


def count(summaries: Sequence[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """TrainingJobStatusCounters and ObjectiveStatusCounters of *summaries*."""
    counters = dict.fromkeys(JOB_STATUSES, 0)
    objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for entry in summaries:
        job_status = entry["TrainingJobStatus"]
        counters["NonRetryableError" if job_status == "Failed" else job_status] += 1
        objectives[entry["ObjectiveStatus"]] += 1
    return counters, objectives


def describe(request: TuningRequest, summaries: Sequence[Mapping[str, Any]],
             parents: Sequence[Mapping[str, Any]], created: datetime, status: str
             ) -> dict[str, Any]:
    now = metrics.iso(datetime.now(UTC))
    counters, objectives = count(summaries)
    raw = request.raw
    description: dict[str, Any] = {
        "HyperParameterTuningJobName": request.name,
        "HyperParameterTuningJobArn": contract.arn("hyper-parameter-tuning-job", request.name),
        "HyperParameterTuningJobConfig": raw["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": raw["TrainingJobDefinition"],
        "HyperParameterTuningJobStatus": status,
        "CreationTime": metrics.iso(created),
        "LastModifiedTime": now,
        "TrainingJobStatusCounters": counters,
        "ObjectiveStatusCounters": objectives,
        "ConsumedResources": {"RuntimeInSeconds": int((datetime.now(UTC) - created).total_seconds())},
    }
    if status != "InProgress":
        description["HyperParameterTuningEndTime"] = now
    if "WarmStartConfig" in raw:
        description["WarmStartConfig"] = raw["WarmStartConfig"]
    best = best_job(request, summaries)
    if best is not None:
        description["BestTrainingJob"] = dict(best)
    if request.warm_start is not None and request.warm_start.kind == "IdenticalDataAndAlgorithm":
        everything = list(summaries) + [entry for parent in parents for entry in parent["summaries"]]
        overall = best_job(request, everything)
        if overall is not None:
            description["OverallBestTrainingJob"] = dict(overall)
    return description


def write(tuning_dir: Path, description: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]],
          request: TuningRequest, say: Callable[[str], None] | None = None, plot: bool = False) -> None:
    _write_json(tuning_dir / TUNING_FILE, description)
    _write_json(tuning_dir / JOBS_FILE, {"TrainingJobSummaries": list(summaries)})
    if plot and summaries:
        ordered = sorted(summaries, key=lambda entry: job_number(entry["TrainingJobName"]))
        values = [entry.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
                  for entry in ordered]
        plots.tuning_results(values, [entry["TunedHyperParameters"] for entry in ordered],
                             request.objective_metric, tuning_dir / PLOT_FILE,
                             title=request.name, say=say)


def read(tuning_dir: Path) -> dict[str, Any]:
    path = tuning_dir / TUNING_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_summaries(tuning_dir: Path) -> list[dict[str, Any]]:
    path = tuning_dir / JOBS_FILE
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8"))["TrainingJobSummaries"])


def objective_curve(job_dir: Path, metric: str) -> list[float]:
    """The objective's values on algo-1, in order (one per epoch when the job prints them so)."""
    return [sample.value for sample in metrics.load_samples(job_dir)
            if sample.name == metric and sample.host == "algo-1"]


def _write_json(path: Path, data: Any) -> None:
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(json.dumps(data, indent=2) + "\n")
    os.replace(name, path)
