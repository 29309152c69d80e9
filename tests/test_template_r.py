"""The R template: ``byoc new NAME --set framework=r``.

The project is rendered once per session and its image built once. Training
runs the way SageMaker runs it (a fresh /opt/ml tree; SIGTERM, Pipe mode,
checkpoints, a previous model) both in the image and, when R is installed
here, as plain processes; serving runs through byoc's own harness on both
backends, and a slow model shows that /ping keeps answering within 2 s.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hosting_checks import listening_ports
from nginx_checks import assert_every_error_is_plain_text, assert_ping_survives_slow_clients

from byoc import invoke, local, scaffold
from byoc.backends.base import Backend
from byoc.backends.process import ProcessBackend
from byoc.errors import ServeError
from byoc.project import Project
from helpers import built_image, evaluate_in_image, free_port, train_job

NAME = "r-iris"
PROGRAM = "r_iris"
RSCRIPT = shutil.which("Rscript")


def _r_packages_missing(*packages: str) -> list[str]:
    if RSCRIPT is None:
        return list(packages)
    probe = "w <- commandArgs(TRUE); cat(w[!vapply(w, requireNamespace, logical(1), quietly = TRUE)])"
    found = subprocess.run([RSCRIPT, "--vanilla", "-e", probe, *packages], capture_output=True,
                           text=True, check=False, timeout=60)
    return found.stdout.split() if found.returncode == 0 else list(packages)


MISSING_FOR_PROCESS = _r_packages_missing("jsonlite", "plumber") + (
    [] if shutil.which("nginx") else ["nginx"])
NEEDS_R = pytest.mark.skipif(
    bool(MISSING_FOR_PROCESS),
    reason=f"the process backend needs Rscript, the R packages jsonlite and plumber, and nginx here;"
           f" missing: {', '.join(MISSING_FOR_PROCESS)} (Debian: r-base-core r-cran-jsonlite"
           f" r-cran-plumber nginx)")
KINDS = [pytest.param("docker", marks=pytest.mark.docker), pytest.param("process", marks=NEEDS_R)]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]
LABELS = ["setosa", "virginica"]
CSV_ROWS = "5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n"
SLOW_SECONDS = 5
#: model.R with a predict_rows that sleeps first: an invocation that keeps its R process busy.
SLOW_PREDICT = f"""
predict_rows <- function(model, x) {{
  Sys.sleep({SLOW_SECONDS})
  model$classes[max.col(class_probabilities(model, x), ties.method = "first")]
}}
"""


# ---- the project and its image ---------------------------------------------------------------


@pytest.fixture(scope="session")
def r_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The R template rendered once for the session (do not modify it)."""
    return scaffold.new_project(NAME, output_dir=tmp_path_factory.mktemp("r-project"),
                                extra_context={"framework": "r"})


@pytest.fixture(scope="session")
def r_image(docker_client: Any, base_image: str, r_project: Path) -> Iterator[str]:
    """The R project's image, built once per session and removed afterwards."""
    tag = f"byoc-test-r-iris:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, r_project, tag, base_image):
        yield tag


def test_the_r_project_has_the_r_runtime_and_nothing_of_python(r_project: Path) -> None:
    program = r_project / "container" / PROGRAM
    assert sorted(p.name for p in program.iterdir()) == [
        "channels.R", "contract.R", "data.R", "evaluate", "evaluate.R", "evaluation.R", "model.R",
        "payloads.R", "serve", "serve.R", "train", "train.R", "worker.R"]
    for name in ("train", "serve", "evaluate"):
        assert (program / name).stat().st_mode & 0o111, f"{name} must be executable"
    assert not list(r_project.rglob("*.py")), "an R project has no Python files"
    assert not (r_project / "requirements.txt").exists()
    assert not (r_project / "container" / "r-program").exists()
    assert sorted(p.name for p in (r_project / "tests").iterdir()) == ["testthat"]
    dockerfile = (r_project / "Dockerfile").read_text()
    assert "r-base-core r-cran-plumber r-cran-jsonlite nginx" in dockerfile
    assert "--no-install-recommends" in dockerfile and "pip" not in dockerfile
    assert "install.packages" not in dockerfile, "nothing from CRAN at build time"
    assert f"COPY container/{PROGRAM} /opt/program" in dockerfile
    makefile = (r_project / "Makefile").read_text()
    assert "testthat::test_dir" in makefile and "pytest" not in makefile
    readme = (r_project / "README.md").read_text()
    assert f"`container/{PROGRAM}/model.R` | yours" in readme
    assert f"`container/{PROGRAM}/train.R` | runtime" in readme
    hyperparameters = json.loads(
        (r_project / "local_test" / "test_dir" / "input" / "config" / "hyperparameters.json").read_text())
    assert hyperparameters["epochs"] == "100"
    # every runtime file says so first; the user's say theirs
    for path in program.iterdir():
        first = path.read_text().splitlines()[1 if path.name in ("train", "serve", "evaluate") else 0]
        assert first.startswith("# Runtime:" if path.name not in ("data.R", "model.R", "payloads.R")
                                else "# Yours"), path.name


