"""``byoc sagemaker ...``: the same job as ``byoc local``, run on Amazon SageMaker."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import contract, job
from ..errors import ConfigError, Interrupted
from ..job.processing import CODE_PATH, INPUT_ROOT, OUTPUT_ROOT
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


def processing_options(command: F) -> F:
    """The options of a processing job (``byoc local process`` takes the same)."""
    for option in reversed([
        click.option("--input", "inputs", multiple=True, metavar="NAME=PATH[:CONTAINER_PATH]",
                     help="An input: a local file or folder (uploaded) or an s3:// URI, at"
                          f" CONTAINER_PATH (default {INPUT_ROOT}/NAME). Repeatable."),
        click.option("--output", "outputs", multiple=True,
                     metavar="NAME=DESTINATION[:CONTAINER_PATH]",
                     help="An output: what the job leaves in CONTAINER_PATH (default"
                          f" {OUTPUT_ROOT}/NAME) goes to an s3:// URI, or to a local"
                          " folder (through an S3 prefix under the bucket, downloaded when the"
                          " job completes). Repeatable."),
        click.option("--code", metavar="FILE",
                     help=f"A script to run: the input 'code' at {CODE_PATH}, run as"
                          " --entrypoint ... plus its path (as the SDK's ScriptProcessor)."),
        click.option("--entrypoint", multiple=True, metavar="ITEM",
                     help="ContainerEntrypoint, one item per option (default: the image's"
                          " ENTRYPOINT)."),
        click.option("--argument", "arguments", multiple=True, metavar="ITEM",
                     help="ContainerArguments, one item per option (default: the image's CMD)."),
        click.option("--instance-count", type=int, default=1, show_default=True,
                     help="Instances (1-100)."),
        click.option("--distribution", "distributions", multiple=True,
                     metavar="NAME=FullyReplicated|ShardedByS3Key",
                     help="S3DataDistributionType of an input."),
        click.option("--input-mode", "input_modes", multiple=True, metavar="NAME=File|Pipe",
                     help="S3InputMode of an input."),
        click.option("--upload-mode", "upload_modes", multiple=True,
                     metavar="NAME=EndOfJob|Continuous", help="S3UploadMode of an output."),
        env_options(),
        click.option("--max-run", metavar="DURATION",
                     help="MaxRuntimeInSeconds: 3600, 90m, 2h (default 1 day, at most 9 days)."),
        click.option("--job-name", help="Processing job name (default: <project>-<timestamp>)."),
    ]):
        command = option(command)
    return command


@sagemaker_group.command()
@PROJECT
@processing_options
@target_options
@click.option("--instance-type", help="Instance type (default: [sagemaker] instance_type, else"
                                      " ml.m5.xlarge).")
@click.option("--volume-size", type=int, default=job.DEFAULT_VOLUME_GB, show_default=True,
              help="VolumeSizeInGB of each instance.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow status and logs until the job ends (--no-wait: return once created).")
@click.option("--dry-run", is_flag=True,
              help="Print the CreateProcessingJob request (for aws sagemaker"
                   " create-processing-job --cli-input-json); upload, push and create nothing."
                   " Needs no credentials and no pushed image: <placeholders> stand for what it"
                   " cannot learn.")
@POLL
@aws_options
def process(project: Path | None, inputs: tuple[str, ...], outputs: tuple[str, ...],
            code: str | None, entrypoint: tuple[str, ...], arguments: tuple[str, ...],
            instance_count: int, distributions: tuple[str, ...], input_modes: tuple[str, ...],
            upload_modes: tuple[str, ...], env: tuple[str, ...], max_run: str | None,
            job_name: str | None, image: str | None, role: str | None, bucket: str | None,
            instance_type: str | None, volume_size: int, wait: bool, dry_run: bool, poll: float,
            region: str | None, profile: str | None) -> None:
    """Run a processing job on SageMaker (CreateProcessingJob) with the options of byoc local
    process: the same command line runs the same job. Local inputs and --code are uploaded
    first (unchanged files are not sent again); local output folders get their files when the
    job completes. Follows status and CloudWatch logs, then prints the job's name."""
    from ..local.staging import check_writable
    from ..sagemaker import processing
    from ..sagemaker.image import resolve as resolve_image

    loaded = Project.find(project, required=image is None)
    definition = job.processing_from_options(
        base_name=loaded.name if loaded else "byoc-process", inputs=inputs, outputs=outputs,
        code=code, entrypoint=entrypoint, arguments=arguments, instance_count=instance_count,
        distributions=distributions, input_modes=input_modes, upload_modes=upload_modes,
        env=env, max_run=max_run, volume_gb=volume_size)
    for out in definition.local_outputs:  # before anything is uploaded or paid for
        check_writable(Path(out.destination), f"--output {out.name}")
    aws = _connect(region, profile, loaded, dry_run)
    uri = resolve_image(aws, loaded, image, dry_run=dry_run, say=echo_err, progress=_progress())
    plan = processing.plan(definition, aws=aws, project=loaded, image=uri, role=role,
                           bucket=bucket, instance_type=instance_type, job_name=job_name,
                           dry_run=dry_run, log=echo_err)
    if dry_run:
        _print_dry_run(aws, plan.cli_json())
        return
    arn = processing.start(aws, plan)
    echo_err(f"created processing job {plan.job_name} ({arn})")
    if wait:
        try:
            processing.watch(aws, plan.job_name, downloads=plan.downloads, log=log_line,
                             say=echo_err, poll_seconds=poll)
        except KeyboardInterrupt:
            raise Interrupted(f"detached: processing job {plan.job_name} keeps running on"
                              " SageMaker (its local output folders are not filled); stop it:"
                              " aws sagemaker stop-processing-job --processing-job-name"
                              f" {plan.job_name}") from None
    else:
        echo_err(f"processing job {plan.job_name} keeps running on SageMaker; local output"
                 " folders are not filled without --wait")
    click.echo(plan.job_name)


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
        ctx = click.get_current_context()
        on_command_line = {name for name in ctx.params if ctx.get_parameter_source(name)
                           is click.core.ParameterSource.COMMANDLINE}
        definition = job.lay_options_over(from_file, definition, given, on_command_line)
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
@click.option("--instance-type", help="Instance type of the endpoint (default: ml.m5.large).")
@click.option("--instance-count", default=1, show_default=True, type=int,
              help="InitialInstanceCount of the endpoint.")
