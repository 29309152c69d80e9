"""The root example's ``serve``, run the way SageMaker runs it.

``container/iris_classifier/serve`` runs as a plain process on a free port
against a temp /opt/ml tree whose model was written by a real ``train`` run.
It runs with nginx in front of gunicorn (the default when nginx is installed)
and, where that matters, with ``SAGEMAKER_USE_NGINX=false`` (gunicorn on the
port). Every serve is started in its own session and its process group is
killed at teardown.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from hosting_checks import assert_multi_model_api, invoke_model, load_model, models_root, oversized_model
from nginx_checks import NGINX_ERRORS, assert_ping_survives_slow_clients, assert_plain_text_error

from helpers import REPO, free_port

PROGRAM_DIR = REPO / "container" / "iris_classifier"
TEST_DIR = REPO / "local_test" / "test_dir"
SLOW_MODEL = Path(__file__).resolve().parent / "fixtures" / "container" / "slow_model.py"
THREADED_MODEL = Path(__file__).resolve().parent / "fixtures" / "container" / "threaded_model.py"
HAS_NGINX = shutil.which("nginx") is not None
MODES = [
    pytest.param("nginx", marks=pytest.mark.skipif(not HAS_NGINX, reason="nginx is not installed")),
    "gunicorn",
]
MiB = 1024 * 1024

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]
LABELS = ["setosa", "virginica"]
CSV_ROWS = "5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n"


# ---- processes ------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of *pid*, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def descendants(pid: int) -> set[tuple[int, int]]:
    """(pid, start time) of every living process below *pid*."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] != "Z":
            children.setdefault(stat[1], []).append(int(entry.name))
            starts[int(entry.name)] = stat[2]
    found: set[tuple[int, int]] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child, starts[child]))
            todo.append(child)
    return found


def still_running(processes: set[tuple[int, int]]) -> list[str]:
    """Those of *processes* alive (not zombies), with their command lines."""
    alive = []
    for pid, start in processes:
        stat = _stat(pid)
        if stat and stat[2] == start and stat[0] != "Z":
            try:
                alive.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return alive


def every_process(serve: Serve, mode: str) -> set[tuple[int, int]]:
    """serve's processes once all are up: gunicorn master, 2 workers, nginx master and worker."""
    expected = 5 if mode == "nginx" else 3
    deadline = time.monotonic() + 10
    while len(found := descendants(serve.process.pid)) < expected:
        assert time.monotonic() < deadline, f"{len(found)} processes:\n{serve.log_text()}"
        time.sleep(0.05)
    return found


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def post(self, body: bytes | str, content_type: str | None, accept: str | None = None,
             **headers: str) -> requests.Response:
        sent = dict(headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        if accept is not None:
            sent["Accept"] = accept
        return requests.post(f"{self.url}/invocations", data=body, headers=sent, timeout=30)

    def wait_until(self, ready: Callable[[requests.Response], bool], timeout: float = 20) -> None:
        """Poll /ping until *ready* accepts an answer; fail with the log if serve exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited {self.process.returncode}:\n{self.log_text()}"
            try:
                answer = requests.get(f"{self.url}/ping", timeout=2)
                if ready(answer):
                    return
                last = f"{answer.status_code} {answer.text!r}"
            except (requests.ConnectionError, requests.Timeout):
                pass  # not up yet, or a gevent worker busy loading its model
            time.sleep(0.1)
        pytest.fail(f"/ping never became ready (last: {last}):\n{self.log_text()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever of its process group is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def start_serve(root: Path, log: Path, mode: str, program_dir: Path = PROGRAM_DIR,
                **env: str) -> Serve:
    port = free_port()
    environ = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(root),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SERVE_BIND_ADDRESS": "127.0.0.1",
        "MODEL_SERVER_WORKERS": "2",
        "SAGEMAKER_USE_NGINX": "true" if mode == "nginx" else "false",
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, str(program_dir / "serve")], env=environ,
                                   stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    return Serve(process, port, log)


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir written by running the real ``train`` once on local_test/test_dir."""
    root = tmp_path_factory.mktemp("trained") / "opt_ml"
    shutil.copytree(TEST_DIR, root)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    result = subprocess.run([sys.executable, str(PROGRAM_DIR / "train")],
                            env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return root / "model"


def make_tree(parent: Path, model_dir: Path | None) -> Path:
    """An /opt/ml tree holding a copy of *model_dir* (an empty model dir if None)."""
    root = parent / "opt_ml"
    shutil.copytree(TEST_DIR, root)
    if model_dir is None:
        (root / "model").mkdir()
    else:
        shutil.copytree(model_dir, root / "model")
    (root / "output" / "data").mkdir(parents=True)
    return root


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """Start serves for one test; each is stopped and its process group killed afterwards."""
    started: list[Serve] = []

    def launch_(root: Path, mode: str, program_dir: Path = PROGRAM_DIR, **env: str) -> Serve:
        serve = start_serve(root, tmp_path / f"serve-{len(started)}.log", mode, program_dir, **env)
        started.append(serve)
        return serve

    yield launch_
    for serve in started:
        serve.stop()


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           trained_model: Path) -> Iterator[Serve]:
    """One healthy serve per mode, shared by the request tests of this module."""
    base = tmp_path_factory.mktemp(f"serve-{request.param}")
    serve = start_serve(make_tree(base, trained_model), base / "serve.log", request.param)
    try:
        serve.wait_until(lambda answer: answer.status_code == 200)
        yield serve
    finally:
        serve.stop()


def program_with(parent: Path, model_file: Path) -> Path:
    """A copy of the program dir whose model.py is *model_file*, the real one as real_model.py."""
    program = parent / "iris_classifier"
    shutil.copytree(PROGRAM_DIR, program, ignore=shutil.ignore_patterns("__pycache__"))
    (program / "model.py").rename(program / "real_model.py")
    shutil.copy(model_file, program / "model.py")
    return program


@pytest.fixture(scope="module")
def slow_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program dir with tests/fixtures/container/slow_model.py as its model."""
    return program_with(tmp_path_factory.mktemp("slow"), SLOW_MODEL)


@pytest.fixture(scope="module")
def threaded_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program dir with tests/fixtures/container/threaded_model.py as its model."""
    return program_with(tmp_path_factory.mktemp("threaded"), THREADED_MODEL)


# ---- decoding answers -----------------------------------------------------------------------


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def predictions(answer: requests.Response) -> list[str]:
    """The labels in *answer*, read according to its Content-Type."""
    kind = answer.headers["Content-Type"].split(";")[0]
    if kind == "text/csv":
        return answer.text.splitlines()
    if kind == "application/json":
        return list(answer.json()["predictions"])
    if kind == "application/jsonlines":
        return [json.loads(line) for line in answer.text.splitlines()]
    if kind == "application/x-npy":
        return list(np.load(io.BytesIO(answer.content), allow_pickle=False).tolist())
    raise AssertionError(f"unexpected Content-Type {kind!r}")


def media_type(answer: requests.Response) -> str:
    return answer.headers["Content-Type"].split(";")[0].strip()


# ---- healthy server: content types and Accept -----------------------------------------------


def test_ping_answers_200(server: Serve) -> None:
    answer = requests.get(f"{server.url}/ping", timeout=2)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        pytest.param("text/csv", CSV_ROWS, LABELS, id="csv"),
        pytest.param("text/csv; charset=utf-8", CSV_ROWS, LABELS, id="csv-charset"),
        pytest.param("text/csv", "5.1, 3.5, 1.4, 0.2\r\n\r\n6.3,3.3,6.0,2.5", LABELS,
                     id="csv-crlf-blank-line-spaces"),
        pytest.param("text/csv", "\ufeff" + CSV_ROWS, LABELS, id="csv-byte-order-mark"),
        pytest.param("application/json", json.dumps(ROWS), LABELS, id="json-rows"),
        pytest.param("application/json", json.dumps({"instances": ROWS}), LABELS, id="json-instances"),
        pytest.param("application/json", json.dumps(ROWS[0]), LABELS[:1], id="json-one-row"),
        pytest.param("application/jsonlines", "\n".join(json.dumps(row) for row in ROWS), LABELS,
                     id="jsonlines"),
        pytest.param("application/jsonlines",
                     "\n".join(json.dumps({"features": row}) for row in ROWS), LABELS,
                     id="jsonlines-features"),
        pytest.param("application/x-npy", npy(np.array(ROWS)), LABELS, id="npy"),
        pytest.param("application/x-npy", npy(np.array(ROWS[0])), LABELS[:1], id="npy-one-row"),
        pytest.param("text/csv", '"5.1","3.5","1.4","0.2"\r\n6.3,"3.3",6.0,2.5\r\n', LABELS,
                     id="csv-rfc4180-quoted"),
    ],
)
def test_each_content_type_is_answered_in_kind(server: Serve, content_type: str, body: bytes | str,
                                               expected: list[str]) -> None:
    answer = server.post(body, content_type)
    assert answer.status_code == 200, answer.text
    assert media_type(answer) == content_type.split(";")[0]
    assert predictions(answer) == expected


