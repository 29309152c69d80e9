"""One tuning request file, one training job: every local trial, and the SageMaker request, carry
the request's whole TrainingJobDefinition (input mode, each channel's settings, checkpoints, spot)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import tune_requests
from click.testing import CliRunner

from byoc import job as job_api
from byoc import local
from byoc.backends.base import Backend
from byoc.cli import cli
from byoc.errors import ConfigError
from byoc.project import Project
from byoc.tune import config, runner

KINDS = ["process", pytest.param("docker", marks=pytest.mark.docker)]
#: What each trial's container must find in inputdataconfig.json.
SEEN = {"training": {"ContentType": "text/csv", "TrainingInputMode": "Pipe",
                     "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
        "validation": {"ContentType": "application/json", "TrainingInputMode": "File",
                       "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}


def whole_request(name: str) -> dict[str, Any]:
    """Two trials, one at a time, of a Pipe job with two channels, checkpoints and spot."""
    body = tune_requests.request(name, max_jobs=2, parallel=1)
    training = body["TrainingJobDefinition"]
    tune_requests.make_whole_job(training, training_channel="training", bucket="bucket",
                                 max_runtime=600)
    training["EnableNetworkIsolation"] = True
    return body


def _channels(probe: Project, tmp_path: Path) -> dict[str, Path]:
    validation = tmp_path / "validation"
    validation.mkdir()
    (validation / "holdout.json").write_text('{"x": 1}\n')
    return {"training": probe.test_dir / "input" / "data" / "training", "validation": validation}


def test_every_local_trial_runs_the_requests_whole_training_job(
        backend: Backend, probe: Project, tmp_path: Path) -> None:
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(whole_request("whole-job")))
    request = config.load(path)
    said: list[str] = []
    channels = _channels(probe, tmp_path)
    definition = runner.check(request, backend, channels, probe, say=said.append)
    tuning_dir = runner.prepare(request, tmp_path / "tuning", False)
    runner.Tuner(request, backend, tuning_dir, project=probe, channels=channels,
                 definition=definition, say=said.append).run()
    jobs = sorted(path for path in (tuning_dir / "jobs").iterdir() if path.is_dir())
    assert len(jobs) == 2
    for job in jobs:
        record = json.loads((job / "job.json").read_text())
        assert record["TrainingJobStatus"] == "Completed", record.get("FailureReason")
        assert record["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
        assert record["AlgorithmSpecification"]["TrainingImage"] == (
            "(process backend)" if backend.name == "process" else getattr(backend, "image", None))
        assert record["EnableManagedSpotTraining"] is True
        assert record["StoppingCondition"] == {"MaxRuntimeInSeconds": 600,
                                               "MaxWaitTimeInSeconds": 1200}
        # the request's s3:// checkpoint location is a folder of the trial's own
        assert record["CheckpointConfig"] == {
            "S3Uri": (tuning_dir / "checkpoints" / job.name).resolve().as_uri() + "/",
            "LocalPath": "/opt/ml/checkpoints"}
        with tarfile.open(job / "model.tar.gz") as tar:
            member = tar.extractfile("algo-1.json")
            assert member is not None
            report = json.loads(member.read())
        assert report["inputdataconfig"] == SEEN
    assert [line for line in said if "EnableNetworkIsolation" in line] == [
        "note: EnableNetworkIsolation: kept in the request, not applied by a local run"]


def test_a_request_channel_without_a_local_folder_is_refused_before_any_job(
        probe: Project, tmp_path: Path) -> None:
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(whole_request("no-folder")))
    channels = _channels(probe, tmp_path)
    del channels["validation"]
    backend = local.choose_backend("process", probe, None)
    with pytest.raises(ConfigError, match="channel 'validation' is s3://bucket/val/ in the request;"
                                          " .* pass --channel validation=PATH"):
        runner.check(config.load(path), backend, channels, probe)
    result = CliRunner().invoke(cli, [
        "local", "tune", str(probe.root), "--backend", "process", "--config", str(path),
        "--channel", f"training={channels['training']}", "--output-dir", str(tmp_path / "t")])
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [
        "Error: channel 'validation' is s3://bucket/val/ in the request; a local tuning job reads"
        " local files: pass --channel validation=PATH"]
    assert not (tmp_path / "t").exists()
    with pytest.raises(ConfigError, match="--channel other: the request has no channel 'other'"):
        runner.check(config.load(path), backend, {**channels, "other": tmp_path}, probe)


def test_options_are_laid_over_a_request_file_only_where_it_is_silent(tmp_path: Path) -> None:
    """``byoc sagemaker tune``: an option fills a field the file leaves out, an option for a field
    the file sets is refused, and an error of the whole names each field as the user gave it."""
    data = tmp_path / "train"
    data.mkdir()
    training = {"StoppingCondition": {"MaxRuntimeInSeconds": 1800},
                "AlgorithmSpecification": {"TrainingInputMode": "File"}}
    from_file, _ = job_api.from_tuning_request(training, base_name="demo")
    options = job_api.JobDefinition("demo", (job_api.ChannelDefinition("train", str(data)),),
                                instance_count=3, max_runtime=600, spot=True, max_wait=900)
    laid = job_api.lay_options_over(from_file, options, training, {"instance_count"})
    assert (laid.instance_count, laid.max_runtime, laid.spot) == (3, 1800, False)
    assert [channel.name for channel in laid.channels] == ["train"]  # the file has no channels
    with pytest.raises(ConfigError) as caught:
        job_api.lay_options_over(from_file, options, training, {"max_run", "input_mode"})
    assert caught.value.message == (
        "--input-mode (the file's AlgorithmSpecification.TrainingInputMode), --max-run (the file's"
        " StoppingCondition): the request file sets that; change it there (byoc local tune reads"
        " the same file)")
    # --spot from the command line, the stopping condition (without a wait) from the file
    with pytest.raises(ConfigError) as caught:
        job_api.lay_options_over(from_file, options, training, {"spot"})
    assert caught.value.message.startswith(
        "--spot needs TrainingJobDefinition.StoppingCondition.MaxWaitTimeInSeconds (MaxWaitTimeInSeconds,"
        " at least TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds:")
