"""byoc local bench: a real server under real (short) load, on processes and on Docker.

Nothing here checks speed: the figures of a 2-second run on a shared machine
are noise. The tests check that every figure is there, sane and written down.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from byoc import bench, local
from byoc.backends.process import ProcessBackend
from byoc.bench.procstats import cpu_delta, cpu_seconds, memory, tree_pids
from byoc.cli import cli
from byoc.errors import PredictError
from byoc.project import Project
from helpers import free_port, train_job

ROW = b"5.1,3.5,1.4,0.2\n"


@pytest.fixture(scope="module")
def trained(default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of the default project, trained once as processes (the project is left alone)."""
    project = Project.load(default_project)
    result = train_job(backend=local.choose_backend("process", project, None), project=project,
                         output_dir=tmp_path_factory.mktemp("jobs"))
    return result.model_archive


def _bench(*args: str) -> Result:
    return CliRunner().invoke(cli, ["local", "bench", *args])


def _port_of(stderr: str) -> int:
    match = re.search(r"on 127\.0\.0\.1:(\d+)", stderr)
    assert match, stderr
    return int(match.group(1))


def _nothing_listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _check_report(data: dict[str, Any], levels: list[int], rows: int) -> None:
    assert data["schema"] == 1
    assert data["rows_per_request"] == rows
    assert [level["concurrency"] for level in data["levels"]] == levels
    assert data["cold_start"]["samples"] and data["cold_start"]["median_s"] > 0
    compute = data["compute"]
    assert compute["available"], compute["reason"]
    assert compute["calls_per_s"] > 0 and compute["rows_per_s"] == pytest.approx(
        compute["calls_per_s"] * rows)
    for level in data["levels"]:
        for target in ("invocations", "ping"):
            run = level[target]
            assert run["load"]["requests"] > 0, run
            assert run["load"]["non_2xx"] == 0, run
            assert run["load"]["p50_ms"] > 0 and run["load"]["max_ms"] >= run["load"]["p50_ms"]
            assert run["load"]["generator_cpu_s"] >= 0
            server = run["server"]
            assert server["processes"] >= 2  # serve and gunicorn at least
            assert server["rss_bytes"] > 0 and server["cpu_s"] >= 0
            assert server["pss_bytes"] is None or 0 < server["pss_bytes"] <= server["rss_bytes"]
        assert level["rows_per_s"] == pytest.approx(level["invocations"]["load"]["requests_per_s"]
                                                    * rows)
        for name in ("requests_per_s", "p50_ms"):
            ratio = level["ratios"][name]
            assert ratio["stack"] > 0 and ratio["compute"] > 0, (name, ratio)


