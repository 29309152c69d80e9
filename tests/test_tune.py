"""``byoc local tune`` on the tune probe, whose loss has a known optimum (tests/tune_requests.py)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import signal
import statistics
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tune_requests import OPTIMUM, grid, probe_loss, request

from helpers import built_image

TUNEPROBE = Path(__file__).resolve().parent / "fixtures" / "tuneprobe"
CFG = "HyperParameterTuningJobConfig"


#: One font cache for the module's plots, not one per test (each test has its own HOME).
pytestmark = pytest.mark.usefixtures("shared_matplotlib_cache")


def tune(body: dict[str, Any], tmp_path: Path, *args: str, backend: str = "process",
         project: Path | None = TUNEPROBE) -> tuple[subprocess.CompletedProcess[str], Path]:
    request_file = tmp_path / f"{body['HyperParameterTuningJobName']}.json"
    request_file.write_text(json.dumps(body))
    where = [str(project)] if project is not None else []
    run = subprocess.run(["byoc", "local", "tune", *where, "--backend", backend, "--config",
                          str(request_file), "--output-dir", str(tmp_path / "out"), *args],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    return run, tmp_path / "out" / body["HyperParameterTuningJobName"]


def described(tuning_dir: Path) -> dict[str, Any]:
    return json.loads((tuning_dir / "tuning.json").read_text())


def summaries(tuning_dir: Path) -> list[dict[str, Any]]:
    return json.loads((tuning_dir / "training-jobs.json").read_text())["TrainingJobSummaries"]


def objective(entry: dict[str, Any]) -> float | None:
    return entry.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")


def loss_of(tuned: dict[str, str], static: dict[str, str] | None = None) -> float:
    values = {**(static or {}), **tuned}
    return probe_loss(float(values["x"]), int(values["n"]), values["kind"])


def check_finished(run: subprocess.CompletedProcess[str], tuning_dir: Path, jobs: int) -> dict[str, Any]:
    """What every finished tuning job must show; returns its description."""
    assert run.returncode == 0, run.stderr
    description = described(tuning_dir)
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    entries = summaries(tuning_dir)
    assert len(entries) == jobs
    best = description["BestTrainingJob"]
    completed = [e for e in entries if e["TrainingJobStatus"] == "Completed" and objective(e) is not None]
    assert objective(best) == min(objective(e) for e in completed)  # type: ignore[type-var]
    model = Path(run.stdout.strip().splitlines()[-1])
    assert model == tuning_dir / "jobs" / best["TrainingJobName"] / "model.tar.gz"
    with tarfile.open(model) as archive:
        params = json.load(archive.extractfile("params.json"))  # type: ignore[arg-type]
    assert params["hyperparameters"]["_tuning_objective_metric"] == "validation:loss"
    for key, value in best["TunedHyperParameters"].items():
        assert params["hyperparameters"][key] == value
    name = description["HyperParameterTuningJobName"]
    for entry in entries:
        assert re.fullmatch(rf"{name}-\d{{3}}-[0-9a-f]{{8}}", entry["TrainingJobName"])
        record = json.loads((tuning_dir / "jobs" / entry["TrainingJobName"] / "job.json").read_text())
        assert record["TrainingJobStatus"] == entry["TrainingJobStatus"]
        assert all(isinstance(v, str) for v in record["HyperParameters"].values())
        assert record["HyperParameters"]["_tuning_objective_metric"] == "validation:loss"
    assert (tuning_dir / "tuning.png").read_bytes()[:4] == b"\x89PNG"
    return description


def test_random_runs_its_budget_in_parallel_and_reports_the_best(tmp_path: Path) -> None:
    run, tuning_dir = tune(request("probe-random", "Random", max_jobs=6, parallel=2), tmp_path)
    description = check_finished(run, tuning_dir, 6)
    assert description["TrainingJobStatusCounters"] == {
        "Completed": 6, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    assert description["ObjectiveStatusCounters"] == {"Succeeded": 6, "Pending": 0, "Failed": 0}
    for entry in summaries(tuning_dir):
        tuned = entry["TunedHyperParameters"]
        assert set(tuned) == {"n", "x", "kind"}
        assert 1 <= int(tuned["n"]) <= 12 and 0.001 <= float(tuned["x"]) <= 1
        assert objective(entry) == pytest.approx(loss_of(tuned), rel=1e-5)
    # two at a time: some jobs overlapped
    spans = sorted((e["TrainingStartTime"], e["TrainingEndTime"]) for e in summaries(tuning_dir))
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    # describe finds the tuning job and each of its training jobs by name
    shown = subprocess.run(["byoc", "local", "describe", "probe-random", "--output-dir",
                            str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["BestTrainingJob"] == description["BestTrainingJob"]
    name = description["BestTrainingJob"]["TrainingJobName"]
    shown = subprocess.run(["byoc", "local", "describe", name, "--output-dir", str(tmp_path / "out")],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["TrainingJobName"] == name
    assert f"{name}: Completed" in shown.stderr and "validation:loss = " in shown.stderr


def test_grid_runs_every_combination_once_and_finds_the_optimum(tmp_path: Path) -> None:
    run, tuning_dir = tune(grid("probe-grid", parallel=3), tmp_path)
    description = check_finished(run, tuning_dir, 6)
    combinations = [(e["TunedHyperParameters"]["kind"], e["TunedHyperParameters"]["n"])
                    for e in summaries(tuning_dir)]
    assert sorted(combinations) == sorted(itertools.product(["a", "b"], ["5", "7", "9"]))
    assert description["BestTrainingJob"]["TunedHyperParameters"] == {"kind": "b", "n": "7"}
    assert objective(description["BestTrainingJob"]) == OPTIMUM


def test_bayesian_closes_in_on_the_optimum(tmp_path: Path) -> None:
    run, tuning_dir = tune(request("probe-bayes", "Bayesian", max_jobs=20, parallel=1), tmp_path)
    description = check_finished(run, tuning_dir, 20)
    best = objective(description["BestTrainingJob"])
    assert best is not None and best < OPTIMUM * 1.1
    assert description["BestTrainingJob"]["TunedHyperParameters"]["kind"] == "b"
    # after its random start (5 jobs for a budget of 20) it exploits what it learnt
    values = [objective(e) for e in summaries(tuning_dir)]
    assert sorted(values[10:])[5] < sorted(values[:10])[5]  # type: ignore[type-var]


def test_hyperband_stops_poor_jobs_on_their_intermediate_values(tmp_path: Path) -> None:
    body = request("probe-hyperband", "Hyperband", max_jobs=10, parallel=2,
                   static={"epochs": "9", "sleep": "0.2"},
                   StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}})
    run, tuning_dir = tune(body, tmp_path)
    check_finished(run, tuning_dir, 10)
    stopped = [e for e in summaries(tuning_dir) if e["TrainingJobStatus"] == "Stopped"]
    assert stopped, run.stderr
    assert "(Hyperband)" in run.stderr
    epochs = [len(json.loads((tuning_dir / "jobs" / e["TrainingJobName"] / "metrics.json").read_text())
                  ["Samples"]["algo-1"]) for e in stopped]
    assert min(epochs) < 9, epochs


def test_early_stopping_auto_stops_jobs_worse_than_the_median(tmp_path: Path) -> None:
    body = request("probe-early", "Random", max_jobs=6, parallel=1, static={"epochs": "5", "sleep": "0.1"},
                   TrainingJobEarlyStoppingType="Auto")
    run, tuning_dir = tune(body, tmp_path)
    check_finished(run, tuning_dir, 6)
    entries = summaries(tuning_dir)
    stopped = [e for e in entries if e["TrainingJobStatus"] == "Stopped"]
    assert stopped, run.stderr
    def curve(entry: dict[str, Any]) -> list[float]:
        saved = json.loads((tuning_dir / "jobs" / entry["TrainingJobName"] / "metrics.json").read_text())
        return [sample["Value"] for sample in saved["Samples"]["algo-1"]]

    for entry in stopped:
        # the median rule: at some epoch k its value was worse than the median of the earlier
        # jobs' running averages up to k
        own = curve(entry)
        assert len(own) < 5
        earlier = [curve(e) for e in entries if e["TrainingJobName"] < entry["TrainingJobName"]]
        assert any(own[k - 1] > statistics.median(statistics.fmean(c[:k]) for c in earlier if len(c) >= k)
                   for k in range(1, len(own) + 1) if any(len(c) >= k for c in earlier))
    assert "Stopped (early stopping)" in run.stderr


def test_the_target_objective_value_ends_the_tuning_job(tmp_path: Path) -> None:
    body = grid("probe-target", parallel=1, TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 1.0})
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "tuning job ends: TargetObjectiveMetricValue 1.0 reached" in run.stderr
    entries = summaries(tuning_dir)
    assert [e["TunedHyperParameters"] for e in entries][-1] == {"kind": "b", "n": "7"}
    assert len(entries) == 5  # (b, 9) never ran


def test_a_training_job_past_its_stopping_condition_is_stopped(tmp_path: Path) -> None:
    body = grid("probe-runtime", parallel=2, static={"epochs": "20", "sleep": "0.2"})
    body["TrainingJobDefinition"]["StoppingCondition"]["MaxRuntimeInSeconds"] = 1
    body[CFG]["ParameterRanges"] = {"CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b"]}]}
    body["TrainingJobDefinition"]["StaticHyperParameters"]["n"] = "7"
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 1, run.stderr
    entries = summaries(tuning_dir)
    assert [e["TrainingJobStatus"] for e in entries] == ["Stopped", "Stopped"]
    assert "Stopped (MaxRuntimeExceeded)" in run.stderr
    # a stopped job's last value still counts, but only a Completed job can be the best
    assert all(objective(e) is not None for e in entries)
    assert "BestTrainingJob" not in described(tuning_dir)
    assert run.stderr.splitlines()[-1].startswith("Error: no training job of probe-runtime completed")


def test_the_tuning_job_max_runtime_stops_running_jobs(tmp_path: Path) -> None:
    from byoc.local import choose_backend
    from byoc.project import Project
    from byoc.tune import config, runner

    body = request("probe-budget", "Random", max_jobs=6, parallel=2, static={"epochs": "30", "sleep": "0.2"})
    parsed = dataclasses.replace(config.parse(body), max_runtime=1.5)  # the service's minimum is 120 s
    project = Project.load(TUNEPROBE)
    tuning_dir = runner.prepare(parsed, tmp_path, resume=False)
    said: list[str] = []
    tuner = runner.Tuner(parsed, choose_backend("process", project, None), tuning_dir, project=project,
                         grace_seconds=10, say=said.append)
    started = time.monotonic()
    result = tuner.run()
    assert time.monotonic() - started < 30
    assert "tuning job ends: MaxRuntimeInSeconds reached" in said
    assert result.description["HyperParameterTuningJobStatus"] == "Completed"
    assert result.description["TrainingJobStatusCounters"]["Stopped"] == 2
    assert len(summaries(tuning_dir)) == 2


def test_an_image_with_its_own_metric_format_and_a_failing_value(tmp_path: Path) -> None:
    body = grid("probe-own", parallel=2, static={"format": "own"})
    body[CFG]["ParameterRanges"] = {"CategoricalParameterRanges": [
        {"Name": "kind", "Values": ["a", "b", "boom"]}]}
    body["TrainingJobDefinition"]["StaticHyperParameters"]["n"] = "7"
    body["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "validation:loss", "Regex": r"\[probe\] objective -> (\S+)"}]
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 0, run.stderr
    description = described(tuning_dir)
    assert description["TrainingJobStatusCounters"]["Completed"] == 2
    assert description["TrainingJobStatusCounters"]["NonRetryableError"] == 1
    assert description["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 1}
    failed = [e for e in summaries(tuning_dir) if e["TrainingJobStatus"] == "Failed"]
    assert failed[0]["FailureReason"] == "kind=boom: this value always fails"
    assert objective(description["BestTrainingJob"]) == OPTIMUM
    # the reason shows where the job ends and in the summary, each time with the job's name
    name = failed[0]["TrainingJobName"]
    lines = run.stderr.splitlines()
    assert any(line.startswith(f"{name} Failed: kind=boom: this value always fails kind=boom")
               for line in lines), run.stderr
    assert f"  failed: {name}: kind=boom: this value always fails" in lines


def test_no_job_with_an_objective_is_an_error(tmp_path: Path) -> None:
    body = grid("probe-none", parallel=1)
    body[CFG]["ParameterRanges"] = {"CategoricalParameterRanges": [{"Name": "kind", "Values": ["boom"]}]}
    run, tuning_dir = tune(body, tmp_path)
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1].startswith(
        "Error: no training job of probe-none completed with a value of 'validation:loss'")
    assert described(tuning_dir)["ObjectiveStatusCounters"]["Failed"] == 1


def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize(("stop_signal", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_keeps_what_finished_and_resume_continues(tmp_path: Path, stop_signal: int,
                                                         exit_code: int) -> None:
    body = request("probe-resume", "Random", max_jobs=4, parallel=1, static={"epochs": "3", "sleep": "0.4"})
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    command = ["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process", "--config",
               str(request_file), "--output-dir", str(tmp_path / "out"), "--grace", "10"]
    tuning_dir = tmp_path / "out" / "probe-resume"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (tuning_dir / "training-jobs.json").is_file(), 60)
        _wait_for(lambda: len(list((tuning_dir / "jobs").iterdir())) >= 2, 60)
        time.sleep(0.3)
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == exit_code, stderr
    assert "Error: tuning job probe-resume stopped: what finished is kept in" in stderr
    stopped = described(tuning_dir)
    assert stopped["HyperParameterTuningJobStatus"] == "Stopped"
    kept = {e["TrainingJobName"]: e["TrainingJobStatus"] for e in summaries(tuning_dir)}
    assert list(kept.values()).count("Completed") == 1 and list(kept.values()).count("Stopped") == 1
    # no training process is left behind
    leftover = subprocess.run(["pgrep", "-f", str(TUNEPROBE / "container")], capture_output=True)
    assert leftover.stdout == b""

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    description = check_finished(resumed, tuning_dir, 5)
    assert description["TrainingJobStatusCounters"]["Completed"] == 4
    finished = {e["TrainingJobName"]: e["TrainingJobStatus"] for e in summaries(tuning_dir)}
    completed_before = [name for name, status in kept.items() if status == "Completed"]
    assert all(finished[name] == "Completed" for name in completed_before)
    numbers = sorted(int(name.rsplit("-", 2)[1]) for name in finished)
    assert numbers == [1, 2, 3, 4, 5]


def test_warm_start_from_an_earlier_tuning_job(tmp_path: Path) -> None:
    parent_run, parent_dir = tune(request("probe-parent", "Random", max_jobs=5, parallel=2), tmp_path)
    assert parent_run.returncode == 0, parent_run.stderr
    parent_best = described(parent_dir)["BestTrainingJob"]
    child = request("probe-child", "Bayesian", max_jobs=4, parallel=2)
    child["WarmStartConfig"] = {"ParentHyperParameterTuningJobs": [
        {"HyperParameterTuningJobName": "probe-parent"}], "WarmStartType": "IdenticalDataAndAlgorithm"}
    run, tuning_dir = tune(child, tmp_path)
    description = check_finished(run, tuning_dir, 4)
    overall = description["OverallBestTrainingJob"]
    assert objective(overall) == min(objective(parent_best), objective(description["BestTrainingJob"]))  # type: ignore[type-var]
    assert description["WarmStartConfig"] == child["WarmStartConfig"]

    missing = dict(child, HyperParameterTuningJobName="probe-orphan", WarmStartConfig={
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "probe-nobody"}],
        "WarmStartType": "TransferLearning"})
    run, _ = tune(missing, tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("Error: WarmStartConfig.ParentHyperParameterTuningJobs[0]."
                                 "HyperParameterTuningJobName: no local tuning job 'probe-nobody'")
    other = request("probe-other", "Bayesian", max_jobs=2, parallel=1, static={"extra": "1"})
    other["WarmStartConfig"] = dict(missing["WarmStartConfig"], ParentHyperParameterTuningJobs=[
        {"HyperParameterTuningJobName": "probe-parent"}])
    run, _ = tune(other, tmp_path)
    assert run.returncode == 2
    assert "probe-parent has other hyperparameters (extra)" in run.stderr
    assert not (tmp_path / "out" / "probe-other").exists()


@pytest.fixture(scope="module")
def tuneprobe_image(docker_client: Any, base_image: str) -> Iterator[str]:
    tag = f"byoc-test-tuneprobe:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, TUNEPROBE, tag, base_image):
        yield tag


def docker_request(strategy: str) -> dict[str, Any]:
    """Four jobs, two at a time, of each strategy; Hyperband over 6 epochs of the probe;
    Bayesian reads the probe's own metric format."""
    name = f"probe-docker-{strategy.lower()}"
    if strategy == "Grid":
        body = grid(name, parallel=2)
        body[CFG]["ParameterRanges"]["CategoricalParameterRanges"][1]["Values"] = ["5", "7"]
        return body
    if strategy == "Hyperband":
        return request(name, strategy, max_jobs=4, parallel=2, static={"epochs": "6", "sleep": "0.2"},
                       StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1}})
    body = request(name, strategy, max_jobs=4, parallel=2)
    if strategy == "Bayesian":  # the metric in the image's own format, on stderr
        body["TrainingJobDefinition"]["StaticHyperParameters"]["format"] = "own"
        body["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"] = [
            {"Name": "validation:loss", "Regex": r"\[probe\] objective -> (\S+)"}]
    return body


