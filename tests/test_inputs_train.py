"""byoc local train with Pipe, FastFile, RecordIO and augmented-manifest channels, on both backends.

The ioprobe fixture's train program reports what it read (its RecordIO reader
follows SageMaker's documentation); its image keeps that program in
/opt/ml/code, which byoc's mounts must leave visible.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from byoc import local
from byoc.backends.base import Backend
from byoc.errors import ConfigError, ContainerFailedError
from byoc.job import InputOptions
from byoc.project import Project
from helpers import FIXTURES, train_job

KINDS = ["process", pytest.param("docker", marks=pytest.mark.docker)]
MAGIC = bytes.fromhex("0a23d7ce")


@pytest.fixture
def ioprobe(tmp_path: Path) -> Project:
    return Project.load(Path(shutil.copytree(FIXTURES / "ioprobe", tmp_path / "ioprobe")))


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, ioprobe: Project) -> Backend:
    if request.param == "docker":
        return local.choose_backend("docker", ioprobe, request.getfixturevalue("ioprobe_image"))
    return local.choose_backend("process", ioprobe, None)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "train" / "sub").mkdir(parents=True)
    (root / "train" / "b.rec").write_bytes(b"bb")
    (root / "train" / "a.rec").write_bytes(b"1")
    (root / "train" / "sub" / "c.rec").write_bytes(b"abcd")
    (root / "meta").mkdir()
    (root / "meta" / "labels.txt").write_text("cat\ndog\n")
    return root


def _reports(result: local.TrainResult) -> dict[str, dict[str, Any]]:
    with tarfile.open(result.model_archive) as tar:
        return {m.name[:-5]: json.load(tar.extractfile(m))  # type: ignore[arg-type]
                for m in tar.getmembers() if m.name.endswith(".json")}


def _records(epoch: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(item) for item in epoch["records"]]


def test_pipe_recordio_epochs_beside_a_fastfile_channel(backend: Backend, ioprobe: Project,
                                                        data: Path, tmp_path: Path) -> None:
    result = train_job(
        backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
        channels={"train": data / "train", "meta": data / "meta"},
        hyperparameters={"epochs": "3"}, content_types={"train": "application/x-recordio"},
        inputs=InputOptions.parse(input_mode="Pipe", channel_modes={"meta": "FastFile"},
                                  record_wrappers={"train": "RecordIO"}))
    report = _reports(result)["algo-1"]
    train, meta = report["channels"]["train"], report["channels"]["meta"]
    assert train["config"] == {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe",
                               "S3DistributionType": "FullyReplicated", "RecordWrapperType": "RecordIO"}
    assert [_records(epoch) for epoch in train["epochs"]] == [[b"1", b"bb", b"abcd"]] * 3
    assert train["epochs"][0]["bytes"] == 12 + 12 + 12
    assert report["data_dir"] == ["meta", "train_0"]  # a FIFO per epoch, no train/ directory
    assert meta["config"]["TrainingInputMode"] == "FastFile"
    assert meta["files"] == {"labels.txt": base64.b64encode(b"cat\ndog\n").decode()}
    if backend.name == "docker" or os.geteuid() != 0:
        assert meta["writable"] is False
    assert "algo-1: Pipe channel 'train': 3 epoch(s) streamed" in result.notes
    if backend.name == "docker":
        assert report["code"] is True and report["hostname"] == "algo-1"


def test_a_reader_that_stops_early_or_never_opens_keeps_the_job_and_its_artifacts(
        backend: Backend, ioprobe: Project, data: Path, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob").write_bytes(os.urandom(4 << 20))
    inputs = InputOptions.parse(input_mode="Pipe")
    early = train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                        channels={"train": big}, inputs=inputs,
                        hyperparameters={"epochs": "2", "close_early": "train"})
    epochs = _reports(early)["algo-1"]["channels"]["train"]["epochs"]
    assert [epoch["bytes"] for epoch in epochs] == [10, 4 << 20]
    assert "closed early by the reader" in " ".join(early.notes)
    started = time.monotonic()
    never = train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                        channels={"train": big}, inputs=inputs, hyperparameters={"never_open": "1"})
    assert time.monotonic() - started < 30
    assert _reports(never)["algo-1"]["channels"]["train"]["epochs"] == []
    assert "algo-1: Pipe channel 'train': 0 epoch(s) streamed" in never.notes


def test_an_augmented_manifest_streams_its_attributes_in_order(backend: Backend, ioprobe: Project,
                                                               tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.jpg").write_bytes(b"\xff\xd8first")
    (tmp_path / "images" / "2.jpg").write_bytes(b"\xff\xd8second")
    manifest = tmp_path / "train.manifest"
    manifest.write_text('{"source-ref": "images/1.jpg", "label": 1, "note": "x"}\n'
                        '{"label": 0, "source-ref": "images/2.jpg"}\n')
    result = train_job(
        backend=backend, project=ioprobe, output_dir=tmp_path / "jobs", channels={"train": manifest},
        inputs=InputOptions.parse(channel_modes={"train": "Pipe"}, record_wrappers={"train": "RecordIO"},
                                  attribute_names={"train": "source-ref,label"}))
    epoch = _reports(result)["algo-1"]["channels"]["train"]["epochs"][0]
    assert _records(epoch) == [b"\xff\xd8first", b"1", b"\xff\xd8second", b"0"]


def test_a_manifest_streams_only_files_under_its_folder_or_the_root_byoc_toml_names(
        backend: Backend, ioprobe: Project, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.jpg").write_bytes(b"\xff\xd8first")
    (tmp_path / "manifests").mkdir()
    manifest = tmp_path / "manifests" / "train.manifest"
    manifest.write_text('{"source-ref": "../images/1.jpg", "label": 1}\n')
    inputs = InputOptions.parse(channel_modes={"train": "Pipe"}, record_wrappers={"train": "RecordIO"},
                                attribute_names={"train": "source-ref,label"})
    with pytest.raises(ConfigError, match=r"train.manifest, line 1: '../images/1.jpg' is outside"):
        train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                    channels={"train": manifest}, inputs=inputs)
    assert not (tmp_path / "jobs").exists()
    config = ioprobe.root / "byoc.toml"
    config.write_text(config.read_text() + f'\n[train.channels.train]\nmanifest_root = "{tmp_path}"\n')
    reloaded = Project.load(ioprobe.root)  # byoc.toml is read once per project, as a run reads it
    result = train_job(backend=backend, project=reloaded, output_dir=tmp_path / "jobs",
                         channels={"train": manifest}, inputs=inputs)
    epoch = _reports(result)["algo-1"]["channels"]["train"]["epochs"][0]
    assert _records(epoch) == [b"\xff\xd8first", b"1"]


def test_sharded_pipe_channels_split_the_files_between_hosts(backend: Backend, ioprobe: Project,
                                                             data: Path, tmp_path: Path) -> None:
    result = train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                         channels={"train": data / "train"}, instance_count=2,
                         distribution={"train": "ShardedByS3Key"},
                         inputs=InputOptions.parse(input_mode="Pipe",
                                                   record_wrappers={"train": "RecordIO"}))
    reports = _reports(result)
    assert _records(reports["algo-1"]["channels"]["train"]["epochs"][0]) == [b"1", b"abcd"]
    assert _records(reports["algo-2"]["channels"]["train"]["epochs"][0]) == [b"bb"]


def test_when_one_host_fails_the_others_are_stopped_and_byoc_says_so(
        backend: Backend, ioprobe: Project, data: Path, tmp_path: Path) -> None:
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(ContainerFailedError) as caught:
        train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                    channels={"meta": data / "meta"}, instance_count=2, grace_seconds=5,
                    hyperparameters={"fail_host": "algo-2", "sleep": "120"}, say=said.append)
    assert time.monotonic() - started < 60
    assert "algo-2 exited with status 1" in caught.value.message
    assert caught.value.failure_reason == "algo-2 was told to fail\n"
    assert any(line.startswith("algo-2 exited with status 1: stopping the other hosts") for line in said)


@pytest.mark.docker
def test_every_host_resolves_every_peer_also_after_it_exited(
        ioprobe: Project, ioprobe_image: str, data: Path, tmp_path: Path, docker_client: Any) -> None:
    backend = local.choose_backend("docker", ioprobe, ioprobe_image)
    result = train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                         channels={"meta": data / "meta"}, instance_count=2,
                         hyperparameters={"resolve_peers": "1", "wait_before_resolve": "2"})
    reports = _reports(result)
    for host in ("algo-1", "algo-2"):
        for peer, (address, seconds) in reports[host]["resolved"].items():
            assert not address.startswith("error"), (host, peer, address)
            assert seconds < 1.0
    assert reports["algo-2"]["resolved"]["algo-1"][0] == reports["algo-1"]["resolved"]["algo-1"][0]
    # algo-1 had finished before algo-2 looked it up
    assert reports["algo-1"]["finished_at"] < reports["algo-2"]["resolved_at"]
    left = docker_client.containers.list(all=True, ignore_removed=True,
                                         filters={"label": f"com.byoc.job={result.job_name}"})
    networks = docker_client.networks.list(filters={"label": f"com.byoc.job={result.job_name}"})
    assert left == [] and networks == []


@pytest.mark.parametrize(("args", "message"), [
    (["--attribute-names", "train=source-ref,label"],
     "AugmentedManifestFile can only be used if the Channel's input mode is Pipe"),
    (["--input-mode", "Streaming"], "Value 'Streaming' at 'algorithmSpecification.trainingInputMode'"),
    (["--compression", "train=Gzip"], "CompressionType is used only in Pipe input mode"),
    (["--record-wrapper", "train=RecordIO", "--channel-input-mode", "train=FastFile"],
     "RecordWrapperType RecordIO is used only in Pipe input mode"),
    (["--shuffle-seed", "other=1"], "--shuffle-seed names channel 'other', which is not a channel"),
])
def test_invalid_combinations_are_refused_before_any_container_starts(
        tmp_path: Path, args: list[str], message: str) -> None:
    manifest = tmp_path / "train.manifest"
    manifest.write_text('{"source-ref": "x", "label": 1}\n')
    jobs = tmp_path / "jobs"
    # an image that does not exist: had byoc gone as far as Docker, it would say so instead
    run = subprocess.run(["byoc", "local", "train", "--image", "byoc-test-no-such-image:none",
                          "--backend", "docker", "--channel", f"train={manifest}",
                          "--output-dir", str(jobs), *args],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not jobs.exists()


def test_the_project_file_sets_the_input_mode(ioprobe: Project, data: Path, tmp_path: Path) -> None:
    config = ioprobe.root / "byoc.toml"
    config.write_text(config.read_text() + '\n[train]\ninput_mode = "Pipe"\n'
                      '[train.channels.meta]\ninput_mode = "File"\n')
    run = subprocess.run(["byoc", "local", "train", "--backend", "process",
                          "--channel", f"train={data / 'train'}", "--channel", f"meta={data / 'meta'}",
                          "--output-dir", str(tmp_path / "jobs"), "--job-name", "from-toml"],
                         capture_output=True, text=True, cwd=ioprobe.root, timeout=120)
    assert run.returncode == 0, run.stderr
    with tarfile.open(run.stdout.strip()) as tar:
        report = json.load(tar.extractfile("algo-1.json"))  # type: ignore[arg-type]
    assert report["channels"]["train"]["config"]["TrainingInputMode"] == "Pipe"
    assert base64.b64decode(report["channels"]["train"]["epochs"][0]["data"]) == b"1bbabcd"
    assert report["channels"]["meta"]["config"]["TrainingInputMode"] == "File"


@pytest.mark.parametrize("kind", KINDS)
def test_stopping_byoc_while_a_program_ignores_its_fifo_leaves_nothing_behind(
        kind: str, ioprobe: Project, data: Path, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    image = ["--image", request.getfixturevalue("ioprobe_image")] if kind == "docker" else []
    job = f"pipe-stop-{kind}"
    byoc = subprocess.Popen(["byoc", "local", "train", "--backend", kind, *image,
                             "--channel", f"train={data / 'train'}", "--input-mode", "Pipe",
                             "--hyperparameter", "pipe_hang=1", "--grace", "2", "--job-name", job,
                             "--output-dir", str(tmp_path / "jobs")],
                            cwd=ioprobe.root, stderr=subprocess.PIPE, text=True)
    fifo = tmp_path / "jobs" / job / "hosts" / "algo-1" / "input" / "data" / "train_0"
    deadline = time.monotonic() + 60
    while not fifo.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    byoc.terminate()
    _, stderr = byoc.communicate(timeout=30)
    assert byoc.returncode == 143, stderr  # SIGTERM, as a shell reports it
    assert f"Error: training job {job} interrupted" in stderr
    assert not (tmp_path / "jobs" / job / "hosts").exists()
    if kind == "docker":
        client = request.getfixturevalue("docker_client")
        assert client.containers.list(all=True, ignore_removed=True,
                                      filters={"label": f"com.byoc.job={job}"}) == []
        assert client.networks.list(filters={"label": f"com.byoc.job={job}"}) == []


def test_shuffle_config_decides_which_host_gets_which_file_in_file_mode(
        backend: Backend, ioprobe: Project, tmp_path: Path) -> None:
    from byoc.local.inputs.pipe import shuffled

    channel = tmp_path / "parts"
    channel.mkdir()
    names = [f"part-{i}.csv" for i in range(6)]
    for name in names:
        (channel / name).write_text(name)
    seed = next(seed for seed in range(100) if shuffled(names, seed, 0)[0::2] != names[0::2])
    result = train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                         channels={"train": channel}, instance_count=2,
                         distribution={"train": "ShardedByS3Key"},
                         inputs=InputOptions.parse(shuffle_seeds={"train": str(seed)}))
    reports = _reports(result)
    got = {host: sorted(reports[host]["channels"]["train"]["files"]) for host in reports}
    order = shuffled(names, seed, 0)
    assert got == {"algo-1": sorted(order[0::2]), "algo-2": sorted(order[1::2])}
    assert got["algo-1"] != names[0::2]


def test_gzip_files_reach_the_program_decompressed(backend: Backend, ioprobe: Project,
                                                   tmp_path: Path) -> None:
    import gzip

    channel = tmp_path / "gz"
    channel.mkdir()
    (channel / "1.csv.gz").write_bytes(gzip.compress(b"a,b\n"))
    (channel / "2.csv.gz").write_bytes(gzip.compress(b"c,d\n"))
    result = train_job(backend=backend, project=ioprobe, output_dir=tmp_path / "jobs",
                         channels={"train": channel},
                         inputs=InputOptions.parse(input_mode="Pipe", compressions={"train": "Gzip"},
                                                   record_wrappers={"train": "RecordIO"}))
    epoch = _reports(result)["algo-1"]["channels"]["train"]["epochs"][0]
    assert _records(epoch) == [b"a,b\n", b"c,d\n"]
