"""Turning the default project into another model touches model.py, the data reader and requirements.

A fresh project is rendered, its model swapped for scikit-learn's histogram
gradient-boosting regressor (which takes missing values and uses OpenMP, so it
is not fork-safe), its reader told about a header row, and its requirements
rewritten. Nothing else is edited; ``train``, ``serve`` and ``evaluate`` run as processes.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_container_serve import HAS_NGINX, Serve, start_serve

from byoc import scaffold

REGRESSOR = '''"""A scikit-learn gradient-boosting regressor on numeric CSV features."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from dataset import Table
from hyperparameters import Float, Int, Spec
from job import Job

HYPERPARAMETERS: dict[str, Spec] = {
    "max_iter": Int(default=100, min=1, max=10000),
    "learning_rate": Float(default=0.1, min=0.0001, max=1.0),
}
ACCEPTS_MISSING = True  # NaN goes down the branch training learnt for it

MODEL_FILE = "regressor.pkl"


def fit(training: Table, validation: Table | None, job: Job):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(**job.params, random_state=0).fit(
        training.features, training.labels.astype(np.float64))


def save(model, model_dir: Path) -> None:
    (model_dir / MODEL_FILE).write_bytes(pickle.dumps(model))


def load(model_dir: Path):
    return pickle.loads((model_dir / MODEL_FILE).read_bytes())


def predict(model, features: np.ndarray) -> np.ndarray:
    return model.predict(features)


def metrics(model, data: Table) -> dict[str, float]:
    error = predict(model, data.features) - data.labels.astype(np.float64)
    return {"rmse": float(np.sqrt(np.mean(error ** 2)))}


def n_features(model) -> int:
    return int(model.n_features_in_)
