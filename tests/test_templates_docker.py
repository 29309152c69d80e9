"""The XGBoost and PyTorch templates on Docker: build once, then train, serve, predict, validate,
run the project's own tests in the image, and train PyTorch on two hosts.

PyTorch's image needs the CPU wheel in the project's wheels/: PyPI's plain ``torch`` for
Linux is a CUDA build of several GB. Its path comes from ``BYOC_TORCH_WHEEL`` (default: the
2.13.0 CPU wheel in /opt/wheels); without it the PyTorch tests skip rather than download CUDA.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from byoc import scaffold
from helpers import build_project, evaluate_in_image, free_port

pytestmark = pytest.mark.docker

BYOC = [sys.executable, "-m", "byoc"]
TORCH_WHEEL_ENV = "BYOC_TORCH_WHEEL"
TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
TEMPLATES = ("xgboost", "pytorch")
LABELS = ["setosa", "setosa", "versicolor", "versicolor", "virginica", "virginica"]
#: What the 2-host model may differ from the 1-host one by, per weight (float32 sums in
#: another order): measured, 4e-7 at most after 100 epochs on the iris sample.
TOLERANCE = 1e-4


def torch_wheel() -> Path | None:
    path = Path(os.environ.get(TORCH_WHEEL_ENV) or TORCH_WHEEL)
    return path if path.is_file() else None


def run_byoc(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BYOC, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("template-projects")
    return {name: scaffold.new_project(f"tpl-{name}", output_dir=out, framework=name)
            for name in TEMPLATES}


@pytest.fixture(scope="module")
def images(docker_client: Any, base_image: str, projects: dict[str, Path]) -> Iterator[dict[str, str]]:
    """Each template's image, built on first use and removed at the end of the module."""
    built: dict[str, str] = {}

    def image(name: str) -> str:
        if name not in built:
            if name == "pytorch":
                wheel = torch_wheel()
                if wheel is None:
                    pytest.skip(f"no torch CPU wheel at {TORCH_WHEEL} (or ${TORCH_WHEEL_ENV}):"
                                " the build would download CUDA torch")
                shutil.copy(wheel, projects[name] / "wheels")
            tag = f"byoc-test-tpl-{name}:{uuid.uuid4().hex[:8]}"
            build_project(projects[name], tag, base_image)
            built[name] = tag
        return built[name]

    yield image  # type: ignore[misc]
    for tag in built.values():
        docker_client.images.remove(tag, force=True)


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_trains_serves_and_predicts_on_docker(template: str, projects: dict[str, Path],
                                                       images: Any, tmp_path: Path) -> None:
    project, image = projects[template], images(template)
    trained = run_byoc("local", "train", str(project), "--image", image, "--backend", "docker",
                       "--output-dir", str(tmp_path / "jobs"))
    assert trained.returncode == 0, trained.stderr
    archive = Path(trained.stdout.strip())
    with tarfile.open(archive) as tar:
        assert tar.getnames() == [{"xgboost": "xgboost-model.ubj", "pytorch": "model.pt"}[template]]
    per_round = {"xgboost": "algo-1 | epoch=20 training:mlogloss=",
                 "pytorch": "algo-1 | epoch=100 training:loss="}[template]
    assert per_round in trained.stderr

    port = free_port()
    server = subprocess.Popen([*BYOC, "local", "serve", str(project), "--image", image, "--backend",
                               "docker", "--model", str(archive), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        assert server.stdout is not None
        lines = []
        for line in server.stdout:
            lines.append(line)
            if "ready: POST" in line:
                break
        else:
            raise AssertionError("".join(lines))
        predicted = run_byoc("local", "predict", str(project / "local_test" / "payload.csv"),
                             "--url", f"http://127.0.0.1:{port}")
        assert predicted.returncode == 0, predicted.stderr
        assert predicted.stdout.split() == LABELS
    finally:
        os.killpg(server.pid, 2)
        server.communicate(timeout=60)
    assert server.returncode == 130  # Ctrl-C


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_serves_several_models_on_a_multi_model_endpoint(
        template: str, projects: dict[str, Path], images: Any, docker_client: Any,
        tmp_path: Path) -> None:
    """SAGEMAKER_MULTI_MODEL=true: model.py's load runs per model name, in each worker that
    serves it, after the fork (these libraries start threads when a model loads)."""
    project, image = projects[template], images(template)
    trained = run_byoc("local", "train", str(project), "--image", image, "--backend", "docker",
                       "--output-dir", str(tmp_path / "jobs"))
    assert trained.returncode == 0, trained.stderr
    for name in ("a", "b"):
        with tarfile.open(trained.stdout.strip()) as tar:
            tar.extractall(tmp_path / "models" / name / "model", filter="data")
    port = free_port()
    container = docker_client.containers.run(
        image, "serve", name=f"t-hc-mme-{template}-{uuid.uuid4().hex[:8]}", detach=True,
        environment={"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_WORKERS": "2"},
        ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={str(tmp_path / "models"): {"bind": "/opt/ml/models", "mode": "ro"}})
    url = f"http://127.0.0.1:{port}"
    payload = (project / "local_test" / "payload.csv").read_bytes()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, container.logs().decode(errors="replace")
            time.sleep(0.25)
        for name in ("a", "b"):
            loaded = requests.post(f"{url}/models", timeout=60,
                                   json={"model_name": name, "url": f"/opt/ml/models/{name}/model"})
            assert loaded.status_code == 200, loaded.text
        assert requests.post(f"{url}/models", json={"model_name": "a", "url": "/opt/ml/models/a/model"},
                             timeout=60).status_code == 409
        for _ in range(6):  # both workers, each loading its own copies
            for name in ("a", "b"):
                answer = requests.post(f"{url}/models/{name}/invoke", data=payload, timeout=60,
                                       headers={"Content-Type": "text/csv"})
                assert answer.status_code == 200, answer.text
                assert answer.text.split() == LABELS
        assert requests.delete(f"{url}/models/a", timeout=10).status_code == 200
        assert requests.post(f"{url}/models/a/invoke", data=payload, timeout=10,
                             headers={"Content-Type": "text/csv"}).status_code == 404
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_image_passes_validate(template: str, projects: dict[str, Path], images: Any,
                                        tmp_path: Path) -> None:
    image = images(template)
    report = tmp_path / "report.json"
    result = run_byoc("validate", image, "--json", str(report), cwd=projects[template], timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = json.loads(report.read_text())["checks"]
    assert not [check for check in checks if check["result"] == "fail"]


@pytest.mark.parametrize("template", ("sklearn", *TEMPLATES))
def test_evaluate_in_the_image_scores_the_held_out_test_set(template: str, projects: dict[str, Path],
                                                            images: Any, docker_client: Any,
                                                            default_project: Path,
                                                            request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:
    """The image's evaluate, as a processing job runs it, on a model the image trained
    (the default template's image is the session's default_image)."""
    if template == "sklearn":
        project, image = default_project, request.getfixturevalue("default_image")
    else:
        project, image = projects[template], images(template)
    report = evaluate_in_image(docker_client, image, project, tmp_path)
    found = report["multiclass_classification_metrics"]
    assert found["accuracy"]["value"] > 0.8 and found["auc"]["value"] > 0.9
    assert sorted(found["confusion_matrix"]) == ["setosa", "versicolor", "virginica"]
    assert sum(sum(row.values()) for row in found["confusion_matrix"].values()) == 30
    assert 0 < found["weighted_f1"]["value"] <= 1


@pytest.mark.parametrize("template", TEMPLATES)
def test_project_tests_pass_in_the_image(template: str, projects: dict[str, Path], images: Any,
                                         docker_client: Any, tmp_path: Path) -> None:
    """`make test`'s pytest run, inside the image (which has the template's libraries)."""
    image = images(template)
    copy = shutil.copytree(projects[template], tmp_path / "project", ignore=shutil.ignore_patterns("*.whl"))
    output = docker_client.containers.run(
        image, ["sh", "-c", "pip install -q pytest scikit-learn"  # evaluate's tests compare with it
                " && python -m pytest -q -p no:cacheprovider tests"],
        volumes={str(copy): {"bind": "/project", "mode": "rw"}}, working_dir="/project",
        network_mode="host", remove=True, stdout=True, stderr=True).decode()
    assert " passed" in output and "failed" not in output, output


def test_pytorch_on_two_hosts_gives_the_one_host_model(projects: dict[str, Path], images: Any,
                                                       docker_client: Any, tmp_path: Path) -> None:
    """algo-1 and algo-2 each get half the rows (ShardedByS3Key over two files of half the
    training rows each) and sum their gradients over gloo; the model equals a one-host run on
    all of them."""
    project, image = projects["pytorch"], images("pytorch")
    rows = (project / "local_test/test_dir/input/data/training/iris.csv").read_text().split()
    data = tmp_path / "training"
    data.mkdir()
    (data / "part-0.csv").write_text("\n".join(rows[0::2]) + "\n")
    (data / "part-1.csv").write_text("\n".join(rows[1::2]) + "\n")
    models = {}
    for count in (1, 2):
        trained = run_byoc("local", "train", str(project), "--image", image, "--backend", "docker",
                           "--channel", f"training={data}", "--instance-count", str(count),
                           "--distribution", "training=ShardedByS3Key", "--hyperparameter", "epochs=50",
                           "--output-dir", str(tmp_path / f"jobs-{count}"))
        assert trained.returncode == 0, trained.stderr
        models[count] = Path(trained.stdout.strip())
        if count == 2:
            assert f"algo-2 | algo-2: channel training: {len(rows[1::2])} rows" in trained.stderr
            assert "rank 1 of 2, master algo-1:7777, gloo" in trained.stderr
            assert "algo-2 | epoch=" not in trained.stderr  # metrics come from the first host
    for count, archive in models.items():
        with tarfile.open(archive) as tar:
            tar.extractall(tmp_path / f"model-{count}", filter="data")
    compare = ("import torch; a, b = (torch.load(f'/m/model-{n}/model.pt', weights_only=True)"
               " for n in (1, 2)); print(max((a['network'][k] - b['network'][k]).abs().max().item()"
               " for k in a['network']))")
    output = docker_client.containers.run(image, ["python", "-c", compare], remove=True,
                                          volumes={str(tmp_path): {"bind": "/m", "mode": "ro"}})
    difference = float(output.decode().strip())
    assert difference <= TOLERANCE, difference


def test_gpus_reach_docker_as_a_device_request(projects: dict[str, Path], images: Any,
                                               docker_client: Any) -> None:
    """--gpus all asks the engine for GPUs; an engine without a GPU runtime refuses, clearly."""
    image = images("xgboost")
    runtimes = docker_client.info().get("Runtimes", {})
    trained = run_byoc("local", "train", str(projects["xgboost"]), "--image", image, "--backend",
                       "docker", "--gpus", "all")
    if "nvidia" in runtimes:
        assert trained.returncode == 0, trained.stderr
        return
    assert trained.returncode == 1
    error = trained.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: Docker refused the job: ") and "--gpus needs an engine with a GPU" \
        " runtime" in error, error
    left = docker_client.containers.list(all=True, ignore_removed=True, filters={"label": "com.byoc.job"})
    assert not [c for c in left if c.image.tags and c.image.tags[0] == image]
