"""Endpoints: ``deploy`` (model, endpoint config, endpoint), ``predict`` (InvokeEndpoint,
InvokeEndpointAsync) and ``delete`` (endpoint, config, model).

The hosting modes, in SageMaker's words: a multi-model container (``PrimaryContainer.Mode``
``MultiModel``, ``ModelDataUrl`` an S3 prefix of ``.tar.gz`` archives), an inference pipeline
(``Containers`` with ``ContainerHostname`` and ``InferenceExecutionConfig.Mode`` ``Serial`` or
``Direct``), asynchronous inference (``AsyncInferenceConfig``) and serverless inference
(``ServerlessConfig`` in place of instances).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import AwsError, ConfigError, PredictError
from ..invoke import MAX_BODY
from ..say import Say, quiet
from . import storage
from ._aws import Aws, split_s3
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
MULTI_MODEL = "MultiModel"
SERIAL, DIRECT = "Serial", "Direct"
#: Containers of one model (an inference pipeline).
MIN_CONTAINERS, MAX_CONTAINERS = 2, 15
#: ServerlessConfig.MaxConcurrency: 1-200 (MemorySizeInMB: contract.SERVERLESS_MEMORY_MB).
SERVERLESS_MAX_CONCURRENCY = 200
#: AsyncInferenceConfig.ClientConfig.MaxConcurrentInvocationsPerInstance: 1-1000.
ASYNC_MAX_CONCURRENT = 1000
#: Instance families with GPUs (accelerators): serverless endpoints have none.
GPU_FAMILIES = re.compile(r"ml\.(p\d|g\d|inf\d|trn\d|dl\d)")
#: How long ``predict --async --wait`` waits for the output by default: the longest
#: InvocationTimeoutSeconds (3600) plus time in the queue.
ASYNC_WAIT = 2 * 3600.0


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


def multi_model_request(name: str, *, image: str, prefix: str, role_arn: str,
                        environment: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CreateModel request of a multi-model container: *prefix* (``s3://.../``) holds the
    ``.tar.gz`` archives that ``InvokeEndpoint(TargetModel=...)`` names relative to it."""
    if not prefix.startswith("s3://") or not prefix.endswith("/"):
        raise ConfigError(f"--model-prefix must be an s3:// prefix ending in /, or a local"
                          f" directory of .tar.gz archives, got {prefix!r}")
    container: dict[str, Any] = {"Image": image, "Mode": MULTI_MODEL, "ModelDataUrl": prefix}
    if environment:
        container["Environment"] = dict(environment)
    return {"ModelName": check_name(name, "model name"), "ExecutionRoleArn": role_arn,
            "PrimaryContainer": container}


def check_pipeline_size(images: Sequence[str]) -> None:
    if not MIN_CONTAINERS <= len(images) <= MAX_CONTAINERS or not all(images):
        raise ConfigError(f"--pipeline takes {MIN_CONTAINERS} to {MAX_CONTAINERS} images,"
                          f" got {len(images)}: {','.join(images)!r}")


