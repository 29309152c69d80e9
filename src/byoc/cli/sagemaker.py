"""``byoc sagemaker ...``: the same job as ``byoc local``, run on Amazon SageMaker."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import job
from ..errors import ConfigError, Interrupted
from ..project import Project
from .jobdef import definition_from_options, job_options, sagemaker_job_options
from .options import PROJECT, echo_err, env_options, log_line, pairs, read_payload

F = TypeVar("F", bound=Callable[..., Any])


def aws_options(command: F) -> F:
    command = click.option("--profile", help="AWS profile (default: the standard credential"
                                             " chain).")(command)
    command = click.option("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION,"
                                            " the profile, then [aws] region).")(command)
    return command


def target_options(command: F) -> F:
    for option in reversed([
        click.option("--image", help="Image URI to run, used as given (default: the project's"
                                     " image, pushed to ECR first when ECR lacks it)."),
        click.option("--role", help="Execution role ARN or name (default: [sagemaker] role)."),
        click.option("--bucket", help="S3 bucket (default: [sagemaker] bucket, else"
                                      " sagemaker-<region>-<account>)."),
    ]):
        command = option(command)
    return command


def _connect(region: str | None, profile: str | None, project: Project | None,
             dry_run: bool = False) -> Any:
    from ..sagemaker import Aws

    aws = Aws.connect(region, profile=profile, project=project)
    aws.dry_run = dry_run
    return aws


def _print_dry_run(aws: Any, text: str) -> None:
    """The request of a dry run on stdout; what stands in it for what could not be learnt on
    stderr, one note each."""
    for note in aws.placeholders:
        echo_err(f"note: dry run: {note}")
    click.echo(text)


def _progress() -> Any:
    """``byoc push``'s layer progress, when a push has to happen first and stderr is a terminal."""
    from .progress import TerminalProgress

    return TerminalProgress(sys.stderr) if sys.stderr.isatty() else None


def _detached(job: str, kind: str = "training job") -> str:
    return (f"{kind} {job} keeps running on SageMaker. Follow it: byoc sagemaker logs {job}"
            f" --follow; stop it: byoc sagemaker stop {job}")


def _follow(aws: Any, job: str, jobs_dir: Path | None, poll: float) -> Any:
    from ..sagemaker import training

    try:
        return training.watch(aws, job, jobs_dir=jobs_dir, log=log_line, say=echo_err,
                              poll_seconds=poll)
    except KeyboardInterrupt:
        raise Interrupted("detached: " + _detached(job)) from None


@click.group(name="sagemaker")
def sagemaker_group() -> None:
    """Run the project on Amazon SageMaker: train, tune, transform, deploy, predict."""


POLL = click.option("--poll-interval", "poll", type=float, default=5.0, show_default=True,
                    help="Seconds between status checks while following a job.")


@sagemaker_group.command()
@PROJECT
@job_options
@sagemaker_job_options
@target_options
@click.option("--instance-type", help="Training instance type (default: [sagemaker]"
                                      " instance_type, else ml.m5.xlarge).")
@click.option("--detach", is_flag=True, help="Return once the job is created.")
@click.option("--dry-run", is_flag=True,
              help="Print the CreateTrainingJob request (for aws sagemaker create-training-job"
                   " --cli-input-json); upload, push and create nothing. Needs no credentials and"
                   " no pushed image: <placeholders> stand for what it cannot learn.")
@POLL
@aws_options
def train(project: Path | None, image: str | None, role: str | None, bucket: str | None,
          instance_type: str | None, detach: bool, dry_run: bool, poll: float,
          region: str | None, profile: str | None, **options: Any) -> None:
    """Run the training job on SageMaker: the job options of byoc local train (the same command
    line runs the same job), plus where it runs. Local channels and a local --checkpoint-uri
    directory are uploaded first. Follows status and logs, then downloads the model to
    .byoc/jobs/<job>/."""
    from ..sagemaker import training
    from ..sagemaker.image import resolve as resolve_image

    loaded = Project.find(project, required=image is None)
    definition, notes = definition_from_options(loaded, options)
    for note in notes:
        echo_err(f"warning: {note}")
    aws = _connect(region, profile, loaded, dry_run)
    uri = resolve_image(aws, loaded, image, dry_run=dry_run, say=echo_err, progress=_progress())
    plan = training.plan(definition, aws=aws, project=loaded, image=uri, role=role,
                         bucket=bucket, instance_type=instance_type, job_name=options["job_name"],
                         dry_run=dry_run, log=echo_err)
    if dry_run:
        _print_dry_run(aws, plan.cli_json())
        return
    arn = training.start(aws, plan)
    echo_err(f"created training job {plan.job_name} ({arn})")
    if detach:
        echo_err(_detached(plan.job_name))
        click.echo(plan.job_name)
        return
    outcome = _follow(aws, plan.job_name, plan.job_dir.parent, poll)
    click.echo(str(outcome.model_archive or outcome.model_artifact or plan.job_name))


