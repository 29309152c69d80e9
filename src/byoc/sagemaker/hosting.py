"""Endpoints: ``deploy`` (model, endpoint config, endpoint), ``predict`` (InvokeEndpoint) and
``delete`` (endpoint, config, model).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AwsError, ConfigError, PredictError
from ..invoke import MAX_BODY
from ..say import Say
from . import storage
from ._aws import Aws
from .watch import poll

NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
ENDPOINT_WAIT = 30 * 60.0
POLL_SECONDS = 15.0
VARIANT = "AllTraffic"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
#: The ping window an endpoint gives the container at start (ContainerStartupHealthCheck...).
STARTUP_HEALTH_CHECK = 600
ENDPOINT_FAILED = frozenset({"Failed", "OutOfService", "UpdateRollbackFailed"})
ENDPOINT_ENDED = ENDPOINT_FAILED | {"InService"}


def check_name(name: str, what: str) -> str:
    if not NAME.fullmatch(name):
        raise ConfigError(f"invalid {what} {name!r}: 1-63 letters, digits and hyphens, starting"
                          " and ending with a letter or digit")
    return name


def model_request(name: str, *, image: str, model_data: str, role_arn: str,
                  environment: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CreateModel request: one container serving *model_data* (a model.tar.gz in S3)."""
    if not model_data.startswith("s3://") or not model_data.endswith(".tar.gz"):
        raise ConfigError(f"the model data must be a model.tar.gz in S3, got {model_data!r}")
    container: dict[str, Any] = {"Image": image, "ModelDataUrl": model_data}
    if environment:
        container["Environment"] = dict(environment)
    return {"ModelName": check_name(name, "model name"), "ExecutionRoleArn": role_arn,
            "PrimaryContainer": container}


def endpoint_config_request(name: str, *, model_name: str, instance_type: str,
                            instance_count: int) -> dict[str, Any]:
    if not 1 <= instance_count <= 100:
        raise ConfigError(f"--instance-count must be between 1 and 100, got {instance_count}")
    return {"EndpointConfigName": check_name(name, "endpoint config name"),
            "ProductionVariants": [{
                "VariantName": VARIANT, "ModelName": model_name, "InstanceType": instance_type,
                "InitialInstanceCount": instance_count,
                "ContainerStartupHealthCheckTimeoutInSeconds": STARTUP_HEALTH_CHECK}]}


@dataclass(frozen=True)
class ModelSource:
    """What a model is made of: the image and the artifact."""

    image: str
    model_data: str


def from_training_job(aws: Aws, job_name: str) -> ModelSource:
    """The image and model artifact of a completed training job."""
    job = aws.call("sagemaker", "DescribeTrainingJob", TrainingJobName=job_name)
    if job.get("TrainingJobStatus") != "Completed":
        raise ConfigError(f"training job {job_name} is {job.get('TrainingJobStatus')}, not"
                          " Completed: it has no model to deploy")
    artifact = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not artifact:
        raise ConfigError(f"training job {job_name} has no model artifact")
    return ModelSource(str(job["AlgorithmSpecification"]["TrainingImage"]), str(artifact))


def model_data_uri(aws: Aws, model: str, *, bucket: str, prefix: str) -> str:
    """*model* as an S3 URI: an ``s3://`` URI as given; a local model.tar.gz uploaded."""
    if model.startswith("s3://"):
        return model
    path = Path(model)
    if not path.is_file() or not path.name.endswith(".tar.gz"):
        raise ConfigError(f"--model takes a model.tar.gz file or an s3:// URI, got {model!r}")
    digest = storage.md5_of(path)
    return storage.upload_file(aws, path, f"s3://{bucket}/{prefix}/models/{digest}/model.tar.gz")


def create_model(aws: Aws, request: Mapping[str, Any]) -> str:
    aws.call("sagemaker", "CreateModel", **request)
    return str(request["ModelName"])


