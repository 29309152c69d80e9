"""``byoc sagemaker``: the job definition as CreateTrainingJob and friends, against moto's server
over real HTTP (botocore validates every request against the service model before sending it).

What moto fakes, and how these tests deal with it (none of this is a pass of the real service):
- a training, transform or tuning job is ``Completed`` the moment it is created: the watching
  loop's transitions are tested against a scripted server (tests/fixtures/fake_aws.py);
- moto replaces ``MetricDefinitions`` with its own and invents ``FinalMetricDataList``: the
  metric definitions byoc sent are read from the job record byoc wrote (the request it sent);
- moto's SageMaker writes no logs and no model: the tests seed CloudWatch Logs streams and the
  ``model.tar.gz`` where SageMaker would put them;
- endpoints are ``InService`` at once, and InvokeEndpoint answers what the test queued through
  moto's API, whether or not the endpoint exists;
- AWS's error shapes (AccessDenied, ValidationException, ResourceLimitExceeded, throttling,
  expired credentials) come from the scripted server, as AWS sends them, and so does an HTML
  error page (a 500 from a proxy or load balancer in front of the service);
- a job whose containers have not started (no log group, InProgress) comes from the scripted
  server; moto's jobs have no logs and are Completed at once.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import signal
import subprocess
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import botocore.validate
import pytest
import test_push
from click.testing import CliRunner
from tune_requests import make_whole_job

from byoc import job as jobdef
from byoc import local
from byoc.cli import cli
from byoc.job.metrics import definition as metric_definition
from byoc.sagemaker import Aws, storage, training
from helpers import FIXTURES, load_fixture

#: The local registry and the tiny image of push's tests (session fixtures).
local_registry = test_push.local_registry
tiny_image = test_push.tiny_image
servers = load_fixture("registry/servers.py")
fake = load_fixture("fake_aws.py")
ACCOUNT = servers.MOTO_ACCOUNT
REGION = "us-east-1"
BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/demo@sha256:{'a' * 64}"
SECRET = "byocSECRETvalue0123456789shouldNeverShow"
TOKEN = "byocSESSIONtokenShouldNeverShow"


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.moto_server(tmp_path_factory.mktemp("moto-sm")) as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials that must never show, every call to moto, the region in the environment,
    SageMaker's default bucket in place."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", REGION)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return moto_url


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def write_project(root: Path, *, role: str | None = ROLE, files: int = 3,
                  image: str | None = None) -> Path:
    """A byoc project: byoc.toml and local_test's channel, hyperparameters and content type."""
    name = f"demo-{uuid.uuid4().hex[:6]}"
    section = f'[sagemaker]\nrole = "{role}"\n' if role else ""
    root.mkdir(parents=True)
    (root / "byoc.toml").write_text(
        f'[project]\nname = "{name}"\nimage = "{image or name}"\n{section}')
    data = root / "local_test" / "test_dir" / "input" / "data" / "training"
    data.mkdir(parents=True)
    for index in range(files):
        (data / f"part-{index}.csv").write_text(f"{index},1.0,2.0\n" * 10)
    config = root / "local_test" / "test_dir" / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"max_leaf_nodes": "8"}))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {"training": {"ContentType": "text/csv", "TrainingInputMode": "File"}}))
    return root


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["sagemaker", *args], input=input)


def validate(operation: str, request: dict[str, Any], service: str = "sagemaker") -> None:
    """botocore's own check of *request* against the service model (what it does before sending)."""
    model = botocore.session.get_session().get_service_model(service)
    botocore.validate.validate_parameters(request, model.operation_model(operation).input_shape)


def one_line_error(result: Any, detail: str | None = None) -> str:
    """The one ``Error:`` line; *detail* is the line AWS's own message may add under it."""
    lines = result.stderr.strip().splitlines()
    assert lines[1:] == ([detail] if detail else []), result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    return str(lines[0])


def model_tar(payload: bytes = b"weights") -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        info = tarfile.TarInfo("model.npz")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def seed_logs(job: str, lines: dict[str, list[str]]) -> None:
    """What SageMaker's agents would write: one stream per host (moto's SageMaker writes none)."""
    logs = client("logs")
    try:
        logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    for host, messages in lines.items():
        stream = f"{job}/{host}-1700000000"
        logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
        logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": m}
                                       for i, m in enumerate(messages)])


def no_secret_in(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and TOKEN not in text


def files_text(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*")
                   if p.is_file() and p.suffix != ".gz")


# ---- one definition ----------------------------------------------------------------------------

def test_local_and_sagemaker_requests_differ_only_where_they_must(tmp_path: Path) -> None:
    """The same definition, run locally and on SageMaker: side by side, only the S3 URIs, the
    instance type, the role and the image differ."""
    root = write_project(tmp_path / "p")
    definition, _ = jobdef.from_project(
        _project(root), input_mode="Pipe", instance_count=4, spot=True, max_runtime=3600,
        max_wait=7200, checkpoint_uri="s3://bkt/ckpt/demo",
        metric_definitions=(metric_definition("validation:loss", r"val_loss=([0-9.]+)"),),
        environment={"PROBE_LEVEL": "INFO"}, record_wrappers={"training": "RecordIO"})
    local = definition.local_request(job_name="demo-1", image="demo:latest",
                                     output_dir=tmp_path / "jobs")
    remote = definition.training_request(
        job_name="demo-1", image=IMAGE, role_arn=ROLE, instance_type="ml.m5.xlarge",
        channel_uris={"training": "s3://bkt/byoc/demo/channels/training/"},
        output_path="s3://bkt/byoc/demo/output/")
    differing = dict(_diff(local, remote))
    print("\n".join(f"{path}:\n  local     {a}\n  sagemaker {b}" for path, (a, b) in differing.items()))
    assert set(differing) == {
        "AlgorithmSpecification.TrainingImage", "RoleArn", "ResourceConfig.InstanceType",
        "InputDataConfig.0.DataSource.S3DataSource.S3Uri", "OutputDataConfig.S3OutputPath"}
    assert differing["InputDataConfig.0.DataSource.S3DataSource.S3Uri"][0] == (
        (root / "local_test/test_dir/input/data/training").resolve().as_uri() + "/")
    assert differing["ResourceConfig.InstanceType"] == ("local", "ml.m5.xlarge")
    validate("CreateTrainingJob", remote)


def _project(root: Path) -> Any:
    from byoc.project import Project

    return Project.load(root)


def _diff(a: Any, b: Any, path: str = "") -> Iterator[tuple[str, tuple[Any, Any]]]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _diff(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, f"{path}.{index}")
    elif a != b:
        yield path, (a, b)


def test_dry_run_prints_the_request_and_sends_nothing(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps([{"Name": "train:loss", "Regex": r"train_loss=([-+0-9.eE]+)"}]))
    result = run("train", str(root), "--image", IMAGE, "--dry-run", "--instance-count", "4",
                 "--spot", "--max-run", "3600", "--max-wait", "7200", "--metric-definitions",
                 str(metrics), "--metric-definition", r"validation:loss=val_loss=([-+0-9.eE]+)",
                 "--hyperparameter", "epochs=3", "--env", "LOG_LEVEL=INFO", "--job-name", "dry-1",
                 "--instance-type", "ml.g5.2xlarge")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    validate("CreateTrainingJob", request)
    prefix = f"s3://{BUCKET}/byoc/{_project(root).name}"
    assert request == {
        "TrainingJobName": "dry-1", "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE, "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:loss", "Regex": r"train_loss=([-+0-9.eE]+)"},
                                  {"Name": "validation:loss", "Regex": r"val_loss=([-+0-9.eE]+)"}],
            "EnableSageMakerMetricsTimeSeries": True},
        "HyperParameters": {"max_leaf_nodes": "8", "epochs": "3"},
        "InputDataConfig": [{"ChannelName": "training", "ContentType": "text/csv",
                             "DataSource": {"S3DataSource": {
                                 "S3DataType": "S3Prefix",
                                 "S3Uri": f"{prefix}/channels/training/",
                                 "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"{prefix}/output/"},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 4,
                           "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": f"{prefix}/checkpoints/dry-1/",
                             "LocalPath": "/opt/ml/checkpoints"},
        "Environment": {"LOG_LEVEL": "INFO"}}
    # nothing was sent: no object uploaded, no job created
    assert "Contents" not in client("s3").list_objects_v2(Bucket=BUCKET, Prefix="byoc/")
    names = [j["TrainingJobName"] for j in client("sagemaker").list_training_jobs()
             ["TrainingJobSummaries"]]
    assert "dry-1" not in names
    no_secret_in(result.stdout, result.stderr)


def test_pipe_channels_time_limits_and_channel_options(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    manifest = tmp_path / "train.manifest"
    manifest.write_text('{"source-ref": "s3://b/1.jpg", "label": 1}\n')
    options = ["train", str(root), "--image", IMAGE, "--dry-run", "--input-mode", "Pipe",
               "--channel", f"training={root / 'local_test/test_dir/input/data/training'}",
               "--channel", f"images={manifest}", "--channel", "extra=s3://other/data/",
               "--attribute-names", "images=source-ref,label", "--record-wrapper",
               "images=RecordIO", "--content-type", "images=application/x-recordio",
               "--compression", "extra=Gzip", "--shuffle-seed", "training=7",
               "--distribution", "training=ShardedByS3Key", "--max-run", "600",
               "--job-name", "pipe-1"]
    result = run(*options, "--channel-input-mode", "extra=FastFile")
    assert result.exit_code == 2, result.stderr  # Gzip needs Pipe, and extra is FastFile
    assert one_line_error(result) == (
        "Error: channel 'extra' (FastFile mode): CompressionType is used only in Pipe input mode."
        " In FastFile mode, leave this field unset or set it to None.")
    result = run(*options)
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    validate("CreateTrainingJob", request)
    prefix = f"s3://{BUCKET}/byoc/{_project(root).name}/channels"
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    assert "EnableManagedSpotTraining" not in request and "CheckpointConfig" not in request
    assert request["InputDataConfig"] == [
        {"ChannelName": "extra", "CompressionType": "Gzip",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://other/data/",
                                         "S3DataDistributionType": "FullyReplicated"}}},
        {"ChannelName": "images", "ContentType": "application/x-recordio",
         "RecordWrapperType": "RecordIO",
         "DataSource": {"S3DataSource": {"S3DataType": "AugmentedManifestFile",
                                         "S3Uri": f"{prefix}/images/train.manifest",
                                         "S3DataDistributionType": "FullyReplicated",
                                         "AttributeNames": ["source-ref", "label"]}}},
        {"ChannelName": "training", "ContentType": "text/csv", "ShuffleConfig": {"Seed": 7},
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                         "S3Uri": f"{prefix}/training/",
                                         "S3DataDistributionType": "ShardedByS3Key"}}}]


