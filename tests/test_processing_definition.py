"""The processing job value (:mod:`byoc.job.processing`): its option parser, its validator and its
limits, the CreateProcessingJob request it builds (checked against botocore's service model) and
the local request a local run writes as processingjobconfig.json. No AWS, no Docker."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import botocore.session
import botocore.validate
import pytest

from byoc import contract
from byoc.errors import ConfigError
from byoc.job import (
    LOCAL_ROLE,
    ProcessingInput,
    ProcessingJobDefinition,
    ProcessingOutput,
    limits,
    processing_from_options,
)
from byoc.job.processing import CODE_PATH, split_location

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo:latest"


def service_input(operation: str = "CreateProcessingJob") -> Any:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(operation).input_shape


def validate(request: dict[str, Any]) -> None:
    """botocore's own check of *request* (what it does before sending)."""
    botocore.validate.validate_parameters(request, service_input())


def shape(*path: str) -> Any:
    """The member of CreateProcessingJob's input at *path* (``[]`` steps into a list)."""
    current = service_input()
    for step in path:
        current = current.member if step == "[]" else current.members[step]
    return current


def parse(tmp_path: Path, **options: Any) -> ProcessingJobDefinition:
    """processing_from_options with empty defaults for what *options* leaves out."""
    given: dict[str, Any] = {"base_name": "demo", "inputs": (), "outputs": (), "code": None,
                             "entrypoint": (), "arguments": (), "instance_count": 1,
                             "distributions": (), "input_modes": (), "upload_modes": (),
                             "env": (), "max_run": None}
    given.update(options)
    return processing_from_options(**given)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "part-0.csv").write_text("1,2\n")
    return folder


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "evaluate.py"
    path.write_text("print('hello')\n")
    return path


# ---- parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("data", ("data", None)),
    ("data:/opt/ml/processing/in", ("data", "/opt/ml/processing/in")),
    ("./a:b/c", ("./a:b/c", None)),                        # a ':' in a local path
    ("/abs/x:y:/opt/ml/processing/z", ("/abs/x:y", "/opt/ml/processing/z")),  # the last ':'
    ("s3://bucket/key", ("s3://bucket/key", None)),        # the scheme's ':' is no separator
    ("s3://bucket/key/:/opt/ml/processing/in", ("s3://bucket/key/", "/opt/ml/processing/in")),
    ("s3://b/k:relative", ("s3://b/k:relative", None)),    # a container path starts with /
    ("data:/", ("data", "/")),
])
def test_split_location(text: str, expected: tuple[str, str | None]) -> None:
    assert split_location(text) == expected


def test_every_parse_form(tmp_path: Path, data: Path) -> None:
    manifest = tmp_path / "rows.csv"
    manifest.write_text("x\n")
    definition = parse(
        tmp_path, base_name="evaluate",
        inputs=[f"train={data}", f"model={manifest}:/opt/ml/processing/model",
                "test=s3://bucket/test/", "more=s3://bucket/more:/opt/ml/processing/more/data"],
        outputs=[f"evaluation={tmp_path / 'eval'}", "report=s3://bucket/report/:/opt/ml/processing/report"],
        entrypoint=["python3", "-u"], arguments=["--epochs", "3"], instance_count=2,
        distributions=["test=ShardedByS3Key"], input_modes=["more=Pipe", "train=File"],
        upload_modes=["report=Continuous"], env=["LEVEL=debug", "EMPTY=", "PROJECT=override"],
        max_run="1h30m", environment_from_project={"PROJECT": "from-toml", "KEPT": "1"})
    assert definition.inputs == (
        ProcessingInput("train", str(data), "/opt/ml/processing/input/train"),
        ProcessingInput("model", str(manifest), "/opt/ml/processing/model"),
        ProcessingInput("test", "s3://bucket/test/", "/opt/ml/processing/input/test",
                        distribution="ShardedByS3Key"),
        ProcessingInput("more", "s3://bucket/more", "/opt/ml/processing/more/data",
                        input_mode="Pipe"))
    assert definition.outputs == (
        ProcessingOutput("evaluation", str(tmp_path / "eval"), "/opt/ml/processing/output/evaluation"),
        ProcessingOutput("report", "s3://bucket/report/", "/opt/ml/processing/report",
                         upload_mode="Continuous"))
    assert definition.entrypoint == ("python3", "-u")
    assert definition.arguments == ("--epochs", "3")
    assert definition.instance_count == 2
    assert definition.environment == {"PROJECT": "override", "KEPT": "1", "LEVEL": "debug",
                                      "EMPTY": ""}
    assert definition.max_runtime == 5400
    assert definition.code is None
    assert [i.remote for i in definition.inputs] == [False, False, True, True]
    assert [o.remote for o in definition.outputs] == [False, True]
    assert definition.local_inputs == definition.inputs[:2]
    assert definition.local_outputs == definition.outputs[:1]


