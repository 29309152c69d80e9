"""``byoc sagemaker transform``: CreateTransformJob from the options ``byoc local transform`` takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AwsError, ConfigError
from ..say import Say
from . import storage
from ._aws import Aws, split_s3
from .hosting import check_name
from .watch import poll

SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")
STRATEGIES = ("MultiRecord", "SingleRecord")
ASSEMBLE = ("None", "Line")
JOIN_SOURCES = ("None", "Input")
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
MAX_ENVIRONMENT = 16
POLL_SECONDS = 10.0


@dataclass(frozen=True)
class TransformOptions:
    """A batch transform apart from where it runs (the same options as the local command)."""

    content_type: str | None = None
    split_type: str = "None"
    strategy: str | None = None
    max_payload: int | None = None
    max_concurrent: int | None = None
    assemble_with: str | None = None
    accept: str | None = None
    input_filter: str | None = None
    output_filter: str | None = None
    join_source: str | None = None
    compression: str | None = None
    instance_count: int = 1
    environment: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        for value, allowed, option in ((self.split_type, SPLIT_TYPES, "--split-type"),
                                       (self.strategy, STRATEGIES, "--strategy"),
                                       (self.assemble_with, ASSEMBLE, "--assemble-with"),
                                       (self.join_source, JOIN_SOURCES, "--join-source"),
                                       (self.compression, ("None", "Gzip"), "--compression")):
            if value is not None and value not in allowed:
                raise ConfigError(f"{option} {value}: use {', '.join(allowed)}")
        if self.max_payload is not None and not 0 <= self.max_payload <= 100:
            raise ConfigError("--max-payload takes 0 to 100 (MB; 0 streams chunked)")
        if self.max_concurrent is not None and self.max_concurrent < 0:
            raise ConfigError("--max-concurrent takes 0 or more")
        if self.max_payload and self.max_concurrent and self.max_payload * self.max_concurrent > 100:
            raise ConfigError("--max-concurrent x --max-payload must be at most 100 (MB)")
        if not 1 <= self.instance_count <= 100:
            raise ConfigError("--instance-count takes 1 to 100")
        if len(self.environment) > MAX_ENVIRONMENT:
            raise ConfigError(f"a transform job takes at most {MAX_ENVIRONMENT} environment variables")
        for text, option in ((self.input_filter, "--input-filter"),
                             (self.output_filter, "--output-filter")):
            if text is not None and (not text.startswith("$") or len(text) > 63):
                raise ConfigError(f"{option} takes a JSONPath of at most 63 characters starting"
                                  " with $")

    def request(self, *, job_name: str, model_name: str, input_uri: str, output_uri: str,
                instance_type: str) -> dict[str, Any]:
        """The CreateTransformJob request."""
        self.validate()
        source = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}}
        transform_input: dict[str, Any] = {"DataSource": source, "SplitType": self.split_type}
        if self.content_type:
            transform_input["ContentType"] = self.content_type
        if self.compression:
            transform_input["CompressionType"] = self.compression
        output: dict[str, Any] = {"S3OutputPath": output_uri}
        if self.accept:
            output["Accept"] = self.accept
        if self.assemble_with:
            output["AssembleWith"] = self.assemble_with
        request: dict[str, Any] = {
            "TransformJobName": check_name(job_name, "transform job name"),
            "ModelName": model_name, "TransformInput": transform_input,
            "TransformOutput": output,
            "TransformResources": {"InstanceType": instance_type,
                                   "InstanceCount": self.instance_count}}
        if self.strategy:
            request["BatchStrategy"] = self.strategy
        if self.max_payload is not None:
            request["MaxPayloadInMB"] = self.max_payload
        if self.max_concurrent is not None:
            request["MaxConcurrentTransforms"] = self.max_concurrent
        if self.environment:
            request["Environment"] = dict(self.environment)
        processing = {key: value for key, value in (("InputFilter", self.input_filter),
                                                    ("OutputFilter", self.output_filter),
                                                    ("JoinSource", self.join_source)) if value}
        if processing:
            request["DataProcessing"] = processing
        return request


def input_uri(aws: Aws, source: str, *, bucket: str, prefix: str, say: Say) -> str:
    """*source* as an S3 URI: an ``s3://`` URI as given, a local file or directory uploaded."""
    if source.startswith("s3://"):
        return source
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"--input {source} does not exist")
    name = path.name if path.is_dir() else path.stem
    return storage.sync_channel(aws, path, bucket, f"{prefix}/transform-input/{name}", say).uri


def wait(aws: Aws, job_name: str, *, say: Say, poll_seconds: float = POLL_SECONDS
         ) -> dict[str, Any]:
    job = poll(lambda: aws.call("sagemaker", "DescribeTransformJob", TransformJobName=job_name),
               ended=lambda answer: answer.get("TransformJobStatus") in TERMINAL,
               line=lambda answer: f"transform job {job_name}: {answer.get('TransformJobStatus')}",
               say=say, poll_seconds=poll_seconds)
    status = job.get("TransformJobStatus")
    if status != "Completed":
        raise AwsError(f"transform job {job_name} {status}: {job.get('FailureReason') or '?'}"
                       " (see the log group /aws/sagemaker/TransformJobs)")
    return job


def download_outputs(aws: Aws, output_uri: str, target: Path) -> list[Path]:
    """Every object under *output_uri* into *target*, keeping the relative paths."""
    bucket, prefix = split_s3(output_uri)
    prefix = prefix.rstrip("/") + "/"
    saved: list[Path] = []
    token: str | None = None
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = aws.call("s3", "ListObjectsV2", Bucket=bucket, Prefix=prefix, **extra)
        for item in page.get("Contents") or ():
            key = str(item["Key"])
            relative = Path(key[len(prefix):])
            if not relative.parts or ".." in relative.parts or relative.is_absolute():
                continue
            saved.append(storage.download(aws, f"s3://{bucket}/{key}", target / relative))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return saved
