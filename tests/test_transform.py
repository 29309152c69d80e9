"""``byoc local transform`` end to end: real servers, real HTTP, files in and out.

The default template (process backend, and its image on Docker) pins the
outputs of Line-split CSV with SingleRecord and MultiRecord; the echo server
of tests/fixtures/transform/echo checks what the SDK's local mode gets wrong
(binary MultiRecord, TFRecord, RecordIO framing, DataProcessing), concurrency,
instances, failures and Ctrl-C.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from read_only import read_only
from test_transform_units import recordio, tfrecord

from byoc.backends.docker import DockerBackend
from byoc.backends.process import ProcessBackend
from byoc.errors import ConfigError, ServeError
from byoc.project import Project
from byoc.transform import TransformParams, TransformResult, transform
from helpers import FIXTURES, train_job

IRIS = FIXTURES / "transform" / "iris"
ECHO = FIXTURES / "transform" / "echo"
ECHO_MODEL = ECHO / "model"
CSV_LINE = {"content_type": "text/csv", "split_type": "Line", "assemble_with": "Line"}


@pytest.fixture(scope="session")
def iris_model(default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default template's model, trained once with the process backend."""
    project = Project.load(default_project)
    result = train_job(backend=ProcessBackend(project.program_dir), project=project,
                         output_dir=tmp_path_factory.mktemp("iris-jobs"))
    return result.model_archive


def run(backend: Any, model: Path, source: Path, output: Path, **settings: Any) -> TransformResult:
    return transform(backend=backend, model=model, source=source, output_dir=output,
                     params=TransformParams(**settings), startup_timeout=60)


def echo(monkeypatch: pytest.MonkeyPatch, **env: str) -> ProcessBackend:
    # the echo server's settings, as an image's ENV (byoc's own environment is not passed on)
    return ProcessBackend(ECHO / "container" / "echo", image_env=env)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- the default template ------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_line_split_csv_matches_the_pinned_outputs(default_project: Path, iris_model: Path,
                                                   tmp_path: Path, strategy: str) -> None:
    backend = ProcessBackend(Project.load(default_project).program_dir)
    result = run(backend, iris_model, IRIS / "rows.csv", tmp_path / "out", strategy=strategy, **CSV_LINE)
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == \
        (IRIS / "expected" / f"{strategy}.csv.out").read_bytes()
    assert result.records == 30 and not result.failures
    assert result.requests == (30 if strategy == "SingleRecord" else 1)
    # the template answers /execution-parameters; its values fill what the request left unset
    assert result.execution_parameters is not None
    assert result.effective.sources["MaxConcurrentTransforms"] == "/execution-parameters"


