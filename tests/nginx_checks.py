"""Checks of the nginx in front of a serving container, on loopback: its own errors, slow clients.

Shared by the Python runtime's tests (tests/test_container_serve.py) and the R
template's (tests/test_template_r.py): both configure nginx the same way.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time

import pytest
import requests

#: A request nginx refuses itself, the status it answers and its one plain-text line.
NGINX_ERRORS = [
    pytest.param(b"NOT HTTP AT ALL\r\n\r\n", 400, b"bad request: not valid HTTP\n", id="400-not-http"),
    pytest.param(b"GET /ping HTTP/1.1\r\n\r\n", 400, b"bad request: not valid HTTP\n", id="400-no-host"),
    pytest.param(b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
                 400, b"bad request: not valid HTTP\n", id="400-bad-chunk"),
    pytest.param(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 400,
                 b"bad request: a header is too large\n", id="494-header-too-large"),
    pytest.param(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404,
                 b"not found: use /ping or /invocations\n", id="404"),
    pytest.param(b"TRACE /ping HTTP/1.1\r\nHost: x\r\n\r\n", 405,
                 b"method not allowed: use GET /ping or POST /invocations\n", id="405-trace"),
    pytest.param(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                 b"Content-Length: 7340032\r\n\r\n", 413, b"the body is larger than 6 MiB\n", id="413"),
    pytest.param(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
                 b"the request line is too long\n", id="414"),
    pytest.param(b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                 b"not implemented: unsupported Transfer-Encoding\n", id="501"),
    pytest.param(b"GET /ping HTTP/2.5\r\nHost: x\r\n\r\n", 505,
                 b"HTTP version not supported: use HTTP/1.1\n", id="505"),
]

#: As many connections as took /ping offline for 50 s with 1024 worker_connections.
SLOW_CLIENTS = 1500
#: nginx's client_header_timeout: a client still sending its headers is dropped after it.
HEADER_TIMEOUT = 5


def raw_exchange(port: int, request: bytes, timeout: float = 5) -> tuple[bytes, bytes]:
    """Send *request* as is to 127.0.0.1:*port*; the answer's head and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        reply = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := connection.recv(65536):
                reply += chunk
                head, found, body = reply.partition(b"\r\n\r\n")
                length = [line for line in head.lower().split(b"\r\n")
                          if line.startswith(b"content-length:")]
                if found and length and len(body) >= int(length[0].split(b":")[1]):
                    break  # nginx may linger, reading a body it refused
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body


def assert_plain_text_error(port: int, request: bytes, status: int, line: bytes) -> None:
    head, body = raw_exchange(port, request)
    assert head.startswith(b"HTTP/1.1 %d " % status), head[:300]
    assert b"\r\ncontent-type: text/plain" in head.lower(), head
    assert body == line


def assert_every_error_is_plain_text(port: int) -> None:
    """Each of :data:`NGINX_ERRORS` on one server, naming every case that fails, not the first."""
    failed = []
    for case in NGINX_ERRORS:
        try:
            assert_plain_text_error(port, *case.values)
        except AssertionError as exc:
            failed.append(f"{case.id}: {exc}")
    assert not failed, "\n".join(failed)


def assert_ping_survives_slow_clients(port: int) -> None:
    """Slowloris: SLOW_CLIENTS connections trickling their headers in, byte by byte.

    /ping must keep answering 200 within SageMaker's 2 s meanwhile, and nginx must
    drop the slow clients soon after its header timeout.
    """
    url = f"http://127.0.0.1:{port}/ping"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SLOW_CLIENTS + 200
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    slow: list[socket.socket] = []
    try:
        for _ in range(SLOW_CLIENTS):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(connection)
        started = time.monotonic()
        pings = 0
        while time.monotonic() - started < HEADER_TIMEOUT - 1:
            for connection in slow:
                with contextlib.suppress(OSError):
                    connection.send(b"a")  # one more byte of the header, never its end
            began = time.monotonic()
            answer = requests.get(url, timeout=2)
            assert answer.status_code == 200 and time.monotonic() - began < 2, answer.text
            pings += 1
            time.sleep(0.3)
        assert pings >= 5
        deadline = time.monotonic() + HEADER_TIMEOUT + 5
        for connection in slow:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):
                assert connection.recv(1) == b""  # closed (or reset) by nginx, no answer
    finally:
        for connection in slow:
            connection.close()
    assert requests.get(url, timeout=2).status_code == 200
