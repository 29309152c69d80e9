"""The process backend runs a program as a container would: the image's wheels, the job's own
environment and temp tree (no host credentials, nothing left in the host's /tmp), no peers it
cannot name."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import local, scaffold
from byoc.backends import envs
from byoc.backends.process import ProcessBackend
from byoc.cli import cli
from byoc.errors import ConfigError, Interrupted
from byoc.local import record as jobrecord
from byoc.project import Project
from helpers import copy_probe, train_job

#: A train program that reports its environment and the temp tree it makes, as the runtimes'
#: incremental training does (tempfile.mkdtemp with the default TMPDIR).
REPORTER = '''#!/usr/bin/env python3
import json, os, sys, tempfile
from pathlib import Path
root = Path(os.environ["SAGEMAKER_BASE_DIR"])
made = tempfile.mkdtemp(prefix="previous-model-")
Path(made, "weights").write_text("x")
(root / "model" / "report.json").write_text(json.dumps(
    {"env": dict(os.environ), "tmp": made, "home_writable": os.access(os.environ["HOME"], os.W_OK)}))
'''


def _wheel(folder: Path, name: str, version: str, body: str) -> Path:
    """A minimal pure-Python wheel of *name* whose ``__init__`` is *body*."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{name}-{version}"
    files = {f"{name}/__init__.py": body,
             f"{tag}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{tag}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                       "Tag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{tag}.dist-info/RECORD"] = "\n".join([*record, f"{tag}.dist-info/RECORD,,"]) + "\n"
    wheel = folder / f"{tag}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def _quiet(message: str) -> None:
    pass


def _probe(tmp_path: Path, train: str | None = None, requirements: str | None = None) -> Project:
    """A private copy of the probe project: the session's probe image is current for it
    unless *train* or *requirements* change it."""
    root = copy_probe(tmp_path / "probe")
    if requirements is not None:
        (root / "container" / "requirements.txt").write_text(requirements)
    if train is not None:
        (root / "container" / "probe" / "train").write_text(train)
    return Project.load(root)


def _member(archive: Path, name: str) -> Any:
    with tarfile.open(archive) as tar:
        found = tar.extractfile(name)
        assert found is not None
        return json.loads(found.read())


def test_the_environment_takes_the_wheels_the_image_takes(tmp_path: Path) -> None:
    # the image runs `pip install --find-links /opt/wheels -r requirements.txt`: a wheel in
    # wheels/ (a CPU torch, here a local build of packaging) wins over the index's
    project = _probe(tmp_path, requirements="packaging==25.0\n").root
    without = envs.prepare(project, say=_quiet, progress=False)
    _wheel(project / "wheels", "packaging", "25.0+cpu", "FROM_WHEELS = True\n")
    taken = envs.prepare(project, say=_quiet, progress=False)
    assert taken.root != without.root  # wheels/ is part of the environment's key
    check = "import packaging; print(getattr(packaging, 'FROM_WHEELS', False))"
    assert subprocess.run([str(taken.python), "-c", check], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
    assert json.loads((taken.root / envs.MARKER).read_text())["wheels"] == [
        "packaging-25.0+cpu-py3-none-any.whl"]
    again = envs.prepare(project, say=_quiet, progress=False)
    assert not again.built and again.root == taken.root
    (project / "wheels" / "packaging-25.0+cpu-py3-none-any.whl").unlink()
    assert envs.prepare(project, say=_quiet, progress=False).root == without.root


def test_the_pytorch_template_on_two_process_hosts_is_refused_at_once(tmp_path: Path) -> None:
    root = scaffold.new_project("torch-model", output_dir=tmp_path, framework="pytorch")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "byoc", "local", "train", str(root),
                             "--backend", "process", "--instance-count", "2"],
                            capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 15  # the interpreter's start-up; the check itself:
    backend = ProcessBackend(root / "container" / "torch_model")
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        backend.check_hosts(["algo-1", "algo-2"])
    assert time.monotonic() - started < 1
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"Error: {refused.value.message}"]
    assert refused.value.message == (
        "--instance-count 2 on the process backend: container/torch_model/model.py talks to its"
        " peers by host name (torch.distributed), and algo-1, algo-2 do not resolve on this"
        " machine (processes get no private network to name them on); use --backend docker, or"
        " --instance-count 1")
    assert not (root / ".byoc" / "jobs").exists() or not any((root / ".byoc" / "jobs").iterdir())
    backend.check_hosts(["algo-1"])  # one host talks to no peer


