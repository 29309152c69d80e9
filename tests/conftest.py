"""Shared fixtures: an isolated environment per test, Docker when an engine answers."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byoc import local, scaffold
from byoc.backends.base import Backend
from byoc.project import Project
from helpers import (
    BASE_IMAGE_ENV,
    FIXTURES,
    PROBE_REPOSITORY,
    REPO,
    REQUIRE_DOCKER_ENV,
    built_image,
    copy_probe,
    free_port,
)

# A test run started in the background of a non-interactive shell (`make check &` in a script)
# inherits SIGINT ignored, and every byoc a test starts would inherit that too, so the tests
# that press Ctrl-C (SIGINT) would wait in vain. A handler here is not inherited across exec:
# the children get the default action back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def shared_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One cache of the process backend's environments, and of uv's downloads, for the
    session (each test has its own HOME), so each environment is built about once."""
    with pytest.MonkeyPatch.context() as patch:
        for name, folder in (("BYOC_CACHE_DIR", "byoc-cache"), ("UV_CACHE_DIR", "uv-cache")):
            if not os.environ.get(name):
                patch.setenv(name, str(tmp_path_factory.mktemp(folder)))
        yield


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real HOME, AWS or Docker config."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / "docker"))


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def matplotlib_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mplconfig")


@pytest.fixture
def shared_matplotlib_cache(matplotlib_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One matplotlib font cache for the session's plots (each test has its own HOME)."""
    monkeypatch.setenv("MPLCONFIGDIR", str(matplotlib_cache))


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of a live engine; skips without one unless BYOC_REQUIRE_DOCKER=1."""
    from byoc._docker import docker_client as connect
    from byoc.errors import DockerUnavailableError

    try:
        client = connect(os.environ)
    except DockerUnavailableError as exc:
        if os.environ.get(REQUIRE_DOCKER_ENV) == "1":
            pytest.fail(f"{REQUIRE_DOCKER_ENV}=1 but no Docker engine answers: {exc.detail}")
        pytest.skip(f"no Docker engine answers ({exc.detail.splitlines()[0] if exc.detail else ''})")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    import docker.errors

    wanted = os.environ.get(BASE_IMAGE_ENV)
    candidates = [wanted] if wanted else ["python:3.11-slim-bookworm", "byoc-test-base:bookworm"]
    for name in candidates:
        try:
            docker_client.images.get(name)
            return name
        except docker.errors.ImageNotFound:
            continue
    pytest.fail(f"no base image among {candidates}: run .ci/run or set {BASE_IMAGE_ENV}")


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default template rendered once for the session (do not modify it)."""
    return scaffold.new_project("iris-classifier", output_dir=tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session")
def default_image(docker_client: Any, base_image: str, default_project: Path) -> Iterator[str]:
    """The default project's image, built once per session and removed afterwards."""
    tag = f"byoc-test-iris:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, default_project, tag, base_image):
        yield tag


@pytest.fixture(scope="session")
def probe_image(docker_client: Any, base_image: str) -> Iterator[str]:
    """tests/fixtures/probe built as the image its copies name (:func:`helpers.copy_probe`)."""
    tag = f"{PROBE_REPOSITORY}:latest"
    with built_image(docker_client, FIXTURES / "probe", tag, base_image):
        yield tag


@pytest.fixture(scope="session")
def ioprobe_image(docker_client: Any, base_image: str) -> Iterator[str]:
    """tests/fixtures/ioprobe: reports how each input channel reached it; its program is in /opt/ml/code."""
    tag = f"byoc-test-ioprobe:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, FIXTURES / "ioprobe", tag, base_image):
        yield tag


@pytest.fixture
def probe(tmp_path: Path) -> Project:
    """A private copy of the probe project (naming this session's probe image)."""
    return Project.load(copy_probe(tmp_path / "probe"))


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest, probe: Project) -> Backend:
    """Each backend in turn, on the probe project (Docker with this session's probe image)."""
    if request.param == "docker":
        request.getfixturevalue("probe_image")
    return local.choose_backend(request.param, probe, None)


@pytest.fixture
def opt_ml(tmp_path: Path) -> Path:
    """A fresh copy of local_test/test_dir, laid out as SageMaker mounts it."""
    root = tmp_path / "opt_ml"
    shutil.copytree(REPO / "local_test" / "test_dir", root)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    return root
