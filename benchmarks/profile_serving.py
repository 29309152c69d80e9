#!/usr/bin/env python3
"""Where a request's CPU goes: ``POST /invocations`` against ``GET /ping``, profiled under load.

Starts a program's ``serve`` (nginx -> gunicorn -> Flask, as in the image) as plain
processes on a free port, then for each route drives wrk at one concurrency while
py-spy samples every gunicorn worker, and /proc counts the CPU of nginx and of the
gunicorn processes. Each sample is put in one step of the request path by its
innermost frame that belongs to one (a numpy call inside ``decode`` is parsing); the
Python processes' CPU per request is shared out by the samples' shares. The table
prints both routes side by side and the difference, in microseconds of CPU per
request. Needs ``wrk``, ``py-spy`` (``pip install py-spy``; root, or ptrace rights) and the
program's own packages in the interpreter that runs it (``pip install -r container/requirements.txt``):
the program is served as plain processes of this Python.

    python benchmarks/profile_serving.py                       # the default template's program
    python benchmarks/profile_serving.py --program PROJECT/container/NAME --model MODEL_DIR \\
        --payload body.csv --content-type text/csv --duration 10 --concurrency 8

Samples are taken of the wall clock: waiting in the gevent hub (libev, the poll for
events) is left out of the shares, since its CPU cannot be told from its waiting.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from byoc.bench import procstats
from byoc.bench.load import LoadSpec, run_load
from byoc.errors import BenchError
from byoc.local.serve import free_port

REPO = Path(__file__).resolve().parent.parent
PROGRAM = REPO / "container" / "iris_classifier"

#: (step, file pattern, function pattern): the first step whose patterns match a frame,
#: looking from the innermost frame outwards, gets the sample.
STEPS: list[tuple[str, str, str]] = [
    ("model: predict", r"(^|/)model\.py$", r".*"),
    ("parse the body", r"(^|/)payloads\.py$", r"^(decode|_csv_rows|_json_rows|_npy_rows|_cell)$"),
    ("encode the answer", r"(^|/)payloads\.py$", r"^encode$"),
    ("content negotiation", r"(^|/)payloads\.py$", r".*"),
    ("read the body", r"(^|/)predictor\.py$", r"(read_body|_body)$"),
    ("predictor: dispatch, answer", r"(^|/)predictor\.py$", r".*"),
    ("socket send/recv (kernel)", r"gevent/_socketcommon\.py$", r"^(SocketMixin\.)?(send|recv|recv_into)$"),
    ("Flask/Werkzeug: context, routing, response", r"(^|/)(flask|werkzeug)/", r".*"),
    ("gunicorn: read + parse HTTP", r"gunicorn/http/(parser|message|unreader|body)\.py$", r".*"),
    ("gunicorn: WSGI environ, write answer", r"gunicorn/(http/wsgi|util)\.py$", r".*"),
    ("gunicorn + gevent: worker loop, timeouts", r"(^|/)(gunicorn|gevent)/", r".*"),
]
#: A sample whose innermost frame is this is the hub waiting for (or handling) events in C.
HUB = re.compile(r"^Hub\.run \(.*gevent/hub\.py")
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:]+)(?::\d+)?\)$")


def step_of(frames: list[str]) -> str | None:
    """The step of one sample (frames outermost first); None for the hub's own loop."""
    if frames and HUB.match(frames[-1]):
        return None
    for frame in reversed(frames):
        match = FRAME.match(frame)
        if not match:
            continue
        for step, file_pattern, function_pattern in STEPS:
            if re.search(file_pattern, match["file"]) and re.search(function_pattern, match["function"]):
                return step
    return "other (interpreter, libraries)"


def shares(raw: Path) -> collections.Counter[str]:
    """Samples per step from py-spy's raw (collapsed) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, number = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if frame.strip()]
        # py-spy --subprocesses prefixes each stack with "process NNN:..." and "thread ...": skip them
        frames = [frame for frame in frames if not frame.startswith(("process ", "thread "))]
        step = step_of(frames)
        if step is not None:
            counts[step] += int(number)
    return counts


class Failed(Exception):
    """What stops the run: printed as one ``Error:`` line (and the detail, if any, before it)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def train(program: Path, root: Path) -> Path:
    """A model trained by *program* on the repository's local_test data, under *root*."""
    shutil.copytree(REPO / "local_test" / "test_dir", root)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    done = subprocess.run([sys.executable, str(program / "train")], capture_output=True, text=True,
                          env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)})
    if done.returncode != 0:
        raise Failed(f"{program / 'train'} failed (exit status {done.returncode}); does this Python"
                     " have the program's packages (pip install -r container/requirements.txt)?",
                     detail=_tail(done.stderr))
    return root / "model"


