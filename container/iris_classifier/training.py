"""Runtime: you should not need to edit this. What ``train`` does around model.py and dataset.py.

Reads the config files and the ``training`` (and optional ``validation``)
channel with ``dataset.read``, calls ``model.fit``, prints ``model.metrics``
for each channel as ``<channel>:<name>=<value>;`` and has ``model.save``
write the model only once training succeeded. Any failure writes
``output/failure``, reason first, and exits non-zero; so does SIGTERM.

Only the standard library and runtime modules are imported at the top: the
model's modules, and so its libraries, are imported inside the guard, so a
missing one is a failure with its reason written too.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from channels import Channel, DataError
from hyperparameters import HyperparameterError, parse
from job import MODEL_CHANNEL, Job, checkpoint_dir, previous_model_dir
from optml import FAILURE_REASON_LIMIT, OptMl, read_json_object

TRAINING_CHANNEL = "training"
VALIDATION_CHANNEL = "validation"
#: Written beside the other config files when the job has a CheckpointConfig.
CHECKPOINT_CONFIG = "checkpointconfig.json"
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
    except (TrainingError, DataError, HyperparameterError) as exc:
        _fail(paths, str(exc), "")
        return EXIT_FAILED
    except Exception as exc:  # anything else (an import too) is a bug: keep the traceback
        _fail(paths, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return EXIT_FAILED
    return 0


def run(paths: OptMl) -> None:
    import dataset  # the plug-in modules: inside main's guard
    import model

    params = parse(_read_config(paths.hyperparameters_json, {}), model.HYPERPARAMETERS)
    entries = _read_config(paths.inputdataconfig_json, None)
    resources = _read_config(paths.resourceconfig_json, {})
    host = str(resources.get("current_host", "algo-1"))
    hosts = [str(name) for name in resources.get("hosts", [host])]
    print(f"{host}: hosts {', '.join(hosts)}; hyperparameters {params}", flush=True)

    channels = {name: Channel.from_config(name, entry, paths.data_dir) for name, entry in entries.items()}
    checkpoints = checkpoint_dir(paths.config_dir / CHECKPOINT_CONFIG, paths.checkpoints_dir)
    job = Job(params=params, host=host, hosts=hosts, channels=channels, checkpoint_dir=checkpoints,
              previous_model_dir=previous_model_dir(channels.get(MODEL_CHANNEL)))
    training = dataset.read(_channel(channels, TRAINING_CHANNEL))
    print(f"{host}: channel {TRAINING_CHANNEL}: {len(training)} rows", flush=True)
    validation = None
    if VALIDATION_CHANNEL in channels:
        validation = dataset.read(channels[VALIDATION_CHANNEL], like=training)
        print(f"{host}: channel {VALIDATION_CHANNEL}: {len(validation)} rows", flush=True)

    fitted = model.fit(training, validation, job)
    job.report(model.metrics(fitted, training), TRAINING_CHANNEL)
    if validation is not None:
        job.report(model.metrics(fitted, validation), VALIDATION_CHANNEL)

    if not job.is_first_host:
        print(f"{host}: not the first host; the model is saved by {sorted(hosts)[0]}")
        return
    saved = _save_atomically(model.save, fitted, paths.model_dir)
    print(f"{host}: model saved to {', '.join(str(paths.model_dir / name) for name in saved)}", flush=True)


def _channel(channels: Mapping[str, Channel], name: str) -> Channel:
    if name not in channels:
        listed = ", ".join(sorted(channels)) or "none"
        raise TrainingError(f"channel {name!r} is required but not configured (channels: {listed})")
    return channels[name]


def _read_config(path: Path, default: dict[str, Any] | None) -> dict[str, Any]:
    if not path.exists():
        if default is None:
            raise TrainingError(f"{path} is missing: SageMaker writes it for every job")
        return default
    try:
        return read_json_object(path)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def _save_atomically(save: Any, fitted: Any, model_dir: Path) -> list[str]:
    """Have *save* write into a staging directory, then rename what it wrote into *model_dir*.

    The files carry their final names from the start (libraries that choose a
    format by extension see the real one), and none appears half-written.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=model_dir))
    try:
        save(fitted, staging)
        names = sorted(path.name for path in staging.iterdir())
        if not names:
            raise TrainingError("model.save wrote no file into the directory it was given")
        for name in names:
            os.replace(staging / name, model_dir / name)
        return names
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fail(paths: OptMl, reason: str, detail: str) -> None:
    """Write ``output/failure`` (reason on the first line) unless one exists."""
    reason = " ".join(reason.split()) or "training failed"
    # a stop (SIGTERM: StopTrainingJob, a time limit, a spot interruption) is no failure
    said = reason if reason.startswith("Training stopped:") else f"Training failed: {reason}"
    print(said, file=sys.stderr, flush=True)
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


#: How soon a SIGTERM that arrived inside a finaliser is raised again.
REDELIVER_SECONDS = 0.01


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    # an exception raised inside a finaliser (a ZipFile's __del__ as the garbage collector
    # runs it) is printed as "Exception ignored" with a traceback and then lost, so the job
    # would not stop: the signal comes again once the finaliser has returned
    if _in_finaliser(frame):
        threading.Timer(REDELIVER_SECONDS, signal.raise_signal, (signal.SIGTERM,)).start()
        return
    raise Stopped()


def _in_finaliser(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False
