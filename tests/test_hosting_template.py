"""Each hosting mode of ``byoc local serve`` with the default template's own image (and, for
multi-model, the template rendered with ``multi_model=yes``): the platform's side byoc plays
and the container side the template generates meet."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byoc import invoke, local, scaffold
from byoc.backends.docker import DockerBackend
from byoc.local.hosting import asynchronous, multimodel, pipeline, serverless
from byoc.project import Project
from helpers import built_image, free_port, train_job


@pytest.fixture(scope="module")
def trained(default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of the default project, trained once as processes (the project is left alone)."""
    project = Project.load(default_project)
    result = train_job(backend=local.choose_backend("process", project, None), project=project,
                       output_dir=tmp_path_factory.mktemp("jobs"))
    return result.model_archive


@pytest.fixture(scope="module")
def payload(default_project: Path) -> bytes:
    return (default_project / "local_test" / "payload.csv").read_bytes()


def _predictions(body: bytes) -> list[str]:
    return [line for line in body.decode().splitlines() if line.strip()]


def test_the_template_serves_serverless_non_root_on_a_read_only_root(
        default_image: str, trained: Path, payload: bytes) -> None:
    with serverless.serve(backend=DockerBackend(default_image), model=trained, memory_mb=2048,
                          port=free_port()) as served:
        answer = invoke.predict(served.url, payload, "text/csv")
    assert len(_predictions(answer.body)) == len(_predictions(payload))


def test_the_template_answers_on_its_bind_to_port_in_a_direct_pipeline(
        default_image: str, trained: Path, payload: bytes) -> None:
    with pipeline.serve(backend=DockerBackend(default_image), images=[default_image] * 2,
                        direct=True, model=trained, port=free_port()) as served:
        hosts = [host for host, _ in served.state]
        answers = [invoke.predict(served.url, payload, "text/csv", target_container=host).body
                   for host in hosts]
    assert answers[0] == answers[1] and len(_predictions(answers[0])) == len(_predictions(payload))


def test_the_template_takes_an_async_body_over_the_real_time_limit(
        default_image: str, trained: Path, payload: bytes, tmp_path: Path) -> None:
    rows = _predictions(payload)
    big = tmp_path / "big.csv"
    repeat = 8 * 1024 * 1024 // len(payload) + 1  # over 6 MB: only the asynchronous mode takes it
    block = b"\n".join(row.encode() for row in rows) + b"\n"
    big.write_bytes(block * (repeat + 1))
    with asynchronous.serve(backend=DockerBackend(default_image), model=trained, port=free_port(),
                            output=tmp_path / "out") as served:
        queued = invoke.predict_async(served.url, big, "text/csv")
        answer = Path(queued.output_location)
        failure = Path(queued.failure_location)
        deadline = time.monotonic() + 120
        while not (answer.exists() or failure.exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert answer.exists(), failure.read_text() if failure.exists() else "no answer"
    assert len(_predictions(answer.read_bytes())) == len(rows) * (repeat + 1)


@pytest.fixture(scope="module")
def multi_model_image(docker_client: Any, base_image: str,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = scaffold.new_project("iris-mme", output_dir=tmp_path_factory.mktemp("mme"),
                                extra_context={"multi_model": "yes"})
    with built_image(docker_client, root, f"t-hl-mme:{uuid.uuid4().hex[:8]}", base_image) as tag:
        yield tag


def test_the_template_rendered_multi_model_serves_each_archive(
        multi_model_image: str, trained: Path, payload: bytes, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    for name in ("a.tar.gz", "b.tar.gz"):
        (prefix / name).write_bytes(trained.read_bytes())
    with multimodel.serve(backend=DockerBackend(multi_model_image), models=prefix,
                          port=free_port()) as served:
        answers = [invoke.predict(served.url, payload, "text/csv", target_model=name).body
                   for name in ("a.tar.gz", "b.tar.gz")]
        assert served.state.loads == 2
    assert answers[0] == answers[1] and len(_predictions(answers[0])) == len(_predictions(payload))