'''

REQUIREMENTS = "flask==3.1.3\ngunicorn==27.0.1\ngevent==26.9.0\nnumpy==2.4.6\nscikit-learn==1.9.1\n"


def target(x1: float, x2: float, x3: float) -> float:
    return 3.0 * x1 - 2.0 * x2 + (5.0 if x3 > 0.5 else 0.0)


def write_data(path: Path, rows: int, seed: int = 1) -> None:
    generator = random.Random(seed)
    lines = ["price,size,age,garden"]  # the header row
    for _ in range(rows):
        x1, x2, x3 = generator.uniform(0, 10), generator.uniform(0, 5), generator.random()
        lines.append(f"{target(x1, x2, x3):.4f},{x1:.4f},{x2:.4f},{x3:.4f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def regressor_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = scaffold.new_project("house-prices", output_dir=tmp_path_factory.mktemp("swap"))
    program = project / "container" / "house_prices"
    (program / "model.py").write_text(REGRESSOR, encoding="utf-8")
    reader = (program / "dataset.py").read_text(encoding="utf-8")
    assert "HEADER_ROWS = 0\n" in reader
    (program / "dataset.py").write_text(reader.replace("HEADER_ROWS = 0\n", "HEADER_ROWS = 1\n"))
    (project / "container" / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    channel = project / "local_test" / "test_dir" / "input" / "data" / "training"
    shutil.rmtree(channel)
    channel.mkdir()
    write_data(channel / "houses.csv", 2000)
    return project


@pytest.fixture(scope="module")
def trained_root(regressor_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's local_test tree after one ``train`` run."""
    root = tmp_path_factory.mktemp("swap-job") / "opt_ml"
    shutil.copytree(regressor_project / "local_test" / "test_dir", root)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text('{"max_iter": "200"}')
    result = subprocess.run([sys.executable, str(regressor_project / "container" / "house_prices" / "train")],
                            env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)},
                            capture_output=True, text=True, timeout=300)
    (root / "train.log").write_text(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return root


def test_the_swapped_model_trains_with_its_own_metric(trained_root: Path) -> None:
    result = (trained_root / "train.log").read_text()
    assert result.startswith("exit 0\n"), result
    assert "channel training: 2000 rows" in result  # the header row was skipped
    found = re.search(r"^training:rmse=([-+0-9.eE]+);$", result, re.MULTILINE)
    assert found and float(found.group(1)) < 0.5, result
    assert "accuracy" not in result
    assert sorted(path.name for path in (trained_root / "model").iterdir()) == ["regressor.pkl"]


def test_evaluate_scores_the_swapped_regressor_with_regression_metrics(
        regressor_project: Path, trained_root: Path, tmp_path: Path) -> None:
    """A model.py without ``classes`` that predicts numbers is a regressor to ``evaluate``; its
    figures are scikit-learn's, and a missing matplotlib only skips the plots."""
    from sklearn import metrics as sk

    root = Path(shutil.copytree(trained_root, tmp_path / "opt_ml"))
    (root / "processing" / "model").mkdir(parents=True)
    with tarfile.open(root / "processing" / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(root / "model" / "regressor.pkl", arcname="regressor.pkl")
    (root / "processing" / "test").mkdir()
    write_data(root / "processing" / "test" / "houses.csv", 200, seed=2)  # rows training never saw
    program = regressor_project / "container" / "house_prices"
    result = subprocess.run([sys.executable, str(program / "evaluate")],
                            env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = root / "processing" / "evaluation"
    found = json.loads((out / "evaluation.json").read_text())["regression_metrics"]
    rows = [[float(cell) for cell in line.split(",")]
            for line in (root / "processing" / "test" / "houses.csv").read_text().splitlines()[1:]]
    truth = [row[0] for row in rows]
    model = pickle.loads((root / "model" / "regressor.pkl").read_bytes())
    predicted = model.predict([row[1:] for row in rows])
    assert found["mse"]["value"] == pytest.approx(sk.mean_squared_error(truth, predicted))
    assert found["rmse"]["value"] == pytest.approx(sk.root_mean_squared_error(truth, predicted))
    assert found["mae"]["value"] == pytest.approx(sk.mean_absolute_error(truth, predicted))
    assert found["r2"]["value"] == pytest.approx(sk.r2_score(truth, predicted))
    assert found["r2"]["value"] > 0.9
    assert (out / "predicted_vs_actual.png").read_bytes().startswith(b"\x89PNG")
    assert "(regression_metrics): mse=" in (root / "output" / "message").read_text()

    # the swapped requirements have no matplotlib: where it is missing, the plots are skipped
    shutil.rmtree(out)
    bare = subprocess.run([sys.executable, "-c", "import sys, runpy; sys.modules['matplotlib'] = None;"
                           f" sys.path.insert(0, {str(program)!r}); sys.argv = ['evaluate'];"
                           f" runpy.run_path({str(program / 'evaluate')!r}, run_name='__main__')"],
                          env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)},
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode == 0, bare.stderr
    skipped = json.loads((out / "evaluation.json").read_text())["regression_metrics"]
    assert skipped["plots"].startswith("skipped: matplotlib is not installed")
    assert not list(out.glob("*.png"))


@pytest.fixture
def served(regressor_project: Path, trained_root: Path, tmp_path: Path) -> Iterator[Serve]:
    assert (trained_root / "model" / "regressor.pkl").exists(), (trained_root / "train.log").read_text()
    serve = start_serve(trained_root, tmp_path / "serve.log", "nginx" if HAS_NGINX else "gunicorn",
                        regressor_project / "container" / "house_prices")
    try:
        serve.wait_until(lambda answer: answer.status_code == 200, timeout=60)
        yield serve
    finally:
        serve.stop()


def test_the_swapped_model_serves_predictions_and_missing_values(served: Serve) -> None:
    rows = [(2.0, 1.0, 0.9), (8.0, 4.0, 0.1), (5.0, 2.5, 0.7)]
    body = "".join(f'"{a}","{b}",{c}\n' for a, b, c in rows)  # RFC 4180 quoting too
    answer = served.post(body, "text/csv")
    assert answer.status_code == 200, answer.text
    values = [float(line) for line in answer.text.splitlines()]
    assert values == pytest.approx([target(*row) for row in rows], abs=1.0)
    assert "model loaded by each worker" in served.log_text()  # not fork-safe: OpenMP

    missing = served.post("2.0,,0.9\n8.0,NaN,0.1\n", "text/csv", "application/json")
    assert missing.status_code == 200, missing.text
    assert len(missing.json()["predictions"]) == 2
    assert requests.get(f"{served.url}/ping", timeout=2).status_code == 200


def test_only_the_plugin_files_differ_from_a_fresh_render(regressor_project: Path, tmp_path: Path) -> None:
    fresh = scaffold.new_project("house-prices", output_dir=tmp_path)
    changed = sorted(str(path.relative_to(fresh)) for path in fresh.rglob("*")
                     if path.is_file() and "__pycache__" not in path.parts
                     and (not (regressor_project / path.relative_to(fresh)).exists()
                          or (regressor_project / path.relative_to(fresh)).read_bytes() != path.read_bytes()))
    assert changed == ["container/house_prices/dataset.py", "container/house_prices/model.py",
                       "container/requirements.txt",
                       "local_test/test_dir/input/data/training/iris.csv"]


