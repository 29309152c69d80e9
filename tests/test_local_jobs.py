"""``byoc local jobs | describe | stop``: the listing keeps job names whole and shows a running
job's time so far, and ``latest`` names the last job that completed wherever a job is named.

The records are written with :class:`byoc.local.record.JobRecord` as a training job writes them; a
"running" job's owner is this test's own process, which is alive, so nothing reaps it.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from byoc.cli import cli
from byoc.errors import ConfigError
from byoc.local import record as jobrecord
from byoc.local import staging as _jobs
from byoc.project import record_latest
from helpers import FIXTURES

LONG = "churn-model-with-a-rather-long-name-2026-12-07-01-30-00-123"


def _job(jobs_dir: Path, name: str, *, running: bool, started_ago: float = 0) -> jobrecord.JobRecord:
    owner = {"Pid": os.getpid(), "ProcessStart": _jobs.process_start(os.getpid())}
    record = jobrecord.JobRecord.create(jobs_dir / name, {"TrainingJobName": name, "Local": owner})
    record.transition("Training")
    start = (datetime.now(UTC) - timedelta(seconds=started_ago)).isoformat(timespec="milliseconds")
    record.update(TrainingStartTime=start)
    if not running:
        record.finish(jobrecord.COMPLETED, "Completed")
        record_latest(jobs_dir, record.job_dir)
    return record


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    jobs = tmp_path / "jobs"
    _job(jobs, "short", running=False)
    _job(jobs, LONG, running=True, started_ago=90)
    return jobs


def test_piped_listing_is_tab_separated_with_whole_names_and_time_so_far(jobs_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["local", "jobs", "--output-dir", str(jobs_dir)])
    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == [LONG, "short"]  # newest first, no header
    running = rows[0]
    assert running[1:3] == ["InProgress", "Training"]
    seconds = int(running[3].removesuffix(" s so far"))
    assert 89 <= seconds <= 150, running  # elapsed since TrainingStartTime, not "-"
    assert rows[1][1:4] == ["Completed", "Completed", "0 s"]


def test_terminal_listing_at_80_columns_keeps_names_whole(jobs_dir: Path) -> None:
    """On a real terminal (a pty) 80 columns wide the name is still whole, on one line."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "LINES": "24"}
    process = subprocess.Popen([sys.executable, "-m", "byoc", "local", "jobs", "--output-dir",
                                str(jobs_dir)], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the pty closes when the child exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    lines = b"".join(chunks).decode().splitlines()
    assert lines[0].split() == ["name", "status", "secondary", "status", "duration", "started",
                                "kind"]
    assert lines[1].startswith(LONG + "  ")
    assert "s so far" in lines[1]
    assert lines[2].startswith("short ")


def test_latest_names_the_last_completed_job(jobs_dir: Path) -> None:
    described = CliRunner().invoke(cli, ["local", "describe", "latest", "--output-dir",
                                         str(jobs_dir)])
    assert described.exit_code == 0, described.stderr
    assert '"TrainingJobName": "short"' in described.stdout
    assert "short: Completed" in described.stderr
    assert jobrecord.find(jobs_dir, "latest").name == "short"


def test_stop_latest_stops_the_newest_running_job(jobs_dir: Path, tmp_path: Path) -> None:
    stopped = CliRunner().invoke(cli, ["local", "stop", "latest", "--output-dir", str(jobs_dir)])
    assert stopped.exit_code == 0, stopped.stderr
    assert stopped.stderr.startswith(f"stopping {LONG}: ")
    ended = tmp_path / "ended"
    _job(ended, "done", running=False)
    refused = CliRunner().invoke(cli, ["local", "stop", "latest", "--output-dir", str(ended)])
    assert refused.exit_code == 2
    assert refused.stderr == (f"Error: no local training job is running in {ended}; `byoc local"
                              " jobs` lists them\n")


def test_latest_before_any_job_completed_is_one_error_line(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    _job(jobs, "only", running=True)
    with pytest.raises(ConfigError, match="no latest local job"):
        jobrecord.find(jobs, "latest")
    result = CliRunner().invoke(cli, ["local", "describe", "latest", "--output-dir", str(jobs)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no local job 'latest' in ")
    assert len(result.stderr.splitlines()) == 1


def test_incremental_from_latest_takes_the_last_completed_jobs_model(tmp_path: Path) -> None:
    """byoc local train --incremental-from latest, on the process backend (the probe project)."""
    root = Path(shutil.copytree(FIXTURES / "probe", tmp_path / "probe"))
    jobs = tmp_path / "jobs"
    train = ["local", "train", str(root), "--backend", "process", "--output-dir", str(jobs)]
    missing = CliRunner().invoke(cli, [*train, "--incremental-from", "latest"])
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"Error: no latest local job in {jobs}")
    first = CliRunner().invoke(cli, [*train, "--job-name", "first"])
    assert first.exit_code == 0, first.stderr
    second = CliRunner().invoke(cli, [*train, "--job-name", "second", "--incremental-from",
                                      "latest"])
    assert second.exit_code == 0, second.stderr
    record = json.loads((jobs / "second" / "job.json").read_text())
    channels = {c["ChannelName"]: c for c in record["InputDataConfig"]}
    uri = channels["model"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert uri == (jobs / "first" / "model.tar.gz").resolve().as_uri()


def test_a_tuning_jobs_directory_lists_its_training_jobs_and_an_empty_one_says_so(
        tmp_path: Path) -> None:
    tuning = tmp_path / "tuning-job"
    _job(tuning / "jobs", "tuning-job-001", running=False)
    (tuning / "request.json").write_text("{}\n")
    listed = CliRunner().invoke(cli, ["local", "jobs", "--output-dir", str(tuning)])
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.startswith("tuning-job-001\tCompleted\t")
    empty = CliRunner().invoke(cli, ["local", "jobs", "--output-dir", str(tmp_path / "none")])
    assert empty.exit_code == 0
    assert (empty.stdout, empty.stderr) == ("", f"no local training jobs in {tmp_path / 'none'}\n")