def test_defaults_leave_the_images_entrypoint_and_cmd(tmp_path: Path) -> None:
    definition = parse(tmp_path)
    assert (definition.entrypoint, definition.arguments) == (None, None)
    assert definition.max_runtime == limits.DEFAULT_MAX_RUNTIME == 86_400
    assert definition.volume_gb == 30
    request = definition.processing_request(job_name="demo-1", image=IMAGE, role=ROLE,
                                            instance_type="ml.m5.xlarge", input_uris={},
                                            output_uris={})
    validate(request)
    assert request == {
        "ProcessingJobName": "demo-1",
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1,
                                                  "InstanceType": "ml.m5.xlarge",
                                                  "VolumeSizeInGB": 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86_400},
        "AppSpecification": {"ImageUri": IMAGE},
        "RoleArn": ROLE}


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200),
                                               ("1.5", 2)])
def test_max_run_durations(tmp_path: Path, text: str, seconds: int) -> None:
    assert parse(tmp_path, max_run=text).max_runtime == seconds


# ---- --code ------------------------------------------------------------------------------------

def test_code_becomes_the_code_input_and_the_entrypoints_last_item(tmp_path: Path, data: Path,
                                                                   script: Path) -> None:
    definition = parse(tmp_path, inputs=[f"test={data}"], code=str(script),
                       entrypoint=["python3"], arguments=["--split", "test"])
    assert definition.code == str(script)
    assert definition.input("code") == ProcessingInput("code", str(script), CODE_PATH)
    assert CODE_PATH == "/opt/ml/processing/input/code"
    # as the SageMaker SDK's ScriptProcessor: command + [the script's container path] + arguments
    assert definition.entrypoint == ("python3", "/opt/ml/processing/input/code/evaluate.py")
    assert definition.arguments == ("--split", "test")
    request = definition.processing_request(
        job_name="demo-1", image=IMAGE, role=ROLE, instance_type="ml.m5.large",
        input_uris={"test": "s3://b/p/test/", "code": "s3://b/p/code/evaluate.py"},
        output_uris={})
    validate(request)
    assert request["ProcessingInputs"][1] == {"InputName": "code", "S3Input": {
        "S3Uri": "s3://b/p/code/evaluate.py", "LocalPath": "/opt/ml/processing/input/code",
        "S3DataType": "S3Prefix", "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}}
    assert request["AppSpecification"] == {
        "ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/evaluate.py"],
        "ContainerArguments": ["--split", "test"]}


def test_code_from_s3_is_used_as_given(tmp_path: Path) -> None:
    definition = parse(tmp_path, code="s3://bucket/scripts/prep.py", entrypoint=["python3"])
    assert definition.entrypoint == ("python3", f"{CODE_PATH}/prep.py")
    request = definition.processing_request(job_name="j", image=IMAGE, role=ROLE,
                                            instance_type="ml.m5.large", input_uris={},
                                            output_uris={})
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://bucket/scripts/prep.py"


# ---- bad input: one ConfigError naming the option ----------------------------------------------

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("input without =", {"inputs": ["train"]}, "--input takes NAME=PATH"),
    ("input without a name", {"inputs": ["=data"]}, "--input takes NAME=PATH"),
    ("input without a path", {"inputs": ["train="]}, "--input takes NAME=PATH"),
    ("input named twice", {"inputs": ["a=s3://b/x", "a=s3://b/y"]}, "--input names 'a' twice"),
    ("missing local input", {"inputs": ["a=no/such/dir"]}, "--input a: no/such/dir does not exist"),
    ("input name with a slash", {"inputs": ["a/b=s3://b/x"]}, "--input a/b: invalid name"),
    ("input name too long", {"inputs": [f"{'n' * 65}=s3://b/x"]}, "invalid name"),
    ("s3 input outside /opt/ml/processing", {"inputs": ["a=s3://b/x:/data/a"]},
     "--input a: container path '/data/a' must be a folder below /opt/ml/processing/"),
    ("input at the root itself", {"inputs": ["a=s3://b/x:/opt/ml/processing/"]},
     "must be a folder below /opt/ml/processing/"),
    ("input path climbing out", {"inputs": ["a=s3://b/x:/opt/ml/processing/../code"]},
     "must be a folder below"),
    ("input path too long", {"inputs": [f"a=s3://b/x:/opt/ml/processing/{'p' * 240}"]},
     "is longer than 256 characters"),
    ("two inputs at one path", {"inputs": ["a=s3://b/x:/opt/ml/processing/in",
                                           "b=s3://b/y:/opt/ml/processing/in/"]},
     "--input b: container path /opt/ml/processing/in/ overlaps --input a's"),
    ("an output inside an input", {"inputs": ["a=s3://b/x:/opt/ml/processing/in"],
                                   "outputs": ["o=s3://b/o:/opt/ml/processing/in/out"]},
     "--output o: container path /opt/ml/processing/in/out overlaps --input a's"),
    ("an input and an output with one name", {"inputs": ["a=s3://b/x"], "outputs": ["a=s3://b/o"]},
     "--output a: the name 'a' is taken by --input a"),
    ("file:// source", {"inputs": ["a=file:///tmp/x"]}, "--input a: file:///tmp/x: use a local path"),
    ("s3 URI without a bucket", {"inputs": ["a=s3:///key"]}, "--input a: s3:///key is not an s3://"),
    ("s3 URI too long", {"inputs": [f"a=s3://b/{'k' * 1020}"]}, "at most 1024 characters"),
    ("unknown input mode", {"inputs": ["a=s3://b/x"], "input_modes": ["a=Stream"]},
     "--input-mode a=Stream: use File or Pipe"),
    ("input mode for no input", {"inputs": ["a=s3://b/x"], "input_modes": ["b=Pipe"]},
     "--input-mode b=Pipe: no input 'b' (the inputs are a)"),
    ("input mode without =", {"inputs": ["a=s3://b/x"], "input_modes": ["Pipe"]},
     "--input-mode takes NAME=File|Pipe"),
    ("unknown distribution", {"inputs": ["a=s3://b/x"], "distributions": ["a=Sharded"]},
     "--distribution a=Sharded: use FullyReplicated or ShardedByS3Key"),
    ("distribution for no input", {"distributions": ["a=ShardedByS3Key"]},
     "--distribution a=ShardedByS3Key: no input 'a' (the inputs are none)"),
    ("unknown upload mode", {"outputs": ["o=s3://b/o"], "upload_modes": ["o=Streaming"]},
     "--upload-mode o=Streaming: use EndOfJob or Continuous"),
    ("upload mode for an input", {"inputs": ["a=s3://b/x"], "outputs": ["o=s3://b/o"],
                                  "upload_modes": ["a=Continuous"]},
     "--upload-mode a=Continuous: no output 'a' (the outputs are o)"),
    ("output without =", {"outputs": ["o"]}, "--output takes NAME=DESTINATION"),
    ("empty output destination", {"outputs": ["o= "]}, "--output o: the destination is empty"),
    ("env without =", {"env": ["LEVEL"]}, "--env takes KEY=VALUE, got 'LEVEL'"),
    ("env name with a dash", {"env": ["MY-VAR=1"]}, "--env 'MY-VAR': names are"),
    ("env value too long", {"env": [f"V={'v' * 257}"]}, "--env V: a value is text of at most 256"),
    ("too many env variables", {"env": [f"V{i}=1" for i in range(101)]},
     "--env: 101 environment variables; a processing job takes at most 100"),
    ("max run not a duration", {"max_run": "soon"}, "--max-run: 'soon' is not a duration"),
    ("max run over 9 days", {"max_run": "777601"}, "--max-run 777601: a processing job's"),
    ("no instance", {"instance_count": 0}, "--instance-count 0: InstanceCount takes 1 to 100"),
    ("101 instances", {"instance_count": 101}, "--instance-count 101: InstanceCount takes 1 to 100"),
    ("volume of 0 GB", {"volume_gb": 0}, "--volume-size 0: VolumeSizeInGB takes 1 to 16384"),
    ("11 inputs", {"inputs": [f"i{n}=s3://b/{n}" for n in range(11)]},
     "11 inputs (--input, --code); a processing job takes at most 10"),
    ("11 outputs", {"outputs": [f"o{n}=s3://b/{n}" for n in range(11)]},
     "11 outputs (--output); a processing job takes at most 10"),
    ("entrypoint item too long", {"entrypoint": ["x" * 257]}, "--entrypoint 'xxxx"),
    ("101 arguments", {"arguments": [str(n) for n in range(101)]},
     "--argument: 101 items; the container takes 1 to 100"),
    ("code without entrypoint", {"code": "CODE"}, "--code needs --entrypoint"),
    ("code that is missing", {"code": "no/such.py", "entrypoint": ["python3"]},
     "--code no/such.py: no such file"),
    ("code that is a folder", {"code": "DATA", "entrypoint": ["python3"]},
     "not a file; give the one script to run"),
    ("code with an input named code", {"code": "CODE", "entrypoint": ["python3"],
                                       "inputs": ["code=s3://b/c"]},
     "the input name 'code' is taken by --input code"),
    ("code as an s3 prefix", {"code": "s3://bucket/scripts/", "entrypoint": ["python3"]},
     "--code s3://bucket/scripts/: name one object"),
    ("invalid base name", {"base_name": "my_job"}, "invalid job name 'my_job'"),
]


