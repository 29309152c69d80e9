"""The user's path through the real CLI and Makefile, on Docker and as plain processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc.cli import cli
from helpers import FIXTURES, REPO, copy_probe, free_port

BYOC = [sys.executable, "-m", "byoc"]
LABELS = ["setosa", "setosa", "versicolor", "versicolor", "virginica", "virginica"]
ROOT_EXAMPLE = ("container", "local_test", "wheels", "Dockerfile", ".dockerignore", "byoc.toml", "Makefile")


def _left_behind(docker_client: Any, *jobs: str) -> list[str]:
    """The containers and networks still on the engine of the jobs (and servers) whose names
    start with one of *jobs*: only this test's, as another run of the suite may share the
    engine."""
    containers = docker_client.containers.list(all=True, ignore_removed=True,
                                               filters={"label": "com.byoc.job"})
    networks = docker_client.networks.list(filters={"label": "com.byoc.job"})
    return [c.name for c in containers if c.labels["com.byoc.job"].startswith(jobs)] + \
        [n.name for n in networks if (n.attrs["Labels"] or {})["com.byoc.job"].startswith(jobs)]


class Background:
    """A byoc command running in the background, its stderr collected."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None):
        self.process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, **(env or {})}, start_new_session=True)
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float = 300) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never appeared:\n{''.join(self.lines)}")

    def interrupt(self, timeout: float = 150) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        rest, _ = self.process.communicate(timeout=timeout)
        self.lines.append(rest)
        return self.process.returncode

    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def background() -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for job in started:
        job.kill()


def _byoc(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def _serve_and_predict(project: Path, backend: str, background: list[Background]) -> int:
    """Serve, predict and Ctrl-C; return the port it served on."""
    port = free_port()
    server = Background([*BYOC, "local", "serve", str(project), "--backend", backend,
                         "--port", str(port)], cwd=project)
    background.append(server)
    server.wait_for("ready: POST")
    url = f"http://127.0.0.1:{port}"
    predicted = _byoc("local", "predict", str(project / "local_test" / "payload.csv"), "--url", url)
    assert predicted.exit_code == 0, predicted.output
    assert predicted.stdout.split() == LABELS
    bad = _byoc("local", "predict", "-", "--content-type", "text/csv", "--url", url)
    assert bad.exit_code == 1
    assert bad.stderr.startswith(f"Error: HTTP 400 from {url}: the request body is empty")
    assert server.interrupt() == 130, server.output()  # Ctrl-C
    assert "stopped; the server and its files are removed" in server.output()
    return port


def test_new_train_serve_predict_as_processes(tmp_path: Path,
                                             background: list[Background]) -> None:
    created = _byoc("new", "churn-model", "-o", str(tmp_path), "--no-input")
    project = Path(created.stdout.strip())
    trained = _byoc("local", "train", str(project), "--backend", "process")
    assert trained.exit_code == 0, trained.output
    model = Path(trained.stdout.strip())
    assert model.parent.parent == project / ".byoc" / "jobs" and model.name == "model.tar.gz"
    with tarfile.open(model) as tar:
        assert tar.getnames() == ["model.npz"]
    assert re.search(r"algo-1 \| epoch=30 training:loss=\S+; training:accuracy=\S+;", trained.stderr)
    # byoc.toml's metric definitions read the log: the last value of each is in job.json
    record = json.loads((model.parent / "job.json").read_text())
    final = {entry["MetricName"]: entry["Value"] for entry in record["FinalMetricDataList"]}
    assert set(final) == {"train:loss", "train:accuracy"}  # no validation channel here
    assert final["train:accuracy"] >= 0.9 and 0 < final["train:loss"] < 0.5
    _serve_and_predict(project, "process", background)


@pytest.mark.docker
def test_new_build_train_serve_predict_on_docker(tmp_path: Path, base_image: str,
                                                 docker_client: Any,
                                                 background: list[Background]) -> None:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    project = Path(_byoc("new", name, "-o", str(tmp_path), "--no-input").stdout.strip())
    try:
        built = _byoc("build", str(project), "--build-arg", f"BASE_IMAGE={base_image}",
                      "--network", "host")
        assert built.exit_code == 0, built.output
        assert built.stdout.strip() == f"{name}:latest"
        assert "Successfully tagged" in built.stderr
        trained = _byoc("local", "train", str(project), "--backend", "docker")
        assert trained.exit_code == 0, trained.output
        assert "algo-1 | algo-1: model saved to /opt/ml/model/model.npz" in trained.stderr
        port = _serve_and_predict(project, "docker", background)
        assert _left_behind(docker_client, f"{name}-", f"byoc-serve-{port}-") == []
    finally:
        docker_client.images.remove(f"{name}:latest", force=True)


def test_a_failed_build_shows_the_step_and_exits_non_zero(tmp_path: Path, base_image: str) -> None:
    project = Path(_byoc("new", "broken", "-o", str(tmp_path), "--no-input").stdout.strip())
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("RUN chmod", "RUN false && chmod"))
    built = _byoc("build", str(project), "--build-arg", f"BASE_IMAGE={base_image}",
                  "--network", "host", "--tag", "byoc-test-broken:never")
    assert built.exit_code == 1
    error = next(line for line in built.stderr.splitlines() if line.startswith("Error:"))
    assert re.fullmatch(r"Error: build failed at Step \d+/\d+ : RUN false && chmod .*: The command"
                        r" '/bin/sh -c false && chmod .*' returned a non-zero code: 1", error), error


