"""What ``train`` does: SageMaker's training contract around :mod:`model`.

Reads the config files and the ``training`` (and optional ``validation``)
channel, fits the model, prints metrics as ``<channel>:<metric>=<value>;``
(regex ``<channel>:accuracy=(.*?);``) and writes the model file only once
training succeeded. Any failure writes ``output/failure``, reason first, and
exits non-zero; so does SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import dataset
import hyperparameters
import model
from optml import FAILURE_REASON_LIMIT, OptMl, read_json_object

TRAINING_CHANNEL = "training"
VALIDATION_CHANNEL = "validation"
SUPPORTED_INPUT_MODES = ("File", "FastFile")
EXIT_FAILED = 1
EXIT_STOPPED = 128 + signal.SIGTERM


class TrainingError(Exception):
    """A failure whose message is the whole story: no traceback needed."""


class Stopped(BaseException):
    """SIGTERM arrived: SageMaker is stopping the job."""


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run one training job under the /opt/ml root; return the exit status."""
    paths = OptMl.from_env(environ)
    signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        run(paths)
    except Stopped:
        _fail(paths, "Training stopped: SIGTERM received before training finished", "")
        return EXIT_STOPPED
    except (TrainingError, dataset.DataError, hyperparameters.HyperparameterError) as exc:
        _fail(paths, str(exc), "")
        return EXIT_FAILED
    except Exception as exc:  # anything else is a bug: keep the traceback
        _fail(paths, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return EXIT_FAILED
    return 0


def run(paths: OptMl) -> None:
    params = hyperparameters.parse(_read_config(paths.hyperparameters_file, {}),
                                   model.HYPERPARAMETERS)
    channels = _read_config(paths.input_data_config_file, None)
    resources = _read_config(paths.resource_config_file, {})
    host = str(resources.get("current_host", "algo-1"))
    hosts = [str(name) for name in resources.get("hosts", [host])]
    print(f"{host}: hosts {', '.join(hosts)}; hyperparameters {params}", flush=True)

    features, labels = _read_channel(paths, channels, TRAINING_CHANNEL, host)
    fitted = model.fit(features, labels, params)
    _report(fitted, TRAINING_CHANNEL, features, labels)
    if VALIDATION_CHANNEL in channels:
        checked, expected = _read_channel(paths, channels, VALIDATION_CHANNEL, host)
        if checked.shape[1] != features.shape[1]:
            raise TrainingError(
                f"channel {VALIDATION_CHANNEL!r} has {checked.shape[1]} feature columns,"
                f" channel {TRAINING_CHANNEL!r} has {features.shape[1]}"
            )
        _report(fitted, VALIDATION_CHANNEL, checked, expected)

    if host != sorted(hosts)[0]:
        print(f"{host}: not the first host; the model is saved by {sorted(hosts)[0]}")
        return
    _save_atomically(fitted, paths.model_dir)
    print(f"{host}: model saved to {paths.model_dir / model.MODEL_FILE}", flush=True)


def _read_config(path: Path, default: dict[str, Any] | None) -> dict[str, Any]:
    if not path.exists():
        if default is None:
            raise TrainingError(f"{path} is missing: SageMaker writes it for every job")
        return default
    try:
        return read_json_object(path)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def _read_channel(
    paths: OptMl, channels: dict[str, Any], name: str, host: str
) -> tuple[Any, Any]:
    if name not in channels:
        listed = ", ".join(sorted(channels)) or "none"
        raise TrainingError(f"channel {name!r} is required but not configured (channels: {listed})")
    settings = channels[name] or {}
    if not isinstance(settings, dict):
        raise TrainingError(f"channel {name!r}: its inputdataconfig.json entry must be a JSON object")
    mode = settings.get("TrainingInputMode", "File")
    if mode not in SUPPORTED_INPUT_MODES:
        raise TrainingError(f"channel {name!r}: input mode {mode!r} is not supported; use File")
    directory = paths.channel(name)
    features, labels = dataset.read_labelled_csv(directory, name)
    files = [str(p.relative_to(directory)) for p in dataset.channel_files(directory)]
    print(f"{host}: channel {name}: {len(labels)} rows from {', '.join(files)}", flush=True)
    return features, labels


def _report(fitted: Any, channel: str, features: Any, labels: Any) -> None:
    accuracy = float((model.predict(fitted, features) == labels).mean())
    print(f"{channel}:accuracy={accuracy:.4f};", flush=True)


def _save_atomically(fitted: Any, model_dir: Path) -> None:
    """Write the model beside its final name, then rename: never a partial file."""
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / model.MODEL_FILE
    partial = model_dir / f".{model.MODEL_FILE}.partial"
    try:
        model.save(fitted, partial)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def _fail(paths: OptMl, reason: str, detail: str) -> None:
    """Write ``output/failure`` (reason on the first line) unless one exists."""
    reason = " ".join(reason.split()) or "training failed"
    print(f"Training failed: {reason}", file=sys.stderr, flush=True)
    if detail:
        print(detail, file=sys.stderr, flush=True)
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        if not paths.failure_file.exists():
            if len(reason) > FAILURE_REASON_LIMIT:  # SageMaker would cut it off unmarked
                reason = reason[: FAILURE_REASON_LIMIT - 3] + "..."
            text = reason + ("\n\n" + detail if detail else "\n")
            paths.failure_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"could not write {paths.failure_file}: {exc}", file=sys.stderr)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped()
