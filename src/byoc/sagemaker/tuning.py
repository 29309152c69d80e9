"""``byoc sagemaker tune``: the CreateHyperParameterTuningJob file ``byoc local tune`` reads, with
the TrainingJobDefinition's image, role, S3 channels, output and resources filled in.

The file holds the request as the API takes it. What a SageMaker run must decide (the image, the
role, the channels' S3 URIs, the output path, the instance type and count) comes from the job
definition and the command line; every other field of the file, including its
TrainingJobDefinition's own settings (StoppingCondition, MetricDefinitions, static
hyperparameters), is kept as written.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import AwsError, ConfigError
from ..job.tuning import check_shape, service_limits
from ..say import Say
from .watch import poll

NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
POLL_SECONDS = 30.0


#: What ``byoc sagemaker tune`` fills in of a request file: the tuning job's name and the training
#: job (image, role, channels, output, resources and limits come from the project and options).
FILLED = ("HyperParameterTuningJobName", "TrainingJobDefinition")


def read_config(path: Path) -> dict[str, Any]:
    """The request file of ``byoc sagemaker tune``, checked before anything is pushed or uploaded.

    :raises ConfigError: naming the first field refused (any others in its detail).
    """
    data = contract.read_json(path, object)
    if not isinstance(data, dict) or not isinstance(data.get("HyperParameterTuningJobConfig"), dict):
        raise ConfigError(f"{path} must hold a CreateHyperParameterTuningJob request with a"
                          " HyperParameterTuningJobConfig")
    if "TrainingJobDefinitions" in data:
        raise ConfigError(f"{path}: multi-algorithm TrainingJobDefinitions are not supported; use"
                          " one TrainingJobDefinition")
    # before anything is pushed or uploaded: the file's shape, as botocore's service model states
    # it (what byoc fills in, the name and the training job's image, role, output and resources,
    # may be missing), then the limits the model does not state
    check_shape(data, filled=FILLED)
    service_limits(data)
    return data


def definition_fields(training_request: dict[str, Any], *, keep_checkpoint: bool
                      ) -> dict[str, Any]:
    """A TrainingJobDefinition from a CreateTrainingJob request: no name and no tags,
    ``StaticHyperParameters`` for ``HyperParameters``, output under ``tuning/``, and no
    checkpoint location unless one was asked for (every child job would share byoc's default)."""
    fields = {k: v for k, v in training_request.items() if k not in ("TrainingJobName", "Tags")}
    fields["StaticHyperParameters"] = fields.pop("HyperParameters")
    output = str(fields["OutputDataConfig"]["S3OutputPath"])
    fields["OutputDataConfig"] = {**fields["OutputDataConfig"],
                                  "S3OutputPath": output.rstrip("/") + "/tuning/"}
    if not keep_checkpoint:
        fields.pop("CheckpointConfig", None)
    return fields


def request(config: dict[str, Any], definition: dict[str, Any], *, name: str) -> dict[str, Any]:
    """The tuning request: *config* with its TrainingJobDefinition merged over *definition*
    (the fields of :meth:`byoc.job.JobDefinition.training_request`).

    Image, role, channels, output and resources always come from *definition*; the file's other
    TrainingJobDefinition fields win, and its MetricDefinitions are added to the definition's.
    """
    if not NAME.fullmatch(name):
        raise ConfigError(f"invalid tuning job name {name!r}: 1-32 letters, digits and hyphens")
    given = dict(config.get("TrainingJobDefinition") or {})
    merged = {**definition, **{k: v for k, v in given.items()
                               if k not in ("RoleArn", "InputDataConfig", "OutputDataConfig",
                                            "ResourceConfig", "AlgorithmSpecification")}}
    if "StoppingCondition" in given:  # the file's limits over the definition's (spot's MaxWait)
        merged["StoppingCondition"] = {**definition.get("StoppingCondition", {}),
                                       **given["StoppingCondition"]}
    algorithm = dict(definition["AlgorithmSpecification"])
    algorithm.pop("EnableSageMakerMetricsTimeSeries", None)  # not a tuning job field
    file_algorithm = given.get("AlgorithmSpecification") or {}
    metrics = {m["Name"]: m for m in algorithm.get("MetricDefinitions") or ()}
    for metric in file_algorithm.get("MetricDefinitions") or ():
        metrics[metric["Name"]] = metric
    if metrics:
        algorithm["MetricDefinitions"] = list(metrics.values())
    if "TrainingInputMode" in file_algorithm:
        algorithm["TrainingInputMode"] = file_algorithm["TrainingInputMode"]
    merged["AlgorithmSpecification"] = algorithm
    tuned = _tuned_names(config["HyperParameterTuningJobConfig"])
    static = {**definition.get("StaticHyperParameters", {}),
              **(given.get("StaticHyperParameters") or {})}
    merged["StaticHyperParameters"] = {k: v for k, v in static.items() if k not in tuned}
    objective = (config["HyperParameterTuningJobConfig"].get("HyperParameterTuningJobObjective")
                 or {}).get("MetricName")
    if objective and objective not in metrics:
        raise ConfigError(f"the objective metric {objective!r} has no metric definition: add"
                          f" --metric-definition '{objective}=REGEX' or put it in the file")
    result = {k: v for k, v in config.items() if k != "TrainingJobDefinition"}
    result["HyperParameterTuningJobName"] = name
    result["TrainingJobDefinition"] = merged
    service_limits(result)
    return result


def _tuned_names(config: dict[str, Any]) -> set[str]:
    ranges = config.get("ParameterRanges") or {}
    return {str(item["Name"]) for kind in ("IntegerParameterRanges", "ContinuousParameterRanges",
                                           "CategoricalParameterRanges")
            for item in ranges.get(kind) or ()}


def default_name(base: str, now: float | None = None) -> str:
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime(now))
    return f"{base[:32 - len(stamp) - 1].rstrip('-')}-{stamp}"


def wait(aws: Any, name: str, *, say: Say, poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    """Poll DescribeHyperParameterTuningJob until it ends; print counters as they change."""
    def line(answer: dict[str, Any]) -> str:
        counters = answer.get("TrainingJobStatusCounters") or {}
        return f"tuning job {name}: {answer.get('HyperParameterTuningJobStatus')}; training jobs " \
            + ", ".join(f"{key} {value}" for key, value in counters.items() if value)

    job = poll(lambda: aws.call("sagemaker", "DescribeHyperParameterTuningJob",
                                HyperParameterTuningJobName=name),
               ended=lambda answer: answer.get("HyperParameterTuningJobStatus") in TERMINAL,
               line=line, say=say, poll_seconds=poll_seconds)
    best = job.get("BestTrainingJob") or {}
    if best:
        metric = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        say(f"best training job: {best.get('TrainingJobName')}"
            f" {metric.get('MetricName', '')} = {metric.get('Value', '?')}"
            f" with {json.dumps(best.get('TunedHyperParameters') or {})}")
    status = job.get("HyperParameterTuningJobStatus")
    if status != "Completed":
        raise AwsError(f"tuning job {name} {status}: {job.get('FailureReason') or '?'}")
    return dict(job)
