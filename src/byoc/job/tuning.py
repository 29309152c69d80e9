"""The service's limits of a ``CreateHyperParameterTuningJob`` request that its model does not
state: shared by local tuning (:mod:`byoc.tune`) and SageMaker tuning (:mod:`byoc.sagemaker`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .limits import MAX_RUNTIME_LIMIT

#: The service's limits per tuning job (Developer Guide, automatic-model-tuning-limits): the
#: training jobs (750 for every strategy; Random's quota can be raised to 10,000) and those at
#: once (10, raisable to 100). Above the highest quota the service refuses the request.
MAX_TRAINING_JOBS = 750
MAX_TRAINING_JOBS_RANDOM = 10_000
MAX_PARALLEL_JOBS = 100


def service_limits(raw: Mapping[str, Any], jobs: int | None = None) -> None:
    """The service's limits of a tuning request that its model does not state (the tuning
    limits of the Developer Guide, a training job's 28 days); *jobs*: the number of training
    jobs when the request leaves it out (a Grid's combinations). :raises ConfigError:"""
    config = raw.get("HyperParameterTuningJobConfig") or {}
    strategy = config.get("Strategy")
    limits = config.get("ResourceLimits") or {}
    where = "HyperParameterTuningJobConfig.ResourceLimits"
    given = limits.get("MaxNumberOfTrainingJobs")
    count = given if given is not None else jobs
    highest = MAX_TRAINING_JOBS_RANDOM if strategy == "Random" else MAX_TRAINING_JOBS
    if isinstance(count, int) and count > highest:
        each = " (one per combination)" if given is None else ""
        raise ConfigError(f"{where}.MaxNumberOfTrainingJobs: {count} training jobs{each}; the service"
                          f" runs at most {highest} per {strategy} tuning job")
    parallel = limits.get("MaxParallelTrainingJobs")
    if isinstance(parallel, int) and parallel > MAX_PARALLEL_JOBS:
        raise ConfigError(f"{where}.MaxParallelTrainingJobs: {parallel}; the service runs at most"
                          f" {MAX_PARALLEL_JOBS} training jobs of a tuning job at once")
    runtime = limits.get("MaxRuntimeInSeconds")
    if isinstance(runtime, int) and not 120 <= runtime <= 15_768_000:
        raise ConfigError(f"{where}.MaxRuntimeInSeconds: {runtime} is outside 120-15768000")
    stopping = (raw.get("TrainingJobDefinition") or {}).get("StoppingCondition") or {}
    job_runtime = stopping.get("MaxRuntimeInSeconds")
    if isinstance(job_runtime, int) and job_runtime > MAX_RUNTIME_LIMIT:
        raise ConfigError(f"TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds: {job_runtime}"
                          f" is above the maximum {MAX_RUNTIME_LIMIT} (28 days)")