@pytest.mark.docker
def test_docker_instances_share_the_files(default_image: str, iris_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    for key in ("a.csv", "b/c.csv", "d.csv"):
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes((IRIS / "rows.csv").read_bytes())
    result = run(DockerBackend(default_image), iris_model, source, tmp_path / "out",
                 strategy="MultiRecord", instance_count=2, **CSV_LINE)
    assert files_under(tmp_path / "out") == ["a.csv.out", "b/c.csv.out", "d.csv.out"]
    expected = (IRIS / "expected" / "MultiRecord.csv.out").read_bytes()
    for path in (tmp_path / "out").rglob("*.out"):
        assert path.read_bytes() == expected
    assert result.records == 90 and result.instances == 2


# -- what the SDK's local mode gets wrong --------------------------------------------------------

def test_binary_file_with_multi_record_goes_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = bytes(range(256)) * 400 + b"\xff\xfe\x00"
    (tmp_path / "image.bin").write_bytes(data)
    result = run(echo(monkeypatch), ECHO_MODEL, tmp_path / "image.bin", tmp_path / "out",
                 content_type="application/x-image")
    assert result.effective.strategy == "MultiRecord"  # the default, no /execution-parameters
    assert result.effective.sources["BatchStrategy"] == "default"
    assert (tmp_path / "out" / "image.bin.out").read_bytes() == data


def test_tfrecord_multi_record_keeps_framing_single_record_sends_payloads(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    payloads = [bytes([n]) * (20_000 + n) for n in range(100)]  # ~2 MB: two 1 MiB batches
    data = b"".join(tfrecord(p) for p in payloads)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part.tfrecord").write_bytes(data)
    stats = tmp_path / "stats.json"
    backend = echo(monkeypatch, ECHO_STATS=str(stats))
    multi = run(backend, ECHO_MODEL, tmp_path / "in", tmp_path / "multi", split_type="TFRecord",
                strategy="MultiRecord", max_payload_mb=1, content_type="application/x-tfrecord")
    assert (tmp_path / "multi" / "part.tfrecord.out").read_bytes() == data
    assert multi.records == 100 and multi.requests == json.loads(stats.read_text())["requests"] == 2
    run(backend, ECHO_MODEL, tmp_path / "in", tmp_path / "single", split_type="TFRecord",
        strategy="SingleRecord", assemble_with="Line")
    assert (tmp_path / "single" / "part.tfrecord.out").read_bytes() == b"".join(p + b"\n" for p in payloads)


def test_recordio_multi_record_keeps_framing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = recordio(b"one") + recordio(b"tw", 1) + recordio(b"o", 3) + recordio(b"three")
    (tmp_path / "data.rec").write_bytes(data)
    backend = echo(monkeypatch)
    run(backend, ECHO_MODEL, tmp_path / "data.rec", tmp_path / "multi", split_type="RecordIO",
        strategy="MultiRecord")
    assert (tmp_path / "multi" / "data.rec.out").read_bytes() == data
    run(backend, ECHO_MODEL, tmp_path / "data.rec", tmp_path / "single", split_type="RecordIO",
        strategy="SingleRecord")
    assert (tmp_path / "single" / "data.rec.out").read_bytes() == b"onetwothree"


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_csv_filter_and_join(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, strategy: str) -> None:
    (tmp_path / "rows.csv").write_text("id42,5.1,3.5,1.4,0.2\nid43,1,2\n")
    run(echo(monkeypatch, ECHO_MODE="fields"), ECHO_MODEL, tmp_path / "rows.csv", tmp_path / "out",
        strategy=strategy, input_filter="$[1:]", join_source="Input", output_filter="$[0,-1]", **CSV_LINE)
    # the container saw 4 and 2 fields (the id filtered out); the id came back through the join
    assert (tmp_path / "out" / "rows.csv.out").read_text() == "id42,4\nid43,2\n"


def test_json_lines_join(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"id": 1, "features": {"a": 1, "b": 2}}\n[5, 6, 7]\n')
    run(echo(monkeypatch, ECHO_MODE="fields"), ECHO_MODEL, tmp_path / "rows.jsonl", tmp_path / "out",
        content_type="application/jsonlines", split_type="Line", assemble_with="Line",
        join_source="Input")
    assert (tmp_path / "out" / "rows.jsonl.out").read_text() == (
        '{"id":1,"features":{"a":1,"b":2},"SageMakerOutput":{"keys":["features","id"]}}\n'
        '{"SageMakerInput":[5,6,7],"SageMakerOutput":{"length":3}}\n')


# -- the service's settings, concurrency and instances ------------------------------------------

def test_execution_parameters_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("1\n")
    backend = echo(monkeypatch, ECHO_MODE="env", ECHO_EXECUTION_PARAMETERS=json.dumps(
        {"BatchStrategy": "SINGLE_RECORD", "MaxConcurrentTransforms": 3, "MaxPayloadInMB": 2}))
    result = run(backend, ECHO_MODEL, tmp_path / "one.csv", tmp_path / "out", split_type="Line",
                 env={"MY_SETTING": "x"})
    assert (result.effective.strategy, result.effective.max_concurrent, result.effective.max_payload_mb) \
        == ("SingleRecord", 3, 2)
    seen = json.loads((tmp_path / "out" / "one.csv.out").read_text())
    assert seen["SAGEMAKER_BATCH"] == "true"
    assert not {"SAGEMAKER_BATCH_STRATEGY", "SAGEMAKER_MAX_PAYLOAD_IN_MB",
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"} & set(seen)
    result = run(backend, ECHO_MODEL, tmp_path / "one.csv", tmp_path / "out2", split_type="Line",
                 strategy="MultiRecord", max_concurrent=2)
    seen = json.loads((tmp_path / "out2" / "one.csv.out").read_text())
    assert seen["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    assert seen["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "2"
    assert result.effective.sources["MaxPayloadInMB"] == "/execution-parameters"


def test_concurrent_requests_keep_input_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = [f"line {n}\n" for n in range(24)]
    (tmp_path / "lines.txt").write_text("".join(lines))
    stats = tmp_path / "stats.json"
    run(echo(monkeypatch, ECHO_DELAY="0.1", ECHO_STATS=str(stats)), ECHO_MODEL, tmp_path / "lines.txt",
        tmp_path / "out", split_type="Line", strategy="SingleRecord", max_concurrent=4)
    assert (tmp_path / "out" / "lines.txt.out").read_text() == "".join(lines)
    assert json.loads(stats.read_text()) == {"requests": 24, "max_in_flight": 4, "chunked": 0}


def test_instances_take_the_files_in_turn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in "abcd":
        (tmp_path / "in" / f"{name}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "in" / f"{name}.txt").write_text(name)
    run(echo(monkeypatch, ECHO_MODE="port"), ECHO_MODEL, tmp_path / "in", tmp_path / "out",
        instance_count=2)
    ports = {name: (tmp_path / "out" / f"{name}.txt.out").read_text() for name in "abcd"}
    assert ports["a"] == ports["c"] != ports["b"] == ports["d"]


def test_gzip_input_and_chunked_bodies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = b"".join(b"row %d\n" % n for n in range(1000))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv.gz").write_bytes(gzip.compress(text))
    stats = tmp_path / "stats.json"
    result = run(echo(monkeypatch, ECHO_STATS=str(stats)), ECHO_MODEL, tmp_path / "in", tmp_path / "out",
                 compression="Gzip", split_type="Line", max_payload_mb=0)
    assert (tmp_path / "out" / "rows.csv.gz.out").read_bytes() == text
    assert result.requests == 1 and json.loads(stats.read_text())["chunked"] == 1
    (tmp_path / "in" / "plain.csv").write_text("not gzip\n")
    result = run(echo(monkeypatch), ECHO_MODEL, tmp_path / "in", tmp_path / "out2", compression="Gzip")
    assert [f.key for f in result.failures] == ["plain.csv"]
    assert "Not a gzipped file" in result.failures[0].message
    assert files_under(tmp_path / "out2") == ["rows.csv.gz.out"]


# -- failures, as the service reports them ------------------------------------------------------

def byoc(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["byoc", "local", "transform", str(ECHO), "--backend", "process",
                           "--model", str(ECHO_MODEL), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kwargs)


def test_a_failed_record_fails_the_job_and_its_file_only(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.csv").write_text("1\n2\n")
    (source / "bad.csv").write_text("1\n2\nFAIL\n4\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "bad.csv.out").write_text("stale output of an earlier run\n")
    done = byoc("--input", str(source), "--output", str(out), "--split-type", "Line",
                "--strategy", "SingleRecord", "--max-concurrent", "2")
    assert done.returncode == 1, done.stderr
    assert "Error: transform job failed: 1 of 2 file(s) failed; bad.csv: record 3 (from byte 4):" \
           " HTTP 400: bad input: FAIL" in done.stderr
    assert "Traceback" not in done.stderr
    assert files_under(out) == ["good.csv.out"]  # no partial or stale bad.csv.out
    assert "records/s" in done.stderr and "1 failure(s)" in done.stderr


def test_5xx_is_retried_up_to_the_limit(tmp_path: Path) -> None:
    (tmp_path / "flaky.txt").write_text("ok\nFLAKY\n")
    done = byoc("--input", str(tmp_path / "flaky.txt"), "--output", str(tmp_path / "out"),
                "--split-type", "Line", "--strategy", "SingleRecord")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "flaky.txt.out").read_text() == "ok\nFLAKY\n"
    assert done.stdout.strip() == str(tmp_path / "out")
    done = byoc("--input", str(tmp_path / "flaky.txt"), "--output", str(tmp_path / "out2"),
                "--split-type", "Line", "--strategy", "SingleRecord", "--max-retries", "0")
    assert done.returncode == 1
    assert "flaky.txt: record 2 (from byte 3): HTTP 500: flaky: try again" in done.stderr


def test_a_record_over_max_payload_is_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"small\n" + b"x" * (1024 * 1024 + 10) + b"\n")
    done = byoc("--input", str(tmp_path / "big.txt"), "--output", str(tmp_path / "out"),
                "--split-type", "Line", "--max-payload", "1")
    assert done.returncode == 1
    assert "big.txt: record 2 (byte 6) is 1048587 bytes, more than MaxPayloadInMB allows" in done.stderr
    assert not (tmp_path / "out" / "big.txt.out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--max-payload", "20", "--max-concurrent", "6"], "6 x 20 is 120"),
    (["--input-filter", "$..a", "--content-type", "text/csv"], "expected a name after '.'"),
    (["--input-filter", "$[1:]", "--content-type", "text/csv"], "CSV needs SplitType Line"),
    (["--env", "NOEQUALS"], "--env takes KEY=VALUE"),
])
def test_bad_settings_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.csv").write_text("1\n")
    done = byoc("--input", str(tmp_path / "x.csv"), *args)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: ") and message in done.stderr
    assert "Traceback" not in done.stderr


def test_servers_that_do_not_start_fail_the_job_and_leave_nothing_running(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1\n")
    marker = str(tmp_path / "marker")
    backend = echo(monkeypatch, ECHO_EXIT="3", ECHO_STATS=marker)
    with pytest.raises(ServeError, match="exited with status 3") as caught:
        run(backend, ECHO_MODEL, tmp_path / "x.csv", tmp_path / "out", instance_count=3)
    assert "exiting on purpose" in caught.value.detail
    assert _serving(marker) == []
    assert not (tmp_path / "out").exists()


def test_output_inside_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1\n")
    with pytest.raises(ConfigError, match="is inside --input"):
        run(ProcessBackend(ECHO / "container" / "echo"), ECHO_MODEL, tmp_path, tmp_path / "out")


def test_links_in_the_output_folder_are_never_followed_out(tmp_path: Path) -> None:
    source, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    (source / "sub").mkdir(parents=True)
    (source / "x.csv").write_text("1,2\n")
    (source / "sub" / "y.csv").write_text("3,4\n")
    elsewhere.mkdir()
    (elsewhere / "victim").write_text("keep me\n")
    out.mkdir()
    (out / "x.csv.out").symlink_to(elsewhere / "victim")
    (out / ".x.csv.out.partial").symlink_to(elsewhere / "victim")
    (out / "sub").symlink_to(elsewhere)
    result = run(ProcessBackend(ECHO / "container" / "echo"), ECHO_MODEL, source, out)
    assert (elsewhere / "victim").read_text() == "keep me\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim"]
    # a link where an output goes is replaced by the output; a linked folder fails its files
    assert not (out / "x.csv.out").is_symlink() and (out / "x.csv.out").read_text() == "1,2\n"
    assert not (out / ".x.csv.out.partial").exists()
    assert [(f.key, f.message) for f in result.failures] == [
        ("sub/y.csv", f"{out / 'sub'} is a symbolic link; byoc does not write through it")]


def test_a_read_only_output_is_one_line_before_any_server_starts(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1\n")
    marker = str(tmp_path / "stats.json")
    with read_only(tmp_path / "locked"):
        for output in (tmp_path / "locked", tmp_path / "locked" / "new" / "out"):
            done = byoc("--input", str(tmp_path / "x.csv"), "--output", str(output),
                        env={"ECHO_STATS": marker})
            assert done.returncode == 2, done.stderr
            errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
            assert errors == [done.stderr.splitlines()[-1]], done.stderr
            assert errors[0].startswith(f"Error: --output {output}: cannot write there")
            assert str(tmp_path / "locked") in errors[0]
            assert "Traceback" not in done.stderr and "waiting for" not in done.stderr
    assert not (tmp_path / "stats.json").exists()


def _serving(marker: str) -> list[int]:
    """Processes whose environment holds *marker*."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_ctrl_c_stops_the_server_and_keeps_finished_outputs(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.txt").write_text("quick\n")
    (source / "b.txt").write_text("".join(f"slow {n}\n" for n in range(50)))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.txt.out").write_text("an earlier run's output\n")
    marker = str(tmp_path / "stats.json")
    process = subprocess.Popen(
        ["byoc", "local", "transform", str(ECHO), "--backend", "process", "--model", str(ECHO_MODEL),
         "--input", str(source), "--output", str(tmp_path / "out"), "--split-type", "Line",
         "--strategy", "SingleRecord", "--env", "ECHO_DELAY=0.2", "--env", f"ECHO_STATS={marker}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "out" / "a.txt.out").exists() or not \
            (tmp_path / "out" / ".b.txt.out.partial").exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "transform stopped" in stderr and "1 finished output(s) kept" in stderr
    assert files_under(tmp_path / "out") == ["a.txt.out"]
    assert _serving(marker) == []


def test_help_lists_the_service_names() -> None:
    done = subprocess.run(["byoc", "local", "transform", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for name in ("SplitType", "BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms",
                 "AssembleWith", "InputFilter", "OutputFilter", "JoinSource", "CompressionType"):
        assert name in done.stdout
