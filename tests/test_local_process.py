"""``byoc local process`` and ``byoc local evaluate``: processing jobs run on this machine as
SageMaker runs them (CreateProcessingJob), on both backends.

The heavy paths are few: one single-host job per backend, a 2-host job on Docker of the
project's image, a 2-host job of an image byoc did not make, and a few process-backend jobs
(which start in well under a second). Images are built once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import contract, job, local
from byoc.backends import ProcessingHost
from byoc.cli import cli
from byoc.cli.process import headline
from byoc.errors import ConfigError, ContainerFailedError, JobStoppedError
from byoc.local import record as jobrecord
from byoc.local.process import OutputCopier
from byoc.project import Project
from helpers import FIXTURES, built_image

PREFIX = "t-prc-"


@pytest.fixture(scope="session")
def procprobe_image(docker_client: Any, base_image: str) -> Iterator[str]:
    tag = f"{PREFIX}procprobe:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, FIXTURES / "procprobe", tag, base_image):
        yield tag


@pytest.fixture(scope="session")
def peers_image(docker_client: Any, base_image: str) -> Iterator[str]:
    """An image byoc did not make: its own ENTRYPOINT and CMD, no train or serve."""
    tag = f"{PREFIX}peers:{uuid.uuid4().hex[:8]}"
    with built_image(docker_client, FIXTURES / "peers", tag, base_image):
        yield tag


@pytest.fixture
def procprobe(tmp_path: Path) -> Project:
    """A private copy of tests/fixtures/procprobe."""
    return Project.load(Path(shutil.copytree(FIXTURES / "procprobe", tmp_path / "procprobe")))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("1,2\n")
    (folder / "b.csv").write_text("2,4\n")
    (folder / "sub" / "c.csv").write_text("3,6\n")
    return folder


def _backend(kind: str, project: Project, request: pytest.FixtureRequest) -> Any:
    if kind == "docker":
        return local.choose_backend("docker", project, request.getfixturevalue("procprobe_image"))
    return local.choose_backend("process", project, None)


def _definition(data: Path, out: Path, **changes: Any) -> job.ProcessingJobDefinition:
    options: dict[str, Any] = dict(
        base_name="procprobe", inputs=[f"data={data}", f"one={data / 'a.csv'}:"
                                       f"{contract.PROCESSING_DIR}/single"],
        outputs=[f"out={out}"], code=None, entrypoint=["process"],
        arguments=["--flag", f"{contract.PROCESSING_DIR}/single/a.csv"], instance_count=1,
        distributions=[], input_modes=[], upload_modes=[], env=["PROC_SYMLINK=1",
                                                                "PROC_WRITE_INPUT=1"],
        max_run=None)
    options.update(changes)
    return job.processing_from_options(**options)


@pytest.mark.parametrize("kind", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_single_host_job_sees_its_inputs_config_and_env_and_leaves_outputs_and_a_message(
        kind: str, procprobe: Project, data: Path, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    out = tmp_path / "out"
    said: list[str] = []
    result = local.process(_definition(data, out), backend=_backend(kind, procprobe, request),
                           project=procprobe, say=said.append)
    assert result.status == "Completed" and result.exit_statuses == {"algo-1": 0}
    assert result.exit_message == "algo-1 done;"
    report = json.loads((out / "algo-1.json").read_text())
    # each input at its LocalPath, a file input as a folder holding the file; read-only
    assert report["files"] == {"data": ["a.csv", "b.csv", "sub/c.csv"], "one": ["a.csv"]}
    assert not (data / "written").exists()  # the user's data is never written
    if kind == "docker":  # mounted read-only (the process backend's copy is; root writes anyway)
        assert report["input_write"].startswith("refused")
    assert report["env"] == {"PROC_SYMLINK": "1", "PROC_WRITE_INPUT": "1"}
    assert report["resourceconfig"]["current_host"] == "algo-1"
    assert report["resourceconfig"]["hosts"] == ["algo-1"]
    config = report["config"]
    assert config["ProcessingJobName"] == result.job_name
    assert config["AppSpecification"]["ContainerEntrypoint"] == ["process"]
    assert [i["S3Input"]["LocalPath"] for i in config["ProcessingInputs"]] == [
        f"{contract.PROCESSING_DIR}/input/data", f"{contract.PROCESSING_DIR}/single"]
    # the arguments as the container got them: on the process backend /opt/ml/... stands for
    # the host's tree, and the file is there
    flag, path = report["argv"]
    assert flag == "--flag"
    if kind == "docker":
        assert path == f"{contract.PROCESSING_DIR}/single/a.csv"
    else:
        assert path.endswith("/hosts/algo-1/processing/single/a.csv")
    # the symbolic link the program left is not copied, with one warning
    assert not (out / "link").exists() and not (out / "link").is_symlink()
    assert [line for line in said if "symbolic link" in line] == [
        f"warning: skipped symbolic link {contract.PROCESSING_DIR}/output/out/link on algo-1"
        " (SageMaker does not upload symbolic links)"]
    described = jobrecord.JobRecord.load(result.job_dir)
    assert described.kind == "processing"
    record = described.data
    assert record["ProcessingJobStatus"] == "Completed"
    assert record["ExitMessage"] == "algo-1 done;"
    assert record["ProcessingJobArn"].endswith(f"processing-job/{result.job_name.lower()}")
    for key in ("CreationTime", "ProcessingStartTime", "ProcessingEndTime", "LastModifiedTime",
                "ProcessingInputs", "ProcessingOutputConfig", "ProcessingResources",
                "AppSpecification", "StoppingCondition", "Environment"):
        assert key in record, key
    assert record["Local"]["Backend"] == kind and record["Local"]["ExitStatuses"] == {"algo-1": 0}
    assert not (result.job_dir / "hosts").exists()  # the hosts' trees go when the job ends
    assert (result.job_dir / "logs" / "algo-1.log").read_text().startswith("processing on algo-1")


@pytest.mark.docker
def test_two_hosts_on_docker_shard_an_input_and_a_failing_host_fails_the_job(
        procprobe: Project, data: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    out = tmp_path / "out"
    backend = _backend("docker", procprobe, request)
    definition = _definition(data, out, instance_count=2, distributions=["data=ShardedByS3Key"],
                             env=["PROC_FAIL=algo-2:7"], arguments=[])
    with pytest.raises(ContainerFailedError) as failed:
        local.process(definition, backend=backend, project=procprobe)
    assert failed.value.exit_status == 7
    assert failed.value.message.endswith("failed: algo-2 exited with status 7: algo-2 failed on"
                                         " purpose")
    # what every host wrote is collected, failed job or not; the input was dealt across hosts
    files = {host: json.loads((out / f"{host}.json").read_text())["files"]
             for host in ("algo-1", "algo-2")}
    assert files["algo-1"]["data"] + files["algo-2"]["data"] == ["a.csv", "sub/c.csv", "b.csv"]
    assert files["algo-1"]["one"] == files["algo-2"]["one"] == ["a.csv"]
    record = jobrecord.JobRecord.load(next((procprobe.jobs_dir).iterdir())).data
    assert record["ProcessingJobStatus"] == "Failed"
    assert record["FailureReason"] == "algo-2 exited with status 7: algo-2 failed on purpose"
    assert record["Local"]["ExitStatuses"]["algo-2"] == 7


@pytest.mark.docker
def test_an_image_byoc_did_not_make_runs_two_hosts_that_talk_by_host_name(
        peers_image: str, tmp_path: Path) -> None:
    """Like AWS's Dask sample: algo-1 listens, algo-2 connects to it by the name in
    resourceconfig.json; the image's own ENTRYPOINT runs, with --argument replacing its CMD."""
    out = tmp_path / "received"
    result = CliRunner().invoke(cli, [
        "local", "process", "--image", peers_image, "--instance-count", "2",
        "--output", f"received={out}", "--argument=--greeting", "--argument", "-hi-",
        "--output-dir", str(tmp_path / "jobs")])
    assert result.exit_code == 0, result.stderr
    assert (out / "received.txt").read_text() == "algo-2 says -hi-\n"
    assert result.stdout == f"received\t{out}\n"
    assert "ExitMessage: algo-1 received 1;" in result.stderr
    # ... and with the image's CMD when no --argument is given
    again = CliRunner().invoke(cli, [
        "local", "process", "--image", peers_image, "--instance-count", "2",
        "--output", f"received={tmp_path / 'again'}", "--output-dir", str(tmp_path / "jobs")])
    assert again.exit_code == 0, again.stderr
    assert (tmp_path / "again" / "received.txt").read_text() == "algo-2 says hello\n"


