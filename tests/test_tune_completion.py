"""TuningJobCompletionCriteria and Hyperband's epoch budget: the rules on their own, then
wired into ``byoc local tune`` on the tune probe (process backend)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tune_requests import request

from byoc.tune import config
from byoc.tune.completion import CONVERGENCE_MIN_JOBS, Completion

TUNEPROBE = Path(__file__).resolve().parent / "fixtures" / "tuneprobe"
CONVERGE = {"ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}}
#: One font cache for the module's plots, not one per test (each test has its own HOME).
pytestmark = pytest.mark.usefixtures("shared_matplotlib_cache")


def completion(objective: str = "Minimize", **criteria: Any) -> Completion:
    body = request("probe-completion", "Bayesian", max_jobs=50, parallel=1,
                   TuningJobCompletionCriteria=criteria)
    body["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"] = objective
    return Completion(config.parse(body))


def feed(rule: Completion, values: list[float | None]) -> list[str | None]:
    return [rule.add(value) for value in values]


def test_the_target_value_ends_on_the_job_that_reaches_it() -> None:
    assert feed(completion(TargetObjectiveMetricValue=1.1), [1.5, None, 1.2]) == [None] * 3
    assert completion(TargetObjectiveMetricValue=1.1).add(1.1) == "TargetObjectiveMetricValue 1.1 reached"
    maximize = completion("Maximize", TargetObjectiveMetricValue=0.9)
    assert feed(maximize, [0.5, 0.95])[-1] == "TargetObjectiveMetricValue 0.9 reached"


def test_not_improving_counts_jobs_that_better_the_best_by_less_than_one_percent() -> None:
    rule = completion(BestObjectiveNotImproving={"MaxNumberOfTrainingJobsNotImproving": 3})
    # 1.0 improves (the first); 0.995 betters it by 0.5% only; a failed job does not improve;
    # 0.98 improves by 2% and resets the count; then three that do not
    ends = feed(rule, [1.0, 0.995, None, 0.98, 0.979, 2.0, None])
    assert ends == [None] * 6 + ["3 training jobs did not improve the objective by 1%"]
    assert rule.best == 0.979
    assert rule.details() == {"NumberOfTrainingJobsObjectiveNotImproving": 3}


def test_not_improving_for_a_maximized_objective() -> None:
    rule = completion("Maximize", BestObjectiveNotImproving={"MaxNumberOfTrainingJobsNotImproving": 3})
    assert feed(rule, [0.5, 0.6, 0.601, 0.2, 0.6])[-1] is not None
    assert rule.best == 0.601


def test_convergence_needs_the_latest_jobs_near_the_best_and_none_improving() -> None:
    near = [1.0, 1.3] * 5  # a best of 1.0 found first; then half the jobs within 1% of it
    rule = completion(**CONVERGE)
    ends = feed(rule, [1.0, 1.5, 1.4, 1.6, 1.2, *near[: CONVERGENCE_MIN_JOBS - 5]])
    assert ends[-1] is not None and ends[-1].startswith("convergence detected")
    assert ends[:-1] == [None] * (len(ends) - 1)
    assert "ConvergenceDetectedTime" in rule.details()


def test_a_search_still_spread_out_or_still_improving_has_not_converged() -> None:
    spread = completion(**CONVERGE)  # never near the best after finding it
    assert feed(spread, [1.0] + [1.5, 1.3, 1.7, 1.2] * 5) == [None] * 21
    improving = completion(**CONVERGE)  # each job 2% better than the last
    assert feed(improving, [1.0 * 0.98 ** k for k in range(20)]) == [None] * 20
    too_few = completion(**CONVERGE)
    assert feed(too_few, [1.0] * (CONVERGENCE_MIN_JOBS - 1)) == [None] * (CONVERGENCE_MIN_JOBS - 1)
    assert "ConvergenceDetectedTime" not in too_few.details()


def test_convergence_is_reported_without_ending_when_not_enabled() -> None:
    rule = completion(ConvergenceDetected={"CompleteOnConvergence": "Disabled"})
    assert feed(rule, [1.0] * 12) == [None] * 12
    assert "ConvergenceDetectedTime" in rule.details()


def test_hyperband_tells_each_job_its_largest_budget_through_the_epoch_hyperparameter() -> None:
    body = request("probe-budget", "Hyperband", static={"epochs": "3"},
                   StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 7}})
    parsed = config.parse(body)
    assert parsed.hyperparameters({"x": "0.3"})["epochs"] == "7"
    assert config.parse(request("probe-random", "Random", static={"epochs": "3"})
                        ).hyperparameters({})["epochs"] == "3"


# wired into byoc local tune -------------------------------------------------------------------
def tune(body: dict[str, Any], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    run = subprocess.run(["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process", "--config",
                          str(request_file), "--output-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    return run, tmp_path / "out" / body["HyperParameterTuningJobName"]


def ended_values(tuning_dir: Path) -> tuple[dict[str, Any], list[float]]:
    described = json.loads((tuning_dir / "tuning.json").read_text())
    jobs = json.loads((tuning_dir / "training-jobs.json").read_text())["TrainingJobSummaries"]
    jobs.sort(key=lambda entry: entry["TrainingEndTime"])
    return described, [entry["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for entry in jobs]


def test_best_objective_not_improving_ends_a_tuning_job(tmp_path: Path) -> None:
    body = request("probe-flat", "Random", max_jobs=30, parallel=1,
                   TuningJobCompletionCriteria={"BestObjectiveNotImproving": {
                       "MaxNumberOfTrainingJobsNotImproving": 3}})
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "tuning job ends: 3 training jobs did not improve the objective by 1%" in run.stderr
    described, values = ended_values(tuning_dir)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 3
    assert 4 <= len(values) < 30
    best_before = min(values[:-3])
    assert all(value > best_before * 0.99 for value in values[-3:])


def test_bayesian_search_that_converges_ends_on_convergence(tmp_path: Path) -> None:
    body = request("probe-converge", "Bayesian", max_jobs=40, parallel=1,
                   TuningJobCompletionCriteria=CONVERGE)
    body["HyperParameterTuningJobConfig"]["RandomSeed"] = 10  # converges after ten jobs
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "tuning job ends: convergence detected" in run.stderr
    described, values = ended_values(tuning_dir)
    assert "ConvergenceDetectedTime" in described["TuningJobCompletionDetails"]
    assert CONVERGENCE_MIN_JOBS <= len(values) < 40
    # the rule, recomputed from what was recorded
    replay = Completion(config.parse(body))
    assert [replay.add(value) is not None for value in values] == [False] * (len(values) - 1) + [True]


def test_convergence_without_complete_on_convergence_is_said_and_tuning_goes_on(
        tmp_path: Path) -> None:
    body = request("probe-converge-on", "Bayesian", max_jobs=24, parallel=1,
                   TuningJobCompletionCriteria={"ConvergenceDetected": {
                       "CompleteOnConvergence": "Disabled"}})
    body["HyperParameterTuningJobConfig"]["RandomSeed"] = 7  # converges after 15 of 24 jobs
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "convergence detected (TuningJobCompletionDetails.ConvergenceDetectedTime); the tuning" \
        " job goes on: CompleteOnConvergence is not Enabled" in run.stderr
    assert "tuning job ends" not in run.stderr
    described, values = ended_values(tuning_dir)
    assert len(values) == 24
    assert "ConvergenceDetectedTime" in described["TuningJobCompletionDetails"]


def test_resuming_a_tuning_job_that_met_its_target_runs_no_more_jobs(tmp_path: Path) -> None:
    body = request("probe-met", "Random", max_jobs=30, parallel=1,
                   TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 1.6})
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "tuning job ends: TargetObjectiveMetricValue 1.6 reached" in run.stderr
    _, values = ended_values(tuning_dir)
    assert len(values) < 30 and values[-1] <= 1.6
    request_file = tmp_path / "request.json"
    again = subprocess.run(["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process",
                            "--config", str(request_file), "--output-dir", str(tmp_path / "out"),
                            "--resume"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "tuning job ends: TargetObjectiveMetricValue 1.6 reached" in again.stderr
    described, after = ended_values(tuning_dir)
    assert after == values and described["HyperParameterTuningJobStatus"] == "Completed"


def test_hyperband_stops_a_job_at_max_resource_when_no_hyperparameter_told_it(tmp_path: Path) -> None:
    # no static epochs: the probe runs its default 3 epochs unless stopped after MaxResource 2
    # (MinResource 2 too: no rung below it, so nothing is pruned earlier)
    body = request("probe-budget", "Hyperband", max_jobs=2, parallel=2, static={"sleep": "0.3"},
                   StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 2}})
    del body["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"]
    run, tuning_dir = tune(body, tmp_path)
    jobs = json.loads((tuning_dir / "training-jobs.json").read_text())["TrainingJobSummaries"]
    assert len(jobs) == 2, run.stderr
    for job in jobs:
        assert job["TrainingJobStatus"] == "Stopped", run.stderr
        saved = json.loads((tuning_dir / "jobs" / job["TrainingJobName"] / "metrics.json").read_text())
        assert len(saved["Samples"]["algo-1"]) == 2
        assert "epochs" not in json.loads((tuning_dir / "jobs" / job["TrainingJobName"] /
                                           "job.json").read_text())["HyperParameters"]
    assert run.stderr.count("Stopped (Hyperband MaxResource)") == 2