@pytest.mark.parametrize(
    ("content_type", "body", "accept", "answered_as"),
    [
        pytest.param("text/csv", CSV_ROWS, "text/csv", "text/csv",
                     id="csv"),
        pytest.param("text/csv", CSV_ROWS, "application/json", "application/json",
                     id="json"),
        pytest.param("text/csv", CSV_ROWS, "application/jsonlines", "application/jsonlines",
                     id="jsonlines"),
        pytest.param("text/csv", CSV_ROWS, "application/x-npy", "application/x-npy",
                     id="npy"),
        pytest.param("text/csv", CSV_ROWS, "text/csv; charset=utf-8", "text/csv",
                     id="csv-charset"),
        pytest.param("application/json", json.dumps(ROWS), None, "application/json",
                     id="missing-is-request-type"),
        pytest.param("application/json", json.dumps(ROWS), "*/*", "application/json",
                     id="any-is-request-type-json"),
        pytest.param("text/csv", CSV_ROWS, "*/*", "text/csv",
                     id="any-is-request-type-csv"),
        pytest.param("text/csv", CSV_ROWS, "application/json;q=0.5, application/jsonlines;q=0.9",
                     "application/jsonlines", id="highest-q"),
        pytest.param("text/csv", CSV_ROWS, "text/csv;q=0, application/json", "application/json",
                     id="q-zero-refuses"),
        pytest.param("text/csv", CSV_ROWS, "image/png, application/x-npy;q=0.1", "application/x-npy",
                     id="first-supported"),
        pytest.param("application/json", json.dumps(ROWS), "text/*", "text/csv",
                     id="text-wildcard"),
        pytest.param("text/csv", CSV_ROWS, "application/*", "application/json",
                     id="application-wildcard"),
        pytest.param("application/x-npy", npy(np.array(ROWS)), "application/*", "application/x-npy",
                     id="application-wildcard-npy"),
    ],
)
def test_accept_chooses_the_response_type(server: Serve, content_type: str, body: bytes | str,
                                          accept: str | None, answered_as: str) -> None:
    answer = server.post(body, content_type, accept)
    assert answer.status_code == 200, answer.text
    assert media_type(answer) == answered_as
    assert predictions(answer) == LABELS


def test_unknown_sagemaker_headers_are_ignored(server: Serve) -> None:
    answer = server.post(CSV_ROWS, "text/csv", **{
        "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
        "X-Amzn-SageMaker-Target-Model": "model.tar.gz",
        "X-Amzn-SageMaker-Inference-Id": "abc-123",
        "X-Amzn-SageMaker-Session-Id": "NEW_SESSION",
        "X-Amzn-SageMaker-Something-New": "?",
        "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793",
    })
    assert answer.status_code == 200, answer.text
    assert predictions(answer) == LABELS


def test_a_body_just_under_6_mib_is_served(server: Serve) -> None:
    row = "5.1,3.5,1.4,0.2\n"
    count = (6 * MiB - 1024) // len(row)
    answer = server.post(row * count, "text/csv", "application/json")
    assert answer.status_code == 200, answer.text[:200]
    assert answer.json()["predictions"] == ["setosa"] * count