def test_a_failing_host_gives_a_failure_reason_and_a_non_zero_exit(procprobe: Project,
                                                                    data: Path,
                                                                    tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "local", "process", str(procprobe.root), "--backend", "process", "--entrypoint",
        "process", "--input", f"data={data}", "--output", f"out={tmp_path / 'out'}",
        "--env", "PROC_FAIL=algo-1:3", "--job-name", "fails"])
    assert result.exit_code == 1, result.stderr  # as a failed training job
    assert "Error: processing job fails failed: algo-1 exited with status 3: algo-1 failed on" \
           " purpose" in result.stderr
    assert "Traceback" not in result.stderr
    record = jobrecord.JobRecord.load(procprobe.jobs_dir / "fails").data
    assert (record["ProcessingJobStatus"], record["ExitMessage"]) == (
        "Failed", "algo-1 failed on purpose\n")
    assert (tmp_path / "out" / "algo-1.json").is_file()


def test_max_run_stops_the_job_with_sigterm(procprobe: Project, data: Path,
                                            tmp_path: Path) -> None:
    definition = _definition(data, tmp_path / "out", env=["PROC_SLEEP=60"], max_run="1s")
    started = time.monotonic()
    with pytest.raises(JobStoppedError, match="MaxRuntimeInSeconds"):
        local.process(definition, backend=local.choose_backend("process", procprobe, None),
                      project=procprobe, run=local.LocalRun(job_name="slow", grace_seconds=5))
    assert time.monotonic() - started < 15
    record = jobrecord.JobRecord.load(procprobe.jobs_dir / "slow").data
    assert record["ProcessingJobStatus"] == "Stopped"
    assert record["ExitMessage"] == "algo-1 stopped by SIGTERM\n"
    assert "MaxRuntimeInSeconds" in record["FailureReason"]
    assert (tmp_path / "out" / "algo-1.json").is_file()  # what it wrote is still collected


