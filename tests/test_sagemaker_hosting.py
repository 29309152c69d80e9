"""``byoc sagemaker deploy/predict`` in each hosting mode: multi-model (PrimaryContainer.Mode
MultiModel), inference pipelines (Containers, InferenceExecutionConfig), asynchronous inference
(AsyncInferenceConfig, InvokeEndpointAsync) and serverless inference (ServerlessConfig).

Every request is the one ``--dry-run`` prints, checked against botocore's service model, and
what moto's server then holds is compared with it. What moto fakes (none of this is a pass of
the real service):
- no container runs: endpoints are InService at once, whatever the image, its labels or the
  model data; so the label checks are byoc's own, on local images;
- moto keeps PrimaryContainer, Containers, ProductionVariants and AsyncInferenceConfig as sent,
  but drops CreateModel's InferenceExecutionConfig: that field is checked in the request;
- InvokeEndpoint ignores TargetModel and TargetContainerHostname and answers what the test
  queued: what goes on the wire is checked on the scripted server (tests/fixtures/fake_aws.py);
- InvokeEndpointAsync reads nothing at InputLocation: it writes the result the test queued (or a
  failure) at once, in a bucket of its own, as ``response.json`` / ``failure.json`` (SageMaker
  writes ``<inference id>.out`` under S3OutputPath), and answers both locations in its headers.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_sagemaker as sm_tests

from byoc import contract

moto_url = sm_tests.moto_url
aws = sm_tests.aws
scripted = sm_tests.scripted
run, validate, one_line_error, client = (sm_tests.run, sm_tests.validate,
                                         sm_tests.one_line_error, sm_tests.client)
BUCKET, ROLE, IMAGE, REGION = sm_tests.BUCKET, sm_tests.ROLE, sm_tests.IMAGE, sm_tests.REGION
PREFIX = "t-hs-"


@pytest.fixture(autouse=True)
def outside_any_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No byoc.toml around (the checkout's own would name the S3 prefix)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def labelled_images(docker_client: Any, base_image: str,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two local images FROM the base image (labels only, no layer): one with both capability
    labels, one with none."""
    root = tmp_path_factory.mktemp("labels")
    tags = (f"{PREFIX}labelled:{uuid.uuid4().hex[:8]}", f"{PREFIX}unlabelled:{uuid.uuid4().hex[:8]}")
    labels = (f"LABEL {contract.MULTI_MODEL_LABEL}=true {contract.BIND_TO_PORT_LABEL}=true\n", "")
    for tag, label in zip(tags, labels, strict=True):
        context = root / tag.split(":")[0]
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {base_image}\n{label}")
        docker_client.images.build(path=str(context), tag=tag, network_mode="host", rm=True)
    yield tags
    for tag in tags:
        docker_client.images.remove(tag, force=True)