@sagemaker_group.command()
@click.argument("job")
@click.option("--follow", "-f", is_flag=True,
              help="Follow status and logs until the job ends, then download the model.")
@click.option("--jobs-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the model goes with --follow (default: the project's .byoc/jobs).")
@POLL
@aws_options
def logs(job: str, follow: bool, jobs_dir: Path | None, poll: float, region: str | None,
         profile: str | None) -> None:
    """Print a training job's CloudWatch logs, one prefix per host. A job without logs yet is
    said so, with its status; a job that does not exist is an error."""
    from ..sagemaker.watch import TRAINING_LOG_GROUP, LogTail

    loaded = Project.find(required=False)
    aws = _connect(region, profile, loaded)
    if follow:
        _follow(aws, job, jobs_dir or (loaded.jobs_dir if loaded else None), poll)
        return
    lines = LogTail(aws, TRAINING_LOG_GROUP, job).poll()
    for host, message in lines:
        click.echo(f"{host} | {message}")
    if not lines:
        from ..sagemaker import training

        echo_err(training.no_logs_note(aws, job))


@sagemaker_group.command()
@click.argument("job")
@aws_options
def describe(job: str, region: str | None, profile: str | None) -> None:
    """Print DescribeTrainingJob as JSON."""
    from ..sagemaker import training

    aws = _connect(region, profile, Project.find(required=False))
    click.echo(training.to_json(training.describe(aws, job)))


@sagemaker_group.command()
@click.argument("job")
@aws_options
def stop(job: str, region: str | None, profile: str | None) -> None:
    """Stop a training job (SIGTERM, then SIGKILL 120 s later; the model is still uploaded)."""
    from ..sagemaker import training

    aws = _connect(region, profile, Project.find(required=False))
    training.stop(aws, job)
    echo_err(f"stopping training job {job}; follow it with byoc sagemaker logs {job} --follow")


@sagemaker_group.command()
@PROJECT
@click.option("--config", "config_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="CreateHyperParameterTuningJob JSON (the file byoc local tune reads).")
@job_options
@sagemaker_job_options
@target_options
@click.option("--instance-type", help="Instance type of each training job.")
@click.option("--detach", is_flag=True, help="Return once the tuning job is created.")
@click.option("--dry-run", is_flag=True, help="Print the request; upload and create nothing.")
@click.option("--poll-interval", "poll", type=float, default=30.0, show_default=True,
              help="Seconds between status checks.")
@aws_options
def tune(project: Path | None, config_file: Path, image: str | None, role: str | None,
         bucket: str | None, instance_type: str | None, detach: bool, dry_run: bool, poll: float,
         region: str | None, profile: str | None, **options: Any) -> None:
    """Run a hyperparameter tuning job: the file's ranges, objective, limits, channels, role and
    instance type, with the project's image and job options (--channel, --role and
    --instance-type replace the file's). --job-name names the tuning job (1-32)."""
    from ..sagemaker import training, tuning
    from ..sagemaker.image import resolve as resolve_image

    loaded = Project.find(project, required=image is None)
    config = tuning.read_config(config_file)
    given = config.get("TrainingJobDefinition") or {}
    overrides = pairs(options["channel"], "--channel")
    definition, notes = definition_from_options(loaded, options)
    if given:  # the file's whole training job, as byoc local tune runs it
        from_file, notes = job.from_tuning_request(
            given, project=loaded, channels=overrides,
            base_name=definition.base_name)
        definition = _lay_options_over(from_file, definition, given, click.get_current_context())
    for note in notes:
        echo_err(f"note: {note}")
    name = options["job_name"] or config.get("HyperParameterTuningJobName") or \
        tuning.default_name(definition.base_name)
    aws = _connect(region, profile, loaded, dry_run)
    uri = resolve_image(aws, loaded, image, dry_run=dry_run, say=echo_err, progress=_progress())
    # the file's role and instance type unless the command line names others
    role = role or given.get("RoleArn")
    instance_type = instance_type or (given.get("ResourceConfig") or {}).get("InstanceType")
    plan = training.plan(definition, aws=aws, project=loaded, image=uri, role=role, bucket=bucket,
                         instance_type=instance_type, job_name=name, dry_run=dry_run, log=echo_err)
    fields = tuning.definition_fields(plan.request,
                                      keep_checkpoint=definition.checkpoint_uri is not None)
    request = tuning.request(config, fields, name=str(name))
    if dry_run:
        _print_dry_run(aws, training.to_json(request))
        return
    answer = aws.call("sagemaker", "CreateHyperParameterTuningJob", **request)
    echo_err(f"created tuning job {name} ({answer.get('HyperParameterTuningJobArn')})")
    if not detach:
        try:
            tuning.wait(aws, str(name), say=echo_err, poll_seconds=poll)
        except KeyboardInterrupt:
            raise Interrupted(f"detached: tuning job {name} keeps running on SageMaker") from None
    click.echo(str(name))


#: Each job option of ``byoc sagemaker tune``: the JobDefinition fields it sets, and the
#: TrainingJobDefinition field that sets them in a request file.
TUNE_JOB_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "input_mode": (("input_mode",), "AlgorithmSpecification.TrainingInputMode"),
    "hyperparameter": (("hyperparameters",), "StaticHyperParameters"),
    "hyperparameters_file": (("hyperparameters",), "StaticHyperParameters"),
    "metric_definition": (("metric_definitions",), "AlgorithmSpecification.MetricDefinitions"),
    "metric_definitions_file": (("metric_definitions",),
                                "AlgorithmSpecification.MetricDefinitions"),
    "instance_count": (("instance_count",), "ResourceConfig"),
    "volume_size": (("volume_size",), "ResourceConfig"),
    "env": (("environment",), "Environment"),
    "env_file": (("environment",), "Environment"),
    "max_run": (("max_runtime",), "StoppingCondition"),
    "max_wait": (("max_wait",), "StoppingCondition"),
    "spot": (("spot",), "EnableManagedSpotTraining"),
    "checkpoint_uri": (("checkpoint_uri",), "CheckpointConfig"),
    "checkpoint_local_path": (("checkpoint_local_path",), "CheckpointConfig"),
}
#: The options that shape channels: with the file's InputDataConfig, set them there.
CHANNEL_OPTIONS = ("content_types", "channel_input_mode", "distribution", "record_wrapper",
                   "compression", "shuffle_seed", "attribute_names", "manifest_root")