def deploy(aws: Aws, *, name: str, model: Mapping[str, Any], instance_type: str,
           instance_count: int, say: Say, wait: bool = True,
           poll_seconds: float = POLL_SECONDS, timeout: float = ENDPOINT_WAIT) -> dict[str, Any]:
    """CreateModel, CreateEndpointConfig and CreateEndpoint named *name*; wait for InService.

    :returns: the last DescribeEndpoint answer.
    :raises AwsError: when the endpoint fails or is not InService within *timeout*.
    """
    config = endpoint_config_request(name, model_name=str(model["ModelName"]),
                                     instance_type=instance_type, instance_count=instance_count)
    create_model(aws, model)
    say(f"created model {model['ModelName']}")
    aws.call("sagemaker", "CreateEndpointConfig", **config)
    say(f"created endpoint config {name}")
    aws.call("sagemaker", "CreateEndpoint", EndpointName=name, EndpointConfigName=name)
    say(f"creating endpoint {name} ({instance_count} x {instance_type})")
    return wait_in_service(aws, name, say=say, poll_seconds=poll_seconds, timeout=timeout) \
        if wait else aws.call("sagemaker", "DescribeEndpoint", EndpointName=name)


def wait_in_service(aws: Aws, name: str, *, say: Say, poll_seconds: float = POLL_SECONDS,
                    timeout: float = ENDPOINT_WAIT) -> dict[str, Any]:
    endpoint = poll(lambda: aws.call("sagemaker", "DescribeEndpoint", EndpointName=name),
                    ended=lambda answer: answer.get("EndpointStatus") in ENDPOINT_ENDED,
                    line=lambda answer: f"endpoint {name}: {answer.get('EndpointStatus')}",
                    say=say, poll_seconds=poll_seconds, timeout=timeout)
    status = endpoint.get("EndpointStatus")
    if status == "InService":
        return endpoint
    if status in ENDPOINT_FAILED:
        raise AwsError(f"endpoint {name} is {status}: {endpoint.get('FailureReason') or '?'}"
                       f" (see the log group /aws/sagemaker/Endpoints/{name})")
    raise AwsError(f"endpoint {name} is still {status} after {timeout:.0f} s")


def how_to_call(name: str, region: str, content_type: str = "text/csv") -> list[str]:
    return [f"byoc sagemaker predict {name} payload.csv --content-type {content_type}",
            f"aws sagemaker-runtime invoke-endpoint --region {region} --endpoint-name {name}"
            f" --content-type {content_type} --body fileb://payload.csv out.txt"]


@dataclass(frozen=True)
class Answer:
    content_type: str
    body: bytes
    variant: str | None


def predict(aws: Aws, endpoint: str, body: bytes, content_type: str,
            accept: str | None = None) -> Answer:
    """InvokeEndpoint; a body over 6 MiB is refused before anything is sent."""
    if len(body) > MAX_BODY:
        raise PredictError(f"the body is {len(body)} bytes; SageMaker accepts at most {MAX_BODY}"
                           " (6 MiB) per invocation")
    extra = {"Accept": accept} if accept else {}
    answer = aws.call("sagemaker-runtime", "InvokeEndpoint", EndpointName=endpoint, Body=body,
                      ContentType=content_type, **extra)
    stream = answer["Body"]
    try:
        data = stream.read()
    finally:
        stream.close()
    return Answer(str(answer.get("ContentType") or ""), bytes(data),
                  answer.get("InvokedProductionVariant"))


def delete(aws: Aws, endpoint: str, say: Say) -> None:
    """Delete the endpoint, its endpoint config and the config's models."""
    described = aws.call("sagemaker", "DescribeEndpoint", EndpointName=endpoint)
    config_name = str(described["EndpointConfigName"])
    config = aws.lookup("sagemaker", "DescribeEndpointConfig", EndpointConfigName=config_name,
                        missing=frozenset({"ValidationException"}))
    aws.call("sagemaker", "DeleteEndpoint", EndpointName=endpoint)
    say(f"deleted endpoint {endpoint}")
    if config is None:
        return
    aws.call("sagemaker", "DeleteEndpointConfig", EndpointConfigName=config_name)
    say(f"deleted endpoint config {config_name}")
    for variant in config.get("ProductionVariants") or ():
        model = variant.get("ModelName")
        if model:
            aws.lookup("sagemaker", "DeleteModel", ModelName=model,
                       missing=frozenset({"ValidationException"}))
            say(f"deleted model {model}")
