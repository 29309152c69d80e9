"""``byoc sagemaker process``: a :class:`~byoc.job.ProcessingJobDefinition` run as a SageMaker
processing job.

:func:`plan` turns the definition into the ``CreateProcessingJob`` request: local inputs (and
``--code``) are mirrored under ``<prefix>/<project>/processing/inputs/<name>/`` with the same
upload as training channels (:func:`.storage.sync_channel`: unchanged files are not sent again),
``s3://`` ones are used as given, and a local output folder gets the S3 prefix
``<prefix>/<project>/processing/outputs/<job>/<name>/``, downloaded into that folder when the
job completes, so one command line gives the same folders locally and on SageMaker.
:func:`start` sends it and records the job locally; :func:`watch` follows its status and its
CloudWatch logs (``/aws/sagemaker/ProcessingJobs``) to the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ProcessingJobFailed, ProcessingJobStopped
from ..job import ProcessingJobDefinition, channel_files, check_job_name, default_job_name
from ..project import Project
from ..say import Say, quiet
from . import storage
from ._aws import Aws, SageMakerConfig
from .batch import download_outputs
from .training import DEFAULT_INSTANCE_TYPE, create_job, project_prefix
from .watch import LogSink, LogTail

PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class Plan:
    """A processing job ready to send: the request, where its record goes, and the local folder
    each output with a local destination is downloaded into (by output name: S3 URI, folder)."""

    request: dict[str, Any]
    region: str
    job_dir: Path
    downloads: Mapping[str, tuple[str, Path]] = field(default_factory=dict)

    @property
    def job_name(self) -> str:
        return str(self.request["ProcessingJobName"])

    def cli_json(self) -> str:
        """The request for ``aws sagemaker create-processing-job --cli-input-json``."""
        return json.dumps(self.request, indent=2)


def plan(definition: ProcessingJobDefinition, *, aws: Aws, project: Project | None, image: str,
         role: str | None = None, bucket: str | None = None, instance_type: str | None = None,
         job_name: str | None = None, jobs_dir: Path | None = None, dry_run: bool = False,
         log: Say = quiet) -> Plan:
    """Resolve role and bucket, upload local inputs (not in a dry run), give local outputs their
    S3 prefixes and build the request.

    :raises ConfigError: no role, no bucket, a job name in use, bad input.
    :raises AwsError: a call failed.
    """
    config = SageMakerConfig.of(project)
    role_arn = aws.role_arn(role, config)
    bucket_name = (bucket or config.bucket or aws.default_bucket()) if dry_run \
        else aws.bucket(bucket, config)
    job_name = job_name or default_job_name(definition.base_name)
    check_job_name(job_name)
    base = jobs_dir or (project.jobs_dir if project else Path.cwd() / ".byoc" / "jobs")
    job_dir = base.resolve() / job_name
    if job_dir.exists() and not dry_run:
        raise ConfigError(f"{job_dir} exists already; pick another --job-name")
    prefix = f"{project_prefix(config, project)}/processing"
    # a folder that cannot take its output is refused now, before any upload, not after the
    # job has run and been paid for
    definition.check_output_folders({"the job's own directory": job_dir})
    downloads: dict[str, tuple[str, Path]] = {}
    for out in definition.local_outputs:
        uri = f"s3://{bucket_name}/{prefix}/outputs/{job_name}/{out.name}/"
        downloads[out.name] = (uri, Path(out.destination).resolve())
        log(f"output {out.name}: {uri}, downloaded to {out.destination} when the job completes")
    for item in definition.local_inputs:
        if not channel_files(Path(item.source)):
            raise ConfigError(f"--input {item.name}: {item.source} holds no file, and SageMaker"
                              " fails a processing job whose input prefix has no object")
    input_uris: dict[str, str] = {}
    for item in definition.local_inputs:
        key = f"{prefix}/inputs/{item.name}"
        source = Path(item.source)
        if dry_run:
            input_uris[item.name] = f"s3://{bucket_name}/{key}/" + (
                source.name if source.is_file() else "")
        else:
            input_uris[item.name] = storage.sync_channel(aws, source, bucket_name, key, log).uri
    request = definition.processing_request(
        job_name=job_name, image=image, role=role_arn,
        instance_type=instance_type or config.instance_type or DEFAULT_INSTANCE_TYPE,
        input_uris=input_uris, output_uris={name: uri for name, (uri, _) in downloads.items()})
    return Plan(request=request, region=aws.region, job_dir=job_dir, downloads=downloads)


def start(aws: Aws, plan: Plan) -> str:
    """Send CreateProcessingJob and write the job's record; :returns: the job's ARN."""
    return create_job(aws, "ProcessingJob", plan.job_dir, job_name=plan.job_name,
                      region=plan.region, request=plan.request, kind="processing-job",
                      downloads={name: {"S3Uri": uri, "Folder": str(folder)}
                                 for name, (uri, folder) in plan.downloads.items()})


@dataclass(frozen=True)
class Outcome:
    """How a processing job ended, and where its local outputs went."""

    job_name: str
    status: str
    exit_message: str | None
    failure_reason: str | None
    outputs: dict[str, str]
    downloaded: dict[str, tuple[Path, int]]

    def summary(self) -> list[str]:
        lines = [f"processing job {self.job_name}: {self.status}"]
        if self.exit_message:
            lines.append(f"exit message: {self.exit_message.strip()}")
        if self.failure_reason:
            lines.append(f"failure reason: {self.failure_reason}")
        for name, uri in self.outputs.items():
            if name in self.downloaded:
                folder, count = self.downloaded[name]
                lines.append(f"output {name}: {uri} -> {folder} ({count} file(s))")
            else:
                lines.append(f"output {name}: {uri}")
        return lines


def watch(aws: Aws, job_name: str, *, downloads: Mapping[str, tuple[str, Path]] | None = None,
          log: LogSink, say: Say, poll_seconds: float = POLL_SECONDS) -> Outcome:
    """Follow *job_name*: say each new status and print new log lines until the job ends, then
    download the outputs of *downloads* (a completed job's only) and say how it ended.

    :raises ProcessingJobFailed: the job failed (its FailureReason is the message).
    :raises ProcessingJobStopped: the job was stopped (by a user or its time limit).
    """
    tail = LogTail(aws, PROCESSING_LOG_GROUP, job_name)
    last = ""
    while True:
        job = aws.call("sagemaker", "DescribeProcessingJob", ProcessingJobName=job_name)
        status = str(job.get("ProcessingJobStatus"))
        if status != last:
            say(f"processing job {job_name}: {status}")
            last = status
        for host, message in tail.poll():
            log(host, message)
        if status in TERMINAL:
            break
        time.sleep(poll_seconds)
    for host, message in tail.poll():  # what was written between the last pass and the end
        log(host, message)
    downloaded: dict[str, tuple[Path, int]] = {}
    if status == "Completed":
        for name, (uri, folder) in (downloads or {}).items():
            folder.mkdir(parents=True, exist_ok=True)  # there, even when the job left nothing
            downloaded[name] = (folder, len(download_outputs(aws, uri, folder)))
    outputs = {str(o.get("OutputName")): str((o.get("S3Output") or {}).get("S3Uri"))
               for o in (job.get("ProcessingOutputConfig") or {}).get("Outputs") or ()}
    outcome = Outcome(job_name=job_name, status=status, exit_message=job.get("ExitMessage"),
                      failure_reason=job.get("FailureReason"), outputs=outputs,
                      downloaded=downloaded)
    for line in outcome.summary()[1:]:
        say(line)
    if status == "Failed":
        raise ProcessingJobFailed(f"processing job {job_name} failed:"
                                  f" {outcome.failure_reason or '?'}")
    if status == "Stopped":
        raise ProcessingJobStopped(f"processing job {job_name} stopped")
    return outcome