@pytest.mark.docker
@pytest.mark.parametrize("strategy", ["Random", "Grid", "Bayesian", "Hyperband"])
def test_tuning_on_docker_with_an_image(strategy: str, tmp_path: Path, tuneprobe_image: str) -> None:
    body = docker_request(strategy)
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1,2\n")
    run, tuning_dir = tune(body, tmp_path, "--image", tuneprobe_image, "--channel", f"training={data}",
                           backend="docker", project=None)
    assert run.returncode == 0, run.stderr
    entries = summaries(tuning_dir)
    assert len(entries) == 4
    static = body["TrainingJobDefinition"]["StaticHyperParameters"]
    for entry in entries:  # each container computed its loss from what it was given
        loss = loss_of(entry["TunedHyperParameters"], static)
        if entry["TrainingJobStatus"] == "Completed":
            assert objective(entry) == pytest.approx(loss, rel=1e-5)
        else:  # stopped after epoch e of 6: its last value was loss + 0.1 * (6 - e)
            assert strategy == "Hyperband" and f"{entry['TrainingJobName']} Stopped (Hyperband)" in run.stderr
            epochs_left = (objective(entry) - loss) / 0.1  # type: ignore[operator]
            assert epochs_left == pytest.approx(round(epochs_left), abs=1e-3) and 1 <= round(epochs_left) <= 5
    counters = described(tuning_dir)["TrainingJobStatusCounters"]
    assert counters["Completed"] + counters["Stopped"] == 4
    if strategy != "Hyperband":
        check_finished(run, tuning_dir, 4)
        assert counters["Completed"] == 4
    if strategy == "Grid":
        assert described(tuning_dir)["BestTrainingJob"]["TunedHyperParameters"] == {"kind": "b", "n": "7"}


