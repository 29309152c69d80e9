"""``byoc sagemaker process``: the processing job definition as CreateProcessingJob, against
moto's server over real HTTP (botocore validates every request's types and required members
before sending it; these tests also check it against the service model themselves).

What moto fakes, and how these tests deal with it (none of this is a pass of the real service):
- moto runs no container: a processing job is ``Completed`` the moment it is created, with no
  logs, no ``ExitMessage`` and no outputs. The tests seed the CloudWatch Logs streams
  (``/aws/sagemaker/ProcessingJobs``) and the output objects where SageMaker would write them;
- moto's DescribeProcessingJob keeps AppSpecification, ProcessingInputs, ProcessingOutputConfig,
  RoleArn and StoppingCondition, and drops ProcessingResources and Environment: those are read
  from the request byoc recorded, and the scripted server (tests/fixtures/fake_aws.py) shows the
  whole body the service receives;
- jobs that run, fail (with an ExitMessage and a FailureReason) or are stopped come from the
  scripted server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import test_sagemaker as sm
from read_only import read_only

fake = sm.fake
moto_url = sm.moto_url
aws = sm.aws
scripted = sm.scripted
BUCKET, IMAGE, ROLE, REGION = sm.BUCKET, sm.IMAGE, sm.ROLE, sm.REGION
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def project(tmp_path: Path, *, role: str | None = ROLE) -> tuple[Path, str, Path, Path]:
    """A project, a folder of two test files and an evaluation script; its name."""
    root = sm.write_project(tmp_path / "p", role=role)
    name = (root / "byoc.toml").read_text().split('"')[1]
    data = tmp_path / "test-data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n" * 5)
    (data / "sub").mkdir()
    (data / "sub" / "b.csv").write_text("3,4\n")
    script = tmp_path / "evaluate.py"
    script.write_text("print('evaluating')\n")
    return root, name, data, script


def keys(prefix: str) -> dict[str, str]:
    """Key -> ETag of every object under *prefix* in the default bucket."""
    listing = client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["ETag"] for o in listing.get("Contents") or ()}


def seed_logs(job: str, lines: dict[str, list[str]]) -> None:
    """What SageMaker's agents would write (moto's processing jobs write no logs)."""
    logs = client("logs")
    try:
        logs.create_log_group(logGroupName=LOG_GROUP)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    for host, messages in lines.items():
        stream = f"{job}/{host}-1700000000"
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": m}
                                       for i, m in enumerate(messages)])


def test_process_sends_the_request_it_built_and_uploads_only_what_changed(
        aws: str, tmp_path: Path) -> None:
    root, name, data, script = project(tmp_path)
    evaluation = tmp_path / "evaluation"
    argv = [str(root), "--image", IMAGE, "--input", f"test={data}",
            "--input", "model=s3://models/m/model.tar.gz:/opt/ml/processing/model",
            "--code", str(script), "--entrypoint", "python3", "--argument", "--split",
            "--argument", "test", "--output", f"evaluation={evaluation}",
            "--output", "report=s3://reports/r/:/opt/ml/processing/report",
            "--upload-mode", "report=Continuous", "--env", "LEVEL=INFO", "--instance-count", "2",
            "--instance-type", "ml.c5.xlarge", "--volume-size", "50", "--max-run", "2h",
            "--poll-interval", "0.01"]
    dry = sm.run("process", *argv, "--job-name", "proc-1", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    planned = json.loads(dry.stdout)
    sm.validate("CreateProcessingJob", planned)
    assert keys("byoc/") == {}  # a dry run uploads nothing
    prefix = f"byoc/{name}/processing"
    assert planned == {
        "ProcessingJobName": "proc-1",
        "ProcessingInputs": [
            {"InputName": "test", "S3Input": {
                "S3Uri": f"s3://{BUCKET}/{prefix}/inputs/test/",
                "LocalPath": "/opt/ml/processing/input/test", "S3DataType": "S3Prefix",
                "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated",
                "S3CompressionType": "None"}},
            {"InputName": "model", "S3Input": {
                "S3Uri": "s3://models/m/model.tar.gz", "LocalPath": "/opt/ml/processing/model",
                "S3DataType": "S3Prefix", "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}},
            {"InputName": "code", "S3Input": {
                "S3Uri": f"s3://{BUCKET}/{prefix}/inputs/code/evaluate.py",
                "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix",
                "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated",
                "S3CompressionType": "None"}}],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "evaluation", "S3Output": {
                "S3Uri": f"s3://{BUCKET}/{prefix}/outputs/proc-1/evaluation/",
                "LocalPath": "/opt/ml/processing/output/evaluation",
                "S3UploadMode": "EndOfJob"}},
            {"OutputName": "report", "S3Output": {
                "S3Uri": "s3://reports/r/", "LocalPath": "/opt/ml/processing/report",
                "S3UploadMode": "Continuous"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 2,
                                                  "InstanceType": "ml.c5.xlarge",
                                                  "VolumeSizeInGB": 50}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": [
            "python3", "/opt/ml/processing/input/code/evaluate.py"],
            "ContainerArguments": ["--split", "test"]},
        "RoleArn": ROLE,
        "Environment": {"LEVEL": "INFO"}}

    # what the container would leave and log (moto runs none)
    seed_logs("proc-1", {"algo-1": ["evaluating", "accuracy=0.9"], "algo-2": ["evaluating"]})
    s3 = client("s3")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/outputs/proc-1/evaluation/evaluation.json",
                  Body=b'{"regression_metrics": {"mse": {"value": 0.5}}}')
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/outputs/proc-1/evaluation/plots/residuals.png",
                  Body=b"\x89PNG")
    result = sm.run("process", *argv, "--job-name", "proc-1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "proc-1\n"
    # the request byoc sent is the one the dry run printed, and moto holds what it keeps of it
    record = json.loads((root / ".byoc" / "jobs" / "proc-1" / "sagemaker.json").read_text())
    assert record["request"] == planned
    job = client("sagemaker").describe_processing_job(ProcessingJobName="proc-1")
    for field in ("AppSpecification", "ProcessingInputs", "ProcessingOutputConfig", "RoleArn",
                  "StoppingCondition"):
        assert job[field] == planned[field], field
    assert record["arn"] == job["ProcessingJobArn"]
    # the local inputs went up once: the folder as a prefix, the script as one object
    uploaded = keys(f"{prefix}/inputs/")
    assert sorted(uploaded) == [f"{prefix}/inputs/code/evaluate.py",
                                f"{prefix}/inputs/test/a.csv", f"{prefix}/inputs/test/sub/b.csv"]
    assert "algo-1 | accuracy=0.9" in result.stderr and "algo-2 | evaluating" in result.stderr
    assert "processing job proc-1: Completed" in result.stderr
    # the local output folder holds what the job left in S3
    assert json.loads((evaluation / "evaluation.json").read_text()) == {
        "regression_metrics": {"mse": {"value": 0.5}}}
    assert (evaluation / "plots" / "residuals.png").read_bytes() == b"\x89PNG"
    assert f"output evaluation: s3://{BUCKET}/{prefix}/outputs/proc-1/evaluation/ -> " \
           f"{evaluation} (2 file(s))" in result.stderr
    sm.no_secret_in(result.stdout, result.stderr)

    # a second job: nothing unchanged is uploaded again; a changed file is
    (data / "a.csv").write_text("9,9\n" * 5)
    # the same folder again is refused (nothing there is overwritten), before any upload
    refused = sm.run("process", *argv, "--job-name", "proc-2")
    assert refused.exit_code == 2
    assert sm.one_line_error(refused) == (
        f"Error: --output evaluation: {evaluation} is not empty; name a new or empty folder"
        " (nothing there is overwritten)")
    assert keys(f"{prefix}/inputs/") == uploaded
    argv[argv.index(f"evaluation={evaluation}")] = f"evaluation={tmp_path / 'evaluation-2'}"
    again = sm.run("process", *argv, "--job-name", "proc-2", "--no-wait")
    assert again.exit_code == 0, again.stderr
    assert f"s3://{BUCKET}/{prefix}/inputs/code/evaluate.py: 0 file(s) uploaded (0 bytes), 1" \
           " unchanged" in again.stderr
    assert f"s3://{BUCKET}/{prefix}/inputs/test/: 1 file(s) uploaded (20 bytes), 1 unchanged" \
        in again.stderr
    after = keys(f"{prefix}/inputs/")
    assert after[f"{prefix}/inputs/test/sub/b.csv"] == uploaded[f"{prefix}/inputs/test/sub/b.csv"]
    assert after[f"{prefix}/inputs/test/a.csv"] != uploaded[f"{prefix}/inputs/test/a.csv"]
    # --no-wait: created, not followed, nothing downloaded
    assert again.stdout == "proc-2\n"
    assert "local output folders are not filled without --wait" in again.stderr
    assert "Completed" not in again.stderr


def test_a_completed_job_that_left_nothing_still_gives_its_empty_output_folder(
        aws: str, tmp_path: Path) -> None:
    """moto completes the job with no output objects: the folder the summary names exists."""
    root, _, data, script = project(tmp_path)
    empty = tmp_path / "nothing-here"
    result = sm.run("process", str(root), "--image", IMAGE, "--input", f"test={data}", "--code",
                    str(script), "--entrypoint", "python3", "--output", f"evaluation={empty}",
                    "--job-name", "proc-empty", "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    assert f"-> {empty} (0 file(s))" in result.stderr
    assert empty.is_dir() and not any(empty.iterdir())


def test_a_used_job_name_is_refused_before_anything_is_uploaded(aws: str, tmp_path: Path) -> None:
    root, name, data, _ = project(tmp_path)
    (root / ".byoc" / "jobs" / "proc-9").mkdir(parents=True)
    result = sm.run("process", str(root), "--image", IMAGE, "--input", f"test={data}",
                    "--job-name", "proc-9")
    assert result.exit_code == 2
    assert sm.one_line_error(result).endswith("exists already; pick another --job-name")
    assert keys(f"byoc/{name}/") == {}


def test_the_service_receives_the_planned_request_and_a_failure_is_reported(
        scripted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripted server keeps the body it receives: the whole request (moto drops some
    fields). The job runs, then fails: its status changes, ExitMessage and FailureReason are
    printed and the exit code is sagemaker train's for a failed job."""
    monkeypatch.chdir(tmp_path)
    argv = ["process", "--image", IMAGE, "--role", ROLE, "--bucket", "bkt",
            "--input", "data=s3://bkt/data/", "--output", "out=s3://bkt/out/", "--entrypoint",
            "evaluate", "--env", "A=1", "--job-name", "proc-f", "--poll-interval", "0.01"]
    scripted.answers.update({
        "CreateProcessingJob": [fake.ok({"ProcessingJobArn": "arn:aws:sagemaker:us-east-1:"
                                         "123456789012:processing-job/proc-f"})],
        "DescribeProcessingJob": [
            fake.ok({"ProcessingJobName": "proc-f", "ProcessingJobStatus": "InProgress"}),
            fake.ok({"ProcessingJobName": "proc-f", "ProcessingJobStatus": "InProgress"}),
            fake.ok({"ProcessingJobName": "proc-f", "ProcessingJobStatus": "Failed",
                     "ExitMessage": "no test files in /opt/ml/processing/input/data\n",
                     "FailureReason": "AlgorithmError: exit code 1"})],
        "DescribeLogStreams": [fake.error("ResourceNotFoundException",
                                          "The specified log group does not exist.")]})
    dry = sm.run(*argv, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    result = sm.run(*argv)
    assert result.exit_code == 1
    sent = [body for operation, body in scripted.calls if operation == "CreateProcessingJob"]
    assert sent == [json.loads(dry.stdout)]
    sm.validate("CreateProcessingJob", sent[0])
    lines = result.stderr.splitlines()
    assert lines.count("processing job proc-f: InProgress") == 1
    assert "processing job proc-f: Failed" in lines
    assert "exit message: no test files in /opt/ml/processing/input/data" in lines
    assert "failure reason: AlgorithmError: exit code 1" in lines
    assert lines[-1] == "Error: processing job proc-f failed: AlgorithmError: exit code 1"
    assert "Traceback" not in result.stderr


def test_a_stopped_job_exits_as_a_stopped_training_job(scripted: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scripted.answers.update({
        "CreateProcessingJob": [fake.ok({"ProcessingJobArn": "arn"})],
        "DescribeProcessingJob": [fake.ok({"ProcessingJobName": "proc-s",
                                           "ProcessingJobStatus": "Stopped"})],
        "DescribeLogStreams": [fake.ok({"logStreams": []})]})
    result = sm.run("process", "--image", IMAGE, "--role", ROLE, "--bucket", "bkt",
                    "--job-name", "proc-s", "--poll-interval", "0.01")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1] == "Error: processing job proc-s stopped"


def test_a_dry_run_needs_no_credentials_and_no_pushed_image(
        scripted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials and nothing pushed: the request still prints, with <placeholders> for the
    account and the image's digest, each said on stderr; nothing reaches AWS."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    root, name, data, _ = project(tmp_path, role=None)
    result = sm.run("process", str(root), "--role", "MyRole", "--input", f"test={data}",
                    "--output", f"out={tmp_path / 'out'}", "--dry-run")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)
    assert request["RoleArn"] == "arn:aws:iam::<account>:role/MyRole"
    assert request["AppSpecification"] == {
        "ImageUri": f"<account>.dkr.ecr.{REGION}.amazonaws.com/{name}@<digest-of-byoc-push>"}
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == (
        f"s3://sagemaker-{REGION}-<account>/byoc/{name}/processing/inputs/test/")
    assert request["ProcessingJobName"].startswith(f"{name}-")
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: dry run: ")]
    assert notes[0].startswith("note: dry run: <account> stands for the AWS account")
    assert notes[1].startswith("note: dry run: <digest-of-byoc-push> stands for the digest of")
    assert scripted.calls == []
    assert not (tmp_path / "out").exists()


BAD = [
    (["--input", "data=s3://bkt/d/:/data"],
     "Error: --input data: container path '/data' must be a folder below /opt/ml/processing/"),
    (["--input", "data=s3://bkt/d/", "--input-mode", "data=Stream"],
     "Error: --input-mode data=Stream: use File or Pipe"),
    (["--input", "data=s3://bkt/d/", "--distribution", "data=Random"],
     "Error: --distribution data=Random: use FullyReplicated or ShardedByS3Key"),
    (["--output", "out=s3://bkt/o/", "--upload-mode", "other=Continuous"],
     "Error: --upload-mode other=Continuous: no output 'other' (the outputs are out)"),
    (["--input", "data=no/such/folder"], "Error: --input data: no/such/folder does not exist"),
    (["--code", "SCRIPT"], "Error: --code needs --entrypoint, the program that runs it (e.g."
                           " --entrypoint python3)"),
    (["--instance-count", "0"], "Error: --instance-count 0: InstanceCount takes 1 to 100"),
    (["--max-run", "10d"], "Error: --max-run: '10d' is not a duration (e.g. 90, 90s, 5m, 1h30m)"),
    (["--job-name", "bad_name"], "Error: invalid job name 'bad_name': 1-63 letters, digits and"
                                 " hyphens, starting and ending with a letter or digit"),
    (["--env", "NOVALUE"], "Error: --env takes KEY=VALUE, got 'NOVALUE'"),
]


@pytest.mark.parametrize(("args", "expected"), BAD)
def test_bad_options_are_one_line_and_send_nothing(scripted: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   args: list[str], expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "evaluate.py"
    script.write_text("print(1)\n")
    args = [str(script) if item == "SCRIPT" else item for item in args]
    result = sm.run("process", "--image", IMAGE, "--role", ROLE, "--bucket", "bkt", *args)
    assert result.exit_code == 2, result.stderr
    assert sm.one_line_error(result) == expected
    assert [op for op, _ in scripted.calls if op != "GetCallerIdentity"] == []


def test_an_empty_local_input_folder_is_refused(aws: str, tmp_path: Path) -> None:
    """SageMaker fails a processing job whose input prefix holds no object; byoc says so first."""
    root, name, data, _ = project(tmp_path)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    result = sm.run("process", str(root), "--image", IMAGE, "--input", f"test={data}",
                    "--input", f"none={tmp_path / 'empty'}", "--job-name", "empty-1")
    assert result.exit_code == 2
    assert sm.one_line_error(result) == (
        f"Error: --input none: {tmp_path / 'empty'} holds no file, and SageMaker fails a"
        " processing job whose input prefix has no object")
    assert keys(f"byoc/{name}/") == {}


def test_no_role_is_one_line(aws: str, tmp_path: Path) -> None:
    root, _, data, _ = project(tmp_path, role=None)
    result = sm.run("process", str(root), "--image", IMAGE, "--input", f"test={data}")
    assert result.exit_code == 2
    assert sm.one_line_error(result).startswith("Error: no SageMaker execution role: pass --role")


def test_an_unknown_choice_is_a_usage_error(aws: str, tmp_path: Path) -> None:
    result = sm.run("process", "--image", IMAGE, "--role", ROLE, "--instance-count", "two")
    assert result.exit_code == 2
    assert "'two' is not a valid integer" in result.stderr
    result = sm.run("process", "--image", IMAGE, "--role", ROLE, "--volume-size", "0",
                    "--dry-run")
    assert result.exit_code == 2
    assert sm.one_line_error(result) == ("Error: --volume-size 0: VolumeSizeInGB takes 1 to"
                                         " 16384")


def test_a_read_only_output_folder_is_refused_before_anything_is_sent(
        aws: str, tmp_path: Path) -> None:
    root, name, data, _ = project(tmp_path)
    with read_only(tmp_path / "locked") as locked:
        result = sm.run("process", str(root), "--image", IMAGE, "--input", f"test={data}",
                        "--output", f"evaluation={locked / 'evaluation'}", "--job-name", "ro-1")
    assert result.exit_code == 2
    assert sm.one_line_error(result).startswith(
        f"Error: --output evaluation {locked / 'evaluation'}: cannot write there")
    assert keys(f"byoc/{name}/") == {}
    assert "ro-1" not in [j["ProcessingJobName"] for j in client("sagemaker").list_processing_jobs()
                          ["ProcessingJobSummaries"]]


@pytest.mark.parametrize(("outputs", "message"), [
    (["out=DATA/out"], "--output out: DATA/out overlaps input 'test' (DATA)"),
    (["out=ROOT/.byoc/jobs/ov-1/out"],
     "--output out: ROOT/.byoc/jobs/ov-1/out overlaps the job's own directory"),
    (["one=TMP/results", "out=TMP/results/more"],
     "--output out: TMP/results/more overlaps the folder of output 'one' (TMP/results)")])
def test_an_output_folder_overlapping_an_input_another_output_or_the_job_is_refused(
        aws: str, tmp_path: Path, outputs: list[str], message: str) -> None:
    root, name, data, _ = project(tmp_path)

    def placed(text: str) -> str:
        return text.replace("DATA", str(data)).replace("ROOT", str(root)).replace(
            "TMP", str(tmp_path))

    args = [item for output in outputs for item in ("--output", placed(output))]
    result = sm.run("process", str(root), "--image", IMAGE, "--input", f"test={data}", *args,
                    "--job-name", "ov-1")
    assert result.exit_code == 2, result.stderr
    line = sm.one_line_error(result)
    assert line.startswith(f"Error: {placed(message)}"), line
    assert keys(f"byoc/{name}/") == {}


def test_ctrl_c_detaches_and_says_how_to_stop(tmp_path: Path) -> None:
    """A real SIGINT to a real byoc process following a job that stays InProgress (scripted)."""
    with fake.fake_aws({"CreateProcessingJob": fake.ok({"ProcessingJobArn": "arn"}),
                        "DescribeProcessingJob": fake.ok({"ProcessingJobName": "p-1",
                                                          "ProcessingJobStatus": "InProgress"}),
                        "DescribeLogStreams": fake.ok({"logStreams": []})}) as server:
        env = {**os.environ, "AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
               "AWS_SECRET_ACCESS_KEY": sm.SECRET, "AWS_REGION": REGION,
               "AWS_EC2_METADATA_DISABLED": "true"}
        process = subprocess.Popen(
            ["byoc", "sagemaker", "process", "--image", IMAGE, "--role", ROLE, "--bucket", "bkt",
             "--input", "data=s3://bkt/data/", "--job-name", "p-1", "--poll-interval", "0.1"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        assert process.stderr.readline().startswith("created processing job p-1")
        assert process.stderr.readline() == "processing job p-1: InProgress\n"
        process.send_signal(signal.SIGINT)
        out, rest = process.communicate(timeout=30)
    assert process.returncode == 130
    assert out == ""
    assert rest.strip().splitlines()[-1] == (
        "Error: detached: processing job p-1 keeps running on SageMaker (its local output folders"
        " are not filled); stop it: aws sagemaker stop-processing-job --processing-job-name p-1")
    assert "Traceback" not in rest