def wait_ready(url: str, serve: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    """Until /ping answers 200; :raises Failed: if serve ends or gives up first, with its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise Failed(f"serve exited with status {serve.returncode} before answering /ping",
                         detail=_tail(log.read_text(errors="replace")))
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.headers.get("X-Model-Load-Status") == "failed":
                raise Failed(f"the model does not load: {exc.read().decode(errors='replace').strip()}",
                             detail=_tail(log.read_text(errors="replace"))) from None
        except OSError:
            pass
        time.sleep(0.1)
    raise Failed(f"the server did not answer /ping within {seconds:.0f} s",
                 detail=_tail(log.read_text(errors="replace")))


def check_payload(url: str, payload: Path, content_type: str) -> None:
    """:raises Failed: unless the server answers the payload with a 2xx (a refused one would be
    profiled as the error path)."""
    sent = urllib.request.Request(f"{url}/invocations", data=payload.read_bytes(), method="POST",
                                  headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(sent, timeout=60):
            return
    except urllib.error.HTTPError as exc:
        answer = exc.read().decode(errors="replace").strip()
        raise Failed(f"the server refuses the payload: HTTP {exc.code}: {answer[:300]}") from None


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def profile(route: str, url: str, serve: subprocess.Popen[bytes], args: argparse.Namespace,
            scratch: Path) -> dict[str, object]:
    """One route under load: wrk's figures, CPU per request by process kind and by step."""
    tree = procstats.tree_pids(serve.pid)
    master = next(pid for pid in tree if "gunicorn" in _argv(pid) and _parent(pid) == serve.pid)
    raw = scratch / f"{route}.txt"
    spy = None if args.no_profile else subprocess.Popen(
        [args.py_spy, "record", "--pid", str(master), "--subprocesses", "--rate", str(args.rate),
         "--nonblocking", "--format", "raw", "--duration", str(args.duration), "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # py-spy attaches
    before = procstats.cpu_seconds(tree)
    spec = (LoadSpec(url=f"{url}/invocations", concurrency=args.concurrency, duration=args.duration,
                     body_file=args.payload, content_type=args.content_type) if route == "invocations"
            else LoadSpec(url=f"{url}/ping", concurrency=args.concurrency, duration=args.duration))
    load = run_load(spec, "wrk")
    if load.non_2xx or load.socket_errors:
        raise Failed(f"{route}: {load.non_2xx} answers outside 2xx and {load.socket_errors} socket"
                     f" errors of {load.requests} requests: the figures would not be of that route")
    after = procstats.cpu_seconds(tree)
    if spy is not None:
        spy.wait(timeout=args.duration + 30)
    kinds: dict[str, float] = collections.defaultdict(float)
    for pid, seconds in after.items():
        kind = "nginx" if "nginx" in _argv(pid) else "gunicorn" if "gunicorn" in _argv(pid) else "serve"
        kinds[kind] += seconds - before.get(pid, seconds)
    requests = max(load.requests, 1)
    counts = shares(raw) if spy is not None else collections.Counter()
    samples = sum(counts.values())
    total = samples or 1
    python_us = kinds["gunicorn"] / requests * 1e6
    return {
        "requests_per_s": load.requests_per_s, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
        "cpu_us": {kind: seconds / requests * 1e6 for kind, seconds in kinds.items()},
        "steps_us": {step: python_us * number / total for step, number in counts.items()},
        "samples": samples,
    }


def _argv(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def _parent(pid: int) -> int:
    stat = procstats.read_stat(pid)
    return stat.ppid if stat else 0


def render(figures: dict[str, dict[str, object]]) -> str:
    ping, inv = figures["ping"], figures["invocations"]
    lines = ["| | /ping | /invocations | difference |", "|---|---:|---:|---:|"]
    for key, label in [("requests_per_s", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")]:
        a, b = float(ping[key]), float(inv[key])  # type: ignore[arg-type]
        lines.append(f"| {label} | {a:,.2f} | {b:,.2f} | {b - a:+,.2f} |")
    cpu_a, cpu_b = ping["cpu_us"], inv["cpu_us"]
    assert isinstance(cpu_a, dict) and isinstance(cpu_b, dict)
    for kind in ("nginx", "gunicorn"):
        lines.append(f"| CPU µs/request: {kind} | {cpu_a.get(kind, 0):.1f} | {cpu_b.get(kind, 0):.1f} |"
                     f" {cpu_b.get(kind, 0) - cpu_a.get(kind, 0):+.1f} |")
    total_a, total_b = sum(cpu_a.values()), sum(cpu_b.values())
    lines.append(f"| **CPU µs/request: all** | **{total_a:.1f}** | **{total_b:.1f}** |"
                 f" **{total_b - total_a:+.1f}** ({total_b / total_a:.2f}×) |")
    steps_a, steps_b = ping["steps_us"], inv["steps_us"]
    assert isinstance(steps_a, dict) and isinstance(steps_b, dict)
    order = [step for step, _, _ in STEPS] + ["other (interpreter, libraries)"]
    for step in dict.fromkeys(order):
        a, b = steps_a.get(step, 0.0), steps_b.get(step, 0.0)
        if a or b:
            lines.append(f"| gunicorn: {step} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    if ping["samples"] or inv["samples"]:
        lines.append(f"| py-spy samples (hub loop left out) | {ping['samples']} | {inv['samples']} | |")
    return "\n".join(lines)


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--program", type=Path, default=PROGRAM, help="the program dir (serve, train)")
    parser.add_argument("--model", type=Path, help="model dir (default: train one on local_test)")
    parser.add_argument("--payload", type=Path, help="body of each invocation (default: one CSV row)")
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--concurrency", type=positive, default=8)
    parser.add_argument("--duration", type=positive, default=10, help="seconds per route")
    parser.add_argument("--rate", type=positive, default=1000, help="py-spy samples per second")
    parser.add_argument("--workers", type=positive, default=2, help="MODEL_SERVER_WORKERS")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-profile", action="store_true",
                        help="load and CPU figures only: no py-spy (which takes CPU of its own)")
    args = parser.parse_args()
    args.py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not (args.no_profile or Path(args.py_spy).exists()) or not shutil.which("wrk"):
        parser.error("needs py-spy (pip install py-spy) and wrk (apt-get install wrk)")
    for name in ("serve", "train"):
        if not (args.program / name).is_file():
            parser.error(f"--program {args.program}: no {name} program there")
    if args.payload is not None and not args.payload.is_file():
        parser.error(f"--payload {args.payload}: not a file")
    if args.model is not None and not args.model.is_dir():
        parser.error(f"--model {args.model}: not a directory (an extracted model.tar.gz)")
    if any("=" not in pair for pair in args.env):
        parser.error("--env takes KEY=VALUE")
    try:
        return run(args)
    except (Failed, BenchError) as exc:
        detail = getattr(exc, "detail", "")
        if detail:
            print(detail, file=sys.stderr)
        print(f"Error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="profile-serving-") as name:
        scratch = Path(name)
        if args.payload is None:
            args.payload = scratch / "row.csv"
            args.payload.write_text("5.1,3.5,1.4,0.2\n")
        root = scratch / "opt_ml"
        model = args.model or train(args.program, root)
        if args.model:
            shutil.copytree(REPO / "local_test" / "test_dir", root)
            shutil.copytree(model, root / "model")
        port = free_port()
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(root), "SAGEMAKER_BIND_TO_PORT": str(port),
               "SERVE_BIND_ADDRESS": "127.0.0.1", "MODEL_SERVER_WORKERS": str(args.workers),
               **dict(pair.split("=", 1) for pair in args.env)}
        log = scratch / "serve.log"
        with log.open("wb") as output:
            serve = subprocess.Popen([sys.executable, str(args.program / "serve")], env=env,
                                     stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, serve, log)
            check_payload(url, args.payload, args.content_type)
            run_load(LoadSpec(url=f"{url}/invocations", concurrency=args.concurrency, duration=2,
                              body_file=args.payload, content_type=args.content_type), "wrk")  # warm-up
            figures = {route: profile(route, url, serve, args, scratch) for route in ("ping", "invocations")}
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=40)
    print(render(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
