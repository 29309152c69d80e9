"""The default template as a long job: epochs, checkpoints and spot interruptions, incremental
training, metric definitions and ``byoc local tune``, run the way byoc runs any job."""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from byoc import local
from byoc.errors import ContainerFailedError
from byoc.job import metrics as job_metrics
from byoc.project import Project
from helpers import train_job

#: Class centres of the synthetic iris-like rows (sepal and petal length and width).
CENTRES = {"setosa": (5.0, 3.4, 1.5, 0.2), "versicolor": (5.9, 2.8, 4.3, 1.3),
           "virginica": (6.6, 3.0, 5.6, 2.0)}
#: About 0.1 s an epoch on an idle core: jobs long enough to be interrupted mid-training.
LONG = {"epochs": "60", "batch_size": "8", "seed": "3"}
EPOCH_LINE = re.compile(r"epoch=(\d+) training:loss=(\S+); training:accuracy=(\S+);")


def write_rows(path: Path, rows: int, seed: int = 3) -> None:
    generator = random.Random(seed)
    labels = sorted(CENTRES)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(rows):
            label = generator.choice(labels)
            values = ",".join(f"{c + generator.gauss(0, 0.35):.2f}" for c in CENTRES[label])
            handle.write(f"{label},{values}\n")


@pytest.fixture
def project(default_project: Path, tmp_path: Path) -> Project:
    """A copy of the default project whose training channel holds 40,000 rows."""
    root = Path(shutil.copytree(default_project, tmp_path / "iris-classifier"))
    channel = root / "local_test" / "test_dir" / "input" / "data" / "training"
    (channel / "iris.csv").unlink()
    write_rows(channel / "rows.csv", 40_000)
    return Project.load(root)


@pytest.fixture
def iris_project(default_project: Path, tmp_path: Path) -> Project:
    """A copy of the default project as rendered (120 iris rows; 30 more held out in local_test/test)."""
    return Project.load(Path(shutil.copytree(default_project, tmp_path / "iris")))


def model_bytes(result: local.TrainResult) -> dict[str, bytes]:
    with tarfile.open(result.model_archive) as tar:
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
        return {name: loaded[name] for name in loaded.files}


def statuses(job_dir: Path) -> list[str]:
    record = json.loads((job_dir / "job.json").read_text())
    return [t["Status"] for t in record["SecondaryStatusTransitions"]]


def attempts(events: list[tuple[str, str]]) -> list[list[str]]:
    """The log lines of each attempt, split at each simulated interruption."""
    split: list[list[str]] = [[]]
    for kind, text in events:
        if kind == "say" and re.match(r"simulated spot interruption \d+:", text):
            split.append([])
        elif kind == "log":
            split[-1].append(text)
    return split


def spot_run(backend: Any, project: Project, tmp_path: Path, name: str,
             checkpoint_dir: Path | None, interrupts: list[float]
             ) -> tuple[local.TrainResult, list[tuple[str, str]]]:
    events: list[tuple[str, str]] = []
    result = train_job(backend=backend, project=project, hyperparameters=LONG, job_name=name,
                         output_dir=tmp_path / "jobs", checkpoint_dir=checkpoint_dir, spot=True,
                         interrupt_after=interrupts, grace_seconds=20,
                         log=lambda host, line: events.append(("log", line)),
                         say=lambda text: events.append(("say", text)))
    return result, events


@pytest.fixture
def uninterrupted(project: Project, tmp_path: Path) -> local.TrainResult:
    backend = local.choose_backend("process", project, None)
    return train_job(backend=backend, project=project, hyperparameters=LONG, job_name="plain",
                       output_dir=tmp_path / "jobs")


def interruption(plain: local.TrainResult) -> float:
    """Seconds into an attempt to interrupt it: a third of the uninterrupted job's training,
    so that two interruptions fall inside training however fast this machine is."""
    record = json.loads((plain.job_dir / "job.json").read_text())
    return max(1.5, record["TrainingTimeInSeconds"] / 3)


