"""The algorithm: a scikit-learn decision tree over numeric CSV features.

This is the one module to change for another model. It declares the
hyperparameters it accepts and how to fit, save, load and predict; ``train``
and ``serve`` do everything else.

Training uses scikit-learn. The fitted tree is saved as plain arrays in
``model.npz`` (loaded without pickle, so a model file cannot run code), and
serving walks those arrays with numpy: the server never imports scikit-learn,
which keeps its start fast and its workers small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperparameters import Choice, Int, Spec

HYPERPARAMETERS: dict[str, Spec] = {
    "criterion": Choice(("gini", "entropy", "log_loss"), default="gini"),
    "max_depth": Int(min=1, max=1000),
    "max_leaf_nodes": Int(min=2, max=100000),
    "min_samples_leaf": Int(default=1, min=1),
    "random_state": Int(default=0, min=0),
}

#: The file written into /opt/ml/model.
MODEL_FILE = "model.npz"
LEAF = -1


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

    @property
    def n_features(self) -> int:
        return int(self.params["n_features"])


def fit(features: np.ndarray, labels: np.ndarray, params: dict[str, Any]) -> Tree:
    """Train a classifier on *features* and *labels* with typed *params*."""
    from sklearn.tree import DecisionTreeClassifier

    estimator = DecisionTreeClassifier(**params).fit(features, labels)
    tree = estimator.tree_
    return Tree(
        left=tree.children_left.astype(np.int32),
        right=tree.children_right.astype(np.int32),
        feature=np.maximum(tree.feature, 0).astype(np.int32),
        threshold=tree.threshold.astype(np.float64),
        leaf_class=tree.value[:, 0, :].argmax(axis=1).astype(np.int32),
        classes=np.asarray(estimator.classes_),
        depth=int(estimator.get_depth()),
        params={**params, "n_features": int(estimator.n_features_in_)},
    )


def save(model: Tree, path: Path) -> None:
    """Write *model* to the file *path*."""
    with path.open("wb") as handle:
        np.savez(handle, left=model.left, right=model.right, feature=model.feature,
                 threshold=model.threshold, leaf_class=model.leaf_class,
                 classes=model.classes.astype(str), depth=np.int64(model.depth),
                 params=np.str_(json.dumps(model.params)))


def load(model_dir: Path) -> Tree:
    """Load the model that :func:`save` wrote into *model_dir*."""
    with np.load(model_dir / MODEL_FILE, allow_pickle=False) as data:
        return Tree(left=data["left"], right=data["right"], feature=data["feature"],
                    threshold=data["threshold"], leaf_class=data["leaf_class"],
                    classes=data["classes"], depth=int(data["depth"]),
                    params=json.loads(str(data["params"])))


def n_features(model: Tree) -> int:
    """How many feature columns the model expects per row."""
    return model.n_features


#: Up to this many rows are walked in Python; more, with numpy (measured crossover).
SMALL_BATCH = 64


def predict(model: Tree, features: np.ndarray) -> np.ndarray:
    """Predict one label per row of *features*, exactly as scikit-learn would."""
    # scikit-learn compares float32 feature values with float64 thresholds
    values = features.astype(np.float32).astype(np.float64)
    if len(values) <= SMALL_BATCH:
        left, right, feature, threshold, leaf_class = model.lists
        found = []
        for row in values.tolist():
            node = 0
            while left[node] != LEAF:
                node = left[node] if row[feature[node]] <= threshold[node] else right[node]
            found.append(leaf_class[node])
        return model.classes[found]
    rows = np.arange(len(values))
    node = np.zeros(len(values), dtype=np.int32)
    for _ in range(model.depth):
        left = model.left[node]
        inner = left != LEAF
        if not inner.any():
            break
        go_left = values[rows, model.feature[node]] <= model.threshold[node]
        node = np.where(inner, np.where(go_left, left, model.right[node]), node)
    return model.classes[model.leaf_class[node]]