@click.option("--multi-model", is_flag=True,
              help="A multi-model endpoint (PrimaryContainer.Mode MultiModel) serving every"
                   " archive under --model-prefix; the image needs the label"
                   " com.amazonaws.sagemaker.capabilities.multi-models=true.")
@click.option("--model-prefix", metavar="s3://...|DIR",
              help="With --multi-model: the ModelDataUrl prefix, or a local directory of .tar.gz"
                   " archives (uploaded; unchanged ones are not sent again).")
@click.option("--async", "async_mode", is_flag=True,
              help="Asynchronous inference (AsyncInferenceConfig); needs --async-output.")
@click.option("--async-output", "async_output_uri", metavar="s3://...",
              help="AsyncInferenceConfig S3OutputPath: where responses go.")
@click.option("--async-failure", metavar="s3://...",
              help="AsyncInferenceConfig S3FailurePath: where failures go.")
@click.option("--max-concurrent", type=int,
              help="MaxConcurrentInvocationsPerInstance of an asynchronous endpoint (1-1000).")
@click.option("--serverless", is_flag=True,
              help="Serverless inference (ServerlessConfig) in place of instances.")
@click.option("--memory", type=int, help="ServerlessConfig MemorySizeInMB (1024-6144, steps of"
                                         " 1024).")
@click.option("--max-concurrency", type=int, help="ServerlessConfig MaxConcurrency (1-200).")
@click.option("--pipeline", metavar="IMAGE,IMAGE[,...]",
              help="An inference pipeline of these images (Containers, 2-15), each with a"
                   " ContainerHostname; each image needs the label"
                   " com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true.")
@click.option("--direct", is_flag=True,
              help="With --pipeline: InferenceExecutionConfig.Mode Direct (the caller picks a"
                   " container with --target-container) instead of Serial.")
@env_options("Environment of the model (of every container of a pipeline).")
@click.option("--role", help="Execution role ARN or name (default: [sagemaker] role).")
@click.option("--bucket", help="S3 bucket for a local --model or --model-prefix directory.")
@click.option("--no-wait", is_flag=True, help="Return once the endpoint is being created.")
@click.option("--dry-run", is_flag=True,
              help="Print the CreateModel, CreateEndpointConfig and CreateEndpoint requests;"
                   " upload, push and create nothing. Needs no credentials (a training JOB is"
                   " read from SageMaker, which does).")
@click.option("--poll-interval", "poll", type=float, default=15.0, show_default=True,
              help="Seconds between status checks.")
