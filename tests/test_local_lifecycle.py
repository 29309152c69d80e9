"""A local job's life at its edges: one name claimed once, folders that cannot be written,
models that hold nothing or cannot be read, sparse models, and a server's quiet shutdown."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from read_only import read_only

from byoc import archive, invoke, local
from byoc.backends.base import Backend
from byoc.errors import ArchiveError, ConfigError
from byoc.project import Project
from helpers import train_job

KINDS = ["process", pytest.param("docker", marks=pytest.mark.docker)]
BYOC = [sys.executable, "-m", "byoc"]


def _byoc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BYOC, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _one_error(stderr: str) -> str:
    """The one ``Error:`` line, which is the last; no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0], stderr
    return errors[0]


def _model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    return model


# ---- one job name, one job ---------------------------------------------------------------------

def test_two_runs_started_at_once_with_one_name_make_one_job(probe: Project, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    command = [*BYOC, "local", "train", str(probe.root), "--backend", "process", "--job-name",
               "twin", "--output-dir", str(jobs)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    done = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    statuses = sorted(status for status, _, _ in done)
    assert statuses == [0, 2], done
    loser = next(stderr for status, _, stderr in done if status == 2)
    assert _one_error(loser) == f"Error: a job named twin exists in {jobs}; pick another --job-name"
    winner = next(stdout for status, stdout, _ in done if status == 0)
    with tarfile.open(winner.strip()) as tar:
        assert "algo-1.json" in tar.getnames()  # the winner's model, whole


def test_a_name_claimed_after_the_first_check_is_still_refused(probe: Project,
                                                               tmp_path: Path) -> None:
    """The other run takes the name between this run's early check and its start: the moment
    this run says its warnings, it runs a whole job of that name."""
    jobs = tmp_path / "jobs"
    backend = local.choose_backend("process", probe, None)
    other: list[local.TrainResult] = []

    def say(line: str) -> None:
        if line.startswith("warning: no --checkpoint-uri") and not other:
            other.append(train_job(backend=backend, project=probe, output_dir=jobs,
                                     job_name="twin"))

    with pytest.raises(ConfigError, match=f"^a job named twin exists in {jobs}"):
        train_job(backend=backend, project=probe, output_dir=jobs, job_name="twin", spot=True,
                    interrupt_after=[600.0], say=say)
    assert other and other[0].status == "Completed"
    with tarfile.open(other[0].model_archive) as tar:
        assert "algo-1.json" in tar.getnames()
    assert json.loads((jobs / "twin" / "job.json").read_text())["TrainingJobStatus"] == "Completed"


# ---- folders that cannot be written ------------------------------------------------------------

def test_a_read_only_output_dir_is_refused_before_the_job_starts(backend: Backend, probe: Project,
                                                                 tmp_path: Path) -> None:
    with read_only(tmp_path / "locked") as locked:
        for output in (locked, locked / "jobs"):
            with pytest.raises(ConfigError, match=f"cannot create the job directory {output}/"):
                train_job(backend=backend, project=probe, output_dir=output, job_name="ro")
        assert not list(locked.iterdir())


def test_a_read_only_checkpoint_store_is_refused_before_the_job_starts(
        backend: Backend, probe: Project, tmp_path: Path) -> None:
    with read_only(tmp_path / "locked") as locked:
        for store in (locked, locked / "new"):
            with pytest.raises(ConfigError, match=f"^--checkpoint-uri {store}: cannot write there"):
                train_job(backend=backend, project=probe, output_dir=tmp_path / "jobs",
                            job_name="ckpt", checkpoint_dir=store)
    assert not (tmp_path / "jobs" / "ckpt").exists()


def test_a_read_only_project_state_folder_is_one_line(probe: Project) -> None:
    with read_only(probe.state_dir):
        done = _byoc("local", "train", str(probe.root), "--backend", "process", "--job-name", "ro")
        assert done.returncode == 2
        assert _one_error(done.stderr).startswith(
            f"Error: cannot create the job directory {probe.jobs_dir}/")
        assert "| " not in done.stderr  # no host started


# ---- models that hold nothing or cannot be read ------------------------------------------------

def test_an_empty_or_corrupt_model_is_one_line_for_serve(probe: Project, tmp_path: Path,
                                                         unused_port: int) -> None:
    empty = tmp_path / "empty.tar.gz"
    archive.pack([tmp_path / "nothing"], empty)
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(range(256)) * 20)
    for model, message in ((empty, "the archive holds no model"),
                           (corrupt, "not a tar archive (plain, gzip, bzip2 or xz), or a damaged one")):
        done = _byoc("local", "serve", str(probe.root), "--backend", "process", "--model", str(model),
                     "--port", str(unused_port))
        assert done.returncode == 1
        assert message in _one_error(done.stderr)
        assert "waiting for" not in done.stderr


def test_serve_refuses_an_empty_archive_on_both_backends(backend: Backend, tmp_path: Path,
                                                         unused_port: int) -> None:
    archive.pack([tmp_path / "nothing"], tmp_path / "model.tar.gz")
    with pytest.raises(ArchiveError, match="the archive holds no model"):
        with local.serve(backend=backend, model=tmp_path / "model.tar.gz", port=unused_port):
            pass


def test_a_model_over_the_limit_is_refused_before_serving(probe: Project, tmp_path: Path,
                                                          unused_port: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        info = tarfile.TarInfo("weights.bin")
        info.size = 4 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    monkeypatch.setenv(archive.MAX_BYTES_ENV, "1M")
    done = _byoc("local", "serve", str(probe.root), "--backend", "process", "--model", str(bomb),
                 "--port", str(unused_port))
    assert done.returncode == 1
    assert f"more than 1 MiB uncompressed (set {archive.MAX_BYTES_ENV}" in _one_error(done.stderr)


# ---- sparse models -----------------------------------------------------------------------------

def test_the_process_backend_keeps_a_sparse_models_holes(probe: Project, tmp_path: Path,
                                                         unused_port: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model_dir(tmp_path)
    size = 3 * 1024**3
    with (model / "sparse.bin").open("wb") as handle:
        handle.truncate(size)
    if (model / "sparse.bin").stat().st_blocks * 512 > 1024 * 1024:
        pytest.skip("this file system does not keep holes")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    backend = local.choose_backend("process", probe, None)
    with local.serve(backend=backend, model=model, port=unused_port) as running:
        answer = invoke.predict(running.url, b"1", "text/csv")
        assert b"sparse.bin" in answer.body
        copies = [path for path in (tmp_path / "tmp").rglob("sparse.bin")]
        assert copies and all(path.stat().st_size == size for path in copies)
        assert all(path.stat().st_blocks * 512 < 1024 * 1024 for path in copies)


# ---- a server's shutdown -----------------------------------------------------------------------

def test_a_server_whose_work_is_done_stops_without_a_word(backend: Backend, tmp_path: Path,
                                                          unused_port: int) -> None:
    said: list[str] = []
    with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port,
                     env={"PROBE_IGNORE_TERM": "1"}, grace_seconds=2, say=said.append):
        pass
    assert not [line for line in said if "stopping" in line or "Ctrl-C" in line], said
