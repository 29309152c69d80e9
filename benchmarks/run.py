#!/usr/bin/env python3
"""Run the standard serving scenarios with ``byoc local bench`` and write one JSON file.

(a) one CSV row per request at concurrency 8; (b) 1000 CSV rows per request at
concurrency 8; (c) cold start, median of 3; (d) memory with MODEL_SERVER_WORKERS=2
and 3 (what one more worker costs). (a) and (b) run --repeat times and report
medians. Prints a Markdown summary; see benchmarks/README.md.

    python benchmarks/run.py --backend docker --duration 10 --out benchmarks/results.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from byoc import bench, images, job, local
from byoc.cli.options import pairs
from byoc.errors import ConfigError
from byoc.project import Project

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = 8
MIB = 1024 * 1024


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _payloads(project: Project, scratch: Path) -> dict[str, Path]:
    rows = [line for line in (project.root / "local_test" / "payload.csv").read_text().splitlines()
            if line.strip()]
    one, many = scratch / "one-row.csv", scratch / "1000-rows.csv"
    one.write_text(rows[0] + "\n")
    many.write_text("\n".join(rows[i % len(rows)] for i in range(1000)) + "\n")
    return {"one": one, "many": many}


def _commit(root: Path) -> str | None:
    def git(*words: str) -> str:
        return subprocess.run(["git", "-C", str(root), *words], capture_output=True, text=True,
                              check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    return head + ("-dirty" if git("status", "--porcelain", "--", "container") else "") if head \
        else None


def _median(runs: list[dict[str, Any]], pick: Callable[[dict[str, Any]], Any]) -> float | None:
    values = [value for run in runs if (value := pick(run)) is not None]
    return statistics.median(values) if values else None


def _summary(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    def level(run: dict[str, Any]) -> dict[str, Any]:
        first: dict[str, Any] = run["levels"][0]
        return first

    figures: dict[str, Callable[[dict[str, Any]], Any]] = {
        "requests_per_s": lambda r: level(r)["invocations"]["load"]["requests_per_s"],
        "rows_per_s": lambda r: level(r)["rows_per_s"],
        "p50_ms": lambda r: level(r)["invocations"]["load"]["p50_ms"],
        "p99_ms": lambda r: level(r)["invocations"]["load"]["p99_ms"],
        "non_2xx": lambda r: level(r)["invocations"]["load"]["non_2xx"],
        "socket_errors": lambda r: level(r)["invocations"]["load"]["socket_errors"],
        "server_cpu_cores": lambda r: level(r)["invocations"]["server"]["cpu_cores"],
        "generator_cpu_cores": lambda r: level(r)["invocations"]["load"]["generator_cpu_cores"],
        "proxy_cpu_cores": lambda r: level(r)["invocations"]["server"]["proxy_cpu_cores"],
        "ping_requests_per_s": lambda r: level(r)["ping"]["load"]["requests_per_s"],
        "compute_calls_per_s": lambda r: r["compute"]["calls_per_s"] if r["compute"]["available"]
        else None,
        "vs_stack": lambda r: level(r)["ratios"]["requests_per_s"]["stack"],
        "vs_compute": lambda r: level(r)["ratios"]["requests_per_s"]["compute"],
        "rss_mib": lambda r: level(r)["invocations"]["server"]["rss_bytes"] / MIB,
        "pss_mib": lambda r: (level(r)["invocations"]["server"]["pss_bytes"] or 0) / MIB or None,
        "processes": lambda r: level(r)["invocations"]["server"]["processes"],
    }
    return {name: _median(runs, pick) for name, pick in figures.items()}


def _cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _markdown(report: dict[str, Any]) -> str:
    scenarios = report["scenarios"]
    lines = ["| scenario | req/s | rows/s | p50 ms | p99 ms | ÷ /ping | ÷ compute | server CPU |"
             " gen CPU | proxy CPU | non-2xx | socket errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, label in (("a_one_row", "(a) 1 row, c=8"), ("b_1000_rows", "(b) 1000 rows, c=8")):
        s = scenarios[key]["median"]
        lines.append(f"| {label} | {_cell(s['requests_per_s'])} | {_cell(s['rows_per_s'])} |"
                     f" {_cell(s['p50_ms'], 2)} | {_cell(s['p99_ms'], 2)} | {_cell(s['vs_stack'], 2)} |"
                     f" {_cell(s['vs_compute'], 2)} | {_cell(s['server_cpu_cores'], 2)} |"
                     f" {_cell(s['generator_cpu_cores'], 2)} | {_cell(s['proxy_cpu_cores'], 2)} |"
                     f" {_cell(s['non_2xx'])} | {_cell(s['socket_errors'])} |")
    cold = scenarios["c_cold_start"]
    lines += ["", f"(c) cold start, start to first /ping 200: median {cold['median_s']:.2f} s of"
                  f" {len(cold['samples_s'])} ({', '.join(f'{s:.2f}' for s in cold['samples_s'])})", "",
              "| (d) workers | processes | RSS MiB (sum) | PSS MiB (sum) | req/s (1 row, c=8) |",
              "|---:|---:|---:|---:|---:|"]
    memory = scenarios["d_memory"]
    for workers in ("2", "3"):
        s = memory[workers]
        lines.append(f"| {workers} | {_cell(s['processes'])} | {_cell(s['rss_mib'], 1)} |"
                     f" {_cell(s['pss_mib'], 1)} | {_cell(s['requests_per_s'])} |")
    lines.append(f"| one more worker | | {_cell(memory['extra_worker_rss_mib'], 1)} |"
                 f" {_cell(memory['extra_worker_pss_mib'], 1)} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", nargs="?", type=Path, default=REPO)
    parser.add_argument("--backend", default="auto", choices=local.BACKENDS)
    parser.add_argument("--image", help="image to run (default: the project's, :latest)")
    parser.add_argument("--build", action="store_true", help="build the project's image first")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--model", type=Path, help="default: the last local job's; trained if none")
    parser.add_argument("--duration", default="30s", help="each load run (default 30s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b); medians kept")
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "builtin"))
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--commit", help="the commit measured (default: PROJECT's git HEAD, with"
                                         " -dirty when container/ has changes)")
    args = parser.parse_args(argv)

    project = Project.load(args.project)
    if args.build:
        args.image = images.build(project.root, tag=args.image or f"{project.image}:latest",
                                  build_args=pairs(args.build_arg, "--build-arg"), network="host",
                                  log=_say)
    backend = local.choose_backend(args.backend, project, args.image, say=_say)
    try:
        model = local.resolve_model(args.model, project)
    except ConfigError:
        _say("no trained model: training one on local_test first")
        definition, _ = job.from_project(project)
        model = local.train(definition, backend=backend, project=project, say=_say).model_archive
    duration = bench.parse_duration(args.duration)
    commit = args.commit or _commit(project.root)

    def run(payload: Path, env: dict[str, str] | None = None, cold_starts: int = 1) -> dict[str, Any]:
        result = bench.bench(backend=backend, model=model, payload=payload, content_type="text/csv",
                             concurrency=[CONCURRENCY], duration=duration, generator=args.generator,
                             env=env, cold_starts=cold_starts, say=_say)
        print(bench.render(result), file=sys.stderr, flush=True)
        return result.to_json()

    scenarios: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="byoc-bench-") as scratch:
        payloads = _payloads(project, Path(scratch))
        for key, payload in (("a_one_row", payloads["one"]), ("b_1000_rows", payloads["many"])):
            # (c) rides on the first run of (a): its own start plus restarts after the load
            runs = [run(payload, cold_starts=args.cold_starts if key == "a_one_row" and not i else 1)
                    for i in range(args.repeat)]
            scenarios[key] = {"median": _summary(runs), "runs": runs}
        samples = scenarios["a_one_row"]["runs"][0]["cold_start"]["samples"]
        scenarios["c_cold_start"] = {"median_s": statistics.median(samples), "samples_s": samples}
        memory: dict[str, Any] = {}
        for workers in ("2", "3"):
            memory[workers] = _summary([run(payloads["one"], {"MODEL_SERVER_WORKERS": workers})])
        for kind in ("rss_mib", "pss_mib"):
            two, three = memory["2"][kind], memory["3"][kind]
            memory[f"extra_worker_{kind}"] = three - two if two is not None and three is not None \
                else None
        scenarios["d_memory"] = memory
    report = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "commit": commit, "backend": backend.name, "duration_s": duration,
              "repeat": args.repeat, "concurrency": CONCURRENCY, "scenarios": scenarios}
    report["markdown"] = _markdown(report)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(report["markdown"])
    _say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
