"""byoc's contract module, and the generated train program run on a tree it writes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from byoc import contract, job, scaffold
from byoc.errors import ConfigError
from byoc.project import Project
from helpers import REPO

PROGRAM = REPO / "container" / "iris_classifier"
IRIS = REPO / "local_test" / "test_dir" / "input" / "data" / "training"


def _container_optml() -> object:
    spec = importlib.util.spec_from_file_location("container_optml", PROGRAM / "optml.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_written_config_has_the_shapes_sagemaker_sends(tmp_path: Path) -> None:
    hosts = contract.host_names(3)
    assert hosts == ["algo-1", "algo-2", "algo-3"]
    tree = contract.write_training_config(
        tmp_path, {"epochs": "10"},
        [contract.Channel("train", content_type="text/csv"),
         contract.Channel("validation", distribution="ShardedByS3Key")],
        host="algo-2", hosts=list(reversed(hosts)))
    assert json.loads(tree.hyperparameters_json.read_text()) == {"epochs": "10"}
    assert json.loads(tree.inputdataconfig_json.read_text()) == {
        "train": {"ContentType": "text/csv", "TrainingInputMode": "File",
                  "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
        "validation": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key",
                       "RecordWrapperType": "None"},
    }
    resources = json.loads(tree.resourceconfig_json.read_text())
    assert resources["current_host"] == "algo-2" and resources["hosts"] == hosts
    assert resources["instance_groups"] == [{"instance_group_name": "homogeneousCluster",
                                             "instance_type": "local", "hosts": hosts}]
    assert {"network_interface_name", "current_group_name", "current_instance_type"} <= set(resources)
    for path in (tree.model_dir, tree.output_data_dir, tree.channel("train").parent):
        assert path.is_dir()


def test_non_string_hyperparameters_are_stringified_with_a_note() -> None:
    values, notes = contract.stringify_hyperparameters({"a": "x", "b": 3, "c": True, "d": [1]})
    assert values == {"a": "x", "b": "3", "c": "true", "d": "[1]"}
    assert len(notes) == 3 and "'b' is not a string" in notes[0]


def test_read_failure_returns_the_first_1024_characters(tmp_path: Path) -> None:
    assert contract.read_failure(tmp_path) is None
    contract.OptMl(tmp_path).output_dir.mkdir(parents=True)
    contract.OptMl(tmp_path).failure_file.write_text("x" * 2000)
    assert contract.read_failure(tmp_path) == "x" * 1024


def test_the_container_copy_of_the_paths_agrees(tmp_path: Path) -> None:
    optml = _container_optml()
    theirs = optml.OptMl(tmp_path)  # type: ignore[attr-defined]
    ours = contract.OptMl(tmp_path)
    names = {name for name, value in vars(type(theirs)).items() if isinstance(value, property)}
    assert names == {name for name, value in vars(contract.OptMl).items() if isinstance(value, property)}
    for name in sorted(names):
        assert getattr(theirs, name) == getattr(ours, name), name
    assert theirs.channel("training") == ours.channel("training")
    assert optml.FAILURE_REASON_LIMIT == contract.FAILURE_REASON_LIMIT  # type: ignore[attr-defined]
    assert optml.BASE_DIR_ENV == contract.BASE_DIR_ENV  # type: ignore[attr-defined]
    assert optml.DEFAULT_BASE_DIR == contract.CONTAINER_ROOT  # type: ignore[attr-defined]


def _train(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, contract.BASE_DIR_ENV: str(root)}
    return subprocess.run([sys.executable, str(PROGRAM / "train")], env=env, capture_output=True,
                          text=True, timeout=120)


def test_generated_train_runs_on_a_tree_written_by_contract(tmp_path: Path) -> None:
    tree = contract.write_training_config(tmp_path, {"epochs": '"3"', "learning_rate": "0.05"},
                                          [contract.Channel("training", content_type="text/csv")])
    shutil.copytree(IRIS, tree.channel("training"))
    result = _train(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training:accuracy=" in result.stdout
    assert (tree.model_dir / "model.npz").is_file()
    assert contract.read_failure(tmp_path) is None


def test_generated_train_failure_is_read_back_by_contract(tmp_path: Path) -> None:
    tree = contract.write_training_config(tmp_path, {"epochs": "0"},
                                          [contract.Channel("training")])
    shutil.copytree(IRIS, tree.channel("training"))
    result = _train(tmp_path)
    assert result.returncode == 1
    reason = contract.read_failure(tmp_path)
    assert reason is not None
    assert reason.splitlines()[0] == "hyperparameter 'epochs': must be at least 1, got 0"
    assert list(tree.model_dir.iterdir()) == []


def test_the_reader_returns_what_the_writer_wrote(tmp_path: Path) -> None:
    channels = [contract.Channel("train", content_type="text/csv"),
                contract.Channel("validation", input_mode="Pipe", distribution="ShardedByS3Key")]
    contract.write_training_config(tmp_path, {"epochs": "10"}, channels, host="algo-2",
                                   hosts=["algo-2", "algo-1"])
    config = contract.read_training_config(tmp_path)
    assert config.hyperparameters == {"epochs": "10"}
    assert config.channels == {channel.name: channel for channel in channels}
    assert config.resource["current_host"] == "algo-2"
    assert config.resource["hosts"] == ["algo-1", "algo-2"]


def test_the_reader_takes_a_missing_file_as_empty_and_refuses_a_bad_one(tmp_path: Path) -> None:
    assert contract.read_training_config(tmp_path) == contract.TrainingConfig()
    tree = contract.OptMl(tmp_path)
    tree.config_dir.mkdir(parents=True)
    tree.hyperparameters_json.write_text('["not", "an", "object"]')
    with pytest.raises(ConfigError, match="hyperparameters.json must hold a JSON object"):
        contract.read_training_config(tmp_path)
    tree.hyperparameters_json.write_text("{broken")
    with pytest.raises(ConfigError, match="hyperparameters.json is not JSON: Expecting property"):
        contract.read_training_config(tmp_path)
    with pytest.raises(ConfigError, match="not a file"):
        contract.read_hyperparameters(tmp_path / "missing.json")


DEEP = "[" * 100000 + "]" * 100000


def test_every_json_reader_turns_deep_nesting_into_one_error_naming_the_file(tmp_path: Path) -> None:
    """JSON nested past Python's recursion limit is a ConfigError naming the file, whichever
    reader meets it: contract's, the training config's, the tuning request's and a job's record."""
    from byoc.local import record as jobrecord
    from byoc.tune import config as tune_config

    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    message = f"{deep} is not JSON byoc can read: it nests arrays or objects too deeply"
    with pytest.raises(ConfigError) as caught:
        contract.read_json(deep)
    assert caught.value.message == message
    with pytest.raises(ConfigError) as caught:
        tune_config.load(deep)
    assert caught.value.message == message
    tree = contract.OptMl(tmp_path / "tree")
    tree.config_dir.mkdir(parents=True)
    tree.inputdataconfig_json.write_text('{"train": ' + DEEP + "}")
    with pytest.raises(ConfigError, match="inputdataconfig.json is not JSON byoc can read"):
        contract.read_training_config(tree.root)
    job = tmp_path / "job"
    job.mkdir()
    (job / jobrecord.RECORD).write_text(DEEP)
    with pytest.raises(ConfigError, match="job.json is not JSON byoc can read"):
        jobrecord.JobRecord.load(job)
    assert jobrecord.read(job) == {}
    deep.write_text("1" * 5000)  # past int()'s digit limit: a ValueError, not a JSONDecodeError
    with pytest.raises(ConfigError, match="deep.json is not JSON: Exceeds the limit"):
        contract.read_json(deep, object)


def test_job_env_and_container_paths_are_sagemakers() -> None:
    env = contract.job_env("job-1", "eu-west-1")
    assert env == {"TRAINING_JOB_NAME": "job-1", "AWS_REGION": "eu-west-1",
                   "TRAINING_JOB_ARN": "arn:aws:sagemaker:eu-west-1:000000000000:training-job/job-1"}
    assert contract.container_channel("train") == "/opt/ml/input/data/train"
    assert contract.IN_CONTAINER.model_dir.as_posix() == "/opt/ml/model"


def test_hyperparameters_come_from_a_file_or_the_project_with_overrides_on_top(tmp_path: Path) -> None:
    project = Project.find(scaffold.new_project("hp-project", output_dir=tmp_path))
    defaults = project.local_inputs().hyperparameters
    assert defaults, "the template's local_test has hyperparameters"
    assert job.hyperparameters(project) is None  # train takes the project's
    assert job.hyperparameters(project, overrides={"x": "1"}) == {**defaults, "x": "1"}
    given = tmp_path / "hp.json"
    given.write_text('{"a": 1}')
    assert job.hyperparameters(project, given) == {"a": 1}
    assert job.hyperparameters(None, given, {"b": "2"}) == {"a": 1, "b": "2"}
    assert job.hyperparameters(None, overrides={"b": "2"}) == {"b": "2"}
    given.write_text("[1]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        job.hyperparameters(project, given)


def test_project_find_is_the_one_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Project.find(required=False) is None
    with pytest.raises(ConfigError, match="not a byoc project"):
        Project.find()
    with pytest.raises(ConfigError, match="not a byoc project"):
        Project.find(tmp_path, required=False)  # a path given must lead to a project
    root = scaffold.new_project("found", output_dir=tmp_path)
    (root / "container").mkdir(exist_ok=True)
    monkeypatch.chdir(root / "container")
    found = Project.find(required=False)
    assert found is not None and found.root == root
    assert found.payload == root / "local_test" / "payload.csv"
    assert found.latest_model is None
    (root / "byoc.toml").write_text("[project\nbroken")
    with pytest.raises(ConfigError, match="cannot read"):
        Project.find(required=False)  # a bad byoc.toml is never taken for no project
