"""byoc local train / serve on both backends, with a probe that reports what it sees."""

from __future__ import annotations

import json
import socket
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from byoc import invoke, local
from byoc.backends.base import Backend
from byoc.errors import (
    ArchiveError,
    ConfigError,
    ContainerFailedError,
    PortInUseError,
    PredictError,
    ServeError,
)
from byoc.project import Project
from helpers import train_job

KINDS = ["process", pytest.param("docker", marks=pytest.mark.docker)]


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore[union-attr]
                if m.isfile()}


def _report(result: local.TrainResult, host: str = "algo-1") -> dict[str, Any]:
    return json.loads(_members(result.model_archive)[f"{host}.json"])


def _left_behind(docker_client: Any, job_name: str) -> list[str]:
    """The containers and networks of *job_name* still on the engine (only this job's: other
    test runs may share the engine)."""
    label = {"label": f"com.byoc.job={job_name}"}
    containers = docker_client.containers.list(all=True, ignore_removed=True, filters=label)
    networks = docker_client.networks.list(filters=label)
    return [c.name for c in containers] + [n.name for n in networks]


def test_a_job_sees_what_sagemaker_would_give_it(backend: Backend, probe: Project,
                                                 tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    result = train_job(backend=backend, project=probe, output_dir=tmp_path / "jobs",
                         hyperparameters={"depth": "3", "rate": 0.5}, job_name="probe-job-1",
                         log=lambda host, line: lines.append((host, line)))
    assert result.succeeded and result.exit_statuses == {"algo-1": 0}
    assert result.job_dir == tmp_path / "jobs" / "probe-job-1"
    assert any("'rate' is not a string" in note for note in result.notes)
    report = _report(result)
    assert report["hyperparameters"] == {"depth": "3", "rate": "0.5"}
    assert report["inputdataconfig"] == {"training": {
        "ContentType": "text/csv", "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}
    assert report["resourceconfig"]["current_host"] == "algo-1"
    assert report["resourceconfig"]["hosts"] == ["algo-1"]
    assert report["env"]["TRAINING_JOB_NAME"] == "probe-job-1"
    assert report["env"]["TRAINING_JOB_ARN"].endswith(":training-job/probe-job-1")
    assert report["files"] == {"training": [f"part-{i}.csv" for i in range(1, 6)]}
    assert _members(result.output_archive) == {"algo-1.txt": b"output of algo-1\n"}
    assert ("algo-1", "probe algo-1 done") in lines
    assert "probe algo-1 done" in (result.job_dir / "logs" / "algo-1.log").read_text()
    assert sorted(p.name for p in result.job_dir.iterdir()) == [
        "job.json", "logs", "model.tar.gz", "output.tar.gz"]
    assert (tmp_path / "jobs" / "latest").read_text().strip() == "probe-job-1"


def test_sharded_channel_gives_each_file_to_one_host(backend: Backend, probe: Project,
                                                     tmp_path: Path) -> None:
    extra = tmp_path / "lookup"
    extra.mkdir()
    (extra / "table.csv").write_text("a,b\n")
    peers = {"peers": "1", "sleep": "2"} if backend.name == "docker" else {}
    result = train_job(backend=backend, project=probe, output_dir=tmp_path / "jobs",
                         instance_count=2, hyperparameters=peers,
                         channels={"training": probe.test_dir / "input" / "data" / "training",
                                   "lookup": extra},
                         distribution={"training": "ShardedByS3Key"})
    first, second = _report(result, "algo-1"), _report(result, "algo-2")
    assert first["files"]["training"] == ["part-1.csv", "part-3.csv", "part-5.csv"]
    assert second["files"]["training"] == ["part-2.csv", "part-4.csv"]
    assert first["files"]["lookup"] == second["files"]["lookup"] == ["table.csv"]
    assert second["resourceconfig"]["current_host"] == "algo-2"
    assert second["resourceconfig"]["hosts"] == ["algo-1", "algo-2"]
    assert second["inputdataconfig"]["training"]["S3DistributionType"] == "ShardedByS3Key"
    assert set(_members(result.output_archive)) == {"algo-1.txt", "algo-2.txt"}
    if backend.name == "docker":  # hosts reach each other by name on the job's network
        assert all(first["peers"].values()) and all(second["peers"].values())
        assert first["peers"] == second["peers"]


def test_a_failed_job_reports_the_reason_and_keeps_its_artifacts(
        backend: Backend, probe: Project, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with pytest.raises(ContainerFailedError) as caught:
        train_job(backend=backend, project=probe, output_dir=tmp_path / "jobs",
                    job_name="probe-fails", hyperparameters={"fail": "disk full"})
    error = caught.value
    assert error.exit_status == 3
    assert error.failure_reason == "disk full on algo-1\ndetail line\n"
    assert "algo-1 exited with status 3: disk full on algo-1" in error.message
    job = tmp_path / "jobs" / "probe-fails"
    assert "algo-1.json" in _members(job / "model.tar.gz")
    assert (job / "failure").read_text().startswith("disk full on algo-1")
    record = json.loads((job / "job.json").read_text())
    assert record["Local"]["ExitStatuses"] == {"algo-1": 3}
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Failed", "Failed")
    assert record["FailureReason"] == "disk full on algo-1\ndetail line\n"
    assert [t["Status"] for t in record["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Failed"]
    assert not (tmp_path / "jobs" / "latest").exists()
    assert not (job / "hosts").exists()
    if backend.name == "docker":
        assert _left_behind(request.getfixturevalue("docker_client"), "probe-fails") == []


def test_channels_and_local_test_are_never_written(backend: Backend, probe: Project,
                                                   tmp_path: Path) -> None:
    before = sorted((str(p), p.stat().st_mtime_ns) for p in probe.test_dir.rglob("*"))
    result = train_job(backend=backend, project=probe, output_dir=tmp_path / "jobs",
                         hyperparameters={"write_channel": "1"})
    assert sorted((str(p), p.stat().st_mtime_ns) for p in probe.test_dir.rglob("*")) == before
    if backend.name == "docker":  # mounted read-only
        assert _report(result)["channel_write"].startswith("refused")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"job_name": "bad_name"}, "invalid job name"),
    ({"instance_count": 0}, "--instance-count must be at least 1"),
    ({"instance_count": 21}, "a local run starts at most 20 hosts"),
    ({"channels": {"training": Path("/nonexistent")}}, "does not exist"),
    ({"channels": {"bad/name": Path(".")}}, "invalid channel name"),
    ({"distribution": {"other": "ShardedByS3Key"}}, "not a channel"),
    ({"distribution": {"training": "Sharded"}}, "use FullyReplicated or ShardedByS3Key"),
    ({"env": {"1BAD": "x"}}, "environment variable '1BAD'"),
    ({"hyperparameters": {"k": "v" * 2501}}, "values at most 2500"),
])
def test_input_sagemaker_would_refuse_is_refused(probe: Project, tmp_path: Path,
                                                 kwargs: dict[str, Any], message: str) -> None:
    backend = local.choose_backend("process", probe, None)
    with pytest.raises(ConfigError, match=message):
        train_job(backend=backend, project=probe, output_dir=tmp_path / "jobs", **kwargs)
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


def test_an_existing_job_directory_is_not_reused(probe: Project, tmp_path: Path) -> None:
    (tmp_path / "jobs" / "taken").mkdir(parents=True)
    with pytest.raises(ConfigError, match="a job named taken exists"):
        train_job(backend=local.choose_backend("process", probe, None), project=probe,
                    output_dir=tmp_path / "jobs", job_name="taken")


def test_the_process_backend_cannot_run_a_foreign_image(probe: Project) -> None:
    with pytest.raises(ConfigError, match="--image needs Docker"):
        local.choose_backend("process", probe, "someone/else:1")


def _model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    return model


def test_serve_answers_invocations_with_the_model_mounted(backend: Backend, tmp_path: Path,
                                                          unused_port: int) -> None:
    with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port,
                     startup_timeout=60) as running:
        assert running.url == f"http://127.0.0.1:{unused_port}"
        answer = invoke.predict(running.url, b"1,2", "text/csv")
        assert json.loads(answer.body) == {"echo": "1,2", "model": ["weights.bin"],
                                           "content_type": "text/csv"}
        with pytest.raises(PredictError, match="HTTP 400 .*bad input: fail"):
            invoke.predict(running.url, b"fail", "text/csv")
    with pytest.raises(PredictError, match="cannot reach"):
        invoke.predict(running.url, b"1,2", "text/csv", timeout=2)


