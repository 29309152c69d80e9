"""Training inputs and outputs byoc must refuse up front, in one ``Error:`` line, touching nothing.

Names that become path components (channels, the job), JSON files nested past Python's recursion
limit, augmented manifests naming files outside their folder, and output folders that cannot be
written. Each case runs the real ``byoc`` command and checks that no folder was created or removed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byoc import local
from byoc.errors import ConfigError
from byoc.job import InputOptions
from byoc.project import Project
from helpers import FIXTURES, train_job

DEEP = "[" * 100000 + "]" * 100000
#: An image that does not exist: had byoc gone as far as Docker, it would say so instead.
NO_IMAGE = ["--image", "byoc-test-no-such-image:none", "--backend", "docker"]


def _tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def _refused(args: list[str], cwd: Path, message: str) -> str:
    run = subprocess.run(["byoc", "local", "train", *args], capture_output=True, text=True,
                         cwd=cwd, timeout=120)
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert run.returncode == 2, run.stderr
    assert len(errors) == 1 and message in errors[0], run.stderr
    assert "Traceback" not in run.stderr
    return errors[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "a.csv").write_text("1,2\n")
    (tmp_path / "secret.txt").write_text("not for the container\n")
    return tmp_path


@pytest.mark.parametrize(("args", "message"), [
    (["--channel", "train=data/train", "--channel", ".=data"], "invalid channel name '.'"),
    (["--channel", "..=data"], "invalid channel name '..'"),
    (["--channel", "a/b=data"], "invalid channel name 'a/b'"),
    (["--channel", "../escape=data"], "invalid channel name '../escape'"),
    (["--channel", f"{'c' * 65}=data"], "1 to 64 letters"),
    (["--channel", "train=data/train", "--job-name", ".."], "invalid job name '..'"),
    (["--channel", "train=data/train", "--job-name", "../escape"], "invalid job name '../escape'"),
    (["--channel", "train=data/train", "--job-name", "a/b"], "invalid job name 'a/b'"),
    (["--channel", "train=data/train", "--hyperparameters", "deep.json"],
     "deep.json is not JSON byoc can read: it nests arrays or objects too deeply"),
    (["--channel", "train=data/train", "--metric-definitions", "deep.json"],
     "deep.json is not JSON byoc can read"),
    (["--channel", "train=data/train", "--hyperparameters", "broken.json"],
     "broken.json is not JSON: Expecting"),
    (["--channel", "train=data/train.manifest", "--channel-input-mode", "train=Pipe",
      "--attribute-names", "train=source-ref"], "train.manifest, line 2: '../secret.txt' is outside"),
])
def test_unsafe_names_and_unreadable_files_are_refused_before_anything_is_written(
        work: Path, args: list[str], message: str) -> None:
    (work / "deep.json").write_text(DEEP)
    (work / "broken.json").write_text('{"a": ')
    (work / "data" / "train.manifest").write_text('{"source-ref": "train/a.csv"}\n'
                                                  '{"source-ref": "../secret.txt"}\n')
    before = _tree(work)
    _refused([*NO_IMAGE, "--output-dir", str(work / "data" / "jobs"), *args], work, message)
    assert _tree(work) == before


@pytest.fixture
def ioprobe(tmp_path: Path) -> Project:
    return Project.load(Path(shutil.copytree(FIXTURES / "ioprobe", tmp_path / "ioprobe")))


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may write to: mode 555, and immutable when the tests run as root
    (whom modes do not stop)."""
    path = tmp_path / "read-only"
    path.mkdir()
    (path / "kept.txt").write_text("kept\n")
    path.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root on a file system without chattr +i")
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


@pytest.mark.parametrize("below", ["", "jobs"])
def test_a_read_only_output_dir_is_one_error_line(ioprobe: Project, read_only: Path,
                                                  work: Path, below: str) -> None:
    output = read_only / below if below else read_only
    _refused(["--backend", "process", "--channel", f"train={work / 'data' / 'train'}",
              "--output-dir", str(output)], ioprobe.root,
             f"cannot create the job directory {output}/")
    assert _tree(read_only) == ["kept.txt"]


def test_an_output_dir_under_a_file_is_one_error_line(ioprobe: Project, work: Path) -> None:
    _refused(["--backend", "process", "--channel", f"train={work / 'data' / 'train'}",
              "--output-dir", str(work / "secret.txt" / "jobs")], ioprobe.root,
             "cannot create the job directory")
    assert (work / "secret.txt").read_text() == "not for the container\n"


def test_a_checkpoint_dir_byoc_cannot_write_is_refused_before_the_job(
        ioprobe: Project, read_only: Path, work: Path) -> None:
    channel = ["--backend", "process", "--channel", f"train={work / 'data' / 'train'}",
               "--output-dir", str(work / "jobs")]
    _refused([*channel, "--checkpoint-uri", str(read_only / "ckpt")], ioprobe.root,
             f"--checkpoint-uri {read_only / 'ckpt'}: cannot write there (it would be made in"
             f" {read_only})")
    _refused([*channel, "--checkpoint-uri", str(work / "secret.txt" / "ckpt")], ioprobe.root,
             f"--checkpoint-uri {work / 'secret.txt' / 'ckpt'}: cannot write there")
    assert _tree(read_only) == ["kept.txt"]
    assert not (work / "jobs").exists()


