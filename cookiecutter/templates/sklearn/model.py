"""The algorithm: a scikit-learn decision tree over numeric CSV features.

This is the one module to change for another model. It declares the
hyperparameters it accepts and how to fit, save, load and predict; ``train``
and ``serve`` do everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from sklearn.tree import DecisionTreeClassifier

from hyperparameters import Choice, Int, Spec

HYPERPARAMETERS: dict[str, Spec] = {
    "criterion": Choice(("gini", "entropy", "log_loss"), default="gini"),
    "max_depth": Int(min=1, max=1000),
    "max_leaf_nodes": Int(min=2, max=100000),
    "min_samples_leaf": Int(default=1, min=1),
    "random_state": Int(default=0, min=0),
}

#: The file written into /opt/ml/model. skops files load without pickle.
MODEL_FILE = "model.skops"
#: The only non-builtin type the saved tree needs; anything else is refused on load.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def fit(features: np.ndarray, labels: np.ndarray, params: dict[str, Any]) -> Any:
    """Train a classifier on *features* and *labels* with typed *params*."""
    model = DecisionTreeClassifier(**params)
    model.fit(features, labels)
    return model


def save(model: Any, path: Path) -> None:
    """Write *model* to the file *path*."""
    skops.io.dump(model, path)


def load(model_dir: Path) -> Any:
    """Load the model that :func:`save` wrote into *model_dir*."""
    return skops.io.load(model_dir / MODEL_FILE, trusted=TRUSTED_TYPES)


def n_features(model: Any) -> int:
    """How many feature columns the model expects per row."""
    return int(model.n_features_in_)


def predict(model: Any, features: np.ndarray) -> np.ndarray:
    """Predict one label per row of *features*."""
    return np.asarray(model.predict(features))
