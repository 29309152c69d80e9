"""``byoc local serve`` playing the platform's side of each hosting mode: serverless, inference
pipelines (Serial and Direct), asynchronous inference and multi-model endpoints.

The Docker tests run a small server of their own (tests/fixtures/hosting, built once per session
FROM $BYOC_TEST_BASE_IMAGE) that reports what it sees: its user, what it may write, its memory
limit, the port and safe range it was given, the headers each stage of a pipeline received.
"""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import contract, invoke
from byoc.backends.docker import DockerBackend
from byoc.cli import cli
from byoc.errors import ConfigError, PlatformRefusal, PredictError, ServeError
from byoc.local.hosting import asynchronous, multimodel, pipeline, serverless
from byoc.local.hosting.front import Upstream
from helpers import FIXTURES, built_image, free_port

PREFIX = "t-hl-"


@pytest.fixture(scope="session")
def hosting_image(docker_client: Any, base_image: str) -> Iterator[str]:
    tag = f"{PREFIX}host:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, FIXTURES / "hosting", tag, base_image):
        yield tag


def _serve(*args: str) -> Any:
    return CliRunner().invoke(cli, ["local", "serve", *args])


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.txt").write_text("w0")
    return model


def _archive(path: Path, weights: str, padding: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("weights.txt", weights.encode()), ("pad.bin", b"\0" * padding)):
            if name == "pad.bin" and not padding:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# --- refusals that need no engine ------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--serverless", "--memory", "512"], ["ServerlessConfig", "1024", "6144"]),
    (["--serverless", "--memory", "8192"], ["ServerlessConfig", "MemorySizeInMB"]),
    (["--serverless", "--memory", "1500"], ["ServerlessConfig", "steps of 1024"]),
    (["--serverless"], ["--memory", "ServerlessConfig"]),
    (["--serverless", "--memory", "2048", "--gpus", "all"], ["ServerlessConfig", "no GPUs"]),
    (["--serverless", "--memory", "2048", "--startup-timeout", "600"], ["ServerlessConfig", "180"]),
    (["--serverless", "--memory", "2048", "--multi-model", "."], ["ServerlessConfig"]),
    (["--pipeline", "only-one:1"], ["1 image", "2 to 15"]),
    (["--pipeline", ",".join(f"i{n}:1" for n in range(16))], ["16 image", "2 to 15"]),
    (["--multi-model", "no-such-dir"], ["no such directory", "S3 prefix"]),
    (["--async", "--invocation-timeout", "3601"], ["InvocationTimeoutSeconds", "3600"]),
    (["--direct"], ["--direct goes with --pipeline"]),
    (["--async-output", "x"], ["goes with --async"]),
    (["--async-failure", "x"], ["--async-failure goes with --async"]),
    (["--memory", "2048"], ["--memory goes with"]),
])
def test_each_refusal_is_one_line_naming_the_rule(args: list[str], words: list[str],
                                                   tmp_path: Path) -> None:
    started = time.monotonic()
    result = _serve(*args, "--image", "never-built:1", "--backend", "docker")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0]
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("mode", [["--serverless", "--memory", "2048"], ["--pipeline", "a:1,b:1"],
                                  ["--async"], ["--multi-model", "."]])
def test_the_process_backend_refuses_each_mode_with_the_reason_at_once(mode: list[str]) -> None:
    started = time.monotonic()
    result = _serve(*mode, "--backend", "process")
    assert result.exit_code == 2
    assert "needs the docker backend" in result.output and "containers" in result.output
    assert "Traceback" not in result.output
    assert time.monotonic() - started < 1.0


def test_a_pipeline_takes_its_images_from_pipeline_only() -> None:
    result = _serve("--pipeline", "a:1,b:1", "--image", "c:1", "--backend", "docker")
    assert result.exit_code == 2 and "--image goes without --pipeline" in result.output


def test_model_names_are_opaque_per_path_and_paths_cannot_climb(tmp_path: Path) -> None:
    assert multimodel.model_name("a/b.tar.gz") != multimodel.model_name("a-b.tar.gz")
    cache = multimodel.Cache(None, tmp_path, tmp_path / "root", None, lambda m: None)  # type: ignore[arg-type]
    for bad in ("../x.tar.gz", "/etc/x.tar.gz", "model.zip"):
        with pytest.raises(PlatformRefusal, match="relative"):
            cache.source(bad)
    with pytest.raises(PlatformRefusal, match="not in"):
        cache.source("missing.tar.gz")


def test_async_files_are_named_as_the_service_names_them(tmp_path: Path) -> None:
    assert asynchronous.output_file(tmp_path, "abc").name == "abc.out"
    assert asynchronous.failure_file(tmp_path, "abc").name == "abc-error.out"
    with pytest.raises(ConfigError, match="not a file"):
        asynchronous.check_input(tmp_path / "none")


