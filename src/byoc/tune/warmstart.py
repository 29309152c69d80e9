"""WarmStartConfig: earlier local tuning jobs as parents, checked as the service checks them.

Parents live beside the new tuning job (the same output directory). Each must
have ended (Completed or Stopped), optimize the same objective metric, and
have the same hyperparameters (static and tuned together), each tuned one of
the same range type; at most 10 changes of static values or of a parameter
between static and tuned. ``IdenticalDataAndAlgorithm`` also needs the same
image and channels. Warm start is not recursive: only the parents' own jobs
seed the new one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..local import record as jobrecord
from . import report
from .config import OBJECTIVE_KEY, TuningRequest, parse
from .ranges import CategoricalRange, Range
from .strategies import COMPLETE, FAILED, STOPPED

SOURCE_FILE = "local.json"
MAX_CHANGES = 10
FIELD = "WarmStartConfig.ParentHyperParameterTuningJobs"


def _kind(item: Range) -> str:
    if isinstance(item, CategoricalRange):
        return "Categorical"
    return "Integer" if item.integer else "Continuous"


def load_parents(request: TuningRequest, root: Path, source: Mapping[str, Any]) -> list[dict[str, Any]]:
    assert request.warm_start is not None
    parents = []
    for index, name in enumerate(request.warm_start.parents):
        where = f"{FIELD}[{index}].HyperParameterTuningJobName"
        directory = root.resolve() / name
        description = report.read(directory)
        if not description or not (directory / "request.json").is_file():
            raise ConfigError(f"{where}: no local tuning job {name!r} in {root}")
        if name == request.name:
            raise ConfigError(f"{where}: a tuning job cannot be its own parent")
        status = description.get("HyperParameterTuningJobStatus")
        if status not in ("Completed", "Stopped", "Failed"):
            raise ConfigError(f"{where}: {name} is {status}; a parent must have ended")
        parent = parse(json.loads((directory / "request.json").read_text(encoding="utf-8")))
        if parent.objective_metric != request.objective_metric:
            raise ConfigError(f"{where}: {name} optimizes {parent.objective_metric!r}, not"
                              f" {request.objective_metric!r}; the objective metric must be the same")
        _check_hyperparameters(request, parent, where)
        if request.warm_start.kind == "IdenticalDataAndAlgorithm":
            theirs = _read_source(directory)
            for key in ("Image", "Channels"):
                if theirs.get(key) != source.get(key):
                    raise ConfigError(f"WarmStartConfig.WarmStartType: IdenticalDataAndAlgorithm, but"
                                      f" {name} ran with {key} {theirs.get(key)!r}, this job with"
                                      f" {source.get(key)!r}; use TransferLearning")
        parents.append({"name": name, "dir": directory, "request": parent,
                        "summaries": report.read_summaries(directory)})
    return parents


def _check_hyperparameters(request: TuningRequest, parent: TuningRequest, where: str) -> None:
    ours = {item.name: item for item in request.ranges}
    theirs = {item.name: item for item in parent.ranges}
    names = set(ours) | set(request.static)
    parent_names = set(theirs) | set(parent.static)
    if names != parent_names:
        differ = sorted(names ^ parent_names)
        raise ConfigError(f"{where}: {parent.name} has other hyperparameters ({', '.join(differ)});"
                          " static and tuned hyperparameters together must be the same")
    changes = 0
    for name in names:
        if name in ours and name in theirs:
            if _kind(ours[name]) != _kind(theirs[name]):
                raise ConfigError(f"{where}: {name!r} is tuned as {_kind(theirs[name])} in"
                                  f" {parent.name} and as {_kind(ours[name])} here; the type must"
                                  " be the same")
        elif name in ours or name in theirs:
            moved = ours.get(name) or theirs[name]
            changes += len(moved.values) if isinstance(moved, CategoricalRange) else 1
        elif request.static[name] != parent.static[name]:
            changes += 1
    if changes > MAX_CHANGES:
        raise ConfigError(f"{where}: {changes} changes of static values or between static and tuned"
                          f" hyperparameters against {parent.name}; at most {MAX_CHANGES}")


def _read_source(directory: Path) -> dict[str, Any]:
    path = directory / SOURCE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_source(tuning_dir: Path, source: Mapping[str, Any]) -> None:
    (tuning_dir / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def seeds(request: TuningRequest, parents: Sequence[Mapping[str, Any]]
          ) -> Iterator[tuple[dict[str, str], float | None, str, list[float]]]:
    """(tuned values in this job's terms, objective, outcome, curve) of each parent's job."""
    for parent in parents:
        for entry in parent["summaries"]:
            job_dir = Path(parent["dir"]) / "jobs" / entry["TrainingJobName"]
            sent = jobrecord.read(job_dir).get("HyperParameters") or {
                **parent["request"].static, **entry["TunedHyperParameters"]}
            tuned = {item.name: str(sent[item.name]) for item in request.ranges if item.name in sent}
            if len(tuned) != len(request.ranges) or OBJECTIVE_KEY in tuned:
                continue
            value = entry.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
            outcome = {"Completed": COMPLETE, "Stopped": STOPPED}.get(entry["TrainingJobStatus"], FAILED)
            yield tuned, value, outcome, report.objective_curve(job_dir, request.objective_metric)