def _lay_options_over(from_file: Any, from_options: Any, given: dict[str, Any],
                      ctx: click.Context) -> Any:
    """The file's training job, with the job options given on the command line for the fields
    the file leaves out (one request file is one job locally and on SageMaker). An option for a
    field the file sets is refused, not silently dropped or silently winning.

    :raises ConfigError:
    """
    def on_command_line(name: str) -> bool:
        return (name in ctx.params
                and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE)

    def in_file(path: str) -> bool:
        value: Any = given
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value not in (None, {}, [])

    conflicts = [f"--{name.replace('_', '-')} (the file's {field})"
                 for name, (_, field) in TUNE_JOB_OPTIONS.items()
                 if on_command_line(name) and in_file(field)]
    conflicts += [f"--{name.replace('_', '-')} (the file's InputDataConfig)"
                  for name in CHANNEL_OPTIONS if on_command_line(name) and in_file("InputDataConfig")]
    if conflicts:
        raise ConfigError(f"{', '.join(conflicts)}: the request file sets that; change it there"
                          " (byoc local tune reads the same file)")
    changes = {attribute: getattr(from_options, attribute)
               for name, (attributes, _) in TUNE_JOB_OPTIONS.items() if on_command_line(name)
               for attribute in attributes}
    if not in_file("InputDataConfig"):
        changes["channels"] = from_options.channels
    return dataclasses.replace(from_file, **changes)


@sagemaker_group.command()
@PROJECT
@click.option("--job", "training_job", help="Use this training job's model and image.")
@click.option("--model-name", help="Use this existing SageMaker model.")
@click.option("--model", "model_path", help="model.tar.gz (a local file or an s3:// URI).")
@click.option("--input", "input_source", required=True,
              help="Input: a local file or directory (uploaded) or an s3:// URI.")
@click.option("--output", "output_uri", help="S3OutputPath (default: under the project prefix).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Download the .out files here (default: .byoc/transforms/<job>).")
@click.option("--content-type", help="ContentType of the input.")
@click.option("--split-type", default="None", show_default=True,
              type=click.Choice(["None", "Line", "RecordIO", "TFRecord"]))
@click.option("--strategy", type=click.Choice(["MultiRecord", "SingleRecord"]),
              help="BatchStrategy.")
