"""The front: byoc's small HTTP server on 127.0.0.1 that plays the platform in front of the
containers of a hosting mode, and its keep-alive client to them.

The standard library's threading HTTP server and ``http.client`` fit: one thread per client
connection, no dependency, and keep-alive on both sides so the front adds well under a
millisecond per hop.
"""

from __future__ import annotations

import http.client
import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

from ...errors import PortInUseError, UpstreamError


@dataclass
class Request:
    method: str
    path: str
    #: Case-insensitive, as HTTP header names are.
    headers: Message
    length: int
    stream: io.BufferedIOBase
    consumed: bool = False

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.strip() if value is not None else None

    def read(self) -> bytes:
        self.consumed = True
        return self.stream.read(self.length) if self.length else b""


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, message: str) -> Reply:
        return cls(status, (message + "\n").encode(), {"Content-Type": "text/plain; charset=utf-8"})


Handle = Callable[[Request], Reply]
#: A refused body up to this size is read (and dropped) before the answer, so that the
#: client, still sending, gets the answer rather than a broken pipe.
DRAIN_LIMIT = 64 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    handle: Handle


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed ACK
    server: _Server

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(Reply.text(400, "a bad Content-Length"))
            self.close_connection = True
            return
        request = Request(self.command, self.path, self.headers, length, self.rfile)
        try:
            reply = self.server.handle(request)
        except Exception as exc:  # the front never dies with a request: it answers 500
            reply = Reply.text(500, f"byoc's front failed: {type(exc).__name__}: {exc}")
        if request.length and not request.consumed:
            if request.length <= DRAIN_LIMIT:  # read what the client sends, so it sees the reply
                left = request.length
                while left > 0 and (chunk := self.rfile.read(min(left, 1 << 20))):
                    left -= len(chunk)
            else:  # the body is left unread: no keep-alive
                self.close_connection = True
                reply.headers["Connection"] = "close"
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


class Front:
    """Serves *handle* on 127.0.0.1:*port* in background threads until :meth:`close`."""

    def __init__(self, port: int, handle: Handle) -> None:
        try:
            self._server = _Server(("127.0.0.1", port), _Handler)
        except OSError as exc:
            raise PortInUseError(f"port {port} on 127.0.0.1 is in use; pick another with --port"
                                 ) from exc
        self._server.handle = handle
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="byoc-front",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


class Upstream:
    """A keep-alive HTTP client to one container's port (one connection per thread)."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.host, self.port = address
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self, fresh: bool, timeout: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                                    blocksize=1 << 20)
            self._local.connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def call(self, method: str, path: str, body: bytes | IO[bytes] | None = None,
             headers: Mapping[str, str] | None = None, timeout: float | None = None,
             sink: IO[bytes] | None = None) -> Answer:
        """One request; with *sink*, the answer's body is streamed there (and ``body`` is empty).

        :raises UpstreamError: when the container does not answer.
        """
        wait = self.timeout if timeout is None else timeout
        for attempt in (0, 1):
            connection = self._connection(attempt == 1, wait)
            try:
                connection.request(method, path, body=body, headers=dict(headers or {}))
                response = connection.getresponse()
                if sink is None:
                    data = response.read()
                else:
                    data = b""
                    while chunk := response.read(1 << 20):
                        sink.write(chunk)
                return Answer(response.status, response.headers, data)
            except TimeoutError:
                connection.close()
                raise UpstreamError(f"no answer within {wait:g} s", timed_out=True) from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                connection.close()
                # a kept-alive connection the server closed meanwhile: once more on a new one
                if attempt == 0 and not hasattr(body, "read"):
                    continue
                raise UpstreamError(f"the connection was lost: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                raise UpstreamError(str(exc)) from None
        raise AssertionError("unreachable")
