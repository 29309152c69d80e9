"""The root example's ``train``, run the way SageMaker runs it.

Each test copies ``local_test/test_dir`` to a temp /opt/ml tree, changes what
it is about, and runs ``container/iris_classifier/train`` as a plain process
with ``SAGEMAKER_BASE_DIR`` pointing at the tree. A failed job must exit 1 with
the one-line reason first in ``output/failure`` and nothing in ``model/``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO

PROGRAM_DIR = REPO / "container" / "iris_classifier"
VALID_NAMES = "batch_size, epochs, l2, learning_rate, momentum, seed"
#: Keys the SageMaker Python SDK adds to every job's hyperparameters.
SDK_KEYS = {
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://bucket/job/source/sourcedir.tar.gz"',
    "sagemaker_container_log_level": "20",
    "sagemaker_job_name": '"job-2024-01-01-00-00-00-000"',
    "sagemaker_region": '"us-east-1"',
    "sagemaker_s3_output": '"s3://bucket/output"',
    "sagemaker_made_up_by_a_future_sdk": "1",
}


def config(root: Path, name: str) -> Path:
    return root / "input" / "config" / f"{name}.json"


def write_config(root: Path, name: str, data: Any) -> None:
    config(root, name).write_text(json.dumps(data), encoding="utf-8")


def channel(root: Path, name: str = "training") -> Path:
    return root / "input" / "data" / name


def data_file(root: Path) -> Path:
    return channel(root) / "iris.csv"


def train_env(root: Path) -> dict[str, str]:
    return {**os.environ, "SAGEMAKER_BASE_DIR": str(root), "PYTHONDONTWRITEBYTECODE": "1"}


def run_train(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROGRAM_DIR / "train")], env=train_env(root),
                          capture_output=True, text=True, timeout=120)


def model_files(root: Path) -> list[str]:
    return sorted(path.name for path in (root / "model").iterdir())


def assert_failed(root: Path, result: subprocess.CompletedProcess[str], reason: str) -> None:
    """Exit 1, *reason* as the first line of output/failure, no model."""
    assert result.returncode == 1, result.stdout + result.stderr
    failure = root / "output" / "failure"
    assert failure.read_text(encoding="utf-8").splitlines()[0] == reason
    assert model_files(root) == []
    assert reason in result.stderr  # the log says it too


def load_model(root: Path) -> Any:
    """The saved model, read by the container's own model module."""
    sys.path.insert(0, str(PROGRAM_DIR))  # model.py imports hyperparameters.py beside it
    try:
        spec = importlib.util.spec_from_file_location("iris_model", PROGRAM_DIR / "model.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(PROGRAM_DIR))
    return module.load(root / "model")


def test_a_good_run_writes_the_model_and_prints_the_metric(opt_ml: Path) -> None:
    result = run_train(opt_ml)

    assert result.returncode == 0, result.stderr
    assert re.search(r"^training:loss=0\.\d+; training:accuracy=(0\.9\d*|1);$", result.stdout,
                     re.MULTILINE), result.stdout
    epochs = re.findall(r"^epoch=(\d+) training:loss=(\S+); training:accuracy=\S+;$", result.stdout,
                        re.MULTILINE)
    assert [int(epoch) for epoch, _ in epochs] == list(range(1, 31))  # local_test's epochs: 30
    assert float(epochs[-1][1]) < float(epochs[0][1]) / 3  # the loss falls
    assert model_files(opt_ml) == ["model.npz"]  # and no partial or temp file beside it
    assert not (opt_ml / "output" / "failure").exists()
    fitted = load_model(opt_ml)
    assert (fitted.params["epochs"], fitted.params["learning_rate"]) == (30, 0.1)  # applied
    assert sorted(fitted.classes) == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [
        pytest.param({"epoch": "3"},
                     f"unknown hyperparameter 'epoch' (valid: {VALID_NAMES})", id="unknown"),
        pytest.param({"epochs": "0"},
                     "hyperparameter 'epochs': must be at least 1, got 0", id="below-range"),
        pytest.param({"epochs": "100001"},
                     "hyperparameter 'epochs': must be at most 100000, got 100001", id="above-range"),
        pytest.param({"epochs": "many"},
                     "hyperparameter 'epochs': expected an integer, got 'many'", id="wrong-type"),
        pytest.param({"batch_size": "2.5"},
                     "hyperparameter 'batch_size': expected an integer, got '2.5'",
                     id="fraction-for-int"),
        pytest.param({"learning_rate": "fast"},
                     "hyperparameter 'learning_rate': expected a number, got 'fast'", id="not-a-number"),
        pytest.param({"learning_rate": '"inf"'},
                     "hyperparameter 'learning_rate': expected a finite number, got 'inf'",
                     id="infinite-json-encoded"),
        pytest.param({"momentum": "1"},
                     "hyperparameter 'momentum': must be at most 0.999, got 1.0", id="float-above-range"),
        pytest.param({"epochs": "0", "colour": "red"},
                     f"unknown hyperparameter 'colour' (valid: {VALID_NAMES});"
                     " hyperparameter 'epochs': must be at least 1, got 0", id="every-problem-named"),
    ],
)
def test_bad_hyperparameters_fail_with_a_reason(opt_ml: Path, hyperparameters: dict[str, str],
                                                reason: str) -> None:
    write_config(opt_ml, "hyperparameters", {**SDK_KEYS, **hyperparameters})
    assert_failed(opt_ml, run_train(opt_ml), reason)