def test_execution_parameters_fit_batch_transform_limits(server: Serve) -> None:
    answer = requests.get(f"{server.url}/execution-parameters", timeout=5)
    assert answer.status_code == 200
    assert media_type(answer) == "application/json"
    parameters = answer.json()
    assert parameters["BatchStrategy"] == "MULTI_RECORD"
    assert parameters["MaxPayloadInMB"] == 6
    assert 1 <= parameters["MaxConcurrentTransforms"]
    assert parameters["MaxConcurrentTransforms"] * parameters["MaxPayloadInMB"] <= 100


# ---- healthy server: bad input ------------------------------------------------------------


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, rows=np.array(ROWS))
    return buffer.getvalue()


def _npy_claiming(shape: tuple[int, ...]) -> bytes:
    """An .npy header declaring *shape* followed by a few bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue() + bytes(64)


BAD_INPUTS = [
    pytest.param("text/csv", b"", None, 400, "empty", id="empty-body"),
    pytest.param("application/json", b"  \n", None, 400, "empty", id="blank-body"),
    pytest.param("text/csv", "5.1,abc,1.4,0.2", None, 400, "'abc' is not a number", id="csv-not-a-number"),
    pytest.param("text/csv", "5.1,,1.4,0.2", None, 400, "row 1: a missing value", id="csv-empty-cell"),
    pytest.param("text/csv", '"5.1","abc",1.4,0.2', None, 400, "'abc' is not a number",
                 id="csv-quoted-not-a-number"),
    pytest.param("text/csv", '"5.1,3.5",1.4,0.2', None, 400, "expected 4 features, got 3",
                 id="csv-quoted-comma"),
    pytest.param("text/csv", "5.1,3.5,1.4", None, 400, "expected 4 features", id="csv-too-few"),
    pytest.param("text/csv", CSV_ROWS + "1,2,3,4,5\n", None, 400, "row 3: expected 4 features",
                 id="csv-one-row-too-wide"),
    pytest.param("text/csv", ",".join(["1.0"] * 10_000), None, 400, "expected 4 features, got 10000",
                 id="csv-10000-columns"),
    pytest.param("text/csv", "nan,3.5,1.4,0.2", None, 400, "does not accept missing values", id="csv-nan"),
    pytest.param("text/csv", "5.1,inf,1.4,0.2", None, 400, "finite", id="csv-inf"),
    pytest.param("application/json", "[[NaN, 3.5, 1.4, 0.2]]", None, 400, "missing value", id="json-nan"),
    pytest.param("application/json", "[[null, 3.5, 1.4, 0.2]]", None, 400, "missing value", id="json-null"),
    pytest.param("application/json", "[[1e999, 3.5, 1.4, 0.2]]", None, 400, "finite", id="json-inf"),
    pytest.param("text/csv", b"5.1,3.5,1.4,0.2\xff", None, 400, "not UTF-8", id="csv-not-utf8"),
    pytest.param("application/json", b"[[5.1,3.5,1.4,0.2\xe9]]", None, 400, "not UTF-8",
                 id="json-not-utf8"),
    pytest.param("application/json", "[[5.1, 3.5", None, 400, "malformed JSON", id="json-malformed"),
    pytest.param("application/json", "[[5.1, 3.5, 1.4]]", None, 400, "expected 4 features",
                 id="json-too-few"),
    pytest.param("application/json", '{"rows": [[5.1, 3.5, 1.4, 0.2]]}', None, 400, "instances",
                 id="json-object-without-instances"),
    pytest.param("application/json", '{"instances": {"a": 1}}', None, 400, "rows of numbers",
                 id="json-instances-not-a-list"),
    pytest.param("application/json", '"5.1,3.5,1.4,0.2"', None, 400, "rows of numbers",
                 id="json-string"),
    pytest.param("application/json", "5.1", None, 400, "rows", id="json-number"),
    pytest.param("application/json", "[]", None, 400, "rows", id="json-no-rows"),
    pytest.param("application/json", "[[5.1, 3.5, 1.4, 0.2], [6.3]]", None, 400, "same length",
                 id="json-ragged"),
    pytest.param("application/json", json.dumps([ROWS]), None, 400, "rows", id="json-3d"),
    pytest.param("application/json", "[" * 100_000 + "]" * 100_000, None, 400, "malformed JSON",
                 id="json-nested-too-deep"),
    pytest.param("application/json", "[" * 100_000, None, 400, "malformed JSON",
                 id="json-nested-too-deep-unclosed"),
    pytest.param("application/jsonlines", "[5.1, 3.5, 1.4, 0.2]\n" + "[" * 100_000 + "]" * 100_000,
                 None, 400, "malformed JSON", id="jsonlines-nested-too-deep"),
    pytest.param("application/jsonlines", "5.1\n3.5\n1.4\n0.2\n", None, 400, "rows",
                 id="jsonlines-scalars"),
    pytest.param("application/jsonlines", '{"values": [5.1, 3.5, 1.4, 0.2]}', None, 400, "rows",
                 id="jsonlines-object-without-features"),
    pytest.param("application/x-npy", b"5.1,3.5,1.4,0.2", None, 400, ".npy", id="npy-garbage"),
    pytest.param("application/x-npy", npy(np.array(ROWS))[:-8], None, 400, ".npy", id="npy-truncated"),
    pytest.param("application/x-npy", _npz(), None, 400, ".npz", id="npy-is-npz"),
    pytest.param("application/x-npy", _npy_claiming((10**11,)), None, 400, ".npy",
                 id="npy-header-claims-800-GB"),
    pytest.param("application/x-npy", npy(np.array([["a", "b", "c", "d"]])), None, 400, "numeric",
                 id="npy-strings"),
    pytest.param("application/x-npy", npy(np.array([ROWS])), None, 400, "rows", id="npy-3d"),
    pytest.param("text/plain", CSV_ROWS, None, 415, "unsupported Content-Type", id="text-plain"),
    pytest.param(None, CSV_ROWS, None, 415, "unsupported Content-Type", id="no-content-type"),
    pytest.param("application/x-protobuf", b"\x08\x01", None, 415, "unsupported Content-Type",
                 id="protobuf"),
    pytest.param("text/csv", CSV_ROWS, "image/png", 406, "Accept", id="accept-image"),
    pytest.param("text/csv", CSV_ROWS, "text/csv;q=0", 406, "Accept", id="accept-refuses-all"),
    pytest.param("text/csv", CSV_ROWS, "text/html, image/*", 406, "Accept", id="accept-html"),
    pytest.param("text/csv", b"1" * (7 * MiB), None, 413, "larger than 6 MiB", id="7-MiB"),
]


def assert_client_error(answer: requests.Response, status: int, fragment: str) -> None:
    assert answer.status_code == status, f"{answer.status_code}: {answer.text[:300]}"
    assert media_type(answer) == "text/plain"
    message = answer.text
    assert message.endswith("\n") and "\n" not in message[:-1], repr(message[:300])  # one line
    assert len(message) < 300, message
    assert fragment in message, message


@pytest.mark.parametrize(("content_type", "body", "accept", "status", "fragment"), BAD_INPUTS)
def test_bad_input_is_a_short_4xx(server: Serve, content_type: str | None, body: bytes | str,
                                  accept: str | None, status: int, fragment: str) -> None:
    assert_client_error(server.post(body, content_type, accept), status, fragment)


def test_a_chunked_body_over_the_limit_is_413(server: Serve) -> None:
    # No Content-Length: the limit must hold while the body streams in.
    chunks = (b"5.1,3.5,1.4,0.2\n" * (MiB // 16) for _ in range(7))
    answer = requests.post(f"{server.url}/invocations", data=chunks,
                           headers={"Content-Type": "text/csv"}, timeout=30)
    assert_client_error(answer, 413, "larger than 6 MiB")


def test_the_server_still_answers_after_every_bad_input(server: Serve) -> None:
    for case in BAD_INPUTS:
        content_type, body, accept, status, _ = case.values
        assert server.post(body, content_type, accept).status_code == status, case.id
    assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200
    answer = server.post(CSV_ROWS, "text/csv")
    assert (answer.status_code, predictions(answer)) == (200, LABELS)
    assert server.process.poll() is None
    assert "Traceback" not in server.log_text()


# ---- servers of their own -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_without_a_model_ping_is_503_and_serve_stays_up(tmp_path: Path, launch: Callable[..., Serve],
                                                        mode: str) -> None:
    serve = launch(make_tree(tmp_path, None), mode)
    serve.wait_until(lambda answer: b"cannot load the model" in answer.content)

    answer = requests.get(f"{serve.url}/ping", timeout=2)
    assert answer.status_code == 503
    assert answer.headers["X-Model-Load-Status"] == "failed"  # final: a client can stop waiting
    assert "No such file or directory" in answer.text
    assert media_type(answer) == "text/plain"
    invocation = serve.post(CSV_ROWS, "text/csv")
    assert invocation.status_code == 503
    assert invocation.headers["X-Model-Load-Status"] == "failed"
    time.sleep(1)  # no crash loop: the same process keeps answering the same way
    assert serve.process.poll() is None
    assert requests.get(f"{serve.url}/ping", timeout=2).status_code == 503
    assert serve.log_text().count("predictor: cannot load the model") == 1


def test_a_corrupt_model_file_makes_ping_503(tmp_path: Path, launch: Callable[..., Serve],
                                             trained_model: Path) -> None:
    root = make_tree(tmp_path, trained_model)
    model_file = root / "model" / "model.npz"
    model_file.write_bytes(model_file.read_bytes()[:500])
    serve = launch(root, "nginx" if HAS_NGINX else "gunicorn")
    serve.wait_until(lambda answer: b"cannot load the model" in answer.content)
    assert requests.get(f"{serve.url}/ping", timeout=2).status_code == 503
    assert serve.process.poll() is None


@pytest.mark.parametrize("mode", MODES)
def test_max_payload_setting_raises_the_body_limit(tmp_path: Path, launch: Callable[..., Serve],
                                                   trained_model: Path, mode: str) -> None:
    serve = launch(make_tree(tmp_path, trained_model), mode, SAGEMAKER_MAX_PAYLOAD_IN_MB="20")
    serve.wait_until(lambda answer: answer.status_code == 200)

    row = "5.1,3.5,1.4,0.2\n"
    count = 7 * MiB // len(row)
    answer = serve.post(row * count, "text/csv")
    assert answer.status_code == 200, answer.text[:300]
    assert answer.text.count("setosa") == count
    assert_client_error(serve.post(b"1" * (21 * MiB), "text/csv"), 413, "larger than 20 MiB")
    parameters = requests.get(f"{serve.url}/execution-parameters", timeout=5).json()
    assert parameters["MaxPayloadInMB"] == 20
    assert parameters["MaxConcurrentTransforms"] * parameters["MaxPayloadInMB"] <= 100


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_drains_the_request_in_flight(tmp_path: Path, launch: Callable[..., Serve],
                                              trained_model: Path, slow_program: Path,
                                              mode: str) -> None:
    started = tmp_path / "predict-started"
    serve = launch(make_tree(tmp_path, trained_model), mode, program_dir=slow_program,
                   SLOW_MODEL_STARTED=str(started))
    serve.wait_until(lambda answer: answer.status_code == 200)
    processes = every_process(serve, mode)

    answers: list[requests.Response | BaseException] = []

    def invoke() -> None:
        try:
            answers.append(serve.post(CSV_ROWS, "text/csv"))
        except BaseException as exc:  # reported by the assertion below
            answers.append(exc)

    request = threading.Thread(target=invoke)
    request.start()
    deadline = time.monotonic() + 10
    while not started.exists():  # the model is predicting: the request is in flight
        assert time.monotonic() < deadline, serve.log_text()
        time.sleep(0.02)
    serve.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    request.join(timeout=30)

    assert len(answers) == 1 and isinstance(answers[0], requests.Response), answers
    assert (answers[0].status_code, predictions(answers[0])) == (200, LABELS)
    assert serve.process.wait(timeout=30) == 0, serve.log_text()
    assert time.monotonic() - signalled < 30
    assert still_running(processes) == []


def gunicorn_master(serve: Serve) -> int:
    children = Path(f"/proc/{serve.process.pid}/task/{serve.process.pid}/children").read_text().split()
    for pid in map(int, children):
        if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError(f"no gunicorn child of serve: {children}")


def nginx_master(serve: Serve) -> int:
    children = Path(f"/proc/{serve.process.pid}/task/{serve.process.pid}/children").read_text().split()
    for pid in map(int, children):
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"nginx: master"):
            return pid
    raise AssertionError(f"no nginx child of serve: {children}")


@pytest.mark.parametrize(
    ("mode", "victim"),
    [
        pytest.param("nginx", gunicorn_master, marks=MODES[0].marks, id="nginx-gunicorn-killed"),
        pytest.param("gunicorn", gunicorn_master, id="gunicorn-killed"),
        pytest.param("nginx", nginx_master, marks=MODES[0].marks, id="nginx-killed"),
    ],
)
def test_a_dead_child_stops_serve_with_a_failure(tmp_path: Path, launch: Callable[..., Serve],
                                                 trained_model: Path, mode: str,
                                                 victim: Callable[[Serve], int]) -> None:
    serve = launch(make_tree(tmp_path, trained_model), mode)
    serve.wait_until(lambda answer: answer.status_code == 200)
    processes = every_process(serve, mode)

    os.kill(victim(serve), signal.SIGKILL)

    assert serve.process.wait(timeout=30) != 0
    assert "exited with status -9; stopping" in serve.log_text()
    # nothing of it is left: not the other child, nor workers orphaned by the killed one
    assert still_running(processes) == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", serve.port)) != 0  # nobody listens any more


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MODEL_SERVER_WORKERS", "abc", "serve: MODEL_SERVER_WORKERS must be a whole number, got 'abc'"),
        ("SAGEMAKER_BIND_TO_PORT", "70000",
         "serve: SAGEMAKER_BIND_TO_PORT must be between 1 and 65535, got 70000"),
        ("SAGEMAKER_USE_NGINX", "maybe", "serve: SAGEMAKER_USE_NGINX must be true or false, got 'maybe'"),
        ("SAGEMAKER_SAFE_PORT_RANGE", "9000",
         "serve: SAGEMAKER_SAFE_PORT_RANGE must be two ports as XXXX-YYYY, the first not above the"
         " second, got '9000'"),
        ("SAGEMAKER_SAFE_PORT_RANGE", "9100-9000",
         "serve: SAGEMAKER_SAFE_PORT_RANGE must be two ports as XXXX-YYYY, the first not above the"
         " second, got '9100-9000'"),
        ("SAGEMAKER_MULTI_MODEL", "perhaps",
         "serve: SAGEMAKER_MULTI_MODEL must be true or false, got 'perhaps'"),
    ],
)
def test_a_bad_setting_exits_2_with_a_clear_message(tmp_path: Path, name: str, value: str,
                                                    message: str) -> None:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(make_tree(tmp_path, None)), name: value}
    result = subprocess.run([sys.executable, str(PROGRAM_DIR / "serve")], env=env,
                            capture_output=True, text=True, timeout=30, start_new_session=True)
    assert result.returncode == 2
    assert result.stderr.strip() == message


@pytest.mark.skipif(not HAS_NGINX, reason="nginx is not installed")
def test_a_busy_port_makes_serve_fail_instead_of_hang(tmp_path: Path, launch: Callable[..., Serve],
                                                      trained_model: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        serve = launch(make_tree(tmp_path, trained_model), "nginx",
                       SAGEMAKER_BIND_TO_PORT=str(taken.getsockname()[1]))
        assert serve.process.wait(timeout=30) != 0
    assert "Address already in use" in serve.log_text()


# ---- loading the model: per worker, or once before the fork ----------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_model_whose_loading_starts_a_thread_works_by_default(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path, threaded_program: Path,
        mode: str) -> None:
    serve = launch(make_tree(tmp_path, trained_model), mode, program_dir=threaded_program)
    serve.wait_until(lambda answer: answer.status_code == 200)
    for _ in range(4):  # every worker has its own thread
        answer = serve.post(CSV_ROWS, "text/csv")
        assert (answer.status_code, predictions(answer)) == (200, LABELS), answer.text
    assert "model loaded by each worker (MODEL_SERVER_PRELOAD=false)" in serve.log_text()


FORK_SAFE_WARNING = "so it is not fork-safe"


@pytest.fixture(scope="module")
def threaded_fork_safe_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """threaded_model.py wrongly declaring ``FORK_SAFE = True``: its load starts a thread."""
    program = program_with(tmp_path_factory.mktemp("threaded-fork-safe"), THREADED_MODEL)
    with (program / "model.py").open("a", encoding="utf-8") as model:
        model.write("\nFORK_SAFE = True\n")
    return program


def assert_loaded_per_worker_after_one_warning(serve: Serve, reason: str) -> None:
    serve.wait_until(lambda answer: answer.status_code == 200)
    for _ in range(4):  # whichever worker answers, its model's thread is its own
        answer = serve.post(CSV_ROWS, "text/csv")
        assert (answer.status_code, predictions(answer)) == (200, LABELS), answer.text
    log = serve.log_text()
    warnings = [line for line in log.splitlines() if FORK_SAFE_WARNING in line]
    assert len(warnings) == 1, log
    assert reason in warnings[0] and "FORK_SAFE = False in model.py" in warnings[0], warnings[0]
    # once in the master (discarded), then once in each of the 2 workers
    deadline = time.monotonic() + 10
    while serve.log_text().count("predictor: model loaded from") < 3:
        assert time.monotonic() < deadline, serve.log_text()
        time.sleep(0.1)


@pytest.mark.parametrize("mode", MODES)
def test_a_threaded_model_declared_fork_safe_is_loaded_per_worker_with_a_warning(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path,
        threaded_fork_safe_program: Path, mode: str) -> None:
    # Preloaded and forked, the thread load() started lives in the gunicorn master only and
    # every prediction would wait for it: serve sees the new thread and loads per worker.
    serve = launch(make_tree(tmp_path, trained_model), mode, program_dir=threaded_fork_safe_program,
                   THREADED_MODEL_WAIT="3")
    assert_loaded_per_worker_after_one_warning(serve, "FORK_SAFE = True in model.py")


def test_forced_preloading_of_a_threaded_model_is_loaded_per_worker_with_a_warning(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path,
        threaded_program: Path) -> None:
    serve = launch(make_tree(tmp_path, trained_model), "nginx" if HAS_NGINX else "gunicorn",
                   program_dir=threaded_program, MODEL_SERVER_PRELOAD="true", THREADED_MODEL_WAIT="3")
    assert_loaded_per_worker_after_one_warning(serve, "MODEL_SERVER_PRELOAD=true")


def test_a_model_declaring_itself_fork_safe_is_loaded_once_unless_overridden(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path) -> None:
    mode = "nginx" if HAS_NGINX else "gunicorn"
    serve = launch(make_tree(tmp_path / "a", trained_model), mode)  # model.py: FORK_SAFE = True
    serve.wait_until(lambda answer: answer.status_code == 200)
    assert serve.log_text().count("predictor: model loaded from") == 1
    assert "MODEL_SERVER_PRELOAD=true" in serve.log_text()
    assert FORK_SAFE_WARNING not in serve.log_text()

    override = launch(make_tree(tmp_path / "b", trained_model), mode, MODEL_SERVER_PRELOAD="false")
    override.wait_until(lambda answer: answer.status_code == 200)
    deadline = time.monotonic() + 10
    while override.log_text().count("predictor: model loaded from") < 2:  # one per worker
        assert time.monotonic() < deadline, override.log_text()
        time.sleep(0.1)


@pytest.mark.parametrize(("source", "declared"), [
    ("FORK_SAFE = True\n", True),
    ("FORK_SAFE: bool = True\n", True),
    ("FORK_SAFE = True\nFORK_SAFE = False\n", False),  # Python keeps the last assignment
    ("FORK_SAFE = False\nFORK_SAFE = True\n", True),
    ("FORK_SAFE = True\nFORK_SAFE: bool = False\n", False),
    ("FORK_SAFE = 1\n", False),
    ("def f():\n    FORK_SAFE = True\n", False),
    ("FORK_SAFE = (\n", False),
    ("", False),
])
def test_declares_fork_safe_reads_the_value_python_would_keep(tmp_path: Path, source: str,
                                                               declared: bool) -> None:
    model = tmp_path / "model.py"
    model.write_text(source, encoding="utf-8")
    sys.path.insert(0, str(PROGRAM_DIR))
    try:
        import server
        assert server.declares_fork_safe(model) is declared
    finally:
        sys.path.remove(str(PROGRAM_DIR))
        for name in ("server", "settings"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("mode", MODES)
def test_ping_says_loading_until_a_slow_model_is_loaded(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path, slow_program: Path,
        mode: str) -> None:
    serve = launch(make_tree(tmp_path, trained_model), mode, program_dir=slow_program,
                   SLOW_MODEL_LOAD_SECONDS="4")
    serve.wait_until(lambda answer: answer.status_code == 503
                     and answer.headers.get("X-Model-Load-Status") == "loading")
    answer = requests.get(f"{serve.url}/ping", timeout=2)
    assert media_type(answer) == "text/plain" and answer.text.endswith("\n")
    # each worker loads its own copy: until all have, a ping may reach one still loading
    deadline = time.monotonic() + 60
    while (answer := requests.get(f"{serve.url}/ping", timeout=2)).status_code != 200:
        assert answer.status_code == 503, answer.text
        assert answer.headers.get("X-Model-Load-Status") == "loading", answer.headers
        assert time.monotonic() < deadline, serve.log_text()
        time.sleep(0.1)
    assert "X-Model-Load-Status" not in answer.headers


# ---- nginx's own errors -----------------------------------------------------------------------


@pytest.mark.skipif(not HAS_NGINX, reason="nginx is not installed")
def test_nginx_timeout_is_a_plain_text_504(tmp_path: Path, launch: Callable[..., Serve],
                                           trained_model: Path, slow_program: Path) -> None:
    serve = launch(make_tree(tmp_path, trained_model), "nginx", program_dir=slow_program,
                   MODEL_SERVER_TIMEOUT="2", SLOW_MODEL_SECONDS="4")
    serve.wait_until(lambda answer: answer.status_code == 200)
    assert_client_error(serve.post(CSV_ROWS, "text/csv"), 504, "did not answer within 2 s")


@pytest.fixture(scope="module")
def nginx_server(tmp_path_factory: pytest.TempPathFactory, trained_model: Path) -> Iterator[Serve]:
    """One healthy serve behind nginx for the tests of nginx's own answers."""
    if not HAS_NGINX:
        pytest.skip("nginx is not installed")
    base = tmp_path_factory.mktemp("serve-nginx-own")
    serve = start_serve(make_tree(base, trained_model), base / "serve.log", "nginx")
    try:
        serve.wait_until(lambda answer: answer.status_code == 200)
        yield serve
    finally:
        serve.stop()


