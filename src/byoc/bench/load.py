"""Load generators for ``byoc local bench``: ``wrk``, or a built-in asyncio client.

Both run as a child process holding *concurrency* keep-alive connections for
a fixed time, and both print one ``BYOC_LOAD {json}`` line: request count,
duration, latency percentiles (microseconds) and error counts. The parent
reaps the child with :func:`os.wait4`, so the generator's own CPU time is
known and a reader can tell whether it was the bottleneck.

Counting differs in one place: wrk counts responses with status >= 400 as
``status`` errors; the built-in client counts every status outside 2xx.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import BenchError, ConfigError

GENERATORS = ("auto", "wrk", "builtin")
MARK = "BYOC_LOAD "
#: Per-request timeout: SageMaker's invocation timeout.
REQUEST_TIMEOUT = int(contract.INVOCATION_TIMEOUT)
#: Runs the built-in generator in its own process (not ``-m``: the package imports this module).
RUN_BUILTIN = "import sys; from byoc.bench.load import main; sys.exit(main(sys.argv[1:]))"

WRK_SCRIPT = r"""-- written by byoc local bench: POST a file's bytes (args: FILE TYPE), or GET
function init(args)
  if args[1] ~= nil and args[1] ~= "" then
    local handle = assert(io.open(args[1], "rb"))
    wrk.body = handle:read("*a")
    handle:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = args[2]
  end
end

