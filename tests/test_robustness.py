"""The generated serving stack under load, faults and bad input, on a real Docker engine.

Issue 5's robustness list. Load comes from byoc's own generator (wrk when
installed); nothing here asserts speed, only correctness under load.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from nginx_checks import assert_every_error_is_plain_text, assert_ping_survives_slow_clients

from byoc import images, local
from byoc.backends.docker import DockerBackend
from byoc.bench import load as _load
from byoc.bench import procstats as _procstats
from byoc.project import Project
from helpers import FIXTURES, free_port, train_job

pytestmark = pytest.mark.docker
ROW = b"5.1,3.5,1.4,0.2\n"
SLEEPY = b"999,3.5,1.4,0.2\n"
BUSY = b"998,3.5,1.4,0.2\n"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, default_project: Path) -> Path:
    """A model trained once, as processes, from the default project."""
    project = Project.load(default_project)
    result = train_job(backend=local.choose_backend("process", project, None), project=project,
                         output_dir=tmp_path_factory.mktemp("jobs"))
    return result.model_archive


@pytest.fixture(scope="module")
def faulty_image(default_image: str, docker_client: Any) -> Iterator[str]:
    tag = f"{default_image.split(':')[0]}-faulty:{default_image.split(':')[1]}"
    images.build(FIXTURES / "robustness", tag=tag, build_args={"IMAGE": default_image},
                 log=lambda line: None)
    yield tag
    docker_client.images.remove(tag, force=True)


class Served:
    def __init__(self, running: local.RunningServer):
        self.url = running.url
        self.server = running.server
        self.container: Any = running.server.container  # type: ignore[attr-defined]

    def pids(self) -> list[int]:
        return [int(row[1]) for row in self.container.top()["Processes"]]

    def gunicorn_workers(self) -> list[int]:
        rows = self.container.top()["Processes"]
        gunicorn = {int(row[1]): int(row[2]) for row in rows if "gunicorn" in row[-1]}
        return sorted(pid for pid, parent in gunicorn.items() if parent in gunicorn)

    def booted_workers(self, count: int = 2, timeout: float = 30) -> list[int]:
        """The workers once all *count* are up (/ping can answer before the last boots)."""
        deadline = time.monotonic() + timeout
        while len(workers := self.gunicorn_workers()) != count and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == count, workers
        return workers

    def post(self, body: bytes, content_type: str = "text/csv", timeout: float = 30,
             **headers: str) -> requests.Response:
        return requests.post(f"{self.url}/invocations", data=body, timeout=timeout,
                             headers={"Content-Type": content_type, **headers})

    def ping(self) -> requests.Response:
        return requests.get(f"{self.url}/ping", timeout=2)


@pytest.fixture
def serve(model: Path) -> Iterator[Any]:
    """Start an image with some env; everything is removed afterwards."""
    stack = []

    def start(image: str, **env: str) -> Served:
        context = local.serve(backend=DockerBackend(image), model=model, port=free_port(),
                              env={"MODEL_SERVER_WORKERS": "2", **env}, startup_timeout=120)
        stack.append(context)
        return Served(context.__enter__())

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def _payload(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "payload.csv"
    path.write_bytes(body)
    return path


def _load_for(served: Served, tmp_path: Path, seconds: int, concurrency: int,
              body: bytes = ROW) -> _load.LoadResult:
    spec = _load.LoadSpec(url=f"{served.url}/invocations", concurrency=concurrency,
                          duration=seconds, body_file=_payload(tmp_path, body),
                          content_type="text/csv", threads=2)
    return _load.run_load(spec, _load.pick_generator("auto"))


def test_sixty_seconds_at_concurrency_32_without_an_error_or_growth(
        serve: Any, default_image: str, tmp_path: Path) -> None:
    served = serve(default_image)
    warm = _load_for(served, tmp_path, 10, 32)
    before = _procstats.memory(served.pids())
    soak = _load_for(served, tmp_path, 50, 32)
    after = _procstats.memory(served.pids())
    for run in (warm, soak):
        assert run.requests > 0
        assert (run.non_2xx, run.socket_errors) == (0, 0), run
    assert after.rss_bytes <= before.rss_bytes * 1.10, (before, after)
    assert after.processes == before.processes


def test_ping_answers_while_every_worker_waits_on_a_slow_invocation(
        serve: Any, faulty_image: str) -> None:
    served = serve(faulty_image, FAULT_SECONDS="6")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        slow = [pool.submit(served.post, SLEEPY) for _ in range(8)]
        time.sleep(1.5)
        assert not any(future.done() for future in slow)
        for _ in range(3):
            assert served.ping().status_code == 200  # each within SageMaker's 2 s
            time.sleep(0.5)
        assert [future.result().status_code for future in slow] == [200] * 8


BAD_INPUTS = [
    (b"", "text/csv", 400),
    (b"1,2,,4\n", "text/csv", 400),
    (b"1,2,3\n", "text/csv", 400),
    (b"nan,1,2,3\n", "text/csv", 400),
    (b"inf,1,2,3\n", "text/csv", 400),
    (b"\xff\xfe\x00garbage", "text/csv", 400),
    (b"1" * (7 * 1024 * 1024), "text/csv", 413),
    (b"1,2,3,4", "text/plain", 415),
    (b'{"rows": 1}', "application/json", 400),
    (b"[[1, 2], [3]]", "application/json", 400),
    (b",".join([b"1"] * 10_000) + b"\n", "text/csv", 400),
]


def test_bad_input_under_load_is_a_4xx_and_breaks_nothing(serve: Any, default_image: str,
                                                          tmp_path: Path) -> None:
    served = serve(default_image)
    workers = served.booted_workers()
    result: list[_load.LoadResult] = []
    load = threading.Thread(target=lambda: result.append(_load_for(served, tmp_path, 8, 8)))
    load.start()
    try:
        for _ in range(3):
            for body, content_type, status in BAD_INPUTS:
                answer = served.post(body, content_type)
                assert answer.status_code == status, (body[:40], answer.status_code, answer.text)
                assert answer.text.strip() and len(answer.text) < 300
            unacceptable = served.post(ROW, "text/csv", Accept="image/png")
            assert unacceptable.status_code == 406
    finally:
        load.join()
    assert (result[0].non_2xx, result[0].socket_errors) == (0, 0)
    assert served.gunicorn_workers() == workers  # no worker died or was replaced
    assert served.post(ROW).text == "setosa\n"


def test_a_killed_worker_is_replaced_while_service_continues(serve: Any, default_image: str,
                                                             tmp_path: Path) -> None:
    served = serve(default_image)
    victim = served.booted_workers()[0]
    pings: list[int] = []
    stop = threading.Event()

    def keep_pinging() -> None:
        while not stop.is_set():
            pings.append(served.ping().status_code)
            time.sleep(0.2)

    pinger = threading.Thread(target=keep_pinging)
    pinger.start()
    result: list[_load.LoadResult] = []
    load = threading.Thread(target=lambda: result.append(_load_for(served, tmp_path, 10, 8)))
    load.start()
    time.sleep(3)
    os.kill(victim, signal.SIGKILL)
    load.join()
    stop.set()
    pinger.join()
    run = result[0]
    failed = run.non_2xx + run.socket_errors
    assert failed <= run.requests * 0.01, run
    assert set(pings) == {200}
    assert victim not in served.gunicorn_workers() and len(served.gunicorn_workers()) == 2


def test_sigterm_under_load_lets_in_flight_requests_finish(serve: Any, faulty_image: str,
                                                           tmp_path: Path) -> None:
    served = serve(faulty_image, FAULT_SECONDS="3")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        load = pool.submit(_load_for, served, tmp_path, 6, 4)
        slow = [pool.submit(served.post, SLEEPY) for _ in range(4)]
        time.sleep(1.5)
        started = time.monotonic()
        served.container.kill(signal="SIGTERM")
        status = served.container.wait(timeout=40)["StatusCode"]
        stopped_after = time.monotonic() - started
        assert [future.result().status_code for future in slow] == [200] * 4
        load.result()
    assert status == 0
    assert stopped_after < 30


def test_an_invocation_slower_than_the_timeout_gets_504_and_others_do_not(
        serve: Any, faulty_image: str) -> None:
    served = serve(faulty_image, MODEL_SERVER_TIMEOUT="2", FAULT_SECONDS="5")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = pool.submit(served.post, SLEEPY)
        time.sleep(0.3)
        fast = [pool.submit(served.post, ROW) for _ in range(20)]
        assert slow.result().status_code == 504
        assert [future.result().text for future in fast] == ["setosa\n"] * 20
    assert served.post(ROW).text == "setosa\n"


def test_a_worker_stuck_past_the_timeout_is_replaced(serve: Any, faulty_image: str) -> None:
    served = serve(faulty_image, MODEL_SERVER_TIMEOUT="2", FAULT_SECONDS="8")
    workers = served.booted_workers()
    assert served.post(BUSY).status_code == 504
    deadline = time.monotonic() + 20
    while served.gunicorn_workers() == workers and time.monotonic() < deadline:
        time.sleep(0.5)
    replaced = served.gunicorn_workers()
    assert len(set(workers) - set(replaced)) == 1 and len(replaced) == 2
    assert served.ping().status_code == 200
    assert served.post(ROW).text == "setosa\n"


# ---- in the image: a threaded model declared fork-safe; nginx's errors and slow clients --------

THREADED_MODEL = FIXTURES / "container" / "threaded_model.py"


@pytest.fixture
def threaded_fork_safe_serve(docker_client: Any, default_image: str, default_project: Path,
                             model: Path, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The default image serving threaded_model.py with ``FORK_SAFE = True`` appended."""
    program = default_project / "container" / "iris_classifier"
    threaded = tmp_path / "model.py"
    threaded.write_text(THREADED_MODEL.read_text() + "\nFORK_SAFE = True\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model) as archive:
        archive.extractall(model_dir, filter="data")
    port = free_port()
    container = docker_client.containers.run(
        default_image, "serve", detach=True, name=f"t-runtime-threaded-{port}",
        environment={"MODEL_SERVER_WORKERS": "2", "THREADED_MODEL_WAIT": "3"},
        ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"},
                 str(threaded): {"bind": "/opt/program/model.py", "mode": "ro"},
                 str(program / "model.py"): {"bind": "/opt/program/real_model.py", "mode": "ro"}})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError, requests.Timeout):
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, bytes(container.logs()).decode()
            time.sleep(0.25)
        yield container, url
    finally:
        container.remove(force=True)


def test_in_the_image_a_threaded_model_declared_fork_safe_answers_and_warns_once(
        threaded_fork_safe_serve: tuple[Any, str]) -> None:
    container, url = threaded_fork_safe_serve
    for _ in range(4):
        answer = requests.post(f"{url}/invocations", data=ROW, timeout=30,
                               headers={"Content-Type": "text/csv"})
        assert (answer.status_code, answer.text) == (200, "setosa\n")
    log = bytes(container.logs()).decode(errors="replace")
    warnings = [line for line in log.splitlines() if "so it is not fork-safe" in line]
    assert len(warnings) == 1 and "FORK_SAFE = True in model.py" in warnings[0], log[-3000:]


def test_in_the_image_nginx_errors_are_plain_text_and_slow_clients_leave_ping_up(
        threaded_fork_safe_serve: tuple[Any, str]) -> None:
    _, url = threaded_fork_safe_serve
    port = int(url.rsplit(":", 1)[1])
    assert_every_error_is_plain_text(port)
    assert_ping_survives_slow_clients(port)