@pytest.mark.parametrize(("request_bytes", "status", "line"), NGINX_ERRORS)
def test_each_error_nginx_makes_is_one_plain_text_line(nginx_server: Serve, request_bytes: bytes,
                                                       status: int, line: bytes) -> None:
    assert_plain_text_error(nginx_server.port, request_bytes, status, line)


@pytest.mark.skipif(not HAS_NGINX, reason="nginx is not installed")
def test_nginx_answers_a_plain_text_503_while_gunicorn_is_not_up(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path, slow_program: Path) -> None:
    # Preloading: gunicorn creates its socket only once the model is loaded; until then
    # nginx cannot reach it (502), which it answers as 503, loading.
    serve = launch(make_tree(tmp_path, trained_model), "nginx", program_dir=slow_program,
                   MODEL_SERVER_PRELOAD="true", SLOW_MODEL_LOAD_SECONDS="4")
    serve.wait_until(lambda answer: answer.status_code == 503)
    answer = requests.get(f"{serve.url}/ping", timeout=2)
    assert (answer.status_code, media_type(answer)) == (503, "text/plain"), answer.text
    assert answer.text == "the model server is not ready\n"
    assert answer.headers.get("X-Model-Load-Status") == "loading"


# ---- nginx under many slow clients ------------------------------------------------------------

