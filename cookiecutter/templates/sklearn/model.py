"""Yours: the model. The one module to replace for another algorithm.

``train`` and ``serve`` use only the names below; everything else in this file
is this example's own business.

Must define:

``HYPERPARAMETERS: dict[str, Spec]``
    The hyperparameters ``fit`` accepts, with types, ranges and defaults
    (``Int``, ``Float``, ``Bool``, ``Choice`` from hyperparameters.py). A job
    sending any other name fails with the list of valid ones.
``fit(training: Table, validation: Table | None, job: Job) -> Model``
    Train on the data ``dataset.read`` returned. ``job.params`` holds the typed
    hyperparameters; ``job.report(metrics, channel, epoch)`` prints metrics
    during training; ``job.checkpoint_dir`` (resume from it, save to it) and
    ``job.previous_model_dir`` (a model to start from: incremental training)
    are None when the job has none; ``job.channels`` gives every channel, for
    a model that streams its own epochs (see channels.py).
``save(model: Model, model_dir: Path) -> None``
    Write the model's files into the directory *model_dir*, under their final
    names (train then moves them into /opt/ml/model).
``load(model_dir: Path) -> Model``
    Read back what ``save`` wrote into the directory *model_dir*: /opt/ml/model, or
    on a multi-model endpoint each model's own folder, once per model and worker.
``predict(model: Model, features: np.ndarray) -> np.ndarray``
    One prediction per row of the 2-d float array *features*.
``metrics(model: Model, data: Table) -> dict[str, float]``
    Scores printed after training for each channel, as ``<channel>:<name>=<value>;``.

May define:

``n_features(model: Model) -> int``
    Request rows of another width get a 400 (not checked without it).
``FORK_SAFE: bool`` (default False)
    True when ``load`` starts no threads, so serve may load the model once and
    fork its workers from that copy (less memory). Libraries such as XGBoost,
    PyTorch or anything using OpenMP are not fork-safe: leave it False.
``ACCEPTS_MISSING: bool`` (default False)
    True when ``predict`` takes NaN as a missing value; empty CSV cells, NaN
    and JSON null then reach it as NaN instead of being refused with a 400.
``classes(model: Model) -> list[str] | None``
    A classifier's labels (None for a regressor): ``evaluate`` scores a
    classifier with accuracy, precision, recall, F1 and a confusion matrix, a
    regressor with MSE, RMSE, MAE and R² (without it: text predictions mean a
    classifier).
``probabilities(model: Model, features: np.ndarray) -> np.ndarray``
    A classifier's class probabilities, one column per label of ``classes``:
    ``evaluate`` draws ROC curves and computes their AUC from them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from channels import DataError
from dataset import Table
from hyperparameters import Float, Int, Spec
from job import Job

HYPERPARAMETERS: dict[str, Spec] = {
    "epochs": Int(default=30, min=1, max=100000),
    "learning_rate": Float(default=0.1, min=1e-6, max=10.0),
    "momentum": Float(default=0.9, min=0.0, max=0.999),
    "batch_size": Int(default=16, min=1, max=1000000),
    "l2": Float(default=1e-4, min=0.0, max=10.0),
    "seed": Int(default=0, min=0, max=2**32 - 1),
}

#: Loading reads arrays with numpy and starts no threads.
FORK_SAFE = True
ACCEPTS_MISSING = False


def fit(training: Table, validation: Table | None, job: Job) -> Softmax:
    """Train a softmax (multinomial logistic) regression by mini-batch SGD with momentum.

    Each epoch visits the rows in an order drawn from ``seed`` and the epoch
    number, so a job resumed from a checkpoint repeats exactly what an
    uninterrupted one does. After each epoch the state is checkpointed (first
    host only) and the metrics of each channel are reported.
    """
    params = job.params
    state = _resume(job.checkpoint_dir, params) if job.checkpoint_dir else None
    if state is None:
        start = _previous(job.previous_model_dir, training) if job.previous_model_dir else None
        state = TrainingState.start(training, params, start)
    labels = state.model.label_indices(training.labels)
    for epoch in range(state.epoch + 1, params["epochs"] + 1):
        state = state.run_epoch(training.features, labels, epoch)
        if job.checkpoint_dir is not None and job.is_first_host:
            _checkpoint(job.checkpoint_dir, state)
        job.report(metrics(state.model, training), "training", epoch=epoch)
        if validation is not None:
            job.report(metrics(state.model, validation), "validation", epoch=epoch)
    return state.model


def save(model: Softmax, model_dir: Path) -> None:
    _write_arrays(model_dir / MODEL_FILE, model.arrays())


def load(model_dir: Path) -> Softmax:
    return Softmax.from_arrays(_read_arrays(model_dir / MODEL_FILE))


def predict(model: Softmax, features: np.ndarray) -> np.ndarray:
    return model.predict(features)


def metrics(model: Softmax, data: Table) -> dict[str, float]:
    """Mean log loss (cross-entropy) and accuracy; a label training never saw counts as wrong."""
    known = np.isin(data.labels, model.classes)
    probabilities = model.probabilities(data.features)
    indices = np.searchsorted(model.classes, data.labels)
    indices = np.where(known, np.minimum(indices, len(model.classes) - 1), 0)
    chosen = np.where(known, probabilities[np.arange(len(indices)), indices], 0.0)
    with np.errstate(divide="ignore"):
        loss = float(-np.mean(np.log(chosen)))
    accuracy = float(np.mean(model.classes[probabilities.argmax(axis=1)] == data.labels))
    return {"loss": loss, "accuracy": accuracy}


def n_features(model: Softmax) -> int:
    return int(model.weights.shape[0])


def classes(model: Softmax) -> list[str]:
    return [str(label) for label in model.classes]


def probabilities(model: Softmax, features: np.ndarray) -> np.ndarray:
    return model.probabilities(features)


# ---- This example's internals: replace everything below with your model's code ----------
#
# The model is plain arrays in model.npz (read without pickle, so a model file cannot run
# code), and training and serving are numpy only: the server starts fast and its workers
# stay small. Checkpoints are the same kind of file, with the optimizer's state added.

#: The file written into the model directory.
MODEL_FILE = "model.npz"
#: Checkpoints are named epoch-<n>.npz; the last few are kept.
CHECKPOINT = re.compile(r"epoch-(\d+)\.npz")
KEEP_CHECKPOINTS = 3
#: Suffix of a checkpoint being written: SageMaker's checkpoint sync skips such files.
WRITING = ".sagemaker-ignore"
#: A fixed time stamp inside .npz files, so that the same arrays give the same bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Softmax:
    """Class scores ``((x - mean) / scale) @ weights + bias``; the highest one wins."""

    classes: np.ndarray  # sorted labels
    mean: np.ndarray  # per feature, from the training data
    scale: np.ndarray
    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    params: dict[str, Any]
    #: Scaling folded into the weights: scores = x @ folded_weights + folded_bias.
    folded: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded_weights = self.weights / self.scale[:, None]
        folded_bias = self.bias - (self.mean / self.scale) @ self.weights
        object.__setattr__(self, "folded", (folded_weights, folded_bias))

    def scores(self, features: np.ndarray) -> np.ndarray:
        weights, bias = self.folded
        return features @ weights + bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.classes[self.scores(features).argmax(axis=1)]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return _softmax(self.scores(features))

    def label_indices(self, labels: np.ndarray) -> np.ndarray:
        unknown = sorted(set(np.unique(labels).tolist()) - set(self.classes.tolist()))
        if unknown:
            raise DataError(f"labels {unknown} are not among the model's classes"
                             f" {self.classes.tolist()}: a model cannot learn new classes")
        return np.searchsorted(self.classes, labels)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"classes": self.classes.astype(str), "mean": self.mean, "scale": self.scale,
                "weights": self.weights, "bias": self.bias,
                "params": np.array(json.dumps(self.params, sort_keys=True))}

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray]) -> Softmax:
        return cls(classes=data["classes"], mean=data["mean"], scale=data["scale"],
                   weights=data["weights"], bias=data["bias"], params=json.loads(str(data["params"])))


@dataclass(frozen=True)
class TrainingState:
    """Everything an epoch needs: the model, the momentum and the epochs done."""

    model: Softmax
    velocity_weights: np.ndarray
    velocity_bias: np.ndarray
    epoch: int

    @classmethod
    def start(cls, training: Table, params: dict[str, Any], previous: Softmax | None) -> TrainingState:
        if previous is not None:
            model = replace(previous, params={**params, "n_features": int(previous.weights.shape[0])})
        else:
            classes = np.unique(training.labels).astype(str)
            scale = training.features.std(axis=0)
            scale[scale == 0] = 1.0
            size = (training.features.shape[1], len(classes))
            model = Softmax(classes=classes, mean=training.features.mean(axis=0), scale=scale,
                            weights=np.zeros(size), bias=np.zeros(len(classes)),
                            params={**params, "n_features": size[0]})
        return cls(model, np.zeros_like(model.weights), np.zeros_like(model.bias), 0)

    def run_epoch(self, features: np.ndarray, labels: np.ndarray, epoch: int) -> TrainingState:
        """One pass over the rows in the epoch's own order: the same epoch, the same result."""
        params = self.model.params
        rate, momentum, l2 = params["learning_rate"], params["momentum"], params["l2"]
        batch = params["batch_size"]
        scaled = (features - self.model.mean) / self.model.scale
        onehot = np.eye(len(self.model.classes))[labels]
        order = np.random.default_rng([params["seed"], epoch]).permutation(len(labels))
        weights, bias = self.model.weights.copy(), self.model.bias.copy()
        velocity_weights, velocity_bias = self.velocity_weights.copy(), self.velocity_bias.copy()
        for begin in range(0, len(order), batch):
            rows = order[begin:begin + batch]
            x = scaled[rows]
            error = (_softmax(x @ weights + bias) - onehot[rows]) / len(rows)
            velocity_weights = momentum * velocity_weights - rate * (x.T @ error + l2 * weights)
            velocity_bias = momentum * velocity_bias - rate * error.sum(axis=0)
            weights += velocity_weights
            bias += velocity_bias
        model = replace(self.model, weights=weights, bias=bias)
        return TrainingState(model, velocity_weights, velocity_bias, epoch)

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.model.arrays(), "velocity_weights": self.velocity_weights,
                "velocity_bias": self.velocity_bias, "epoch": np.int64(self.epoch)}

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray]) -> TrainingState:
        return cls(Softmax.from_arrays(data), data["velocity_weights"], data["velocity_bias"],
                   int(data["epoch"]))


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _previous(model_dir: Path, training: Table) -> Softmax:
    """The model of the ``model`` channel (incremental training), checked against the data."""
    previous = load(model_dir)
    if previous.weights.shape[0] != training.features.shape[1]:
        raise DataError(f"the previous model takes {previous.weights.shape[0]} features,"
                         f" the training channel has {training.features.shape[1]}")
    previous.label_indices(training.labels)  # refuses labels it has no class for
    print(f"starting from the previous model in {model_dir}", flush=True)
    return previous