def test_predict_async_refuses_an_input_over_1_gb_before_sending(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(contract.ASYNC_MAX_INPUT_BYTES + 1)  # sparse: no disk used
    with pytest.raises(PredictError, match="1 GB"):
        invoke.predict_async("http://127.0.0.1:9", big)


def test_stopping_the_async_queue_sends_no_queued_request_and_writes_no_file_for_it(
        tmp_path: Path) -> None:
    """A real HTTP server stands for the container: each answer takes 1 s. Stopping the queue
    (Ctrl-C on `byoc local serve --async`) lets the request in flight finish; the queued ones
    are never sent to a container that is stopping, and get no -error.out claiming it failed."""
    started = threading.Event()
    calls: list[bytes] = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(self.rfile.read(int(self.headers["Content-Length"])))
            started.set()
            time.sleep(1.0)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    container = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=container.serve_forever, daemon=True).start()
    output = tmp_path / "out"
    output.mkdir()
    said: list[str] = []
    jobs = asynchronous.Queue(Upstream(("127.0.0.1", container.server_address[1]), 10.0), output,
                              1, said.append)
    try:
        for name in ("first", "second", "third"):
            body = tmp_path / f"{name}.txt"
            body.write_text(name)
            jobs.put(asynchronous.Job(name, body, len(name), "text/plain", None, 10.0))
        assert started.wait(10)
        jobs.close()
    finally:
        container.shutdown()
        container.server_close()
    time.sleep(1.5)  # long enough for a wrongly sent request to fail and write its file
    assert calls == [b"first"]
    assert sorted(path.name for path in output.iterdir()) == ["first.out"]
    assert [line for line in said if "not run" in line] == [
        "inference second: not run, the endpoint stopped while it was queued",
        "inference third: not run, the endpoint stopped while it was queued"]


# --- Docker ----------------------------------------------------------------------------------

def test_serverless_runs_non_root_read_only_with_tmp_and_the_memory_limit(
        hosting_image: str, tmp_path: Path) -> None:
    backend = DockerBackend(hosting_image)
    port = free_port()
    with serverless.serve(backend=backend, model=_model(tmp_path), memory_mb=1024, port=port) as served:
        facts = json.loads(invoke.predict(served.url, b"whoami", "text/plain").body)
        assert facts["uid"] == 65534
        assert facts["tmp_writable"] and not facts["root_writable"] and not facts["opt_writable"]
        container = served.servers["primary"].container
        container.reload()
        assert container.attrs["HostConfig"]["Memory"] == 1024 * 1024 * 1024
        assert not container.attrs["HostConfig"].get("DeviceRequests")
        assert facts["model"] == ["weights.txt"]
        just_under = b"x" * contract.SERVERLESS_MAX_PAYLOAD_BYTES
        assert invoke.predict(served.url, just_under, "text/plain").body.startswith(b"bytes=4194304")
        with pytest.raises(PredictError, match=r"HTTP 413.*ServerlessConfig.*4 MB"):
            invoke.predict(served.url, just_under + b"x", "text/plain")


def test_serverless_fails_a_server_that_writes_outside_tmp(hosting_image: str,
                                                           tmp_path: Path) -> None:
    backend = DockerBackend(hosting_image)
    with pytest.raises(ServeError, match="exited") as caught:
        with serverless.serve(backend=backend, model=_model(tmp_path), memory_mb=1024,
                              port=free_port(), env={"WRITE_OUTSIDE_TMP": "1"}):
            pass
    assert "Read-only file system" in (caught.value.detail or "")


def test_a_serial_pipeline_chains_answers_and_gives_accept_to_the_last(
        hosting_image: str) -> None:
    backend = DockerBackend(hosting_image)
    images = [hosting_image] * 3
    with pipeline.serve(backend=backend, images=images, port=free_port()) as served:
        answer = invoke.predict(served.url, b"in", "text/csv", accept="application/json")
        stages = answer.body.decode().split("|")
        assert stages == ["in", "8081(ct=text/csv,accept=)", "8082(ct=application/x-8081,accept=)",
                          "8083(ct=application/x-8082,accept=application/json)"]
        assert answer.content_type == "application/x-8083"
        with pytest.raises(PredictError, match="HTTP 500.*container t-hl-host answered 500"):
            invoke.predict(served.url, b"fail", "text/plain")
        with pytest.raises(PredictError, match="Direct"):
            invoke.predict(served.url, b"x", "text/plain", target_container="t-hl-host")


