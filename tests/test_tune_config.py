"""A tuning request the service would refuse: one Error line naming the field, before any job."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from read_only import read_only
from tune_requests import DELETE, edited, grid, request

from byoc.errors import ConfigError
from byoc.tune import config
from byoc.tune.ranges import CategoricalRange, NumericRange

TUNEPROBE = Path(__file__).resolve().parent / "fixtures" / "tuneprobe"
CFG = "HyperParameterTuningJobConfig"
RANGES = f"{CFG}.ParameterRanges"
SPEC = "TrainingJobDefinition.AlgorithmSpecification"

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("parallel above number", edited(request(max_jobs=3, parallel=2), f"{CFG}.ResourceLimits."
                                     "MaxParallelTrainingJobs", 4),
     f"{CFG}.ResourceLimits.MaxParallelTrainingJobs: 4 is above MaxNumberOfTrainingJobs 3"),
    ("min above max", edited(request(), f"{RANGES}.IntegerParameterRanges[0].MinValue", "13"),
     f"{RANGES}.IntegerParameterRanges[0].MinValue: 13 is above MaxValue 12"),
    ("log range reaching 0", edited(request(), f"{RANGES}.ContinuousParameterRanges[0].MinValue", "0"),
     f"{RANGES}.ContinuousParameterRanges[0].MinValue: a Logarithmic range needs values above 0, got 0"),
    ("reverse log reaching 1", edited(request(), f"{RANGES}.ContinuousParameterRanges[0].ScalingType",
                                      "ReverseLogarithmic"),
     f"{RANGES}.ContinuousParameterRanges[0]: a ReverseLogarithmic range needs 0 <= MinValue and"
     " MaxValue < 1, got 0.001..1"),
    ("reverse log on integers", edited(request(), f"{RANGES}.IntegerParameterRanges[0].ScalingType",
                                       "ReverseLogarithmic"),
     f"{RANGES}.IntegerParameterRanges[0].ScalingType: ReverseLogarithmic applies to continuous"
     " ranges only"),
    ("unknown scaling", edited(request(), f"{RANGES}.IntegerParameterRanges[0].ScalingType", "Log"),
     f"{RANGES}.IntegerParameterRanges[0].ScalingType: 'Log' is not one of Auto, Linear, Logarithmic,"
     " ReverseLogarithmic"),
    ("bound not a number", edited(request(), f"{RANGES}.IntegerParameterRanges[0].MaxValue", "1.5"),
     f"{RANGES}.IntegerParameterRanges[0].MaxValue: '1.5' is not an integer"),
    ("bound not a string", edited(request(), f"{RANGES}.IntegerParameterRanges[0].MaxValue", 12),
     f"{RANGES}.IntegerParameterRanges[0].MaxValue: 12 is not of type str"),
    ("objective without definition", edited(request(), f"{CFG}.HyperParameterTuningJobObjective."
                                            "MetricName", "validation:auc"),
     f"{CFG}.HyperParameterTuningJobObjective.MetricName: 'validation:auc' has no definition in"
     f" {SPEC}.MetricDefinitions"),
    ("grid with a continuous range", edited(grid(), f"{RANGES}.ContinuousParameterRanges",
                                            [{"Name": "lr", "MinValue": "0", "MaxValue": "1"}]),
     f"{RANGES}: the Grid strategy takes categorical ranges only; lr is an Integer or Continuous range"),
    ("grid with another job count", edited(grid(), f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs", 4),
     f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs: 4, but Grid runs one job per combination: 6"),
    ("too many metrics", edited(request(), f"{SPEC}.MetricDefinitions",
                                [{"Name": "validation:loss", "Regex": "l=(1)"}] +
                                [{"Name": f"m{i}", "Regex": "m=(1)"} for i in range(40)]),
     f"{SPEC}.MetricDefinitions: 41 items; at most 40"),
    ("regex too long", edited(request(), f"{SPEC}.MetricDefinitions[0].Regex", "(" + "a" * 500 + ")"),
     f"{SPEC}.MetricDefinitions[0].Regex: 502 characters; at most 500"),
    ("regex without group", edited(request(), f"{SPEC}.MetricDefinitions[0].Regex", "val_loss=1"),
     f"{SPEC}.MetricDefinitions 'validation:loss': Regex has no capture group; the first group is"
     " the value"),
    ("unknown field", edited(request(), f"{CFG}.MaxJobs", 5),
     f"{CFG}.MaxJobs: unknown field; valid fields are Strategy, StrategyConfig,"
     " HyperParameterTuningJobObjective, ResourceLimits, ParameterRanges,"
     " TrainingJobEarlyStoppingType, TuningJobCompletionCriteria, RandomSeed"),
    ("unknown top-level field", {**request(), "Extra": 1}, "Extra: unknown field; valid fields are"),
    ("missing required", edited(request(), "TrainingJobDefinition.RoleArn", DELETE),
     "TrainingJobDefinition.RoleArn: required field is missing"),
    ("unknown strategy", edited(request(), f"{CFG}.Strategy", "Evolutionary"),
     f"{CFG}.Strategy: 'Evolutionary' is not one of Bayesian, Random, Hyperband, Grid"),
    ("name too long", edited(request(), "HyperParameterTuningJobName", "t" * 33),
     "HyperParameterTuningJobName: 33 characters; at most 32"),
    ("name pattern", edited(request(), "HyperParameterTuningJobName", "bad_name"),
     "HyperParameterTuningJobName: 'bad_name' does not match"),
    ("parallel zero", edited(request(), f"{CFG}.ResourceLimits.MaxParallelTrainingJobs", 0),
     f"{CFG}.ResourceLimits.MaxParallelTrainingJobs: 0 is below the minimum 1"),
    ("max runtime too short", edited(request(), f"{CFG}.ResourceLimits.MaxRuntimeInSeconds", 60),
     f"{CFG}.ResourceLimits.MaxRuntimeInSeconds: 60 is below the minimum 120"),
    ("no budget", request(max_jobs=None, parallel=1),
     f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs: required for the Random strategy"),
    ("static and tuned", request(static={"x": "0.3"}),
     "TrainingJobDefinition.StaticHyperParameters.x: also a tuned parameter"),
    ("tuned twice", edited(request(), f"{RANGES}.CategoricalParameterRanges[0].Name", "n"),
     f"{RANGES}: 'n' is tuned twice"),
    ("hyperband with early stopping", request(strategy="Hyperband", TrainingJobEarlyStoppingType="Auto"),
     f"{CFG}.TrainingJobEarlyStoppingType: must be Off with the Hyperband strategy"),
    ("hyperband without epochs", edited(request(strategy="Hyperband"),
                                        "TrainingJobDefinition.StaticHyperParameters", {}),
     f"{CFG}.StrategyConfig.HyperbandStrategyConfig.MaxResource: not given, and no static"
     " hyperparameter names the epochs"),
    ("strategy config without hyperband", request(StrategyConfig={"HyperbandStrategyConfig": {
        "MinResource": 1, "MaxResource": 3}}),
     f"{CFG}.StrategyConfig: only the Hyperband strategy takes a StrategyConfig"),
    ("not improving below 3", request(TuningJobCompletionCriteria={"BestObjectiveNotImproving": {
        "MaxNumberOfTrainingJobsNotImproving": 2}}),
     f"{CFG}.TuningJobCompletionCriteria.BestObjectiveNotImproving.MaxNumberOfTrainingJobsNotImproving:"
     " 2 is below the minimum 3"),
    ("too many values", edited(request(), f"{RANGES}.CategoricalParameterRanges[0].Values",
                               [str(i) for i in range(31)]),
     f"{RANGES}.CategoricalParameterRanges[0].Values: 31 items; at most 30"),
    ("a million hosts", edited(request(), "TrainingJobDefinition.ResourceConfig.InstanceCount", 1_000_000),
     "TrainingJobDefinition.ResourceConfig.InstanceCount: 1000000; a local training job runs 1-20 hosts"),
    ("no host", edited(request(), "TrainingJobDefinition.ResourceConfig.InstanceCount", 0),
     "TrainingJobDefinition.ResourceConfig.InstanceCount: 0; a local training job runs 1-20 hosts"),
    ("too many bayesian jobs", request(strategy="Bayesian", max_jobs=751, parallel=2),
     f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs: 751 training jobs; the service runs at most 750"
     " per Bayesian tuning job"),
    ("too many random jobs", request(max_jobs=10_001, parallel=2),
     f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs: 10001 training jobs; the service runs at most"
     " 10000 per Random tuning job"),
    ("too many grid combinations", edited(grid(), f"{RANGES}.CategoricalParameterRanges",
                                          [{"Name": f"c{i}", "Values": [str(v) for v in range(10)]}
                                           for i in range(3)]),
     f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs: 1000 training jobs (one per combination); the"
     " service runs at most 750 per Grid tuning job"),
    ("too many at once", request(max_jobs=200, parallel=101),
     f"{CFG}.ResourceLimits.MaxParallelTrainingJobs: 101; the service runs at most 100 training jobs"
     " of a tuning job at once"),
    ("tuning runtime too long", edited(request(), f"{CFG}.ResourceLimits.MaxRuntimeInSeconds", 15_768_001),
     f"{CFG}.ResourceLimits.MaxRuntimeInSeconds: 15768001 is above the maximum 15768000"),
    ("job runtime too long", edited(request(), "TrainingJobDefinition.StoppingCondition."
                                    "MaxRuntimeInSeconds", 2_419_201),
     "TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds: 2419201 is above the maximum"
     " 2419200 (28 days)"),
    ("multi-algorithm", {**{k: v for k, v in request().items() if k != "TrainingJobDefinition"},
                         "TrainingJobDefinitions": [request()["TrainingJobDefinition"]]},
     "TrainingJobDefinitions: multi-algorithm tuning does not run locally"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in REFUSED],
                         ids=[case for case, _, _ in REFUSED])
def test_a_request_the_service_refuses(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(body)
    assert caught.value.message.startswith(message)


def test_the_valid_requests_parse() -> None:
    parsed = config.parse(request())
    assert (parsed.strategy, parsed.max_jobs, parsed.max_parallel) == ("Random", 6, 2)
    assert parsed.hyperparameters({"n": "3"}) == {"epochs": "3", "n": "3",
                                                  "_tuning_objective_metric": "validation:loss"}
    assert config.parse(grid()).max_jobs == 6
    assert len(config.parse(grid()).grid()) == 6
    hyperband = config.parse(request(strategy="Hyperband", static={"epochs": "9"}))
    assert (hyperband.hyperband_min, hyperband.hyperband_max) == (1, 9)


def test_ranges_sample_in_their_scale() -> None:
    rng = random.Random(3)
    log = NumericRange("lr", 1e-4, 1.0, "Logarithmic", False)
    draws = [log.sample(rng) for _ in range(4000)]
    assert all(1e-4 <= d <= 1.0 for d in draws)
    below = sum(d < 1e-2 for d in draws) / len(draws)
    assert 0.45 < below < 0.55  # half the log span lies below 1e-2
    reverse = NumericRange("momentum", 0.0, 0.999, "ReverseLogarithmic", False)
    draws = [reverse.sample(rng) for _ in range(4000)]
    assert all(0.0 <= d <= 0.999 for d in draws)
    assert 0.45 < sum(d > 0.9684 for d in draws) / len(draws) < 0.55  # 1 - 10**-1.5
    integer = NumericRange("n", 1, 12, "Linear", True)
    assert {integer.format(integer.sample(rng)) for _ in range(500)} == {str(i) for i in range(1, 13)}
    assert NumericRange("a", 0.001, 1, "Auto", False).effective_scaling == "Logarithmic"
    assert NumericRange("a", 0.0, 1, "Auto", False).effective_scaling == "Linear"
    assert NumericRange("a", 1, 50, "Auto", True).effective_scaling == "Linear"
    assert CategoricalRange("k", ("a", "b")).sample(rng) in ("a", "b")
    assert log.format(0.25) == "0.25" and integer.format(7.0) == "7"


def run_tune(body: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    return subprocess.run(["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process",
                           "--config", str(request_file), "--output-dir", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, timeout=120)


def test_the_cli_refuses_before_any_job_starts(tmp_path: Path) -> None:
    body = edited(request(), f"{RANGES}.IntegerParameterRanges[0].MinValue", "13")
    run = run_tune(body, tmp_path)
    assert run.returncode == 2
    assert run.stderr == f"Error: {RANGES}.IntegerParameterRanges[0].MinValue: 13 is above MaxValue 12\n"
    assert run.stdout == ""
    assert not (tmp_path / "out").exists()


def test_several_problems_name_the_first_and_list_the_rest(tmp_path: Path) -> None:
    body = edited(edited(request(), f"{CFG}.Foo", 1), "TrainingJobDefinition.Bar", 2)
    run = run_tune(body, tmp_path)
    assert run.returncode == 2
    first, *rest = run.stderr.splitlines()
    assert first.startswith(f"Error: {CFG}.Foo: unknown field")
    assert rest[0].startswith("also: TrainingJobDefinition.Bar: unknown field")


def test_a_file_that_is_not_a_request(tmp_path: Path) -> None:
    bad = tmp_path / "request.json"
    bad.write_text("[1, 2")
    run = subprocess.run(["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process", "--config",
                          str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith(f"Error: {bad} is not JSON: ")
    bad.write_text("[1, 2]")
    run = subprocess.run(["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process", "--config",
                          str(bad)], capture_output=True, text=True, timeout=60)
    assert run.stderr == f"Error: {bad} must hold the JSON object of a CreateHyperParameterTuningJob" \
                         " request\n"


def test_an_existing_tuning_job_needs_resume_and_resume_needs_one(tmp_path: Path) -> None:
    run = run_tune(request(max_jobs=1, parallel=1), tmp_path, "--resume")
    assert run.returncode == 2
    assert run.stderr.startswith("Error: --resume: there is no tuning job probe-tune in ")
    assert run_tune(request(max_jobs=1, parallel=1), tmp_path).returncode == 0
    again = run_tune(request(max_jobs=1, parallel=1), tmp_path)
    assert again.returncode == 2
    assert again.stderr.startswith(f"Error: {tmp_path / 'out' / 'probe-tune'} exists: pass --resume")
    changed = run_tune(request(max_jobs=2, parallel=1), tmp_path, "--resume")
    assert changed.returncode == 2
    assert "--resume: the request differs from the one probe-tune started with" in changed.stderr


def test_a_read_only_output_dir_is_one_error_line(tmp_path: Path) -> None:
    with read_only(tmp_path / "out"):
        run = run_tune(request(max_jobs=1, parallel=1), tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith(f"Error: cannot create the tuning job's directory"
                                 f" {tmp_path / 'out' / 'probe-tune'}: ")
    assert run.stderr.endswith("; pick a writable --output-dir\n") and run.stderr.count("\n") == 1
    assert list((tmp_path / "out").iterdir()) == []


def test_a_request_beyond_the_service_limits_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    body = edited(request(), "TrainingJobDefinition.ResourceConfig.InstanceCount", 1_000_000)
    run = run_tune(body, tmp_path)
    assert run.returncode == 2
    assert run.stderr == ("Error: TrainingJobDefinition.ResourceConfig.InstanceCount: 1000000; a local"
                          " training job runs 1-20 hosts\n")
    assert not (tmp_path / "out").exists()


def test_a_training_job_input_the_service_refuses_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    run = run_tune(request(max_jobs=1, parallel=1), tmp_path, "--channel", f"my data={data}")
    assert run.returncode == 2
    assert run.stderr == ("Error: invalid channel name 'my data': 1 to 64 letters, digits, '.', '-'"
                          " and '_'\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("stopping", "spot", "message"), [
    ({"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 300}, True,
     "TrainingJobDefinition.StoppingCondition.MaxWaitTimeInSeconds 300 must be at least"
     " TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds 600: MaxWaitTimeInSeconds covers"
     " waiting for spot capacity plus the run"),
    ({"MaxRuntimeInSeconds": 600}, True,
     "TrainingJobDefinition.EnableManagedSpotTraining needs"
     " TrainingJobDefinition.StoppingCondition.MaxWaitTimeInSeconds"),
    ({"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 900}, False,
     "TrainingJobDefinition.StoppingCondition.MaxWaitTimeInSeconds applies to managed spot training"
     " only: add TrainingJobDefinition.EnableManagedSpotTraining"),
])
def test_a_stopping_condition_the_service_refuses_names_the_request_fields(
        tmp_path: Path, stopping: dict[str, int], spot: bool, message: str) -> None:
    """A request file's StoppingCondition is refused in the request's words, not as the options
    (--max-wait, --max-run) that set the same fields of a job on the command line."""
    body = edited(edited(request(max_jobs=1, parallel=1), "TrainingJobDefinition.StoppingCondition",
                         stopping), "TrainingJobDefinition.EnableManagedSpotTraining", spot)
    run = run_tune(body, tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith(f"Error: {message}") and run.stderr.count("\n") == 1
    assert "--max" not in run.stderr and "--spot" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_strategy_whose_package_is_missing_leaves_nothing_behind(tmp_path: Path) -> None:
    """Without optuna (a package of that name that cannot be imported hides the installed one),
    Bayesian is refused before the tuning job's directory exists, so the retry just runs."""
    hidden = tmp_path / "hide" / "optuna"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    body = request(strategy="Bayesian", max_jobs=1, parallel=1)
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    command = ["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process", "--config",
               str(request_file), "--output-dir", str(tmp_path / "out")]
    import os

    run = subprocess.run(command, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "hide")})
    assert run.returncode == 2
    assert run.stderr == ("Error: the Bayesian and Hyperband strategies need optuna: pip install"
                          " 'byoc[tune]'\n")
    assert not (tmp_path / "out").exists()
    retry = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert retry.returncode == 0, retry.stderr
    assert (tmp_path / "out" / "probe-tune" / "tuning.json").is_file()


def test_byoc_sagemaker_tune_checks_the_same_limits_before_it_pushes_or_uploads(tmp_path: Path) -> None:
    from byoc.sagemaker import tuning

    body = request(strategy="Bayesian", max_jobs=751, parallel=2)
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ConfigError) as caught:
        tuning.read_config(path)
    assert caught.value.message == (f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs: 751 training jobs;"
                                    " the service runs at most 750 per Bayesian tuning job")
    path.write_text(json.dumps(edited(body, f"{CFG}.ResourceLimits.MaxNumberOfTrainingJobs", 750)))
    config_file = tuning.read_config(path)
    definition = {k: v for k, v in body["TrainingJobDefinition"].items() if k != "StaticHyperParameters"}
    definition["StoppingCondition"] = {"MaxRuntimeInSeconds": 2_419_201}  # e.g. --max-run
    with pytest.raises(ConfigError) as caught:
        tuning.request({**config_file, "TrainingJobDefinition": {}}, definition, name="t-1")
    assert caught.value.message.startswith("TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds:"
                                           " 2419201 is above the maximum 2419200")