@click.option("--max-payload", type=int, help="MaxPayloadInMB (0-100).")
@click.option("--max-concurrent", type=int, help="MaxConcurrentTransforms.")
@click.option("--assemble-with", type=click.Choice(["None", "Line"]), help="AssembleWith.")
@click.option("--accept", help="Accept: the output content type.")
@click.option("--input-filter", help="DataProcessing.InputFilter (JSONPath).")
@click.option("--output-filter", help="DataProcessing.OutputFilter (JSONPath).")
@click.option("--join-source", type=click.Choice(["None", "Input"]), help="DataProcessing.JoinSource.")
@click.option("--compression", type=click.Choice(["None", "Gzip"]), help="CompressionType of the input.")
@click.option("--instance-type", default="ml.m5.large", show_default=True,
              help="TransformResources.InstanceType.")
@click.option("--instance-count", default=1, show_default=True, type=int,
              help="Instances; input objects are split between them by key.")
@env_options("Environment (at most 16).")
@click.option("--job-name", help="Transform job name (default: <project>-<timestamp>).")
@target_options
@click.option("--detach", is_flag=True, help="Return once the job is created.")
@click.option("--dry-run", is_flag=True, help="Print the request; upload and create nothing.")
@click.option("--poll-interval", "poll", type=float, default=10.0, show_default=True,
              help="Seconds between status checks.")
@aws_options
def transform(project: Path | None, training_job: str | None, model_name: str | None,
              model_path: str | None, input_source: str, output_uri: str | None,
              output_dir: Path | None, content_type: str | None, split_type: str,
              strategy: str | None, max_payload: int | None, max_concurrent: int | None,
              assemble_with: str | None, accept: str | None, input_filter: str | None,
              output_filter: str | None, join_source: str | None, compression: str | None,
              instance_type: str, instance_count: int, env: tuple[str, ...],
              job_name: str | None, image: str | None, role: str | None, bucket: str | None,
              detach: bool, dry_run: bool, poll: float, region: str | None,
              profile: str | None) -> None:
    """Run a batch transform job with the same options as byoc local transform."""
    from ..job import default_job_name
    from ..sagemaker import SageMakerConfig, batch, hosting, training
    from ..sagemaker.image import resolve as resolve_image

    if sum(x is not None for x in (training_job, model_name, model_path)) != 1:
        raise ConfigError("name the model with one of --job, --model-name or --model")
    loaded = Project.find(project, required=(image or training_job or model_name) is None)
    options = batch.TransformOptions(
        content_type=content_type, split_type=split_type, strategy=strategy,
        max_payload=max_payload, max_concurrent=max_concurrent, assemble_with=assemble_with,
        accept=accept, input_filter=input_filter, output_filter=output_filter,
        join_source=join_source, compression=compression, instance_count=instance_count,
        environment=pairs(env, "--env"))
    options.validate()
    aws = _connect(region, profile, loaded, dry_run)
    config = SageMakerConfig.of(loaded)
    prefix = training.project_prefix(config, loaded)
    bucket_name = (bucket or config.bucket or aws.default_bucket()) if dry_run \
        else aws.bucket(bucket, config)
    name = job_name or default_job_name(loaded.name if loaded else "byoc-transform")
    model_request = None
    if model_name is None:
        if training_job is not None:
            source = hosting.from_training_job(aws, training_job)
            image_uri, data = source.image, source.model_data
        else:
            assert model_path is not None
            image_uri = resolve_image(aws, loaded, image, dry_run=dry_run, say=echo_err,
                                      progress=_progress())
            data = model_path if dry_run and not model_path.startswith("s3://") else \
                hosting.model_data_uri(aws, model_path, bucket=bucket_name, prefix=prefix)
        model_name = name
        model_request = hosting.model_request(name, image=image_uri, model_data=data,
                                              role_arn=aws.role_arn(role, config))
    in_uri = input_source if dry_run and not input_source.startswith("s3://") else \
        batch.input_uri(aws, input_source, bucket=bucket_name, prefix=prefix, say=echo_err)
    out_uri = output_uri or f"s3://{bucket_name}/{prefix}/transform-output/{name}/"
    request = options.request(job_name=name, model_name=model_name, input_uri=in_uri,
                              output_uri=out_uri, instance_type=instance_type)
    if dry_run:
        _print_dry_run(aws, training.to_json({"CreateModel": model_request,
                                              "CreateTransformJob": request}))
        return
    if model_request is not None:
        hosting.create_model(aws, model_request)
        echo_err(f"created model {model_name}")
    aws.call("sagemaker", "CreateTransformJob", **request)
    echo_err(f"created transform job {name}")
    if detach:
        click.echo(name)
        return
    try:
        batch.wait(aws, name, say=echo_err, poll_seconds=poll)
    except KeyboardInterrupt:
        raise Interrupted(f"detached: transform job {name} keeps running on SageMaker") from None
    target = output_dir or ((loaded.state_dir if loaded else Path.cwd() / ".byoc")
                            / "transforms" / name)
    saved = batch.download_outputs(aws, out_uri, target)
    echo_err(f"{len(saved)} output file(s) in {target}")
    click.echo(str(target))