@pytest.mark.parametrize(("options", "message"), [pytest.param(o, m, id=i) for i, o, m in BAD])
def test_bad_options_are_one_config_error_naming_the_option(tmp_path: Path, data: Path,
                                                            script: Path, options: dict[str, Any],
                                                            message: str) -> None:
    if options.get("code") == "CODE":
        options = {**options, "code": str(script)}
    if options.get("code") == "DATA":
        options = {**options, "code": str(data)}
    with pytest.raises(ConfigError) as caught:
        parse(tmp_path, **options)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_a_local_output_that_is_a_file_is_refused(tmp_path: Path, script: Path) -> None:
    with pytest.raises(ConfigError, match=r"--output o: .* is a file; an output goes to a folder"):
        parse(tmp_path, outputs=[f"o={script}"])


def test_gzip_needs_pipe_and_a_manifest_is_one_file(tmp_path: Path, data: Path) -> None:
    with pytest.raises(ConfigError, match="Gzip needs Pipe input mode"):
        ProcessingJobDefinition("demo", inputs=(ProcessingInput("a", "s3://b/x", compression="Gzip"),))
    piped = ProcessingJobDefinition("demo", inputs=(
        ProcessingInput("a", "s3://b/x", input_mode="Pipe", compression="Gzip"),))
    assert piped.inputs[0].local_path == "/opt/ml/processing/input/a"
    with pytest.raises(ConfigError, match="a ManifestFile input is one manifest file"):
        ProcessingJobDefinition("demo", inputs=(
            ProcessingInput("a", str(data), s3_data_type="ManifestFile"),))
    with pytest.raises(ConfigError, match="S3DataType a=AugmentedManifestFile: use S3Prefix or"):
        ProcessingJobDefinition("demo", inputs=(
            ProcessingInput("a", "s3://b/x", s3_data_type="AugmentedManifestFile"),))
    with pytest.raises(ConfigError, match="S3CompressionType a=Zip: use None or Gzip"):
        ProcessingJobDefinition("demo", inputs=(ProcessingInput("a", "s3://b/x", compression="Zip"),))


