"""byoc local's bad paths: busy ports, models that cannot load, channels that hold the project,
stopping, exit statuses and body limits."""

from __future__ import annotations

import _thread
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import local
from byoc.backends.base import Backend
from byoc.backends.docker import DockerBackend
from byoc.cli import cli
from byoc.errors import ConfigError, ImageNotFoundError, Interrupted, PortInUseError, ServeError
from byoc.project import Project
from helpers import FIXTURES, built_image, train_job

KINDS = ["process", pytest.param("docker", marks=pytest.mark.docker)]
BYOC = [sys.executable, "-m", "byoc"]


@pytest.fixture
def probe(tmp_path: Path) -> Project:
    return Project.load(Path(shutil.copytree(FIXTURES / "probe", tmp_path / "probe")))


@pytest.fixture(scope="session")
def own_probe_image(docker_client: Any, base_image: str) -> Iterator[str]:
    """tests/fixtures/probe under a tag of this session's own."""
    tag = f"byoc-test-probe-edges:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, FIXTURES / "probe", tag, base_image):
        yield tag


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, probe: Project) -> Backend:
    if request.param == "docker":
        return DockerBackend(request.getfixturevalue("own_probe_image"))
    return local.choose_backend(request.param, probe, None)


def _model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "weights.bin").write_bytes(b"w")
    return model


# ---- ports -----------------------------------------------------------------------------------