def _job_processes(tuning_dir: Path) -> list[str]:
    """The pids of processes whose environment names a training job of *tuning_dir*."""
    needle = f"TRAINING_JOB_NAME={tuning_dir.name}-".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if any(item.startswith(needle) for item in (entry / "environ").read_bytes().split(b"\0")):
                found.append(entry.name)
        except OSError:
            continue
    return found


def _killed_mid_trial(name: str, tmp_path: Path, *where: str, ready: Any = None
                      ) -> tuple[list[str], Path]:
    """Start a tuning job (two 8-second jobs at a time) on the process backend (or *where*:
    backend and image options), SIGKILL byoc while both run; the command and the tuning
    job's directory."""
    body = request(name, "Random", max_jobs=3, parallel=2, static={"epochs": "32", "sleep": "0.25"})
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(body))
    command = ["byoc", "local", "tune", *(where or (str(TUNEPROBE), "--backend", "process")),
               "--config", str(request_file), "--output-dir", str(tmp_path / "out"), "--grace", "2"]
    tuning_dir = tmp_path / "out" / name
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def training() -> bool:
            records = [json.loads(p.read_text()) for p in (tuning_dir / "jobs").glob("*/job.json")] \
                if (tuning_dir / "jobs").is_dir() else []
            return len(records) == 2 and all(r.get("SecondaryStatus") == "Training" for r in records) \
                and (ready is None or ready())
        _wait_for(training, 60)
        time.sleep(0.5)
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    if not where:
        assert len(_job_processes(tuning_dir)) >= 2  # SIGKILL left the training jobs running
    return command, tuning_dir