def test_an_invalid_definition_cannot_be_made_by_replace_either(tmp_path: Path) -> None:
    definition = parse(tmp_path, inputs=["a=s3://b/x"])
    with pytest.raises(ConfigError, match="InstanceCount takes 1 to 100"):
        dataclasses.replace(definition, instance_count=0)
    with pytest.raises(ConfigError, match="--code needs --entrypoint"):
        dataclasses.replace(definition, code="s3://b/x", inputs=(
            ProcessingInput("code", "s3://b/x", CODE_PATH),))
    with pytest.raises(ConfigError, match="its input 'code' is missing"):
        dataclasses.replace(definition, code="s3://b/x", entrypoint=("python3",))


# ---- limits: at the edge accepted, and the same as the service model's ------------------------

def test_the_limits_at_their_edges_are_accepted(tmp_path: Path) -> None:
    definition = parse(
        tmp_path, inputs=[f"i{n}=s3://b/{n}" for n in range(10)],
        outputs=[f"o{n}=s3://b/o{n}" for n in range(10)], instance_count=100,
        entrypoint=["e" * 256] + ["x"] * 99, arguments=["a" * 256] * 100,
        env=[f"V{n}={'v' * 256}" for n in range(99)] + [f"{'K' * 256}=1"], max_run="777600",
        volume_gb=16_384)
    request = definition.processing_request(job_name="j" * 63, image=IMAGE, role=ROLE,
                                            instance_type="ml.m5.large", input_uris={},
                                            output_uris={})
    validate(request)
    assert len(request["ProcessingInputs"]) == len(request["ProcessingOutputConfig"]["Outputs"]) == 10