def test_a_continuous_output_is_copied_while_the_job_runs(procprobe: Project, data: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    definition = _definition(data, out, env=["PROC_CONTINUOUS=12"],
                             upload_modes=["out=Continuous"])
    seen_running: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            found = sorted(p.name for p in out.glob("part-*.txt")) if out.is_dir() else []
            records = list(procprobe.jobs_dir.glob("*/job.json"))
            if found and records and json.loads(records[0].read_text())[
                    "ProcessingJobStatus"] == "InProgress":
                seen_running.extend(found)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = local.process(definition, backend=local.choose_backend("process", procprobe, None),
                               project=procprobe)
    finally:
        done.set()
        watcher.join()
    assert seen_running, "no part was copied while the job ran"
    assert sorted(p.name for p in out.glob("part-*.txt")) == sorted(
        f"part-{i}.txt" for i in range(12))
    assert (out / "part-11.txt").read_text().startswith("part 11")
    assert result.status == "Completed"


def test_the_copier_copies_a_file_again_only_when_it_changed(tmp_path: Path) -> None:
    root = tmp_path / "algo-1"
    folder = contract.ProcessingTree(root).local_path(f"{contract.PROCESSING_DIR}/output/o")
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("one")
    host = ProcessingHost("algo-1", root, {}, ())
    copier = OutputCopier([host], [(f"{contract.PROCESSING_DIR}/output/o", tmp_path / "dest",
                                    True)])
    assert copier.copy(continuous_only=True) == 1
    assert copier.copy(continuous_only=True) == 0
    (folder / "a.txt").write_text("one and two")
    assert copier.copy(continuous_only=True) == 1
    assert (tmp_path / "dest" / "a.txt").read_text() == "one and two"


def test_the_process_backend_refuses_two_hosts_at_once(procprobe: Project, data: Path,
                                                        tmp_path: Path) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(cli, [
        "local", "process", str(procprobe.root), "--backend", "process", "--entrypoint",
        "process", "--input", f"data={data}", "--instance-count", "2"])
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --instance-count 2: the process backend runs a"
                                    " processing job on one host only")
    assert "use --backend docker" in result.stderr
    assert not procprobe.jobs_dir.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "data={data}", "--input-mode", "nope=File"],
     "--input-mode nope=File: no input 'nope' (the inputs are data)"),
    (["--input", "data={data}", "--output", "out={data}/out"],
     "--output out: {data}/out overlaps input 'data'"),
    (["--input", "data={data}/missing"], "--input data: {data}/missing does not exist"),
    (["--input", "data={data}", "--output", "out={data}"], "is not empty"),
    (["--input", "data={data}", "--output", "out={data}/../new", "--output", "two={data}/../new"],
     "overlaps the folder of output 'out'"),
    (["--output", "out={full}/new", "--output-dir", "{full}/new/jobs"],
     "holds the job's own directory"),
    (["--output", "out={full}"], "--output out: {full} is not empty"),
    (["--output", "out={data}/a.csv"], "is a file"),
    (["--input", "data={data}", "--input-mode", "data=Pipe"], "S3InputMode Pipe is not run"),
    (["--input", "data=s3://bucket/key"], "input 'data' is in S3"),
    (["--output", "out=s3://bucket/key"], "output 'out' goes to S3"),
    (["--input", "data={data}:/tmp/x"], "must be a folder below /opt/ml/processing/"),
    (["--output", "out={full}/new", "--upload-mode", "nope=Continuous"],
     "--upload-mode nope=Continuous: no output 'nope'"),
    (["--input", "data={data}", "--max-run", "soon"], "--max-run"),
])
def test_bad_options_are_one_error_line_and_touch_nothing(
        procprobe: Project, data: Path, tmp_path: Path, args: list[str], message: str) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    given = [arg.format(data=data, full=full, root=procprobe.root) for arg in args]
    result = CliRunner().invoke(cli, ["local", "process", str(procprobe.root), "--backend",
                                      "process", "--entrypoint", "process", *given])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert message.format(data=data, full=full, root=procprobe.root) in lines[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (full / "keep.txt").read_text() == "mine"


def test_code_runs_with_python3_on_the_process_backend(procprobe: Project,
                                                       tmp_path: Path) -> None:
    """--code FILE --entrypoint python3: the SDK's ScriptProcessor's way, with the project's
    Python; the script finds its own path under /opt/ml/processing/input/code."""
    script = tmp_path / "script.py"
    script.write_text("import os, sys\nfrom pathlib import Path\n"
                      "out = Path(os.environ['SAGEMAKER_BASE_DIR']) / 'processing/output/o'\n"
                      "(out / 'ran.txt').write_text(' '.join(sys.argv))\n")
    result = CliRunner().invoke(cli, [
        "local", "process", str(procprobe.root), "--backend", "process", "--code", str(script),
        "--entrypoint", "python3", "--output", f"o={tmp_path / 'o'}", "--argument", "x"])
    assert result.exit_code == 0, result.stderr
    ran = (tmp_path / "o" / "ran.txt").read_text().split()
    assert ran[0].endswith("/hosts/algo-1/processing/input/code/script.py") and ran[1:] == ["x"]


def test_the_process_backend_needs_a_command(procprobe: Project) -> None:
    with pytest.raises(ConfigError, match="pass --entrypoint"):
        local.check_local_processing(job.ProcessingJobDefinition("x"), "process")


def _wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _running(jobs_dir: Path, name: str) -> bool:
    try:
        record = json.loads((jobs_dir / name / "job.json").read_text())
    except (OSError, ValueError):
        return False
    return "Processes" in record.get("Local", {})


def _ready(jobs_dir: Path, name: str) -> bool:
    """The job runs and its program has set its SIGTERM handler (it says so in its log)."""
    log = jobs_dir / name / "logs" / "algo-1.log"
    return _running(jobs_dir, name) and log.is_file() and "processing on algo-1" in log.read_text()


def test_local_jobs_describe_and_stop_a_processing_job_and_reap_one_whose_byoc_died(
        procprobe: Project, data: Path, tmp_path: Path) -> None:
    jobs_dir = procprobe.jobs_dir

    def start(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "byoc", "local", "process", str(procprobe.root), "--backend",
             "process", "--entrypoint", "process", "--input", f"data={data}", "--output",
             f"out={tmp_path / name}", "--env", "PROC_SLEEP=60", "--job-name", name, "--grace",
             "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())

    running = start("stop-me")
    try:
        _wait(lambda: _ready(jobs_dir, "stop-me"))
        listed = CliRunner().invoke(cli, ["local", "jobs", "--output-dir", str(jobs_dir)])
        row = listed.stdout.splitlines()[0].split("\t")
        assert (row[0], row[1], row[2], row[-1]) == ("stop-me", "InProgress", "-", "ProcessingJob")
        described = CliRunner().invoke(cli, ["local", "describe", "stop-me", "--project",
                                             str(procprobe.root)])
        assert described.exit_code == 0, described.stderr
        assert json.loads(described.stdout)["ProcessingJobStatus"] == "InProgress"
        stopped = CliRunner().invoke(cli, ["local", "stop", "stop-me", "--project",
                                           str(procprobe.root)])
        assert stopped.exit_code == 0, stopped.stderr
        assert "collects the outputs" in stopped.stderr
        assert running.wait(timeout=30) == 0
    finally:
        if running.poll() is None:
            running.kill()
    record = jobrecord.JobRecord.load(jobs_dir / "stop-me").data
    assert (record["ProcessingJobStatus"], record["ExitMessage"]) == (
        "Stopped", "algo-1 stopped by SIGTERM\n")
    assert (tmp_path / "stop-me" / "algo-1.json").is_file()
    # a byoc killed with SIGKILL: its host is reaped by the next command that lists the jobs
    orphan = start("orphan")
    try:
        _wait(lambda: _ready(jobs_dir, "orphan"))
        pid = json.loads((jobs_dir / "orphan" / "job.json").read_text())[
            "Local"]["Processes"]["algo-1"][0]
        orphan.send_signal(signal.SIGKILL)
        orphan.wait(timeout=10)
    finally:
        if orphan.poll() is None:
            orphan.kill()
    os.kill(pid, 0)  # the host outlived its byoc
    listed = CliRunner().invoke(cli, ["local", "jobs", "--output-dir", str(jobs_dir)])
    assert "processing job orphan lost the byoc running it" in listed.stderr
    _wait(lambda: not Path(f"/proc/{pid}").exists() or
          Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z", timeout=10)
    record = jobrecord.JobRecord.load(jobs_dir / "orphan").data
    assert record["ProcessingJobStatus"] == "Failed"
    assert "byoc stopped while the job ran" in record["FailureReason"]
    # SIGTERM to byoc: as Ctrl-C, every host stopped and removed, exit 143, the job Stopped
    terminated = start("terminated")
    try:
        _wait(lambda: _ready(jobs_dir, "terminated"))
        pid = json.loads((jobs_dir / "terminated" / "job.json").read_text())[
            "Local"]["Processes"]["algo-1"][0]
        terminated.send_signal(signal.SIGTERM)
        assert terminated.wait(timeout=30) == 143
    finally:
        if terminated.poll() is None:
            terminated.kill()
    assert not Path(f"/proc/{pid}").exists()
    record = jobrecord.JobRecord.load(jobs_dir / "terminated").data
    assert (record["ProcessingJobStatus"], record["ExitMessage"]) == (
        "Stopped", "algo-1 stopped by SIGTERM\n")
    assert "interrupted" in terminated.stderr.read().decode() if terminated.stderr else False


def test_evaluate_runs_the_evaluate_program_on_the_latest_training_job(
        procprobe: Project, tmp_path: Path) -> None:
    trained = CliRunner().invoke(cli, ["local", "train", str(procprobe.root), "--backend",
                                       "process"])
    assert trained.exit_code == 0, trained.stderr
    result = CliRunner().invoke(cli, ["local", "evaluate", str(procprobe.root), "--backend",
                                      "process"])
    assert result.exit_code == 0, result.stderr
    # slope 2 on (1,2) (2,4) (3,7): errors 0, 0, 1
    assert "regression" in result.stdout and "mse" in result.stdout
    assert "0.3333" in result.stdout and "0.5774" in result.stdout  # mse, rmse
    assert "ExitMessage: mse 0.333 on 3 rows" in result.stderr
    evaluations = list(procprobe.jobs_dir.glob("*/evaluation/evaluation.json"))
    assert len(evaluations) == 1
    assert json.loads(evaluations[0].read_text())["regression_metrics"]["mae"]["value"] == \
        pytest.approx(1 / 3)
    # an explicit test set, and a project without the program
    other = tmp_path / "other-test"
    other.mkdir()
    (other / "t.csv").write_text("1,2\n")
    exact = CliRunner().invoke(cli, ["local", "evaluate", str(procprobe.root), "--backend",
                                     "process", "--test", str(other)])
    assert exact.exit_code == 0, exact.stderr
    assert "ExitMessage: mse 0.000 on 1 rows" in exact.stderr
    (procprobe.program_dir / "evaluate").unlink()
    missing = CliRunner().invoke(cli, ["local", "evaluate", str(procprobe.root), "--backend",
                                       "process"])
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"Error: {procprobe.program_dir} has no evaluate program")


@pytest.mark.docker
def test_evaluate_on_docker_and_an_image_without_an_evaluate_program(
        procprobe: Project, procprobe_image: str, peers_image: str) -> None:
    trained = CliRunner().invoke(cli, ["local", "train", str(procprobe.root), "--backend",
                                       "process", "--job-name", "trained"])
    assert trained.exit_code == 0, trained.stderr
    ran = CliRunner().invoke(cli, ["local", "evaluate", str(procprobe.root), "trained",
                                   "--image", procprobe_image])
    assert ran.exit_code == 0, ran.stderr
    assert "0.3333" in ran.stdout and "evaluation of trained" in ran.stdout
    result = CliRunner().invoke(cli, ["local", "evaluate", str(procprobe.root), "--image",
                                      peers_image])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: {peers_image} has no evaluate program (an executable evaluate next to train and"
        " serve); add one, or use an image that has it")


def test_the_headline_figures_are_the_metrics_with_a_numeric_value() -> None:
    document = {"multiclass_classification_metrics": {
        "accuracy": {"value": 0.9, "standard_deviation": 0.01},
        "weighted_f1": {"value": 0.88},
        "confusion_matrix": {"0": {"0": 10, "1": 1}},
        "flag": {"value": True}}}
    assert headline(document) == [("multiclass_classification", "accuracy", 0.9, 0.01),
                                  ("multiclass_classification", "weighted_f1", 0.88, None)]
    with pytest.raises(ConfigError, match="no metric with a numeric value"):
        headline({"regression_metrics": {"mse": {"value": "low"}}})