local function num(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  return string.format("%.1f", x)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write("BYOC_LOAD {",
    '"requests":', num(summary.requests), ',"duration_us":', num(summary.duration),
    ',"connect":', num(e.connect), ',"read":', num(e.read), ',"write":', num(e.write),
    ',"status":', num(e.status), ',"timeout":', num(e.timeout),
    ',"p50":', num(latency:percentile(50)), ',"p90":', num(latency:percentile(90)),
    ',"p99":', num(latency:percentile(99)), ',"max":', num(latency.max),
    ',"mean":', num(latency.mean), "}\n")
end
"""


@dataclass(frozen=True)
class LoadSpec:
    """What to send: *body_file* is POSTed as *content_type*; without one, a GET."""

    url: str
    concurrency: int
    duration: int
    body_file: Path | None = None
    content_type: str | None = None
    threads: int = 1
    timeout: int = REQUEST_TIMEOUT


@dataclass(frozen=True)
class LoadResult:
    generator: str
    concurrency: int
    duration_s: float
    requests: int
    requests_per_s: float
    #: Latency of completed requests in milliseconds (None when none completed).
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    #: Answers outside 2xx (wrk: status >= 400).
    non_2xx: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    #: CPU seconds the generator used (user + system), and that over the run's duration.
    generator_cpu_s: float
    generator_cpu_cores: float

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts


def pick_generator(name: str) -> str:
    """``wrk`` or ``builtin`` for *name* (``auto``: wrk when on PATH).

    :raises ConfigError: for ``wrk`` when it is not installed.
    """
    if name not in GENERATORS:
        raise ConfigError(f"unknown generator {name!r}; use auto, wrk or builtin")
    if name == "auto":
        return "wrk" if shutil.which("wrk") else "builtin"
    if name == "wrk" and not shutil.which("wrk"):
        raise ConfigError("wrk is not installed (apt-get install wrk); or use --generator builtin")
    return name


def run_load(spec: LoadSpec, generator: str) -> LoadResult:
    """Drive *spec* with *generator* (``wrk`` or ``builtin``) and return what it measured.

    :raises BenchError: when the generator fails or reports nothing.
    """
    with tempfile.TemporaryDirectory(prefix="byoc-load-") as scratch:
        if generator == "wrk":
            script = Path(scratch) / "bench.lua"
            script.write_text(WRK_SCRIPT, encoding="utf-8")
            command = ["wrk", "-t", str(max(1, min(spec.threads, spec.concurrency))),
                       "-c", str(spec.concurrency), "-d", f"{spec.duration}s",
                       "--timeout", f"{spec.timeout}s", "-s", str(script), spec.url, "--",
                       str(spec.body_file or ""), spec.content_type or ""]
        else:
            command = [sys.executable, "-c", RUN_BUILTIN, json.dumps({
                "url": spec.url, "concurrency": spec.concurrency, "duration": spec.duration,
                "body_file": str(spec.body_file) if spec.body_file else None,
                "content_type": spec.content_type, "timeout": spec.timeout})]
        status, cpu, output = _run(command, Path(scratch))
    report = next((line[len(MARK):] for line in output.splitlines() if line.startswith(MARK)), None)
    if status != 0 or report is None:
        tail = "\n".join(output.strip().splitlines()[-10:])
        raise BenchError(f"the {generator} load generator failed (exit status {status})", detail=tail)
    data: dict[str, Any] = json.loads(report)
    seconds = float(data["duration_us"]) / 1e6 or float(spec.duration)
    requests = int(data["requests"])

    def ms(key: str) -> float | None:
        value = data.get(key)
        return None if value is None or requests == 0 else float(value) / 1000

    return LoadResult(
        generator=generator, concurrency=spec.concurrency, duration_s=seconds, requests=requests,
        requests_per_s=requests / seconds, p50_ms=ms("p50"), p90_ms=ms("p90"), p99_ms=ms("p99"),
        max_ms=ms("max"), mean_ms=ms("mean"), non_2xx=int(data["status"]),
        connect_errors=int(data["connect"]), read_errors=int(data["read"]),
        write_errors=int(data["write"]), timeouts=int(data["timeout"]),
        generator_cpu_s=cpu, generator_cpu_cores=cpu / seconds)


def _run(command: list[str], scratch: Path) -> tuple[int, float, str]:
    """Run *command* to its end: exit status, CPU seconds it used, its output."""
    log = scratch / "output.txt"
    with log.open("wb") as sink:
        try:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise BenchError(f"cannot start {command[0]}: {exc}") from exc
        try:
            _, wait_status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(wait_status)
    return (process.returncode, usage.ru_utime + usage.ru_stime,
            log.read_text(encoding="utf-8", errors="replace"))


# ---- the built-in generator, run as `python -c RUN_BUILTIN SPEC` ----

@dataclass
class _Tally:
    latencies: list[float]
    non_2xx: int = 0
    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = False
    close = lines[0].startswith(b"HTTP/1.0")  # 1.0 closes unless it says keep-alive
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"keep-alive" not in value.lower()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        close = True
    return status, not close


async def _connection(host: str, port: int, request: bytes, deadline: float, timeout: float,
                      tally: _Tally) -> None:
    loop = asyncio.get_running_loop()
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while loop.time() < deadline:
        if writer is None or reader is None:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            except TimeoutError:
                tally.timeout += 1
                continue
            except OSError:
                tally.connect += 1
                await asyncio.sleep(0.01)
                continue
        start = time.perf_counter()
        try:
            writer.write(request)
            await writer.drain()
        except OSError:
            tally.write += 1
            writer.close()
            writer = None
            continue
        try:
            async with asyncio.timeout(timeout):
                status, keep = await _read_response(reader)
        except TimeoutError:
            tally.timeout += 1
            keep = False
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                IndexError):
            tally.read += 1
            keep = False
        else:
            tally.latencies.append(time.perf_counter() - start)
            if not 200 <= status < 300:
                tally.non_2xx += 1
        if not keep:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(spec["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = Path(spec["body_file"]).read_bytes() if spec.get("body_file") else b""
    head = f"{'POST' if spec.get('body_file') else 'GET'} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if spec.get("body_file"):
        head += f"Content-Type: {spec['content_type']}\r\nContent-Length: {len(body)}\r\n"
    request = head.encode("latin-1") + b"\r\n" + body
    tally = _Tally(latencies=[])
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + float(spec["duration"])
    await asyncio.gather(*(_connection(host, port, request, deadline, float(spec["timeout"]), tally)
                           for _ in range(int(spec["concurrency"]))))
    elapsed = loop.time() - started
    ordered = sorted(tally.latencies)

    def percentile(p: float) -> float | None:
        if not ordered:
            return None
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1e6

    return {"requests": len(ordered), "duration_us": elapsed * 1e6, "connect": tally.connect,
            "read": tally.read, "write": tally.write, "status": tally.non_2xx,
            "timeout": tally.timeout, "p50": percentile(50), "p90": percentile(90),
            "p99": percentile(99), "max": ordered[-1] * 1e6 if ordered else None,
            "mean": sum(ordered) / len(ordered) * 1e6 if ordered else None}


def main(argv: list[str]) -> int:
    result = asyncio.run(_drive(json.loads(argv[0])))
    print(MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
