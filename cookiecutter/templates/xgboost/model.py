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

import ctypes
import json
import math
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from channels import DataError
from dataset import Table
from hyperparameters import Choice, Float, Int, Spec
from job import Job

CLASSIFIERS = ("multi:softprob", "multi:softmax", "binary:logistic")
REGRESSORS = ("reg:squarederror", "reg:absoluteerror", "reg:logistic", "count:poisson")

HYPERPARAMETERS: dict[str, Spec] = {
    "objective": Choice(CLASSIFIERS + REGRESSORS, default="multi:softprob"),
    "num_round": Int(default=100, min=1, max=100000),
    "eta": Float(default=0.3, min=0, max=1),
    "max_depth": Int(default=6, min=0, max=64),
    "min_child_weight": Float(default=1, min=0),
    "subsample": Float(default=1, min=0.001, max=1),
    "colsample_bytree": Float(default=1, min=0.001, max=1),
    "lambda": Float(default=1, min=0),
    "alpha": Float(default=0, min=0),
    "tree_method": Choice(("hist", "approx", "exact"), default="hist"),
    "eval_metric": Choice(("rmse", "mae", "logloss", "mlogloss", "error", "merror", "auc")),
    # stop when the validation channel's metric has not improved for this many rounds
    "early_stopping_rounds": Int(min=1),
    # save a checkpoint every this many rounds (and at the end), when the job has checkpoints
    "checkpoint_frequency": Int(default=10, min=1),
    "seed": Int(default=0, min=0),
}

#: XGBoost starts OpenMP threads: each serving worker loads its own copy.
FORK_SAFE = False
#: XGBoost takes NaN as a missing value.
ACCEPTS_MISSING = True


def fit(training: Table, validation: Table | None, job: Job) -> Model:
    """Boost ``num_round`` rounds, from a checkpoint or the previous model when there is one."""
    params = dict(job.params)
    objective = params["objective"]
    previous = load(job.previous_model_dir) if job.previous_model_dir else None
    classes = _classes(training, previous, objective)
    train_matrix = xgb.DMatrix(training.features, label=_targets(training, classes, "training"),
                               missing=np.nan)
    evals = [(train_matrix, "training")]
    if validation is not None:
        evals.append((xgb.DMatrix(validation.features,
                                  label=_targets(validation, classes, "validation"), missing=np.nan),
                      "validation"))
    booster_params = _booster_params(params, classes)

    start: Any = previous.booster if previous else None
    base_rounds = previous.booster.num_boosted_rounds() if previous else 0
    target_rounds = base_rounds + params["num_round"]
    latest = latest_checkpoint(job.checkpoint_dir) if job.checkpoint_dir else None
    if latest is not None:
        start = str(latest)
        done = checkpoint_rounds(latest)
        print(f"resuming from checkpoint {latest.name} ({done} rounds)", file=sys.stderr, flush=True)
    else:
        done = base_rounds
    remaining = max(target_rounds - done, 0)

    callbacks: list[Any] = [Report(job)]
    if job.checkpoint_dir is not None and job.is_first_host:
        callbacks.append(Checkpoint(job.checkpoint_dir, params["checkpoint_frequency"]))
    if params["early_stopping_rounds"] is not None:
        if validation is None:
            raise DataError("early_stopping_rounds needs a validation channel")
        callbacks.append(xgb.callback.EarlyStopping(rounds=params["early_stopping_rounds"],
                                                    data_name="validation", save_best=True))
    if remaining:
        booster = xgb.train(booster_params, train_matrix, num_boost_round=remaining, evals=evals,
                            xgb_model=start, callbacks=callbacks, verbose_eval=False)
    else:  # a checkpoint already holds every round
        booster = xgb.Booster(model_file=start) if isinstance(start, str) else start.copy()
    return Model(booster=booster, classes=classes, objective=objective)


def save(model: Model, model_dir: Path) -> None:
    model.booster.set_attr(classes=json.dumps(model.classes), objective=model.objective)
    model.booster.save_model(model_dir / MODEL_FILE)


def load(model_dir: Path) -> Model:
    booster = xgb.Booster(model_file=model_dir / MODEL_FILE)
    # one thread per worker: serve runs a worker per CPU, and single rows gain nothing from more
    booster.set_param({"nthread": int(os.environ.get("OMP_NUM_THREADS", "1"))})
    classes = json.loads(booster.attr("classes") or "null")
    return Model(booster=booster, classes=classes, objective=booster.attr("objective") or "")


