"""A CreateHyperParameterTuningJob request, checked as the service checks it.

The request's shape (field names, types, required fields, lengths, ranges,
enums, patterns) is checked against botocore's own SageMaker service model
(:func:`byoc.job.tuning.check_shape`, which ``byoc sagemaker tune`` runs too);
the rules the model cannot state (MaxParallel above MaxNumber, MinValue above
MaxValue, a log range that reaches 0, Grid with numeric ranges, an objective
metric with no definition, ...) are checked here. Every problem is a
:class:`ConfigError` naming the field, raised before any job starts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import ConfigError
from ..job import limits, metrics
from ..job.tuning import (
    MAX_PARALLEL_JOBS as MAX_PARALLEL_JOBS,
)
from ..job.tuning import (
    MAX_TRAINING_JOBS as MAX_TRAINING_JOBS,
)
from ..job.tuning import (
    MAX_TRAINING_JOBS_RANDOM as MAX_TRAINING_JOBS_RANDOM,
)
from ..job.tuning import (
    check_shape,
    service_limits,
)
from .ranges import CategoricalRange, NumericRange, Range

OPERATION = "CreateHyperParameterTuningJob"
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
EPOCH_NAMES = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
MAX_TUNED = 30
MAX_HYPERPARAMETERS = 100
OBJECTIVE_KEY = "_tuning_objective_metric"
#: A job improves the best objective when it betters it by at least this fraction.
IMPROVEMENT = 0.01
#: StoppingCondition.MaxRuntimeInSeconds of a training job, and the hosts of one local job.
MAX_JOB_RUNTIME = limits.MAX_RUNTIME_LIMIT
MAX_INSTANCES = limits.MAX_LOCAL_INSTANCES


@dataclass(frozen=True)
class WarmStart:
    parents: tuple[str, ...]
    kind: str  # IdenticalDataAndAlgorithm | TransferLearning


@dataclass(frozen=True)
class TuningRequest:
    """What the local tuner needs of a checked request; :attr:`raw` is the request itself."""

    raw: Mapping[str, Any]
    name: str
    strategy: str
    objective_type: str
    objective_metric: str
    max_jobs: int
    max_parallel: int
    max_runtime: float | None
    ranges: tuple[Range, ...]
    early_stopping: str
    target_value: float | None
    not_improving: int | None
    complete_on_convergence: bool
    seed: int | None
    hyperband_min: int
    hyperband_max: int
    static: Mapping[str, str]
    metric_definitions: tuple[metrics.MetricDefinition, ...]
    #: The rest of the training job is :attr:`raw`'s TrainingJobDefinition, which
    #: :func:`byoc.job.from_tuning_request` turns into the one JobDefinition every trial runs.
    job_max_runtime: float | None
    warm_start: WarmStart | None

    @property
    def minimize(self) -> bool:
        return self.objective_type == "Minimize"

    def better(self, value: float, than: float | None) -> bool:
        return than is None or (value < than if self.minimize else value > than)

    def reaches_target(self, value: float) -> bool:
        if self.target_value is None:
            return False
        return value <= self.target_value if self.minimize else value >= self.target_value

    @property
    def epoch_hyperparameter(self) -> str | None:
        """The static hyperparameter that names the epochs (``epochs``, ``num_epochs``, ...)."""
        return next((name for name in EPOCH_NAMES if name in self.static), None)

    def hyperparameters(self, tuned: Mapping[str, str]) -> dict[str, str]:
        """What a training job of this tuning job receives: static, tuned, the objective's name.

        With Hyperband each job is told its largest budget, MaxResource, through the static
        epoch hyperparameter (the strategy stops it earlier at a rung it does not pass).
        """
        values = {**self.static, **tuned, OBJECTIVE_KEY: self.objective_metric}
        epochs = self.epoch_hyperparameter
        if self.strategy == "Hyperband" and epochs is not None and epochs not in tuned:
            values[epochs] = str(self.hyperband_max)
        return values

    def grid(self) -> list[dict[str, str]]:
        """Every combination of the categorical values, in the order the request lists them."""
        items = [item for item in self.ranges if isinstance(item, CategoricalRange)]
        return [dict(zip((item.name for item in items), combination, strict=True))
                for combination in itertools.product(*(item.values for item in items))]


def load(path: Path) -> TuningRequest:
    """Read and check the JSON request in *path*. :raises ConfigError:"""
    raw = contract.read_json(path, object)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold the JSON object of a {OPERATION} request")
    return parse(raw)


def parse(raw: Mapping[str, Any]) -> TuningRequest:
    """Check *raw* as the service would. :raises ConfigError: naming the first field refused."""
    check_shape(raw)
    return _semantics(raw)


def _semantics(raw: Mapping[str, Any]) -> TuningRequest:
    config = raw["HyperParameterTuningJobConfig"]
    strategy = config["Strategy"]
    if "TrainingJobDefinitions" in raw:
        raise ConfigError("TrainingJobDefinitions: multi-algorithm tuning does not run locally;"
                          " use TrainingJobDefinition")
    definition = raw.get("TrainingJobDefinition")
    if definition is None:
        raise ConfigError("TrainingJobDefinition: required field is missing")
    objective = config.get("HyperParameterTuningJobObjective")
    if objective is None:
        raise ConfigError("HyperParameterTuningJobConfig.HyperParameterTuningJobObjective:"
                          " required field is missing")
    spec = definition["AlgorithmSpecification"]
    where = "TrainingJobDefinition.AlgorithmSpecification.MetricDefinitions"
    defined = metrics.definitions(spec.get("MetricDefinitions", []), where)
    if objective["MetricName"] not in {item.name for item in defined}:
        raise ConfigError(f"HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.MetricName:"
                          f" {objective['MetricName']!r} has no definition in {where}")
    ranges = _ranges(config.get("ParameterRanges", {}))
    static = {str(k): str(v) for k, v in definition.get("StaticHyperParameters", {}).items()}
    for item in ranges:
        if item.name in static:
            raise ConfigError(f"TrainingJobDefinition.StaticHyperParameters.{item.name}: also a tuned"
                              " parameter in HyperParameterTuningJobConfig.ParameterRanges")
    if len(static) + len(ranges) + 1 > MAX_HYPERPARAMETERS:
        raise ConfigError(f"TrainingJobDefinition.StaticHyperParameters: {len(static)} static and"
                          f" {len(ranges)} tuned hyperparameters plus {OBJECTIVE_KEY} exceed"
                          f" {MAX_HYPERPARAMETERS}")
    limits = config["ResourceLimits"]
    max_parallel = int(limits["MaxParallelTrainingJobs"])
    max_jobs = limits.get("MaxNumberOfTrainingJobs")
    early = config.get("TrainingJobEarlyStoppingType", "Off")
    hb_min, hb_max = 1, 0
    if strategy == "Grid":
        numeric = [item.name for item in ranges if isinstance(item, NumericRange)]
        if numeric:
            raise ConfigError("HyperParameterTuningJobConfig.ParameterRanges: the Grid strategy takes"
                              f" categorical ranges only; {', '.join(numeric)} is an Integer or"
                              " Continuous range")
        if not ranges:
            raise ConfigError("HyperParameterTuningJobConfig.ParameterRanges.CategoricalParameterRanges:"
                              " the Grid strategy needs at least one categorical range")
        combinations = math.prod(len(item.values) for item in ranges
                                 if isinstance(item, CategoricalRange))
        if max_jobs is not None and max_jobs != combinations:
            raise ConfigError(f"HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs:"
                              f" {max_jobs}, but Grid runs one job per combination: {combinations}")
        max_jobs = combinations
    elif max_jobs is None:
        raise ConfigError("HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs:"
                          f" required for the {strategy} strategy")
    service_limits(raw, jobs=max_jobs)
    if max_parallel > max_jobs:
        raise ConfigError(f"HyperParameterTuningJobConfig.ResourceLimits.MaxParallelTrainingJobs:"
                          f" {max_parallel} is above MaxNumberOfTrainingJobs {max_jobs}")
    strategy_config = config.get("StrategyConfig")
    if strategy_config is not None and strategy != "Hyperband":
        raise ConfigError("HyperParameterTuningJobConfig.StrategyConfig: only the Hyperband"
                          " strategy takes a StrategyConfig")
    if strategy == "Hyperband":
        if early != "Off":
            raise ConfigError("HyperParameterTuningJobConfig.TrainingJobEarlyStoppingType: must be"
                              " Off with the Hyperband strategy, which stops jobs itself")
        hyperband = (strategy_config or {}).get("HyperbandStrategyConfig", {})
        hb_min = int(hyperband.get("MinResource", 1))
        field = "HyperParameterTuningJobConfig.StrategyConfig.HyperbandStrategyConfig.MaxResource"
        if "MaxResource" in hyperband:
            hb_max = int(hyperband["MaxResource"])
        else:
            epochs = [name for name in EPOCH_NAMES if name in static]
            if not epochs:
                raise ConfigError(f"{field}: not given, and no static hyperparameter names the epochs"
                                  f" ({', '.join(EPOCH_NAMES)})")
            try:
                hb_max = int(static[epochs[0]])
            except ValueError:
                raise ConfigError(f"TrainingJobDefinition.StaticHyperParameters.{epochs[0]}: not an"
                                  f" integer, so it cannot give {field}") from None
        if hb_min > hb_max:
            raise ConfigError(f"{field}: {hb_max} is below MinResource {hb_min}")
    criteria = config.get("TuningJobCompletionCriteria", {})
    not_improving = criteria.get("BestObjectiveNotImproving", {}).get(
        "MaxNumberOfTrainingJobsNotImproving")
    if not_improving is not None and not_improving < 3:
        raise ConfigError("HyperParameterTuningJobConfig.TuningJobCompletionCriteria."
                          "BestObjectiveNotImproving.MaxNumberOfTrainingJobsNotImproving: at least 3")
    max_runtime = limits.get("MaxRuntimeInSeconds")
    if max_runtime is not None and max_runtime < 120:
        raise ConfigError("HyperParameterTuningJobConfig.ResourceLimits.MaxRuntimeInSeconds:"
                          f" {max_runtime} is below the minimum 120")
    warm = raw.get("WarmStartConfig")
    warm_start = None
    if warm is not None:
        warm_start = WarmStart(tuple(p["HyperParameterTuningJobName"]
                                     for p in warm["ParentHyperParameterTuningJobs"]),
                               warm["WarmStartType"])
    resources = definition.get("ResourceConfig", {})
    instances = resources.get("InstanceCount", 1)
    if not 1 <= instances <= MAX_INSTANCES:
        raise ConfigError(f"TrainingJobDefinition.ResourceConfig.InstanceCount: {instances}; a local"
                          f" training job runs 1-{MAX_INSTANCES} hosts")
    stopping = definition.get("StoppingCondition", {})
    return TuningRequest(
        raw=raw, name=raw["HyperParameterTuningJobName"], strategy=strategy,
        objective_type=objective["Type"], objective_metric=objective["MetricName"],
        max_jobs=int(max_jobs), max_parallel=max_parallel,
        max_runtime=float(max_runtime) if max_runtime is not None else None,
        ranges=tuple(ranges), early_stopping=early,
        target_value=criteria.get("TargetObjectiveMetricValue"), not_improving=not_improving,
        complete_on_convergence=criteria.get("ConvergenceDetected", {}).get(
            "CompleteOnConvergence") == "Enabled",
        seed=config.get("RandomSeed"), hyperband_min=hb_min, hyperband_max=hb_max, static=static,
        metric_definitions=tuple(defined), job_max_runtime=stopping.get("MaxRuntimeInSeconds"),
        warm_start=warm_start)


def _ranges(ranges: Mapping[str, Any]) -> list[Range]:
    base = "HyperParameterTuningJobConfig.ParameterRanges"
    result: list[Range] = []
    for kind, integer in (("IntegerParameterRanges", True), ("ContinuousParameterRanges", False)):
        for index, item in enumerate(ranges.get(kind, [])):
            result.append(_numeric(item, integer, f"{base}.{kind}[{index}]"))
    for index, item in enumerate(ranges.get("CategoricalParameterRanges", [])):
        where = f"{base}.CategoricalParameterRanges[{index}]"
        if len(set(item["Values"])) != len(item["Values"]):
            raise ConfigError(f"{where}.Values: {item['Name']!r} lists a value twice")
        result.append(CategoricalRange(item["Name"], tuple(item["Values"])))
    if len(result) > MAX_TUNED:
        raise ConfigError(f"{base}: {len(result)} tuned parameters; at most {MAX_TUNED}")
    seen: set[str] = set()
    for item in result:
        if item.name in seen:
            raise ConfigError(f"{base}: {item.name!r} is tuned twice")
        seen.add(item.name)
    return result


def _numeric(item: Mapping[str, Any], integer: bool, where: str) -> NumericRange:
    bounds: list[float] = []
    for key in ("MinValue", "MaxValue"):
        text = item[key]
        try:
            value = float(int(text)) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{where}.{key}: {text!r} is not {kind}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where}.{key}: {text!r} is not a finite number")
        bounds.append(value)
    low, high = bounds
    if low > high:
        raise ConfigError(f"{where}.MinValue: {item['MinValue']} is above MaxValue {item['MaxValue']}")
    scaling = item.get("ScalingType", "Auto")
    if scaling == "Logarithmic" and low <= 0:
        raise ConfigError(f"{where}.MinValue: a Logarithmic range needs values above 0, got"
                          f" {item['MinValue']}")
    if scaling == "ReverseLogarithmic":
        if integer:
            raise ConfigError(f"{where}.ScalingType: ReverseLogarithmic applies to continuous"
                              " ranges only")
        if not (0 <= low and high < 1):
            raise ConfigError(f"{where}: a ReverseLogarithmic range needs 0 <= MinValue and"
                              f" MaxValue < 1, got {item['MinValue']}..{item['MaxValue']}")
    return NumericRange(item["Name"], low, high, scaling, integer)

