"""Figures for byoc local train's inputs: Pipe-mode throughput and a two-host job's wall time.

    python benchmarks/training_inputs.py [--size-mib 1024] [--repeats 3] [--no-docker]

Pipe throughput is what a reader sees: a separate Python process opens
``<channel>_<epoch>`` and reads it to EOF with 16 MiB ``readinto`` calls. The
same reader reads ``cat FILE > FIFO`` in the same run, alternating with byoc,
and the figure is the ratio (target >= 0.70), for one epoch and for three.
The two-host job is the ioprobe fixture on Docker: each host resolves every
peer and exits (target < 5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from byoc.inputs.config import ChannelInput
from byoc.inputs.pipe import ChannelObjects, Feeder

HERE = Path(__file__).resolve().parent
READER = r"""
import json, os, sys, time
paths = sys.argv[1:]
buffer = bytearray(16 << 20)
view = memoryview(buffer)
out = []
for path in paths:
    while not os.path.exists(path):
        time.sleep(0.001)
    started = time.perf_counter()
    total = 0
    with open(path, "rb", buffering=0) as pipe:
        while count := pipe.readinto(view):
            total += count
    out.append([total, time.perf_counter() - started])
print(json.dumps(out))
"""


def _read(paths: list[Path]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", READER, *map(str, paths)], stdout=subprocess.PIPE,
                            text=True)


def _rate(reader: subprocess.Popen[str]) -> tuple[float, int]:
    out, _ = reader.communicate(timeout=600)
    epochs = json.loads(out)
    total = sum(size for size, _ in epochs)
    return total / sum(seconds for _, seconds in epochs) / 1e9, total


def cat_rate(source: Path, work: Path, epochs: int) -> float:
    fifos = [work / f"cat_{epoch}" for epoch in range(epochs)]
    reader = _read(fifos)
    for fifo in fifos:
        os.mkfifo(fifo)
        with fifo.open("wb") as sink:
            subprocess.run(["cat", str(source)], stdout=sink, check=True)
        fifo.unlink()
    rate, total = _rate(reader)
    assert total == epochs * source.stat().st_size
    return rate


def byoc_rate(source: Path, work: Path, epochs: int) -> float:
    channel = ChannelInput("train", "Pipe")
    objects = ChannelObjects.load(channel, source, sharded=False)
    feeder = Feeder(work, channel, lambda epoch: objects.epoch(epoch, ["algo-1"], "algo-1"),
                    work / "scratch")
    feeder.prepare()
    feeder.start()
    try:
        rate, total = _rate(_read([work / f"train_{epoch}" for epoch in range(epochs)]))
    finally:
        feeder.stop()
    assert total == epochs * source.stat().st_size, (total, feeder.error)
    return rate


def pipe_figures(size_mib: int, repeats: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="byoc-bench-pipe-", dir=Path.cwd()) as scratch:
        root = Path(scratch)
        source = root / "channel.bin"
        block = os.urandom(16 << 20)
        with source.open("wb") as out:
            for _ in range(max(1, size_mib // 16)):
                out.write(block)
        subprocess.run(["cat", str(source)], stdout=subprocess.DEVNULL, check=True)  # page cache
        figures: dict[str, object] = {"size_bytes": source.stat().st_size}
        for epochs in (1, 3):
            ratios, cats, byocs = [], [], []
            for repeat in range(repeats):
                work = root / f"e{epochs}-{repeat}"
                work.mkdir()
                cat = cat_rate(source, work, epochs)
                ours = byoc_rate(source, work, epochs)
                cats.append(cat)
                byocs.append(ours)
                ratios.append(ours / cat)
            figures[f"epochs_{epochs}"] = {
                "cat_gb_s": [round(x, 2) for x in cats], "byoc_gb_s": [round(x, 2) for x in byocs],
                "ratio": [round(x, 2) for x in ratios], "ratio_median": round(statistics.median(ratios), 2)}
        return figures


def two_host_figures(repeats: int) -> dict[str, object]:
    import docker

    from byoc import images, job, local
    from byoc.project import Project

    client = docker.from_env()
    base = os.environ.get("BYOC_TEST_BASE_IMAGE", "python:3.11-slim-bookworm")
    tag = f"byoc-bench-ioprobe:{uuid.uuid4().hex[:8]}"
    project = Project.load(HERE.parent / "tests" / "fixtures" / "ioprobe")
    images.build(project.root, tag=tag, build_args={"BASE_IMAGE": base}, network="host",
                 log=lambda line: None)
    try:
        backend = local.choose_backend("docker", project, tag)
        with tempfile.TemporaryDirectory(prefix="byoc-bench-hosts-") as scratch:
            channel = Path(scratch) / "meta"
            channel.mkdir()
            (channel / "x.txt").write_text("x\n")
            seconds = []
            for repeat in range(repeats):
                started = time.perf_counter()
                definition, _ = job.from_project(project, channels={"meta": str(channel)},
                                                 instance_count=2,
                                                 hyperparameters={"resolve_peers": "1"})
                local.train(definition, backend=backend, project=project,
                            run=local.LocalRun(job_name=f"bench-hosts-{repeat}",
                                               output_dir=Path(scratch) / "jobs"))
                seconds.append(time.perf_counter() - started)
        return {"seconds": [round(x, 2) for x in seconds],
                "median_seconds": round(statistics.median(seconds), 2)}
    finally:
        client.images.remove(tag, force=True)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {"pipe": pipe_figures(args.size_mib, args.repeats)}
    if not args.no_docker:
        figures["two_host_job"] = two_host_figures(5)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