@aws_options
def deploy(job: str | None, model_path: str | None, image: str | None, endpoint_name: str | None,
           instance_type: str | None, instance_count: int, multi_model: bool,
           model_prefix: str | None, async_mode: bool, async_output_uri: str | None,
           async_failure: str | None, max_concurrent: int | None, serverless: bool,
           memory: int | None, max_concurrency: int | None, pipeline: str | None, direct: bool,
           env: tuple[str, ...], role: str | None, bucket: str | None, no_wait: bool,
           dry_run: bool, poll: float, region: str | None, profile: str | None) -> None:
    """Create a model, an endpoint config and an endpoint; wait until it is InService.

    One container serving a model (JOB or --model), a multi-model container (--multi-model
    --model-prefix), or an inference pipeline (--pipeline); on instances, asynchronous (--async
    --async-output) or serverless (--serverless --memory --max-concurrency)."""
    from ..job import default_job_name
    from ..sagemaker import SageMakerConfig, hosting, training
    from ..sagemaker.image import local_labels
    from ..sagemaker.image import resolve as resolve_image

    images = [part.strip() for part in pipeline.split(",")] if pipeline is not None else []
    _check_deploy_options(job=job, model_path=model_path, image=image, multi_model=multi_model,
                          model_prefix=model_prefix, async_on=async_mode,
                          async_output_uri=async_output_uri, async_failure=async_failure,
                          max_concurrent=max_concurrent, serverless=serverless, memory=memory,
                          max_concurrency=max_concurrency, pipeline=images, direct=direct,
                          instance_type=instance_type, instance_count=instance_count)
    async_config = hosting.async_inference_config(
        str(async_output_uri), failure=async_failure, max_concurrent=max_concurrent) \
        if async_mode else None
    serverless_config = hosting.serverless_config(memory, max_concurrency) if serverless else None
    environment = pairs(env, "--env")
    loaded = Project.find(required=False)
    name = endpoint_name or job or default_job_name(loaded.name if loaded else "byoc")
    hosting.check_name(name, "endpoint name")
    aws = _connect(region, profile, loaded, dry_run)
    config = SageMakerConfig.of(loaded)
    prefix = training.project_prefix(config, loaded)

    def bucket_name() -> str:
        return (bucket or config.bucket or aws.default_bucket()) if dry_run \
            else aws.bucket(bucket, config)

    def check_local(references: list[str], label: str, what: str) -> None:
        """Refuse a local image without *label*; then note the images not here to check."""
        checked = [hosting.require_label(local_labels(reference), label, reference, what)
                   for reference in references]
        for reference, local in zip(references, checked, strict=True):
            if not local:
                echo_err(f"note: {reference} is not a local image: its label {label} is checked"
                         " by SageMaker at CreateModel")

    data: str | None = None
    if job is not None:
        source = hosting.from_training_job(aws, job)
        image_uri, data = image or source.image, source.model_data
    elif model_path is not None:
        data = hosting.model_data_uri(aws, model_path, bucket=bucket_name()
                                      if not model_path.startswith("s3://") else "",
                                      prefix=prefix, upload=not dry_run)
    if images:
        check_local(images, contract.BIND_TO_PORT_LABEL, "every container of a pipeline")
        request = hosting.pipeline_request(name, images=images, role_arn=aws.role_arn(role, config),
                                           direct=direct, model_data=data,
                                           environment=environment)
    else:
        if job is None:
            if multi_model:  # checked before a push: the service refuses the model without it
                local = image or (f"{loaded.image}:latest" if loaded else None)
                if local:
                    check_local([local], contract.MULTI_MODEL_LABEL, "a multi-model container")
            image_uri = resolve_image(aws, loaded, image, dry_run=dry_run, say=echo_err,
                                      progress=_progress())
        if multi_model:
            assert model_prefix is not None
            uri = hosting.model_prefix_uri(
                aws, model_prefix, name=name, prefix=prefix, upload=not dry_run, say=echo_err,
                bucket=bucket_name() if not model_prefix.startswith("s3://") else "")
            request = hosting.multi_model_request(name, image=image_uri, prefix=uri,
                                                  role_arn=aws.role_arn(role, config),
                                                  environment=environment)
        else:
            assert data is not None
            request = hosting.model_request(name, image=image_uri, model_data=data,
                                            role_arn=aws.role_arn(role, config),
                                            environment=environment)
    chosen_type = instance_type or hosting.DEFAULT_INSTANCE_TYPE
    endpoint_config = hosting.endpoint_config_request(
        name, model_name=name, instance_type=chosen_type, instance_count=instance_count,
        async_config=async_config, serverless=serverless_config)
    if dry_run:
        _print_dry_run(aws, training.to_json({
            "CreateModel": request, "CreateEndpointConfig": endpoint_config,
            "CreateEndpoint": {"EndpointName": name, "EndpointConfigName": name}}))
        return
    hosting.deploy(aws, name=name, model=request, endpoint_config=endpoint_config, say=echo_err,
                   wait=not no_wait, poll_seconds=poll)
    for line in hosting.how_to_call(name, aws.region, multi_model=multi_model,
                                    async_inference=async_config is not None,
                                    direct=bool(images) and direct):
        echo_err(f"call it: {line}")
    echo_err(f"remove it: byoc sagemaker delete {name}")
    click.echo(name)


