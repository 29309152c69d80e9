"""Runtime: you should not need to edit this. What ``evaluate`` does: a model evaluation processing job.

A SageMaker processing job runs ``evaluate`` (``ContainerEntrypoint=["evaluate"]``) with

- the training job's ``model.tar.gz`` at ``/opt/ml/processing/model/model.tar.gz``,
- a test set at ``/opt/ml/processing/test``, in the training channel's format,

unpacks the archive into a temporary folder (plain files and folders only), loads the model
with predictor.py's ``load_model`` (as ``serve`` does), reads the test set with
``dataset.read``, predicts, and writes ``/opt/ml/processing/evaluation/evaluation.json``
in the shape of SageMaker's model quality metrics (what a Pipelines ``PropertyFile`` reads)
with PNG plots beside it, and a one-line summary to ``/opt/ml/output/message``. Any failure
writes ``/opt/ml/output/failure`` and exits non-zero, as ``train`` does, and its reason to
``/opt/ml/output/message`` (the processing job's ExitMessage).

A classifier is one whose ``model.classes(model)`` gives its labels (or, without that
function, one whose ``predict`` gives text); its ROC curves and AUC need
``model.probabilities(model, features)`` (one column per class, in the order of
``classes``). A regressor's ``classes`` gives None (or its ``predict`` gives numbers).
The figures are computed with numpy alone, as scikit-learn's ``metrics`` module does
(the project's tests check them against it).
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from channels import Channel, DataError
from optml import FAILURE_REASON_LIMIT, OptMl

MODEL_ARCHIVE = "model.tar.gz"
TEST_CHANNEL = "test"
REPORT = "evaluation.json"
CONFUSION_PLOT = "confusion_matrix.png"
ROC_PLOT = "roc_curve.png"
REGRESSION_PLOT = "predicted_vs_actual.png"
#: The test set's ContentType, for a dataset.py that reads more than one format (e.g. text/libsvm).
CONTENT_TYPE_ENV = "TEST_CONTENT_TYPE"
EXIT_FAILED = 1


class EvaluationError(Exception):
    """A failure whose message is the whole story: no traceback needed."""


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run one evaluation under the /opt/ml root; return the exit status."""
    environ = os.environ if environ is None else environ
    paths = OptMl.from_env(environ)
    try:
        summary = run(paths, environ.get(CONTENT_TYPE_ENV) or None)
    except (EvaluationError, DataError) as exc:
        _fail(paths, str(exc), "")
        return EXIT_FAILED
    except Exception as exc:  # anything else (an import too) is a bug: keep the traceback
        _fail(paths, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return EXIT_FAILED
    print(summary, flush=True)
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.message_file.write_text(summary + "\n", encoding="utf-8")
    return 0


def run(paths: OptMl, content_type: str | None = None) -> str:
    """Evaluate the model archive on the test set; return the one-line summary."""
    import dataset  # the plug-in modules and their libraries: inside main's guard
    from predictor import load_model

    archive = paths.processing_dir / "model" / MODEL_ARCHIVE
    if not archive.is_file():
        raise EvaluationError(f"no model archive at {archive}: give the training job's"
                              f" {MODEL_ARCHIVE} as the processing input 'model'")
    test = Channel(name=TEST_CHANNEL, data_dir=paths.processing_dir, content_type=content_type)
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        unpack(archive, Path(scratch))
        loaded = load_model(Path(scratch))
        if loaded.error:
            raise EvaluationError(loaded.error)
        module, fitted = loaded.module, loaded.model
        data = dataset.read(test)
        print(f"channel {TEST_CHANNEL}: {len(data)} rows", flush=True)
        if loaded.n_features is not None and data.features.shape[1] != loaded.n_features:
            raise EvaluationError(f"the test set has {data.features.shape[1]} feature columns,"
                                  f" the model takes {loaded.n_features}")
        predicted = np.asarray(module.predict(fitted, data.features))
        declared = hasattr(module, "classes")
        classes = module.classes(fitted) if declared else _guess_classes(predicted, data.labels)
        probabilities = None
        if classes is not None and hasattr(module, "probabilities"):
            probabilities = np.asarray(module.probabilities(fitted, data.features), dtype=np.float64)
    out = paths.processing_dir / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    plots = can_plot()
    if classes is None:
        report = regression_report(_numbers(data.labels), predicted.astype(np.float64))
        if plots:
            plot_regression(_numbers(data.labels), predicted.astype(np.float64), out / REGRESSION_PLOT)
    else:
        classes = [str(label) for label in classes]
        truth = np.asarray([str(label) for label in data.labels.tolist()])
        unknown = sorted(set(truth.tolist()) - set(classes))
        if unknown and declared:
            raise EvaluationError(f"test labels {unknown[:5]} are not among the model's classes"
                                  f" {classes[:10]}: the model never saw them")
        guesses = np.asarray([str(label) for label in predicted.tolist()])
        report = classification_report(truth, guesses, classes, probabilities)
        if plots:
            plot_confusion_matrix(confusion_matrix(truth, guesses, classes), classes, out / CONFUSION_PLOT)
            if probabilities is not None:
                plot_roc_curves(truth, probabilities, classes, out / ROC_PLOT)
    if not plots:
        next(iter(report.values()))["plots"] = PLOTS_SKIPPED
    _write_json(out / REPORT, report)
    return summary(report, len(data))


def unpack(archive: Path, target: Path) -> None:
    """Unpack *archive* into *target*: plain files and folders only, none outside *target*.

    :raises EvaluationError: for a damaged archive, or a link, device or path outside.
    """
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise EvaluationError(f"{archive}: refusing the member {member.name!r}:"
                                          " an absolute or '..' path")
                if not (member.isfile() or member.isdir()):
                    raise EvaluationError(f"{archive}: refusing the member {member.name!r}:"
                                          " only plain files and folders are unpacked")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=members, filter="data")
            else:  # an older Python: the checks above are the filter
                tar.extractall(target, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise EvaluationError(f"{archive} is not a readable tar.gz archive: {exc}") from None


# ---- the figures: numpy only, each as scikit-learn's metrics module computes it ----------


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Counts: row = the true class, column = the predicted one, both in the order of *classes*."""
    index = {label: number for number, label in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for actual, guess in zip(truth.tolist(), predicted.tolist(), strict=True):
        if guess in index:  # a prediction outside the classes counts against its row's recall only
            matrix[index[actual], index[guess]] += 1
    return matrix


def precision_recall_f1(truth: np.ndarray, predicted: np.ndarray,
                        classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support (0 where undefined, as scikit-learn's default)."""
    labels = np.asarray(classes)
    support = np.array([(truth == label).sum() for label in labels], dtype=np.float64)
    predicted_count = np.array([(predicted == label).sum() for label in labels], dtype=np.float64)
    correct = np.array([((truth == label) & (predicted == label)).sum() for label in labels],
                       dtype=np.float64)
    precision = np.divide(correct, predicted_count, out=np.zeros_like(correct), where=predicted_count > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(correct), where=total > 0)
    return precision, recall, f1, support


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at each distinct score, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]  # the last row of each score
    true_positives = np.cumsum(positive)[last]
    false_positives = (last + 1) - true_positives
    tpr = np.r_[0.0, true_positives / max(true_positives[-1], 1)]
    fpr = np.r_[0.0, false_positives / max(false_positives[-1], 1)]
    return fpr, tpr


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """The area under the ROC curve; None when the test set has no positive or no negative row."""
    if positive.all() or not positive.any():
        return None
    fpr, tpr = roc_curve(positive, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def classification_report(truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str],
                          probabilities: np.ndarray | None) -> dict[str, Any]:
    """``multiclass_classification_metrics`` (``binary_classification_metrics`` for 2 classes)."""
    precision, recall, f1, support = precision_recall_f1(truth, predicted, classes)
    weights = support / support.sum()
    matrix = confusion_matrix(truth, predicted, classes)
    metrics: dict[str, Any] = {
        "accuracy": _value(np.mean(truth == predicted)),
        "weighted_precision": _value(precision @ weights),
        "weighted_recall": _value(recall @ weights),
        "weighted_f1": _value(f1 @ weights),
        "confusion_matrix": {actual: {guess: int(matrix[row, column])
                                      for column, guess in enumerate(classes)}
                             for row, actual in enumerate(classes)},
    }
    per_class: dict[str, dict[str, Any]] = {
        label: {"precision": _value(precision[i]), "recall": _value(recall[i]), "f1": _value(f1[i]),
                "support": int(support[i])} for i, label in enumerate(classes)}
    if probabilities is not None:
        if probabilities.shape != (len(truth), len(classes)):
            raise EvaluationError(f"model.probabilities gave an array of shape {probabilities.shape},"
                                  f" expected ({len(truth)}, {len(classes)}): a column per class")
        areas = {label: roc_auc(truth == label, probabilities[:, i]) for i, label in enumerate(classes)}
        for label, area in areas.items():
            if area is not None:
                per_class[label]["auc"] = _value(area)
        defined = [label for label in classes if areas[label] is not None]
        if len(defined) == len(classes):  # scikit-learn refuses a class absent from the test set
            metrics["auc"] = _value(np.mean([areas[label] for label in classes]))
            metrics["weighted_auc"] = _value(sum(float(areas[label]) * w  # type: ignore[arg-type]
                                                 for label, w in zip(classes, weights, strict=True)))
    metrics["per_class"] = per_class
    if len(classes) != 2:
        return {"multiclass_classification_metrics": metrics}
    positive = classes[1]  # the second class, as scikit-learn's pos_label=1 for labels [0, 1]
    negative = classes[0]
    tp, fn = matrix[1, 1], matrix[1, 0]
    fp, tn = matrix[0, 1], matrix[0, 0]
    binary = {"positive_label": positive, "negative_label": negative,
              "precision": per_class[positive]["precision"], "recall": per_class[positive]["recall"],
              "f1": per_class[positive]["f1"],
              "true_positive_rate": _value(_ratio(tp, tp + fn)),
              "true_negative_rate": _value(_ratio(tn, tn + fp)),
              "false_positive_rate": _value(_ratio(fp, fp + tn)),
              "false_negative_rate": _value(_ratio(fn, fn + tp))}
    if probabilities is not None and "auc" in per_class[positive]:
        fpr, tpr = roc_curve(truth == positive, probabilities[:, 1])
        binary["auc"] = per_class[positive]["auc"]
        binary["receiver_operating_characteristic_curve"] = {
            "false_positive_rates": fpr.tolist(), "true_positive_rates": tpr.tolist()}
    metrics.pop("auc", None)
    return {"binary_classification_metrics": {**metrics, **binary}}


