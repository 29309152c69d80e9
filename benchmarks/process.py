#!/usr/bin/env python3
"""What a local processing job costs next to a training job, and how fast Continuous copies.

(1) A trivial single-host processing job's wall time (start to record written) against a
    trivial training job's, both of a project whose programs do nothing: median of --repeat
    interleaved runs, and their ratio (target <= 1.2).
(2) A trivial 2-host processing job's wall time (target < 5 s; Docker only, as the process
    backend runs one host).
(3) Continuous upload: a program writes --mb MB at 100 MB/s (10 MB files, one every 0.1 s)
    into a Continuous output; the copy's throughput from the first file written to the last
    one in the destination, and how far behind the writer the copy ended.

    python benchmarks/process.py --backend docker --base-image byoc-test-base:bookworm
    python benchmarks/process.py --backend process
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from byoc import images, job, local
from byoc.local.process import CONTINUOUS_INTERVAL
from byoc.project import Project

TRAIN = "#!/usr/bin/env python3\nimport os, pathlib\n" \
        "root = pathlib.Path(os.environ.get('SAGEMAKER_BASE_DIR') or '/opt/ml')\n" \
        "(root / 'model' / 'm.txt').write_text('1')\n"
PROCESS = r'''#!/usr/bin/env python3
import json, os, sys, time
from pathlib import Path
root = Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
config = json.loads((root / "config/processingjobconfig.json").read_text())
outputs = config.get("ProcessingOutputConfig", {}).get("Outputs", [])
mb = int(os.environ.get("WRITE_MB", "0"))
if outputs and mb:
    out = root / Path(outputs[0]["S3Output"]["LocalPath"]).relative_to("/opt/ml")
    block = os.urandom(10 << 20)
    started = time.time()
    for i in range(mb // 10):  # 10 MB every 0.1 s: 100 MB/s
        (out / f"part-{i:04d}.bin").write_bytes(block)
        time.sleep(max(0.0, started + (i + 1) * 0.1 - time.time()))
    (root / "output/message").write_text(f"{started} {time.time()}")
'''
DOCKERFILE = """ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
COPY container/procbench /opt/program
RUN chmod 755 /opt/program/*
ENV PATH=/opt/program:$PATH PYTHONUNBUFFERED=1
"""


def _project(scratch: Path, image: str) -> Project:
    root = scratch / "procbench"
    program = root / "container" / "procbench"
    program.mkdir(parents=True)
    for name, text in (("train", TRAIN), ("serve", TRAIN), ("process", PROCESS)):
        (program / name).write_text(text)
        (program / name).chmod(0o755)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "byoc.toml").write_text(f'[project]\nname = "procbench"\nprogram = "procbench"\n'
                                    f'image = "{image}"\n')
    data = root / "local_test" / "test_dir" / "input" / "data" / "training"
    data.mkdir(parents=True)
    (data / "x.csv").write_text("1\n")
    return Project.load(root)


def _train(project: Project, backend: Any, jobs: Path, name: str) -> float:
    definition, _ = job.from_project(project)
    started = time.perf_counter()
    local.train(definition, backend=backend, project=project,
                run=local.LocalRun(job_name=name, output_dir=jobs))
    return time.perf_counter() - started


def _process(project: Project, backend: Any, jobs: Path, name: str, hosts: int = 1,
             env: dict[str, str] | None = None, continuous: bool = False,
             ) -> tuple[float, local.ProcessResult]:
    data = project.root / "local_test" / "test_dir" / "input" / "data" / "training"
    definition = job.processing_from_options(
        base_name="procbench", inputs=[f"data={data}"], outputs=[f"out={jobs / (name + '-out')}"],
        code=None, entrypoint=["process"], arguments=[], instance_count=hosts, distributions=[],
        input_modes=[], upload_modes=["out=Continuous"] if continuous else [],
        env=[f"{k}={v}" for k, v in (env or {}).items()], max_run=None)
    started = time.perf_counter()
    result = local.process(definition, backend=backend, project=project,
                           run=local.LocalRun(job_name=name, output_dir=jobs))
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["process", "docker"], default="docker")
    parser.add_argument("--base-image", default="python:3.11-slim-bookworm")
    parser.add_argument("--tag", default="byoc-bench-procbench:latest",
                        help="The benchmark image's name (Docker).")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mb", type=int, default=500, help="MB written for (3).")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="byoc-procbench-"))
    try:
        project = _project(scratch, args.tag.split(":")[0])
        image = None
        if args.backend == "docker":
            images.build(project.root, tag=args.tag, build_args={"BASE_IMAGE": args.base_image},
                         network="host")
            image = args.tag
        backend = local.choose_backend(args.backend, project, image)
        jobs = scratch / "jobs"
        _train(project, backend, jobs, "warm-train")  # the environment, the pause image
        _process(project, backend, jobs, "warm-process")
        trains, processes, pairs = [], [], []
        for i in range(args.repeat):  # interleaved, so drift hits both alike
            trains.append(_train(project, backend, jobs, f"train-{i}"))
            processes.append(_process(project, backend, jobs, f"process-{i}")[0])
            if args.backend == "docker":
                pairs.append(_process(project, backend, jobs, f"pair-{i}", hosts=2)[0])
        train_median, process_median = statistics.median(trains), statistics.median(processes)
        print(f"# processing jobs, {args.backend}, {datetime.now():%Y-%m-%d %H:%M}")
        print(f"(1) trivial training job:   median {train_median:.2f} s  "
              f"{[round(t, 2) for t in trains]}")
        print(f"    trivial processing job: median {process_median:.2f} s  "
              f"{[round(t, 2) for t in processes]}")
        print(f"    ratio processing / training: {process_median / train_median:.2f}"
              " (target <= 1.2)")
        if pairs:
            print(f"(2) 2-host processing job:  median {statistics.median(pairs):.2f} s  "
                  f"{[round(t, 2) for t in pairs]} (target < 5 s)")
        else:
            print("(2) 2-host processing job: Docker only (the process backend runs one host)")
        arrivals: dict[str, float] = {}
        destination = jobs / "continuous-out"
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if destination.is_dir():
                    for path in destination.glob("part-*.bin"):
                        if path.name not in arrivals and path.stat().st_size == 10 << 20:
                            arrivals[path.name] = time.time()
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        wall, result = _process(project, backend, jobs, "continuous", env={"WRITE_MB": str(args.mb)},
                                continuous=True)
        done.set()
        watcher.join()
        first, last = (float(x) for x in (result.exit_message or "0 0").split())
        during = [t for t in arrivals.values() if t <= last]
        copied_mb = len(during) * 10
        files = args.mb // 10
        print(f"(3) Continuous: writer {args.mb} MB at 100 MB/s in {last - first:.2f} s;"
              f" {copied_mb} MB ({len(during)}/{files} files) in the destination while it"
              f" wrote, i.e. {copied_mb / max(last - first, 1e-9):.0f} MB/s;"
              f" every file there {max(arrivals.values(), default=last) - last:+.2f} s after the"
              f" writer's last write (the final copy included); job wall {wall:.2f} s")
        print(f"    copy interval {CONTINUOUS_INTERVAL:.1f} s; the destination holds"
              f" {sum(p.stat().st_size for p in destination.iterdir()) >> 20} MB")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