@pytest.mark.parametrize(("args", "message"), [
    (["--spot"], "--spot needs --max-wait (MaxWaitTimeInSeconds, at least --max-run"),
    (["--spot", "--max-wait", "100", "--max-run", "2m"], "--max-wait 100 must be at least --max-run 120"),
    (["--max-run", "1h", "--max-wait", "soon", "--spot"], "--max-wait: 'soon' is not a duration"),
    (["--max-wait", "100"], "--max-wait applies to managed spot training only"),
    (["--max-run", str(29 * 86400)], "MaxRuntimeInSeconds takes 1 to 2419200"),
    (["--metric-definition", "loss=no group"],
     "--metric-definition 'loss': Regex has no capture group"),
    (["--attribute-names", "training=a"],
     "AugmentedManifestFile can only be used if the Channel's input mode is Pipe"),
    (["--input-mode", "Streaming"], "Value 'Streaming' at 'algorithmSpecification.trainingInputMode'"),
    (["--checkpoint-uri", "file:///tmp/ckpt"], "use an s3:// URI or a local directory"),
    (["--checkpoint-uri", "s3://b/c", "--checkpoint-dir", "/tmp/c"], "name the same setting"),
    (["--distribution", "nope=ShardedByS3Key"], "--distribution names channel 'nope'"),
])
def test_definition_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    result = run("train", str(root), "--image", IMAGE, "--dry-run", "--region", REGION, *args)
    assert result.exit_code == 2
    assert message in one_line_error(result)


# ---- a real run against moto ---------------------------------------------------------------------

def test_train_multi_instance_spot_with_checkpoints(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    name = _project(root).name
    job = f"spot-{uuid.uuid4().hex[:6]}"
    prefix = f"byoc/{name}"
    # seeded where SageMaker would write them: moto writes neither logs nor a model
    seed_logs(job, {"algo-1": ["epoch=1 val_loss=0.5"], "algo-2": ["worker ready"]})
    client("s3").put_object(Bucket=BUCKET, Key=f"{prefix}/output/{job}/output/model.tar.gz",
                            Body=model_tar())
    result = run("train", str(root), "--image", IMAGE, "--instance-count", "4", "--spot",
                 "--max-run", "1h", "--max-wait", "2h", "--checkpoint-uri",
                 f"s3://{BUCKET}/ckpt/{job}", "--metric-definition",
                 r"validation:loss=val_loss=([-+0-9.eE]+)", "--job-name", job,
                 "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    archive = root / ".byoc" / "jobs" / job / "model.tar.gz"
    assert result.stdout.strip() == str(archive)
    assert archive.read_bytes() == model_tar()
    assert local.resolve_model(None, _project(root)) == archive  # byoc local serve takes it
    described = client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 4,
                                           "VolumeSizeInGB": 30}
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600,
                                              "MaxWaitTimeInSeconds": 7200}
    assert described["EnableManagedSpotTraining"] is True
    assert described["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/ckpt/{job}/",
                                             "LocalPath": "/opt/ml/checkpoints"}
    # moto replaces MetricDefinitions with its own: what byoc sent is in the job's record
    record = json.loads((root / ".byoc" / "jobs" / job / "sagemaker.json").read_text())
    assert record["request"]["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "validation:loss", "Regex": r"val_loss=([-+0-9.eE]+)"}]
    assert described["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "test:dcg"
    # the channel went up under the project prefix
    keys = sorted(o["Key"] for o in client("s3").list_objects_v2(
        Bucket=BUCKET, Prefix=f"{prefix}/channels/")["Contents"])
    assert keys == [f"{prefix}/channels/training/part-{i}.csv" for i in range(3)]
    # logs per host, the final summary
    assert "algo-1 | epoch=1 val_loss=0.5" in result.stderr
    assert "algo-2 | worker ready" in result.stderr
    assert f"training job {job}: Completed (Completed)" in result.stderr
    assert "Starting - Preparing the instances for training" in result.stderr
    no_secret_in(result.stdout, result.stderr, files_text(root / ".byoc"))


def test_second_run_uploads_nothing_unchanged(aws: str, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    for index in range(3):
        (source / f"f{index}.csv").write_text(f"{index}\n" * 100)
    (source / "sub").mkdir()
    (source / "sub" / "nested.csv").write_text("x\n")
    connection = Aws.connect(REGION)
    prefix = f"dedup-{uuid.uuid4().hex[:6]}/channels/training"
    first = storage.sync_channel(connection, source, BUCKET, prefix)
    assert (first.uploaded, first.skipped, first.deleted) == (4, 0, 0)
    second = storage.sync_channel(connection, source, BUCKET, prefix)
    assert (second.uploaded, second.skipped, second.bytes_uploaded) == (0, 4, 0)
    (source / "f1.csv").write_text("changed, same size?\n")
    (source / "f2.csv").unlink()
    third = storage.sync_channel(connection, source, BUCKET, prefix)
    assert (third.uploaded, third.skipped, third.deleted) == (1, 2, 1)
    keys = sorted(o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
                  ["Contents"])
    assert keys == [f"{prefix}/f0.csv", f"{prefix}/f1.csv", f"{prefix}/sub/nested.csv"]
    body = client("s3").get_object(Bucket=BUCKET, Key=f"{prefix}/f1.csv")["Body"].read()
    assert body == b"changed, same size?\n"
    assert first.uri == f"s3://{BUCKET}/{prefix}/"


def test_same_size_different_content_is_uploaded(aws: str, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.csv").write_text("1111\n")
    connection = Aws.connect(REGION)
    prefix = f"dedup-{uuid.uuid4().hex[:6]}"
    storage.sync_channel(connection, source, BUCKET, prefix)
    (source / "a.csv").write_text("2222\n")
    assert storage.sync_channel(connection, source, BUCKET, prefix).uploaded == 1


# ---- tuning, transform, endpoints -------------------------------------------------------------

TUNING = {
    "HyperParameterTuningJobConfig": {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:loss"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "IntegerParameterRanges": [{"Name": "max_leaf_nodes", "MinValue": "2",
                                        "MaxValue": "64", "ScalingType": "Auto"}],
            "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.001", "MaxValue": "0.5",
                                           "ScalingType": "Logarithmic"}]},
        "TrainingJobEarlyStoppingType": "Off"},
    "TrainingJobDefinition": {
        "AlgorithmSpecification": {"TrainingInputMode": "File", "MetricDefinitions": [
            {"Name": "validation:loss", "Regex": r"val_loss=([-+0-9.eE]+)"}]},
        "StaticHyperParameters": {"objective": "rmse"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800}}}


def test_tuning_job_fills_in_image_role_channels_and_resources(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    config = tmp_path / "tune.json"
    config.write_text(json.dumps(TUNING))
    name = f"tune-{uuid.uuid4().hex[:6]}"
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE, "--job-name", name,
                 "--instance-type", "ml.c5.xlarge", "--instance-count", "2",
                 "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    # moto: Completed at once, with a placeholder best job that ignores the request
    described = client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)
    definition = described["TrainingJobDefinition"]
    prefix = f"s3://{BUCKET}/byoc/{_project(root).name}"
    assert definition["AlgorithmSpecification"] == {
        "TrainingImage": IMAGE, "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": "validation:loss", "Regex": r"val_loss=([-+0-9.eE]+)"}]}
    assert definition["RoleArn"] == ROLE
    assert definition["StaticHyperParameters"] == {"objective": "rmse"}  # max_leaf_nodes is tuned
    assert definition["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == \
        f"{prefix}/channels/training/"
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"{prefix}/output/tuning/"}
    assert definition["ResourceConfig"] == {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2,
                                            "VolumeSizeInGB": 30}
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    assert described["HyperParameterTuningJobConfig"] == TUNING["HyperParameterTuningJobConfig"]
    assert f"tuning job {name}: Completed" in result.stderr


def test_tuning_objective_needs_a_metric_definition(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    config = tmp_path / "tune.json"
    config.write_text(json.dumps({**TUNING, "TrainingJobDefinition": {}}))
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE, "--dry-run")
    assert result.exit_code == 2
    assert "objective metric 'validation:loss' has no metric definition" in one_line_error(result)
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE, "--dry-run",
                 "--metric-definition", "validation:loss=loss=([0-9.]+)", "--job-name", "t-1")
    request = json.loads(result.stdout)
    validate("CreateHyperParameterTuningJob", request)
    assert request["HyperParameterTuningJobName"] == "t-1"