def check_resumed_run(result: local.TrainResult, events: list[tuple[str, str]],
                      plain: local.TrainResult, store: Path) -> None:
    assert model_bytes(result) == model_bytes(plain)  # byte for byte
    assert statuses(result.job_dir).count("Interrupted") == 2
    parts = attempts(events)
    assert len(parts) == 3
    resumed = [line for part in parts[1:] for line in part if "resuming from checkpoint" in line]
    assert resumed, "no attempt resumed from a checkpoint"
    # the last attempt goes on from where its checkpoint left off (nothing left, if the
    # interruption came after the last epoch), to the end
    resumed_at = [int(m.group(1)) for line in parts[-1]
                  if (m := re.search(r"resuming from checkpoint \S+ \(epoch (\d+)\)", line))]
    start = resumed_at[0] if resumed_at else 0
    last = [int(m.group(1)) for line in parts[-1] if (m := EPOCH_LINE.search(line))]
    assert last == list(range(start + 1, 61))
    # the store: the last three checkpoints, whole; nothing half-written or temporary
    stored = sorted(p.name for p in store.iterdir())
    assert stored == ["epoch-000058.npz", "epoch-000059.npz", "epoch-000060.npz"]
    final = arrays(model_bytes(plain)["model.npz"])
    latest = arrays((store / stored[-1]).read_bytes())
    assert int(latest["epoch"]) == 60
    for name in ("weights", "bias", "mean", "scale", "classes"):
        assert np.array_equal(latest[name], final[name]), name


def test_interrupted_twice_with_checkpoints_ends_with_the_uninterrupted_model(
        project: Project, uninterrupted: local.TrainResult, tmp_path: Path) -> None:
    backend = local.choose_backend("process", project, None)
    store = tmp_path / "checkpoints"
    result, events = spot_run(backend, project, tmp_path, "spot", store,
                              [interruption(uninterrupted)] * 2)
    check_resumed_run(result, events, uninterrupted, store)
    first = [int(m.group(1)) for line in attempts(events)[0] if (m := EPOCH_LINE.search(line))]
    assert first and first[0] == 1 and first[-1] < 60  # the first attempt was cut short


@pytest.mark.docker
def test_interrupted_twice_on_docker_ends_with_the_model_trained_as_a_process(
        project: Project, uninterrupted: local.TrainResult, default_image: str,
        tmp_path: Path) -> None:
    backend = local.choose_backend("docker", project, default_image)
    store = tmp_path / "checkpoints"
    result, events = spot_run(backend, project, tmp_path, "spot-docker", store,
                              [interruption(uninterrupted)] * 2)
    check_resumed_run(result, events, uninterrupted, store)


def test_without_checkpoints_an_interruption_restarts_from_scratch(
        project: Project, uninterrupted: local.TrainResult, tmp_path: Path) -> None:
    backend = local.choose_backend("process", project, None)
    result, events = spot_run(backend, project, tmp_path, "scratch", None,
                              [interruption(uninterrupted)])
    said = [text for kind, text in events if kind == "say"]
    assert any("restarts the job from scratch" in text for text in said)
    first, second = attempts(events)
    assert any(EPOCH_LINE.search(line) for line in first)  # it had trained a while
    epochs = [int(m.group(1)) for line in second if (m := EPOCH_LINE.search(line))]
    assert epochs == list(range(1, 61))  # all over again
    assert not any("resuming" in line for line in second)
    assert model_bytes(result) == model_bytes(uninterrupted)


def final_losses(events: list[str]) -> list[float]:
    return [float(m.group(2)) for line in events if (m := EPOCH_LINE.search(line))]