def test_json_encoded_values_are_accepted(opt_ml: Path) -> None:
    # What the SageMaker Python SDK sends for epochs=3, learning_rate=0.05
    write_config(opt_ml, "hyperparameters", {"epochs": '"3"', "learning_rate": '"0.05"',
                                             "batch_size": "8"})
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    fitted = load_model(opt_ml)
    assert (fitted.params["epochs"], fitted.params["learning_rate"],
            fitted.params["batch_size"]) == (3, 0.05, 8)


def test_sagemaker_keys_are_ignored(opt_ml: Path) -> None:
    write_config(opt_ml, "hyperparameters", SDK_KEYS)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert model_files(opt_ml) == ["model.npz"]


def test_missing_inputdataconfig_is_a_failure(opt_ml: Path) -> None:
    config(opt_ml, "inputdataconfig").unlink()
    path = config(opt_ml, "inputdataconfig")
    assert_failed(opt_ml, run_train(opt_ml), f"{path} is missing: SageMaker writes it for every job")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('["training"]', "must hold a JSON object, found list"),
    ],
)
def test_unreadable_inputdataconfig_is_a_failure(opt_ml: Path, text: str, problem: str) -> None:
    path = config(opt_ml, "inputdataconfig")
    path.write_text(text, encoding="utf-8")
    assert_failed(opt_ml, run_train(opt_ml), f"{path} {problem}")


def test_an_unconfigured_training_channel_is_a_failure(opt_ml: Path) -> None:
    write_config(opt_ml, "inputdataconfig", {"train": {"TrainingInputMode": "File"}})
    assert_failed(opt_ml, run_train(opt_ml),
                  "channel 'training' is required but not configured (channels: train)")


def test_a_channel_entry_that_is_not_an_object_is_a_failure(opt_ml: Path) -> None:
    write_config(opt_ml, "inputdataconfig", {"training": "File"})
    assert_failed(opt_ml, run_train(opt_ml),
                  "channel 'training': its inputdataconfig.json entry must be a JSON object")


def test_a_missing_channel_directory_is_a_failure(opt_ml: Path) -> None:
    shutil.rmtree(channel(opt_ml))
    assert_failed(opt_ml, run_train(opt_ml),
                  f"channel 'training' has no data: {channel(opt_ml)} does not exist")


def test_an_empty_channel_is_a_failure(opt_ml: Path) -> None:
    data_file(opt_ml).unlink()
    (channel(opt_ml) / ".hidden.csv").write_text("setosa,1,2,3,4\n")  # hidden files do not count
    assert_failed(opt_ml, run_train(opt_ml),
                  f"channel 'training' is empty: no files in {channel(opt_ml)}")


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_rows_of_differing_width_name_the_file_and_line(opt_ml: Path) -> None:
    path = data_file(opt_ml)
    replace_line(path, 7, "setosa,5.4,3.9,1.7")
    assert_failed(opt_ml, run_train(opt_ml),
                  f"{path}:7: expected 5 columns (as at {path}:1), found 4")


def test_a_non_numeric_feature_names_the_file_line_and_column(opt_ml: Path) -> None:
    path = data_file(opt_ml)
    replace_line(path, 12, "setosa,4.8,3.4,n/a,0.2")
    assert_failed(opt_ml, run_train(opt_ml), f"{path}:12: column 4 is not a number: 'n/a'")


