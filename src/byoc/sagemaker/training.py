"""``byoc sagemaker train``: a :class:`~byoc.job.JobDefinition` run as a SageMaker training job.

:func:`plan` turns the definition into the ``CreateTrainingJob`` request (uploading local
channels unless it is a dry run), :func:`start` sends it and records the job locally, and
:func:`watch` follows it to the end and downloads the model into the same layout a local job has
(``.byoc/jobs/<job>/model.tar.gz``), so ``byoc local serve`` takes it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TrainingJobFailed, TrainingJobStopped
from ..job import JobDefinition, default_job_name
from ..job.limits import JOB_NAME
from ..project import Project, record_latest
from ..say import Say, quiet
from . import storage
from ._aws import Aws, SageMakerConfig
from .watch import TRAINING_LOG_GROUP, TRAINING_TERMINAL, LogSink, LogTail, transitions_text

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_PREFIX = "byoc"
RECORD = "sagemaker.json"
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class Plan:
    """A training job ready to send: the request and the local directory its record goes to."""

    request: dict[str, Any]
    region: str
    job_dir: Path

    @property
    def job_name(self) -> str:
        return str(self.request["TrainingJobName"])

    def cli_json(self) -> str:
        """The request for ``aws sagemaker create-training-job --cli-input-json``."""
        return json.dumps(self.request, indent=2, sort_keys=False)


def project_prefix(config: SageMakerConfig, project: Project | None) -> str:
    """``<prefix>/<project>``: where a project's channels, outputs and checkpoints go."""
    return f"{(config.prefix or DEFAULT_PREFIX).strip('/')}/{project.name if project else 'byoc-job'}"


def plan(definition: JobDefinition, *, aws: Aws, project: Project | None, image: str,
         role: str | None = None, bucket: str | None = None, instance_type: str | None = None,
         job_name: str | None = None, jobs_dir: Path | None = None, dry_run: bool = False,
         log: Say = quiet) -> Plan:
    """Resolve role and bucket, upload local channels (not in a dry run) and build the request.

    :raises ConfigError: no role, no bucket, bad input.
    :raises AwsError: a call failed.
    """
    config = SageMakerConfig.of(project)
    role_arn = aws.role_arn(role, config)
    if dry_run:
        bucket_name = bucket or config.bucket or aws.default_bucket()
    else:
        bucket_name = aws.bucket(bucket, config)
    job_name = job_name or default_job_name(definition.base_name)
    if not JOB_NAME.fullmatch(job_name):
        raise ConfigError(f"invalid job name {job_name!r}: 1-63 letters, digits and hyphens,"
                          " starting and ending with a letter or digit")
    base = jobs_dir or (project.jobs_dir if project else Path.cwd() / ".byoc" / "jobs")
    job_dir = base.resolve() / job_name
    if job_dir.exists() and not dry_run:
        raise ConfigError(f"{job_dir} exists already; pick another --job-name")
    prefix = project_prefix(config, project)
    uris: dict[str, str] = {}
    for channel in definition.local_channels:
        key = f"{prefix}/channels/{channel.name}"
        source = Path(channel.source)
        if dry_run:
            uris[channel.name] = f"s3://{bucket_name}/{key}/" + (source.name if source.is_file()
                                                                 else "")
        else:
            uris[channel.name] = storage.sync_channel(aws, source, bucket_name, key, log).uri
    checkpoint = None
    if definition.spot or definition.local_checkpoint is not None:
        checkpoint = f"s3://{bucket_name}/{prefix}/checkpoints/{job_name}/"
    local = definition.local_checkpoint
    if local is not None and local.is_dir() and any(local.iterdir()) and not dry_run:
        # a local checkpoint directory seeds the job's checkpoints, as a local run restores it
        storage.sync_channel(aws, local, bucket_name, f"{prefix}/checkpoints/{job_name}", log)
    request = definition.training_request(
        job_name=job_name, image=image, role_arn=role_arn,
        instance_type=instance_type or config.instance_type or DEFAULT_INSTANCE_TYPE,
        channel_uris=uris, output_path=f"s3://{bucket_name}/{prefix}/output/",
        checkpoint_uri=checkpoint)
    return Plan(request=request, region=aws.region, job_dir=job_dir)


def start(aws: Aws, plan: Plan) -> str:
    """Send CreateTrainingJob and write the job's record; :returns: the job's ARN."""
    return create_job(aws, "TrainingJob", plan.job_dir, job_name=plan.job_name,
                      region=plan.region, request=plan.request)


def create_job(aws: Aws, job_type: str, job_dir: Path, *, job_name: str, region: str,
               request: dict[str, Any], **record: Any) -> str:
    """Send ``Create<job_type>`` (``TrainingJob`` or ``ProcessingJob``) and write the job's
    record (:data:`RECORD`, with *record*'s extra fields) in *job_dir*, which must be new.

    :returns: the job's ARN.
    """
    if job_dir.exists():
        raise ConfigError(f"{job_dir} exists already; pick another --job-name")
    answer = aws.call("sagemaker", f"Create{job_type}", **request)
    arn = str(answer.get(f"{job_type}Arn", ""))
    job_dir.mkdir(parents=True)
    written = {"job": job_name, **record, "arn": arn, "region": region, "request": request}
    (job_dir / RECORD).write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    return arn