def test_incremental_training_starts_from_the_previous_model(iris_project: Project,
                                                             tmp_path: Path) -> None:
    backend = local.choose_backend("process", iris_project, None)
    jobs = tmp_path / "jobs"
    first = train_job(backend=backend, project=iris_project, job_name="first", output_dir=jobs,
                        hyperparameters={"epochs": "30"})
    previous = arrays(model_bytes(first)["model.npz"])

    # a step too small to move: the weights it starts from are the previous model's
    lines: list[str] = []
    still = train_job(backend=backend, project=iris_project, job_name="still", output_dir=jobs,
                        hyperparameters={"epochs": "1", "learning_rate": "1e-06"},
                        incremental_from=first.model_archive,
                        log=lambda host, line: lines.append(line))
    assert any("starting from the previous model" in line for line in lines)
    after = arrays(model_bytes(still)["model.npz"])
    for name in ("mean", "scale", "classes"):
        assert np.array_equal(after[name], previous[name]), name
    assert np.allclose(after["weights"], previous["weights"], atol=1e-3)
    assert not np.allclose(previous["weights"], 0, atol=0.1)

    # one epoch from the previous model does as well as 30 did; one from scratch does not
    continued: list[str] = []
    train_job(backend=backend, project=iris_project, job_name="continued", output_dir=jobs,
                hyperparameters={"epochs": "1"}, incremental_from=first.model_archive,
                log=lambda host, line: continued.append(line))
    scratch: list[str] = []
    train_job(backend=backend, project=iris_project, job_name="scratch", output_dir=jobs,
                hyperparameters={"epochs": "1"}, log=lambda host, line: scratch.append(line))
    trained: list[str] = []
    train_job(backend=backend, project=iris_project, job_name="again", output_dir=jobs,
                hyperparameters={"epochs": "30"}, log=lambda host, line: trained.append(line))
    assert final_losses(continued)[0] < 1.2 * final_losses(trained)[-1]
    assert final_losses(scratch)[0] > 2 * final_losses(continued)[0]


def test_incremental_training_refuses_labels_the_previous_model_lacks(iris_project: Project,
                                                                     tmp_path: Path) -> None:
    backend = local.choose_backend("process", iris_project, None)
    jobs = tmp_path / "jobs"
    first = train_job(backend=backend, project=iris_project, job_name="first", output_dir=jobs,
                        hyperparameters={"epochs": "2"})
    other = tmp_path / "other"
    other.mkdir()
    (other / "rows.csv").write_text("setosa,5.1,3.5,1.4,0.2\nsetosa-hybrid,5.0,3.0,3.0,1.0\n")
    with pytest.raises(ContainerFailedError):
        train_job(backend=backend, project=iris_project, job_name="refused", output_dir=jobs,
                    channels={"training": other}, incremental_from=first.model_archive)
    record = json.loads((jobs / "refused" / "job.json").read_text())
    assert record["TrainingJobStatus"] == "Failed"
    assert "labels ['setosa-hybrid'] are not among the model's classes ['setosa', 'versicolor'," \
        " 'virginica']: a model cannot learn new classes" in record["FailureReason"]


def holdout(tmp_path: Path, project: Project) -> dict[str, Path]:
    training = project.root / "local_test" / "test_dir" / "input" / "data" / "training"
    validation = tmp_path / "validation"
    validation.mkdir()
    rows = (training / "iris.csv").read_text().splitlines()
    (validation / "holdout.csv").write_text("\n".join(rows[::5]) + "\n")
    return {"training": training, "validation": validation}


def test_the_projects_metric_definitions_give_final_metrics(iris_project: Project,
                                                             tmp_path: Path) -> None:
    definitions = job_metrics.from_config(iris_project.config)
    assert {d.name for d in definitions} == {"train:loss", "train:accuracy", "validation:loss",
                                              "validation:accuracy"}
    channels = holdout(tmp_path, iris_project)
    job = subprocess.run(["byoc", "local", "train", str(iris_project.root), "--backend", "process",
                          "--job-name", "scored", "--hyperparameter", "epochs=12",
                          *[f"--channel={name}={path}" for name, path in channels.items()]],
                         capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr
    job_dir = iris_project.jobs_dir / "scored"
    record = json.loads((job_dir / "job.json").read_text())
    final = {entry["MetricName"]: entry["Value"] for entry in record["FinalMetricDataList"]}
    assert set(final) == {"train:loss", "train:accuracy", "validation:loss", "validation:accuracy"}
    printed = re.findall(r"^algo-1 \| validation:loss=(\S+); validation:accuracy=(\S+);$",
                         job.stderr, re.MULTILINE)
    assert printed and (final["validation:loss"], final["validation:accuracy"]) == pytest.approx(
        tuple(float(v) for v in printed[-1]), rel=1e-5)
    assert final["validation:accuracy"] >= 0.9
    samples = json.loads((job_dir / "metrics.json").read_text())
    counts: dict[str, int] = {}
    for sample in samples["Samples"]["algo-1"]:
        counts[sample["MetricName"]] = counts.get(sample["MetricName"], 0) + 1
    assert counts == {name: 13 for name in final}  # each of 12 epochs, then the final score
    assert samples["DroppedValues"] in ({}, {name: 0 for name in final})


def tuning_request(name: str, strategy: str, regexes: dict[str, str]) -> dict[str, Any]:
    ranges: dict[str, Any] = {
        "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.001",
                                       "MaxValue": "1", "ScalingType": "Logarithmic"}],
        "IntegerParameterRanges": [{"Name": "batch_size", "MinValue": "4",
                                    "MaxValue": "64", "ScalingType": "Linear"}]}
    config: dict[str, Any] = {}
    if strategy == "Grid":  # categorical ranges only: 2 x 2 combinations
        ranges = {"CategoricalParameterRanges": [{"Name": "learning_rate", "Values": ["0.003", "0.3"]},
                                                 {"Name": "batch_size", "Values": ["8", "32"]}]}
    if strategy == "Hyperband":  # one epoch at least; the epochs hyperparameter gives the most
        config["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": 1}}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": ranges,
            "RandomSeed": 11, **config},
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris-classifier:latest",
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": n, "Regex": r} for n, r in regexes.items()]},
            "StaticHyperParameters": {"epochs": "8"},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/tuning/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600}},
    }