def predict(model: Model, features: np.ndarray) -> np.ndarray:
    """Class labels for a classifier, numbers for a regressor (inplace_predict: no DMatrix)."""
    raw = model.scores(features)
    if model.labels is None:
        return np.asarray(raw, dtype=np.float64)
    if model.objective == "binary:logistic":
        return model.labels[(raw > 0.5).astype(np.int64)]
    if model.objective == "multi:softmax":
        return model.labels[raw.astype(np.int64)]
    return model.labels[np.argmax(raw, axis=1)]


def metrics(model: Model, data: Table) -> dict[str, float]:
    predicted = predict(model, data.features)
    if model.classes is not None:
        return {"accuracy": float((predicted == data.labels).mean())}
    truth = data.labels.astype(np.float64)
    return {"rmse": float(np.sqrt(np.mean((predicted - truth) ** 2)))}


def n_features(model: Model) -> int:
    return int(model.booster.num_features())


def classes(model: Model) -> list[str] | None:
    return None if model.classes is None else [str(label) for label in model.classes]


def probabilities(model: Model, features: np.ndarray) -> np.ndarray:
    """One column per class (``multi:softmax`` gives labels only: a 0/1 column per class)."""
    assert model.classes is not None
    raw = np.asarray(model.scores(features), dtype=np.float64)
    if model.objective == "binary:logistic":
        return np.column_stack([1 - raw, raw])
    if model.objective == "multi:softmax":
        return np.eye(len(model.classes))[raw.astype(np.int64)]
    return raw


# ---- This example's internals: replace everything below with your model's code ----------

#: The file written into the model directory: XGBoost's own binary JSON format (no pickle).
MODEL_FILE = "xgboost-model.ubj"
CHECKPOINT_PATTERN = re.compile(r"xgboost-checkpoint-(\d+)\.ubj")
#: Written under this suffix, then renamed: SageMaker's checkpoint upload skips such files.
TEMP_SUFFIX = ".sagemaker-ignore"
#: Checkpoints kept; older ones are deleted (SageMaker mirrors the deletion in S3).
KEEP_CHECKPOINTS = 2


@dataclass
class Model:
    booster: xgb.Booster
    classes: list[str] | None  # class labels of a classifier, in the order of its outputs
    objective: str
    # made once, not per request: the classes as an array to index, and the dense predictor
    labels: np.ndarray | None = field(init=False, repr=False, compare=False)
    dense: DensePredictor | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.labels = None if self.classes is None else np.asarray(self.classes)
        self.dense = DensePredictor.create(self.booster)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``booster.inplace_predict(features, missing=NaN)``: XGBoost's float32 output."""
        if (self.dense is not None and features.dtype in DENSE_TYPES and features.ndim == 2
                and features.flags.c_contiguous and len(features)):
            return self.dense(features)
        return self.booster.inplace_predict(features, missing=np.nan)


#: The dtypes XGBoost takes as they are (DensePredictor passes no other).
DENSE_TYPES = (np.dtype(np.float64), np.dtype(np.float32))


class DensePredictor:
    """What ``booster.inplace_predict(rows, missing=np.nan)`` does for C-contiguous float rows, cheaper.

    XGBoost's inplace_predict makes a new proxy DMatrix in every call, and making one reads the
    cgroup CPU quota files (a dozen system calls); its Python wrapper adds checks for every kind
    of input. Together they cost a single-row request more than the trees do. This calls the same
    C function (``XGBoosterPredictFromDense``) with the same arguments, through a proxy made once:
    the same answers, at a fraction of the cost for a few rows. It uses XGBoost's ctypes helpers
    (``xgboost.core``, as of xgboost 3.2): ``create`` returns None without them, and
    ``Model.scores`` then takes the public path.
    """

    def __init__(self, booster: xgb.Booster) -> None:
        core: Any = xgb.core
        self.booster = booster
        self.lib, self.check = core._LIB, core._check_call
        self.function = self.lib.XGBoosterPredictFromDense
        self.proxy = core._ProxyDMatrix()  # owns its handle: freed with this object
        self.args = core.make_jcargs(type=0, training=False, iteration_begin=0, iteration_end=0,
                                     missing=np.nan, strict_shape=False, cache_id=0)
        self.lock = threading.Lock()  # the proxy and XGBoost's output buffer: one call at a time

    @classmethod
    def create(cls, booster: xgb.Booster) -> DensePredictor | None:
        try:
            return cls(booster)
        except (AttributeError, TypeError):
            return None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        interface = b'{"data": [%d, false], "strides": null, "typestr": "%s", "shape": [%d, %d], ' \
                    b'"version": 3}' % (rows.ctypes.data, rows.dtype.str.encode(), *rows.shape)
        shape = ctypes.POINTER(ctypes.c_uint64)()
        dims = ctypes.c_uint64()
        values = ctypes.POINTER(ctypes.c_float)()
        with self.lock:
            self.check(self.function(self.booster.handle, interface, self.args, self.proxy.handle,
                                     ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(values)))
            # XGBoost's buffer, reused by the next call: copied out
            found = tuple(shape[:dims.value])
            buffer = (ctypes.c_float * math.prod(found)).from_address(ctypes.addressof(values.contents))
            return np.frombuffer(buffer, dtype=np.float32).reshape(found).copy()