def _check_deploy_options(*, job: str | None, model_path: str | None, image: str | None,
                          multi_model: bool, model_prefix: str | None, async_on: bool,
                          async_output_uri: str | None, async_failure: str | None,
                          max_concurrent: int | None, serverless: bool, memory: int | None,
                          max_concurrency: int | None, pipeline: list[str], direct: bool,
                          instance_type: str | None, instance_count: int) -> None:
    """The combinations of deploy's options, refused before anything is read or sent."""
    from ..sagemaker import hosting

    if serverless:
        hosting.check_serverless(multi_model=multi_model, pipeline=bool(pipeline),
                                 async_inference=async_on, instance_type=instance_type)
        if instance_count != 1:
            raise ConfigError("--instance-count is for instances: a serverless endpoint scales"
                              " with --max-concurrency")
    elif memory is not None or max_concurrency is not None:
        raise ConfigError("--memory and --max-concurrency size a --serverless endpoint")
    if multi_model:
        if pipeline:
            raise ConfigError("--multi-model and --pipeline exclude each other: a multi-model"
                              " model is one container")
        if job is not None or model_path is not None or model_prefix is None:
            raise ConfigError("--multi-model serves the archives under --model-prefix"
                              " (s3://... or a local directory), not a JOB or --model")
        if not model_prefix.startswith("s3://"):
            hosting.archives_of(Path(model_prefix))
    elif model_prefix is not None:
        raise ConfigError("--model-prefix is for --multi-model")
    if pipeline:
        hosting.check_pipeline_size(pipeline)
        if image is not None:
            raise ConfigError("--pipeline names every image: drop --image")
        if job is not None and model_path is not None:
            raise ConfigError("deploy a training JOB or a --model, not both")
    elif direct:
        raise ConfigError("--direct is for --pipeline (InferenceExecutionConfig.Mode)")
    elif not multi_model and (job is None) == (model_path is None):
        raise ConfigError("deploy a training JOB, or a --model (model.tar.gz file or s3:// URI)")
    if async_on and async_output_uri is None:
        raise ConfigError("--async needs --async-output s3://... (AsyncInferenceConfig"
                          " S3OutputPath)")
    if not async_on and (async_output_uri is not None or async_failure is not None
                         or max_concurrent is not None):
        raise ConfigError("--async-output, --async-failure and --max-concurrent are for --async"
                          " endpoints")


@sagemaker_group.command()
@click.argument("endpoint")
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True,
                                                        path_type=Path))
@click.option("--content-type", help="Content-Type of the body (default: from the file's suffix).")
@click.option("--accept", help="Accept: the response type wanted.")
@click.option("--target-model", metavar="REL.tar.gz",
              help="TargetModel: the archive of a multi-model endpoint, relative to its prefix.")
@click.option("--target-container", metavar="HOST",
              help="TargetContainerHostname: the container of a Direct pipeline to invoke.")
@click.option("--async", "async_file", metavar="FILE|s3://...",
              help="InvokeEndpointAsync: FILE is uploaded (an s3:// URI is used as it is) as the"
                   " InputLocation; prints the inference id and the OutputLocation.")
@click.option("--wait", is_flag=True, help="With --async: wait for the output (or failure)"
                                           " object and print the response.")
@click.option("--timeout", type=float, default=7200.0, show_default=True,
              help="With --async --wait: seconds to wait for the outcome.")
@click.option("--bucket", help="S3 bucket for an --async FILE (default: [sagemaker] bucket,"
                               " else sagemaker-<region>-<account>).")
@click.option("--poll-interval", "poll", type=float, default=5.0, show_default=True,
              help="Seconds between checks of the output with --async --wait.")