def test_a_direct_endpoint_routes_by_container_hostname(hosting_image: str) -> None:
    backend = DockerBackend(hosting_image)
    with pipeline.serve(backend=backend, images=[hosting_image] * 2, direct=True,
                        port=free_port()) as served:
        second = json.loads(invoke.predict(served.url, b"whoami", "text/plain",
                                           target_container="t-hl-host-2").body)
        first = json.loads(invoke.predict(served.url, b"whoami", "text/plain",
                                          target_container="t-hl-host").body)
        assert (first["port"], second["port"]) == (8081, 8082)
        assert first["safe"] == "20000-20999" and second["safe"] == "21000-21999"
        with pytest.raises(PredictError, match="TargetContainerHostname.*t-hl-host, t-hl-host-2"):
            invoke.predict(served.url, b"x", "text/plain")
        with pytest.raises(PredictError, match="no container 'nope'"):
            invoke.predict(served.url, b"x", "text/plain", target_container="nope")


def test_a_pipeline_refuses_an_image_without_the_bind_to_port_label(
        hosting_image: str, base_image: str) -> None:
    backend = DockerBackend(hosting_image)
    with pytest.raises(ConfigError) as caught:
        with pipeline.serve(backend=backend, images=[hosting_image, base_image], port=free_port()):
            pass
    assert caught.value.message == pipeline.refusal(base_image)
    assert (f"Your Ecr Image {base_image} does not contain required"
            " com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true Docker label(s).") \
        in caught.value.message