def test_the_default_project_has_no_r_files(default_project: Path) -> None:
    assert not list(default_project.rglob("*.R"))
    assert not (default_project / "tests" / "testthat").exists()
    assert not (default_project / "container" / "r-program").exists()


@pytest.mark.skipif(bool(_r_packages_missing("jsonlite", "testthat")),
                    reason="make test needs Rscript with jsonlite and testthat (Debian: r-base-core"
                           " r-cran-jsonlite r-cran-testthat)")
def test_the_projects_own_tests_pass(r_project: Path, tmp_path: Path) -> None:
    project = shutil.copytree(r_project, tmp_path / NAME)
    done = subprocess.run(["make", "test"], cwd=project, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\[ FAIL 0 \| WARN 0 \| SKIP 0 \| PASS \d+ \]", done.stdout), done.stdout


def test_the_process_backend_names_rscript_when_r_is_missing(r_project: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    byoc = shutil.which("byoc")
    assert byoc is not None
    (bin_dir / "byoc").symlink_to(byoc)  # its shebang names its Python: PATH holds nothing else
    for command in (["local", "train"], ["local", "serve"]):
        done = subprocess.run(["byoc", *command, "--backend", "process"], cwd=r_project,
                              env={**os.environ, "PATH": str(bin_dir)}, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
        assert "Rscript is not on PATH" in lines[0] and "r-base-core" in lines[0]
    assert not (r_project / ".byoc").exists()


@pytest.mark.skipif(RSCRIPT is None, reason="needs Rscript to hide its packages from")
def test_the_process_backend_names_the_missing_r_packages(r_project: Path, tmp_path: Path) -> None:
    # Debian's Renviron puts the r-cran-* packages on R_LIBS_SITE: point it elsewhere
    hidden = {**os.environ, "R_LIBS_SITE": str(tmp_path)}
    probe = subprocess.run(
        [str(RSCRIPT), "--vanilla", "-e", "cat(requireNamespace('plumber', quietly = TRUE))"],
        env=hidden, capture_output=True, text=True, timeout=60, check=False)
    if probe.stdout.strip() != "FALSE":
        pytest.skip("plumber is installed where R_LIBS_SITE does not hide it")
    model = tmp_path / "model"
    model.mkdir()
    done = subprocess.run(["byoc", "local", "serve", "--backend", "process", "--model", str(model)],
                          cwd=r_project, env=hidden, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: Rscript (") and "lacks R packages that serve needs:" in lines[-1]
    assert "plumber" in lines[-1] and sum(line.startswith("Error") for line in lines) == 1


@pytest.mark.docker
def test_the_image_passes_byoc_validate(r_image: str, r_project: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run(["byoc", "validate", r_image, "--json", str(report)], cwd=r_project,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed" in done.stdout


def test_evaluate_in_the_image_scores_the_held_out_test_set(r_image: str, r_project: Path,
                                                            docker_client: Any, tmp_path: Path) -> None:
    """The image's evaluate, as a processing job runs it: the image's R writes PNGs (cairo)."""
    report = evaluate_in_image(docker_client, r_image, r_project, tmp_path)
    found = report["multiclass_classification_metrics"]
    assert "plots" not in found  # not skipped
    assert found["accuracy"]["value"] > 0.8 and found["auc"]["value"] > 0.9
    assert sum(sum(row.values()) for row in found["confusion_matrix"].values()) == 30
    assert sorted(found["per_class"]) == ["setosa", "versicolor", "virginica"]


# ---- training, the way SageMaker runs it -----------------------------------------------------


class TrainHandle:
    """One running ``train``: its log so far, SIGTERM, its exit status."""

    def log(self) -> str:
        raise NotImplementedError

    def sigterm(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> int:
        raise NotImplementedError


@dataclass
class ProcessTrain(TrainHandle):
    process: subprocess.Popen[bytes]
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def sigterm(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # to `train` only, as docker stop does to PID 1

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)


@dataclass
class ContainerTrain(TrainHandle):
    container: Any

    def log(self) -> str:
        return bytes(self.container.logs()).decode(errors="replace")

    def sigterm(self) -> None:
        self.container.kill(signal="SIGTERM")

    def wait(self, timeout: float) -> int:
        return int(self.container.wait(timeout=timeout)["StatusCode"])


StartTrain = Callable[[Path], TrainHandle]


@pytest.fixture(params=KINDS)
def start_train(request: pytest.FixtureRequest, r_project: Path, tmp_path: Path
                ) -> Iterator[StartTrain]:
    """Starts ``train`` on an /opt/ml tree: in the image, or as a process with SAGEMAKER_BASE_DIR."""
    started: list[TrainHandle] = []

    def start(root: Path) -> TrainHandle:
        handle: TrainHandle
        if request.param == "docker":
            client = request.getfixturevalue("docker_client")
            image = request.getfixturevalue("r_image")
            handle = ContainerTrain(client.containers.run(
                image, "train", detach=True, network_mode="none",
                volumes={str(root): {"bind": "/opt/ml", "mode": "rw"}}))
        else:
            log_file = tmp_path / f"train-{len(started)}.log"
            with log_file.open("wb") as sink:
                process = subprocess.Popen(
                    [str(r_project / "container" / PROGRAM / "train")], stdout=sink,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                    env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)})
            handle = ProcessTrain(process, log_file)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        if isinstance(handle, ContainerTrain):
            handle.container.remove(force=True)
        elif isinstance(handle, ProcessTrain) and handle.process.poll() is None:
            os.killpg(handle.process.pid, signal.SIGKILL)
            handle.process.wait()


def run_to_end(start: StartTrain, root: Path) -> tuple[int, str]:
    handle = start(root)
    status = handle.wait(timeout=300)
    return status, handle.log()


@pytest.fixture
def opt_ml(r_project: Path, tmp_path: Path) -> Path:
    return new_opt_ml(r_project, tmp_path / "opt_ml")


def new_opt_ml(project: Path, root: Path, **hyperparameters: str) -> Path:
    """A copy of the project's local_test/test_dir, as SageMaker lays out /opt/ml."""
    shutil.copytree(project / "local_test" / "test_dir", root)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    if hyperparameters:
        write_config(root, "hyperparameters", hyperparameters)
    return root


def write_config(root: Path, name: str, data: Any) -> None:
    (root / "input" / "config" / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def losses(log: str, channel: str = "training") -> dict[int, float]:
    """Each epoch's loss from the metric lines."""
    return {int(m[1]): float(m[2])
            for m in re.finditer(rf"^epoch=(\d+) (?:.* )?{channel}:loss=([-+0-9.eE]+);", log, re.MULTILINE)}


def failure(root: Path) -> str:
    return (root / "output" / "failure").read_text().splitlines()[0]


def test_train_fits_and_prints_metrics_per_epoch(start_train: StartTrain, opt_ml: Path) -> None:
    write_config(opt_ml, "hyperparameters", {"epochs": "30", "learning_rate": '"0.5"',
                                             "sagemaker_region": '"us-east-1"'})
    status, log = run_to_end(start_train, opt_ml)
    assert status == 0, log
    assert sorted(losses(log)) == list(range(1, 31))
    assert losses(log)[30] < losses(log)[1]
    assert re.search(r"^epoch=30 training:loss=[0-9.e-]+; training:accuracy=0\.9\d*;$", log, re.MULTILINE)
    assert sorted(p.name for p in (opt_ml / "model").iterdir()) == ["model.rds"]
    assert not (opt_ml / "output" / "failure").exists()


def test_a_validation_channel_is_scored_each_epoch(start_train: StartTrain, opt_ml: Path) -> None:
    rows = (opt_ml / "input" / "data" / "training" / "iris.csv").read_text().splitlines()
    (opt_ml / "input" / "data" / "validation").mkdir()
    (opt_ml / "input" / "data" / "validation" / "part.csv").write_text("\n".join(rows[::5]) + "\n")
    write_config(opt_ml, "inputdataconfig", {"training": {"TrainingInputMode": "File"},
                                             "validation": {"TrainingInputMode": "FastFile"}})
    write_config(opt_ml, "hyperparameters", {"epochs": "3"})
    status, log = run_to_end(start_train, opt_ml)
    assert status == 0, log
    assert "channel validation: 24 rows" in log  # rows[::5] of 120
    assert sorted(losses(log, "validation")) == [1, 2, 3]
    assert re.search(r"^epoch=3 training:loss=\S+; training:accuracy=\S+; validation:loss=\S+;"
                     r" validation:accuracy=\S+;$", log, re.MULTILINE), log


def test_a_bad_hyperparameter_writes_the_failure_file(start_train: StartTrain, opt_ml: Path) -> None:
    write_config(opt_ml, "hyperparameters", {"epochs": "ten", "momentum": "0.9"})
    status, log = run_to_end(start_train, opt_ml)
    assert status == 1, log
    assert failure(opt_ml) == ("hyperparameter 'epochs': expected an integer, got 'ten'; unknown"
                               " hyperparameter 'momentum' (valid: epochs, l2, learning_rate, seed)")
    assert not list((opt_ml / "model").iterdir())


@pytest.mark.parametrize("name", ["hyperparameters", "inputdataconfig", "resourceconfig"])
def test_a_deeply_nested_config_file_writes_one_clear_failure_line(start_train: StartTrain,
                                                                    opt_ml: Path, name: str) -> None:
    path = opt_ml / "input" / "config" / f"{name}.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    status, log = run_to_end(start_train, opt_ml)
    assert status == 1, log[-2000:]
    reason = (opt_ml / "output" / "failure").read_text()
    # the path as the container sees it: /opt/ml/... in the image, the tree itself as a process
    assert re.fullmatch(rf"(/opt/ml|{re.escape(str(opt_ml))})/input/config/{name}\.json is not valid"
                        r" JSON: nested too deeply", reason.splitlines()[0]), reason[:500]
    assert len(reason) < 1024
    assert not list((opt_ml / "model").iterdir())


def test_sigterm_stops_after_the_epoch_and_still_saves_the_model(start_train: StartTrain,
                                                                  opt_ml: Path) -> None:
    write_config(opt_ml, "hyperparameters", {"epochs": "1000000"})
    handle = start_train(opt_ml)
    deadline = time.monotonic() + 60
    while not re.search(r"^epoch=\d+ ", handle.log(), re.MULTILINE):
        assert time.monotonic() < deadline, handle.log()
        time.sleep(0.1)
    handle.sigterm()
    started = time.monotonic()
    status = handle.wait(timeout=60)
    assert status == 143, handle.log()
    assert time.monotonic() - started < 10
    assert (opt_ml / "model" / "model.rds").is_file()
    assert re.fullmatch(r"Training stopped: SIGTERM received after epoch (\d+) of 1000000;"
                        r" the model so far is saved", failure(opt_ml))
    last = max(losses(handle.log()))
    assert f"after epoch {last} of" in failure(opt_ml)


def recordio(payload: bytes, flag: int = 0) -> bytes:
    return (struct.pack("<II", 0xCED7230A, (flag << 29) | len(payload)) + payload
            + b"\0" * ((4 - len(payload) % 4) % 4))


def test_pipe_mode_reads_recordio_records_from_the_fifo(start_train: StartTrain, opt_ml: Path) -> None:
    data = (opt_ml / "input" / "data" / "training" / "iris.csv").read_bytes()
    shutil.rmtree(opt_ml / "input" / "data" / "training")
    write_config(opt_ml, "inputdataconfig", {"training": {
        "ContentType": "text/csv", "TrainingInputMode": "Pipe", "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "RecordIO"}})
    write_config(opt_ml, "hyperparameters", {"epochs": "5"})
    lines = data.splitlines(keepends=True)
    # two S3 objects, the second sent as a multi-part record
    stream = (recordio(b"".join(lines[:100])) + recordio(b"".join(lines[100:120]), 1)
              + recordio(b"".join(lines[120:]), 3))
    fifo = opt_ml / "input" / "data" / "training_0"

    def feed() -> None:
        time.sleep(1)  # after train started: it waits for the FIFO to appear
        os.mkfifo(fifo)
        with fifo.open("wb") as pipe:
            pipe.write(stream)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    status, log = run_to_end(start_train, opt_ml)
    feeder.join(timeout=10)
    assert status == 0, log
    assert "channel training: 120 rows" in log
    assert (opt_ml / "model" / "model.rds").is_file()


def test_sigterm_while_waiting_for_the_fifo_stops_with_143(start_train: StartTrain,
                                                           opt_ml: Path) -> None:
    shutil.rmtree(opt_ml / "input" / "data" / "training")
    write_config(opt_ml, "inputdataconfig", {"training": {"TrainingInputMode": "Pipe"}})
    handle = start_train(opt_ml)
    time.sleep(3)  # R is up and polls for training_0, which never appears
    handle.sigterm()
    assert handle.wait(timeout=30) == 143, handle.log()
    assert failure(opt_ml).startswith("Training stopped: SIGTERM received while waiting for /")
    assert failure(opt_ml).endswith("/input/data/training_0")


def test_checkpoints_each_epoch_and_a_rerun_resumes(start_train: StartTrain, opt_ml: Path) -> None:
    write_config(opt_ml, "checkpointconfig", {"LocalPath": "/opt/ml/checkpoints"})
    write_config(opt_ml, "hyperparameters", {"epochs": "5"})
    status, first = run_to_end(start_train, opt_ml)
    assert status == 0, first
    checkpoints = opt_ml / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["algo-1-epoch-000004.rds",
                                                             "algo-1-epoch-000005.rds"]
    write_config(opt_ml, "hyperparameters", {"epochs": "8"})
    status, second = run_to_end(start_train, opt_ml)
    assert status == 0, second
    assert "resuming from checkpoint algo-1-epoch-000005.rds" in second
    assert sorted(losses(second)) == [6, 7, 8]
    assert losses(second)[6] < losses(first)[5]


def test_incremental_training_starts_from_the_previous_model(start_train: StartTrain, opt_ml: Path,
                                                             r_project: Path, tmp_path: Path) -> None:
    write_config(opt_ml, "hyperparameters", {"epochs": "60"})
    status, first = run_to_end(start_train, opt_ml)
    assert status == 0, first
    again = new_opt_ml(r_project, tmp_path / "again", epochs="1")
    (again / "input" / "data" / "model").mkdir()
    with tarfile.open(again / "input" / "data" / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(opt_ml / "model" / "model.rds", arcname="model.rds")
    write_config(again, "inputdataconfig", {"training": {"TrainingInputMode": "File"},
                                            "model": {"TrainingInputMode": "File"}})
    status, second = run_to_end(start_train, again)
    assert status == 0, second
    assert "previous model unpacked from" in second
    assert losses(second)[1] < losses(first)[30] < losses(first)[1]


@pytest.mark.parametrize("member, reason", [
    ("../model.rds", "refusing an archive with absolute or '..' paths"),
    ("link", "refusing an archive with links"),
])
def test_a_previous_model_archive_reaching_outside_is_refused(start_train: StartTrain, opt_ml: Path,
                                                              member: str, reason: str) -> None:
    (opt_ml / "input" / "data" / "model").mkdir()
    with tarfile.open(opt_ml / "input" / "data" / "model" / "model.tar.gz", "w:gz") as tar:
        if member == "link":
            info = tarfile.TarInfo("model.rds")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            data = b"not a model"
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    write_config(opt_ml, "inputdataconfig", {"training": {"TrainingInputMode": "File"},
                                             "model": {"TrainingInputMode": "File"}})
    status, log = run_to_end(start_train, opt_ml)
    assert status == 1, log
    assert reason in failure(opt_ml)
    assert not list((opt_ml / "model").iterdir())


def test_a_previous_model_of_other_classes_is_refused(start_train: StartTrain, opt_ml: Path,
                                                      r_project: Path, tmp_path: Path) -> None:
    data = opt_ml / "input" / "data" / "training" / "iris.csv"
    data.write_text(data.read_text().replace("virginica", "other"))
    write_config(opt_ml, "hyperparameters", {"epochs": "2"})
    assert run_to_end(start_train, opt_ml)[0] == 0
    again = new_opt_ml(r_project, tmp_path / "again", epochs="1")
    shutil.copytree(opt_ml / "model", again / "input" / "data" / "model")  # files, not an archive
    write_config(again, "inputdataconfig", {"training": {"TrainingInputMode": "File"},
                                            "model": {"TrainingInputMode": "File"}})
    status, log = run_to_end(start_train, again)
    assert status == 1, log
    assert failure(again).startswith("the previous model predicts other/setosa/versicolor")


# ---- byoc local train, serve and predict -----------------------------------------------------


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, r_project: Path) -> Backend:
    image = request.getfixturevalue("r_image") if request.param == "docker" else None
    return local.choose_backend(request.param, Project.load(r_project), image)


def trained_model(backend: Backend, r_project: Path, tmp_path: Path) -> Path:
    result = train_job(backend=backend, project=Project.load(r_project), output_dir=tmp_path / "jobs")
    assert result.succeeded
    with tarfile.open(result.model_archive) as tar:
        assert tar.getnames() == ["model.rds"]
    return result.model_archive


def http(method: str, url: str, body: bytes = b"", **headers: str) -> requests.Response:
    return requests.request(method, url, data=body, headers=headers, timeout=10)


def test_local_train_serve_and_predict(backend: Backend, r_project: Path, tmp_path: Path) -> None:
    model = trained_model(backend, r_project, tmp_path)
    port = free_port()
    with local.serve(backend=backend, model=model, port=port, startup_timeout=120,
                     env={"MODEL_SERVER_WORKERS": "2"}) as running:
        url = running.url
        payload = (r_project / "local_test" / "payload.csv").read_bytes()
        answer = invoke.predict(url, payload, "text/csv")
        assert answer.body.decode().split() == ["setosa", "setosa", "versicolor", "versicolor",
                                                "virginica", "virginica"]
        ok = [
            (CSV_ROWS.encode(), {"Content-Type": "text/csv"}, "text/csv", "setosa\nvirginica\n"),
            (CSV_ROWS.encode(), {"Content-Type": "text/csv; charset=utf-8",
                                 "Accept": "text/csv;q=0.2, application/json"},
             "application/json", '{"predictions":["setosa","virginica"]}'),
            (json.dumps({"instances": ROWS}).encode(), {"Content-Type": "application/json"},
             "application/json", '{"predictions":["setosa","virginica"]}'),
            (json.dumps(ROWS[0]).encode(), {"Content-Type": "application/json", "Accept": "text/csv"},
             "text/csv", "setosa\n"),
            (b"\n".join(json.dumps(r).encode() for r in ROWS),
             {"Content-Type": "application/jsonlines", "X-Amzn-SageMaker-Custom-Attributes": "x"},
             "application/jsonlines", '"setosa"\n"virginica"\n'),
            (b'"5.1","3.5",1.4,0.2\n', {"Content-Type": "text/csv"}, "text/csv", "setosa\n"),
        ]
        for body, headers, kind, text in ok:
            response = http("POST", f"{url}/invocations", body, **headers)
            assert (response.status_code, response.headers["Content-Type"], response.text) == (
                200, kind, text), headers
        refused = [
            ("POST", "/invocations", b"1,2,3,4", {"Content-Type": "text/plain"}, 415,
             "unsupported Content-Type 'text/plain'"),
            ("POST", "/invocations", b"1,2,3,4", {}, 415, "unsupported Content-Type"),
            ("POST", "/invocations", b"1,2,3,4", {"Content-Type": "text/csv", "Accept": "image/png"},
             406, "cannot answer with Accept 'image/png'"),
            ("POST", "/invocations", b"1,2,3", {"Content-Type": "text/csv"}, 400,
             "expected 4 features per row, got 3"),
            ("POST", "/invocations", b"1,2,3,4\n1,2,3", {"Content-Type": "text/csv"}, 400,
             "row 2: expected 4 features, got 3"),
            ("POST", "/invocations", b"1,2,,4", {"Content-Type": "text/csv"}, 400, "row 1: a missing value"),
            ("POST", "/invocations", b"{oops", {"Content-Type": "application/json"}, 400, "malformed JSON"),
            ("POST", "/invocations", b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"},
             400, "malformed JSON: nested too deeply"),
            ("POST", "/invocations", b"[5.1, 3.5, 1.4, 0.2]\n" + b"[" * 100_000 + b"]" * 100_000,
             {"Content-Type": "application/jsonlines"}, 400, "malformed JSON: nested too deeply"),
            ("POST", "/invocations", b"", {"Content-Type": "text/csv"}, 400, "the request body is empty"),
            ("POST", "/invocations", b"\xff\xfe", {"Content-Type": "text/csv"}, 400, "not UTF-8"),
            ("POST", "/invocations", b"0" * (6 * 1024 * 1024 + 1), {"Content-Type": "text/csv"}, 413,
             "the body is larger than 6 MiB"),
            ("GET", "/invocations", b"", {}, 405, "405 Method Not Allowed"),
            ("GET", "/elsewhere", b"", {}, 404, "not found: use /ping or /invocations"),
        ]
        for method, path, body, headers, status, text in refused:
            response = http(method, url + path, body, **headers)
            assert response.status_code == status, (path, headers, response.text)
            assert response.headers["Content-Type"].startswith("text/plain")
            assert response.text.count("\n") == 1 and text in response.text, response.text
        assert http("HEAD", f"{url}/ping").status_code == 200
        parameters = http("GET", f"{url}/execution-parameters").json()
        assert parameters == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD",
                              "MaxPayloadInMB": 6}


def test_a_model_that_cannot_load_is_reported_by_ping(backend: Backend, tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    started = time.monotonic()
    # /ping's 503 says X-Model-Load-Status: failed, so byoc gives up at once with the reason
    with pytest.raises(ServeError, match=r"the server cannot load the model: cannot load the model"
                                         r" from /.*model\.rds does not exist"):
        with local.serve(backend=backend, model=empty, port=free_port(), startup_timeout=60):
            pass
    assert time.monotonic() - started < 45


# ---- /ping while a slow invocation runs -------------------------------------------------------


def assert_ping_answers_during_a_slow_invocation(url: str) -> None:
    """With one R worker busy for SLOW_SECONDS, /ping still answers 200 within 2 s, every time."""
    result: dict[str, Any] = {}

    def invoke_slowly() -> None:
        started = time.monotonic()
        result["response"] = http("POST", f"{url}/invocations", CSV_ROWS.encode(),
                                  **{"Content-Type": "text/csv"})
        result["seconds"] = time.monotonic() - started

    slow = threading.Thread(target=invoke_slowly)
    slow.start()
    time.sleep(0.5)
    pings = []
    while slow.is_alive() and len(pings) < 20:
        started = time.monotonic()
        response = requests.get(f"{url}/ping", timeout=2)
        pings.append((response.status_code, time.monotonic() - started))
        time.sleep(0.2)
    slow.join()
    assert len(pings) >= 5
    assert all(status == 200 and seconds < 2 for status, seconds in pings), pings
    assert result["response"].status_code == 200 and result["response"].text == "setosa\nvirginica\n"
    assert result["seconds"] >= SLOW_SECONDS


@NEEDS_R
def test_ping_answers_while_a_slow_invocation_runs_on_the_process_backend(
        r_project: Path, tmp_path: Path) -> None:
    program = Path(shutil.copytree(r_project / "container" / PROGRAM, tmp_path / PROGRAM))
    with (program / "model.R").open("a") as model_r:
        model_r.write(SLOW_PREDICT)
    model = trained_model(ProcessBackend(r_project / "container" / PROGRAM), r_project, tmp_path)
    with local.serve(backend=ProcessBackend(program), model=model, port=free_port(),
                     env={"MODEL_SERVER_WORKERS": "1"}, startup_timeout=60) as running:
        assert_ping_answers_during_a_slow_invocation(running.url)


@pytest.mark.docker
def test_ping_answers_while_a_slow_invocation_runs_in_the_image(
        docker_client: Any, r_image: str, r_project: Path, tmp_path: Path) -> None:
    opt_ml = new_opt_ml(r_project, tmp_path / "opt_ml", epochs="20")
    trained = docker_client.containers.run(r_image, "train", detach=True, network_mode="none",
                                           volumes={str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}})
    try:
        assert trained.wait(timeout=120)["StatusCode"] == 0
    finally:
        trained.remove(force=True)
    slow_model = tmp_path / "model.R"
    slow_model.write_text((r_project / "container" / PROGRAM / "model.R").read_text() + SLOW_PREDICT)
    port = free_port()
    container = docker_client.containers.run(
        r_image, "serve", detach=True, environment={"MODEL_SERVER_WORKERS": "1"},
        ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={str(opt_ml / "model"): {"bind": "/opt/ml/model", "mode": "ro"},
                 str(slow_model): {"bind": "/opt/program/model.R", "mode": "ro"}})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, bytes(container.logs()).decode()
            time.sleep(0.25)
        assert_ping_answers_during_a_slow_invocation(url)
        # SIGTERM (docker stop) with an invocation in flight: it is answered, then serve exits 0
        answers: list[requests.Response] = []
        in_flight = threading.Thread(target=lambda: answers.append(
            http("POST", f"{url}/invocations", CSV_ROWS.encode(), **{"Content-Type": "text/csv"})))
        in_flight.start()
        time.sleep(1)
        started = time.monotonic()
        container.stop(timeout=30)
        assert container.wait(timeout=10)["StatusCode"] == 0
        assert time.monotonic() - started < 30
        in_flight.join(timeout=10)
        assert [(a.status_code, a.text) for a in answers] == [(200, "setosa\nvirginica\n")]
    finally:
        container.remove(force=True)



# ---- hosting modes: bound to a port, serverless, asynchronous sizes; no multi-model ------------


def test_the_image_serves_on_the_bind_to_port_as_any_user_on_a_read_only_root(
        docker_client: Any, r_image: str, r_project: Path, tmp_path: Path) -> None:
    """As an inference pipeline's container (SAGEMAKER_BIND_TO_PORT), as a serverless endpoint
    runs it (any user, read-only root, /tmp only), with asynchronous inference's body limit."""
    labels = docker_client.images.get(r_image).labels
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"
    assert "com.amazonaws.sagemaker.capabilities.multi-models" not in labels
    opt_ml = new_opt_ml(r_project, tmp_path / "opt_ml", epochs="20")
    trained = docker_client.containers.run(r_image, "train", detach=True, network_mode="none",
                                           name=f"t-hc-r-train-{uuid.uuid4().hex[:8]}",
                                           volumes={str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}})
    try:
        assert trained.wait(timeout=120)["StatusCode"] == 0
    finally:
        trained.remove(force=True)
    port = free_port()
    container = docker_client.containers.run(
        r_image, "serve", detach=True, name=f"t-hc-r-serverless-{uuid.uuid4().hex[:8]}",
        user="65534", read_only=True, tmpfs={"/tmp": ""},
        environment={"SAGEMAKER_BIND_TO_PORT": "9123", "SAGEMAKER_SAFE_PORT_RANGE": "9200-9299",
                     "MODEL_SERVER_WORKERS": "1", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "120"},
        ports={"9123/tcp": ("127.0.0.1", port)},
        volumes={str(opt_ml / "model"): {"bind": "/opt/ml/model", "mode": "ro"}})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, bytes(container.logs()).decode()
            time.sleep(0.25)
        answer = http("POST", f"{url}/invocations", CSV_ROWS.encode(), **{"Content-Type": "text/csv"})
        assert (answer.status_code, answer.text) == (200, "setosa\nvirginica\n")
        tables = container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"])
        assert listening_ports(tables.output.decode()) == {9123}  # the R processes: unix sockets
        # past the real-time 6 MiB, the body reaches R (which finds one huge cell, not 4 features)
        large = requests.post(f"{url}/invocations", data=b"1" * (20 * 1024 * 1024), timeout=120,
                              headers={"Content-Type": "text/csv"})
        assert (large.status_code, large.text) == (400, "expected 4 features per row, got 1\n")
        over = requests.post(f"{url}/invocations", data=b"1" * (121 * 1024 * 1024), timeout=120,
                             headers={"Content-Type": "text/csv"})
        assert (over.status_code, over.text) == (413, "the body is larger than 120 MiB\n")
        assert http("GET", f"{url}/execution-parameters").json()["MaxPayloadInMB"] == 100
    finally:
        container.remove(force=True)


@pytest.mark.parametrize(("environment", "message"), [
    pytest.param({"SAGEMAKER_MULTI_MODEL": "true"},
                 "serve: SAGEMAKER_MULTI_MODEL=true, but this R server does not answer SageMaker's"
                 " multi-model API (/models): deploy it as a single-model endpoint", id="multi-model"),
    pytest.param({"SAGEMAKER_SAFE_PORT_RANGE": "9300-9200"},
                 "serve: SAGEMAKER_SAFE_PORT_RANGE must be two ports as XXXX-YYYY, the first not above"
                 " the second, got '9300-9200'", id="safe-port-range"),
])
def test_the_image_refuses_at_start_what_it_cannot_serve(docker_client: Any, r_image: str,
                                                         environment: dict[str, str],
                                                         message: str) -> None:
    container = docker_client.containers.run(r_image, "serve", detach=True, network_mode="none",
                                             name=f"t-hc-r-refused-{uuid.uuid4().hex[:8]}",
                                             environment=environment)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 2
        assert bytes(container.logs()).decode().strip() == message
    finally:
        container.remove(force=True)


# ---- nginx: its own errors, and many slow clients ---------------------------------------------


@NEEDS_R
def test_nginx_errors_are_plain_text_and_slow_clients_leave_ping_up(r_project: Path,
                                                                     tmp_path: Path) -> None:
    program = r_project / "container" / PROGRAM
    model = trained_model(ProcessBackend(program), r_project, tmp_path)
    port = free_port()
    with local.serve(backend=ProcessBackend(program), model=model, port=port, startup_timeout=60,
                     env={"MODEL_SERVER_WORKERS": "1"}):
        assert_every_error_is_plain_text(port)
        assert_ping_survives_slow_clients(port)