@click.option("--dry-run", is_flag=True,
              help="Print the request (the body as its size); upload and send nothing.")
@aws_options
def predict(endpoint: str, file: Path | None, content_type: str | None, accept: str | None,
            target_model: str | None, target_container: str | None, async_file: str | None,
            wait: bool, timeout: float, bucket: str | None, poll: float, dry_run: bool,
            region: str | None, profile: str | None) -> None:
    """Send FILE (or - for stdin) to the endpoint with InvokeEndpoint and print the answer; or,
    with --async FILE, queue it with InvokeEndpointAsync."""
    from ..sagemaker import hosting

    if async_file is not None:
        _predict_async(endpoint, file, async_file, content_type=content_type, accept=accept,
                       target_model=target_model, target_container=target_container,
                       wait=wait, timeout=timeout, bucket=bucket, poll=poll, dry_run=dry_run,
                       region=region, profile=profile)
        return
    if wait:
        raise ConfigError("--wait is for --async")
    request = hosting.invoke_request(endpoint, content_type or "-", accept=accept,
                                     target_model=target_model, target_container=target_container)
    body, kind = read_payload(file, content_type)
    loaded = Project.find(required=False)
    if dry_run:
        request["ContentType"] = kind
        _print_dry_run(_connect(region, profile, loaded, True), _to_json(
            {"InvokeEndpoint": {**request, "Body": f"<{len(body)} bytes of {file}>"}}))
        return
    aws = _connect(region, profile, loaded)
    answer = hosting.predict(aws, endpoint, body, kind, accept, target_model=target_model,
                             target_container=target_container)
    sys.stdout.buffer.write(answer.body)
    sys.stdout.flush()


def _to_json(data: Any) -> str:
    from ..sagemaker import training

    return training.to_json(data)


def _predict_async(endpoint: str, file: Path | None, source: str, *, content_type: str | None,
                   accept: str | None, target_model: str | None, target_container: str | None,
                   wait: bool, timeout: float, bucket: str | None, poll: float, dry_run: bool,
                   region: str | None, profile: str | None) -> None:
    from .. import invoke
    from ..sagemaker import SageMakerConfig, hosting, storage, training

    if file is not None:
        raise ConfigError("--async takes the payload FILE itself: drop the second FILE")
    if target_model is not None or target_container is not None:
        raise ConfigError("InvokeEndpointAsync has no TargetModel or TargetContainerHostname:"
                          " drop --target-model and --target-container with --async")
    path = None if source.startswith("s3://") else Path(source)
    if path is not None and not path.is_file():
        raise ConfigError(f"--async {source}: no such file")
    kind = content_type or (invoke.guess_content_type(path) if path is not None else None)
    loaded = Project.find(required=False)
    aws = _connect(region, profile, loaded, dry_run)
    location = source
    if path is not None:
        config = SageMakerConfig.of(loaded)
        chosen = (bucket or config.bucket or aws.default_bucket()) if dry_run \
            else aws.bucket(bucket, config)
        location = hosting.async_input_uri(path, bucket=chosen,
                                           prefix=training.project_prefix(config, loaded))
    request = hosting.async_request(endpoint, location, kind, accept=accept)
    if dry_run:
        _print_dry_run(aws, _to_json({"InvokeEndpointAsync": request}))
        return
    if path is not None:
        storage.upload_file(aws, path, location)
        echo_err(f"uploaded {path} to {location}")
    answer = hosting.predict_async(aws, request)
    echo_err(f"inference {answer.inference_id} queued; its response goes to"
             f" {answer.output_location}"
             + (f", a failure to {answer.failure_location}" if answer.failure_location else ""))
    if not wait:
        click.echo(f"{answer.inference_id}\t{answer.output_location}")
        return
    try:
        body = hosting.wait_async(aws, answer, say=echo_err, poll_seconds=poll, timeout=timeout)
    except KeyboardInterrupt:
        raise Interrupted(f"detached: inference {answer.inference_id} goes on; its response"
                          f" will be at {answer.output_location}") from None
    sys.stdout.buffer.write(body)
    sys.stdout.flush()


@sagemaker_group.command()
@click.argument("endpoint")
@aws_options
def delete(endpoint: str, region: str | None, profile: str | None) -> None:
    """Delete an endpoint, its endpoint config and its model."""
    from ..sagemaker import hosting

    aws = _connect(region, profile, Project.find(required=False))
    hosting.delete(aws, endpoint, say=echo_err)