def _wait_for(*paths: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in paths:
            if path.exists():
                return path
        time.sleep(0.05)
    raise AssertionError(f"none of {paths} appeared")


def test_async_queues_writes_answers_and_failures_and_caps_concurrency(
        hosting_image: str, tmp_path: Path) -> None:
    backend = DockerBackend(hosting_image)
    output = tmp_path / "out"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, data in (("ok.txt", b"hello"), ("fail.txt", b"fail"), ("slow.txt", b"sleep:3"),
                       ("who.txt", b"whoami"), ("nap.txt", b"sleep:1")):
        (inputs / name).write_bytes(data)
    big = inputs / "big.bin"
    big.write_bytes(b"\1" * (20 * 1024 * 1024))
    failures = tmp_path / "failed"
    with asynchronous.serve(backend=backend, model=_model(tmp_path), port=free_port(),
                            output=output, failures=failures, invocation_timeout=2,
                            max_concurrent=1) as served:
        ok = invoke.predict_async(served.url, inputs / "ok.txt", "text/plain", inference_id="ok-1")
        assert (ok.inference_id, Path(ok.output_location).name) == ("ok-1", "ok-1.out")
        assert _wait_for(Path(ok.output_location)).read_bytes().startswith(b"hello|8080(ct=text/plain")
        failed = invoke.predict_async(served.url, inputs / "fail.txt", "text/plain")
        assert Path(failed.failure_location).parent == failures.resolve()
        text = _wait_for(Path(failed.failure_location)).read_text()
        assert "the model failed on purpose" in text and "500" in text
        assert not Path(failed.output_location).exists()
        slow = invoke.predict_async(served.url, inputs / "slow.txt", "text/plain")
        assert "timed out" in _wait_for(Path(slow.failure_location)).read_text()
        who = invoke.predict_async(served.url, inputs / "who.txt", "text/plain")
        facts = json.loads(_wait_for(Path(who.output_location)).read_text())
        assert (facts["payload_mb"], facts["timeout"]) == ("1024", "2")
        large = invoke.predict_async(served.url, big, "application/octet-stream")
        assert _wait_for(Path(large.output_location)).read_text().startswith(
            f"bytes={20 * 1024 * 1024} ")
        # one in flight at a time: two 1 s requests queued together take 2 s
        started = time.monotonic()
        naps = [invoke.predict_async(served.url, inputs / "nap.txt", "text/plain") for _ in range(2)]
        for nap in naps:
            _wait_for(Path(nap.output_location))
        assert time.monotonic() - started >= 2.0
        with pytest.raises(PredictError, match="InvokeEndpointAsync"):
            invoke.predict(served.url, b"x", "text/plain")


def test_multi_model_loads_on_first_use_and_unloads_the_least_recently_used(
        hosting_image: str, tmp_path: Path) -> None:
    models = tmp_path / "prefix"
    for rel in ("a.tar.gz", "team/b.tar.gz", "c.tar.gz"):
        _archive(models / rel, f"weights-of-{rel}")
    said: list[str] = []
    backend = DockerBackend(hosting_image)
    with multimodel.serve(backend=backend, models=models, port=free_port(),
                          env={"MME_CAPACITY": "2"}, say=said.append) as served:
        cache = served.state
        assert invoke.predict(served.url, b"x", "text/plain",
                              target_model="a.tar.gz").body == b"weights-of-a.tar.gz:x"
        assert invoke.predict(served.url, b"y", "text/plain",
                              target_model="team/b.tar.gz").body == b"weights-of-team/b.tar.gz:y"
        invoke.predict(served.url, b"z", "text/plain", target_model="a.tar.gz")  # a is now recent
        assert cache.loads == 2
        assert invoke.predict(served.url, b"z", "text/plain",
                              target_model="c.tar.gz").body == b"weights-of-c.tar.gz:z"
        assert cache.evictions == [("team/b.tar.gz", "the container answered 507 (not enough memory)")]
        assert any("unloaded team/b.tar.gz (least recently used) to load c.tar.gz" in line
                   for line in said)
        assert not (cache.root / multimodel.model_name("team/b.tar.gz")).exists()
        with pytest.raises(PredictError, match="HTTP 400.*not in"):
            invoke.predict(served.url, b"x", "text/plain", target_model="missing.tar.gz")
        with pytest.raises(PredictError, match="needs TargetModel"):
            invoke.predict(served.url, b"x", "text/plain")


def test_multi_model_keeps_the_extracted_models_within_memory(hosting_image: str,
                                                              tmp_path: Path) -> None:
    models = tmp_path / "prefix"
    for index in range(3):
        _archive(models / f"m{index}.tar.gz", f"w{index}", padding=600 * 1024)
    backend = DockerBackend(hosting_image)
    with multimodel.serve(backend=backend, models=models, memory_mb=1, port=free_port()) as served:
        for index in range(3):
            assert invoke.predict(served.url, b"q", "text/plain",
                                  target_model=f"m{index}.tar.gz").body == f"w{index}:q".encode()
        assert [rel for rel, _ in served.state.evictions] == ["m0.tar.gz", "m1.tar.gz"]
        assert "--memory" in served.state.evictions[0][1]


def test_multi_model_refuses_an_image_without_the_label(base_image: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multi-models=true Docker label"):
        with multimodel.serve(backend=DockerBackend(base_image), models=tmp_path, port=free_port()):
            pass


def test_the_cli_serves_a_direct_pipeline_and_predict_targets_a_container(
        hosting_image: str, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "byoc", "local", "serve", "--pipeline",
         f"{hosting_image},{hosting_image}", "--direct", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        (tmp_path / "body.csv").write_text("1,2")
        done = subprocess.run([sys.executable, "-m", "byoc", "local", "predict",
                               str(tmp_path / "body.csv"), "--url", f"http://127.0.0.1:{port}",
                               "--target-container", "t-hl-host-2"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "1,2|8082(ct=text/csv,accept=)"
    finally:
        server.terminate()
        server.wait(60)


def test_the_cli_queues_an_async_request_and_prints_its_id(hosting_image: str,
                                                           tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "answers"
    server = subprocess.Popen(
        [sys.executable, "-m", "byoc", "local", "serve", "--image", hosting_image, "--async",
         "--model", str(_model(tmp_path)), "--async-output", str(output), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        (tmp_path / "body.json").write_text("{}")
        done = subprocess.run([sys.executable, "-m", "byoc", "local", "predict", "--async",
                               str(tmp_path / "body.json"), "--url", f"http://127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        inference_id = done.stdout.strip()
        assert f"{inference_id}.out" in done.stderr
        answer = _wait_for(output / f"{inference_id}.out").read_text()
        assert answer == "{}|8080(ct=application/json,accept=)"
    finally:
        server.terminate()
        server.wait(60)
    assert server.stderr is not None
    assert f"ready: http://127.0.0.1:{port} plays an asynchronous endpoint" in server.stderr.read()


def test_the_cli_serves_a_multi_model_endpoint_and_predict_names_the_model(
        hosting_image: str, tmp_path: Path) -> None:
    port = free_port()
    models = tmp_path / "prefix"
    _archive(models / "team" / "a.tar.gz", "weights-a")
    server = subprocess.Popen(
        [sys.executable, "-m", "byoc", "local", "serve", "--image", hosting_image,
         "--multi-model", str(models), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        (tmp_path / "body.csv").write_text("1,2")
        predict = [sys.executable, "-m", "byoc", "local", "predict", str(tmp_path / "body.csv"),
                   "--url", f"http://127.0.0.1:{port}", "--target-model"]
        done = subprocess.run([*predict, "team/a.tar.gz"], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (0, "weights-a:1,2"), done.stderr
        missing = subprocess.run([*predict, "b.tar.gz"], capture_output=True, text=True, timeout=60)
        assert missing.returncode != 0 and missing.stdout == ""
        lines = missing.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: HTTP 400")
        assert "'b.tar.gz'" in lines[0] and "not in" in lines[0]
    finally:
        server.terminate()
        server.wait(60)
