"""CreateHyperParameterTuningJob requests for the tune probe (tests/fixtures/tuneprobe).

The probe's loss is 1 + (x - 0.3)^2 + ((n - 7) / 10)^2 + (0 if kind == "b" else 0.5):
its optimum, 1.0, is at x=0.3, n=7, kind=b.
"""

from __future__ import annotations

import copy
from typing import Any

OPTIMUM = 1.0
LOSS_REGEX = r"val_loss=([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"


def probe_loss(x: float, n: int, kind: str, scale: float = 1.0) -> float:
    return 1.0 + scale * ((x - 0.3) ** 2 + ((n - 7) / 10) ** 2) + (0.0 if kind == "b" else 0.5)


def request(name: str = "probe-tune", strategy: str = "Random", max_jobs: int | None = 6,
            parallel: int = 2, static: dict[str, str] | None = None, **config: Any) -> dict[str, Any]:
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    body: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:loss"},
            "ResourceLimits": limits,
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "12",
                                            "ScalingType": "Linear"}],
                "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0.001", "MaxValue": "1",
                                               "ScalingType": "Logarithmic"}],
                "CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b"]}]},
            "RandomSeed": 7,
            **config},
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tuneprobe:latest",
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "validation:loss", "Regex": LOSS_REGEX}]},
            "StaticHyperParameters": {"epochs": "3", **(static or {})},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/tuning/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}},
    }
    return body


def grid(name: str = "probe-grid", static: dict[str, str] | None = None, **kwargs: Any
         ) -> dict[str, Any]:
    """Grid over kind and n (as categories) with x fixed at its optimum."""
    body = request(name, "Grid", max_jobs=None, static={"x": "0.3", **(static or {})}, **kwargs)
    body["HyperParameterTuningJobConfig"]["ParameterRanges"] = {
        "CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b"]},
                                       {"Name": "n", "Values": ["5", "7", "9"]}]}
    return body


def edited(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of *body* with the field at dotted *path* set (``...[0]`` indexes; value DELETE
    removes it)."""
    result = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = _step(node, part)
    if "[" in last:
        node = _step(node, last[: last.index("[")])
        last_index: Any = int(last[last.index("[") + 1: -1])
        if value is DELETE:
            del node[last_index]
        else:
            node[last_index] = value
    elif value is DELETE:
        del node[last]
    else:
        node[last] = value
    return result


DELETE = object()


def _step(node: Any, part: str) -> Any:
    if "[" in part:
        name, index = part[: part.index("[")], int(part[part.index("[") + 1: -1])
        return node[name][index]
    return node[part]


def make_whole_job(training: dict[str, Any], *, training_channel: str, bucket: str,
                   max_runtime: int) -> None:
    """*training* (a request's TrainingJobDefinition) made a whole job, changed in place: Pipe
    input, two channels with a ContentType (the second in File mode), checkpoints, and spot
    waiting twice *max_runtime*."""
    training["AlgorithmSpecification"]["TrainingInputMode"] = "Pipe"
    training["InputDataConfig"] = [
        {"ChannelName": training_channel, "ContentType": "text/csv",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/",
                                         "S3DataDistributionType": "FullyReplicated"}}},
        {"ChannelName": "validation", "ContentType": "application/json", "InputMode": "File",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/val/",
                                         "S3DataDistributionType": "FullyReplicated"}}}]
    training["CheckpointConfig"] = {"S3Uri": f"s3://{bucket}/checkpoints/",
                                    "LocalPath": "/opt/ml/checkpoints"}
    training["EnableManagedSpotTraining"] = True
    training["StoppingCondition"] = {"MaxRuntimeInSeconds": max_runtime,
                                     "MaxWaitTimeInSeconds": 2 * max_runtime}