@dataclass(frozen=True)
class Outcome:
    """How a training job ended."""

    job_name: str
    status: str
    secondary_status: str
    failure_reason: str | None
    model_artifact: str | None
    model_archive: Path | None
    metrics: dict[str, float]
    training_seconds: int | None
    billable_seconds: int | None
    instance_count: int
    spot: bool

    @property
    def spot_savings(self) -> float | None:
        """``(1 - billable / training) * 100`` for a spot job."""
        if not self.spot or not self.training_seconds or self.billable_seconds is None:
            return None
        return (1 - self.billable_seconds / self.training_seconds) * 100

    def summary(self) -> list[str]:
        lines = [f"training job {self.job_name}: {self.status} ({self.secondary_status})"]
        if self.failure_reason:
            lines.append(f"failure reason: {self.failure_reason}")
        for name, value in self.metrics.items():
            lines.append(f"metric {name} = {value:g}")
        if self.training_seconds is not None:
            lines.append(f"training seconds: {self.training_seconds}")
        if self.billable_seconds is not None:
            lines.append(f"billable seconds: {self.billable_seconds} per instance,"
                         f" {self.billable_seconds * self.instance_count} for"
                         f" {self.instance_count} instance(s)")
        if self.spot_savings is not None:
            lines.append(f"managed spot training savings: {self.spot_savings:.1f}%")
        if self.model_artifact:
            lines.append(f"model artifact: {self.model_artifact}")
        return lines


def watch(aws: Aws, job_name: str, *, jobs_dir: Path | None, log: LogSink, say: Say,
          poll_seconds: float = POLL_SECONDS) -> Outcome:
    """Follow *job_name*: print new status transitions and log lines until the job ends, then
    the metrics, times and spot savings, and download the model into
    ``<jobs_dir>/<job>/model.tar.gz`` (not without *jobs_dir*).

    :raises TrainingJobFailed: the job failed (its FailureReason is the message).
    :raises TrainingJobStopped: the job was stopped (by a user or a time limit).
    """
    tail = LogTail(aws, TRAINING_LOG_GROUP, job_name)
    shown = 0
    while True:
        job = aws.call("sagemaker", "DescribeTrainingJob", TrainingJobName=job_name)
        transitions = list(job.get("SecondaryStatusTransitions") or ())
        for line in transitions_text(transitions[shown:]):
            say(line)
        shown = len(transitions)
        for host, message in tail.poll():
            log(host, message)
        if str(job.get("TrainingJobStatus")) in TRAINING_TERMINAL:
            break
        time.sleep(poll_seconds)
    for host, message in tail.poll():  # what was written between the last pass and the end
        log(host, message)
    archive = None
    artifact = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if artifact and jobs_dir is not None and job.get("TrainingJobStatus") != "Failed":
        if storage.exists(aws, str(artifact)):
            archive = storage.download(aws, str(artifact), jobs_dir / job_name / "model.tar.gz")
            record_latest(jobs_dir, archive.parent)
        else:
            say(f"warning: the model artifact {artifact} is not in S3")
    outcome = _outcome(job, archive)
    for line in outcome.summary():
        say(line)
    if archive is not None:
        say(f"model downloaded to {archive} (byoc local serve takes it)")
    if outcome.status == "Failed":
        raise TrainingJobFailed(f"training job {job_name} failed: {outcome.failure_reason or '?'}")
    if outcome.status == "Stopped":
        raise TrainingJobStopped(f"training job {job_name} stopped ({outcome.secondary_status})")
    return outcome


def _outcome(job: dict[str, Any], archive: Path | None) -> Outcome:
    metrics = {str(m["MetricName"]): float(m["Value"]) for m in job.get("FinalMetricDataList") or ()}
    resources = job.get("ResourceConfig") or {}
    return Outcome(
        job_name=str(job.get("TrainingJobName")), status=str(job.get("TrainingJobStatus")),
        secondary_status=str(job.get("SecondaryStatus")),
        failure_reason=job.get("FailureReason"),
        model_artifact=(job.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        model_archive=archive, metrics=metrics,
        training_seconds=job.get("TrainingTimeInSeconds"),
        billable_seconds=job.get("BillableTimeInSeconds"),
        instance_count=int(resources.get("InstanceCount") or 1),
        spot=bool(job.get("EnableManagedSpotTraining")))


def stop(aws: Aws, job_name: str) -> None:
    aws.call("sagemaker", "StopTrainingJob", TrainingJobName=job_name)


def describe(aws: Aws, job_name: str) -> dict[str, Any]:
    job = aws.call("sagemaker", "DescribeTrainingJob", TrainingJobName=job_name)
    job.pop("ResponseMetadata", None)
    return job


#: What SageMaker answers DescribeTrainingJob for a job it does not have (ValidationException,
#: "Requested resource not found"; ResourceNotFound for some endpoints).
NOT_FOUND = frozenset({"ValidationException", "ResourceNotFound"})


def no_logs_note(aws: Aws, job_name: str) -> str:
    """What to say when *job_name* has no log streams: whether the job exists and its status.

    :raises ConfigError: when SageMaker has no such training job in this region.
    """
    job = aws.lookup("sagemaker", "DescribeTrainingJob", TrainingJobName=job_name,
                     missing=NOT_FOUND)
    if job is None:
        raise ConfigError(f"no training job {job_name!r} in {aws.region} (check the name, --region"
                          " and --profile)")
    status, secondary = job.get("TrainingJobStatus"), job.get("SecondaryStatus")
    state = f"{status} ({secondary})" if secondary else str(status)
    if status in TRAINING_TERMINAL:
        reason = job.get("FailureReason")
        return (f"training job {job_name} has no logs: it ended {state} before its containers"
                " wrote any" + (f"; failure reason: {reason}" if reason else ""))
    return (f"training job {job_name} has no logs yet: it is {state}; logs appear once its"
            f" containers start (follow it: byoc sagemaker logs {job_name} --follow)")


def to_json(data: Any) -> str:
    """JSON with AWS's timestamps as ISO 8601 text."""
    def default(value: Any) -> str:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        return str(value)

    return json.dumps(data, indent=2, default=default)
