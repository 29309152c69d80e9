#!/usr/bin/env python3
"""byoc local transform against the SageMaker SDK's local mode, and against the compute ceiling.

On one N-row CSV (default 100,000 rows of iris features) through one image, in one run:
  - the compute ceiling: parse + predict + serialise of the whole file in one process inside
    the container, no HTTP (what ``byoc local bench`` measures), as rows/s;
  - ``byoc local transform`` (Docker backend) with MultiRecord and with SingleRecord (the SDK only
    on the first --single-rows rows: it sends one request at a time), SplitType
    Line, AssembleWith Line, the rest from the container's /execution-parameters;
  - the SDK's local mode (``sagemaker<3``, its own Python: see setup.sh) with the same settings;
and compares each pair of outputs byte for byte. Prints a Markdown table; --json writes all.

    python benchmarks/transform/run.py --image IMAGE --model model.tar.gz \
        --sdk-python "$(sh benchmarks/transform/setup.sh)" --repeat 3 --json results.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from byoc import _compute, local
from byoc.backends.docker import DockerBackend
from byoc.transform import TransformParams, transform

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
IRIS = REPO / "local_test" / "test_dir" / "input" / "data" / "training" / "iris.csv"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_csv(path: Path, rows: int) -> None:
    """*rows* feature rows drawn (seeded) from iris, each feature jittered by -0.2..0.2."""
    source = [line.split(",")[1:] for line in IRIS.read_text().splitlines() if line.strip()]
    chooser = random.Random(5)
    with path.open("w") as handle:
        for _ in range(rows):
            row = chooser.choice(source)
            handle.write(",".join(f"{float(v) + chooser.randint(-2, 2) / 10:.1f}" for v in row) + "\n")


def ceiling(image: str, model: Path, payload: Path, rows: int, seconds: float) -> _compute.ComputeCeiling:
    with local.serve(backend=DockerBackend(image), model=model, port=local.free_port(),
                     grace_seconds=5) as running:
        return _compute.in_container(running.server.container,  # type: ignore[attr-defined]
                                     payload, "text/csv", seconds, rows)


def run_byoc(image: str, model: Path, source: Path, output: Path, strategy: str) -> dict[str, Any]:
    start = time.monotonic()
    result = transform(backend=DockerBackend(image), model=model, source=source, output_dir=output,
                       params=TransformParams(content_type="text/csv", accept="text/csv",
                                              split_type="Line", assemble_with="Line",
                                              strategy=strategy))
    wall = time.monotonic() - start
    if result.failures:
        raise SystemExit(f"byoc transform failed: {result.failures}")
    return {"wall_s": wall, "transform_s": result.seconds, "startup_s": result.startup_seconds,
            "records": result.records, "requests": result.requests,
            "max_concurrent": result.effective.max_concurrent,
            "max_payload_mb": result.effective.max_payload_mb}


def _sdk_containers(image: str) -> set[str]:
    """IDs of the containers of *image* that local mode's compose file names ``<10>-algo-1-<5>``."""
    found = subprocess.run(["docker", "ps", "-a", "--filter", f"ancestor={image}", "--format",
                            "{{.ID}} {{.Names}}"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in found.stdout.splitlines()
            if re.fullmatch(r"[0-9a-f]+ [a-z0-9]{10}-algo-1-[a-z0-9]{5}", line.strip())}


def run_sdk(python: str, image: str, model: Path, source: Path, output: Path, strategy: str
            ) -> dict[str, Any]:
    """One SDK run; the containers its ``docker-compose up`` leaves behind are removed."""
    before = _sdk_containers(image)
    try:
        return _run_sdk(python, image, model, source, output, strategy)
    finally:
        left = sorted(_sdk_containers(image) - before)
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", "sagemaker-local"], capture_output=True, check=False)


def _run_sdk(python: str, image: str, model: Path, source: Path, output: Path, strategy: str
             ) -> dict[str, Any]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
           # no telemetry call: its host does not resolve here, and the failure ends the run
           "SAGEMAKER_USER_CONFIG_OVERRIDE": str(HERE / "sdk-config.yaml")}
    start = time.monotonic()
    done = subprocess.run([python, str(HERE / "sdk_transform.py"), image, str(model), str(source),
                           str(output), strategy, str(local.free_port())],
                          capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - start
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("{")), None)
    if done.returncode != 0 or line is None:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        return {"error": f"exit {done.returncode}: {tail}"}
    return {"wall_s": wall, "transform_s": json.loads(line)["seconds"]}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--render", type=Path, help="Print the table of an earlier --json file; run nothing")
    parser.add_argument("--image")
    parser.add_argument("--model", type=Path, help="model.tar.gz")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sdk-python", help="Python of a venv with sagemaker<3 (setup.sh)")
    parser.add_argument("--single-rows", type=int, default=3000,
                        help="Rows of the SingleRecord comparison: the SDK sends one request at a"
                             " time, too slow for the full file on a shared machine")
    parser.add_argument("--compute-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    if not args.image or not args.model:
        parser.error("--image and --model are needed to run")
    scratch = Path(tempfile.mkdtemp(prefix="byoc-transform-bench-"))
    source = scratch / "input"
    source.mkdir()
    csv = source / "rows.csv"
    make_csv(csv, args.rows)
    subset = scratch / "subset"
    subset.mkdir()
    with csv.open() as full, (subset / "rows.csv").open("w") as part:
        for _, line in zip(range(args.single_rows), full, strict=False):
            part.write(line)
    # (strategy, input, rows, compare with the SDK)
    scenarios = [("MultiRecord", source, args.rows, True),
                 ("SingleRecord", subset, args.single_rows, True),
                 ("SingleRecord", source, args.rows, False)]
    say(f"{args.rows} rows, {csv.stat().st_size} bytes in {csv}")
    compute = ceiling(args.image, args.model, csv, args.rows, args.compute_seconds)
    say(f"compute ceiling: {compute.rows_per_s or 0:,.0f} rows/s ({compute.reason or 'ok'})")
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "image": args.image, "rows": args.rows, "bytes": csv.stat().st_size,
        "cpus": os.cpu_count(), "compute": compute.__dict__, "runs": {}}
    for strategy, where, rows, compare in scenarios:
        name = f"{strategy}, {rows:,} rows"
        entry: dict[str, Any] = {"strategy": strategy, "rows": rows, "byoc": [], "sdk": [],
                                 "identical": []}
        for attempt in range(args.repeat):
            byoc_out = scratch / f"byoc-{strategy}-{rows}-{attempt}"
            sdk_out = scratch / f"sdk-{strategy}-{rows}-{attempt}"
            entry["byoc"].append(run_byoc(args.image, args.model, where, byoc_out, strategy))
            say(f"byoc {name} #{attempt + 1}: {entry['byoc'][-1]}")
            if args.sdk_python and compare:
                entry["sdk"].append(run_sdk(args.sdk_python, args.image, args.model, where, sdk_out,
                                            strategy))
                say(f"sdk  {name} #{attempt + 1}: {entry['sdk'][-1]}")
                sdk_file = sdk_out / "rows.csv.out"
                entry["identical"].append(sdk_file.is_file() and sdk_file.read_bytes()
                                          == (byoc_out / "rows.csv.out").read_bytes())
        report["runs"][name] = entry
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        say(f"wrote {args.json}")
    return 0