def test_a_non_utf8_file_is_a_failure(opt_ml: Path) -> None:
    path = data_file(opt_ml)
    good = path.read_bytes()
    path.write_bytes(good + b"virginica,5.9,3.0,5.1,1.8 \xff\n")
    assert_failed(opt_ml, run_train(opt_ml),
                  f"{path}: not UTF-8 text (invalid start byte at byte {len(good) + 26})")


def test_a_byte_order_mark_does_not_become_part_of_a_label(opt_ml: Path) -> None:
    path = data_file(opt_ml)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Excel saves "CSV UTF-8"
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert sorted(load_model(opt_ml).classes) == ["setosa", "versicolor", "virginica"]


def test_an_unknown_input_mode_is_refused(opt_ml: Path) -> None:
    write_config(opt_ml, "inputdataconfig", {"training": {"TrainingInputMode": "Stream"}})
    assert_failed(opt_ml, run_train(opt_ml),
                  "channel 'training': input mode 'Stream' is not supported; use one of File, FastFile, Pipe")


def add_validation_channel(root: Path, lines: list[str]) -> None:
    write_config(root, "inputdataconfig", {
        "training": {"TrainingInputMode": "File", "ContentType": "text/csv"},
        "validation": {"TrainingInputMode": "FastFile"},
    })
    channel(root, "validation").mkdir()
    (channel(root, "validation") / "holdout.csv").write_text("\n".join(lines) + "\n")


def test_a_validation_channel_is_scored(opt_ml: Path) -> None:
    add_validation_channel(opt_ml, data_file(opt_ml).read_text().splitlines()[::10])
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^training:loss=\S+; training:accuracy=(0\.\d+|1);$", result.stdout, re.MULTILINE)
    assert re.search(r"^validation:loss=\S+; validation:accuracy=(0\.\d+|1);$", result.stdout,
                     re.MULTILINE), result.stdout
    assert re.search(r"^epoch=30 validation:loss=\S+; validation:accuracy=(0\.\d+|1);$",
                     result.stdout, re.MULTILINE), result.stdout
    assert model_files(opt_ml) == ["model.npz"]


def test_a_validation_channel_of_another_width_is_a_failure(opt_ml: Path) -> None:
    add_validation_channel(opt_ml, ["setosa,5.1,3.5,1.4", "virginica,6.3,3.3,6.0"])
    assert_failed(opt_ml, run_train(opt_ml),
                  "channel 'validation' has 3 feature columns, the training channel has 4")


def test_a_long_value_is_cut_short_in_the_reason(opt_ml: Path) -> None:
    # CreateTrainingJob allows values of 2500 characters; FailureReason shows 1024.
    write_config(opt_ml, "hyperparameters", {"learning_rate": "x" * 2500})
    result = run_train(opt_ml)
    assert_failed(opt_ml, result, "hyperparameter 'learning_rate': expected a number,"
                  f" got {'x' * 40!r}... (2500 characters)")


def test_a_reason_over_1024_characters_keeps_a_useful_marked_first_line(opt_ml: Path) -> None:
    # 40 unknown keys of 200 characters: the reason is about 11,000 characters.
    keys = {f"{n:02d}{'k' * 198}": "1" for n in range(40)}
    write_config(opt_ml, "hyperparameters", keys)
    result = run_train(opt_ml)

    assert result.returncode == 1
    text = (opt_ml / "output" / "failure").read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert len(first) == 1024  # what SageMaker shows, and nothing of it wasted
    assert first.startswith(f"unknown hyperparameter '00{'k' * 198}' (valid: {VALID_NAMES}); ")
    assert first.endswith("...")  # says it was cut
    assert model_files(opt_ml) == []


def test_an_existing_failure_file_is_not_overwritten(opt_ml: Path) -> None:
    failure = opt_ml / "output" / "failure"
    failure.write_text("the platform's own reason\n")
    write_config(opt_ml, "hyperparameters", {"epochs": "many"})
    result = run_train(opt_ml)
    assert result.returncode == 1
    assert failure.read_text() == "the platform's own reason\n"
    assert "hyperparameter 'epochs': expected an integer" in result.stderr


