"""``POST /invocations`` for batch transform: keep-alive connections, timeout and retries."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from dataclasses import dataclass

from ..errors import InvocationFailed

#: Seconds before the first retry; doubled for each next one.
RETRY_BACKOFF = 0.2


@dataclass
class Invoker:
    """Sends request bodies to one container; one connection per calling thread."""

    url: str
    content_type: str | None
    accept: str | None
    timeout: float
    max_retries: int
    chunked: bool = False

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every connection (an open keep-alive connection holds up a server's drain)."""
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()

    def invoke(self, body: bytes) -> bytes:
        """The answer to *body*; retried on 5xx, timeouts and dropped connections.

        :raises InvocationFailed: after the last try, or at once for a 4xx.
        """
        attempt = 0
        while True:
            try:
                return self._once(body)
            except InvocationFailed as exc:
                if not exc.retryable or attempt >= self.max_retries:
                    if attempt:
                        exc.message += f" (after {attempt + 1} tries)"
                    raise
            attempt += 1
            time.sleep(RETRY_BACKOFF * 2 ** (attempt - 1))

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _once(self, body: bytes) -> bytes:
        headers = {}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        if self.accept:
            headers["Accept"] = self.accept
        connection = self._connection()
        try:
            if self.chunked:
                connection.request("POST", "/invocations", body=iter([body]), headers=headers,
                                   encode_chunked=True)
            else:
                connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except TimeoutError:
            self._drop()
            raise InvocationFailed(f"no answer within {self.timeout:.0f} s (InvocationsTimeoutInSeconds)",
                                   retryable=True) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise InvocationFailed(f"the connection failed: {exc or type(exc).__name__}",
                                   retryable=True) from None
        if response.will_close:
            self._drop()
        if 200 <= response.status < 300:
            return data
        text = data[:300].decode("utf-8", "replace").strip()
        raise InvocationFailed(f"HTTP {response.status}: {text}" if text else f"HTTP {response.status}",
                               retryable=response.status >= 500)