def test_a_program_gets_its_own_tmp_and_home_and_none_of_byocs_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host_tmp = tmp_path / "host-tmp"
    host_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(host_tmp))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret-value")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTKEY")
    monkeypatch.setenv("GITHUB_TOKEN", "host-token")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    project = _probe(tmp_path, REPORTER)
    backend = local.choose_backend("process", project, None)
    result = train_job(backend=backend, project=project, output_dir=tmp_path / "jobs",
                         job_name="reporter-1", env={"JOB_SETTING": "on"})
    report = _member(result.model_archive, "report.json")
    env = report["env"]
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    assert "GITHUB_TOKEN" not in env
    assert env["JOB_SETTING"] == "on" and env["TRAINING_JOB_NAME"] == "reporter-1"
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["TMPDIR"] == str(result.job_dir / "hosts" / "algo-1-tmp")
    assert env["HOME"] == str(result.job_dir / "hosts" / "algo-1-tmp" / "home")
    assert report["home_writable"]
    assert Path(report["tmp"]).parent == result.job_dir / "hosts" / "algo-1-tmp"
    assert list(host_tmp.iterdir()) == []  # nothing in the host's /tmp
    assert not (result.job_dir / "hosts").exists()  # removed with the job's host tree


@pytest.mark.parametrize("kind", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_env_file_values_reach_the_program_but_no_command_line(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "docker":
        request.getfixturevalue("probe_image")
    project = _probe(tmp_path)
    env_file = tmp_path / "job.env"
    env_file.write_text("# secrets\nPROBE_SECRET=s3cr3t-from-file\n  PROBE_BOTH=file\nPROBE_ASIS=\"q\"\n"
                        "PROBE_FROM_BYOC\n")
    command = [sys.executable, "-m", "byoc", "local", "train", str(project.root),
               "--backend", kind, "--env-file", str(env_file), "--env", "PROBE_BOTH=option",
               "--hyperparameter", "sleep=4", "--job-name", f"envfile-{kind}"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PROBE_FROM_BYOC": "inherited",
                                  "AWS_SECRET_ACCESS_KEY": "host-secret-value"})
    seen: list[str] = []
    while child.poll() is None:
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "s3cr3t-from-file" in line or "host-secret-value" in line:
                seen.append(line)
        time.sleep(0.1)
    out, err = child.communicate()
    assert child.returncode == 0, err
    assert seen == []
    report = _member(project.jobs_dir / f"envfile-{kind}" / "model.tar.gz", "algo-1.json")
    assert {k: v for k, v in report["env"].items() if k.startswith(("PROBE_", "AWS_SECRET"))} == {
        "PROBE_SECRET": "s3cr3t-from-file", "PROBE_BOTH": "option", "PROBE_ASIS": '"q"',
        "PROBE_FROM_BYOC": "inherited"}
    record = jobrecord.read(project.jobs_dir / f"envfile-{kind}")
    assert record["Environment"]["PROBE_SECRET"] == "s3cr3t-from-file"


def test_a_bad_env_file_is_one_error_line(tmp_path: Path) -> None:
    project = _probe(tmp_path)
    bad = tmp_path / "bad.env"
    bad.write_text("GOOD=1\nTWO WORDS=x\n")
    for args, message in (
            (["--env-file", str(bad)], f"Error: --env-file {bad} line 2: expected KEY=VALUE, with"
                                       " no blanks in KEY"),
            (["--env-file", str(tmp_path / "missing.env")],
             f"Error: --env-file {tmp_path / 'missing.env'}: cannot read it: No such file or"
             " directory")):
        for command in (["local", "train", str(project.root), "--backend", "process"],
                        ["local", "serve", str(project.root), "--backend", "process"]):
            result = CliRunner().invoke(cli, [*command, *args])
            assert result.exit_code == 2, result.output
            assert result.stderr.splitlines() == [message]
    assert not project.jobs_dir.exists() or not any(project.jobs_dir.iterdir())


def test_serve_leaves_nothing_in_tmpdir_and_gives_the_server_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unused_port: int) -> None:
    host_tmp = tmp_path / "host-tmp"
    host_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(host_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(host_tmp))  # byoc's own, in this process
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret-value")
    project = _probe(tmp_path)
    backend = local.choose_backend("process", project, None)
    model = tmp_path / "model"
    model.mkdir()
    with local.serve(backend=backend, model=model, port=unused_port) as running:
        made = [p for p in host_tmp.iterdir() if p.name.startswith("byoc-serve-")]
        assert len(made) == 1
        server = running.server
        environ = (Path("/proc") / str(server.process.pid) / "environ").read_bytes()  # type: ignore[attr-defined]
        variables = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        assert variables[b"TMPDIR"].decode().startswith(str(made[0]) + "/")
        assert b"AWS_SECRET_ACCESS_KEY" not in variables
    assert list(host_tmp.iterdir()) == []
    with pytest.raises(Interrupted):  # Ctrl-C while serving
        with local.serve(backend=backend, model=model, port=unused_port):
            assert len(list(host_tmp.iterdir())) == 1
            raise KeyboardInterrupt
    assert list(host_tmp.iterdir()) == []


