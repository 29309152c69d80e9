"""``evaluate``: its figures against scikit-learn's own metrics, its output files, its failures.

scikit-learn is a test requirement only (requirements.txt): the image computes the
figures with numpy alone (evaluation.py).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as sk

import evaluation
import model
from conftest import ROOT, run_program, run_train

TEST_SET = ROOT / "local_test" / "test"
PNG = b"\x89PNG\r\n\x1a\n"
CLASSES = ["ant", "bee", "cat"]


def fixed_classification(rows: int = 200, classes: int = 3, seed: int = 7):
    """Labels, noisy predictions and probabilities (ties included) drawn from a fixed seed."""
    rng = np.random.default_rng(seed)
    names = np.asarray(CLASSES[:classes])
    truth = names[rng.integers(0, classes, rows)]
    scores = rng.random((rows, classes)).round(1)  # rounded: many tied scores
    scores[np.arange(rows), np.searchsorted(names, truth)] += rng.random(rows)
    probabilities = scores / scores.sum(axis=1, keepdims=True)
    predicted = names[probabilities.argmax(axis=1)]
    return truth, predicted, probabilities


def figure(report, name):
    return report[name]["value"]


def test_multiclass_figures_match_scikit_learn() -> None:
    truth, predicted, probabilities = fixed_classification()
    report = evaluation.classification_report(truth, predicted, CLASSES, probabilities)
    found = report["multiclass_classification_metrics"]
    assert figure(found, "accuracy") == pytest.approx(sk.accuracy_score(truth, predicted))
    for name in ("precision", "recall", "f1"):
        scorer = getattr(sk, f"{name}_score")
        assert figure(found, f"weighted_{name}") == pytest.approx(
            scorer(truth, predicted, average="weighted"))
        each = scorer(truth, predicted, average=None, labels=CLASSES)
        assert [figure(found["per_class"][label], name) for label in CLASSES] == pytest.approx(each)
    matrix = sk.confusion_matrix(truth, predicted, labels=CLASSES)
    assert [[found["confusion_matrix"][a][p] for p in CLASSES] for a in CLASSES] == matrix.tolist()
    assert figure(found, "auc") == pytest.approx(
        sk.roc_auc_score(truth, probabilities, multi_class="ovr", labels=CLASSES))
    assert figure(found, "weighted_auc") == pytest.approx(
        sk.roc_auc_score(truth, probabilities, multi_class="ovr", labels=CLASSES, average="weighted"))
    for index, label in enumerate(CLASSES):
        assert figure(found["per_class"][label], "auc") == pytest.approx(
            sk.roc_auc_score(truth == label, probabilities[:, index]))


def test_binary_figures_match_scikit_learn() -> None:
    truth, predicted, probabilities = fixed_classification(classes=2, seed=3)
    found = evaluation.classification_report(truth, predicted, CLASSES[:2], probabilities)[
        "binary_classification_metrics"]
    positive = truth == "bee"
    assert found["positive_label"] == "bee"
    assert figure(found, "precision") == pytest.approx(sk.precision_score(truth, predicted, pos_label="bee"))
    assert figure(found, "recall") == pytest.approx(sk.recall_score(truth, predicted, pos_label="bee"))
    assert figure(found, "f1") == pytest.approx(sk.f1_score(truth, predicted, pos_label="bee"))
    assert figure(found, "auc") == pytest.approx(sk.roc_auc_score(positive, probabilities[:, 1]))
    fpr, tpr, _ = sk.roc_curve(positive, probabilities[:, 1], drop_intermediate=False)
    curve = found["receiver_operating_characteristic_curve"]
    assert curve["false_positive_rates"] == pytest.approx(fpr.tolist())
    assert curve["true_positive_rates"] == pytest.approx(tpr.tolist())
    (tn, fp), (fn, tp) = sk.confusion_matrix(truth, predicted, labels=CLASSES[:2])
    assert figure(found, "false_positive_rate") == pytest.approx(fp / (fp + tn))
    assert figure(found, "true_negative_rate") == pytest.approx(tn / (fp + tn))


def test_a_class_the_model_never_predicts_scores_zero_as_scikit_learn_does() -> None:
    truth = np.asarray(["ant", "bee", "cat", "cat"])
    predicted = np.asarray(["ant", "ant", "cat", "cat"])
    found = evaluation.classification_report(truth, predicted, CLASSES, None)[
        "multiclass_classification_metrics"]
    assert figure(found["per_class"]["bee"], "precision") == 0.0
    assert figure(found, "weighted_precision") == pytest.approx(
        sk.precision_score(truth, predicted, average="weighted", zero_division=0))
    assert "auc" not in found  # no probabilities, no ROC


def test_regression_figures_match_scikit_learn() -> None:
    rng = np.random.default_rng(11)
    truth = rng.normal(5, 2, 120)
    predicted = truth + rng.normal(0, 0.7, 120)
    found = evaluation.regression_report(truth, predicted)["regression_metrics"]
    assert figure(found, "mse") == pytest.approx(sk.mean_squared_error(truth, predicted))
    assert figure(found, "rmse") == pytest.approx(np.sqrt(sk.mean_squared_error(truth, predicted)))
    assert figure(found, "mae") == pytest.approx(sk.mean_absolute_error(truth, predicted))
    assert figure(found, "r2") == pytest.approx(sk.r2_score(truth, predicted))


@pytest.fixture
def evaluation_root(trained: Path) -> Path:
    """An /opt/ml tree for a processing job: the trained model's archive and the test set."""
    archive = trained / "processing" / "model" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((trained / "model").iterdir()):
            tar.add(path, arcname=path.name)
    shutil.copytree(TEST_SET, trained / "processing" / "test")
    return trained