def _classes(training: Table, previous: Model | None, objective: str) -> list[str] | None:
    if objective not in CLASSIFIERS:
        return None
    if previous is not None and previous.classes is not None:
        return previous.classes
    found = sorted(set(training.labels.tolist()), key=_label_order)
    if objective == "binary:logistic" and len(found) != 2:
        raise DataError(f"binary:logistic needs 2 classes, the training channel has {len(found)}")
    if len(found) < 2:
        raise DataError("a classifier needs at least 2 classes in the training channel")
    return found


def _label_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (0, 1, 2, 10), then text."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _targets(data: Table, classes: list[str] | None, channel: str) -> np.ndarray:
    if classes is None:
        try:
            return data.labels.astype(np.float64)
        except ValueError:
            raise DataError(f"channel {channel!r}: a regression objective needs numeric labels") from None
    index = {label: number for number, label in enumerate(classes)}
    unknown = sorted(set(data.labels.tolist()) - index.keys())
    if unknown:
        raise DataError(f"channel {channel!r}: labels {unknown[:5]} are not among the classes"
                        f" {classes[:10]}")
    return np.asarray([index[label] for label in data.labels.tolist()], dtype=np.float64)


def _booster_params(params: dict[str, Any], classes: list[str] | None) -> dict[str, Any]:
    found = {name: value for name, value in params.items()
             if value is not None and name not in ("num_round", "early_stopping_rounds",
                                                   "checkpoint_frequency")}
    if classes is not None and params["objective"].startswith("multi:"):
        found["num_class"] = len(classes)
    return found


def latest_checkpoint(directory: Path) -> Path | None:
    found = [path for path in directory.glob("xgboost-checkpoint-*.ubj")
             if CHECKPOINT_PATTERN.fullmatch(path.name)]
    return max(found, key=checkpoint_rounds) if found else None


def checkpoint_rounds(path: Path) -> int:
    match = CHECKPOINT_PATTERN.fullmatch(path.name)
    assert match is not None
    return int(match.group(1))


class Report(xgb.callback.TrainingCallback):
    """Prints each round's evaluation metrics through ``job.report`` (first host only)."""

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        if self.job.is_first_host:
            for channel, found in evals_log.items():
                self.job.report({name: values[-1] for name, values in found.items()},
                                channel, epoch=model.num_boosted_rounds())
        return False


class Checkpoint(xgb.callback.TrainingCallback):
    """Saves the booster into the checkpoint directory every *frequency* rounds and at the end."""

    def __init__(self, directory: Path, frequency: int) -> None:
        super().__init__()
        self.directory = directory
        self.frequency = frequency

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        if model.num_boosted_rounds() % self.frequency == 0:
            self._save(model)
        return False

    def after_training(self, model: Any) -> Any:
        self._save(model)
        return model

    def _save(self, booster: Any) -> None:
        rounds = booster.num_boosted_rounds()
        path = self.directory / f"xgboost-checkpoint-{rounds:06d}.ubj"
        if path.exists():
            return
        temporary = path.with_name(path.name + TEMP_SUFFIX)
        temporary.write_bytes(booster.save_raw("ubj"))
        os.replace(temporary, path)
        for old in sorted(self.directory.glob("xgboost-checkpoint-*.ubj"),
                          key=checkpoint_rounds)[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)
        print(f"checkpoint saved: {path.name}", file=sys.stderr, flush=True)