def _keys() -> list[str]:
    return [item["Key"] for item in client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def _tuning_jobs() -> list[str]:
    return [job["HyperParameterTuningJobName"] for job in client("sagemaker")
            .list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]]


def test_a_tuning_stopping_condition_is_refused_in_the_words_of_the_request_file(
        aws: str, tmp_path: Path) -> None:
    """The file's StoppingCondition is named as the file names it, not as the options (--max-wait,
    --max-run) that set the same fields of a job on the command line; nothing is uploaded."""
    root = write_project(tmp_path / "p")
    config = tmp_path / "tune.json"
    before = _keys()
    body = json.loads(json.dumps(TUNING))
    body["TrainingJobDefinition"]["EnableManagedSpotTraining"] = True
    body["TrainingJobDefinition"]["StoppingCondition"]["MaxWaitTimeInSeconds"] = 60
    config.write_text(json.dumps(body))
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE)
    assert result.exit_code == 2
    assert one_line_error(result).startswith(
        "Error: TrainingJobDefinition.StoppingCondition.MaxWaitTimeInSeconds 60 must be at least"
        " TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds 1800")
    assert _keys() == before  # nothing uploaded


def test_sagemaker_tune_checks_the_file_against_the_service_model_first(
        aws: str, tmp_path: Path) -> None:
    """botocore's service model checks the request file before anything is pushed, uploaded or
    sent: one Error line naming the field, the other problems listed under it. What byoc fills in
    (the name, the training job's image, role, output and resources) may be missing."""
    root = write_project(tmp_path / "p")
    config = tmp_path / "tune.json"
    before, jobs = _keys(), _tuning_jobs()
    body = json.loads(json.dumps(TUNING))
    body["TrainingJobDefinition"]["StoppingCondition"]["MaxRuntimeInSeconds"] = "3600"
    config.write_text(json.dumps(body))
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE)
    assert result.exit_code == 2
    assert result.stderr == ("Error: TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds:"
                             " '3600' is not of type int\n")
    body["HyperParameterTuningJobConfig"]["Strategy"] = "Genetic"
    body["HyperParameterTuningJobConfig"]["Colour"] = "blue"
    config.write_text(json.dumps(body))
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE)
    assert result.exit_code == 2
    first, *rest = result.stderr.splitlines()
    assert first.startswith("Error: HyperParameterTuningJobConfig.Colour: unknown field")
    assert any(line.startswith("also: TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds:")
               for line in rest)
    assert "also: HyperParameterTuningJobConfig.Strategy: 'Genetic' is not one of" in result.stderr
    assert (_keys(), _tuning_jobs()) == (before, jobs)  # nothing uploaded, nothing created