@pytest.mark.skipif(not HAS_NGINX, reason="nginx is not installed")
def test_ping_answers_while_many_slow_clients_hold_connections(nginx_server: Serve) -> None:
    assert_ping_survives_slow_clients(nginx_server.port)


# ---- batch transform: MultiRecord batches ------------------------------------------------------


def reference_predictions(model_dir: Path, rows: np.ndarray) -> list[str]:
    """What the container's own model module predicts for *rows*, in this process."""
    sys.path.insert(0, str(PROGRAM_DIR))
    try:
        import model as container_model
    finally:
        sys.path.remove(str(PROGRAM_DIR))
    return [str(label) for label in container_model.predict(container_model.load(model_dir), rows)]


def batch_rows(count: int) -> np.ndarray:
    """*count* varied rows, as a MultiRecord batch of an iris-like file would hold."""
    generator = np.random.default_rng(7)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    return np.round(generator.uniform(low, high, size=(count, 4)), 1)


@pytest.fixture(scope="module")
def batch_server(tmp_path_factory: pytest.TempPathFactory, trained_model: Path) -> Iterator[Serve]:
    """A serve started with the variables SageMaker sets for a batch transform job."""
    base = tmp_path_factory.mktemp("batch")
    serve = start_serve(make_tree(base, trained_model), base / "serve.log",
                        "nginx" if HAS_NGINX else "gunicorn", SAGEMAKER_BATCH="true",
                        SAGEMAKER_MAX_PAYLOAD_IN_MB="10", SAGEMAKER_BATCH_STRATEGY="MultiRecord")
    try:
        serve.wait_until(lambda answer: answer.status_code == 200)
        yield serve
    finally:
        serve.stop()


