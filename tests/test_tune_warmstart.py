"""WarmStartConfig's rules on local parents, and what the parents teach the optimizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tune_requests import edited, request

from byoc.errors import ConfigError
from byoc.tune import config, strategies, warmstart

PARENTS = "WarmStartConfig.ParentHyperParameterTuningJobs"
SOURCE = {"Image": "probe:latest", "Channels": {"training": "/data"}}


def parent(root: Path, body: dict[str, Any], status: str = "Completed",
           source: dict[str, Any] | None = None, values: tuple[float, ...] = (1.5, 1.2)) -> None:
    directory = root / body["HyperParameterTuningJobName"]
    directory.mkdir(parents=True)
    (directory / "request.json").write_text(json.dumps(body))
    (directory / "tuning.json").write_text(json.dumps({"HyperParameterTuningJobStatus": status}))
    (directory / "local.json").write_text(json.dumps(source or SOURCE))
    jobs = [{"TrainingJobName": f"{body['HyperParameterTuningJobName']}-{i + 1:03d}-0000000{i}",
             "TrainingJobStatus": "Completed", "ObjectiveStatus": "Succeeded",
             "TunedHyperParameters": {"n": str(5 + i), "x": "0.25", "kind": "b"},
             "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Minimize",
                                                             "MetricName": "validation:loss",
                                                             "Value": value}}
            for i, value in enumerate(values)]
    (directory / "training-jobs.json").write_text(json.dumps({"TrainingJobSummaries": jobs}))


def child(kind: str = "IdenticalDataAndAlgorithm", *parents: str, **changes: Any) -> config.TuningRequest:
    body = request("child", "Bayesian", max_jobs=4, parallel=1, **changes)
    body["WarmStartConfig"] = {"WarmStartType": kind, "ParentHyperParameterTuningJobs": [
        {"HyperParameterTuningJobName": name} for name in (parents or ("parent",))]}
    return config.parse(body)


def test_parents_seed_the_bayesian_optimizer(tmp_path: Path) -> None:
    parent(tmp_path, request("parent"))
    wanted = child()
    loaded = warmstart.load_parents(wanted, tmp_path, SOURCE)
    seeds = list(warmstart.seeds(wanted, loaded))
    assert [(tuned["n"], value) for tuned, value, _, _ in seeds] == [("5", 1.5), ("6", 1.2)]
    strategy = strategies.make(wanted)
    for tuned, value, outcome, curve in seeds:
        strategy.seed(tuned, value, outcome, curve)
    assert isinstance(strategy, strategies.OptunaStrategy)
    assert [t.value for t in strategy.study.trials] == [1.5, 1.2]
    assert strategy.study.best_params == {"n": 6, "x": 0.25, "kind": "b"}


def test_a_parent_value_outside_the_new_ranges_is_left_out(tmp_path: Path) -> None:
    parent(tmp_path, request("parent"))
    narrower = child(ParameterRanges={
        "IntegerParameterRanges": [{"Name": "n", "MinValue": "6", "MaxValue": "12"}],
        "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0.001", "MaxValue": "1"}],
        "CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b"]}]})
    strategy = strategies.make(narrower)
    for tuned, value, outcome, curve in warmstart.seeds(narrower, warmstart.load_parents(
            narrower, tmp_path, SOURCE)):
        strategy.seed(tuned, value, outcome, curve)
    assert isinstance(strategy, strategies.OptunaStrategy)
    assert [t.params["n"] for t in strategy.study.trials] == [6]


@pytest.mark.parametrize(("make_parent", "wanted", "message"), [
    (lambda root: None, lambda: child(), f"{PARENTS}[0].HyperParameterTuningJobName: no local"
                                         " tuning job 'parent'"),
    (lambda root: parent(root, request("parent"), status="InProgress"), lambda: child(),
     f"{PARENTS}[0].HyperParameterTuningJobName: parent is InProgress; a parent must have ended"),
    (lambda root: parent(root, edited(request("parent"), "HyperParameterTuningJobConfig."
                                      "HyperParameterTuningJobObjective.MetricName", "train:loss")
                         | {"TrainingJobDefinition": edited(request(), "TrainingJobDefinition."
                            "AlgorithmSpecification.MetricDefinitions", [
                                {"Name": "train:loss", "Regex": "t=(1)"}])["TrainingJobDefinition"]}),
     lambda: child(), "parent optimizes 'train:loss', not 'validation:loss'"),
    (lambda root: parent(root, request("parent"), source={"Image": "other:1", "Channels": {}}),
     lambda: child(), "WarmStartConfig.WarmStartType: IdenticalDataAndAlgorithm, but parent ran with"
                      " Image 'other:1'"),
    (lambda root: parent(root, request("parent", static={"extra": "1"})), lambda: child(),
     "parent has other hyperparameters (extra)"),
    (lambda root: parent(root, edited(request("parent"), "HyperParameterTuningJobConfig.ParameterRanges",
                                      {"CategoricalParameterRanges": [
                                          {"Name": "kind", "Values": ["a", "b"]},
                                          {"Name": "n", "Values": ["5", "7"]}],
                                       "ContinuousParameterRanges": [
                                          {"Name": "x", "MinValue": "0.001", "MaxValue": "1"}]})),
     lambda: child(), "'n' is tuned as Categorical in parent and as Integer here"),
    (lambda root: parent(root, edited(request("parent", static={f"s{i}": "1" for i in range(11)}),
                                      "TrainingJobDefinition.StaticHyperParameters.epochs", "3")),
     lambda: child("TransferLearning", static={f"s{i}": "2" for i in range(11)}),
     "11 changes of static values or between static and tuned hyperparameters against parent;"
     " at most 10"),
    (lambda root: parent(root, request("child")), lambda: child("TransferLearning", "child"),
     "a tuning job cannot be its own parent"),
])
def test_a_parent_the_service_refuses(tmp_path: Path, make_parent: Any, wanted: Any, message: str) -> None:
    make_parent(tmp_path)
    with pytest.raises(ConfigError) as caught:
        warmstart.load_parents(wanted(), tmp_path, SOURCE)
    assert message in caught.value.message


def test_transfer_learning_takes_other_data(tmp_path: Path) -> None:
    parent(tmp_path, request("parent"), source={"Image": "other:1", "Channels": {}})
    assert len(warmstart.load_parents(child("TransferLearning"), tmp_path, SOURCE)) == 1


def test_more_than_five_parents_is_refused() -> None:
    with pytest.raises(ConfigError, match=f"{PARENTS}: 6 items; at most 5"):
        child("TransferLearning", *(f"p{i}" for i in range(6)))