def test_serve_extracts_a_model_archive(tmp_path: Path, probe: Project, unused_port: int) -> None:
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(_model_dir(tmp_path) / "weights.bin", arcname="weights.bin")
    backend = local.choose_backend("process", probe, None)
    with local.serve(backend=backend, model=tmp_path / "model.tar.gz", port=unused_port) as running:
        assert json.loads(invoke.predict(running.url, b"x", "text/csv").body)["model"] == [
            "weights.bin"]


def test_a_hostile_archive_is_refused_before_anything_starts(tmp_path: Path, probe: Project,
                                                             unused_port: int) -> None:
    evil = tarfile.TarInfo("../../escape.txt")
    evil.size = 1
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        import io
        tar.addfile(evil, io.BytesIO(b"x"))
    backend = local.choose_backend("process", probe, None)
    with pytest.raises(ArchiveError, match="points outside the archive"):
        with local.serve(backend=backend, model=tmp_path / "model.tar.gz", port=unused_port):
            pass
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_server_that_exits_gives_its_log(backend: Backend, tmp_path: Path,
                                           unused_port: int) -> None:
    with pytest.raises(ServeError, match="exited with status 3") as caught:
        with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port,
                         env={"PROBE_EXIT": "3"}, startup_timeout=60):
            pass
    assert "exiting on purpose" in caught.value.detail
    # a caller shown the log as it came gets the tail too: what to show again is the caller's call
    shown: list[str] = []
    with pytest.raises(ServeError, match="exited with status 3") as caught:
        with local.serve(backend=backend, model=tmp_path / "model", port=unused_port,
                         env={"PROBE_EXIT": "3"}, startup_timeout=60,
                         log=lambda host, line: shown.append(line)):
            pass
    assert "exiting on purpose" in caught.value.detail
    assert any("exiting on purpose" in line for line in shown)