def pipeline_request(name: str, *, images: Sequence[str], role_arn: str, direct: bool = False,
                     model_data: str | None = None,
                     environment: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CreateModel request of an inference pipeline: ``Containers`` in order (each with its
    ``ContainerHostname``; *model_data* and *environment* given to each) and
    ``InferenceExecutionConfig.Mode`` ``Serial`` (chained) or ``Direct`` (one by hostname)."""
    check_pipeline_size(images)
    if model_data is not None and (not model_data.startswith("s3://")
                                   or not model_data.endswith(".tar.gz")):
        raise ConfigError(f"the model data must be a model.tar.gz in S3, got {model_data!r}")
    containers = []
    for image, hostname in zip(images, contract.container_hostnames(images), strict=True):
        container: dict[str, Any] = {"ContainerHostname": hostname, "Image": image}
        if model_data:
            container["ModelDataUrl"] = model_data
        if environment:
            container["Environment"] = dict(environment)
        containers.append(container)
    return {"ModelName": check_name(name, "model name"), "ExecutionRoleArn": role_arn,
            "Containers": containers,
            "InferenceExecutionConfig": {"Mode": DIRECT if direct else SERIAL}}


def async_inference_config(output: str, *, failure: str | None = None,
                           max_concurrent: int | None = None) -> dict[str, Any]:
    """``AsyncInferenceConfig``: where responses (``<inference id>.out``) and failures go, and
    the cap on requests in flight per instance (the rest wait in SageMaker's queue)."""
    for option, uri in (("--async-output", output), ("--async-failure", failure)):
        if uri is not None and not re.fullmatch(r"s3://[^/]+(/.*)?", uri):
            raise ConfigError(f"{option} must be an s3:// URI, got {uri!r}")
    out: dict[str, Any] = {"S3OutputPath": output}
    if failure:
        out["S3FailurePath"] = failure
    config: dict[str, Any] = {"OutputConfig": out}
    if max_concurrent is not None:
        if not 1 <= max_concurrent <= ASYNC_MAX_CONCURRENT:
            raise ConfigError(f"--max-concurrent must be between 1 and {ASYNC_MAX_CONCURRENT},"
                              f" got {max_concurrent}")
        config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": max_concurrent}
    return config


def serverless_config(memory: int | None, max_concurrency: int | None) -> dict[str, Any]:
    """``ServerlessConfig``: MemorySizeInMB (1024-6144 in 1024 steps) and MaxConcurrency."""
    if memory is None or max_concurrency is None:
        raise ConfigError("--serverless needs --memory MB (1024 to 6144 in steps of 1024) and"
                          " --max-concurrency N (1 to 200)")
    if memory not in contract.SERVERLESS_MEMORY_MB:
        raise ConfigError(f"--memory must be one of"
                          f" {', '.join(map(str, contract.SERVERLESS_MEMORY_MB))}"
                          f" (MB), got {memory}")
    if not 1 <= max_concurrency <= SERVERLESS_MAX_CONCURRENCY:
        raise ConfigError(f"--max-concurrency must be between 1 and {SERVERLESS_MAX_CONCURRENCY},"
                          f" got {max_concurrency}")
    return {"MemorySizeInMB": memory, "MaxConcurrency": max_concurrency}


def check_serverless(*, multi_model: bool, pipeline: bool, async_inference: bool,
                     instance_type: str | None) -> None:
    """Refuse what a serverless endpoint does not offer, before anything is created."""
    if multi_model:
        raise ConfigError("a serverless endpoint cannot host a multi-model container: drop"
                          " --serverless or --multi-model")
    if pipeline:
        raise ConfigError("a serverless endpoint cannot host an inference pipeline (several"
                          " containers): drop --serverless or --pipeline")
    if async_inference:
        raise ConfigError("asynchronous inference runs on instances, not serverless: drop"
                          " --serverless or --async")
    if instance_type is not None:
        kind = "has GPUs, which serverless endpoints do not offer" \
            if GPU_FAMILIES.match(instance_type) else "is an instance type"
        raise ConfigError(f"--instance-type {instance_type} {kind}: a serverless endpoint has no"
                          " instances; size it with --memory and --max-concurrency")


def require_label(labels: Mapping[str, str] | None, label: str, image: str, what: str) -> bool:
    """Whether the local image *image* carries ``label=true``: True when it does, False when
    the image is not local (not checked here; SageMaker checks it at CreateModel).

    :raises ConfigError: when the local image lacks it (SageMaker would refuse the model).
    """
    if labels is None:
        return False
    if str(labels.get(label, "")).lower() != "true":
        raise ConfigError(f"image {image} lacks the label {label}=true, which SageMaker requires"
                          f" of {what}: add `LABEL {label}=true` to its Dockerfile")
    return True


def endpoint_config_request(name: str, *, model_name: str, instance_type: str,
                            instance_count: int, async_config: Mapping[str, Any] | None = None,
                            serverless: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The CreateEndpointConfig request: one variant on instances, or serverless."""
    variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
    if serverless is not None:
        variant["ServerlessConfig"] = dict(serverless)
    else:
        if not 1 <= instance_count <= 100:
            raise ConfigError(f"--instance-count must be between 1 and 100, got {instance_count}")
        variant.update({"InstanceType": instance_type, "InitialInstanceCount": instance_count,
                        "ContainerStartupHealthCheckTimeoutInSeconds": STARTUP_HEALTH_CHECK})
    request: dict[str, Any] = {"EndpointConfigName": check_name(name, "endpoint config name"),
                               "ProductionVariants": [variant]}
    if async_config is not None:
        request["AsyncInferenceConfig"] = dict(async_config)
    return request


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


def model_data_uri(aws: Aws, model: str, *, bucket: str, prefix: str,
                   upload: bool = True) -> str:
    """*model* as an S3 URI: an ``s3://`` URI as given; a local model.tar.gz uploaded (where it
    would go, with *upload* False)."""
    if model.startswith("s3://"):
        return model
    path = Path(model)
    if not path.is_file() or not path.name.endswith(".tar.gz"):
        raise ConfigError(f"--model takes a model.tar.gz file or an s3:// URI, got {model!r}")
    digest = storage.md5_of(path)
    uri = f"s3://{bucket}/{prefix}/models/{digest}/model.tar.gz"
    return storage.upload_file(aws, path, uri) if upload else uri


def archives_of(directory: Path) -> list[Path]:
    """The ``.tar.gz`` archives of a multi-model directory (its subdirectories too).

    :raises ConfigError: when it holds none, or holds another kind of file.
    """
    if not directory.is_dir():
        raise ConfigError(f"--model-prefix takes an s3:// prefix or a local directory of .tar.gz"
                          f" archives; {directory} is neither")
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    other = [path for path in files if not path.name.endswith(".tar.gz")]
    if other:
        raise ConfigError(f"{other[0]} is not a .tar.gz archive: a multi-model directory holds"
                          " only the model archives InvokeEndpoint's TargetModel names")
    if not files:
        raise ConfigError(f"{directory} holds no .tar.gz archive to serve")
    return files


def model_prefix_uri(aws: Aws, source: str, *, bucket: str, prefix: str, name: str,
                     upload: bool = True, say: Say | None = None) -> str:
    """The S3 prefix of a multi-model endpoint: an ``s3://`` prefix as given (with a final
    ``/``); a local directory mirrored under ``<prefix>/multi-model/<name>/`` (archives already
    there unchanged are not sent again; ones no longer in the directory are removed)."""
    if source.startswith("s3://"):
        return source if source.endswith("/") else source + "/"
    directory = Path(source)
    archives_of(directory)
    key = f"{prefix}/multi-model/{name}"
    if not upload:
        return f"s3://{bucket}/{key}/"
    result = storage.sync_channel(aws, directory, bucket, key, log=say or quiet)
    return result.uri


def create_model(aws: Aws, request: Mapping[str, Any]) -> str:
    aws.call("sagemaker", "CreateModel", **request)
    return str(request["ModelName"])


def deploy(aws: Aws, *, name: str, model: Mapping[str, Any], endpoint_config: Mapping[str, Any],
           say: Say, wait: bool = True, poll_seconds: float = POLL_SECONDS,
           timeout: float = ENDPOINT_WAIT) -> dict[str, Any]:
    """CreateModel, CreateEndpointConfig and CreateEndpoint named *name*; wait for InService.

    :returns: the last DescribeEndpoint answer.
    :raises AwsError: when the endpoint fails or is not InService within *timeout*.
    """
    create_model(aws, model)
    say(f"created model {model['ModelName']}")
    aws.call("sagemaker", "CreateEndpointConfig", **endpoint_config)
    say(f"created endpoint config {endpoint_config['EndpointConfigName']}")
    aws.call("sagemaker", "CreateEndpoint", EndpointName=name,
             EndpointConfigName=endpoint_config["EndpointConfigName"])
    say(f"creating endpoint {name} ({describe_variant(endpoint_config)})")
    return wait_in_service(aws, name, say=say, poll_seconds=poll_seconds, timeout=timeout) \
        if wait else aws.call("sagemaker", "DescribeEndpoint", EndpointName=name)


def describe_variant(endpoint_config: Mapping[str, Any]) -> str:
    """``2 x ml.m5.large``, ``serverless, 2048 MB, at most 5 at once``; ``, asynchronous``."""
    variant = endpoint_config["ProductionVariants"][0]
    serverless = variant.get("ServerlessConfig")
    text = (f"serverless, {serverless['MemorySizeInMB']} MB, at most"
            f" {serverless['MaxConcurrency']} at once") if serverless else \
        f"{variant['InitialInstanceCount']} x {variant['InstanceType']}"
    return text + (", asynchronous" if endpoint_config.get("AsyncInferenceConfig") else "")


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


def how_to_call(name: str, region: str, content_type: str = "text/csv", *,
                multi_model: bool = False, async_inference: bool = False,
                direct: bool = False) -> list[str]:
    if async_inference:
        return [f"byoc sagemaker predict {name} --async payload.csv --content-type"
                f" {content_type} --wait",
                f"aws sagemaker-runtime invoke-endpoint-async --region {region} --endpoint-name"
                f" {name} --content-type {content_type} --input-location s3://BUCKET/payload.csv"]
    target = " --target-model model-a.tar.gz" if multi_model else \
        " --target-container HOST" if direct else ""
    aws_target = target.replace("--target-container", "--target-container-hostname")
    return [f"byoc sagemaker predict {name} payload.csv --content-type {content_type}{target}",
            f"aws sagemaker-runtime invoke-endpoint --region {region} --endpoint-name {name}"
            f" --content-type {content_type}{aws_target} --body fileb://payload.csv out.txt"]


@dataclass(frozen=True)
class Answer:
    content_type: str
    body: bytes
    variant: str | None


def check_target_model(target_model: str) -> str:
    """``TargetModel``: an archive's path relative to the endpoint's model prefix."""
    if target_model.startswith(("/", "s3://")) or not 1 <= len(target_model) <= 1024 \
            or any(part == ".." for part in target_model.split("/")):
        raise ConfigError(f"--target-model is the archive's path relative to the endpoint's"
                          f" model prefix (model-a.tar.gz), got {target_model!r}")
    return target_model


def invoke_request(endpoint: str, content_type: str, *, accept: str | None = None,
                   target_model: str | None = None,
                   target_container: str | None = None) -> dict[str, Any]:
    """The InvokeEndpoint request, without its Body."""
    request: dict[str, Any] = {"EndpointName": endpoint, "ContentType": content_type}
    if accept:
        request["Accept"] = accept
    if target_model is not None:
        request["TargetModel"] = check_target_model(target_model)
    if target_container is not None:
        if not NAME.fullmatch(target_container):
            raise ConfigError(f"--target-container is a ContainerHostname (1-63 letters, digits"
                              f" and hyphens), got {target_container!r}")
        request["TargetContainerHostname"] = target_container
    return request


def predict(aws: Aws, endpoint: str, body: bytes, content_type: str,
            accept: str | None = None, *, target_model: str | None = None,
            target_container: str | None = None) -> Answer:
    """InvokeEndpoint; a body over 6 MiB is refused before anything is sent."""
    request = invoke_request(endpoint, content_type, accept=accept, target_model=target_model,
                             target_container=target_container)
    if len(body) > MAX_BODY:
        raise PredictError(f"the body is {len(body)} bytes; SageMaker accepts at most {MAX_BODY}"
                           " (6 MiB) per invocation")
    answer = aws.call("sagemaker-runtime", "InvokeEndpoint", Body=body, **request)
    stream = answer["Body"]
    try:
        data = stream.read()
    finally:
        stream.close()
    return Answer(str(answer.get("ContentType") or ""), bytes(data),
                  answer.get("InvokedProductionVariant"))


@dataclass(frozen=True)
class AsyncAnswer:
    """What InvokeEndpointAsync answers: the request is queued, its outcome comes later."""

    inference_id: str
    output_location: str
    failure_location: str | None


def async_input_uri(path: Path, *, bucket: str, prefix: str) -> str:
    """Where ``predict --async FILE`` puts FILE: keyed by its MD5, so the same file is one
    object."""
    return f"s3://{bucket}/{prefix}/async-inputs/{storage.md5_of(path)}/{path.name}"


def async_request(endpoint: str, input_location: str, content_type: str | None, *,
                  accept: str | None = None) -> dict[str, Any]:
    """The InvokeEndpointAsync request."""
    if not input_location.startswith("s3://"):
        raise ConfigError(f"the InputLocation must be an s3:// URI, got {input_location!r}")
    request: dict[str, Any] = {"EndpointName": endpoint, "InputLocation": input_location}
    if content_type:
        request["ContentType"] = content_type
    if accept:
        request["Accept"] = accept
    return request


def predict_async(aws: Aws, request: Mapping[str, Any]) -> AsyncAnswer:
    """InvokeEndpointAsync: queue the request whose body is at InputLocation."""
    answer = aws.call("sagemaker-runtime", "InvokeEndpointAsync", **request)
    output = answer.get("OutputLocation")
    if not output:
        raise AwsError(f"endpoint {request['EndpointName']} answered InvokeEndpointAsync without"
                       " an OutputLocation: is it an asynchronous endpoint?")
    return AsyncAnswer(str(answer.get("InferenceId") or ""), str(output),
                       answer.get("FailureLocation"))


def wait_async(aws: Aws, answer: AsyncAnswer, *, say: Say, poll_seconds: float = POLL_SECONDS,
               timeout: float = ASYNC_WAIT) -> bytes:
    """Poll the output and failure objects until one exists; the response body.

    :raises PredictError: with the failure object's text when the inference failed, or when
        neither object appears within *timeout*.
    """
    deadline = time.monotonic() + timeout
    said = False
    while True:
        if storage.exists(aws, answer.output_location):
            return _read(aws, answer.output_location)
        if answer.failure_location and storage.exists(aws, answer.failure_location):
            reason = _read(aws, answer.failure_location).decode(errors="replace").strip()
            first = reason.splitlines()[0] if reason else "?"
            raise PredictError(f"inference {answer.inference_id} failed: {first}"
                               f" ({answer.failure_location})")
        if time.monotonic() > deadline:
            raise PredictError(f"no output for inference {answer.inference_id} after"
                               f" {timeout:.0f} s; it may still come to {answer.output_location}")
        if not said:
            say(f"waiting for {answer.output_location}")
            said = True
        time.sleep(poll_seconds)


def _read(aws: Aws, uri: str) -> bytes:
    bucket, key = split_s3(uri)
    body = aws.call("s3", "GetObject", Bucket=bucket, Key=key)["Body"]
    try:
        return bytes(body.read())
    finally:
        body.close()


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
