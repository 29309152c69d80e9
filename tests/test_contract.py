"""byoc's contract module, and the generated train program run on a tree it writes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from byoc import contract
from conftest import REPO

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
    tree = contract.write_training_config(tmp_path, {"max_depth": '"3"', "criterion": "entropy"},
                                          [contract.Channel("training", content_type="text/csv")])
    shutil.copytree(IRIS, tree.channel("training"))
    result = _train(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training:accuracy=" in result.stdout
    assert (tree.model_dir / "model.npz").is_file()
    assert contract.read_failure(tmp_path) is None


def test_generated_train_failure_is_read_back_by_contract(tmp_path: Path) -> None:
    tree = contract.write_training_config(tmp_path, {"max_depth": "0"},
                                          [contract.Channel("training")])
    shutil.copytree(IRIS, tree.channel("training"))
    result = _train(tmp_path)
    assert result.returncode == 1
    reason = contract.read_failure(tmp_path)
    assert reason is not None
    assert reason.splitlines()[0] == "hyperparameter 'max_depth': must be at least 1, got 0"
    assert list(tree.model_dir.iterdir()) == []