@pytest.mark.parametrize("backend", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_ctrl_c_during_training_leaves_nothing_running(tmp_path: Path, backend: str,
                                                       request: pytest.FixtureRequest,
                                                       background: list[Background]) -> None:
    if backend == "docker":
        request.getfixturevalue("probe_image")
    project = copy_probe(tmp_path / "probe")
    job = Background([*BYOC, "local", "train", str(project), "--backend", backend, "--job-name",
                      "stop-me", "--hyperparameter", "sleep=120", "--grace", "20"], cwd=project)
    background.append(job)
    job.wait_for("probe algo-1 starting")
    assert job.interrupt() == 130, job.output()
    assert "Error: training job stop-me interrupted" in job.output()
    job_dir = project / ".byoc" / "jobs" / "stop-me"
    with tarfile.open(job_dir / "output.tar.gz") as tar:
        assert "algo-1-sigterm" in tar.getnames()  # it got SIGTERM before anything harder
    assert sorted(p.name for p in job_dir.iterdir()) == ["job.json", "logs", "model.tar.gz",
                                                         "output.tar.gz"]
    record = json.loads((job_dir / "job.json").read_text())
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "Stopped")
    if backend == "docker":
        assert _left_behind(request.getfixturevalue("docker_client"), "stop-me") == []
    else:
        found = subprocess.run(["pgrep", "-f", str(project / "container")], capture_output=True)
        assert found.stdout == b""


def test_a_failed_training_job_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    project = Path(shutil.copytree(FIXTURES / "probe", tmp_path / "probe"))
    result = _byoc("local", "train", str(project), "--backend", "process", "--job-name", "bad",
                   "--hyperparameter", "fail=out of memory")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2] == (
        "Error: training job bad failed: algo-1 exited with status 3: out of memory on algo-1")
    assert result.stderr.splitlines()[-1] == f"logs and artifacts: {project}/.byoc/jobs/bad"


def test_serve_without_a_trained_model_says_how_to_get_one(tmp_path: Path) -> None:
    project = Path(_byoc("new", "fresh", "-o", str(tmp_path), "--no-input").stdout.strip())
    result = _byoc("local", "serve", str(project), "--backend", "process")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: no model to serve: train one with `byoc local train`,"
                                  " or pass --model\n")


def test_predict_errors_are_one_line_and_non_zero(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"1" * (6 * 1024 * 1024 + 1))
    too_big = _byoc("local", "predict", str(big))
    assert too_big.exit_code == 1 and "SageMaker accepts at most 6291456" in too_big.stderr
    unknown = tmp_path / "payload.bin"
    unknown.write_bytes(b"x")
    guess = _byoc("local", "predict", str(unknown))
    assert guess.exit_code == 2 and "pass --content-type" in guess.stderr
    nobody = _byoc("local", "predict", str(REPO / "local_test" / "payload.csv"), "--url",
                   f"http://127.0.0.1:{free_port()}")
    assert nobody.exit_code == 1 and "is `byoc local serve` running?" in nobody.stderr


def _copy_root_example(into: Path) -> Path:
    into.mkdir()
    for name in ROOT_EXAMPLE:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / name)
    return into


@pytest.mark.docker
def test_make_targets_from_the_repository_root(tmp_path: Path, base_image: str,
                                               docker_client: Any,
                                               background: list[Background]) -> None:
    """`make build local-train local-serve predict` in a copy of the root example."""
    root = _copy_root_example(tmp_path / "root")
    tag = f"byoc-make-{uuid.uuid4().hex[:8]}"
    toml = root / "byoc.toml"
    toml.write_text(toml.read_text().replace('image = "iris-classifier"', f'image = "{tag}"'))
    port = free_port()
    make = ["make", f"BYOC={' '.join(BYOC)}", "PYTHON=" + sys.executable,
            f"BUILD_ARGS=--build-arg BASE_IMAGE={base_image} --network host"]
    try:
        for target in ("build", "local-train"):
            done = subprocess.run([*make, target], cwd=root, capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, done.stdout + done.stderr
        server = Background([*BYOC, "local", "serve", "--port", str(port)], cwd=root)
        background.append(server)
        server.wait_for("ready: POST")
        predicted = subprocess.run([*BYOC, "local", "predict", "local_test/payload.csv", "--url",
                                    f"http://127.0.0.1:{port}"], cwd=root, capture_output=True,
                                   text=True, timeout=60)
        assert predicted.stdout.split() == LABELS, predicted.stderr
        assert server.interrupt() == 130  # Ctrl-C
        assert _left_behind(docker_client, "iris-classifier-", f"byoc-serve-{port}-") == []
    finally:
        docker_client.images.remove(f"{tag}:latest", force=True)