def test_execution_parameters_follow_the_batch_job(batch_server: Serve) -> None:
    parameters = requests.get(f"{batch_server.url}/execution-parameters", timeout=5).json()
    assert parameters == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD",
                          "MaxPayloadInMB": 10}


@pytest.mark.parametrize(("settings", "expected"), [
    pytest.param({}, (2, "MULTI_RECORD", 6), id="defaults"),
    pytest.param({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "60"}, (1, "MULTI_RECORD", 60), id="budget"),
    pytest.param({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "8", "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD"},
                 (8, "SINGLE_RECORD", 6), id="set-by-the-job"),
    pytest.param({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "50", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "10"},
                 (10, "MULTI_RECORD", 10), id="job-value-capped-by-budget"),
])
def test_execution_parameters_stay_within_sagemaker_limits(settings: dict[str, str],
                                                           expected: tuple[int, str, int]) -> None:
    sys.path.insert(0, str(PROGRAM_DIR))
    try:
        from settings import Settings
    finally:
        sys.path.remove(str(PROGRAM_DIR))
    parameters = Settings.from_env({"MODEL_SERVER_WORKERS": "2", **settings}).execution_parameters()
    assert (parameters["MaxConcurrentTransforms"], parameters["BatchStrategy"],
            parameters["MaxPayloadInMB"]) == expected


