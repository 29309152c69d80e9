"""Long jobs locally: checkpoints, simulated spot reclaims, stops, time limits, incremental
training and the DescribeTrainingJob-shaped record, on both backends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from byoc import local
from byoc.backends.base import Backend
from byoc.errors import ArchiveError, ConfigError, JobStoppedError
from byoc.local import record as jobrecord
from byoc.project import Project
from helpers import FIXTURES, built_image, train_job

EPOCHS = FIXTURES / "epochs"
#: This session's own image name, so sessions sharing an engine never remove each other's.
EPOCHS_REPOSITORY = f"byoc-test-epochs-{uuid.uuid4().hex[:8]}"
KINDS = ["process", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(scope="session")
def epochs_image(docker_client: Any, base_image: str) -> Any:
    tag = f"{EPOCHS_REPOSITORY}:latest"
    with built_image(docker_client, EPOCHS, tag, base_image):
        yield tag


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = Path(shutil.copytree(EPOCHS, tmp_path / "epochs"))
    config = root / "byoc.toml"
    config.write_text(config.read_text().replace('image = "byoc-test-epochs"',
                                                 f'image = "{EPOCHS_REPOSITORY}"'))
    return Project.load(root)


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, project: Project) -> Backend:
    if request.param == "docker":
        request.getfixturevalue("epochs_image")
    return local.choose_backend(request.param, project, None)


def _model(result: local.TrainResult) -> dict[str, Any]:
    with tarfile.open(result.model_archive) as tar:
        return {m.name: json.loads(tar.extractfile(m).read())  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def _statuses(job_dir: Path) -> list[str]:
    record = json.loads((job_dir / "job.json").read_text())
    return [t["Status"] for t in record["SecondaryStatusTransitions"]]


def test_interrupted_twice_with_checkpoints_ends_with_the_uninterrupted_model(
        backend: Backend, project: Project, tmp_path: Path) -> None:
    hps = {"epochs": "12", "epoch_seconds": "0.4"}
    plain = train_job(backend=backend, project=project, hyperparameters=hps, job_name="plain",
                        output_dir=tmp_path / "jobs")
    lines: list[str] = []
    said: list[str] = []
    store = tmp_path / "checkpoints"
    spot = train_job(backend=backend, project=project, hyperparameters=hps, job_name="spot",
                       output_dir=tmp_path / "jobs", checkpoint_dir=store, spot=True,
                       interrupt_after=[2.0, 2.0], grace_seconds=10,
                       log=lambda host, line: lines.append(line), say=said.append)
    assert _model(spot)["model.json"] == _model(plain)["model.json"]
    history = _model(spot)["history.json"]
    assert history["ended"] == "done" and history["ran"][0] > 1  # the last attempt resumed
    assert sum("resuming from" in line for line in lines) == 2
    assert sum("simulated spot interruption" in line for line in said) == 2
    assert _statuses(spot.job_dir) == [
        "Starting", "Downloading", "Training", "Interrupted",
        "Starting", "Downloading", "Training", "Interrupted",
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    record = json.loads((spot.job_dir / "job.json").read_text())
    assert record["TrainingJobStatus"] == "Completed"
    assert record["EnableManagedSpotTraining"] is True
    assert record["CheckpointConfig"] == {"S3Uri": store.resolve().as_uri() + "/",
                                          "LocalPath": "/opt/ml/checkpoints"}
    assert record["BillableTimeInSeconds"] <= record["TrainingTimeInSeconds"] + 1
    # the store holds the program's last two checkpoints, whole, and no temp files
    stored = sorted(p.name for p in store.iterdir())
    assert stored == ["algo-1-epoch-0011.json", "algo-1-epoch-0012.json"]
    assert json.loads((store / stored[-1]).read_text()) == _model(plain)["model.json"]


def test_without_checkpoints_an_interruption_restarts_from_scratch(
        backend: Backend, project: Project, tmp_path: Path) -> None:
    said: list[str] = []
    result = train_job(backend=backend, project=project, job_name="scratch",
                         hyperparameters={"epochs": "4", "epoch_seconds": "0.4"},
                         output_dir=tmp_path / "jobs", spot=True, interrupt_after=[1.5],
                         grace_seconds=10, say=said.append)
    assert any("restarts the job from scratch" in line for line in said)
    assert any("from scratch" in line and "interruption 1" in line for line in said)
    assert _model(result)["history.json"]["ran"] == [1, 2, 3, 4]
    assert "Interrupted" in _statuses(result.job_dir)


def test_max_run_stops_the_job_and_keeps_its_model(backend: Backend, project: Project,
                                                   tmp_path: Path) -> None:
    with pytest.raises(JobStoppedError, match="MaxRuntimeInSeconds") as caught:
        train_job(backend=backend, project=project, job_name="limited",
                    hyperparameters={"epochs": "100", "epoch_seconds": "0.2"},
                    output_dir=tmp_path / "jobs", max_runtime=2.0, grace_seconds=10)
    job_dir = tmp_path / "jobs" / "limited"
    record = json.loads((job_dir / "job.json").read_text())
    assert record["TrainingJobStatus"] == "Stopped"
    assert record["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert record["StoppingCondition"] == {"MaxRuntimeInSeconds": 2}
    assert _statuses(job_dir)[-3:] == ["Stopping", "Uploading", "MaxRuntimeExceeded"]
    assert "model.tar.gz" in caught.value.detail
    with tarfile.open(job_dir / "model.tar.gz") as tar:
        history = json.loads(tar.extractfile("history.json").read())  # type: ignore[union-attr]
    assert history["ended"] == "sigterm"


def test_a_host_ignoring_sigterm_is_killed_after_the_grace(backend: Backend, project: Project,
                                                           tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(JobStoppedError) as caught:
        train_job(backend=backend, project=project, job_name="stubborn",
                    hyperparameters={"epochs": "100", "epoch_seconds": "0.2",
                                     "ignore_sigterm": "1"},
                    output_dir=tmp_path / "jobs", max_runtime=1.0, grace_seconds=1.5)
    assert time.monotonic() - started < 30
    record = json.loads((tmp_path / "jobs" / "stubborn" / "job.json").read_text())
    assert record["Local"]["ExitStatuses"]["algo-1"] != 0
    assert record["SecondaryStatus"] == "MaxRuntimeExceeded"
    # killed before it saved anything: no model is claimed, and none is trained from
    archive = tmp_path / "jobs" / "stubborn" / "model.tar.gz"
    assert caught.value.detail == f"it saved no model: {archive} is empty"
    with pytest.raises(ArchiveError, match="^--incremental-from .*: the archive holds no model"):
        train_job(backend=backend, project=project, job_name="from-nothing",
                    hyperparameters={"epochs": "1", "epoch_seconds": "0"},
                    output_dir=tmp_path / "jobs", incremental_from=archive)
    assert not (tmp_path / "jobs" / "from-nothing").exists()
    (tmp_path / "torn.tar.gz").write_bytes(archive.read_bytes()[:20])
    with pytest.raises(ArchiveError, match="^--incremental-from .*: cannot read") as torn:
        train_job(backend=backend, project=project, job_name="from-torn",
                    hyperparameters={"epochs": "1", "epoch_seconds": "0"},
                    output_dir=tmp_path / "jobs", incremental_from=tmp_path / "torn.tar.gz")
    assert "\n" not in torn.value.message


def test_an_interruption_planned_after_the_end_is_reported(backend: Backend, project: Project,
                                                           tmp_path: Path) -> None:
    said: list[str] = []
    result = train_job(backend=backend, project=project, job_name="short",
                         hyperparameters={"epochs": "1", "epoch_seconds": "0"},
                         output_dir=tmp_path / "jobs", spot=True, interrupt_after=[600.0, 600.0],
                         grace_seconds=10, say=said.append)
    notes = [line for line in said if "ended before" in line]
    assert notes == ["note: the job ended before simulated spot interruption 1 of 2"
                     " (--interrupt-after 600 s into attempt 1); 0 happened"]
    record = json.loads((result.job_dir / "job.json").read_text())
    assert (record["Local"]["PlannedInterruptions"], record["Local"]["Interruptions"]) == (2, 0)


def test_incremental_training_delivers_the_archive_as_sagemaker_does(
        backend: Backend, project: Project, tmp_path: Path) -> None:
    first = train_job(backend=backend, project=project, job_name="first",
                        hyperparameters={"epochs": "1", "epoch_seconds": "0"},
                        output_dir=tmp_path / "jobs")
    second = train_job(backend=backend, project=project, job_name="second",
                         hyperparameters={"epochs": "1", "epoch_seconds": "0"},
                         output_dir=tmp_path / "jobs", incremental_from=first.model_archive)
    assert _model(second)["model.json"] != _model(first)["model.json"]  # seeded by the archive
    record = json.loads((second.job_dir / "job.json").read_text())
    channel = next(c for c in record["InputDataConfig"] if c["ChannelName"] == "model")
    assert channel["ContentType"] == "application/x-sagemaker-model"
    assert channel["InputMode"] == "File"
    assert local.resolve_incremental("first", tmp_path / "jobs") == first.model_archive
    with pytest.raises(ConfigError, match="no such local job"):
        local.resolve_incremental("nope", tmp_path / "jobs")


def test_an_interruption_during_checkpoint_writes_leaves_only_whole_files(
        backend: Backend, project: Project, tmp_path: Path) -> None:
    store = tmp_path / "store"
    size = 8_000_000
    train_job(backend=backend, project=project, job_name="heavy", output_dir=tmp_path / "jobs",
                hyperparameters={"epochs": "12", "epoch_seconds": "0.05",
                                 "ckpt_bytes": str(size)},
                checkpoint_dir=store, spot=True, interrupt_after=[1.2, 1.0], grace_seconds=10)
    files = sorted(store.rglob("*"))
    assert [p.name for p in files] == ["algo-1-epoch-0011.json", "algo-1-epoch-0012.json"]
    for path in files:
        assert path.stat().st_size == size
        assert json.loads(path.read_text())["epoch"] in (11, 12)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_wait": 10.0}, "managed spot training only"),
    ({"spot": True, "max_runtime": 100.0, "max_wait": 50.0}, "must be at least"),
    ({"interrupt_after": [1.0]}, "add --spot"),
    ({"max_runtime": 0.0}, "MaxRuntimeInSeconds takes 1 to"),
    ({"checkpoint_dir": Path("local_test/test_dir/input/data/training/x")}, "overlaps channel"),
    ({"checkpoint_dir": Path("ck"), "checkpoint_local_path": "/opt/ml/model/ck"}, "must not be"),
    ({"checkpoint_dir": Path("ck"), "checkpoint_local_path": "relative"}, "absolute"),
])
def test_refused_before_any_host_starts(project: Project, tmp_path: Path, kwargs: dict[str, Any],
                                        message: str) -> None:
    if "checkpoint_dir" in kwargs:
        kwargs["checkpoint_dir"] = project.root / kwargs["checkpoint_dir"]
    backend = local.choose_backend("process", project, None)
    with pytest.raises(ConfigError, match=message):
        train_job(backend=backend, project=project, output_dir=tmp_path / "jobs",
                    job_name="refused", **kwargs)
    assert not (tmp_path / "jobs" / "refused").exists()


def _byoc(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "byoc", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_status(job_dir: Path, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((job_dir / "job.json").read_text())["SecondaryStatus"] == status:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{job_dir.name} never reached {status}")


@pytest.mark.parametrize("kind", KINDS)
def test_byoc_local_stop_from_another_terminal(kind: str, project: Project,
                                               request: pytest.FixtureRequest) -> None:
    if kind == "docker":
        request.getfixturevalue("epochs_image")
    job = _byoc("local", "train", "--backend", kind, "--job-name", "long", "--hyperparameter",
                "epochs=1000", "--hyperparameter", "epoch_seconds=0.1", cwd=project.root)
    _wait_for_status(project.jobs_dir / "long", "Training")
    time.sleep(1.5)
    stop = subprocess.run([sys.executable, "-m", "byoc", "local", "stop", "long"],
                          cwd=project.root, capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    out, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert out.strip().endswith("model.tar.gz")
    assert f"training job long stopped on request; the model it left: {out.strip()}" in err
    record = json.loads((project.jobs_dir / "long" / "job.json").read_text())
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert [t["Status"] for t in record["SecondaryStatusTransitions"]][-3:] == [
        "Stopping", "Uploading", "Stopped"]
    again = subprocess.run([sys.executable, "-m", "byoc", "local", "stop", "long"],
                           cwd=project.root, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "is not running (status Stopped)" in again.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_a_killed_byoc_leaves_a_record_the_next_command_marks_failed(
        kind: str, project: Project, request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue("docker_client") if kind == "docker" else None
    if kind == "docker":
        request.getfixturevalue("epochs_image")
    job = _byoc("local", "train", "--backend", kind, "--job-name", "orphan", "--hyperparameter",
                "epochs=1000", "--hyperparameter", "epoch_seconds=0.1", cwd=project.root)
    job_dir = project.jobs_dir / "orphan"
    _wait_for_status(job_dir, "Training")
    time.sleep(1.5)
    arn = json.loads((job_dir / "job.json").read_text())["TrainingJobArn"]
    os.kill(job.pid, signal.SIGKILL)
    job.communicate(timeout=30)
    listing = subprocess.run([sys.executable, "-m", "byoc", "local", "jobs"], cwd=project.root,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "orphan" in listing.stdout and "Failed" in listing.stdout
    assert "marked Failed and cleaned up" in listing.stderr
    record = jobrecord.find(project.jobs_dir, "orphan")
    assert record.status == "Failed" and "killed" in record.data["FailureReason"]
    assert not (job_dir / "hosts").exists()
    if client is not None:
        assert not client.containers.list(all=True, ignore_removed=True,
                                          filters={"label": "com.byoc.job=orphan"})
        assert not client.networks.list(filters={"label": "com.byoc.job=orphan"})
    else:
        time.sleep(0.5)
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                assert f"TRAINING_JOB_ARN={arn}".encode() not in (entry / "environ").read_bytes()
            except OSError:
                continue
