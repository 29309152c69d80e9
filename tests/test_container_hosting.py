"""The default template's image in SageMaker's hosting modes, run the way each mode runs it.

The session's image (``default_image``) serves a model trained once by the project's own
``train`` (as a process): bound to the port an inference pipeline names, as a serverless
endpoint runs it (any user, read-only root file system, a writable /tmp only) with
asynchronous inference's larger bodies, and as a multi-model endpoint
(``SAGEMAKER_MULTI_MODEL=true`` and models under /opt/ml/models) in a memory-limited
container. Containers are named ``t-hc-...`` and removed afterwards.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
import requests
from hosting_checks import (
    CSV_ROWS,
    assert_multi_model_api,
    listening_ports,
    load_model,
    models_root,
    oversized_model,
)

from helpers import free_port

pytestmark = pytest.mark.docker

MiB = 1024 * 1024
BIND_PORT = 9123
BIND_TO_PORT_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
MULTI_MODEL_LABEL = "com.amazonaws.sagemaker.capabilities.multi-models"


@pytest.fixture(scope="module")
def model_dir(default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model written by the project's own ``train`` on its local_test data."""
    root = tmp_path_factory.mktemp("hosting-model") / "opt_ml"
    shutil.copytree(default_project / "local_test" / "test_dir", root)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    program = default_project / "container" / "iris_classifier"
    result = subprocess.run([sys.executable, str(program / "train")],
                            env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (root / "model").chmod(0o755)
    for file in (root / "model").iterdir():
        file.chmod(0o644)  # readable by any user the container runs as
    return root / "model"


def wait_for_ping(container: Any, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        assert container.status == "running", container.logs().decode(errors="replace")[-3000:]
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        assert time.monotonic() < deadline, container.logs().decode(errors="replace")[-3000:]
        time.sleep(0.25)


@pytest.fixture(scope="module")
def serverless(docker_client: Any, default_image: str, model_dir: Path) -> Iterator[tuple[Any, str]]:
    """serve as a serverless, pipeline-bound, asynchronous-sized endpoint: (container, URL)."""
    port = free_port()
    container = docker_client.containers.run(
        default_image, "serve", name=f"t-hc-serverless-{uuid.uuid4().hex[:8]}", detach=True,
        user="65534", read_only=True, tmpfs={"/tmp": ""},
        environment={"SAGEMAKER_BIND_TO_PORT": str(BIND_PORT), "SAGEMAKER_SAFE_PORT_RANGE": "9200-9299",
                     "MODEL_SERVER_WORKERS": "2", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "120",
                     "MODEL_SERVER_TIMEOUT": "300"},
        ports={f"{BIND_PORT}/tcp": ("127.0.0.1", port)},
        volumes={str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_ping(container, url)
        yield container, url
    finally:
        container.remove(force=True)


def test_the_image_accepts_bind_to_port_and_is_not_labelled_multi_model(docker_client: Any,
                                                                         default_image: str) -> None:
    labels = docker_client.images.get(default_image).labels
    assert labels.get(BIND_TO_PORT_LABEL) == "true"
    assert MULTI_MODEL_LABEL not in labels  # byoc new --set multi_model=yes adds it


def test_serve_listens_on_the_bind_to_port_only(serverless: tuple[Any, str]) -> None:
    container, _ = serverless
    tables = container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], user="65534")
    assert tables.exit_code == 0, tables.output
    # nginx reaches gunicorn on a unix socket: no port inside the safe range is even needed
    assert listening_ports(tables.output.decode()) == {BIND_PORT}


def test_serve_predicts_as_any_user_on_a_read_only_root(serverless: tuple[Any, str]) -> None:
    container, url = serverless
    answer = requests.post(f"{url}/invocations", data=CSV_ROWS, headers={"Content-Type": "text/csv"},
                           timeout=30)
    assert (answer.status_code, answer.text) == (200, "setosa\nvirginica\n")
    assert container.exec_run(["id", "-u"]).output.decode().strip() == "65534"
    refused = container.exec_run(["touch", "/opt/program/x"])
    assert refused.exit_code != 0 and b"Read-only file system" in refused.output


def test_a_large_asynchronous_body_passes_when_the_setting_allows_it(serverless: tuple[Any, str],
                                                                      model_dir: Path) -> None:
    """110 MiB: over batch transform's 100 MiB, under this container's 120; nginx holds it in a
    file under /tmp, the only place it may write."""
    _, url = serverless
    rows = np.tile(np.asarray([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]), (110 * MiB // 64 + 1, 1))
    buffer = io.BytesIO()
    np.save(buffer, rows, allow_pickle=False)
    answer = requests.post(f"{url}/invocations", data=buffer.getvalue(), timeout=300,
                           headers={"Content-Type": "application/x-npy", "Accept": "text/csv"})
    assert answer.status_code == 200, answer.text[:300]
    assert answer.text.count("\n") == len(rows)
    over = requests.post(f"{url}/invocations", data=b"1" * (121 * MiB), timeout=60,
                         headers={"Content-Type": "text/csv"})
    assert (over.status_code, over.text) == (413, "the body is larger than 120 MiB\n")


def test_the_real_time_limit_stays_6_mib_by_default(docker_client: Any, default_image: str,
                                                    model_dir: Path) -> None:
    port = free_port()
    container = docker_client.containers.run(
        default_image, "serve", name=f"t-hc-realtime-{uuid.uuid4().hex[:8]}", detach=True,
        environment={"MODEL_SERVER_WORKERS": "1"}, ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_ping(container, url)
        over = requests.post(f"{url}/invocations", data=b"1" * (7 * MiB), timeout=60,
                             headers={"Content-Type": "text/csv"})
        assert (over.status_code, over.text) == (413, "the body is larger than 6 MiB\n")
    finally:
        container.remove(force=True)


def test_multi_model_api_in_the_image(docker_client: Any, default_image: str, model_dir: Path,
                                      tmp_path: Path) -> None:
    """Models a and b, one larger than the memory the container has (1 TiB), and one (800 MiB,
    two workers' copies) that fits the machine's memory but not the container's 768 MiB limit."""
    root = models_root(tmp_path, model_dir, "a", "b")
    oversized_model(root)
    oversized_model(root, 800 * MiB, name="big")
    port = free_port()
    container = docker_client.containers.run(
        default_image, "serve", name=f"t-hc-mme-{uuid.uuid4().hex[:8]}", detach=True,
        mem_limit="768m", environment={"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_WORKERS": "2"},
        ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={str(root): {"bind": "/opt/ml/models", "mode": "ro"}})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_ping(container, url)
        models = PurePosixPath("/opt/ml/models")
        assert_multi_model_api(url, models, workers=2)
        big = load_model(url, "big", models / "big" / "model")
        assert big.status_code == 507, big.text
        assert "it needs 1600 MiB (2 worker(s))" in big.text
    finally:
        container.remove(force=True)
