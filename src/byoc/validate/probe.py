"""The HTTP prober behind ``byoc validate``'s serving checks.

It runs where it can reach the server on 127.0.0.1. Usually that is a second
container made from the image under test. The container shares the server's
network namespace (``network_mode="container:<server>"``), so the prober
reaches a server that runs with ``--network none``. byoc passes this file's
source with ``python3 -c SOURCE REQUEST`` and reads one JSON line back, so the
image needs a Python >= 3.7 and nothing else. When the image has no Python,
byoc imports this module and calls :func:`run` itself, against a port
published on 127.0.0.1. The checks themselves are judged by byoc, not here.

Stdlib only, and it never imports byoc. Times are measured here, next to the
server, so ``docker exec`` overhead does not count against a 2 s ping.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
from typing import Any

MAX_KEPT = 400


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one request: ``{"op": "http" | "load" | "listening", ...}``."""
    op = request.get("op")
    if op == "http":
        return http_request(request, _body(request.get("body")))
    if op == "load":
        return load(request)
    if op == "listening":
        return {"ports": listening_ports()}
    return {"error": f"unknown op {op!r}"}


def http_request(request: dict[str, Any], body: bytes | None | Padded) -> dict[str, Any]:
    """One HTTP exchange. The result holds ``status`` (or ``error``) and ``elapsed`` seconds.

    The body is sent by hand, so a server that answers early (a 413) and
    closes the connection is still heard.
    """
    timeout = float(request.get("timeout", 2.0))
    started = time.monotonic()
    connection = http.client.HTTPConnection(
        request.get("host", "127.0.0.1"), int(request["port"]), timeout=timeout)
    result: dict[str, Any] = {}
    try:
        connection.putrequest(request.get("method", "GET"), request.get("path", "/"),
                              skip_accept_encoding=True)
        headers = dict(request.get("headers") or {})
        if body is not None:
            headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        if body:
            try:
                for chunk in (body.chunks() if isinstance(body, Padded) else (body,)):
                    connection.send(chunk)
            except OSError as exc:  # the server may have answered and closed already
                result["send_error"] = f"{type(exc).__name__}: {exc}"
        response = connection.getresponse()
        data = response.read()
        result.update(status=response.status, content_type=response.getheader("Content-Type", ""),
                      body=data[:MAX_KEPT].decode("utf-8", "replace"), length=len(data))
    except socket.timeout:  # noqa: UP041 - not yet TimeoutError before Python 3.10
        result["error"] = f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        result["error"] = "connection refused"
    except (OSError, http.client.HTTPException) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    result["elapsed"] = round(time.monotonic() - started, 4)
    return result


def load(request: dict[str, Any]) -> dict[str, Any]:
    """Keep ``workers`` invocations in flight for ``seconds`` and ping all the while.

    The workers start one after another over ``warmup`` seconds, so their
    requests overlap rather than start and end together; then pings start.
    """
    invoke = request["invoke"]
    body = _body(invoke.get("body"))
    stop = threading.Event()
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()
    workers = int(request.get("workers", 4))
    warmup = float(request.get("warmup", 0.5))

    def invoking(delay: float) -> None:
        time.sleep(delay)
        while not stop.is_set():
            answer = http_request(invoke, body)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=invoking, args=(index * warmup / workers,), daemon=True)
               for index in range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    pings = []
    deadline = time.monotonic() + float(request.get("seconds", 4.0))
    while time.monotonic() < deadline:
        pings.append(http_request(request["ping"], None))
        time.sleep(float(request.get("interval", 0.25)))
    stop.set()
    for thread in threads:
        thread.join(float(invoke.get("timeout", 60.0)) + 5)
    with lock:
        statuses: dict[str, int] = {}
        for answer in answers:
            key = str(answer.get("status", answer.get("error")))
            statuses[key] = statuses.get(key, 0) + 1
    return {"pings": pings, "invocations": statuses}


def listening_ports() -> list[list[Any]]:
    """``[port, loopback_only]`` for each TCP socket listening in this network namespace."""
    text = ""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as table:
                text += table.read()
        except OSError:
            continue
    return parse_listening(text)


def parse_listening(text: str) -> list[list[Any]]:
    """``[port, loopback_only]`` for each listening socket in the text of /proc/net/tcp{,6}."""
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:  # TCP_LISTEN
            address, port = fields[1].rsplit(":", 1)
            try:
                number = int(port, 16)
            except ValueError:
                continue
            loopback = address in ("0100007F", "00000000000000000000000001000000",
                                    "0000000000000000FFFF00000100007F")
            found.add((number, loopback))
    return [[port, loopback] for port, loopback in sorted(found)]


class Padded:
    """A body of *data* then newlines, *size* bytes in all, sent a MiB at a time (never whole in
    memory: asynchronous inference's bodies run to hundreds of MB)."""

    CHUNK = 1024 * 1024

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data[:size]
        self.size = size

    def __len__(self) -> int:
        return self.size

    def chunks(self) -> Any:
        yield self.data
        left = self.size - len(self.data)
        filler = b"\n" * self.CHUNK
        while left > 0:
            yield filler[:left]
            left -= self.CHUNK


def _body(spec: dict[str, Any] | None) -> bytes | Padded | None:
    """``{"path": P}`` is the file; with ``"size": N`` it is cut or grown to N bytes.

    ``"fill": "repeat"`` grows it by whole copies of the file, then newlines;
    ``"fill": "newlines"`` by newlines only (JSON and CSV readers skip them).
    """
    if not spec:
        return None
    if "text" in spec:
        return str(spec["text"]).encode("utf-8")
    with open(spec["path"], "rb") as source:
        data = source.read()
    size = spec.get("size")
    if size is None:
        return data
    size = int(size)
    if spec.get("fill") == "stream":
        return Padded(data, size)
    if spec.get("fill") == "repeat" and data.endswith(b"\n") and 0 < len(data) <= size:
        data = data * (size // len(data))
    return (data + b"\n" * max(0, size - len(data)))[:size]


def main(argv: list[str]) -> int:
    try:
        result = run(json.loads(argv[1]))
    except Exception as exc:  # report it to byoc rather than a traceback
        result = {"error": f"probe failed: {type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