def test_evaluate_scores_the_trained_model_on_the_held_out_test_set(evaluation_root: Path) -> None:
    result = run_program("evaluate", evaluation_root)
    assert result.returncode == 0, result.stderr
    out = evaluation_root / "processing" / "evaluation"
    report = json.loads((out / "evaluation.json").read_text())
    found = report["multiclass_classification_metrics"]

    fitted = model.load(evaluation_root / "model")
    rows = np.loadtxt(TEST_SET / "iris.csv", delimiter=",", dtype=str)
    truth, features = rows[:, 0], rows[:, 1:].astype(np.float64)
    predicted = model.predict(fitted, features)
    labels = model.classes(fitted)
    assert figure(found, "accuracy") == pytest.approx(sk.accuracy_score(truth, predicted))
    assert figure(found, "accuracy") > 0.8
    assert figure(found, "weighted_f1") == pytest.approx(sk.f1_score(truth, predicted, average="weighted"))
    assert figure(found, "auc") == pytest.approx(sk.roc_auc_score(
        truth, model.probabilities(fitted, features), multi_class="ovr", labels=labels))
    assert sorted(found["confusion_matrix"]) == labels
    assert sum(sum(row.values()) for row in found["confusion_matrix"].values()) == len(truth)
    for name in ("confusion_matrix.png", "roc_curve.png"):
        assert (out / name).read_bytes().startswith(PNG)
    message = (evaluation_root / "output" / "message").read_text()
    assert message.startswith(f"Evaluated {len(truth)} rows (multiclass_classification_metrics): accuracy=")
    assert not (evaluation_root / "output" / "failure").exists()


def failed(root: Path) -> str:
    result = run_program("evaluate", root)
    assert result.returncode == 1, result.stdout
    assert not (root / "processing" / "evaluation" / "evaluation.json").exists()
    reason = (root / "output" / "failure").read_text().splitlines()[0]
    assert "Traceback" not in result.stderr, result.stderr
    # a processing job's ExitMessage: where SageMaker Processing shows why it failed
    assert (root / "output" / "message").read_text() == reason + "\n"
    return reason


def test_no_model_archive_fails_with_the_reason(evaluation_root: Path) -> None:
    (evaluation_root / "processing" / "model" / "model.tar.gz").unlink()
    assert failed(evaluation_root).startswith("no model archive at ")


def test_an_empty_test_set_fails_with_the_reason(evaluation_root: Path) -> None:
    (evaluation_root / "processing" / "test" / "iris.csv").write_text("")
    assert "has no data rows" in failed(evaluation_root)


def test_a_missing_test_set_fails_with_the_reason(evaluation_root: Path) -> None:
    shutil.rmtree(evaluation_root / "processing" / "test")
    assert "channel 'test' has no data" in failed(evaluation_root)


def test_a_label_the_model_never_saw_fails_with_the_reason(evaluation_root: Path) -> None:
    test = evaluation_root / "processing" / "test" / "iris.csv"
    test.write_text(test.read_text() + "unicorn,5.0,3.0,1.5,0.2\n")
    assert failed(evaluation_root) == ("test labels ['unicorn'] are not among the model's classes"
                                       " ['setosa', 'versicolor', 'virginica']: the model never saw them")


@pytest.mark.parametrize("name", ["../outside", "/etc/evil"])
def test_an_archive_reaching_outside_is_refused(evaluation_root: Path, name: str) -> None:
    archive = evaluation_root / "processing" / "model" / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo(name)
        member.size = 2
        tar.addfile(member, io.BytesIO(b"hi"))
    assert "an absolute or '..' path" in failed(evaluation_root)


def test_an_archive_with_a_link_is_refused(evaluation_root: Path) -> None:
    archive = evaluation_root / "processing" / "model" / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("model-link")
        member.type = tarfile.SYMTYPE
        member.linkname = "/etc/passwd"
        tar.addfile(member)
    assert "only plain files and folders are unpacked" in failed(evaluation_root)


def test_a_damaged_archive_fails_with_the_reason(evaluation_root: Path) -> None:
    (evaluation_root / "processing" / "model" / "model.tar.gz").write_bytes(b"not a tar")
    assert "is not a readable tar.gz archive" in failed(evaluation_root)