STRATEGIES = ["Random", "Bayesian", "Grid", "Hyperband"]


@pytest.mark.parametrize("backend", ["process", pytest.param("docker", marks=pytest.mark.docker)])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.usefixtures("shared_matplotlib_cache")
def test_byoc_local_tune_picks_the_best_job(strategy: str, backend: str, iris_project: Project,
                                            tmp_path: Path, request: pytest.FixtureRequest) -> None:
    toml = tomllib.loads((iris_project.root / "byoc.toml").read_text())
    regexes = {d["Name"]: d["Regex"] for d in toml["metric_definitions"]}
    name = f"iris-{strategy.lower()}"
    config = tmp_path / "tune.json"
    config.write_text(json.dumps(tuning_request(name, strategy, regexes)))
    channels = holdout(tmp_path, iris_project)
    # on Docker: the image built once for the session, as for an image byoc did not build
    where = [str(iris_project.root)] if backend == "process" else \
        ["--image", request.getfixturevalue("default_image")]
    run = subprocess.run(["byoc", "local", "tune", *where, "--backend", backend,
                          "--config", str(config), "--output-dir", str(tmp_path / "out"),
                          *[f"--channel={n}={p}" for n, p in channels.items()]],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    tuning = tmp_path / "out" / name
    described = json.loads((tuning / "tuning.json").read_text())
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    counters = described["TrainingJobStatusCounters"]
    assert counters["Completed"] + counters["Stopped"] == 4 and counters["Completed"] >= 1
    assert described["ObjectiveStatusCounters"]["Succeeded"] == 4
    jobs = json.loads((tuning / "training-jobs.json").read_text())["TrainingJobSummaries"]
    values = {job["TrainingJobName"]: job["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
              for job in jobs if job["TrainingJobStatus"] == "Completed"}
    best = described["BestTrainingJob"]
    assert values[best["TrainingJobName"]] == min(values.values())
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(values.values())
    tuned = [job["TunedHyperParameters"] for job in jobs]
    assert len({tuple(sorted(t.items())) for t in tuned}) == 4  # four different settings
    if strategy == "Grid":
        assert sorted((t["learning_rate"], t["batch_size"]) for t in tuned) == [
            ("0.003", "32"), ("0.003", "8"), ("0.3", "32"), ("0.3", "8")]
    assert set(best["TunedHyperParameters"]) == {"learning_rate", "batch_size"}
    for job in jobs:  # each job's own record, with what the container was given
        record = json.loads((tuning / "jobs" / job["TrainingJobName"] / "job.json").read_text())
        assert record["HyperParameters"]["_tuning_objective_metric"] == "validation:loss"
        assert record["HyperParameters"]["epochs"] == "8"
        if job["TrainingJobStatus"] == "Stopped":  # Hyperband stopped it at a rung
            assert strategy == "Hyperband"
            assert f"{job['TrainingJobName']} Stopped (Hyperband)" in run.stderr
    archive = Path(run.stdout.strip().splitlines()[-1])
    assert archive.name == "model.tar.gz" and best["TrainingJobName"] in str(archive)
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["model.npz"]