def _check_reaped(tuning_dir: Path) -> None:
    description = described(tuning_dir)
    assert description["HyperParameterTuningJobStatus"] == "Stopped"
    assert description["FailureReason"].startswith("byoc stopped while the tuning job ran (killed?)")
    entries = summaries(tuning_dir)
    assert [e["TrainingJobStatus"] for e in entries] == ["Failed", "Failed"]
    assert all(e["FailureReason"].startswith("byoc stopped while the job ran") for e in entries)
    assert description["TrainingJobStatusCounters"] == {
        "Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 2, "Stopped": 0}
    assert description["ObjectiveStatusCounters"] == {"Succeeded": 0, "Pending": 0, "Failed": 2}
    for entry in entries:
        record = json.loads((tuning_dir / "jobs" / entry["TrainingJobName"] / "job.json").read_text())
        assert record["TrainingJobStatus"] == "Failed"
    _wait_for(lambda: _job_processes(tuning_dir) == [], 10)


def test_describe_reaps_a_tuning_job_whose_byoc_was_killed(tmp_path: Path) -> None:
    _, tuning_dir = _killed_mid_trial("probe-killed", tmp_path)
    shown = subprocess.run(["byoc", "local", "describe", "probe-killed", "--output-dir",
                            str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "note: tuning job probe-killed lost the byoc running it" in shown.stderr
    assert json.loads(shown.stdout)["HyperParameterTuningJobStatus"] == "Stopped"
    _check_reaped(tuning_dir)
    again = subprocess.run(["byoc", "local", "describe", "probe-killed", "--output-dir",
                            str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path)
    assert "lost the byoc" not in again.stderr  # settled once


def test_jobs_and_resume_reap_a_tuning_job_whose_byoc_was_killed(tmp_path: Path) -> None:
    command, tuning_dir = _killed_mid_trial("probe-killed-resume", tmp_path)
    listed = subprocess.run(["byoc", "local", "jobs", "--output-dir", str(tuning_dir / "jobs")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "note: tuning job probe-killed-resume lost the byoc running it" in listed.stderr
    _check_reaped(tuning_dir)
    lost = [e["TrainingJobName"] for e in summaries(tuning_dir)]
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    description = check_finished(resumed, tuning_dir, 5)
    # the lost jobs stay listed as Failed and do not count: three more jobs ran
    assert description["TrainingJobStatusCounters"] == {
        "Completed": 3, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 2, "Stopped": 0}
    assert {e["TrainingJobName"]: e["TrainingJobStatus"] for e in summaries(tuning_dir)
            if e["TrainingJobName"] in lost} == dict.fromkeys(lost, "Failed")
    assert _job_processes(tuning_dir) == []


@pytest.mark.docker
def test_describe_removes_the_containers_of_a_tuning_job_whose_byoc_was_killed(
        tmp_path: Path, tuneprobe_image: str, docker_client: Any) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1,2\n")

    # a name of this test session's own: another run of this test on the same engine
    # (another checkout) must not count among this one's containers
    name = f"probe-killed-{uuid.uuid4().hex[:6]}"

    def containers() -> list[Any]:
        return [c for c in docker_client.containers.list(all=True, ignore_removed=True,
                                                         filters={"label": "com.byoc.job"})
                if c.labels["com.byoc.job"].startswith(f"{name}-")]
    _, tuning_dir = _killed_mid_trial(name, tmp_path, "--backend", "docker",
                                      "--image", tuneprobe_image, "--channel", f"training={data}",
                                      ready=lambda: len(containers()) >= 4)
    assert len(containers()) >= 4  # each job's host and its placeholder outlived byoc
    shown = subprocess.run(["byoc", "local", "describe", name, "--output-dir",
                            str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    _check_reaped(tuning_dir)
    assert containers() == []
    assert [n for n in docker_client.networks.list(filters={"label": "com.byoc.job"})
            if n.attrs["Labels"]["com.byoc.job"].startswith(f"{name}-")] == []