@pytest.mark.parametrize(("host", "saves"), [("algo-1", True), ("algo-2", False)])
def test_only_the_first_host_saves_the_model(opt_ml: Path, host: str, saves: bool) -> None:
    hosts = ["algo-1", "algo-2"]
    write_config(opt_ml, "resourceconfig", {
        "current_host": host, "hosts": hosts, "network_interface_name": "eth0",
        "current_group_name": "homogeneousCluster", "current_instance_type": "ml.m5.large",
        "instance_groups": [{"instance_group_name": "homogeneousCluster",
                             "instance_type": "ml.m5.large", "hosts": hosts}],
    })
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "training:accuracy=" in result.stdout  # every host trains
    assert model_files(opt_ml) == (["model.npz"] if saves else [])
    assert not (opt_ml / "output" / "failure").exists()


def write_big_csv(path: Path, rows: int) -> None:
    generator = random.Random(0)
    labels = ["setosa", "versicolor", "virginica"]
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(rows):
            handle.write(f"{generator.choice(labels)},{generator.uniform(4, 8):.1f},"
                         f"{generator.uniform(2, 4.5):.1f},{generator.uniform(1, 7):.1f},"
                         f"{generator.uniform(0.1, 2.5):.1f}\n")


def test_sigterm_while_training_stops_with_143_and_a_reason(opt_ml: Path) -> None:
    # 400,000 rows take this CSV reader over a second: time to be stopped while reading.
    write_big_csv(channel(opt_ml) / "big.csv", 400_000)
    process = subprocess.Popen([sys.executable, str(PROGRAM_DIR / "train")], env=train_env(opt_ml),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed just before the channel is read
        assert first.startswith("algo-1: hosts algo-1;"), first
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 143, err
    assert time.monotonic() - started < 10
    assert "training:accuracy=" not in out  # it really was stopped before the end
    reason = (opt_ml / "output" / "failure").read_text().splitlines()[0]
    assert reason == "Training stopped: SIGTERM received before training finished"
    assert "Training failed" not in err  # a stop is said as a stop
    assert model_files(opt_ml) == []


# ---- the model module as the user writes it -------------------------------------------------


def program_with_model(parent: Path, source: str) -> Path:
    """A copy of the program dir whose model.py is *source*; the real one is real_model.py."""
    program = parent / "program"
    shutil.copytree(PROGRAM_DIR, program, ignore=shutil.ignore_patterns("__pycache__"))
    (program / "model.py").rename(program / "real_model.py")
    (program / "model.py").write_text(source, encoding="utf-8")
    return program


def run_program(program: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(program / "train")], env=train_env(root),
                          capture_output=True, text=True, timeout=120)


def test_a_module_missing_at_import_is_a_written_failure(opt_ml: Path, tmp_path: Path) -> None:
    program = program_with_model(tmp_path, "import no_such_library_xyz  # noqa\n"
                                           "from real_model import *  # noqa\n")
    result = run_program(program, opt_ml)
    assert_failed(opt_ml, result, "ModuleNotFoundError: No module named 'no_such_library_xyz'")
    detail = (opt_ml / "output" / "failure").read_text(encoding="utf-8")
    assert "Traceback" in detail and "import no_such_library_xyz" in detail


SAVES_BY_EXTENSION = '''
import json
from pathlib import Path

from real_model import HYPERPARAMETERS, fit, metrics, predict  # noqa: F401
import real_model

def save(model, model_dir):
    # a library that picks the format from the file name, as XGBoost does for model.json
    assert model_dir.is_dir() and not list(model_dir.iterdir())
    real_model.save(model, model_dir)
    (model_dir / "model.json").write_text(json.dumps({"saved_as": (model_dir / "model.json").suffix}))
    (model_dir / "extra").mkdir()
    (model_dir / "extra" / "vocabulary.txt").write_text("a\\n")

def load(model_dir):
    return real_model.load(model_dir)
'''


def test_save_writes_final_names_into_a_directory_moved_into_place(opt_ml: Path, tmp_path: Path) -> None:
    result = run_program(program_with_model(tmp_path, SAVES_BY_EXTENSION), opt_ml)
    assert result.returncode == 0, result.stderr
    assert model_files(opt_ml) == ["extra", "model.json", "model.npz"]  # nothing else left
    assert json.loads((opt_ml / "model" / "model.json").read_text()) == {"saved_as": ".json"}
    assert (opt_ml / "model" / "extra" / "vocabulary.txt").read_text() == "a\n"
    model_dir = opt_ml / "model"
    assert (f"algo-1: model saved to {model_dir / 'extra'}, {model_dir / 'model.json'},"
            f" {model_dir / 'model.npz'}\n") in result.stdout


