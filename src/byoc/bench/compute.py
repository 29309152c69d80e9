"""The compute ceiling of ``byoc local bench``: parse, predict and serialise in a loop, no HTTP.

It imports the serving program's own ``payloads`` and ``model`` modules (what
a byoc project's ``predictor.py`` calls per request) and times
``payloads.encode(model.predict(m, payloads.decode(body, kind, n)), kind)``
in one process, on one core. Docker runs it inside the server's container
(``python3`` there is the image's interpreter; the program is /opt/program,
the model /opt/ml/model); the process backend runs it with this Python.
An image without those modules gets no compute ceiling, with the reason.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import archive, contract
from .._docker import explain

MARK = "BYOC_COMPUTE "
CONTAINER_PROGRAM = "/opt/program"
CONTAINER_MODEL = contract.IN_CONTAINER.model_dir.as_posix()
CONTAINER_PAYLOAD = "/tmp/byoc-bench-payload"

SCRIPT = r"""
import json, sys, time
program, model_dir, payload, kind, seconds = sys.argv[1:6]
sys.path.insert(0, program)
def report(data):
    print("BYOC_COMPUTE " + json.dumps(data), flush=True)
try:
    from pathlib import Path
    try:
        import model, payloads
    except ImportError as exc:
        report({"error": "the program has no byoc payloads and model modules (%s)" % exc})
        sys.exit(0)
    with open(payload, "rb") as handle:
        body = handle.read()
    fitted = model.load(Path(model_dir))
    width = getattr(model, "n_features", None)
    n = width(fitted) if width else None
    missing = bool(getattr(model, "ACCEPTS_MISSING", False))
    kind = payloads.request_type(kind)
    answer = payloads.response_type(None, kind)
    def once():
        rows = payloads.decode(body, kind, n, accepts_missing=missing)
        return payloads.encode(model.predict(fitted, rows), answer)
    for _ in range(20):
        once()
    times = []
    clock = time.perf_counter
    cpu = time.process_time()
    start = clock()
    end = start + float(seconds)
    now = start
    while now < end:
        before = now
        once()
        now = clock()
        times.append(now - before)
    cpu = time.process_time() - cpu
    times.sort()
    report({"calls": len(times), "seconds": now - start, "cpu_seconds": cpu,
            "p50_s": times[len(times) // 2]})
except Exception as exc:
    report({"error": "%s: %s" % (type(exc).__name__, exc)})
"""


@dataclass(frozen=True)
class ComputeCeiling:
    """Calls per second of parse + predict + serialise in one process (no HTTP)."""

    available: bool
    #: Why there is none (empty when available).
    reason: str = ""
    calls: int = 0
    seconds: float = 0.0
    calls_per_s: float = 0.0
    rows_per_s: float | None = None
    p50_ms: float = 0.0
    cpu_ms_per_call: float = 0.0


def in_container(container: Any, payload: Path, content_type: str, seconds: float,
                 rows: int | None) -> ComputeCeiling:
    """Run the loop inside *container* (a docker SDK container, running)."""
    import docker.errors

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = payload.read_bytes()
        info = tarfile.TarInfo(Path(CONTAINER_PAYLOAD).name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    try:
        container.put_archive(str(Path(CONTAINER_PAYLOAD).parent), buffer.getvalue())
        status, output = container.exec_run(
            ["python3", "-c", SCRIPT, CONTAINER_PROGRAM, CONTAINER_MODEL, CONTAINER_PAYLOAD,
             content_type, str(seconds)])
    except docker.errors.APIError as exc:
        return ComputeCeiling(False, f"cannot run it in the container: {explain(exc)}")
    return _parse(int(status or 0), bytes(output or b"").decode("utf-8", "replace"), rows)


def in_process(program_dir: Path, model: Path, payload: Path, content_type: str, seconds: float,
               rows: int | None, python: str = sys.executable) -> ComputeCeiling:
    """Run the loop with *python* (the project's environment), the program's modules first on
    sys.path."""
    with tempfile.TemporaryDirectory(prefix="byoc-compute-") as scratch:
        model_dir = model
        if not model.is_dir():
            model_dir = Path(scratch) / "model"
            archive.extract(model, model_dir)
        finished = subprocess.run(
            [python, "-c", SCRIPT, str(program_dir), str(model_dir), str(payload),
             content_type, str(seconds)],
            cwd=program_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, check=False)
    return _parse(finished.returncode, finished.stdout.decode("utf-8", "replace"), rows)


def _parse(status: int, output: str, rows: int | None) -> ComputeCeiling:
    line = next((line[len(MARK):] for line in output.splitlines() if line.startswith(MARK)), None)
    if line is None:
        tail = output.strip().splitlines()[-1:] or ["no output"]
        return ComputeCeiling(False, f"the loop exited with status {status}: {tail[0]}")
    data = json.loads(line)
    if "error" in data:
        return ComputeCeiling(False, str(data["error"]))
    calls, seconds = int(data["calls"]), float(data["seconds"])
    if calls == 0 or seconds <= 0:
        return ComputeCeiling(False, "the loop made no calls")
    per_s = calls / seconds
    return ComputeCeiling(True, "", calls, seconds, per_s, per_s * rows if rows else None,
                          float(data["p50_s"]) * 1000, float(data["cpu_seconds"]) / calls * 1000)
