"""What byoc's hosting front costs, measured in one run on this machine's Docker engine.

Builds the hosting test server (tests/fixtures/hosting, FROM $BYOC_TEST_BASE_IMAGE) once,
then measures:

- multi-model: warm invocation p50 through the front vs the same server serving one model
  (target ratio <= 1.2), and a cold load (extract + POST /models + invoke);
- 20 models through a cache of 5 (the container answers 507 beyond 5): failed requests and
  unloads;
- a two-container Serial pipeline: the p50 the front adds over calling both containers
  directly, one after the other (target <= 1.5 ms);
- asynchronous inference of a 200 MB body vs ``cat`` of the file into the container through
  ``docker exec`` (target throughput ratio >= 0.5).

    BYOC_TEST_BASE_IMAGE=byoc-test-base:bookworm python benchmarks/hosting.py --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

from byoc import images, invoke, local
from byoc.backends.docker import DockerBackend
from byoc.local.hosting import asynchronous, multimodel, pipeline

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "hosting"


#: The load generator, run in a process of its own: in this one it would share the GIL with the
#: front's threads and measure their contention, not the front.
CLIENT = """
import http.client, json, statistics, sys, time
host, port, path, body, headers, count = json.loads(sys.argv[1])
connection = http.client.HTTPConnection(host, port, timeout=60)
times = []
for index in range(count + 20):
    started = time.perf_counter()
    connection.request("POST", path, body=body.encode(), headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"{path}: HTTP {response.status}")
    if index >= 20:
        times.append(time.perf_counter() - started)
print(statistics.median(times) * 1000)
"""


def p50_ms(address: tuple[str, int] | int, path: str, body: bytes, headers: dict[str, str],
           count: int) -> float:
    """The median latency of *count* POSTs on one keep-alive connection (after 20 warm-ups),
    from a separate process."""
    host, port = address if isinstance(address, tuple) else ("127.0.0.1", address)
    done = subprocess.run([sys.executable, "-c", CLIENT,
                           json.dumps([host, port, path, body.decode(), headers, count])],
                          capture_output=True, text=True, check=True)
    return float(done.stdout)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def archive(path: Path, weights: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        data = weights.encode()
        info = tarfile.TarInfo("weights.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def bench_multi_model(image: str, scratch: Path, count: int) -> dict[str, float]:
    backend = DockerBackend(image)
    model = scratch / "single"
    model.mkdir()
    (model / "weights.txt").write_text("w")
    body = b"0.1,0.2,0.3"
    text = {"Content-Type": "text/csv"}
    with local.serve(backend=backend, model=model, port=local.free_port()) as single:
        # as InvokeEndpoint reaches a real-time endpoint's container: the port Docker publishes
        single_ms = p50_ms(port_of(single.url), "/invocations", body, text, count)
    prefix = scratch / "prefix"
    for index in range(25):
        archive(prefix / f"m{index}.tar.gz", f"w{index}")
    colds = []
    with multimodel.serve(backend=backend, models=prefix, port=local.free_port()) as served:
        port = port_of(served.url)
        for index in range(5):
            started = time.perf_counter()
            invoke.predict(served.url, body, "text/csv", target_model=f"m{index}.tar.gz")
            colds.append((time.perf_counter() - started) * 1000)
        warm_ms = p50_ms(port, "/invocations", body,
                         {**text, "X-Amzn-SageMaker-Target-Model": "m0.tar.gz"}, count)
    with multimodel.serve(backend=backend, models=prefix, port=local.free_port(),
                          env={"MME_CAPACITY": "5"}) as served:
        failed = 0
        for _ in range(2):
            for index in range(20):
                try:
                    answer = invoke.predict(served.url, body, "text/csv",
                                            target_model=f"m{index}.tar.gz")
                    failed += answer.body != f"w{index}:".encode() + body
                except Exception:
                    failed += 1
        evictions = len(served.state.evictions)
    return {"single_model_p50_ms": single_ms, "multi_model_warm_p50_ms": warm_ms,
            "multi_model_warm_ratio": warm_ms / single_ms,
            "multi_model_cold_load_ms_median": statistics.median(colds),
            "cache_of_5_requests": 40, "cache_of_5_failed": failed,
            "cache_of_5_unloads": evictions}


def bench_pipeline(image: str, count: int) -> dict[str, float]:
    backend = DockerBackend(image)
    body = b"in"
    text = {"Content-Type": "text/plain"}
    with pipeline.serve(backend=backend, images=[image, image], port=local.free_port()) as served:
        through = p50_ms(port_of(served.url), "/invocations", body, text, count)
        # the containers where the front reaches them, each called on its own
        first, second = ((upstream.host, upstream.port) for _, upstream in served.state)
        alone = p50_ms(first, "/invocations", body, text, count) \
            + p50_ms(second, "/invocations", body + b"|x", text, count)
    return {"pipeline_2_p50_ms": through, "two_containers_called_directly_p50_ms": alone,
            "pipeline_added_p50_ms": through - alone}


def bench_async(image: str, scratch: Path, megabytes: int) -> dict[str, float]:
    backend = DockerBackend(image)
    big = scratch / "big.bin"
    with big.open("wb") as handle:
        chunk = os.urandom(1 << 20)
        for _ in range(megabytes):
            handle.write(chunk)
    output = scratch / "async"
    with asynchronous.serve(backend=backend, model=None, port=local.free_port(), output=output,
                            max_concurrent=1) as served:
        started = time.perf_counter()
        queued = invoke.predict_async(served.url, big, "application/octet-stream")
        target = Path(queued.output_location)
        while not target.exists():
            if Path(queued.failure_location).exists():
                raise SystemExit(Path(queued.failure_location).read_text())
            time.sleep(0.01)
        async_s = time.perf_counter() - started
        container = served.servers["primary"].container.id
        with big.open("rb") as handle:
            started = time.perf_counter()
            subprocess.run(["docker", "exec", "-i", container, "sh", "-c", "cat > /dev/null"],
                           stdin=handle, check=True)
            cat_s = time.perf_counter() - started
    return {"async_body_mb": megabytes, "async_s": async_s, "cat_into_container_s": cat_s,
            "async_throughput_ratio_vs_cat": cat_s / async_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="requests per latency figure")
    parser.add_argument("--async-mb", type=int, default=200, help="the async body, in MB")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    base = os.environ.get("BYOC_TEST_BASE_IMAGE", "python:3.11-slim-bookworm")
    tag = f"t-hl-bench:{uuid.uuid4().hex[:8]}"
    images.build(FIXTURE, tag=tag, build_args={"BASE_IMAGE": base}, network="host")
    figures: dict[str, object] = {"cpus": os.cpu_count(), "image_base": base}
    try:
        with tempfile.TemporaryDirectory(prefix="byoc-bench-hosting-") as scratch:
            root = Path(scratch)
            figures.update(bench_multi_model(tag, root, args.count))
            figures.update(bench_pipeline(tag, args.count))
            figures.update(bench_async(tag, root, args.async_mb))
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