def _resume(directory: Path, params: dict[str, Any]) -> TrainingState | None:
    """The latest readable checkpoint of a job with these hyperparameters, or None."""
    for path in sorted(_checkpoints(directory), key=_epoch_of, reverse=True):
        try:
            state = TrainingState.from_arrays(_read_arrays(path))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            print(f"skipping checkpoint {path}: unreadable ({exc})", file=sys.stderr, flush=True)
            continue
        saved = {key: value for key, value in state.model.params.items() if key != "n_features"}
        if {key: value for key, value in saved.items() if key != "epochs"} != \
                {key: value for key, value in params.items() if key != "epochs"}:
            print(f"skipping checkpoint {path}: written with other hyperparameters", file=sys.stderr,
                  flush=True)
            continue
        model = replace(state.model, params={**params, "n_features": state.model.params["n_features"]})
        print(f"resuming from checkpoint {path} (epoch {state.epoch})", flush=True)
        return replace(state, model=model)
    return None


def _checkpoint(directory: Path, state: TrainingState) -> None:
    """Write epoch-<n>.npz under a name the sync skips, rename it into place, keep the last few."""
    path = directory / f"epoch-{state.epoch:06d}.npz"
    writing = path.with_name(path.name + WRITING)
    _write_arrays(writing, state.arrays())
    os.replace(writing, path)
    for old in sorted(_checkpoints(directory), key=_epoch_of)[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)


def _checkpoints(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if CHECKPOINT.fullmatch(path.name)]


def _epoch_of(path: Path) -> int:
    match = CHECKPOINT.fullmatch(path.name)
    return int(match.group(1)) if match else -1


def _write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (what np.load reads) whose bytes depend on the arrays only, flushed to disk."""
    with path.open("wb") as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, array in arrays.items():
                entry = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
                with archive.open(entry, "w") as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