def test_the_limits_table_matches_the_service_model() -> None:
    """byoc's limits are CreateProcessingJob's (botocore validates types and required members,
    not enums or maxima, so byoc checks those itself)."""
    def enum(*path: str) -> tuple[str, ...]:
        return tuple(sorted(shape(*path).metadata["enum"]))

    def maximum(*path: str) -> int:
        return int(shape(*path).metadata["max"])

    s3_input = ("ProcessingInputs", "[]", "S3Input")
    s3_output = ("ProcessingOutputConfig", "Outputs", "[]", "S3Output")
    assert tuple(sorted(limits.PROCESSING_INPUT_MODES)) == enum(*s3_input, "S3InputMode")
    assert tuple(sorted(limits.PROCESSING_DISTRIBUTIONS)) == enum(*s3_input, "S3DataDistributionType")
    assert tuple(sorted(limits.PROCESSING_COMPRESSIONS)) == enum(*s3_input, "S3CompressionType")
    assert tuple(sorted(limits.PROCESSING_S3_DATA_TYPES)) == enum(*s3_input, "S3DataType")
    assert tuple(sorted(limits.UPLOAD_MODES)) == enum(*s3_output, "S3UploadMode")
    assert limits.MAX_PROCESSING_INPUTS == maximum("ProcessingInputs")
    assert limits.MAX_PROCESSING_OUTPUTS == maximum("ProcessingOutputConfig", "Outputs")
    assert limits.MAX_PROCESSING_INSTANCES == maximum(
        "ProcessingResources", "ClusterConfig", "InstanceCount")
    assert limits.MAX_VOLUME_GB == maximum("ProcessingResources", "ClusterConfig", "VolumeSizeInGB")
    assert limits.MAX_PROCESSING_RUNTIME == maximum("StoppingCondition", "MaxRuntimeInSeconds")
    assert limits.MAX_PROCESSING_LOCAL_PATH == maximum(*s3_input, "LocalPath") == maximum(
        *s3_output, "LocalPath")
    assert limits.MAX_S3_URI == maximum(*s3_input, "S3Uri") == maximum(*s3_output, "S3Uri")
    assert limits.MAX_APP_ITEMS == maximum("AppSpecification", "ContainerEntrypoint") == maximum(
        "AppSpecification", "ContainerArguments")
    assert limits.MAX_APP_ITEM == maximum("AppSpecification", "ContainerEntrypoint", "[]")
    assert limits.MAX_ENVIRONMENT == maximum("Environment")
    environment = shape("Environment")
    assert limits.MAX_PROCESSING_ENV_TEXT == int(environment.key.metadata["max"]) == int(
        environment.value.metadata["max"])
    assert limits.ENV_NAME.pattern == environment.key.metadata["pattern"]
    assert limits.JOB_NAME.pattern == shape("ProcessingJobName").metadata["pattern"]


# ---- the requests ------------------------------------------------------------------------------