def dry_run_then_deploy(*args: str) -> dict[str, Any]:
    """The requests ``--dry-run`` prints (each valid for botocore), then the same deploy on moto."""
    result = run("deploy", *args, "--dry-run")
    assert result.exit_code == 0, result.stderr
    requests: dict[str, Any] = json.loads(result.stdout)
    for operation, request in requests.items():
        validate(operation, request)
    result = run("deploy", *args, "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    requests["stderr"] = result.stderr
    return requests


def queue_async(moto_url: str, *results: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{moto_url}/moto-api/static/sagemaker/async-endpoint-results",
        data=json.dumps({"results": list(results)}).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


# ---- multi-model --------------------------------------------------------------------------------

def test_multi_model_uploads_the_archives_once_and_names_the_prefix(
        aws: str, labelled_images: tuple[str, str], tmp_path: Path) -> None:
    labelled, _ = labelled_images
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (models / "a.tar.gz").write_bytes(sm_tests.model_tar(b"a"))
    (models / "sub" / "b.tar.gz").write_bytes(sm_tests.model_tar(b"b"))
    name = f"mme-{uuid.uuid4().hex[:6]}"
    args = ("--multi-model", "--model-prefix", str(models), "--image", labelled, "--role", ROLE,
            "--endpoint-name", name)
    requests = dry_run_then_deploy(*args)
    prefix = f"s3://{BUCKET}/byoc/byoc-job/multi-model/{name}/"
    assert requests["CreateModel"]["PrimaryContainer"] == {
        "Image": labelled, "Mode": "MultiModel", "ModelDataUrl": prefix}
    sagemaker = client("sagemaker")
    assert sagemaker.describe_model(ModelName=name)["PrimaryContainer"] == \
        requests["CreateModel"]["PrimaryContainer"]
    assert f"{prefix}: 2 file(s) uploaded" in requests["stderr"]
    assert "not a local image" not in requests["stderr"]  # the local image's label was read
    assert "--target-model model-a.tar.gz" in requests["stderr"]
    keys = [o["Key"] for o in client("s3").list_objects_v2(
        Bucket=BUCKET, Prefix=prefix[len(f"s3://{BUCKET}/"):])["Contents"]]
    assert sorted(keys) == [f"byoc/byoc-job/multi-model/{name}/a.tar.gz",
                            f"byoc/byoc-job/multi-model/{name}/sub/b.tar.gz"]
    # deployed again (the same name), nothing unchanged goes up again
    assert run("delete", name).exit_code == 0
    result = run("deploy", *args, "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    assert f"{prefix}: 0 file(s) uploaded (0 bytes), 2 unchanged" in result.stderr
    # an s3:// prefix is used as given (a final / added); a non-local image is left to SageMaker
    other = f"{name}-s3"
    result = run("deploy", "--multi-model", "--model-prefix", f"s3://{BUCKET}/mm", "--image",
                 IMAGE, "--role", ROLE, "--endpoint-name", other, "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    assert sagemaker.describe_model(ModelName=other)["PrimaryContainer"]["ModelDataUrl"] == \
        f"s3://{BUCKET}/mm/"
    assert f"note: {IMAGE} is not a local image: its label {contract.MULTI_MODEL_LABEL} is" \
        " checked by SageMaker at CreateModel" in result.stderr


def test_a_local_image_without_the_label_is_refused_before_anything_is_sent(
        aws: str, labelled_images: tuple[str, str], tmp_path: Path) -> None:
    _, unlabelled = labelled_images
    models = tmp_path / "models"
    models.mkdir()
    (models / "a.tar.gz").write_bytes(sm_tests.model_tar())
    name = f"nolabel-{uuid.uuid4().hex[:6]}"
    result = run("deploy", "--multi-model", "--model-prefix", str(models), "--image", unlabelled,
                 "--role", ROLE, "--endpoint-name", name)
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"Error: image {unlabelled} lacks the label {contract.MULTI_MODEL_LABEL}=true, which"
        " SageMaker requires of a multi-model container: add `LABEL"
        f" {contract.MULTI_MODEL_LABEL}=true` to its Dockerfile")
    result = run("deploy", "--pipeline", f"{IMAGE},{unlabelled}", "--role", ROLE,
                 "--endpoint-name", name)
    assert result.exit_code == 2
    assert f"lacks the label {contract.BIND_TO_PORT_LABEL}=true" in one_line_error(result)
    assert name not in [m["ModelName"] for m in client("sagemaker").list_models()["Models"]]
    assert "Contents" not in client("s3").list_objects_v2(
        Bucket=BUCKET, Prefix=f"byoc/byoc-job/multi-model/{name}/")


# ---- inference pipelines --------------------------------------------------------------------

def test_container_hostnames_are_valid_distinct_and_named_after_the_repository() -> None:
    from byoc.sagemaker import hosting

    long = "r" * 80
    names = contract.container_hostnames([
        "123.dkr.ecr.us-east-1.amazonaws.com/team/pre_process.v2:1", "pre-process-v2@sha256:ab",
        f"{long}:x", f"{long}:y", "localhost:5000/post"])
    assert names == ["pre-process-v2", "pre-process-v2-2", "r" * 59, "r" * 59 + "-2", "post"]
    assert all(hosting.NAME.fullmatch(name) for name in names)

def test_a_pipeline_has_a_container_per_image_and_serial_or_direct_mode(
        aws: str, labelled_images: tuple[str, str]) -> None:
    labelled, _ = labelled_images
    name = f"pipe-{uuid.uuid4().hex[:6]}"
    model = f"s3://{BUCKET}/models/{name}/model.tar.gz"
    images = f"{labelled},{IMAGE},{IMAGE}"
    requests = dry_run_then_deploy("--pipeline", images, "--model", model, "--role", ROLE,
                                   "--endpoint-name", name, "--env", "A=1")
    model_request = requests["CreateModel"]
    assert model_request["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert model_request["Containers"] == [
        {"ContainerHostname": f"{PREFIX}labelled", "Image": labelled, "ModelDataUrl": model,
         "Environment": {"A": "1"}},
        {"ContainerHostname": "demo", "Image": IMAGE, "ModelDataUrl": model,
         "Environment": {"A": "1"}},
        {"ContainerHostname": "demo-2", "Image": IMAGE, "ModelDataUrl": model,
         "Environment": {"A": "1"}}]
    assert "PrimaryContainer" not in model_request
    # moto keeps the Containers (and drops InferenceExecutionConfig)
    assert client("sagemaker").describe_model(ModelName=name)["Containers"] == \
        model_request["Containers"]
    assert requests["stderr"].count("is not a local image") == 2  # IMAGE twice, not `labelled`
    direct = f"{name}-d"
    requests = dry_run_then_deploy("--pipeline", images, "--direct", "--role", ROLE,
                                   "--endpoint-name", direct)
    assert requests["CreateModel"]["InferenceExecutionConfig"] == {"Mode": "Direct"}
    assert all("ModelDataUrl" not in c for c in requests["CreateModel"]["Containers"])
    assert "--target-container HOST" in requests["stderr"]


def test_predict_names_the_target_model_or_container_on_the_wire(
        scripted: Any, tmp_path: Path) -> None:
    """The scripted server shows the routing headers (moto's InvokeEndpoint ignores them)."""
    scripted.answers["InvokeEndpoint"] = [(200, "0.5\n")]
    payload = tmp_path / "p.csv"
    payload.write_text("1,2\n")
    result = run("predict", "ep-1", str(payload), "--target-model", "sub/b.tar.gz")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "0.5\n"
    result = run("predict", "ep-1", str(payload), "--target-container", "demo-2")
    assert result.exit_code == 0, result.stderr
    sent = [body for operation, body in scripted.calls if operation == "InvokeEndpoint"]
    assert sent[0]["TargetModel"] == "sub/b.tar.gz" and "TargetContainerHostname" not in sent[0]
    assert sent[1]["TargetContainerHostname"] == "demo-2" and "TargetModel" not in sent[1]
    # the dry run prints the same request, valid for botocore
    result = run("predict", "ep-1", str(payload), "--target-model", "sub/b.tar.gz", "--dry-run")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)["InvokeEndpoint"]
    assert request == {"EndpointName": "ep-1", "ContentType": "text/csv",
                       "TargetModel": "sub/b.tar.gz", "Body": f"<4 bytes of {payload}>"}
    validate("InvokeEndpoint", {**request, "Body": b"1,2\n"}, "sagemaker-runtime")
    assert len([o for o in scripted.operations() if o == "InvokeEndpoint"]) == 2


# ---- asynchronous inference -----------------------------------------------------------------

def test_async_endpoint_and_predict_async_with_and_without_wait(
        aws: str, moto_url: str, tmp_path: Path) -> None:
    name = f"async-{uuid.uuid4().hex[:6]}"
    requests = dry_run_then_deploy(
        "--model", f"s3://{BUCKET}/m/model.tar.gz", "--image", IMAGE, "--role", ROLE,
        "--endpoint-name", name, "--async", "--async-output", f"s3://{BUCKET}/async-out/",
        "--async-failure", f"s3://{BUCKET}/async-failed/", "--max-concurrent", "4")
    config = requests["CreateEndpointConfig"]
    assert config["AsyncInferenceConfig"] == {
        "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/async-out/",
                         "S3FailurePath": f"s3://{BUCKET}/async-failed/"},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4}}
    held = client("sagemaker").describe_endpoint_config(EndpointConfigName=name)
    assert held["AsyncInferenceConfig"] == config["AsyncInferenceConfig"]
    assert held["ProductionVariants"] == config["ProductionVariants"]
    assert f"byoc sagemaker predict {name} --async payload.csv" in requests["stderr"]

    queue_async(moto_url, {"data": '{"score": 0.7}'}, {"is_failure": True,
                                                       "data": "model raised ValueError\nmore"})
    payload = tmp_path / "payload.json"
    payload.write_text('{"x": 1}')
    result = run("predict", name, "--async", str(payload), "--dry-run")
    assert result.exit_code == 0, result.stderr
    request = json.loads(result.stdout)["InvokeEndpointAsync"]
    validate("InvokeEndpointAsync", request, "sagemaker-runtime")
    assert request["ContentType"] == "application/json"
    result = run("predict", name, "--async", str(payload), "--wait", "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '{"score": 0.7}'
    # the body went up where the request says (moto's endpoint does not read it)
    bucket, key = request["InputLocation"][len("s3://"):].split("/", 1)
    assert client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == b'{"x": 1}'
    assert f"uploaded {payload} to {request['InputLocation']}" in result.stderr
    # the second queued result is a failure: one Error line with its first line
    payload.write_text('{"x": 2}')  # another InputLocation (moto answers one location once)
    result = run("predict", name, "--async", str(payload), "--wait", "--poll-interval", "0.01")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the upload and the queued inference
    assert line.startswith("Error: inference ") and \
        " failed: model raised ValueError (s3://" in line
    # an s3:// InputLocation is used as it is: nothing is uploaded
    queue_async(moto_url, {"data": "from s3"})
    client("s3").put_object(Bucket=BUCKET, Key=f"in/{name}.json", Body=b'{"x": 0}')
    result = run("predict", name, "--async", f"s3://{BUCKET}/in/{name}.json", "--wait",
                 "--poll-interval", "0.01")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "from s3" and "uploaded" not in result.stderr
    # without --wait: the inference id and the OutputLocation, at once
    payload.write_text('{"x": 3}')
    result = run("predict", name, "--async", str(payload))
    assert result.exit_code == 0, result.stderr
    inference_id, output = result.stdout.strip().split("\t")
    assert inference_id and output.startswith("s3://")
    assert f"inference {inference_id} queued; its response goes to {output}" in result.stderr


# ---- serverless inference -------------------------------------------------------------------

def test_serverless_endpoint_has_a_serverless_config_and_no_instances(aws: str) -> None:
    name = f"sls-{uuid.uuid4().hex[:6]}"
    requests = dry_run_then_deploy("--model", f"s3://{BUCKET}/m/model.tar.gz", "--image", IMAGE,
                                   "--role", ROLE, "--endpoint-name", name, "--serverless",
                                   "--memory", "2048", "--max-concurrency", "5")
    variant = requests["CreateEndpointConfig"]["ProductionVariants"]
    assert variant == [{"VariantName": "AllTraffic", "ModelName": name,
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]
    held = client("sagemaker").describe_endpoint_config(EndpointConfigName=name)
    assert held["ProductionVariants"] == variant
    assert f"creating endpoint {name} (serverless, 2048 MB, at most 5 at once)" in \
        requests["stderr"]


# ---- what is refused, and dry runs without credentials ----------------------------------------

MODEL = ("--model", "s3://b/m/model.tar.gz", "--image", IMAGE, "--role", ROLE)
SERVERLESS = ("--serverless", "--memory", "2048", "--max-concurrency", "5")


@pytest.mark.parametrize(("argv", "message"), [
    (["deploy", *MODEL, *SERVERLESS, "--instance-type", "ml.g4dn.xlarge"],
     "--instance-type ml.g4dn.xlarge has GPUs, which serverless endpoints do not offer"),
    (["deploy", *MODEL, *SERVERLESS, "--instance-type", "ml.m5.large"],
     "--instance-type ml.m5.large is an instance type: a serverless endpoint has no instances"),
    (["deploy", *MODEL, *SERVERLESS, "--instance-count", "2"], "--instance-count is for"),
    (["deploy", "--multi-model", "--model-prefix", "s3://b/p/", "--image", IMAGE, *SERVERLESS],
     "a serverless endpoint cannot host a multi-model container"),
    (["deploy", "--pipeline", f"{IMAGE},{IMAGE}", *SERVERLESS],
     "a serverless endpoint cannot host an inference pipeline"),
    (["deploy", *MODEL, *SERVERLESS, "--async", "--async-output", "s3://b/o/"],
     "asynchronous inference runs on instances, not serverless"),
    (["deploy", *MODEL, "--serverless", "--memory", "1000", "--max-concurrency", "5"],
     "--memory must be one of 1024, 2048, 3072, 4096, 5120, 6144 (MB), got 1000"),
    (["deploy", *MODEL, "--serverless", "--memory", "1024", "--max-concurrency", "201"],
     "--max-concurrency must be between 1 and 200, got 201"),
    (["deploy", *MODEL, "--serverless"], "--serverless needs --memory MB"),
    (["deploy", *MODEL, "--memory", "1024"], "--memory and --max-concurrency size a --serverless"),
    (["deploy", *MODEL, "--async"], "--async needs --async-output s3://..."),
    (["deploy", *MODEL, "--async-output", "s3://b/o/"], "are for --async endpoints"),
    (["deploy", *MODEL, "--async", "--async-output", "/tmp/out"],
     "--async-output must be an s3:// URI, got '/tmp/out'"),
    (["deploy", *MODEL, "--async", "--async-output", "s3://b/o/", "--max-concurrent", "0"],
     "--max-concurrent must be between 1 and 1000, got 0"),
    (["deploy", "--multi-model", "--image", IMAGE], "--multi-model serves the archives under"),
    (["deploy", *MODEL, "--multi-model", "--model-prefix", "s3://b/p/"],
     "--multi-model serves the archives under --model-prefix"),
    (["deploy", *MODEL, "--model-prefix", "s3://b/p/"], "--model-prefix is for --multi-model"),
    (["deploy", "--multi-model", "--model-prefix", "no-such-dir", "--image", IMAGE],
     "--model-prefix takes an s3:// prefix or a local directory of .tar.gz archives;"),
    (["deploy", "--pipeline", IMAGE, "--role", ROLE], "--pipeline takes 2 to 15 images, got 1"),
    (["deploy", "--pipeline", f"{IMAGE},{IMAGE}", "--image", IMAGE], "drop --image"),
    (["deploy", "--pipeline", f"{IMAGE},{IMAGE}", "--multi-model", "--model-prefix", "s3://b/"],
     "--multi-model and --pipeline exclude each other"),
    (["deploy", *MODEL, "--direct"], "--direct is for --pipeline"),
    (["predict", "ep", "-", "--content-type", "text/csv", "--target-model", "/abs/a.tar.gz"],
     "--target-model is the archive's path relative to the endpoint's model prefix"),
    (["predict", "ep", "-", "--content-type", "text/csv", "--target-container", "a_b"],
     "--target-container is a ContainerHostname"),
    (["predict", "ep", "--async", "no-such-file.csv"], "--async no-such-file.csv: no such file"),
    (["predict", "ep", "--async", "s3://b/in.csv", "--target-model", "a.tar.gz"],
     "InvokeEndpointAsync has no TargetModel or TargetContainerHostname"),
    (["predict", "ep", "-", "--content-type", "text/csv", "--wait"], "--wait is for --async"),
])
def test_bad_combinations_are_one_error_line_and_send_nothing(
        scripted: Any, argv: list[str], message: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*argv, input="1,2\n")
    assert result.exit_code == 2, result.stderr
    assert message in one_line_error(result)
    assert scripted.calls == []


@pytest.mark.parametrize("case", ["dir-only", "other-file", "empty"])
def test_a_multi_model_directory_holds_only_archives(scripted: Any, case: str,
                                                     tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    if case != "empty":
        (models / "a.tar.gz").write_bytes(b"x")
    if case == "other-file":
        (models / "notes.txt").write_text("x")
    result = run("deploy", "--multi-model", "--model-prefix", str(models), "--image", IMAGE,
                 "--role", ROLE, "--bucket", "bkt", "--dry-run")
    if case == "dir-only":
        assert result.exit_code == 0, result.stderr
        return
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"Error: {models / 'notes.txt'} is not a .tar.gz archive: a multi-model directory holds"
        " only the model archives InvokeEndpoint's TargetModel names" if case == "other-file"
        else f"Error: {models} holds no .tar.gz archive to serve")


@pytest.mark.parametrize("mode", [
    ["--multi-model", "--model-prefix", "MODELS"],
    ["--pipeline", f"{IMAGE},{IMAGE}", "--model", "MODEL"],
    ["--model", "MODEL", "--async", "--async-output", "s3://b/o/"],
    ["--model", "MODEL", *SERVERLESS],
])
def test_every_mode_dry_runs_without_credentials(scripted: Any, mode: list[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials: the account is a placeholder, a local model and archives are not
    uploaded (the requests name where they would go), and nothing reaches AWS."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.tar.gz").write_bytes(sm_tests.model_tar())
    (tmp_path / "model.tar.gz").write_bytes(sm_tests.model_tar())
    argv = [{"MODELS": "models", "MODEL": "model.tar.gz"}.get(arg, arg) for arg in mode]
    image = [] if "--pipeline" in argv else ["--image", IMAGE]
    result = run("deploy", *argv, *image, "--role", "MyRole", "--endpoint-name", "dry",
                 "--dry-run")
    assert result.exit_code == 0, result.stderr
    requests = json.loads(result.stdout)
    for operation, request in requests.items():
        validate(operation, request)
    assert requests["CreateModel"]["ExecutionRoleArn"] == "arn:aws:iam::<account>:role/MyRole"
    assert f"s3://sagemaker-{REGION}-<account>/byoc/byoc-job/" in result.stdout
    assert "note: dry run: <account> stands for the AWS account" in result.stderr
    payload = tmp_path / "p.csv"
    payload.write_text("1\n")
    result = run("predict", "dry", "--async", str(payload), "--dry-run")
    assert result.exit_code == 0, result.stderr
    validate("InvokeEndpointAsync", json.loads(result.stdout)["InvokeEndpointAsync"],
             "sagemaker-runtime")
    assert scripted.calls == []