def test_a_save_that_fails_leaves_no_file(opt_ml: Path, tmp_path: Path) -> None:
    source = SAVES_BY_EXTENSION.replace('    (model_dir / "extra").mkdir()',
                                        '    raise OSError("disk full")')
    result = run_program(program_with_model(tmp_path, source), opt_ml)
    assert_failed(opt_ml, result, "OSError: disk full")


def test_a_save_that_writes_nothing_is_a_failure(opt_ml: Path, tmp_path: Path) -> None:
    source = SAVES_BY_EXTENSION.replace("    real_model.save(model, model_dir)\n", "    return\n")
    result = run_program(program_with_model(tmp_path, source), opt_ml)
    assert_failed(opt_ml, result, "model.save wrote no file into the directory it was given")


# ---- what fit gets besides the data: Job ----------------------------------------------------

SHOWS_THE_JOB = '''
import real_model
from real_model import HYPERPARAMETERS, load, metrics, predict, save  # noqa: F401

def fit(training, validation, job):
    previous = job.previous_model_dir
    print(f"checkpoint_dir={job.checkpoint_dir}")
    print(f"previous={sorted(p.name for p in previous.iterdir()) if previous else None}")
    if previous:
        print(f"previous classes={sorted(load(previous).classes.tolist())}")
    for epoch in (1, 2):
        job.report({"loss": 1.0 / epoch, "rows": len(training)}, "training", epoch=epoch)
    if job.checkpoint_dir:
        (job.checkpoint_dir / "epoch-2.txt").write_text("resume here")
    return real_model.fit(training, validation, job)
'''


def test_fit_reports_metrics_per_epoch(opt_ml: Path, tmp_path: Path) -> None:
    result = run_program(program_with_model(tmp_path, SHOWS_THE_JOB), opt_ml)
    assert result.returncode == 0, result.stderr
    assert "epoch=1 training:loss=1; training:rows=120;\nepoch=2 training:loss=0.5; training:rows=120;\n" \
        in result.stdout
    assert "checkpoint_dir=None\nprevious=None\n" in result.stdout


def test_fit_gets_the_previous_model_unpacked(opt_ml: Path, tmp_path: Path) -> None:
    assert run_train(opt_ml).returncode == 0  # a first job
    previous = channel(opt_ml, "model")
    previous.mkdir()
    with tarfile.open(previous / "model.tar.gz", "w:gz") as archive:
        archive.add(opt_ml / "model" / "model.npz", arcname="model.npz")
    shutil.rmtree(opt_ml / "model")
    (opt_ml / "model").mkdir()
    write_config(opt_ml, "inputdataconfig", {
        "training": {"TrainingInputMode": "File"},
        "model": {"TrainingInputMode": "File", "ContentType": "application/x-sagemaker-model"},
    })
    result = run_program(program_with_model(tmp_path, SHOWS_THE_JOB), opt_ml)
    assert result.returncode == 0, result.stderr
    assert "previous=['model.npz']" in result.stdout
    assert "previous classes=['setosa', 'versicolor', 'virginica']" in result.stdout


def test_a_previous_model_archive_reaching_outside_is_refused(opt_ml: Path, tmp_path: Path) -> None:
    previous = channel(opt_ml, "model")
    previous.mkdir()
    payload = tmp_path / "evil.txt"
    payload.write_text("x")
    with tarfile.open(previous / "model.tar.gz", "w:gz") as archive:
        archive.add(payload, arcname="../evil.txt")
    write_config(opt_ml, "inputdataconfig", {"training": {}, "model": {}})
    result = run_program(program_with_model(tmp_path, SHOWS_THE_JOB), opt_ml)
    assert_failed(opt_ml, result, f"{previous / 'model.tar.gz'}: refusing member '../evil.txt':"
                  " only plain files and directories inside the archive")