def test_bench_on_processes_prints_a_table_and_writes_json(default_project: Path, trained: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = _bench(str(default_project), "--backend", "process", "--model", str(trained),
                    "--concurrency", "1,4", "--duration", "2s", "--warmup", "1", "--json", str(out))
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert "cold start" in table and "compute ceiling (parse + predict" in table
    assert re.search(r"^\s+1\s+/invocations\s", table, re.M), table
    assert re.search(r"^\s+4\s+/ping\s", table, re.M), table
    assert "req/s÷ping" in table and "PSS MiB" in table
    assert "[2/2] concurrency 4: /invocations for 2 s" in result.stderr
    data = json.loads(out.read_text())
    _check_report(data, [1, 4], rows=6)
    assert data["backend"] == "process" and data["duration_s"] == 2
    assert _nothing_listens(_port_of(result.stderr))  # the server is gone


def test_the_builtin_generator_and_several_cold_starts(default_project: Path, trained: Path,
                                                       tmp_path: Path) -> None:
    payload = tmp_path / "rows.json"
    payload.write_text(json.dumps([[5.1, 3.5, 1.4, 0.2]] * 3))
    project = Project.load(default_project)
    lines: list[str] = []
    result = bench.bench(backend=ProcessBackend(project.program_dir), model=trained,
                         payload=payload, content_type="application/json", concurrency=[2],
                         duration=1, generator="builtin", cold_starts=2, warmup=0,
                         say=lines.append)
    assert result.generator == "builtin" and len(result.cold_start.samples) == 2
    data = result.to_json()
    json.dumps(data)  # JSON-ready
    _check_report(data, [2], rows=3)
    assert "cold start 2/2" in lines
    assert "load from builtin" in bench.render(result)


@pytest.mark.docker
def test_bench_on_docker_measures_inside_the_container(default_image: str, trained: Path,
                                                        tmp_path: Path, docker_client: Any) -> None:
    out = tmp_path / "bench.json"
    port = free_port()
    payload = tmp_path / "payload.csv"
    payload.write_bytes(ROW)
    result = _bench("--image", default_image, "--backend", "docker", "--model", str(trained),
                    "--payload", str(payload), "--concurrency", "2", "--duration", "2",
                    "--warmup", "0", "--port", str(port), "--json", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    _check_report(data, [2], rows=1)
    assert data["backend"] == "docker" and data["target"] == default_image
    left = docker_client.containers.list(all=True, ignore_removed=True,
                                         filters={"name": f"byoc-serve-{port}-"})
    assert left == []


def test_a_payload_the_server_refuses_stops_before_any_load(default_project: Path, trained: Path,
                                                            tmp_path: Path) -> None:
    payload = tmp_path / "short.csv"
    payload.write_text("1,2,3\n")
    project = Project.load(default_project)
    with pytest.raises(PredictError, match="the server refuses the payload: HTTP 400"):
        bench.bench(backend=ProcessBackend(project.program_dir), model=trained, payload=payload,
                    content_type="text/csv", concurrency=[1], duration=1, warmup=0)


@pytest.mark.parametrize(("args", "message"), [
    (["--concurrency", "1,x"], "--concurrency takes integers"),
    (["--concurrency", "0"], "--concurrency takes integers"),
    (["--duration", "10x"], "--duration takes whole seconds"),
    (["--duration", "0"], "--duration takes whole seconds"),
    (["--duration", "1.5s"], "--duration takes whole seconds"),
    (["--payload", "missing.csv"], "the payload missing.csv is not a file"),
    (["--payload", "{tmp}/payload.bin"], "cannot tell the content type; pass --content-type"),
    (["--payload", "{tmp}/empty.csv"], "is empty"),
    (["--payload", "{tmp}/big.csv"], "SageMaker accepts at most 6291456 (6 MiB) per invocation"),
    (["--json", "{tmp}/no/such/dir/out.json"], "is not a directory"),
])
def test_bad_input_is_one_error_line_and_exit_2(default_project: Path, trained: Path,
                                                tmp_path: Path, args: list[str],
                                                message: str) -> None:
    (tmp_path / "payload.bin").write_bytes(ROW)
    (tmp_path / "empty.csv").write_bytes(b"\n")
    (tmp_path / "big.csv").write_bytes(ROW * (6 * 1024 * 1024 // len(ROW) + 1))
    filled = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = _bench(str(default_project), "--backend", "process", "--model", str(trained), *filled)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].startswith("Error: "), result.stderr
    assert message in result.stderr


def test_wrk_asked_for_but_missing(default_project: Path, trained: Path,
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = _bench(str(default_project), "--backend", "process", "--model", str(trained),
                    "--generator", "wrk")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: wrk is not installed")


def test_no_engine_for_an_image(trained: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    payload = tmp_path / "payload.csv"
    payload.write_bytes(ROW)
    result = _bench("--image", "some/image:1", "--backend", "docker", "--model", str(trained),
                    "--payload", str(payload), "--generator", "builtin")
    assert result.exit_code == 1
    assert "\nError: no Docker engine answers" in result.stderr


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("2m", 120), ("45", 45), ("1h", 3600),
                                               ("0.5m", 30)])
def test_durations(text: str, seconds: int) -> None:
    assert bench.parse_duration(text) == seconds


def test_concurrency_lists() -> None:
    assert bench.parse_concurrency("1, 8,32,8") == [1, 8, 32]


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(("body", "kind", "rows"), [
    (b"1,2\n\n3,4\n", "text/csv", 2),
    (b"1,2\r\n3,4\r\n5,6", "text/csv; charset=utf-8", 3),
    (b"[[1, 2], [3, 4]]", "application/json", 2),
    (b"[1, 2]", "application/json", 1),
    (b'{"instances": [[1], [2], [3]]}', "application/json", 3),
    (b'{"other": 1}', "application/json", None),
    (b"[1]\n[2]\n", "application/jsonlines", 2),
    (_npy(np.zeros((5, 4))), "application/x-npy", 5),
    (_npy(np.zeros(4)), "application/x-npy", 1),
    (b"not npy", "application/x-npy", None),
    (b"anything", "image/png", None),
])
def test_rows_per_request(body: bytes, kind: str, rows: int | None) -> None:
    assert bench.count_rows(body, kind) == rows


def test_proc_readings_cover_a_session() -> None:
    process = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(pids := tree_pids(process.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.pid in pids and len(pids) == 3
        before = cpu_seconds(pids)
        assert cpu_delta(before, cpu_seconds(pids)) >= 0
        used = memory(pids)
        assert used.processes == 3 and used.rss_bytes > 0
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # sh and its two sleeps
        process.wait()