def test_the_cli_shows_a_streamed_log_once(probe: Project, tmp_path: Path, unused_port: int) -> None:
    """byoc local serve streams the server's log as it comes; the Error: line is not followed by
    the same lines again. A tail the user has not seen is still shown under it."""
    model = _model_dir(tmp_path)
    done = subprocess.run(["byoc", "local", "serve", str(probe.root), "--backend", "process",
                           "--model", str(model), "--port", str(unused_port), "--env", "PROBE_EXIT=3",
                           "--startup-timeout", "60"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert [line for line in lines if "exiting on purpose" in line] == \
        ["serve | probe serve: exiting on purpose"]
    assert lines[-1] == "Error: the server exited with status 3 before /ping answered 200"
    from byoc.cli.options import STREAMED, already_streamed
    STREAMED.clear()
    assert not already_streamed("probe serve: exiting on purpose")
    STREAMED.append("probe serve: exiting on purpose")
    assert already_streamed("probe serve: exiting on purpose\n")
    assert not already_streamed("probe serve: exiting on purpose\nanother line")
    STREAMED.clear()


def test_a_server_that_never_gets_ready_times_out(backend: Backend, tmp_path: Path,
                                                  unused_port: int) -> None:
    with pytest.raises(ServeError, match=r"did not answer 200 within 3 s \(last: HTTP 503"):
        with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port,
                         env={"PROBE_PING": "503"}, startup_timeout=3, grace_seconds=5):
            pass


def test_a_busy_port_is_named(backend: Backend, tmp_path: Path, unused_port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", unused_port))
        taken.listen()
        with pytest.raises(PortInUseError, match=f"port {unused_port} on 127.0.0.1 is in use"):
            with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port):
                pass


def test_predict_refuses_a_body_over_6_mib_without_sending() -> None:
    with pytest.raises(PredictError, match="at most 6291456"):
        invoke.predict("http://127.0.0.1:9", b"x" * (6 * 1024 * 1024 + 1), "text/csv")