def regression_report(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """``regression_metrics``: MSE, RMSE, MAE and R² (R² 0 for a constant truth predicted exactly)."""
    errors = predicted - truth
    mse = float(np.mean(errors ** 2))
    spread = float(np.sum((truth - truth.mean()) ** 2))
    residual = float(np.sum(errors ** 2))
    r2 = 1 - residual / spread if spread > 0 else (1.0 if residual == 0 else 0.0)
    return {"regression_metrics": {"mse": _value(mse), "rmse": _value(np.sqrt(mse)),
                                   "mae": _value(np.mean(np.abs(errors))), "r2": _value(r2)}}


def summary(report: Mapping[str, Any], rows: int) -> str:
    """One line for /opt/ml/output/message, e.g. ``Evaluated 30 rows: accuracy=0.9667 ...``."""
    kind, metrics = next(iter(report.items()))
    names = (["mse", "rmse", "mae", "r2"] if kind == "regression_metrics"
             else ["accuracy", "weighted_f1", "auc"])
    figures = [f"{name}={metrics[name]['value']:.4g}" for name in names if name in metrics]
    return f"Evaluated {rows} rows ({kind}): {' '.join(figures)}"


def _value(number: Any) -> dict[str, float]:
    return {"value": float(number)}


def _ratio(part: Any, whole: Any) -> float:
    return float(part) / float(whole) if whole else 0.0


def _guess_classes(predicted: np.ndarray, labels: np.ndarray) -> list[str] | None:
    """Without ``model.classes``: numbers predicted mean a regressor, anything else a classifier
    of every label predicted or in the test set."""
    if predicted.dtype.kind in "fiu":
        return None
    return sorted({str(label) for label in [*predicted.tolist(), *labels.tolist()]})


def _numbers(labels: np.ndarray) -> np.ndarray:
    try:
        return labels.astype(np.float64)
    except ValueError:
        raise EvaluationError("a regressor's test labels must be numbers") from None


def _write_json(path: Path, data: Any) -> None:
    """Write *path* whole or not at all (renamed into place)."""
    temporary = path.with_name(f".{path.name}.writing")
    temporary.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


# ---- the plots: matplotlib without a display (Agg) ----------------------------------------

PLOTS_SKIPPED = "skipped: matplotlib is not installed (add it to container/requirements.txt)"


def can_plot() -> bool:
    """matplotlib is installed (the figures do not need it; the plots do)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None



def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.2 * len(classes) + 2.5))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes,
             yticklabels=classes, xlabel="predicted", ylabel="actual", title="Confusion matrix")
    plt.setp(axes.get_xticklabels(), rotation=45, ha="right")
    threshold = matrix.max() / 2 if matrix.size else 0
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            axes.text(column, row, str(matrix[row, column]), ha="center", va="center",
                      color="white" if matrix[row, column] > threshold else "black")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def plot_roc_curves(truth: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
                    path: Path) -> None:
    """One ROC curve per class, one-vs-rest (the positive class alone for 2 classes)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 5))
    shown = list(enumerate(classes))[1:] if len(classes) == 2 else list(enumerate(classes))
    for index, label in shown:
        positive = truth == label
        area = roc_auc(positive, probabilities[:, index])
        if area is None:
            continue
        fpr, tpr = roc_curve(positive, probabilities[:, index])
        axes.plot(fpr, tpr, label=f"{label} (AUC {area:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate",
             title="ROC curves, one-vs-rest", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def plot_regression(truth: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.scatter(truth, predicted, s=12)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey")
    axes.set(xlabel="actual", ylabel="predicted", title="Predicted against actual")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def _fail(paths: OptMl, reason: str, detail: str) -> None:
    """Write ``output/failure`` (reason on the first line) unless one exists, and the reason to
    ``output/message``: a processing job shows that file as its ExitMessage, which is where
    SageMaker Processing says a failed job's reason goes (it does not read ``output/failure``)."""
    reason = " ".join(reason.split()) or "evaluation failed"
    print(f"Evaluation failed: {reason}", file=sys.stderr, flush=True)
    if detail:
        print(detail, file=sys.stderr, flush=True)
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        if not paths.failure_file.exists():
            if len(reason) > FAILURE_REASON_LIMIT:  # SageMaker would cut it off unmarked
                reason = reason[: FAILURE_REASON_LIMIT - 3] + "..."
            paths.failure_file.write_text(reason + ("\n\n" + detail if detail else "\n"), encoding="utf-8")
        paths.message_file.write_text(reason + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"could not write {paths.failure_file}: {exc}", file=sys.stderr)