def render(report: dict[str, Any]) -> str:
    ceiling_rps = report["compute"].get("rows_per_s") or 0.0
    lines = [f"{report['rows']:,} CSV rows ({report['bytes']:,} bytes), image {report['image']}, commit"
             f" {report['commit']}; compute ceiling {ceiling_rps:,.0f} rows/s", "",
             "| scenario | tool | records/s (transform) | records/s (wall, start to stop) | wall s |"
             " x SDK (wall) | x SDK (its transform() call) | / ceiling | identical to SDK |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for strategy, entry in report["runs"].items():
        rows = entry["rows"]
        byoc_runs = entry["byoc"]
        sdk_runs = [run for run in entry["sdk"] if "error" not in run]
        sdk_wall = median([run["wall_s"] for run in sdk_runs])
        byoc_wall = median([run["wall_s"] for run in byoc_runs])
        byoc_phase = median([run["transform_s"] for run in byoc_runs])
        ratio = f"{sdk_wall / byoc_wall:.1f}" if sdk_runs else "-"
        sdk_call = median([run["transform_s"] for run in sdk_runs])
        call_ratio = f"{sdk_call / byoc_wall:.1f}" if sdk_runs else "-"
        share = f"{rows / byoc_phase / ceiling_rps:.1%}" if ceiling_rps else "-"
        same = ("yes" if all(entry["identical"]) else "NO") if entry["identical"] else "-"
        lines.append(f"| {strategy} | byoc | {rows / byoc_phase:,.0f} | {rows / byoc_wall:,.0f} |"
                     f" {byoc_wall:.1f} | {ratio} | {call_ratio} | {share} | {same} |")
        if sdk_runs:
            sdk_phase = median([run["transform_s"] for run in sdk_runs])
            lines.append(f"| {strategy} | SDK local mode | {rows / sdk_phase:,.0f} (incl. start) |"
                         f" {rows / sdk_wall:,.0f} | {sdk_wall:.1f} | 1.0 | 1.0 | - | |")
        for run in entry["sdk"]:
            if "error" in run:
                lines.append(f"| {strategy} | SDK local mode | failed: {run['error'].splitlines()[-1]} |"
                             " | | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
