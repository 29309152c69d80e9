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
    Read back what ``save`` wrote into the directory *model_dir*.
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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataset import Table
from hyperparameters import Choice, Int, Spec
from job import Job

HYPERPARAMETERS: dict[str, Spec] = {
    "criterion": Choice(("gini", "entropy", "log_loss"), default="gini"),
    "max_depth": Int(min=1, max=1000),
    "max_leaf_nodes": Int(min=2, max=100000),
    "min_samples_leaf": Int(default=1, min=1),
    "random_state": Int(default=0, min=0),
}

#: Loading reads arrays with numpy and starts no threads.
FORK_SAFE = True
ACCEPTS_MISSING = False


def fit(training: Table, validation: Table | None, job: Job) -> Tree:
    """Train a scikit-learn decision tree classifier (from scratch: a tree cannot resume)."""
    from sklearn.tree import DecisionTreeClassifier

    estimator = DecisionTreeClassifier(**job.params).fit(training.features, training.labels)
    return Tree.from_estimator(estimator, job.params)


def save(model: Tree, model_dir: Path) -> None:
    model.save(model_dir / MODEL_FILE)


def load(model_dir: Path) -> Tree:
    return Tree.load(model_dir / MODEL_FILE)


def predict(model: Tree, features: np.ndarray) -> np.ndarray:
    return model.predict(features)


def metrics(model: Tree, data: Table) -> dict[str, float]:
    return {"accuracy": float((predict(model, data.features) == data.labels).mean())}


def n_features(model: Tree) -> int:
    return int(model.params["n_features"])


# ---- This example's internals: replace everything below with your model's code ----------
#
# The fitted tree is saved as plain arrays in model.npz (loaded without pickle, so a
# model file cannot run code) and serving walks them with numpy: the server never
# imports scikit-learn, which keeps its start fast and its workers small.

#: The file written into the model directory.
MODEL_FILE = "model.npz"
LEAF = -1
#: Up to this many rows are walked in Python; more, with numpy (measured crossover).
SMALL_BATCH = 64


@dataclass(frozen=True)
class Tree:
    """A fitted decision tree as arrays, one entry per node."""

    left: np.ndarray  # child node ids, LEAF at leaves
    right: np.ndarray
    feature: np.ndarray  # feature tested at the node
    threshold: np.ndarray  # go left when feature value <= threshold
    leaf_class: np.ndarray  # index into classes of the node's majority class
    classes: np.ndarray
    depth: int
    params: dict[str, Any]
    #: The same arrays as Python lists, for walking a few rows without numpy's per-call cost.
    lists: tuple[list[Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lists = tuple(array.tolist() for array in (self.left, self.right, self.feature,
                                                   self.threshold, self.leaf_class))
        object.__setattr__(self, "lists", lists)

    @classmethod
    def from_estimator(cls, estimator: Any, params: dict[str, Any]) -> Tree:
        tree = estimator.tree_
        return cls(
            left=tree.children_left.astype(np.int32),
            right=tree.children_right.astype(np.int32),
            feature=np.maximum(tree.feature, 0).astype(np.int32),
            threshold=tree.threshold.astype(np.float64),
            leaf_class=tree.value[:, 0, :].argmax(axis=1).astype(np.int32),
            classes=np.asarray(estimator.classes_),
            depth=int(estimator.get_depth()),
            params={**params, "n_features": int(estimator.n_features_in_)},
        )

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(handle, left=self.left, right=self.right, feature=self.feature,
                     threshold=self.threshold, leaf_class=self.leaf_class,
                     classes=self.classes.astype(str), depth=np.int64(self.depth),
                     params=np.str_(json.dumps(self.params)))

    @classmethod
    def load(cls, path: Path) -> Tree:
        with np.load(path, allow_pickle=False) as data:
            return cls(left=data["left"], right=data["right"], feature=data["feature"],
                       threshold=data["threshold"], leaf_class=data["leaf_class"],
                       classes=data["classes"], depth=int(data["depth"]),
                       params=json.loads(str(data["params"])))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """One label per row of *features*, exactly as scikit-learn would."""
        # scikit-learn compares float32 feature values with float64 thresholds
        values = features.astype(np.float32).astype(np.float64)
        if len(values) <= SMALL_BATCH:
            left, right, feature, threshold, leaf_class = self.lists
            found = []
            for row in values.tolist():
                node = 0
                while left[node] != LEAF:
                    node = left[node] if row[feature[node]] <= threshold[node] else right[node]
                found.append(leaf_class[node])
            return self.classes[found]
        rows = np.arange(len(values))
        node = np.zeros(len(values), dtype=np.int32)
        for _ in range(self.depth):
            left_child = self.left[node]
            inner = left_child != LEAF
            if not inner.any():
                break
            go_left = values[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, left_child, self.right[node]), node)
        return self.classes[self.leaf_class[node]]