def test_a_bad_batch_strategy_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(make_tree(tmp_path, None)),
           "SAGEMAKER_BATCH_STRATEGY": "ALL_AT_ONCE"}
    result = subprocess.run([sys.executable, str(PROGRAM_DIR / "serve")], env=env,
                            capture_output=True, text=True, timeout=30, start_new_session=True)
    assert result.returncode == 2
    assert result.stderr.strip() == ("serve: SAGEMAKER_BATCH_STRATEGY must be one of MULTI_RECORD,"
                                     " SINGLE_RECORD, got 'ALL_AT_ONCE'")


@pytest.mark.parametrize("accept", ["text/csv", "application/jsonlines"])
def test_a_multirecord_csv_batch_is_answered_line_by_line_in_order(
        batch_server: Serve, trained_model: Path, accept: str) -> None:
    rows = batch_rows(20_000)
    body = "\n".join(",".join(f"{value:g}" for value in row) for row in rows) + "\n"
    answer = batch_server.post(body, "text/csv", accept)
    assert answer.status_code == 200, answer.text[:300]
    assert predictions(answer) == reference_predictions(trained_model, rows)
    assert len(set(predictions(answer))) == 3  # the order matters: the answers differ


def test_a_multirecord_json_lines_batch_is_answered_in_order(batch_server: Serve,
                                                              trained_model: Path) -> None:
    rows = batch_rows(5_000)
    lines = [json.dumps({"features": row.tolist()}) if number % 2 else json.dumps(row.tolist())
             for number, row in enumerate(rows)]
    answer = batch_server.post("\n".join(lines), "application/jsonlines")
    assert answer.status_code == 200, answer.text[:300]
    assert media_type(answer) == "application/jsonlines"
    assert predictions(answer) == reference_predictions(trained_model, rows)


def test_concurrent_batches_each_get_their_own_answers(batch_server: Serve, trained_model: Path) -> None:
    batches = [batch_rows(3_000)[offset::4] for offset in range(4)]
    bodies = ["\n".join(",".join(f"{value:g}" for value in row) for row in rows) for rows in batches]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda body: batch_server.post(body, "text/csv"), bodies))
    for rows, answer in zip(batches, answers, strict=True):
        assert answer.status_code == 200
        assert predictions(answer) == reference_predictions(trained_model, rows)


# ---- hosting modes: one port, as an inference pipeline's container -----------------------------