def test_a_process_transform_leaves_no_server_tree_in_tmpdir_nor_byte_code_in_the_project(
        tmp_path: Path, default_project: Path, request: pytest.FixtureRequest) -> None:
    # the default runtime's serve makes its own temp tree too (nginx's, gunicorn's socket)
    project = Path(shutil.copytree(default_project, tmp_path / "iris"))
    # short: the server's unix sockets live under it
    host_tmp = Path(tempfile.mkdtemp(prefix="t-"))
    host_tmp.chmod(0o1777)  # as /tmp: nginx's workers run as another user
    request.addfinalizer(lambda: shutil.rmtree(host_tmp, ignore_errors=True))
    env = {**os.environ, "TMPDIR": str(host_tmp)}
    trained = subprocess.run([sys.executable, "-m", "byoc", "local", "train", str(project),
                              "--backend", "process"], capture_output=True, text=True, env=env,
                             timeout=600)
    assert trained.returncode == 0, trained.stderr
    # no byte code beside the project's sources (the image writes none either)
    assert sorted((project / "container").rglob("__pycache__")) == []
    payload = project / "local_test" / "payload.csv"
    for content_type, status in (("text/csv", 0), ("text/unknown", 1)):  # a job that fails too
        done = subprocess.run([sys.executable, "-m", "byoc", "local", "transform", str(project),
                               "--backend", "process", "--input", str(payload), "--content-type",
                               content_type, "--output", str(tmp_path / f"out-{status}")],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == status, done.stderr
        assert list(host_tmp.iterdir()) == []
    assert (tmp_path / "out-0" / "payload.csv.out").is_file()
    assert sorted((project / "container").rglob("__pycache__")) == []


def test_an_environment_that_does_not_build_fails_the_job_at_once(tmp_path: Path) -> None:
    project = _probe(tmp_path, requirements="packaging==99.0.0\n")
    result = subprocess.run([sys.executable, "-m", "byoc", "local", "train", str(project.root),
                             "--backend", "process", "--job-name", "unbuildable-1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    record = jobrecord.read(project.jobs_dir / "unbuildable-1")
    assert record["TrainingJobStatus"] == "Failed"
    assert record["FailureReason"] == errors[0].removeprefix("Error: ")
    assert "packaging==99.0.0" in record["FailureReason"]
    # the next command finds it Failed for that reason, not a lost byoc's job
    listed = subprocess.run([sys.executable, "-m", "byoc", "local", "jobs", str(project.root)],
                            capture_output=True, text=True, timeout=60)
    assert "killed?" not in listed.stdout + listed.stderr
    assert jobrecord.read(project.jobs_dir / "unbuildable-1")["FailureReason"] \
        == record["FailureReason"]

