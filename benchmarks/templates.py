"""Figures per project template: image size, cold start, single-row req/s against /ping, training time.

For each template: ``byoc new --template NAME``, ``byoc build`` (PyTorch with its CPU wheel
copied into wheels/), ``byoc local train`` on the bundled sample data (wall time of the
whole job: containers started, trained, model archived), then ``byoc local bench`` with one
CSV row per request, which gives req/s as a ratio of the ``/ping`` stack ceiling and the
cold start (container start to the first ``/ping`` 200, model loaded), median of
``--cold-starts``. Prints a Markdown table; ``--out`` writes every figure as JSON.

    python benchmarks/templates.py --base-image byoc-test-base:bookworm --duration 10s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
BYOC = [sys.executable, "-m", "byoc"]


def run(args: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def measure(template: str, work: Path, options: argparse.Namespace) -> dict[str, Any]:
    project = Path(run([*BYOC, "new", f"bench-{template}", "--template", template, "--no-input",
                        "-o", str(work)]))
    if template == "pytorch":
        shutil.copy(options.torch_wheel, project / "wheels")
    tag = f"byoc-bench-tpl-{template}:{os.getpid()}"
    started = time.monotonic()
    run([*BYOC, "build", str(project), "--tag", tag, "--network", "host",
         *(["--build-arg", f"BASE_IMAGE={options.base_image}"] if options.base_image else [])])
    build_s = time.monotonic() - started
    try:
        size = int(run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]))
        train_s = []
        archive = Path()
        for _ in range(options.train_runs):
            started = time.monotonic()
            archive = Path(run([*BYOC, "local", "train", str(project), "--image", tag,
                                "--backend", "docker"]))
            train_s.append(time.monotonic() - started)
        row = (project / "local_test" / "payload.csv").read_text().splitlines()[0] + "\n"
        payload = work / f"{template}-one-row.csv"
        payload.write_text(row)
        report = work / f"{template}-bench.json"
        run([*BYOC, "local", "bench", str(project), "--image", tag, "--backend", "docker",
             "--model", str(archive), "--payload", str(payload), "--content-type", "text/csv",
             "--concurrency", str(options.concurrency), "--duration", options.duration,
             "--cold-starts", str(options.cold_starts), "--json", str(report)])
        bench = json.loads(report.read_text())
    finally:
        if not options.keep:
            subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
    level = bench["levels"][0]
    return {
        "template": template,
        "image": tag,
        "image_mb": round(size / 1e6),
        "build_s": round(build_s, 1),
        "cold_start_s": bench["cold_start"]["median_s"],
        "cold_start_samples_s": bench["cold_start"]["samples"],
        "requests_per_s": level["invocations"]["load"]["requests_per_s"],
        "ping_requests_per_s": level["ping"]["load"]["requests_per_s"],
        "vs_ping": level["ratios"]["requests_per_s"]["stack"],
        "p50_ms": level["invocations"]["load"]["p50_ms"],
        "pss_mib": level["invocations"]["server"]["pss_bytes"] / 2**20,
        "cpu_ms_per_request": level["invocations"]["server"]["cpu_ms_per_request"],
        "ping_cpu_ms_per_request": level["ping"]["server"]["cpu_ms_per_request"],
        "compute_calls_per_s": (bench.get("compute") or {}).get("calls_per_s"),
        "train_s": statistics.median(train_s),
        "train_samples_s": train_s,
    }


def markdown(rows: list[dict[str, Any]], concurrency: int) -> str:
    lines = [f"| template | image MB | cold start s | 1-row req/s (c={concurrency}) | ÷ /ping |"
             " p50 ms | PSS MiB | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['template']} | {row['image_mb']} | {row['cold_start_s']:.2f} |"
                     f" {row['requests_per_s']:.0f} | {row['vs_ping']:.2f} | {row['p50_ms']:.2f} |"
                     f" {row['pss_mib']:.0f} | {row['train_s']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", default="sklearn,xgboost,pytorch")
    parser.add_argument("--base-image", help="BASE_IMAGE build argument")
    parser.add_argument("--torch-wheel", type=Path, default=TORCH_WHEEL,
                        help="torch CPU wheel copied into the PyTorch project's wheels/")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--train-runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the images")
    parser.add_argument("--out", type=Path, help="JSON file for every figure")
    options = parser.parse_args()
    templates = options.templates.split(",")
    if "pytorch" in templates and not options.torch_wheel.is_file():
        parser.error(f"no torch wheel at {options.torch_wheel}: pass --torch-wheel")
    rows = []
    with tempfile.TemporaryDirectory(prefix="byoc-bench-templates-") as tmp:
        for template in templates:
            print(f"measuring {template} ...", file=sys.stderr, flush=True)
            rows.append(measure(template, Path(tmp), options))
    table = markdown(rows, options.concurrency)
    print(table)
    if options.out:
        options.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                           "duration": options.duration, "rows": rows,
                                           "markdown": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
