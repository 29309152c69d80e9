"""Runtime: you should not need to edit this. gunicorn's server hooks (its ``--config`` file).

A worker is forked with the master's signal handlers, which only queue a signal for the
master's loop, and installs its own only after booting (a gevent worker patches the standard
library first, which takes a while). A SIGTERM in between, as when the server is stopped
while it starts, would be queued in the worker's copy of the master's queue and lost, and
stopping would wait out the whole graceful timeout before gunicorn kills the worker. So a
new worker starts with the default actions: until it has its own handlers, SIGTERM, SIGINT
and SIGQUIT end it at once (it serves nothing yet).

gunicorn writes a response's head and its body in two writes, so nginx wakes up twice for
each answer; a worker here holds the head back and sends it with the first piece of the
body, in one write (see :func:`one_write_per_answer`).
"""

from __future__ import annotations

import signal
from typing import Any

#: The signals a booting worker takes with the default action.
DEFAULTED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker, before it boots: the default action for :data:`DEFAULTED`."""
    for signum in DEFAULTED:
        signal.signal(signum, signal.SIG_DFL)
    one_write_per_answer()


class _Kept:
    """Stands in for the socket while gunicorn writes a response's head: keeps the bytes."""

    def __init__(self) -> None:
        self.data = b""

    def sendall(self, data: bytes) -> None:
        self.data += data


def one_write_per_answer() -> None:
    """Send a response's head together with the first piece of its body, in one write.

    A head is held back only for a response that is not chunked; it goes out with the first
    body bytes, or alone when the response ends without any (``/ping``, HEAD, an empty body)
    and before a file is sent with sendfile. Every byte and its order stay as gunicorn writes
    them; only the number of writes changes. Applied once per worker process.
    """
    from gunicorn import util
    from gunicorn.http import wsgi

    response = wsgi.Response
    if getattr(response, "one_write_per_answer", False):
        return
    send_headers, emit_body, close, sendfile = (response.send_headers, response._emit_body,
                                                response.close, response.sendfile)

    def held_send_headers(self: Any) -> None:
        if self.headers_sent or self.chunked or self.__dict__.get("_send_at_once"):
            return send_headers(self)
        sock, kept = self.sock, _Kept()
        self.sock = kept
        try:
            send_headers(self)
        finally:
            self.sock = sock
        self._held_head = kept.data

    def emit_with_head(self: Any, data: bytes) -> None:
        head = self.__dict__.pop("_held_head", None)
        emit_body(self, data if head is None else head + data)

    def close_with_head(self: Any) -> None:
        self._send_at_once = True
        head = self.__dict__.pop("_held_head", None)
        if head is not None:
            util.write(self.sock, head)
        close(self)

    def sendfile_after_head(self: Any, respiter: Any) -> Any:
        self._send_at_once = True
        return sendfile(self, respiter)

    response.send_headers = held_send_headers
    response._emit_body = emit_with_head
    response.close = close_with_head
    response.sendfile = sendfile_after_head
    response.one_write_per_answer = True