@sagemaker_group.command()
@click.argument("job", required=False)
@click.option("--model", "model_path", help="model.tar.gz (a local file or an s3:// URI) instead of"
                                            " a training job's.")
@click.option("--image", help="Serving image URI (default: the training job's image, or the"
                              " project's).")
@click.option("--endpoint-name", help="Endpoint name (default: the job's name, or"
                                      " <project>-<timestamp>).")
@click.option("--instance-type", default="ml.m5.large", show_default=True,
              help="Instance type of the endpoint.")
@click.option("--instance-count", default=1, show_default=True, type=int,
              help="InitialInstanceCount of the endpoint.")
@env_options("Environment of the model.")
@click.option("--role", help="Execution role ARN or name (default: [sagemaker] role).")
@click.option("--bucket", help="S3 bucket for a local --model.")
@click.option("--no-wait", is_flag=True, help="Return once the endpoint is being created.")
@click.option("--poll-interval", "poll", type=float, default=15.0, show_default=True,
              help="Seconds between status checks.")
@aws_options
def deploy(job: str | None, model_path: str | None, image: str | None, endpoint_name: str | None,
           instance_type: str, instance_count: int, env: tuple[str, ...], role: str | None,
           bucket: str | None, no_wait: bool, poll: float, region: str | None,
           profile: str | None) -> None:
    """Create a model, an endpoint config and an endpoint; wait until it is InService."""
    from ..job import default_job_name
    from ..sagemaker import SageMakerConfig, hosting, training
    from ..sagemaker.image import resolve as resolve_image

    if (job is None) == (model_path is None):
        raise ConfigError("deploy a training JOB, or a --model (model.tar.gz file or s3:// URI)")
    loaded = Project.find(required=False)
    aws = _connect(region, profile, loaded)
    config = SageMakerConfig.of(loaded)
    if job is not None:
        source = hosting.from_training_job(aws, job)
        image_uri, data = image or source.image, source.model_data
    else:
        assert model_path is not None
        image_uri = resolve_image(aws, loaded, image, say=echo_err, progress=_progress())
        data = hosting.model_data_uri(aws, model_path, bucket=aws.bucket(bucket, config)
                                      if not model_path.startswith("s3://") else "",
                                      prefix=training.project_prefix(config, loaded))
    name = endpoint_name or job or default_job_name(loaded.name if loaded else "byoc")
    request = hosting.model_request(name, image=image_uri, model_data=data,
                                    role_arn=aws.role_arn(role, config),
                                    environment=pairs(env, "--env"))
    hosting.deploy(aws, name=name, model=request, instance_type=instance_type,
                   instance_count=instance_count, say=echo_err, wait=not no_wait,
                   poll_seconds=poll)
    for line in hosting.how_to_call(name, aws.region):
        echo_err(f"call it: {line}")
    echo_err(f"remove it: byoc sagemaker delete {name}")
    click.echo(name)


@sagemaker_group.command()
@click.argument("endpoint")
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True,
                                                        path_type=Path))
@click.option("--content-type", help="Content-Type of the body (default: from the file's suffix).")
@click.option("--accept", help="Accept: the response type wanted.")
@aws_options
def predict(endpoint: str, file: Path | None, content_type: str | None, accept: str | None,
            region: str | None, profile: str | None) -> None:
    """Send FILE (or - for stdin) to the endpoint with InvokeEndpoint and print the answer."""
    from ..sagemaker import hosting

    body, kind = read_payload(file, content_type)
    aws = _connect(region, profile, Project.find(required=False))
    answer = hosting.predict(aws, endpoint, body, kind, accept)
    sys.stdout.buffer.write(answer.body)
    sys.stdout.flush()


@sagemaker_group.command()
@click.argument("endpoint")
@aws_options
def delete(endpoint: str, region: str | None, profile: str | None) -> None:
    """Delete an endpoint, its endpoint config and its model."""
    from ..sagemaker import hosting

    aws = _connect(region, profile, Project.find(required=False))
    hosting.delete(aws, endpoint, say=echo_err)