@pytest.mark.parametrize("mode", ["File", "Pipe"])
def test_a_read_only_channel_is_read_as_any_other(ioprobe: Project, read_only: Path, work: Path,
                                                  mode: str) -> None:
    result = train_job(backend=local.choose_backend("process", ioprobe, None), project=ioprobe,
                         channels={"train": read_only}, output_dir=work / "jobs",
                         inputs=InputOptions.parse(input_mode=mode))
    assert result.exit_statuses == {"algo-1": 0}
    assert _tree(read_only) == ["kept.txt"]


def test_a_job_name_that_leaves_the_jobs_dir_is_refused_by_the_library(ioprobe: Project,
                                                                        work: Path) -> None:
    for name in ("..", "../x", "a/b", ".hidden", "x" * 64):
        with pytest.raises(ConfigError, match="invalid job name"):
            train_job(backend=local.choose_backend("process", ioprobe, None), project=ioprobe,
                        channels={"train": work / "data" / "train"}, output_dir=work / "jobs",
                        job_name=name)
    for name in (".", ".."):
        with pytest.raises(ConfigError, match=f"invalid channel name '{name}'"):
            train_job(backend=local.choose_backend("process", ioprobe, None), project=ioprobe,
                        channels={name: work / "data" / "train"}, output_dir=work / "jobs")
    assert not (work / "jobs").exists()
    assert _tree(work / "data") == ["train", "train/a.csv"]


def test_a_job_definition_refuses_the_same_names_for_a_sagemaker_run(work: Path) -> None:
    from byoc.job import ChannelDefinition, JobDefinition

    source = str(work / "data" / "train")
    for name in (".", "..", "a/b", "c" * 65):
        with pytest.raises(ConfigError, match=f"invalid channel name '{name}'"):
            JobDefinition("base", (ChannelDefinition(name, source),))
    definition = JobDefinition("base", (ChannelDefinition("train", source),))
    for job_name in ("..", "../x", "a/b"):
        with pytest.raises(ConfigError, match="invalid job name"):
            definition.training_request(job_name=job_name, image="i", role_arn="r",
                                        instance_type="ml.m5.large", channel_uris={"train": "s3://b/k"},
                                        output_path="s3://b/out")


def test_manifest_root_lets_a_local_run_stream_files_from_the_folder_it_names(
        ioprobe: Project, work: Path) -> None:
    (work / "images").mkdir()
    (work / "images" / "1.jpg").write_bytes(b"\xff\xd8first")
    manifest = work / "data" / "train.manifest"
    manifest.write_text('{"source-ref": "../images/1.jpg"}\n')
    args = ["--backend", "process", "--channel", f"train={manifest}", "--channel-input-mode",
            "train=Pipe", "--attribute-names", "train=source-ref", "--output-dir", str(work / "jobs")]
    _refused(args, ioprobe.root, "line 1: '../images/1.jpg' is outside")
    _refused([*args, "--manifest-root", f"train={work / 'images' / '1.jpg'}"], ioprobe.root,
             "is not a directory")
    _refused([*args, "--manifest-root", f"other={work}"], ioprobe.root,
             "--manifest-root names channel 'other', which is not a channel")
    _refused(["--backend", "process", "--channel", f"train={work / 'data' / 'train'}",
              "--manifest-root", f"train={work}"], ioprobe.root,
             "a manifest root applies to an augmented manifest channel only")
    assert not (work / "jobs").exists()
    run = subprocess.run(["byoc", "local", "train", *args, "--manifest-root", f"train={work}"],
                         capture_output=True, text=True, cwd=ioprobe.root, timeout=120)
    assert run.returncode == 0, run.stderr
    with tarfile.open(run.stdout.strip()) as tar:
        report = json.load(tar.extractfile("algo-1.json"))  # type: ignore[arg-type]
    assert base64.b64decode(report["channels"]["train"]["epochs"][0]["data"]) == b"\xff\xd8first"


def test_describe_reads_a_job_folder_it_is_given_through_the_one_json_reader(work: Path) -> None:
    for name in ("tuning.json", "job.json"):
        job = work / name.split(".")[0]
        job.mkdir()
        (job / name).write_text(DEEP)
        run = subprocess.run(["byoc", "local", "describe", str(job)], capture_output=True, text=True,
                             cwd=work, timeout=60)
        assert run.returncode == 2, run.stderr
        assert run.stderr.splitlines() == [
            f"Error: {job / name} is not JSON byoc can read: it nests arrays or objects too deeply"]


@pytest.mark.docker
def test_an_image_label_nested_too_deeply_is_not_byocs_and_not_a_crash(
        docker_client: Any, base_image: str) -> None:
    from byoc import images

    tag = f"byoc-test-deep-label:{uuid.uuid4().hex[:8]}"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {base_image}\n".encode()), tag=tag,
                               labels={images.OPTIONS_LABEL: "[" * 20000}, network_mode="host")
    try:
        found = images.provenance(tag)
    finally:
        docker_client.images.remove(tag, force=True)
    assert found.present and found.options == {}
