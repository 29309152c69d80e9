"""``--experiment``: local jobs as MLflow runs, in a real MLflow store (SQLite, in a temp dir) read
back with ``mlflow.MlflowClient``. The jobs run on the process backend (the tune probe prints a
loss per epoch; the probe fails on request)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tune_requests import request

from byoc.errors import ConfigError
from byoc.job import metrics as job_metrics
from byoc.local import experiments, scanner
from byoc.local import record as jobrecord
from byoc.project import Project, ProjectConfig

TUNEPROBE = Path(__file__).resolve().parent / "fixtures" / "tuneprobe"


def byoc(*args: str, cwd: Path, env: dict[str, str] | None = None,
         python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """byoc in a subprocess (with *python*: ``python -c`` shim code run before its CLI)."""
    command = [sys.executable, "-c", "\n".join([*python, "from byoc.cli import main",
                                                "import sys", "sys.argv[0] = 'byoc'", "main()"]),
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def client_for() -> Iterator[Any]:
    """A client on a tracking URI (MLflow's own deprecation warnings on reading are not ours)."""
    from mlflow import MlflowClient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield lambda uri: MlflowClient(tracking_uri=uri)


@pytest.fixture
def tuneprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the tune probe; no MLFLOW_TRACKING_URI, so the project's default store."""
    monkeypatch.delenv(experiments.URI_ENV, raising=False)
    return Path(shutil.copytree(TUNEPROBE, tmp_path / "tuneprobe"))


def millis(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def one_run(client: Any, experiment: str) -> Any:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    (run,) = client.search_runs([found.experiment_id])
    return run


def artifacts(client: Any, run_id: str, path: str | None = None) -> set[str]:
    return {item.path for item in client.list_artifacts(run_id, path)}


def test_a_train_job_is_one_run_with_params_metric_history_status_and_artifacts(
        tuneprobe: Path, tmp_path: Path, client_for: Any) -> None:
    run = byoc("local", "train", str(tuneprobe), "--backend", "process", "--experiment", "probe-runs",
               "--hyperparameter", "x=0.5", "--hyperparameter", "n=5", "--hyperparameter", "kind=a",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr.lower() and "INFO" not in run.stderr, run.stderr
    job_dir = Path(run.stdout.strip()).parent
    record = json.loads((job_dir / "job.json").read_text())
    # the default store: MLflow's own default file in the project, artifacts beside it
    client = client_for(f"sqlite:///{tuneprobe / 'mlflow.db'}")
    logged = one_run(client, "probe-runs")
    info, data = logged.info, logged.data
    assert info.run_name == record["TrainingJobName"] == job_dir.name
    assert info.status == "FINISHED"
    assert info.start_time == millis(record["TrainingStartTime"])
    assert info.end_time == millis(record["TrainingEndTime"])
    assert info.artifact_uri.startswith((tuneprobe / "mlruns").as_uri())
    assert data.params == record["HyperParameters"] == {"epochs": "3", "x": "0.5", "n": "5", "kind": "a"}
    assert data.tags["sagemaker.TrainingJobName"] == job_dir.name
    assert data.tags["sagemaker.TrainingJobArn"] == record["TrainingJobArn"]
    assert data.tags["sagemaker.TrainingJobStatus"] == "Completed"
    assert data.tags["sagemaker.TrainingImage"] == record["AlgorithmSpecification"]["TrainingImage"]
    assert data.tags["sagemaker.TrainingInputMode"] == "File"
    assert data.tags["sagemaker.InstanceCount"] == "1"
    assert data.tags["byoc.backend"] == "process"
    assert "sagemaker.FailureReason" not in data.tags
    # every sample the scanner read, with its step and time; the last is the final metric
    saved = json.loads((job_dir / "metrics.json").read_text())["Samples"]["algo-1"]
    history = client.get_metric_history(info.run_id, "validation:loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (s["Step"], s["Value"], millis(s["Timestamp"])) for s in saved]
    assert [m.step for m in history] == [0, 1, 2]
    assert [round(m.value, 6) for m in history] == [1.78, 1.68, 1.58]  # the probe's loss, epoch by epoch
    assert data.metrics == {"validation:loss": record["FinalMetricDataList"][0]["Value"]}
    assert {"model.tar.gz", "output.tar.gz", "job.json"} <= artifacts(client, info.run_id)
    local = Path(client.download_artifacts(info.run_id, "model.tar.gz", str(tmp_path / "down")))
    assert local.read_bytes() == (job_dir / "model.tar.gz").read_bytes()

    # an evaluation.json the job has (here: one an evaluation step put in its output) is an artifact
    (job_dir / "evaluation").mkdir()
    (job_dir / "evaluation" / "evaluation.json").write_text('{"regression_metrics": {}}')
    where = experiments.Tracking("with-evaluation", f"sqlite:///{tmp_path / 'other.db'}",
                                 tmp_path / "other-artifacts")
    run_id = experiments.log_job(where, job_dir)
    assert run_id is not None
    other = client_for(where.uri)
    assert artifacts(other, run_id, "evaluation") == {"evaluation/evaluation.json"}
    assert (tmp_path / "other-artifacts" / "with-evaluation" / run_id / "artifacts" / "evaluation"
            / "evaluation.json").is_file()


@pytest.mark.parametrize("backend", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_failed_job_is_a_failed_run_named_by_byoc_toml(backend: str, probe: Project, tmp_path: Path,
                                                         client_for: Any,
                                                         request: pytest.FixtureRequest) -> None:
    if backend == "docker":
        request.getfixturevalue("probe_image")
    config = probe.root / "byoc.toml"
    config.write_text(config.read_text() + '\n[experiment]\nname = "from-toml"\n')
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    run = byoc("local", "train", str(probe.root), "--backend", backend,
               "--hyperparameter", "fail=out of memory", cwd=tmp_path, env={experiments.URI_ENV: uri})
    assert run.returncode != 0 and "Error:" in run.stderr
    client = client_for(uri)
    logged = one_run(client, "from-toml")
    assert logged.info.status == "FAILED"
    assert logged.data.tags["sagemaker.TrainingJobStatus"] == "Failed"
    assert "out of memory" in logged.data.tags["sagemaker.FailureReason"]
    assert logged.data.params["fail"] == "out of memory"
    assert logged.data.tags["byoc.backend"] == backend
    job_dir = probe.jobs_dir / logged.info.run_name
    assert json.loads((job_dir / "job.json").read_text())["TrainingJobStatus"] == "Failed"
    assert {"model.tar.gz", "output.tar.gz"} <= artifacts(client, logged.info.run_id)


def test_a_job_stopped_at_its_max_run_is_a_killed_run(probe: Project, tmp_path: Path,
                                                      client_for: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = byoc("local", "train", str(probe.root), "--backend", "process", "--experiment", "stops",
               "--hyperparameter", "sleep=30", "--max-run", "1s", "--grace", "2", cwd=tmp_path,
               env={experiments.URI_ENV: uri})
    assert run.returncode != 0, run.stderr
    logged = one_run(client_for(uri), "stops")
    assert logged.info.status == "KILLED"
    assert logged.data.tags["sagemaker.TrainingJobStatus"] == "Stopped"
    assert logged.data.tags["sagemaker.SecondaryStatus"] == "MaxRuntimeExceeded"


def test_a_job_interrupted_by_ctrl_c_is_logged_and_exits_as_interrupted(probe: Project, tmp_path: Path,
                                                                         client_for: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "byoc", "local", "train", str(probe.root), "--backend", "process",
         "--experiment", "ctrl-c", "--hyperparameter", "sleep=60"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, experiments.URI_ENV: uri})
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # the job is training once the probe says it started
            lines.append(line)
            if "probe algo-1 starting" in line:
                break
        else:
            raise AssertionError("".join(lines))
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, "".join(lines) + rest
    assert "warning" not in rest
    logged = one_run(client_for(uri), "ctrl-c")
    assert logged.info.status == "KILLED"
    assert logged.data.tags["sagemaker.TrainingJobStatus"] == "Stopped"


def test_a_tuning_job_is_a_parent_run_with_a_child_run_per_training_job(
        tuneprobe: Path, tmp_path: Path, client_for: Any) -> None:
    body = request("exp-tune", max_jobs=3, parallel=2)
    (tmp_path / "request.json").write_text(json.dumps(body))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = byoc("local", "tune", str(tuneprobe), "--backend", "process", "--config",
               str(tmp_path / "request.json"), "--output-dir", str(tmp_path / "out"),
               "--experiment", "tuning", cwd=tmp_path, env={experiments.URI_ENV: uri})
    assert run.returncode == 0, run.stderr
    description = json.loads((tmp_path / "out" / "exp-tune" / "tuning.json").read_text())
    best = description["BestTrainingJob"]
    client = client_for(uri)
    experiment = client.get_experiment_by_name("tuning")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 4 and len(children) == 3
    assert parent.info.run_name == "exp-tune" and parent.info.status == "FINISHED"
    assert parent.data.tags["sagemaker.BestTrainingJob"] == best["TrainingJobName"]
    assert parent.data.metrics == {
        "validation:loss": best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]}
    params = parent.data.params
    assert params["Strategy"] == "Random"
    assert params["Objective.Type"] == "Minimize" and params["Objective.MetricName"] == "validation:loss"
    assert json.loads(params["ParameterRanges.x"]) == {"Type": "Continuous", "MinValue": "0.001",
                                                       "MaxValue": "1", "ScalingType": "Logarithmic"}
    assert json.loads(params["ParameterRanges.kind"]) == {"Type": "Categorical", "Values": ["a", "b"]}
    assert params["ResourceLimits.MaxNumberOfTrainingJobs"] == "3"
    assert parent.info.start_time == millis(description["CreationTime"])
    jobs = {path.parent.name for path in (tmp_path / "out" / "exp-tune" / "jobs").glob("*/job.json")}
    assert {child.info.run_name for child in children} == jobs
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["sagemaker.TuningJobName"] == "exp-tune"
        record = json.loads((tmp_path / "out" / "exp-tune" / "jobs" / child.info.run_name
                             / "job.json").read_text())
        assert child.data.params == record["HyperParameters"]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "validation:loss")] == [0, 1, 2]
    # logged again (as after --resume): the same parent run, no training job twice
    again = experiments.log_tuning_job(experiments.Tracking("tuning", uri), tmp_path / "out" / "exp-tune")
    assert again == parent.info.run_id
    assert len(client.search_runs([experiment.experiment_id])) == 4
    assert client.get_run(again).info.status == "FINISHED"


def test_without_mlflow_experiment_is_one_error_before_any_job(tuneprobe: Path, tmp_path: Path) -> None:
    block = ("import sys", "sys.modules['mlflow'] = None  # as if byoc[experiments] were not installed")
    (tmp_path / "request.json").write_text(json.dumps(request("no-mlflow", max_jobs=2)))
    for args in (("local", "train", str(tuneprobe), "--backend", "process", "--experiment", "x"),
                 ("local", "tune", str(tuneprobe), "--backend", "process", "--experiment", "x", "--config",
                  str(tmp_path / "request.json"), "--output-dir", str(tmp_path / "out"))):
        run = byoc(*args, cwd=tmp_path, python=block)
        assert run.returncode != 0
        assert run.stderr.strip().splitlines() == [
            "Error: --experiment needs MLflow, which cannot be imported (import of mlflow halted;"
            " None in sys.modules): pip install 'byoc[experiments]'"], run.stderr
        assert not (tuneprobe / ".byoc").exists() and not (tmp_path / "out").exists()
    # [experiment] in byoc.toml asks for it too
    config = tuneprobe / "byoc.toml"
    config.write_text(config.read_text() + '\n[experiment]\nname = "x"\n')
    run = byoc("local", "train", str(tuneprobe), "--backend", "process", cwd=tmp_path, python=block)
    assert run.returncode != 0
    # the line names what asked for MLflow: the table, not an --experiment that was not given
    assert run.stderr.strip().splitlines() == [
        f"Error: [experiment] in {config.resolve()} needs MLflow, which cannot be imported"
        " (import of mlflow halted; None in sys.modules): pip install 'byoc[experiments]'"], run.stderr
    assert not (tuneprobe / ".byoc").exists()


def test_an_unwritable_store_is_one_warning_and_the_job_keeps_its_exit_code(
        probe: Project, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    bad = {experiments.URI_ENV: f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"}
    good = byoc("local", "train", str(probe.root), "--backend", "process", "--experiment", "x",
                cwd=tmp_path, env=bad)
    assert good.returncode == 0, good.stderr
    warned = [line for line in good.stderr.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "not logged to MLflow experiment 'x'" in warned[0], good.stderr
    assert "Traceback" not in good.stderr
    assert Path(good.stdout.strip()).is_file()  # the model archive, as without --experiment

    plain = byoc("local", "train", str(probe.root), "--backend", "process", "--job-name", "plain",
                 "--hyperparameter", "fail=boom", cwd=tmp_path)
    failed = byoc("local", "train", str(probe.root), "--backend", "process", "--job-name", "logged",
                  "--experiment", "x", "--hyperparameter", "fail=boom", cwd=tmp_path, env=bad)
    assert plain.returncode != 0 and failed.returncode == plain.returncode
    assert len([line for line in failed.stderr.splitlines() if "warning:" in line]) == 1
    assert [line.replace("logged", "plain") for line in failed.stderr.splitlines()
            if line.startswith("Error:")] == [line for line in plain.stderr.splitlines()
                                              if line.startswith("Error:")]


def test_a_tracking_server_that_does_not_answer_costs_seconds_and_one_warning(
        tmp_path: Path, unused_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in experiments.HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "job.json").write_text(json.dumps({"TrainingJobName": "job",
                                                  "TrainingJobStatus": "Completed"}))
    said: list[str] = []
    started = time.monotonic()
    where = experiments.Tracking("x", f"http://127.0.0.1:{unused_port}")
    assert experiments.log_job(where, job_dir, say=said.append) is None
    assert time.monotonic() - started < 60
    assert len(said) == 1 and said[0].startswith("warning: not logged to MLflow experiment 'x'")
    assert not any(name in os.environ for name in experiments.HTTP_DEFAULTS)


def test_hosts_keep_their_series_apart_and_the_final_value_is_the_metric(tmp_path: Path,
                                                                        client_for: Any) -> None:
    job_dir = tmp_path / "two-hosts"
    job_dir.mkdir()
    jobrecord.merge(job_dir, {"TrainingJobName": "two-hosts", "TrainingJobStatus": "Completed",
                              "HyperParameters": {"lr": "0.1"}})
    scan = scanner.MetricScanner([job_metrics.definition("loss", r"loss=([0-9.]+)")])
    for host, value in (("algo-1", "0.9"), ("algo-2", "0.8"), ("algo-1", "0.5"), ("algo-2", "0.3")):
        scan.scan(host, f"loss={value}")
    scan.defer_plot = True
    scan.save(job_dir)  # metrics.json and FinalMetricDataList, as a job leaves them
    where = experiments.Tracking("hosts", f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlruns")
    run_id = experiments.log_job(where, job_dir)
    client = client_for(where.uri)
    history = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
               for key in ("loss/algo-1", "loss/algo-2")}
    assert history == {"loss/algo-1": [(0, 0.9), (1, 0.5)], "loss/algo-2": [(0, 0.8), (1, 0.3)]}
    assert client.get_run(run_id).data.metrics == {"loss/algo-1": 0.5, "loss/algo-2": 0.3, "loss": 0.3}
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_processing_job_record_is_a_run_too(tmp_path: Path, client_for: Any) -> None:
    """The call ``byoc local process`` makes, on a record shaped like DescribeProcessingJob."""
    job_dir = tmp_path / "prep"
    (job_dir / "output" / "evaluation").mkdir(parents=True)
    (job_dir / "output" / "evaluation" / "evaluation.json").write_text('{"regression_metrics": {}}')
    jobrecord.merge(job_dir, {
        "ProcessingJobName": "prep", "ProcessingJobArn": "arn:local:processing-job/prep",
        "ProcessingJobStatus": "Failed", "FailureReason": "exit 2",
        "ProcessingStartTime": "2026-01-01T00:00:00.000+00:00",
        "ProcessingEndTime": "2026-01-01T00:01:00.000+00:00",
        "AppSpecification": {"ImageUri": "img", "ContainerArguments": ["--split", "0.2"]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 2, "InstanceType": "local"}}})
    where = experiments.Tracking("processing", f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlruns")
    (tmp_path / "out").mkdir()  # an output folder outside the job's directory
    (tmp_path / "out" / "evaluation.json").write_text('{"metrics": {}}')
    run_id = experiments.log_job(where, job_dir, artifacts=[tmp_path / "out" / "evaluation.json",
                                                            tmp_path / "out" / "missing.json"])
    client = client_for(where.uri)
    logged = client.get_run(run_id)
    assert "evaluation.json" in artifacts(client, run_id)
    assert logged.info.run_name == "prep" and logged.info.status == "FAILED"
    assert logged.info.start_time == millis("2026-01-01T00:00:00.000+00:00")
    assert logged.info.end_time == logged.info.start_time + 60_000
    assert logged.data.params == {"ContainerArguments": '["--split", "0.2"]'}
    tags = logged.data.tags
    assert (tags["sagemaker.ProcessingJobStatus"], tags["sagemaker.ImageUri"],
            tags["sagemaker.InstanceCount"], tags["sagemaker.FailureReason"]) == (
        "Failed", "img", "2", "exit 2")
    assert artifacts(client, run_id, "output/evaluation") == {"output/evaluation/evaluation.json"}


def test_the_experiment_table_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "byoc.toml"
    path.write_text('[experiment]\nname = "runs"\ntracking_uri = "sqlite:///x.db"\n')
    assert ProjectConfig.read(path).experiment == {"name": "runs", "tracking_uri": "sqlite:///x.db"}
    for body, message in (('[experiment]\nnmae = "x"\n', "no key 'nmae'"),
                          ("[experiment]\nname = 3\n", "must be a non-empty string"),
                          ('experiment = "x"\n', "[experiment] must be a table")):
        path.write_text(body)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            ProjectConfig.read(path).experiment  # noqa: B018


def test_the_store_is_mlflows_variable_then_byoc_toml_then_the_project(tmp_path: Path) -> None:
    (tmp_path / "byoc.toml").write_text('[experiment]\nname = "runs"\ntracking_uri = "http://127.0.0.1:1"\n')
    project = Project.load(tmp_path)
    assert experiments.resolve(None, project, environ={}) == experiments.Tracking(
        "runs", "http://127.0.0.1:1")
    assert experiments.resolve("other", project, environ={experiments.URI_ENV: "sqlite:///a.db"}) == \
        experiments.Tracking("other", "sqlite:///a.db")
    (tmp_path / "byoc.toml").write_text("[project]\nname = \"p\"\n")
    project = Project.load(tmp_path)
    assert experiments.resolve(None, project, environ={}) is None
    assert experiments.resolve("runs", project, environ={}) == experiments.Tracking(
        "runs", f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}", tmp_path.resolve() / "mlruns")


def test_local_process_and_evaluate_log_their_jobs_as_runs(tmp_path: Path, client_for: Any) -> None:
    """``byoc local process`` and ``byoc local evaluate`` take --experiment as train does: the
    processing job is a run, with the evaluation.json of its output folder (process) or of its
    job directory (evaluate) as an artifact."""
    project = Path(shutil.copytree(Path(__file__).resolve().parent / "fixtures" / "procprobe",
                                   tmp_path / "procprobe"))
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    trained = byoc("local", "train", str(project), "--backend", "process", "--job-name",
                   "probe-train", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    evaluated = byoc("local", "evaluate", str(project), "--backend", "process", "--experiment",
                     "evals", "--job-name", "probe-eval", cwd=tmp_path, env=store)
    assert evaluated.returncode == 0, evaluated.stderr
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.csv").write_text("1,2\n")
    processed = byoc("local", "process", str(project), "--backend", "process", "--experiment",
                     "evals", "--job-name", "probe-proc", "--entrypoint", "evaluate",
                     "--input", f"model={project / '.byoc' / 'jobs' / 'probe-train' / 'model.tar.gz'}"
                     ":/opt/ml/processing/model", "--input", f"test={data}:/opt/ml/processing/test",
                     "--output", f"evaluation={tmp_path / 'out'}:/opt/ml/processing/evaluation",
                     cwd=tmp_path, env=store)
    assert processed.returncode == 0, processed.stderr
    client = client_for(store["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("evals")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"probe-eval", "probe-proc"}
    for name, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["sagemaker.ProcessingJobStatus"] == "Completed"
        assert any(path.endswith("evaluation.json") for path in _all_artifacts(client, run.info.run_id)), name


def _all_artifacts(client: Any, run_id: str, path: str | None = None) -> list[str]:
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found += _all_artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return found