def test_processing_request_is_valid_and_whole(tmp_path: Path, data: Path, script: Path) -> None:
    definition = parse(
        tmp_path, inputs=[f"train={data}", "test=s3://bucket/test/:/opt/ml/processing/test"],
        outputs=[f"evaluation={tmp_path / 'eval'}:/opt/ml/processing/evaluation",
                 "logs=s3://bucket/logs/"],
        code=str(script), entrypoint=["python3"], arguments=["--verbose"], instance_count=3,
        distributions=["test=ShardedByS3Key"], input_modes=["test=Pipe"],
        upload_modes=["logs=Continuous"], env=["LEVEL=INFO"], max_run="2h", volume_gb=50)
    request = definition.processing_request(
        job_name="evaluate-1", image=IMAGE, role=ROLE, instance_type="ml.c5.xlarge",
        input_uris={"train": "s3://b/p/train/", "code": "s3://b/p/code/evaluate.py"},
        output_uris={"evaluation": "s3://b/p/evaluation/"})
    validate(request)

    def s3_input(name: str, uri: str, path: str, mode: str = "File",
                 distribution: str = "FullyReplicated") -> dict[str, Any]:
        return {"InputName": name, "S3Input": {
            "S3Uri": uri, "LocalPath": path, "S3DataType": "S3Prefix", "S3InputMode": mode,
            "S3DataDistributionType": distribution, "S3CompressionType": "None"}}

    assert request == {
        "ProcessingJobName": "evaluate-1",
        "ProcessingInputs": [
            s3_input("train", "s3://b/p/train/", "/opt/ml/processing/input/train"),
            s3_input("test", "s3://bucket/test/", "/opt/ml/processing/test", "Pipe",
                     "ShardedByS3Key"),
            s3_input("code", "s3://b/p/code/evaluate.py", "/opt/ml/processing/input/code")],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "evaluation", "S3Output": {
                "S3Uri": "s3://b/p/evaluation/", "LocalPath": "/opt/ml/processing/evaluation",
                "S3UploadMode": "EndOfJob"}},
            {"OutputName": "logs", "S3Output": {
                "S3Uri": "s3://bucket/logs/", "LocalPath": "/opt/ml/processing/output/logs",
                "S3UploadMode": "Continuous"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 3,
                                                  "InstanceType": "ml.c5.xlarge",
                                                  "VolumeSizeInGB": 50}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "AppSpecification": {"ImageUri": IMAGE,
                             "ContainerEntrypoint": ["python3", f"{CODE_PATH}/evaluate.py"],
                             "ContainerArguments": ["--verbose"]},
        "RoleArn": ROLE,
        "Environment": {"LEVEL": "INFO"}}
    assert definition.local_gaps() == [
        "S3InputMode Pipe (input 'test')",
        "S3DataDistributionType ShardedByS3Key (input 'test')",
        "S3UploadMode Continuous (output 'logs')"]


def test_a_local_input_or_output_needs_its_uri_and_the_job_name_is_checked(tmp_path: Path,
                                                                          data: Path) -> None:
    definition = parse(tmp_path, inputs=[f"train={data}"], outputs=[f"o={tmp_path / 'out'}"])
    common = {"image": IMAGE, "role": ROLE, "instance_type": "ml.m5.large"}
    with pytest.raises(ConfigError, match="input 'train' .* has no S3 URI yet"):
        definition.processing_request(job_name="j", input_uris={}, output_uris={"o": "s3://b/o"},
                                      **common)
    with pytest.raises(ConfigError, match="output 'o' .* has no S3 URI yet"):
        definition.processing_request(job_name="j", input_uris={"train": "s3://b/t"},
                                      output_uris={}, **common)
    with pytest.raises(ConfigError, match="invalid job name 'bad_name'"):
        definition.processing_request(job_name="bad_name", input_uris={"train": "s3://b/t"},
                                      output_uris={"o": "s3://b/o"}, **common)