def test_a_local_path_under_opt_ml_is_taken_under_the_trees_root(opt_ml: Path) -> None:
    # SageMaker's own checkpointconfig.json, with the tree elsewhere (SAGEMAKER_BASE_DIR)
    write_config(opt_ml, "checkpointconfig", {"LocalPath": "/opt/ml/checkpoints"})
    write_config(opt_ml, "hyperparameters", {"epochs": "4"})
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (opt_ml / "checkpoints").iterdir()) == [
        "epoch-000002.npz", "epoch-000003.npz", "epoch-000004.npz"]
    write_config(opt_ml, "hyperparameters", {"epochs": "6"})
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert (f"resuming from checkpoint {opt_ml / 'checkpoints' / 'epoch-000004.npz'} (epoch 4)\n"
            in result.stdout)


def test_fit_gets_the_checkpoint_dir_of_checkpointconfig(opt_ml: Path, tmp_path: Path) -> None:
    local = tmp_path / "checkpoints"
    write_config(opt_ml, "checkpointconfig", {"LocalPath": str(local)})
    result = run_program(program_with_model(tmp_path, SHOWS_THE_JOB), opt_ml)
    assert result.returncode == 0, result.stderr
    assert f"checkpoint_dir={local}\n" in result.stdout
    assert (local / "epoch-2.txt").read_text() == "resume here"


# ---- input modes: File, FastFile and Pipe ---------------------------------------------------

RECORDIO_MAGIC = 0xCED7230A


def recordio(payload: bytes, flag: int = 0) -> bytes:
    """*payload* as one RecordIO record (or part, by *flag*), padded to 4 bytes."""
    return (struct.pack("<II", RECORDIO_MAGIC, (flag << 29) | len(payload)) + payload
            + b"\0" * ((4 - len(payload) % 4) % 4))


@pytest.fixture
def fifos() -> Iterator[Callable[..., None]]:
    """Feed named pipes from threads as SageMaker does in Pipe mode; unblock leftovers at the end."""
    made: list[tuple[Path, threading.Thread]] = []

    def feed(path: Path, data: bytes, delay: float = 0.0) -> None:
        def write() -> None:
            time.sleep(delay)
            os.mkfifo(path)
            try:
                with path.open("wb") as pipe:  # blocks until train opens its end
                    for start in range(0, len(data), 4096):
                        pipe.write(data[start:start + 4096])
            except BrokenPipeError:  # the reader closed early: the epoch is over
                pass

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        made.append((path, thread))

    yield feed
    for path, thread in made:
        if thread.is_alive() and path.exists():
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets a blocked writer finish
            thread.join(timeout=5)
            os.close(descriptor)


def use_pipe_mode(root: Path, wrapper: str = "None", **more: dict[str, str]) -> bytes:
    """Configure the training channel for Pipe mode, remove its directory, return its data."""
    data = data_file(root).read_bytes()
    shutil.rmtree(channel(root))
    write_config(root, "inputdataconfig", {
        "training": {"ContentType": "text/csv", "TrainingInputMode": "Pipe",
                     "S3DistributionType": "FullyReplicated", "RecordWrapperType": wrapper},
        **more,
    })
    return data


def test_recordio_reader_decodes_the_documented_bytes() -> None:
    sys.path.insert(0, str(PROGRAM_DIR))
    try:
        import channels
    finally:
        sys.path.remove(str(PROGRAM_DIR))
    stream = io.BytesIO(bytes.fromhex("0a23d7ce01000000310000000a23d7ce0400000061626364"))
    assert list(channels.read_recordio(stream, "x")) == [b"1", b"abcd"]
    assert recordio(b"1") == bytes.fromhex("0a23d7ce0100000031000000")


def test_pipe_mode_reads_the_epoch_fifo(opt_ml: Path, fifos: Callable[..., None]) -> None:
    data = use_pipe_mode(opt_ml)
    fifos(opt_ml / "input" / "data" / "training_0", data)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "channel training: 120 rows" in result.stdout
    assert model_files(opt_ml) == ["model.npz"]


def test_pipe_mode_waits_for_a_fifo_that_appears_late(opt_ml: Path, fifos: Callable[..., None]) -> None:
    data = use_pipe_mode(opt_ml)
    fifos(opt_ml / "input" / "data" / "training_0", data, delay=0.7)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "channel training: 120 rows" in result.stdout