def _time_wait_sockets(port: int) -> int:
    """How many TCP sockets on *port* are in TIME-WAIT (state 06 of /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "06":
            count += 1
    return count


def test_a_port_with_only_time_wait_sockets_is_free(unused_port: int) -> None:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", unused_port), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for _ in range(5):  # HTTP/1.0: the server closes first, so its side waits in TIME-WAIT
        with urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/ping", timeout=5) as r:
            r.read()
    with pytest.raises(PortInUseError, match=f"port {unused_port} on 127.0.0.1 is in use"):
        local.check_port_free(unused_port)  # a listener: busy
    server.shutdown()
    server.server_close()
    thread.join()
    assert _time_wait_sockets(unused_port) > 0
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", unused_port))  # what the check used to do, and why it said busy
    local.check_port_free(unused_port)  # nothing listens: free


# ---- a model that cannot load ------------------------------------------------------------------

def test_serve_fails_at_once_with_the_reason_when_the_model_cannot_load(backend: Backend,
                                                                         tmp_path: Path,
                                                                         unused_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(ServeError) as caught:
        with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port,
                         env={"PROBE_LOAD": "failed:cannot read model.npz: no such file"},
                         startup_timeout=120, grace_seconds=5):
            pass
    assert caught.value.message == ("the server cannot load the model: cannot read model.npz:"
                                    " no such file")
    assert time.monotonic() - started < 30


def test_a_model_still_loading_gets_its_startup_window(backend: Backend, tmp_path: Path,
                                                       unused_port: int) -> None:
    started = time.monotonic()
    with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port,
                     env={"PROBE_LOAD": "loading:4"}, startup_timeout=120, grace_seconds=5):
        assert time.monotonic() - started >= 4


# ---- channels --------------------------------------------------------------------------------

def test_a_channel_holding_the_project_or_the_output_is_refused(backend: Backend, probe: Project,
                                                                tmp_path: Path) -> None:
    probe.state_dir.mkdir()
    for source, what in [(probe.root, "the project's .byoc/"),
                         (probe.state_dir, "the project's .byoc/"),
                         (tmp_path, "the project's .byoc/")]:
        with pytest.raises(ConfigError, match=f"channel 'training': .* contains {re.escape(what)}"):
            train_job(backend=backend, project=probe, channels={"training": source})
    data = tmp_path / "data"
    (data / "out").mkdir(parents=True)
    (data / "x.csv").write_text("1\n")
    with pytest.raises(ConfigError, match="contains the job output directory"):
        train_job(backend=backend, project=probe, channels={"training": data},
                    output_dir=data / "out")
    assert not probe.jobs_dir.exists() and list((data / "out").iterdir()) == []


@pytest.mark.parametrize(("channel", "message"), [
    ("training=.", "contains the project's .byoc/"),
    ("training=", "--channel training= has an empty path"),
])
def test_cli_refuses_such_channels_in_one_line(probe: Project, channel: str, message: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(probe.root)
    result = CliRunner().invoke(cli, ["local", "train", str(probe.root), "--backend", "process",
                                      "--channel", channel], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


# ---- a job that cannot start ---------------------------------------------------------------------

@pytest.mark.docker
def test_train_on_a_missing_image_writes_nothing(probe: Project, docker_client: Any) -> None:
    with pytest.raises(ImageNotFoundError):
        train_job(backend=DockerBackend("byoc-test-absent:never"), project=probe, job_name="no")
    assert not probe.jobs_dir.exists()
    result = CliRunner().invoke(cli, ["local", "train", str(probe.root), "--image",
                                      "byoc-test-absent:never"])
    assert result.exit_code == 1
    assert "artifacts in" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: image byoc-test-absent:never is not")
    assert not probe.jobs_dir.exists()


def test_no_engine_errors_name_backend_process_only_where_it_exists(
        probe: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{probe.root}/no-such.sock")
    built = CliRunner().invoke(cli, ["build", str(probe.root)])
    assert built.exit_code == 1
    assert built.stderr.startswith("Error: no Docker engine answers; start one")
    assert "--backend" not in built.stderr
    trained = CliRunner().invoke(cli, ["local", "train", str(probe.root), "--image", "x:1"])
    assert trained.exit_code == 1 and "(or use --backend process)" in trained.stderr


# ---- stopping ----------------------------------------------------------------------------------

def test_stopping_says_what_it_waits_for_and_a_second_ctrl_c_kills(probe: Project, tmp_path: Path,
                                                                     unused_port: int) -> None:
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("stopping;"):  # the user presses Ctrl-C again
            threading.Timer(0.5, _thread.interrupt_main).start()

    backend = local.choose_backend("process", probe, None)
    with pytest.raises(Interrupted) as caught:
        with local.serve(backend=backend, model=_model_dir(tmp_path), port=unused_port,
                         env={"PROBE_IGNORE_TERM": "1"}, grace_seconds=60, say=say):
            stopped = time.monotonic()
            raise KeyboardInterrupt  # the first Ctrl-C
    assert caught.value.exit_code == 130
    assert time.monotonic() - stopped < 15  # not the 60 s grace
    waiting = [line for line in said if line.startswith("stopping;")]
    assert len(waiting) == 1 and re.fullmatch(
        r"stopping; waiting up to (59|60) s; Ctrl-C again to kill", waiting[0]), said
    found = subprocess.run(["pgrep", "-f", str(probe.program_dir)], capture_output=True)
    assert found.stdout == b""


@pytest.fixture
def serving(probe: Project, tmp_path: Path, unused_port: int) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [*BYOC, "local", "serve", str(probe.root), "--backend", "process", "--model",
         str(_model_dir(tmp_path)), "--port", str(unused_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line or line.startswith("ready:"):
            break
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_local_serve_exits_130_on_ctrl_c_and_143_on_sigterm(serving: subprocess.Popen[str],
                                                            probe: Project, signum: int,
                                                            status: int) -> None:
    assert serving.poll() is None
    os.kill(serving.pid, signum)
    output, _ = serving.communicate(timeout=60)
    assert serving.returncode == status, output
    assert "stopped; the server and its files are removed" in output
    assert "Traceback" not in output


# ---- predict's body limit ------------------------------------------------------------------------

@pytest.fixture
def echo_server() -> Iterator[str]:
    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = len(self.rfile.read(int(self.headers["Content-Length"])))
            body = str(size).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_predict_follows_the_servers_payload_limit(echo_server: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    body = tmp_path / "big.csv"
    body.write_bytes(b"1" * (7 * 1024 * 1024 + 1))
    monkeypatch.delenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", raising=False)
    args = ["local", "predict", str(body), "--url", echo_server]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "SageMaker accepts at most 6291456 (6 MiB)" in refused.stderr
    assert "--max-payload" in refused.stderr
    sent = CliRunner().invoke(cli, [*args, "--max-payload", "8"])
    assert sent.exit_code == 0 and sent.stdout == str(7 * 1024 * 1024 + 1)
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "8")
    from_env = CliRunner().invoke(cli, args)
    assert from_env.exit_code == 0 and from_env.stdout == str(7 * 1024 * 1024 + 1)
    too_small = CliRunner().invoke(cli, [*args, "--max-payload", "7"])
    assert too_small.exit_code == 1 and "over the limit of 7340032 bytes (7 MiB" in too_small.stderr
    bad = CliRunner().invoke(cli, [*args, "--max-payload", "0"])
    assert bad.exit_code == 2 and "--max-payload must be a positive number" in bad.stderr


def test_local_train_exits_143_on_sigterm_after_stopping_the_job(probe: Project) -> None:
    process = subprocess.Popen(
        [*BYOC, "local", "train", str(probe.root), "--backend", "process", "--job-name", "term",
         "--hyperparameter", "sleep=120", "--grace", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        seen = ""
        deadline = time.monotonic() + 60
        while "probe algo-1 starting" not in seen and time.monotonic() < deadline:
            seen += process.stdout.readline()
        os.kill(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 143, seen + output
    assert "Error: training job term interrupted" in output and "Traceback" not in output
    assert (probe.jobs_dir / "term" / "job.json").is_file()