def listening_ports_of(pids: set[int]) -> set[int]:
    """The TCP ports the processes *pids* listen on: their sockets' inodes in /proc/net/tcp{,6}."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_serve_listens_on_the_bind_to_port_and_nowhere_else(server: Serve) -> None:
    """nginx reaches gunicorn on a unix socket: no second TCP port, so none outside
    SAGEMAKER_SAFE_PORT_RANGE (with SAGEMAKER_USE_NGINX=false gunicorn holds the port itself)."""
    pids = {server.process.pid} | {pid for pid, _ in descendants(server.process.pid)}
    assert listening_ports_of(pids) == {server.port}


# ---- hosting modes: asynchronous inference's limits ------------------------------------------


@pytest.mark.skipif(not HAS_NGINX, reason="nginx is not installed")
def test_an_asynchronous_body_over_100_mib_passes_only_when_the_setting_allows_it(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path) -> None:
    """Asynchronous inference reads bodies of up to 1 GB: SAGEMAKER_MAX_PAYLOAD_IN_MB raises
    nginx's, gunicorn's and the app's limit together, past batch transform's 100 MiB."""
    rows = np.tile(np.asarray(ROWS), (110 * MiB // (2 * 4 * 8) + 1, 1))
    body = npy(rows)
    assert len(body) > 110 * MiB
    serve = launch(make_tree(tmp_path, trained_model), "nginx", SAGEMAKER_MAX_PAYLOAD_IN_MB="120",
                   MODEL_SERVER_TIMEOUT="300")
    serve.wait_until(lambda answer: answer.status_code == 200)
    answer = requests.post(f"{serve.url}/invocations", data=body, timeout=300,
                           headers={"Content-Type": "application/x-npy", "Accept": "text/csv"})
    assert answer.status_code == 200, answer.text[:300]
    assert answer.text.count("\n") == len(rows)
    assert answer.text[:len("setosa\nvirginica\n")] == "setosa\nvirginica\n"
    assert_client_error(serve.post(b"1" * (121 * MiB), "text/csv"), 413, "larger than 120 MiB")
    # batch transform never sees more than its own limit of 100 MB
    parameters = requests.get(f"{serve.url}/execution-parameters", timeout=5).json()
    assert (parameters["MaxPayloadInMB"], parameters["MaxConcurrentTransforms"]) == (100, 1)


@pytest.mark.skipif(not HAS_NGINX, reason="nginx is not installed")
def test_model_server_timeout_lets_a_long_asynchronous_request_finish(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path, slow_program: Path) -> None:
    """The same slow request nginx cuts at 2 s (test_nginx_timeout_is_a_plain_text_504) passes
    nginx and gunicorn when MODEL_SERVER_TIMEOUT allows it."""
    serve = launch(make_tree(tmp_path, trained_model), "nginx", program_dir=slow_program,
                   MODEL_SERVER_TIMEOUT="30", SLOW_MODEL_SECONDS="4")
    serve.wait_until(lambda answer: answer.status_code == 200)
    answer = serve.post(CSV_ROWS, "text/csv")
    assert (answer.status_code, answer.text) == (200, "setosa\nvirginica\n")


# ---- hosting modes: multi-model endpoints ------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_multi_model_api_answers_as_sagemaker_expects(tmp_path: Path, launch: Callable[..., Serve],
                                                      trained_model: Path, mode: str) -> None:
    root = models_root(tmp_path, trained_model, "a", "b")
    oversized_model(root)
    serve = launch(make_tree(tmp_path, None), mode, SAGEMAKER_MULTI_MODEL="true")
    serve.wait_until(lambda answer: answer.status_code == 200, timeout=30)
    assert_multi_model_api(serve.url, root, workers=2)
    assert "multi-model" in serve.log_text()


@pytest.mark.parametrize("mode", MODES)
def test_a_multi_model_that_cannot_load_is_a_500_and_not_listed(
        tmp_path: Path, launch: Callable[..., Serve], mode: str) -> None:
    broken = tmp_path / "models" / "broken" / "model"
    broken.mkdir(parents=True)
    (broken / "model.npz").write_bytes(b"not a model")
    serve = launch(make_tree(tmp_path, None), mode, SAGEMAKER_MULTI_MODEL="true")
    serve.wait_until(lambda answer: answer.status_code == 200, timeout=30)
    answer = load_model(serve.url, "broken", broken)
    assert answer.status_code == 500 and "cannot load the model from" in answer.text, answer.text
    assert requests.get(f"{serve.url}/models", timeout=5).json() == {"models": []}


def test_a_threaded_model_loads_per_worker_in_multi_model_mode(
        tmp_path: Path, launch: Callable[..., Serve], trained_model: Path,
        threaded_fork_safe_program: Path) -> None:
    """Nothing is loaded before the fork in multi-model mode, whatever FORK_SAFE says: a model
    whose loading starts threads serves from every worker, with no warning."""
    root = models_root(tmp_path, trained_model, "a")
    serve = launch(make_tree(tmp_path, None), "gunicorn", program_dir=threaded_fork_safe_program,
                   SAGEMAKER_MULTI_MODEL="true")
    serve.wait_until(lambda answer: answer.status_code == 200, timeout=30)
    assert load_model(serve.url, "a", root / "a" / "model").status_code == 200
    for _ in range(8):
        answer = invoke_model(serve.url, "a")
        assert (answer.status_code, answer.text) == (200, "setosa\nvirginica\n")
    assert "not fork-safe" not in serve.log_text()


def test_a_worker_stopped_while_it_boots_ends_at_once(tmp_path: Path, launch: Callable[..., Serve],
                                                      trained_model: Path) -> None:
    """SIGTERM as soon as gunicorn forks its workers (a gevent worker is still patching the
    standard library, before it has its own signal handlers): serve ends in seconds, not
    after the 25 s graceful timeout waiting for a worker that lost the signal."""
    serve = launch(make_tree(tmp_path, trained_model), "gunicorn", MODEL_SERVER_WORKERS="4",
                   MODEL_SERVER_WORKER_CLASS="gevent")
    deadline = time.monotonic() + 20
    while "Booting worker" not in serve.log.read_text(errors="replace"):
        assert time.monotonic() < deadline and serve.process.poll() is None, serve.log_text()
        time.sleep(0.005)
    serve.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    serve.process.wait(timeout=40)
    assert time.monotonic() - signalled < 10, serve.log_text()


def test_a_booting_worker_takes_the_default_action_for_stop_signals() -> None:
    """gunicorn's post_fork hook, in a process holding handlers as a forked worker inherits
    the master's: afterwards SIGTERM, SIGINT and SIGQUIT have their default actions."""
    script = "\n".join([
        "import signal, sys",
        f"sys.path.insert(0, {str(PROGRAM_DIR)!r})",
        "import gunicorn_hooks",
        "for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):",
        "    signal.signal(signum, lambda *_: None)",
        "gunicorn_hooks.post_fork(None, None)",
        "print([signal.getsignal(s) == signal.SIG_DFL",
        "       for s in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)])",
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.strip() == "[True, True, True]", done.stderr