def test_pipe_mode_reads_recordio_wrapped_objects(opt_ml: Path, fifos: Callable[..., None]) -> None:
    lines = use_pipe_mode(opt_ml, "RecordIO").decode().splitlines(keepends=True)
    objects = ["".join(lines[:50]).encode(), "".join(lines[50:101]).encode(), "".join(lines[101:]).encode()]
    third = objects[2]
    stream = (recordio(objects[0]) + recordio(objects[1])
              # the last object as a multi-part record: first, middle and last parts
              + recordio(third[:7], flag=1) + recordio(third[7:100], flag=2) + recordio(third[100:], flag=3))
    fifos(opt_ml / "input" / "data" / "training_0", stream)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "channel training: 120 rows" in result.stdout


def test_pipe_mode_reads_two_channels_fed_at_once(opt_ml: Path, fifos: Callable[..., None]) -> None:
    data = use_pipe_mode(opt_ml, validation={"TrainingInputMode": "Pipe"})
    fifos(opt_ml / "input" / "data" / "training_0", data)
    fifos(opt_ml / "input" / "data" / "validation_0", b"".join(data.splitlines(keepends=True)[::10]))
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "channel validation: 12 rows" in result.stdout  # every 10th of 120
    assert re.search(r"^validation:loss=\S+; validation:accuracy=(0\.\d+|1);$", result.stdout,
                     re.MULTILINE), result.stdout


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        pytest.param(b"setosa,5.1,3.5,1.4,0.2\n", "not RecordIO: a record header does not start with"
                     " the magic number", id="not-recordio"),
        pytest.param(recordio(b"setosa,5.1,3.5,1.4,0.2\n")[:-6], "the RecordIO stream ends in the middle"
                     " of a record", id="truncated"),
    ],
)
def test_pipe_mode_bad_recordio_is_a_failure(opt_ml: Path, fifos: Callable[..., None], stream: bytes,
                                             problem: str) -> None:
    use_pipe_mode(opt_ml, "RecordIO")
    fifo = opt_ml / "input" / "data" / "training_0"
    fifos(fifo, stream)
    assert_failed(opt_ml, run_train(opt_ml), f"{fifo}: {problem}")


def test_pipe_mode_rows_name_the_fifo_and_line(opt_ml: Path, fifos: Callable[..., None]) -> None:
    data = use_pipe_mode(opt_ml)
    fifo = opt_ml / "input" / "data" / "training_0"
    fifos(fifo, data + b"setosa,4.8,n/a,1.4,0.2\n")
    assert_failed(opt_ml, run_train(opt_ml), f"{fifo}:121: column 3 is not a number: 'n/a'")


def test_sigterm_while_waiting_for_a_fifo_stops_with_143(opt_ml: Path) -> None:
    use_pipe_mode(opt_ml)  # and no FIFO ever appears
    process = subprocess.Popen([sys.executable, str(PROGRAM_DIR / "train")], env=train_env(opt_ml),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("algo-1: hosts")
        time.sleep(0.5)  # polling for training_0
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143
    reason = (opt_ml / "output" / "failure").read_text().splitlines()[0]
    assert reason == "Training stopped: SIGTERM received before training finished"


def test_fastfile_mode_reads_a_read_only_channel(opt_ml: Path) -> None:
    write_config(opt_ml, "inputdataconfig", {"training": {"TrainingInputMode": "FastFile"}})
    data_file(opt_ml).chmod(0o444)
    channel(opt_ml).chmod(0o555)
    try:
        result = run_train(opt_ml)
    finally:
        channel(opt_ml).chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert "channel training: 120 rows" in result.stdout


def test_sigterm_inside_a_finaliser_stops_the_job_once_it_returns() -> None:
    """A SIGTERM that arrives while the garbage collector runs a ``__del__`` (a ZipFile's, as
    an epoch's checkpoint is read) is raised once the finaliser returns: not printed as an
    "Exception ignored" traceback and lost."""
    script = "\n".join([
        "import signal, sys, time",
        f"sys.path.insert(0, {str(PROGRAM_DIR)!r})",
        "import training",
        "signal.signal(signal.SIGTERM, training._raise_stopped)",
        "class Slow:",
        "    def __del__(self):",
        "        print('in __del__', flush=True)",
        "        time.sleep(1.0)",
        "try:",
        "    slow = Slow()",
        "    del slow",
        "    print('after __del__', flush=True)",
        "    time.sleep(10)",
        "except training.Stopped:",
        "    print('stopped', flush=True)",
    ])
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "in __del__\n"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out.splitlines() == ["after __del__", "stopped"]
    assert "Exception ignored" not in err and "Traceback" not in err
