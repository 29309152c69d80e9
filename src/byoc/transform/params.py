"""A transform job's settings as CreateTransformJob takes them, checked as it checks them.

Precedence, as the service applies it: a value in the request, else the
container's ``GET /execution-parameters``, else the defaults
(``MaxConcurrentTransforms`` 1, ``BatchStrategy`` MultiRecord,
``MaxPayloadInMB`` 6). The container's environment gets
``SAGEMAKER_BATCH=true`` always and ``SAGEMAKER_MAX_PAYLOAD_IN_MB``,
``SAGEMAKER_BATCH_STRATEGY`` and ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` only
for the values the request set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import DataProcessingError, ParameterError
from .batch import STRATEGIES as STRATEGIES
from .dataprocessing import DataProcessing
from .split import SPLIT_TYPES as SPLIT_TYPES

DEFAULT_MAX_CONCURRENT = 1
DEFAULT_STRATEGY = "MultiRecord"
DEFAULT_MAX_PAYLOAD_MB = 6
MAX_PAYLOAD_MB = 100
#: MaxConcurrentTransforms * MaxPayloadInMB may not exceed this.
BUDGET_MB = 100
ASSEMBLY_TYPES = ("None", "Line")
COMPRESSION_TYPES = ("None", "Gzip")
MAX_ENV_ENTRIES = 16
MAX_INSTANCES = 100
DEFAULT_INVOCATION_TIMEOUT = 600
DEFAULT_MAX_RETRIES = 3
ENV_STRATEGY = {"SingleRecord": "SINGLE_RECORD", "MultiRecord": "MULTI_RECORD"}
_STRATEGY_NAMES = {"SINGLE_RECORD": "SingleRecord", "MULTI_RECORD": "MultiRecord",
                   "SingleRecord": "SingleRecord", "MultiRecord": "MultiRecord"}


@dataclass(frozen=True)
class TransformParams:
    """The request. ``None`` means not set: the container's answer or the default applies."""

    content_type: str | None = None
    accept: str | None = None
    split_type: str = "None"
    strategy: str | None = None
    max_payload_mb: int | None = None
    max_concurrent: int | None = None
    assemble_with: str = "None"
    input_filter: str = "$"
    output_filter: str = "$"
    join_source: str = "None"
    compression: str = "None"
    instance_count: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    invocation_timeout: int = DEFAULT_INVOCATION_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES

    def check(self) -> DataProcessing:
        """:raises ParameterError: for what CreateTransformJob refuses; returns the DataProcessing."""
        _one_of("SplitType", self.split_type, SPLIT_TYPES)
        _one_of("AssembleWith", self.assemble_with, ASSEMBLY_TYPES)
        _one_of("CompressionType", self.compression, COMPRESSION_TYPES)
        if self.strategy is not None:
            _one_of("BatchStrategy", self.strategy, STRATEGIES)
        if self.max_payload_mb is not None and not 0 <= self.max_payload_mb <= MAX_PAYLOAD_MB:
            raise ParameterError(f"MaxPayloadInMB must be 0 to {MAX_PAYLOAD_MB}, got {self.max_payload_mb}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ParameterError(f"MaxConcurrentTransforms must be 1 or more, got {self.max_concurrent}")
        if self.max_concurrent is not None and self.max_payload_mb is not None \
                and self.max_concurrent * self.max_payload_mb > BUDGET_MB:
            raise ParameterError(
                f"MaxConcurrentTransforms x MaxPayloadInMB must be at most {BUDGET_MB};"
                f" {self.max_concurrent} x {self.max_payload_mb} is"
                f" {self.max_concurrent * self.max_payload_mb}")
        if not 1 <= self.instance_count <= MAX_INSTANCES:
            raise ParameterError(f"InstanceCount must be 1 to {MAX_INSTANCES}, got {self.instance_count}")
        if len(self.env) > MAX_ENV_ENTRIES:
            raise ParameterError(f"Environment holds at most {MAX_ENV_ENTRIES} entries, got {len(self.env)}")
        for key, value in self.env.items():
            if not 1 <= len(key) <= 1024 or len(value) > 10240:
                raise ParameterError(f"Environment {key[:40]!r}: keys are 1-1024 characters, values"
                                     " at most 10240")
        if not 1 <= self.invocation_timeout <= 3600:
            raise ParameterError("InvocationsTimeoutInSeconds must be 1 to 3600, got"
                                 f" {self.invocation_timeout}")
        if not 0 <= self.max_retries <= 3:
            raise ParameterError(f"InvocationsMaxRetries must be 0 to 3, got {self.max_retries}")
        try:
            processing = DataProcessing.create(self.input_filter, self.output_filter, self.join_source,
                                               self.content_type, self.accept)
        except DataProcessingError as exc:
            raise ParameterError(str(exc)) from None
        if processing.active and processing.input_family == "csv" \
                and (self.split_type != "Line" or self.assemble_with != "Line"):
            raise ParameterError("DataProcessing on CSV needs SplitType Line and AssembleWith Line")
        return processing

    def container_env(self) -> dict[str, str]:
        """The environment the service sets for the transform containers."""
        env = dict(self.env)
        env["SAGEMAKER_BATCH"] = "true"
        if self.max_payload_mb is not None:
            env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(self.max_payload_mb)
        if self.strategy is not None:
            env["SAGEMAKER_BATCH_STRATEGY"] = ENV_STRATEGY[self.strategy]
        if self.max_concurrent is not None:
            env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(self.max_concurrent)
        return env


@dataclass(frozen=True)
class Effective:
    """The values a job runs with, and where each came from."""

    strategy: str
    max_payload_mb: int
    max_concurrent: int
    sources: Mapping[str, str]


def resolve(params: TransformParams, execution: Mapping[str, Any] | None) -> Effective:
    """Request, then the container's execution parameters, then the defaults.

    :raises ParameterError: when the container answered a value the service would refuse.
    """
    answered = _read_execution_parameters(execution or {})
    sources: dict[str, str] = {}

    def pick(name: str, requested: Any, default: Any) -> Any:
        if requested is not None:
            sources[name] = "request"
            return requested
        if name in answered:
            sources[name] = "/execution-parameters"
            return answered[name]
        sources[name] = "default"
        return default

    strategy = pick("BatchStrategy", params.strategy, DEFAULT_STRATEGY)
    payload = pick("MaxPayloadInMB", params.max_payload_mb, DEFAULT_MAX_PAYLOAD_MB)
    concurrent = pick("MaxConcurrentTransforms", params.max_concurrent, DEFAULT_MAX_CONCURRENT)
    return Effective(strategy, payload, concurrent, sources)


def _read_execution_parameters(data: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if "BatchStrategy" in data:
        name = _STRATEGY_NAMES.get(str(data["BatchStrategy"]))
        if name is None:
            raise ParameterError(f"/execution-parameters answered BatchStrategy {data['BatchStrategy']!r};"
                                 " expected MULTI_RECORD or SINGLE_RECORD")
        result["BatchStrategy"] = name
    for key, low, high in (("MaxPayloadInMB", 0, MAX_PAYLOAD_MB), ("MaxConcurrentTransforms", 1, 10_000)):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ParameterError(f"/execution-parameters answered {key} {value!r};"
                                     f" expected a whole number from {low} to {high}")
            result[key] = value
    return result


def with_env(params: TransformParams, env: Mapping[str, str]) -> TransformParams:
    return replace(params, env={**params.env, **env})


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
