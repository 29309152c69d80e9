#!/usr/bin/env python3
"""What checkpoints cost a local training job, and how fast a spot resume is.

(1) Sync cost: a trainer that computes for about 5 s per epoch and writes a
    200 MB checkpoint after each (temp name, then rename), with and without
    --checkpoint-dir, runs interleaved; the ratio of median wall times.
(2) Resume: a job interrupted once with those checkpoints; the time from the
    Interrupted transition to Training again (job.json), next to `cp -r` of
    the same checkpoint files and an empty container/process start.

    python benchmarks/long_jobs.py --backend process --repeat 3
    python benchmarks/long_jobs.py --backend docker --base-image byoc-test-base:bookworm
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from byoc import images, job, local
from byoc.backends.base import Backend
from byoc.project import Project

TRAIN = r'''#!/usr/bin/env python3
import hashlib, json, os, sys, time
from pathlib import Path
root = Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
hps = json.loads((root / "input/config/hyperparameters.json").read_text())
epochs, work, size = int(hps["epochs"]), int(hps["work"]), int(hps["mb"]) << 20
ckpt = root / "checkpoints"
block = b"c" * (1 << 20)
start = 0
done = sorted(ckpt.glob("epoch-*.bin")) if ckpt.is_dir() else []
if done:
    start = int(done[-1].stem.split("-")[1])
for epoch in range(start + 1, epochs + 1):
    digest = b""
    for _ in range(work):  # fixed CPU work per epoch
        digest = hashlib.sha256(digest + block[:4096]).digest()
    if ckpt.is_dir() and size:
        temp = ckpt / f"epoch-{epoch:03d}.bin.sagemaker-ignore"
        with temp.open("wb") as handle:
            for _ in range(size >> 20):
                handle.write(block)
        os.replace(temp, ckpt / f"epoch-{epoch:03d}.bin")
        for old in sorted(ckpt.glob("epoch-*.bin"))[:-1]:
            old.unlink()
    print(f"epoch {epoch}", flush=True)
(root / "model/model.txt").write_text("done")
'''
DOCKERFILE = """ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
COPY container/ckbench /opt/program
RUN chmod 755 /opt/program/train
ENV PATH=/opt/program:$PATH PYTHONUNBUFFERED=1
"""


def _project(scratch: Path) -> Project:
    root = scratch / "ckbench"
    (root / "container" / "ckbench").mkdir(parents=True)
    (root / "container" / "ckbench" / "train").write_text(TRAIN)
    (root / "container" / "ckbench" / "train").chmod(0o755)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "byoc.toml").write_text('[project]\nname = "ckbench"\nprogram = "ckbench"\n'
                                    'image = "byoc-bench-ckbench"\n')
    data = root / "local_test" / "test_dir" / "input" / "data" / "training"
    data.mkdir(parents=True)
    (data / "x.csv").write_text("1\n")
    return Project.load(root)


def _work_for(seconds: float) -> int:
    import hashlib

    block = b"c" * 4096
    count, digest, start = 0, b"", time.perf_counter()
    while time.perf_counter() - start < 0.5:
        for _ in range(10_000):
            digest = hashlib.sha256(digest + block).digest()
        count += 10_000
    return int(count * seconds / (time.perf_counter() - start))


def _run(project: Project, backend: Backend, jobs: Path, name: str, hps: dict[str, str],
         checkpoint_dir: Path | None = None, interrupt_after: tuple[float, ...] = ()) -> float:
    """One job of the project with *hps*; with *interrupt_after*, a spot job."""
    spot = bool(interrupt_after)
    definition, _ = job.from_project(
        project, hyperparameters=hps, spot=spot,
        max_wait=job.DEFAULT_MAX_RUNTIME if spot else None,
        checkpoint_uri=str(checkpoint_dir) if checkpoint_dir is not None else None)
    started = time.perf_counter()
    local.train(definition, backend=backend, project=project,
                run=local.LocalRun(job_name=name, output_dir=jobs, interrupt_after=interrupt_after))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["process", "docker"], default="process")
    parser.add_argument("--base-image", default="python:3.11-slim-bookworm")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="byoc-ckbench-"))
    try:
        project = _project(scratch)
        if args.backend == "docker":
            images.build(project.root, tag="byoc-bench-ckbench:latest",
                         build_args={"BASE_IMAGE": args.base_image}, network="host")
        backend = local.choose_backend(args.backend, project, None)
        hps = {"epochs": str(args.epochs), "work": str(_work_for(5.0)), "mb": str(args.mb)}
        plain: list[float] = []
        synced: list[float] = []
        for i in range(args.repeat):  # interleaved, so drift hits both alike
            plain.append(_run(project, backend, scratch / "jobs", f"plain-{i}", hps))
            synced.append(_run(project, backend, scratch / "jobs", f"synced-{i}", hps,
                               checkpoint_dir=scratch / f"store-{i}"))
        print(f"# checkpoints, {args.backend}, {datetime.now():%Y-%m-%d}")
        print(f"sync cost: {args.epochs} epochs of ~5 s, {args.mb} MB checkpoint each")
        print(f"  without --checkpoint-dir: median {statistics.median(plain):.2f} s  {plain}")
        print(f"  with    --checkpoint-dir: median {statistics.median(synced):.2f} s  {synced}")
        print(f"  ratio: {statistics.median(synced) / statistics.median(plain):.3f}"
              " (target <= 1.05)")

        resumes, copies = [], []
        for i in range(args.repeat):
            store = scratch / f"resume-store-{i}"
            _run(project, backend, scratch / "jobs", f"resume-{i}", hps, checkpoint_dir=store,
                 interrupt_after=(7.5,))
            record = json.loads((scratch / "jobs" / f"resume-{i}" / "job.json").read_text())
            moments = record["SecondaryStatusTransitions"]
            index = next(n for n, t in enumerate(moments) if t["Status"] == "Interrupted")
            resumed = next(t for t in moments[index:] if t["Status"] == "Training")
            resumes.append((datetime.fromisoformat(resumed["StartTime"])
                            - datetime.fromisoformat(moments[index]["StartTime"])).total_seconds())
            target = scratch / f"copy-{i}"
            started = time.perf_counter()
            subprocess.run(["cp", "-r", str(store), str(target)], check=True)
            copies.append(time.perf_counter() - started)
            shutil.rmtree(target)
        empty = _run(project, backend, scratch / "jobs", "empty",
                     {"epochs": "0", "work": "0", "mb": "0"})
        print(f"resume: interruption -> Training again, median {statistics.median(resumes):.2f} s"
              f"  {[round(r, 2) for r in resumes]}")
        print(f"  cp -r of the checkpoints: median {statistics.median(copies):.2f} s;"
              f" an empty job start to end: {empty:.2f} s")
        print(f"  ratio resume / (2 x cp -r + empty job): "
              f"{statistics.median(resumes) / (2 * statistics.median(copies) + empty):.2f}"
              " (target <= 1)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
