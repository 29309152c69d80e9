#!/usr/bin/env python3
"""Figures of ``byoc local tune`` on the tune probe (tests/fixtures/tuneprobe).

  python benchmarks/tune.py overhead   --image IMAGE [--jobs 8]
      byoc's own cost per training job on Docker: the tuning job's wall time minus the
      containers' own run time (Docker's start and die events), per job, jobs one at a time.
  python benchmarks/tune.py parallel   --image IMAGE [--jobs 10] [--seconds 5]
      MaxParallelTrainingJobs 2 against 1: wall time of ten 5-second jobs, and the ratio.
  python benchmarks/tune.py strategies [--budget 60] [--seeds 5] [--scales 1 3] [--backend process]
      Bayesian against Random on the probe's known optimum (1.0): after how many jobs the best
      objective is within 5% of it, per seed, and the median of the seeds, at an equal budget,
      for each curvature ``scale`` of the probe's loss (a larger scale narrows the region within
      5%). TargetObjectiveMetricValue 1.05 ends a tuning job once it gets there.

Build the image first: byoc build tests/fixtures/tuneprobe --tag byoc-bench-tuneprobe:latest
(--build-arg BASE_IMAGE=... --network host where python:3.11-slim-bookworm cannot be pulled).
Every run writes into a fresh temporary directory; --json FILE keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "fixtures" / "tuneprobe"
sys.path.insert(0, str(ROOT / "tests"))
from tune_requests import OPTIMUM  # noqa: E402  (the tests' requests for the same probe)
from tune_requests import request as probe_request  # noqa: E402


def request(name: str, strategy: str, jobs: int, parallel: int, seed: int,
            static: dict[str, str], **completion: Any) -> dict[str, Any]:
    """The tests' probe request (tests/tune_requests.py) with this seed, static hyperparameters
    and TuningJobCompletionCriteria."""
    config: dict[str, Any] = {"RandomSeed": seed}
    if completion:
        config["TuningJobCompletionCriteria"] = completion
    body: dict[str, Any] = probe_request(name, strategy, max_jobs=jobs, parallel=parallel,
                                         static=static, **config)
    return body


def tune(body: dict[str, Any], work: Path, backend: str, image: str | None) -> tuple[float, Path]:
    """Run ``byoc local tune``; return its wall time and tuning directory."""
    config = work / f"{body['HyperParameterTuningJobName']}.json"
    config.write_text(json.dumps(body))
    command = ["byoc", "local", "tune", "--backend", backend, "--config", str(config),
               "--output-dir", str(work / "out")]
    command += ["--image", image, "--channel", f"training={PROBE}/local_test/test_dir/input/data/training"] \
        if image else [str(PROBE)]
    start = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, cwd=work)
    wall = time.monotonic() - start
    if run.returncode != 0:
        sys.exit(f"byoc local tune failed:\n{run.stderr}")
    return wall, work / "out" / body["HyperParameterTuningJobName"]


def summaries(tuning_dir: Path) -> list[dict[str, Any]]:
    entries = json.loads((tuning_dir / "training-jobs.json").read_text())["TrainingJobSummaries"]
    return sorted(entries, key=lambda e: e["TrainingJobName"])


class ContainerClock:
    """Each training container's own run time, from the engine's start and die events."""

    def __init__(self) -> None:
        import docker

        self.client = docker.from_env()
        self.started: dict[str, int] = {}
        self.runtimes: list[float] = []
        self.since = int(time.time()) - 1

    def collect(self, prefix: str) -> list[float]:
        """Run times of the containers whose job name starts with *prefix*."""
        until = int(time.time()) + 1
        for event in self.client.events(since=self.since, until=until, decode=True,
                                        filters={"type": "container", "label": "com.byoc.job"}):
            ident, action, nano = event["id"], event["Action"], event["timeNano"]
            attributes = event["Actor"]["Attributes"]
            if not attributes.get("com.byoc.job", "").startswith(prefix):
                continue  # another job on the same engine
            if "-net-" in attributes.get("name", ""):
                continue  # the placeholder that keeps a host's name: not the training program
            if action == "start":
                self.started[ident] = nano
            elif action == "die" and ident in self.started:
                self.runtimes.append((nano - self.started.pop(ident)) / 1e9)
        return self.runtimes


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    clock = ContainerClock()
    with tempfile.TemporaryDirectory(prefix="byoc-bench-tune-") as tmp:
        body = request("bench-overhead", "Random", args.jobs, 1, 1, {"epochs": "3"})
        wall, tuning_dir = tune(body, Path(tmp), "docker", args.image)
        entries = summaries(tuning_dir)
    runtimes = clock.collect(body["HyperParameterTuningJobName"] + "-")
    if len(runtimes) != args.jobs:
        sys.exit(f"saw {len(runtimes)} containers for {args.jobs} jobs")
    job_walls = [(datetime.fromisoformat(e["TrainingEndTime"]) -
                  datetime.fromisoformat(e["TrainingStartTime"])).total_seconds() for e in entries]
    result = {
        "jobs": args.jobs, "wall_s": round(wall, 2),
        "container_runtime_s": [round(r, 3) for r in runtimes],
        "job_wall_s": [round(w, 3) for w in job_walls],
        "byoc_cost_per_job_s": round((wall - sum(runtimes)) / args.jobs, 3),
        "byoc_cost_per_job_inside_tuner_s": round(statistics.fmean(job_walls) -
                                                  statistics.fmean(runtimes), 3),
    }
    print(f"{args.jobs} jobs on Docker, one at a time: wall {wall:.2f} s, containers ran"
          f" {sum(runtimes):.2f} s in all (median {statistics.median(runtimes):.3f} s each)")
    print(f"byoc's cost per training job: {result['byoc_cost_per_job_s']:.3f} s (whole command,"
          f" start-up included); {result['byoc_cost_per_job_inside_tuner_s']:.3f} s per job inside"
          " the tuning loop (job wall minus container run time)")
    return result


def parallel(args: argparse.Namespace) -> dict[str, Any]:
    static = {"epochs": str(args.seconds), "sleep": "1"}
    walls = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix="byoc-bench-tune-") as tmp:
            body = request(f"bench-parallel-{workers}", "Random", args.jobs, workers, 1, static)
            walls[workers], _ = tune(body, Path(tmp), args.backend, args.image)
        print(f"MaxParallelTrainingJobs {workers}: {args.jobs} jobs of {args.seconds} s in"
              f" {walls[workers]:.1f} s")
    ratio = walls[2] / walls[1]
    print(f"parallel/serial wall time: {ratio:.2f}")
    return {"jobs": args.jobs, "seconds_per_job": args.seconds, "backend": args.backend,
            "serial_wall_s": round(walls[1], 2), "parallel2_wall_s": round(walls[2], 2),
            "ratio": round(ratio, 3)}


def strategies(args: argparse.Namespace) -> dict[str, Any]:
    target = OPTIMUM * 1.05
    result: dict[str, Any] = {"budget": args.budget, "seeds": args.seeds, "backend": args.backend}
    for scale in args.scales:
        reached: dict[str, list[int | None]] = {"Bayesian": [], "Random": []}
        for strategy in reached:
            for seed in range(1, args.seeds + 1):
                with tempfile.TemporaryDirectory(prefix="byoc-bench-tune-") as tmp:
                    body = request(f"bench-{strategy.lower()}-{seed}", strategy, args.budget, 1,
                                   seed, {"epochs": "1", "scale": f"{scale:g}"},
                                   TargetObjectiveMetricValue=target)
                    _, tuning_dir = tune(body, Path(tmp), args.backend, args.image)
                    values = [e.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
                              for e in summaries(tuning_dir)]
                first = next((i + 1 for i, v in enumerate(values)
                              if v is not None and v <= target), None)
                reached[strategy].append(first)
                print(f"scale {scale:g} {strategy} seed {seed}: within 5% after"
                      f" {first if first is not None else f'more than {args.budget}'} jobs;"
                      f" best {min(v for v in values if v is not None):.4f}", flush=True)
        medians = {s: statistics.median(c if c is not None else args.budget + 1 for c in counts)
                   for s, counts in reached.items()}
        result[f"scale_{scale:g}"] = {"jobs_to_within_5pct": reached,
                                      **{f"median_{s.lower()}": m for s, m in medians.items()}}
        print(f"scale {scale:g}: median jobs to within 5%: Bayesian {medians['Bayesian']},"
              f" Random {medians['Random']} (a seed that never got there counts as"
              f" {args.budget + 1})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=("overhead", "parallel", "strategies"))
    parser.add_argument("--image", help="The tune probe's image (Docker runs).")
    parser.add_argument("--backend", default=None, help="docker (with --image) or process.")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0],
                        help="The probe's curvature scales to measure (static hyperparameter).")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    args = parser.parse_args()
    args.backend = args.backend or ("docker" if args.image else "process")
    if args.figure == "overhead":
        if not args.image:
            parser.error("overhead needs --image")
        args.jobs = args.jobs or 8
        result = overhead(args)
    elif args.figure == "parallel":
        args.jobs = args.jobs or 10
        result = parallel(args)
    else:
        result = strategies(args)
    if args.json:
        args.json.write_text(json.dumps({args.figure: result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