def test_local_request_differs_from_the_sagemaker_one_only_where_it_must(
        tmp_path: Path, data: Path, script: Path) -> None:
    """What a local run writes as /opt/ml/config/processingjobconfig.json: the same request
    with file:// URIs, instance type local, no role, and the ProcessingJobArn that the SageMaker
    SDK's local mode also writes there."""
    definition = parse(tmp_path, inputs=[f"train={data}", f"one={script}:/opt/ml/processing/one",
                                         "remote=s3://bucket/r/"],
                       outputs=[f"evaluation={tmp_path / 'eval'}"], code=str(script),
                       entrypoint=["python3"], env=["A=1"])
    local = definition.local_request(job_name="evaluate-1", image="demo:latest")
    remote = definition.processing_request(
        job_name="evaluate-1", image=IMAGE, role=ROLE, instance_type="ml.m5.large",
        input_uris={"train": "s3://b/train/", "one": "s3://b/one/evaluate.py",
                    "code": "s3://b/code/evaluate.py"},
        output_uris={"evaluation": "s3://b/evaluation/"})
    validate({k: v for k, v in local.items() if k != "ProcessingJobArn"})
    assert local["ProcessingJobArn"] == contract.arn("processing-job", "evaluate-1") == (
        f"arn:aws:sagemaker:us-east-1:{contract.LOCAL_ACCOUNT}:processing-job/evaluate-1")
    differing = {key for key in set(local) | set(remote) if local.get(key) != remote.get(key)}
    assert differing == {"ProcessingJobArn", "ProcessingInputs", "ProcessingOutputConfig",
                         "ProcessingResources", "AppSpecification", "RoleArn"}
    assert local["RoleArn"] == LOCAL_ROLE
    assert local["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "local"
    assert local["AppSpecification"] == {**remote["AppSpecification"], "ImageUri": "demo:latest"}
    assert [i["S3Input"]["S3Uri"] for i in local["ProcessingInputs"]] == [
        data.resolve().as_uri() + "/", script.resolve().as_uri(), "s3://bucket/r/",
        script.resolve().as_uri()]
    assert local["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == (
        (tmp_path / "eval").resolve().as_uri() + "/")
    for side in (local, remote):  # everything else is the same, entry by entry
        for entry in side["ProcessingInputs"]:
            entry["S3Input"].pop("S3Uri")
        for entry in side["ProcessingOutputConfig"]["Outputs"]:
            entry["S3Output"].pop("S3Uri")
    assert local["ProcessingInputs"] == remote["ProcessingInputs"]
    assert local["ProcessingOutputConfig"] == remote["ProcessingOutputConfig"]
    assert definition.local_request(job_name="evaluate-1", image=None)["AppSpecification"][
        "ImageUri"] == "(process backend)"


def test_definitions_are_frozen_values(tmp_path: Path) -> None:
    definition = parse(tmp_path, inputs=["a=s3://b/x"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        definition.instance_count = 2  # type: ignore[misc]
    assert parse(tmp_path, inputs=["a=s3://b/x"]) == definition
    with pytest.raises(KeyError):
        definition.input("nope")
    with pytest.raises(KeyError):
        definition.output("nope")


def test_output_folders_are_new_or_empty_and_apart(tmp_path: Path, data: Path) -> None:
    """What a run checks before it starts: nothing in an output folder is overwritten, and no
    output folder lies in (or holds) an input, another output's folder or a protected folder."""
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "kept.txt").write_text("kept\n")
    (tmp_path / "empty").mkdir()
    job_dir = tmp_path / "jobs" / "j-1"
    fine = parse(tmp_path, inputs=[f"test={data}", "remote=s3://b/r/"],
                 outputs=[f"a={tmp_path / 'empty'}", f"b={tmp_path / 'new' / 'b'}",
                          "c=s3://b/c/"])
    fine.check_output_folders({"the job's own directory": job_dir})
    cases = [
        ([f"a={busy}"], f"--output a: {busy} is not empty; name a new or empty folder"),
        ([f"a={data / 'out'}"], f"--output a: {data / 'out'} overlaps input 'test' ({data})"),
        ([f"a={tmp_path / 'jobs'}"],  # a folder holding a protected one
         f"--output a: {tmp_path / 'jobs'} overlaps the job's own directory ({job_dir})"),
        ([f"a={tmp_path / 'x'}", f"b={tmp_path / 'x' / 'y'}"],
         f"--output b: {tmp_path / 'x' / 'y'} overlaps the folder of output 'a' ({tmp_path / 'x'})"),
        ([f"a={job_dir / 'out'}"],
         f"--output a: {job_dir / 'out'} overlaps the job's own directory ({job_dir})"),
    ]
    for outputs, message in cases:
        definition = parse(tmp_path, inputs=[f"test={data}"], outputs=outputs)
        with pytest.raises(ConfigError) as caught:
            definition.check_output_folders({"the job's own directory": job_dir})
        assert caught.value.message.startswith(message), caught.value.message
    assert (busy / "kept.txt").read_text() == "kept\n"