def test_transform_job_request(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    inputs = tmp_path / "batch"
    inputs.mkdir()
    (inputs / "rows.csv").write_text("1,2\n3,4\n")
    name = f"tr-{uuid.uuid4().hex[:6]}"
    model = f"s3://{BUCKET}/models/{name}/model.tar.gz"
    out = f"s3://{BUCKET}/transform/{name}/"
    # moto writes no output: the .out file is seeded where SageMaker would put it
    client("s3").put_object(Bucket=BUCKET, Key=f"transform/{name}/rows.csv.out", Body=b"0.1\n0.9\n")
    result = run("transform", str(root), "--model", model, "--image", IMAGE, "--input",
                 str(inputs), "--output", out, "--content-type", "text/csv", "--split-type",
                 "Line", "--strategy", "MultiRecord", "--max-payload", "6", "--max-concurrent",
                 "4", "--assemble-with", "Line", "--accept", "text/csv", "--input-filter",
                 "$[1:]", "--output-filter", "$[0,-1]", "--join-source", "Input",
                 "--instance-count", "2", "--job-name", name, "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    described = client("sagemaker").describe_transform_job(TransformJobName=name)
    prefix = f"s3://{BUCKET}/byoc/{_project(root).name}"
    assert described["ModelName"] == name
    assert described["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                        "S3Uri": f"{prefix}/transform-input/batch/"}},
        "ContentType": "text/csv", "SplitType": "Line"}
    assert described["TransformOutput"] == {"S3OutputPath": out, "Accept": "text/csv",
                                            "AssembleWith": "Line"}
    assert described["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}
    assert (described["BatchStrategy"], described["MaxPayloadInMB"],
            described["MaxConcurrentTransforms"]) == ("MultiRecord", 6, 4)
    assert described["DataProcessing"] == {"InputFilter": "$[1:]", "OutputFilter": "$[0,-1]",
                                           "JoinSource": "Input"}
    model_described = client("sagemaker").describe_model(ModelName=name)
    assert model_described["PrimaryContainer"]["Image"] == IMAGE
    assert model_described["PrimaryContainer"]["ModelDataUrl"] == model
    target = root / ".byoc" / "transforms" / name
    assert result.stdout.strip() == str(target)
    assert (target / "rows.csv.out").read_bytes() == b"0.1\n0.9\n"


def test_transform_limits(aws: str, tmp_path: Path) -> None:
    result = run("transform", "--model-name", "m", "--input", "s3://b/in/", "--max-payload", "50",
                 "--max-concurrent", "4", "--dry-run")
    assert result.exit_code == 2
    assert "--max-concurrent x --max-payload must be at most 100" in one_line_error(result)


def test_deploy_predict_delete(aws: str, moto_url: str, tmp_path: Path) -> None:
    name = f"ep-{uuid.uuid4().hex[:6]}"
    model = f"s3://{BUCKET}/models/{name}/model.tar.gz"
    result = run("deploy", "--model", model, "--image", IMAGE, "--role", ROLE, "--endpoint-name",
                 name, "--instance-type", "ml.c5.large", "--instance-count", "2", "--env",
                 "MODEL_SERVER_WORKERS=2", "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    sm = client("sagemaker")
    # moto: InService at once (no container ran)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    assert sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"] == [{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.c5.large",
        "InitialInstanceCount": 2, "ContainerStartupHealthCheckTimeoutInSeconds": 600}]
    container = sm.describe_model(ModelName=name)["PrimaryContainer"]
    assert (container["Image"], container["ModelDataUrl"], container["Environment"]) == (
        IMAGE, model, {"MODEL_SERVER_WORKERS": "2"})
    assert f"byoc sagemaker predict {name} payload.csv" in result.stderr
    # moto answers InvokeEndpoint with what was queued, whatever the endpoint
    queued = {"results": [{"Body": "0.93\n", "ContentType": "text/csv"}]}
    request = urllib.request.Request(f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
                                     data=json.dumps(queued).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()
    payload = tmp_path / "payload.csv"
    payload.write_text("5.1,3.5\n")
    result = run("predict", name, str(payload))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "0.93\n"
    big = tmp_path / "big.csv"
    big.write_bytes(b"1" * (6 * 1024 * 1024 + 1))
    result = run("predict", name, str(big))
    assert result.exit_code == 1
    assert "SageMaker accepts at most 6291456 (6 MiB)" in one_line_error(result)
    result = run("delete", name)
    assert result.exit_code == 0, result.stderr
    assert name not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert name not in [c["EndpointConfigName"] for c in
                        sm.list_endpoint_configs()["EndpointConfigs"]]
    assert name not in [m["ModelName"] for m in sm.list_models()["Models"]]


def test_deploy_a_training_job_and_a_local_model(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    job = f"dep-{uuid.uuid4().hex[:6]}"
    result = run("train", str(root), "--image", IMAGE, "--job-name", job, "--detach")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{job}\n"  # --detach: the name, at once
    assert f"byoc sagemaker logs {job} --follow" in result.stderr
    result = run("deploy", job, "--role", ROLE, "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    container = client("sagemaker").describe_model(ModelName=job)["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"].endswith(f"/output/{job}/output/model.tar.gz")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(model_tar())
    result = run("deploy", "--model", str(archive), "--image", IMAGE, "--role", ROLE,
                 "--endpoint-name", f"{job}-local", "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    url = client("sagemaker").describe_model(ModelName=f"{job}-local")["PrimaryContainer"][
        "ModelDataUrl"]
    assert url.startswith(f"s3://{BUCKET}/") and url.endswith("/model.tar.gz")
    bucket, key = url[5:].split("/", 1)
    assert client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == model_tar()


# ---- errors as AWS sends them (scripted server) ------------------------------------------------

@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Points every call at a scripted server; the test sets its answers."""
    with fake.fake_aws({"GetCallerIdentity": fake.sts_identity()}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID0000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_REGION", REGION)
        yield server


def train_s3_only(*extra: str) -> Any:
    """A train whose channel is in S3 already: the only SageMaker call is CreateTrainingJob."""
    return run("train", "--image", IMAGE, "--role", ROLE, "--bucket", "bkt", "--channel",
               "training=s3://bkt/data/", "--job-name", "err-1", "--detach", *extra)


DENIED = (f"User: arn:aws:iam::{ACCOUNT}:user/ci is not authorized to perform:"
          " sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:"
          f"{ACCOUNT}:training-job/err-1 because no identity-based policy allows it")


@pytest.mark.parametrize(("answer", "expected"), [
    (fake.error("AccessDeniedException", DENIED),
     "Error: access denied calling sagemaker:CreateTrainingJob: the AWS identity in use needs"
     " the sagemaker:CreateTrainingJob permission"),
    (fake.error("ValidationException", "Could not access model data at s3://bkt/data/."),
     "Error: sagemaker:CreateTrainingJob failed: ValidationException: Could not access model"
     " data at s3://bkt/data/."),
    (fake.error("ResourceLimitExceeded", "The account-level service limit 'ml.p4d.24xlarge for"
                " training job usage' is 0 Instances"),
     "Error: sagemaker:CreateTrainingJob failed: ResourceLimitExceeded: The account-level"
     " service limit 'ml.p4d.24xlarge for training job usage' is 0 Instances (ask for a higher"
     " quota in the Service Quotas console, or use fewer or other instances)"),
    (fake.error("ExpiredTokenException", "The security token included in the request is expired"),
     "Error: the AWS credentials have expired (ExpiredTokenException): refresh them (e.g. `aws"
     " sso login`, or new session credentials) and retry"),
])
def test_create_errors_are_one_line(scripted: Any, answer: Any, expected: str,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scripted.answers["CreateTrainingJob"] = [answer]
    result = train_s3_only()
    assert result.exit_code == 1
    detail = DENIED if "access denied" in expected else None  # AWS's message, under the line
    assert one_line_error(result, detail) == expected
    assert scripted.operations().count("CreateTrainingJob") == 1  # not retried
    no_secret_in(result.stdout, result.stderr)


def test_throttling_is_retried_with_backoff(scripted: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    throttled = fake.error("ThrottlingException", "Rate exceeded")
    scripted.answers["CreateTrainingJob"] = [throttled, throttled, fake.ok(
        {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/err-1"})]
    started = time.monotonic()
    result = train_s3_only()
    assert result.exit_code == 0, result.stderr
    assert scripted.operations().count("CreateTrainingJob") == 3
    print(f"two throttled attempts, then success, in {time.monotonic() - started:.2f} s")


def test_throttling_that_never_ends_is_one_line(scripted: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scripted.answers["CreateTrainingJob"] = [fake.error("ThrottlingException", "Rate exceeded")]
    result = train_s3_only()
    assert result.exit_code == 1
    line = one_line_error(result)
    assert line.startswith("Error: sagemaker:CreateTrainingJob failed: ThrottlingException: Rate"
                           " exceeded")
    assert "byoc's retries" in line
    assert scripted.operations().count("CreateTrainingJob") == 4  # bounded: MAX_ATTEMPTS


@pytest.mark.parametrize("argv", [
    ["describe", "some-job"],
    ["logs", "some-job"],
    ["train", "--image", IMAGE, "--channel", "training=s3://bkt/data/", "--dry-run"],
])
def test_a_broken_byoc_toml_around_is_reported_not_ignored(
        scripted: Any, argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that need no project (an --image, a job name) still use the one around, so a
    byoc.toml they cannot read is an error, before anything is sent to AWS."""
    (tmp_path / "byoc.toml").write_text('[project\nname = "broken"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = run(*argv)
    assert result.exit_code == 2, result.stderr
    line = one_line_error(result)
    assert line.startswith("Error: cannot read ") and "byoc.toml" in line
    assert scripted.operations() == []


def test_no_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("train", "--image", IMAGE, "--channel", "training=s3://bkt/data/", "--dry-run")
    assert result.exit_code == 2
    assert one_line_error(result).startswith("Error: no AWS region: pass --region, set AWS_REGION")


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_dry_run_needs_no_credentials_and_no_pushed_image(
        scripted: Any, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere and nothing pushed: the request still prints, <placeholders>
    where the account and the image's digest go, each said on stderr. The scripted server (not
    moto) shows that nothing was sent to AWS."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    root = write_project(tmp_path / "p", role=None)
    name = (root / "byoc.toml").read_text().split('"')[1]
    config = tmp_path / "tune.json"
    config.write_text(json.dumps({"HyperParameterTuningJobConfig": {
        "Strategy": "Random", "ResourceLimits": {"MaxNumberOfTrainingJobs": 2,
                                                 "MaxParallelTrainingJobs": 1},
        "ParameterRanges": {"IntegerParameterRanges": [
            {"Name": "max_leaf_nodes", "MinValue": "2", "MaxValue": "8"}]}}}))
    extra = ["--config", str(config), "--job-name", "dry-1"] if command == "tune" else []
    result = run(command, str(root), "--role", "MyRole", "--dry-run", *extra)
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    job = request["TrainingJobDefinition"] if command == "tune" else request
    assert job["RoleArn"] == "arn:aws:iam::<account>:role/MyRole"
    assert job["OutputDataConfig"]["S3OutputPath"].startswith(
        f"s3://sagemaker-{REGION}-<account>/byoc/{name}/output/")
    assert job["AlgorithmSpecification"]["TrainingImage"] == \
        f"<account>.dkr.ecr.{REGION}.amazonaws.com/{name}@<digest-of-byoc-push>"
    notes = result.stderr.splitlines()
    assert notes[0].startswith("note: dry run: <account> stands for the AWS account, which needs"
                               " credentials (no AWS credentials found): pass --bucket and --role"
                               " as an ARN"), result.stderr
    assert notes[1].startswith(f"note: dry run: <digest-of-byoc-push> stands for the digest of"
                               f" {name}:latest, which has not been pushed to ECR")
    assert "--image URI" in notes[1] and len(notes) == 2
    assert scripted.calls == []  # nothing reached AWS
    # with the bucket, a role ARN and an image given, nothing is a placeholder
    result = run(command, str(root), "--role", ROLE, "--bucket", "my-bucket", "--image", IMAGE,
                 "--dry-run", *extra)
    assert result.exit_code == 0, result.stderr
    assert "<" not in result.stdout and result.stderr == ""
    if command == "tune":  # the file's role and instance type, unless the command line names others
        body = json.loads(config.read_text())
        body["TrainingJobDefinition"] = {"RoleArn": ROLE,
                                         "ResourceConfig": {"InstanceType": "ml.c5.2xlarge",
                                                            "InstanceCount": 2,
                                                            "VolumeSizeInGB": 10}}
        config.write_text(json.dumps(body))
        result = run(command, str(root), "--bucket", "my-bucket", "--image", IMAGE, "--dry-run",
                     *extra)
        assert result.exit_code == 0, result.stderr
        job = json.loads(result.stdout)["TrainingJobDefinition"]
        assert job["RoleArn"] == ROLE
        assert job["ResourceConfig"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2,
                                         "VolumeSizeInGB": 10}
        result = run(command, str(root), "--bucket", "my-bucket", "--image", IMAGE, "--dry-run",
                     "--role", "Other", "--instance-type", "ml.m5.large", *extra)
        job = json.loads(result.stdout)["TrainingJobDefinition"]
        assert job["RoleArn"].endswith(":role/Other")
        assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large"


def test_no_role(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", role=None)
    result = run("train", str(root), "--image", IMAGE, "--dry-run")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert line.startswith("Error: no SageMaker execution role: pass --role ARN")
    assert "never creates roles" in line


def test_role_name_becomes_an_arn_in_the_callers_account(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", role=None)
    result = run("train", str(root), "--image", IMAGE, "--dry-run", "--role", "MySageMakerRole")
    assert json.loads(result.stdout)["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/MySageMakerRole"


def test_missing_bucket(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    result = run("train", str(root), "--image", IMAGE, "--bucket", "no-such-bucket-byoc")
    assert result.exit_code == 2
    assert one_line_error(result) == (
        "Error: S3 bucket no-such-bucket-byoc does not exist in this account: create it (`aws s3"
        " mb s3://no-such-bucket-byoc --region us-east-1`), or name another with --bucket or"
        ' `bucket = "..."` under [sagemaker] in byoc.toml')


def test_stop_sends_stop_training_job(scripted: Any) -> None:
    """moto does not implement StopTrainingJob; the scripted server records the call."""
    scripted.answers["StopTrainingJob"] = [fake.ok({})]
    result = run("stop", "job-1")
    assert result.exit_code == 0, result.stderr
    assert scripted.calls[-1] == ("StopTrainingJob", {"TrainingJobName": "job-1"})


HTML_500 = ("<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n<body>\n"
            "<h1>Internal Server Error</h1>\n"
            + "<p>The server encountered an internal error and was unable to complete your"
              " request.</p>\n" * 40 + "</body></html>\n")


@pytest.mark.parametrize(("command", "operation"), [
    (["stop", "job-1"], "StopTrainingJob"),
    (["describe", "job-1"], "DescribeTrainingJob"),
])
def test_an_html_error_page_is_one_line(scripted: Any, command: list[str], operation: str) -> None:
    """Not moto: the scripted server answers HTTP 500 with an HTML page, as a load balancer or
    proxy in front of the service does, in place of AWS's JSON error."""
    scripted.answers[operation] = [(500, HTML_500)]
    result = run(*command)
    assert result.exit_code == 1
    assert one_line_error(result) == (
        f"Error: sagemaker:{operation} failed: AWS answered HTTP 500 (500 Internal Server Error)"
        " after byoc's retries: a problem on AWS's side or on the way there; retry later")
    assert "<" not in result.stderr


# ---- watching a job that moves (scripted: moto's jobs never do) ---------------------------------

def _job(status: str, secondary: str, transitions: list[tuple[str, str]], **extra: Any) -> Any:
    return fake.ok({
        "TrainingJobName": "watch-1", "TrainingJobArn": "arn:aws:sagemaker:x", "TrainingJobStatus":
        status, "SecondaryStatus": secondary, "CreationTime": 1700000000,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "SecondaryStatusTransitions": [{"Status": s, "StatusMessage": m, "StartTime": 1700000000 + i}
                                       for i, (s, m) in enumerate(transitions)], **extra})


STARTING = ("Starting", "Preparing the instances for training")
DOWNLOADING = ("Downloading", "Downloading input data")
TRAINING = ("Training", "Training image download completed. Training in progress.")
INTERRUPTED = ("Interrupted", "Spot capacity was reclaimed")
UPLOADING = ("Uploading", "Uploading generated training model")


def test_watch_prints_each_transition_once_then_metrics_billing_and_spot_savings(
        scripted: Any) -> None:
    scripted.answers["DescribeTrainingJob"] = [
        _job("InProgress", "Starting", [STARTING]),
        _job("InProgress", "Training", [STARTING, DOWNLOADING, TRAINING]),
        _job("InProgress", "Training", [STARTING, DOWNLOADING, TRAINING, INTERRUPTED, STARTING,
                                        DOWNLOADING, TRAINING]),
        _job("Completed", "Completed", [STARTING, DOWNLOADING, TRAINING, INTERRUPTED, STARTING,
                                        DOWNLOADING, TRAINING, UPLOADING, ("Completed", "")],
             EnableManagedSpotTraining=True, TrainingTimeInSeconds=500, BillableTimeInSeconds=100,
             FinalMetricDataList=[{"MetricName": "validation:loss", "Value": 0.25,
                                   "Timestamp": 1700000500}])]
    scripted.answers["DescribeLogStreams"] = [
        fake.ok({"logStreams": []}),
        fake.ok({"logStreams": [{"logStreamName": "watch-1/algo-1-1700000001"},
                                {"logStreamName": "watch-1/algo-2-1700000002"}]})]
    scripted.answers["GetLogEvents"] = [
        fake.ok({"events": [{"timestamp": 1, "message": "epoch=1 val_loss=0.5"}],
                 "nextForwardToken": "f/1"}),
        fake.ok({"events": [], "nextForwardToken": "f/1"}),
        fake.ok({"events": [{"timestamp": 2, "message": "ready"}], "nextForwardToken": "f/2"}),
        fake.ok({"events": [], "nextForwardToken": "f/2"}),
        fake.ok({"events": [], "nextForwardToken": "f/2"})]
    said: list[str] = []
    logged: list[str] = []
    outcome = training.watch(Aws.connect(REGION), "watch-1", jobs_dir=None,
                             log=lambda host, line: logged.append(f"{host} | {line}"),
                             say=said.append, poll_seconds=0.01)
    statuses = [line.split(" ", 2)[2] for line in said if line[:2] == "20"]
    assert statuses == [
        "Starting - Preparing the instances for training", "Downloading - Downloading input data",
        "Training - Training image download completed. Training in progress.",
        "Interrupted - Spot capacity was reclaimed", "Starting - Preparing the instances for"
        " training", "Downloading - Downloading input data",
        "Training - Training image download completed. Training in progress.",
        "Uploading - Uploading generated training model", "Completed"]
    assert logged == ["algo-1 | epoch=1 val_loss=0.5", "algo-2 | ready"]
    assert outcome.metrics == {"validation:loss": 0.25}
    assert "metric validation:loss = 0.25" in said
    assert "billable seconds: 100 per instance, 200 for 2 instance(s)" in said
    assert "managed spot training savings: 80.0%" in said
    # the log streams were asked for by the job's prefix, in the training log group
    streams = [body for op, body in scripted.calls if op == "DescribeLogStreams"]
    assert streams[0] == {"logGroupName": "/aws/sagemaker/TrainingJobs",
                          "logStreamNamePrefix": "watch-1/"}


def test_watch_failed_and_stopped_jobs(scripted: Any) -> None:
    from byoc.errors import TrainingJobFailed, TrainingJobStopped

    scripted.answers["DescribeTrainingJob"] = [_job(
        "Failed", "Failed", [STARTING, ("Failed", "")],
        FailureReason="AlgorithmError: max_leaf_nodes must be at least 2")]
    scripted.answers["DescribeLogStreams"] = [fake.error("ResourceNotFoundException", "no group")]
    with pytest.raises(TrainingJobFailed, match="AlgorithmError: max_leaf_nodes must be"):
        training.watch(Aws.connect(REGION), "watch-1", jobs_dir=None, log=lambda h, m: None,
                       say=lambda line: None, poll_seconds=0.01)
    scripted.answers["DescribeTrainingJob"] = [_job("Stopped", "MaxRuntimeExceeded", [STARTING])]
    with pytest.raises(TrainingJobStopped, match=r"stopped \(MaxRuntimeExceeded\)") as caught:
        training.watch(Aws.connect(REGION), "watch-1", jobs_dir=None, log=lambda h, m: None,
                       say=lambda line: None, poll_seconds=0.01)
    assert caught.value.exit_code == 3


def test_ctrl_c_detaches_and_says_how_to_reattach(tmp_path: Path) -> None:
    """A real SIGINT to a real byoc process following a job that stays InProgress."""
    with fake.fake_aws({"DescribeTrainingJob": _job("InProgress", "Training", [STARTING, TRAINING]),
                        "DescribeLogStreams": fake.ok({"logStreams": []})}) as server:
        env = {**os.environ, "AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
               "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
               "AWS_EC2_METADATA_DISABLED": "true"}
        process = subprocess.Popen(["byoc", "sagemaker", "logs", "watch-1", "--follow",
                                    "--poll-interval", "0.1"], cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "Starting - Preparing the instances for training" in first
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 130
    assert rest.strip().splitlines()[-1] == (
        "Error: detached: training job watch-1 keeps running on SageMaker. Follow it: byoc"
        " sagemaker logs watch-1 --follow; stop it: byoc sagemaker stop watch-1")
    assert "Traceback" not in rest


# ---- the image ---------------------------------------------------------------------------------

def test_image_is_pushed_only_when_ecr_lacks_it(aws: str, tmp_path: Path) -> None:
    from byoc.sagemaker import image

    project = _project(write_project(tmp_path / "p"))
    repository = f"demo-{uuid.uuid4().hex[:6]}"
    ecr = client("ecr")
    ecr.create_repository(repositoryName=repository)
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": "sha256:" + "1" * 64}, "layers": []})
    digest = ecr.put_image(repositoryName=repository, imageManifest=manifest,
                           imageTag="v1")["image"]["imageId"]["imageDigest"]
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}@{digest}"
    pushes: list[dict[str, Any]] = []

    class Pushed:
        uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}@sha256:{'2' * 64}"

    def push(project: Any, **kwargs: Any) -> Pushed:
        pushes.append(kwargs)
        return Pushed()

    connection = Aws.connect(REGION)
    local_id = {"id": "sha256:local-1"}

    def resolve(**kwargs: Any) -> str:
        return image.resolve(connection, project, None, say=lambda line: None, push=push,
                             local_image_id=lambda reference: local_id["id"], **kwargs)

    # a dry run pushes nothing: the image as byoc push will push it, its digest a placeholder
    assert resolve(dry_run=True) == (f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/"
                                     f"{project.image}@<digest-of-byoc-push>")
    assert connection.placeholders and pushes == []
    image.remember(project, "sha256:local-1", uri)
    assert resolve() == uri and pushes == []  # the same local image, and ECR holds the digest
    assert resolve(dry_run=True) == uri
    local_id["id"] = "sha256:local-2"  # rebuilt since: pushed first
    assert resolve() == Pushed.uri and len(pushes) == 1
    assert pushes[0]["region"] == REGION
    assert image.recorded(project) == {"image_id": "sha256:local-2", "uri": Pushed.uri}
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": digest}])
    image.remember(project, "sha256:local-2", uri)  # recorded, but gone from ECR: pushed again
    assert resolve() == Pushed.uri and len(pushes) == 2
    assert image.resolve(connection, project, "any/uri:given", say=print, push=push) == \
        "any/uri:given"  # --image is used as given
    assert len(pushes) == 2


# ---- the same definition, run locally ---------------------------------------------------------

#: One job's options, as a user types them for both commands.
SAME_JOB = ("--hyperparameter", "epochs=3", "--hyperparameter", "epoch_seconds=0.05",
            "--instance-count", "2", "--distribution", "training=ShardedByS3Key",
            "--shuffle-seed", "training=7", "--env", "LOG_LEVEL=INFO", "--max-run", "5m",
            "--spot", "--max-wait", "10m", "--metric-definition", r"train:loss=loss=([-+0-9.eE]+)",
            "--job-name", "same-1")
#: Where the request of a local run and a SageMaker run of the same command line may differ.
MAY_DIFFER = {"AlgorithmSpecification.TrainingImage", "RoleArn", "ResourceConfig.InstanceType",
              "InputDataConfig.0.DataSource.S3DataSource.S3Uri", "OutputDataConfig.S3OutputPath",
              "CheckpointConfig.S3Uri"}


def _parsed(group: str, argv: list[str], project: Any) -> jobdef.JobDefinition:
    """The definition a command builds from *argv*, parsed by that command's own options."""
    from byoc.cli.jobdef import definition_from_options

    command = cli.commands[group].commands["train"]  # type: ignore[attr-defined]
    with command.make_context("train", list(argv)) as context:
        return definition_from_options(project, dict(context.params))[0]


def test_one_command_line_one_request_locally_and_on_sagemaker(aws: str, tmp_path: Path) -> None:
    """The same job options, parsed by byoc local train and by byoc sagemaker train: one
    definition, and requests side by side that differ only in what must differ."""
    import shutil

    root = Path(shutil.copytree(FIXTURES / "epochs", tmp_path / "epochs"))
    (root / "byoc.toml").write_text((root / "byoc.toml").read_text() +
                                    '\n[[metric_definitions]]\nName = "epoch"\n'
                                    'Regex = "epoch ([0-9]+):"\n')
    argv = [*SAME_JOB, "--checkpoint-uri", str(tmp_path / "ckpt")]
    project = _project(root)
    definition = _parsed("local", argv, project)
    assert _parsed("sagemaker", [*argv, "--image", IMAGE], project) == definition
    assert definition.local_gaps() == []
    result = run("train", str(root), *argv, "--image", IMAGE, "--role", ROLE, "--dry-run")
    assert result.exit_code == 0, result.stderr
    remote = json.loads(result.stdout)
    validate("CreateTrainingJob", remote)
    local_request = definition.local_request(job_name="same-1", image="byoc-test-epochs:latest",
                                             output_dir=tmp_path / "jobs")
    differing = dict(_diff(local_request, remote))
    print("\n".join(f"{path}:\n  local     {a}\n  sagemaker {b}" for path, (a, b) in differing.items()))
    assert set(differing) == MAY_DIFFER
    prefix = f"s3://{BUCKET}/byoc/epochs"
    assert differing["CheckpointConfig.S3Uri"] == (
        (tmp_path / "ckpt").resolve().as_uri() + "/", f"{prefix}/checkpoints/same-1/")
    assert remote["StoppingCondition"] == {"MaxRuntimeInSeconds": 300, "MaxWaitTimeInSeconds": 600}
    assert remote["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "epoch", "Regex": "epoch ([0-9]+):"},  # byoc.toml's, then the options'
        {"Name": "train:loss", "Regex": "loss=([-+0-9.eE]+)"}]
    assert remote["InputDataConfig"][0]["ShuffleConfig"] == {"Seed": 7}


def test_the_same_command_line_runs_locally_and_dry_runs_on_sagemaker(aws: str,
                                                                       tmp_path: Path) -> None:
    """`byoc local train ARGS` (process backend) runs the job the request of `byoc sagemaker
    train ARGS --dry-run` describes: the same hyperparameters, hosts, channels, time limits, spot,
    checkpoints, environment and metric definitions."""
    import shutil

    root = Path(shutil.copytree(FIXTURES / "epochs", tmp_path / "epochs"))
    checkpoints = tmp_path / "ckpt"
    argv = [*SAME_JOB, "--checkpoint-uri", str(checkpoints)]
    ran = CliRunner().invoke(cli, ["local", "train", str(root), *argv, "--backend", "process",
                                   "--output-dir", str(tmp_path / "jobs")])
    assert ran.exit_code == 0, ran.stderr
    result = run("train", str(root), *argv, "--image", IMAGE, "--role", ROLE, "--dry-run")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    record = json.loads((tmp_path / "jobs" / "same-1" / "job.json").read_text())
    for key in ("HyperParameters", "StoppingCondition", "EnableManagedSpotTraining", "Environment"):
        assert record[key] == request[key], key
    assert request["HyperParameters"] == {"epochs": "3", "epoch_seconds": "0.05"}
    assert record["ResourceConfig"]["InstanceCount"] == request["ResourceConfig"]["InstanceCount"] == 2
    assert record["CheckpointConfig"] == {"S3Uri": checkpoints.resolve().as_uri() + "/",
                                          "LocalPath": request["CheckpointConfig"]["LocalPath"]}
    assert record["AlgorithmSpecification"]["MetricDefinitions"] == \
        request["AlgorithmSpecification"]["MetricDefinitions"]
    [ran_channel] = record["InputDataConfig"]
    [asked] = request["InputDataConfig"]
    assert ran_channel["ChannelName"] == asked["ChannelName"] == "training"
    assert ran_channel["InputMode"] == request["AlgorithmSpecification"]["TrainingInputMode"]
    assert ran_channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] == \
        asked["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    # the job really ran with them: both hosts checkpointed every epoch, the metric was read
    assert sorted(path.name for path in checkpoints.iterdir()) == [
        f"{host}-epoch-{epoch:04d}.json" for host in ("algo-1", "algo-2") for epoch in (2, 3)]
    assert record["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert record["FinalMetricDataList"][0]["Value"] == pytest.approx(1 / 3, rel=1e-4)
    assert record["TrainingJobStatus"] == "Completed"


def test_the_project_file_feeds_the_sagemaker_request_as_it_feeds_a_local_run(
        aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    (root / "byoc.toml").write_text((root / "byoc.toml").read_text() + (
        '\n[train]\ninput_mode = "Pipe"\n[train.channels.training]\nrecord_wrapper = "RecordIO"\n'
        'shuffle_seed = 3\n\n[[metric_definitions]]\nName = "loss"\nRegex = "loss=([0-9.]+)"\n'))
    result = run("train", str(root), "--image", IMAGE, "--dry-run", "--shuffle-seed", "training=9")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "loss", "Regex": "loss=([0-9.]+)"}]
    [channel] = request["InputDataConfig"]
    assert (channel["RecordWrapperType"], channel["ShuffleConfig"]) == ("RecordIO", {"Seed": 9})
    definition = _parsed("local", ["--shuffle-seed", "training=9"], _project(root))
    training = definition.channel("training")
    assert (definition.input_mode, training.record_wrapper, training.shuffle_seed) == (
        "Pipe", "RecordIO", 9)
    assert [m.name for m in definition.metric_definitions] == ["loss"]
    (root / "byoc.toml").write_text((root / "byoc.toml").read_text() +
                                    '\n[train.channels.validation]\ninput_mode = "File"\n')
    result = run("train", str(root), "--image", IMAGE, "--dry-run")
    assert one_line_error(result) == ("Error: byoc.toml [train.channels.validation] names channel"
                                      " 'validation', which is not a channel of this job")


def test_the_definition_a_local_run_takes_carries_every_option(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    argv = ["--input-mode", "Pipe", "--channel-input-mode", "training=FastFile", "--spot",
            "--max-run", "90s", "--max-wait", "1.5m", "--checkpoint-uri", str(tmp_path / "ck"),
            "--checkpoint-local-path", "/opt/ml/checkpoints/run", "--metric-definition",
            "loss=loss=([0-9.]+)", "--env", "A=1", "--instance-count", "3"]
    definition = _parsed("local", argv, _project(root))
    assert {c.name: c.input_mode for c in definition.channels} == {"training": "FastFile"}
    assert (definition.spot, definition.max_runtime, definition.max_wait) == (True, 90, 90)
    assert definition.local_checkpoint == tmp_path / "ck"
    assert definition.checkpoint_local_path == "/opt/ml/checkpoints/run"
    assert [(m.name, m.regex) for m in definition.metric_definitions] == [("loss", "loss=([0-9.]+)")]
    assert (dict(definition.environment), definition.instance_count) == ({"A": "1"}, 3)
    assert {c.name: Path(c.source) for c in definition.channels} == {
        "training": root / "local_test/test_dir/input/data/training"}


def test_a_job_without_channels_has_no_input_data_config() -> None:
    definition, _ = jobdef.from_project(None, channels={})
    request = definition.training_request(job_name="none-1", image=IMAGE, role_arn=ROLE,
                                          instance_type="ml.m5.xlarge", channel_uris={},
                                          output_path="s3://bkt/out/")
    assert "InputDataConfig" not in request
    validate("CreateTrainingJob", request)
    assert definition.channels == ()


def test_an_s3_checkpoint_or_channel_is_sagemaker_only(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    for extra, message in ((["--checkpoint-uri", "s3://bkt/ckpt"], "--checkpoint-uri s3://bkt/ckpt"
                            " is in S3; a local run keeps checkpoints in a local directory"),
                           (["--channel", "training=s3://bkt/data/"], "channel 'training' is in"
                            " S3; a local run needs a local path")):
        ran = CliRunner().invoke(cli, ["local", "train", str(root), "--backend", "process",
                                       "--output-dir", str(tmp_path / "jobs"), *extra])
        assert ran.exit_code == 2, ran.stderr
        assert ran.stderr.strip() == f"Error: {message}"
    assert not (tmp_path / "jobs").exists()


def test_a_local_checkpoint_directory_seeds_the_sagemaker_job(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    (checkpoints / "algo-1-epoch-0002.json").write_text("{}")
    job = f"seed-{uuid.uuid4().hex[:6]}"
    result = run("train", str(root), "--image", IMAGE, "--checkpoint-uri", str(checkpoints),
                 "--job-name", job, "--detach")
    assert result.exit_code == 0, result.stderr
    prefix = f"byoc/{_project(root).name}/checkpoints/{job}"
    described = client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/{prefix}/"
    body = client("s3").get_object(Bucket=BUCKET, Key=f"{prefix}/algo-1-epoch-0002.json")["Body"]
    assert body.read() == b"{}"



def test_the_definition_runs_locally_with_what_the_request_says(tmp_path: Path) -> None:
    """The probe project reports the /opt/ml config it was given: a local run of a definition
    gives the container what the SageMaker request of that definition asks for."""
    import shutil

    from byoc.project import Project

    probe = Project.load(Path(shutil.copytree(FIXTURES / "probe", tmp_path / "probe")))
    definition, _ = jobdef.from_project(probe, instance_count=2, environment={"PROBE_LEVEL": "INFO"},
                                        distribution={"training": "ShardedByS3Key"},
                                        hyperparameters={"depth": "3"})
    assert definition.local_gaps() == []
    result = local.train(definition, backend=local.choose_backend("process", probe, None),
                         project=probe,
                         run=local.LocalRun(output_dir=tmp_path / "jobs", job_name="probe-def-1"))
    with tarfile.open(result.model_archive) as tar:
        member = tar.extractfile("algo-2.json")
        assert member is not None
        report = json.loads(member.read())
    request = definition.training_request(
        job_name="probe-def-1", image=IMAGE, role_arn=ROLE, instance_type="ml.m5.xlarge",
        channel_uris={"training": "s3://bkt/channels/training/"}, output_path="s3://bkt/out/")
    assert report["hyperparameters"] == request["HyperParameters"] == {"depth": "3"}
    [channel] = request["InputDataConfig"]
    assert report["inputdataconfig"] == {"training": {
        "ContentType": channel["ContentType"],
        "TrainingInputMode": request["AlgorithmSpecification"]["TrainingInputMode"],
        "S3DistributionType": channel["DataSource"]["S3DataSource"]["S3DataDistributionType"],
        "RecordWrapperType": "None"}}
    assert report["resourceconfig"]["hosts"] == ["algo-1", "algo-2"]
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert report["env"]["PROBE_LEVEL"] == request["Environment"]["PROBE_LEVEL"] == "INFO"
    spot = dataclasses.replace(definition, spot=True, max_wait=90000, input_mode="Pipe")
    assert spot.local_gaps() == []
    assert dataclasses.replace(definition, channels=(jobdef.ChannelDefinition(
        "training", str(probe.root), s3_data_type="ManifestFile"),)).local_gaps() == [
            "S3DataType ManifestFile (channel 'training')"]


def test_logs_and_describe(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    job = f"logs-{uuid.uuid4().hex[:6]}"
    assert run("train", str(root), "--image", IMAGE, "--job-name", job, "--detach").exit_code == 0
    seed_logs(job, {"algo-1": ["one", "two"], "algo-2": ["three"]})  # moto writes none
    seed_logs(f"{job}0", {"algo-1": ["another job's line"]})
    result = run("logs", job)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "algo-1 | one\nalgo-1 | two\nalgo-2 | three\n"
    result = run("describe", job)
    assert result.exit_code == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["TrainingJobName"] == job and described["RoleArn"] == ROLE
    assert "ResponseMetadata" not in described
    no_secret_in(result.stdout, result.stderr)
    result = run("describe", "no-such-job")
    assert result.exit_code == 1
    assert one_line_error(result).startswith("Error: sagemaker:DescribeTrainingJob failed:")


def test_logs_of_a_job_without_logs_or_of_no_job(aws: str, tmp_path: Path) -> None:
    """moto's SageMaker writes no logs and ends a job Completed at once: a job with no streams."""
    root = write_project(tmp_path / "p")
    job = f"nologs-{uuid.uuid4().hex[:6]}"
    assert run("train", str(root), "--image", IMAGE, "--job-name", job, "--detach").exit_code == 0
    result = run("logs", job)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == (f"training job {job} has no logs: it ended Completed (Completed)"
                             " before its containers wrote any\n")
    result = run("logs", f"{job}-missing")
    assert result.exit_code == 2
    assert one_line_error(result) == (f"Error: no training job '{job}-missing' in {REGION} (check"
                                      " the name, --region and --profile)")


def test_logs_of_a_starting_job_say_it_has_none_yet(scripted: Any) -> None:
    """Scripted (moto's jobs never start): no log group yet, the job InProgress, Starting."""
    scripted.answers["DescribeLogStreams"] = [fake.error("ResourceNotFoundException",
                                                         "The specified log group does not exist.")]
    scripted.answers["DescribeTrainingJob"] = [_job("InProgress", "Starting", [STARTING])]
    result = run("logs", "watch-1")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("training job watch-1 has no logs yet: it is InProgress (Starting);"
                             " logs appear once its containers start (follow it: byoc sagemaker"
                             " logs watch-1 --follow)\n")


def test_clients_have_short_timeouts_and_bounded_retries(aws: str) -> None:
    config = Aws.connect(REGION).client("sagemaker").meta.config
    assert (config.connect_timeout, config.read_timeout) == (5.0, 70.0)
    assert config.retries == {"total_max_attempts": 4, "mode": "standard"}


def _endpoint(status: str, **extra: Any) -> Any:
    return fake.ok({"EndpointName": "ep", "EndpointArn": "arn:aws:sagemaker:x",
                    "EndpointConfigName": "ep", "EndpointStatus": status,
                    "CreationTime": 1700000000, "LastModifiedTime": 1700000000, **extra})


def test_deploy_waits_for_in_service_and_reports_a_failure(scripted: Any) -> None:
    """moto's endpoints are InService at once: the wait is tested on the scripted server."""
    for answer in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
        scripted.answers[answer] = [fake.ok({"ModelArn": "a", "EndpointConfigArn": "a",
                                             "EndpointArn": "a"})]
    scripted.answers["DescribeEndpoint"] = [_endpoint("Creating"), _endpoint("Creating"),
                                            _endpoint("InService")]
    result = run("deploy", "--model", "s3://bkt/model.tar.gz", "--image", IMAGE, "--role", ROLE,
                 "--endpoint-name", "ep", "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("endpoint ep: Creating") == 1
    assert "endpoint ep: InService" in result.stderr
    assert scripted.operations().count("DescribeEndpoint") == 3
    create = dict(scripted.calls)["CreateEndpoint"]
    assert create == {"EndpointName": "ep", "EndpointConfigName": "ep"}
    scripted.answers["DescribeEndpoint"] = [_endpoint("Creating"), _endpoint(
        "Failed", FailureReason="The primary container for production variant AllTraffic did"
        " not pass the ping health check.")]
    result = run("deploy", "--model", "s3://bkt/model.tar.gz", "--image", IMAGE, "--role", ROLE,
                 "--endpoint-name", "ep", "--poll-interval", "0.01")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: endpoint ep is Failed: The primary container for production variant AllTraffic"
        " did not pass the ping health check. (see the log group /aws/sagemaker/Endpoints/ep)")


def test_every_waiter_says_each_new_status_once_and_reports_how_the_wait_ended(scripted: Any) -> None:
    """Endpoints, transform and tuning jobs move through states only on the scripted server."""
    from byoc.errors import AwsError
    from byoc.sagemaker import batch, hosting, tuning

    said: list[str] = []
    connection = Aws.connect(REGION)
    scripted.answers["DescribeEndpoint"] = [_endpoint("Creating")]  # never InService
    with pytest.raises(AwsError, match=r"^endpoint ep is still Creating after 1 s$"):
        hosting.wait_in_service(connection, "ep", say=said.append, poll_seconds=0.01, timeout=1.0)
    assert said == ["endpoint ep: Creating"] and scripted.operations().count("DescribeEndpoint") > 1

    said.clear()
    transform = {"TransformJobName": "tj", "TransformJobArn": "arn:aws:sagemaker:x",
                 "ModelName": "m", "CreationTime": 1700000000,
                 "TransformInput": {"DataSource": {"S3DataSource": {
                     "S3DataType": "S3Prefix", "S3Uri": "s3://bkt/in"}}},
                 "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}
    scripted.answers["DescribeTransformJob"] = [
        fake.ok({**transform, "TransformJobStatus": "InProgress"}),
        fake.ok({**transform, "TransformJobStatus": "InProgress"}),
        fake.ok({**transform, "TransformJobStatus": "Failed", "FailureReason": "ClientError: 413"})]
    with pytest.raises(AwsError, match=r"^transform job tj Failed: ClientError: 413 \(see the log"
                                       r" group /aws/sagemaker/TransformJobs\)$"):
        batch.wait(connection, "tj", say=said.append, poll_seconds=0.01)
    assert said == ["transform job tj: InProgress", "transform job tj: Failed"]

    said.clear()
    tuning_job = {"HyperParameterTuningJobName": "tj", "HyperParameterTuningJobArn": "arn:x",
                  "HyperParameterTuningJobConfig": {
                      "Strategy": "Random", "ResourceLimits": {"MaxParallelTrainingJobs": 1}},
                  "CreationTime": 1700000000, "ObjectiveStatusCounters": {},
                  "TrainingJobStatusCounters": {"Completed": 1, "InProgress": 1}}
    best = {"TrainingJobName": "tj-001-aaaaaaaa", "CreationTime": 1700000000,
            "TrainingJobStatus": "Completed", "TunedHyperParameters": {"x": "0.3"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "loss", "Value": 1.5}}
    scripted.answers["DescribeHyperParameterTuningJob"] = [
        fake.ok({**tuning_job, "HyperParameterTuningJobStatus": "InProgress"}),
        fake.ok({**tuning_job, "HyperParameterTuningJobStatus": "InProgress",
                 "TrainingJobStatusCounters": {"Completed": 2}}),
        fake.ok({**tuning_job, "HyperParameterTuningJobStatus": "Completed",
                 "TrainingJobStatusCounters": {"Completed": 2}, "BestTrainingJob": best})]
    ended = tuning.wait(connection, "tj", say=said.append, poll_seconds=0.01)
    assert ended["BestTrainingJob"]["TrainingJobName"] == "tj-001-aaaaaaaa"
    assert said == ["tuning job tj: InProgress; training jobs Completed 1, InProgress 1",
                    "tuning job tj: InProgress; training jobs Completed 2",
                    "tuning job tj: Completed; training jobs Completed 2",
                    'best training job: tj-001-aaaaaaaa loss = 1.5 with {"x": "0.3"}']


# ---- the project's image, pushed for real (Docker, a local registry standing in for ECR) -------

@pytest.mark.docker
def test_train_pushes_the_project_image_first(aws: str, local_registry: Any, tiny_image: str,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """The AWS half (STS, the ECR repository and token) is moto; the push goes to a local
    registry through byoc push's BYOC_ECR_REGISTRY_OVERRIDE, with the token's password."""
    import base64

    from byoc.push import registry
    from byoc.sagemaker import image

    monkeypatch.setenv(registry.ECR_REGISTRY_OVERRIDE_ENV, local_registry.host)
    repository = tiny_image.rsplit(":", 1)[0]
    root = write_project(tmp_path / "p", image=repository)
    job = f"push-{uuid.uuid4().hex[:6]}"
    result = run("train", str(root), "--job-name", job, "--detach")
    assert result.exit_code == 0, result.stderr
    assert f"pushing {tiny_image} to ECR first" in result.stderr
    request = json.loads((root / ".byoc" / "jobs" / job / "sagemaker.json").read_text())["request"]
    pushed = request["AlgorithmSpecification"]["TrainingImage"]
    auth = base64.b64encode(f"{servers.MOTO_ECR_USER}:{servers.MOTO_ECR_PASSWORD}".encode())
    tags_request = urllib.request.Request(
        f"http://{local_registry.host}/v2/{repository}/tags/list",
        headers={"Authorization": f"Basic {auth.decode()}"})
    with urllib.request.urlopen(tags_request, timeout=30) as response:
        [tag] = json.loads(response.read())["tags"]
    digest, _ = local_registry.manifest(repository, tag, servers.MOTO_ECR_USER)
    assert pushed == f"{local_registry.host}/{repository}@{digest}"
    assert client("sagemaker").describe_training_job(TrainingJobName=job)[
        "AlgorithmSpecification"]["TrainingImage"] == pushed
    assert image.recorded(_project(root))["uri"] == pushed
    no_secret_in(result.stdout, result.stderr)
    assert servers.MOTO_ECR_PASSWORD not in result.stderr + files_text(root / ".byoc")


def test_access_denied_with_moto_enforcing_iam(aws: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A real IAM policy check in moto: the user may upload and describe, not create jobs."""
    from test_ecr import as_user, limited_user

    monkeypatch.delenv("AWS_SESSION_TOKEN")  # the limited user's key has none
    root = write_project(tmp_path / "p")
    key = limited_user(["sts:GetCallerIdentity", "s3:*"])
    with as_user(aws, key):
        result = run("train", str(root), "--image", IMAGE, "--detach")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert errors == ["Error: access denied calling sagemaker:CreateTrainingJob: the AWS identity"
                      " in use needs the sagemaker:CreateTrainingJob permission"]
    assert key["SecretAccessKey"] not in result.stdout + result.stderr


def test_predict_sends_the_body_content_type_and_accept_as_given(scripted: Any,
                                                                 tmp_path: Path) -> None:
    """What InvokeEndpoint puts on the wire (moto answers without looking at the request)."""
    scripted.answers["InvokeEndpoint"] = [(200, '{"predictions": [0.93]}')]
    payload = tmp_path / "payload.csv"
    payload.write_bytes(b"5.1,3.5,1.4,0.2\n")
    result = run("predict", "ep-1", str(payload), "--accept", "application/json")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '{"predictions": [0.93]}'
    [(operation, sent)] = [call for call in scripted.calls if call[0] == "InvokeEndpoint"]
    assert sent == {"path": "/endpoints/ep-1/invocations", "ContentType": "text/csv",
                    "Accept": "application/json", "Body": b"5.1,3.5,1.4,0.2\n"}
    result = run("predict", "ep-1", "-", input="{}")
    assert result.exit_code == 2
    assert one_line_error(result) == "Error: cannot tell the content type; pass --content-type"
    scripted.answers["InvokeEndpoint"] = [fake.error(
        "ModelError", "Received client error (415) from primary with message \"unsupported"
                      " content type\"", 424)]
    result = run("predict", "ep-1", "-", "--content-type", "text/plain", input="x")
    assert result.exit_code == 1
    assert one_line_error(result).startswith(
        "Error: sagemaker:InvokeEndpoint failed: ModelError: Received client error (415)")


def test_a_used_job_name_is_refused_before_anything_is_uploaded(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    (root / ".byoc" / "jobs" / "used-1").mkdir(parents=True)
    result = run("train", str(root), "--image", IMAGE, "--job-name", "used-1")
    assert result.exit_code == 2
    assert one_line_error(result).endswith("used-1 exists already; pick another --job-name")
    assert "Contents" not in client("s3").list_objects_v2(
        Bucket=BUCKET, Prefix=f"byoc/{_project(root).name}/")
    result = run("train", str(root), "--image", IMAGE, "--job-name", "bad_name")
    assert result.exit_code == 2
    assert one_line_error(result).startswith("Error: invalid job name 'bad_name'")


def test_logs_follow_reattaches_and_downloads_the_model(aws: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "p")
    job = f"re-{uuid.uuid4().hex[:6]}"
    assert run("train", str(root), "--image", IMAGE, "--job-name", job, "--detach").exit_code == 0
    # moto's job is Completed already and wrote nothing: the model and a log line are seeded
    client("s3").put_object(Bucket=BUCKET, Key=f"byoc/{_project(root).name}/output/{job}/output/"
                            "model.tar.gz", Body=model_tar(b"reattached"))
    seed_logs(job, {"algo-1": ["done"]})
    monkeypatch.chdir(root)
    result = run("logs", job, "--follow", "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    assert "algo-1 | done" in result.stderr
    assert (root / ".byoc" / "jobs" / job / "model.tar.gz").read_bytes() == model_tar(b"reattached")
    assert local.resolve_model(None, _project(root)) == root / ".byoc" / "jobs" / job / "model.tar.gz"


def test_spot_tuning_takes_the_files_spot_settings_and_refuses_options_that_change_them(
        aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    config = tmp_path / "tune.json"
    spot = json.loads(json.dumps(TUNING))
    spot["TrainingJobDefinition"].update(
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600})
    config.write_text(json.dumps(spot))
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE, "--dry-run",
                 "--job-name", "spot-tune")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    validate("CreateHyperParameterTuningJob", request)
    definition = request["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800,
                                               "MaxWaitTimeInSeconds": 3600}
    assert "CheckpointConfig" not in definition  # no default location shared by every child
    # an option for what the file sets is refused, not dropped or laid over it without a word
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE, "--dry-run",
                 "--max-run", "2h", "--instance-count", "2", "--job-name", "spot-tune")
    assert result.exit_code == 2
    assert one_line_error(result) == (
        "Error: --max-run (the file's StoppingCondition): the request file sets that; change it"
        " there (byoc local tune reads the same file)")


def test_transform_from_a_training_job(aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    job = f"trj-{uuid.uuid4().hex[:6]}"
    assert run("train", str(root), "--image", IMAGE, "--job-name", job, "--detach").exit_code == 0
    result = run("transform", str(root), "--job", job, "--input", "s3://bkt/batch/",
                 "--job-name", f"{job}-t", "--detach")
    assert result.exit_code == 0, result.stderr
    model = client("sagemaker").describe_model(ModelName=f"{job}-t")["PrimaryContainer"]
    assert model["Image"] == IMAGE and model["ModelDataUrl"].endswith(f"/{job}/output/model.tar.gz")
    described = client("sagemaker").describe_transform_job(TransformJobName=f"{job}-t")
    assert described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://bkt/batch/"
    assert described["TransformOutput"]["S3OutputPath"] == (
        f"s3://{BUCKET}/byoc/{_project(root).name}/transform-output/{job}-t/")


def test_sagemaker_tune_sends_the_files_channels_input_mode_checkpoints_and_spot(
        aws: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    body = json.loads(json.dumps(TUNING))
    training = body["TrainingJobDefinition"]
    make_whole_job(training, training_channel="train", bucket="bkt", max_runtime=1800)
    config = tmp_path / "tune.json"
    config.write_text(json.dumps(body))
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE, "--dry-run",
                 "--job-name", "whole-tune")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    validate("CreateHyperParameterTuningJob", request)
    sent = request["TrainingJobDefinition"]
    assert sent["InputDataConfig"] == training["InputDataConfig"]
    assert sent["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert sent["CheckpointConfig"] == training["CheckpointConfig"]
    assert sent["EnableManagedSpotTraining"] is True
    assert sent["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}
    # --channel replaces one channel by name (a local folder is uploaded under the project prefix)
    result = run("tune", str(root), "--config", str(config), "--image", IMAGE, "--dry-run",
                 "--job-name", "whole-tune", "--channel",
                 f"validation={root / 'local_test/test_dir/input/data/training'}")
    assert result.exit_code == 0, result.stderr
    [train, validation] = json.loads(result.stdout)["TrainingJobDefinition"]["InputDataConfig"]
    assert train == training["InputDataConfig"][0]
    assert validation["DataSource"]["S3DataSource"]["S3Uri"].endswith("/channels/validation/")
    assert (validation["ContentType"], validation["InputMode"]) == ("application/json", "File")
