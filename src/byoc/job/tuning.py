"""A ``CreateHyperParameterTuningJob`` request's shape, checked against botocore's own SageMaker
service model (:func:`check_shape`), and the service's limits its model does not state
(:func:`service_limits`): shared by local tuning (:mod:`byoc.tune`) and SageMaker tuning
(:mod:`byoc.sagemaker`). botocore's model is data on this machine: nothing here talks to AWS."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

from ..errors import ConfigError
from .limits import MAX_RUNTIME_LIMIT

#: The service's limits per tuning job (Developer Guide, automatic-model-tuning-limits): the
#: training jobs (750 for every strategy; Random's quota can be raised to 10,000) and those at
#: once (10, raisable to 100). Above the highest quota the service refuses the request.
MAX_TRAINING_JOBS = 750
MAX_TRAINING_JOBS_RANDOM = 10_000
MAX_PARALLEL_JOBS = 100
OPERATION = "CreateHyperParameterTuningJob"


def check_shape(raw: Mapping[str, Any], filled: Collection[str] = ()) -> None:
    """Check *raw* against the request's shape in botocore's service model.

    :param filled: fields the caller fills in itself (``TrainingJobDefinition``: what ``byoc
        sagemaker tune`` takes from the project and options): a required field missing at or
        under one of them is not a problem.
    :raises ConfigError: naming the first problem, the others in its detail.
    """
    problems = shape_problems(raw, filled)
    if problems:
        raise ConfigError(problems[0], detail="\n".join(f"also: {p}" for p in problems[1:]))




@lru_cache(maxsize=1)
def _input_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(OPERATION).input_shape


def shape_problems(raw: Mapping[str, Any], filled: Collection[str] = ()) -> list[str]:
    """Every way *raw* breaks the request's shape in botocore's service model (a required field
    at or under one of *filled* may be missing)."""
    from botocore.validate import ParamValidator

    shape = _input_shape()
    report = ParamValidator().validate(dict(raw), shape)
    problems = [_describe(kind, name, details) for kind, name, details in report._errors
                if not (kind == "missing required field" and _under(name, details, filled))]
    problems += _limits(raw, shape, "")
    return problems


def _describe(kind: str, name: str, details: Mapping[str, Any]) -> str:
    where = name.lstrip(".")
    if kind == "unknown field":
        field = f"{where}.{details['unknown_param']}" if where else details["unknown_param"]
        return f"{field}: unknown field; valid fields are {', '.join(details['valid_names'])}"
    if kind == "missing required field":
        field = f"{where}.{details['required_name']}" if where else details["required_name"]
        return f"{field}: required field is missing"
    if kind == "invalid type":
        types = ", ".join(str(t).removeprefix("<class '").removesuffix("'>")
                          for t in details.get("valid_types", []))
        return f"{where}: {details.get('param')!r} is not of type {types}"
    if kind == "invalid range":
        return f"{where}: {details.get('param')!r} is below the minimum {details.get('min_allowed')}"
    if kind == "invalid length":
        return f"{where}: length {details.get('param')} is below the minimum {details.get('min_allowed')}"
    return f"{where}: {kind}"


def _limits(value: Any, shape: Any, where: str) -> list[str]:
    """Maximums, enums and patterns: the service model states them, botocore leaves them out."""
    meta = shape.metadata
    problems: list[str] = []
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        for key, item in value.items():
            if key in shape.members:
                problems += _limits(item, shape.members[key], f"{where}.{key}" if where else key)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} items; at most {meta['max']}")
        for index, item in enumerate(value):
            problems += _limits(item, shape.member, f"{where}[{index}]")
    elif kind == "map" and isinstance(value, Mapping):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} entries; at most {meta['max']}")
        for key, item in value.items():
            problems += _limits(key, shape.key, f"{where} key {key!r}")
            problems += _limits(item, shape.value, f"{where}.{key}")
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} characters; at most {meta['max']}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} is not one of {', '.join(shape.enum)}")
        pattern = _pattern(meta.get("pattern"))
        if pattern is not None and not pattern.fullmatch(value):
            problems.append(f"{where}: {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float) \
            and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            problems.append(f"{where}: {value} is above the maximum {meta['max']}")
    return problems


@lru_cache(maxsize=256)
def _pattern(text: str | None) -> re.Pattern[str] | None:
    if not text:
        return None
    try:
        return re.compile(text, re.DOTALL)
    except re.error:  # a construct Python's re lacks: the service checks it, byoc cannot
        return None


def _under(name: str, details: Mapping[str, Any], filled: Collection[str]) -> bool:
    where = name.lstrip(".")
    field = f"{where}.{details['required_name']}" if where else str(details["required_name"])
    return any(field == top or field.startswith(top + ".") for top in filled)


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
