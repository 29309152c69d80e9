"""byoc validate's judgement where it is easy to get wrong: SIGTERM to a container that already
finished, advice for an invocation that never answers, and its help text."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc.cli import cli
from byoc.validate.common import FAIL, SKIPPED, Session
from byoc.validate.serve import ServeInputs, _http_checks
from byoc.validate.sidecar import HostProber
from helpers import REPO


def test_help_cites_no_file_that_is_not_there() -> None:
    result = CliRunner().invoke(cli, ["validate", "--help"])
    assert result.exit_code == 0
    assert "CONTRACT.md" not in result.output and not (REPO / "CONTRACT.md").exists()
    assert "B2 HTTP" in " ".join(result.output.split())


@pytest.mark.docker
def test_sigterm_to_a_container_that_already_exited_is_not_delivered(docker_client: Any,
                                                                     base_image: str) -> None:
    session = Session(docker_client, base_image, say=lambda line: None, container_log=None)
    try:
        finished = session.start(session.create("done", command=["true"]), "done")
        assert finished.wait(30) == 0
        stopped, _, status = finished.stop(5)
        assert (stopped, status, finished.term_delivered) == (True, 0, False)
        waits = ["sh", "-c", "trap 'exit 0' TERM; sleep 30 & wait"]
        running = session.start(session.create("runs", command=waits), "runs")
        stopped, seconds, _ = running.stop(10)
        assert running.term_delivered is True and stopped and seconds < 10
    finally:
        session.close()


@pytest.fixture
def gateway_timeouts() -> Iterator[int]:
    """A server whose /ping is fine and whose /invocations gets a proxy's 504, as when the model's
    workers hang."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200 if self.path == "/ping" else 404, b"")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer(504, b"upstream timed out\n")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_invocation_that_never_answers_points_at_loading_after_fork(gateway_timeouts: int,
                                                                       tmp_path: Path) -> None:
    payload = tmp_path / f"payload-{uuid.uuid4().hex[:6]}.csv"
    payload.write_text("1,2\n")
    inputs = ServeInputs(model_dir=tmp_path, payload=payload, content_type="text/csv", grace=1.0,
                         startup_timeout=5.0)
    checks = _http_checks(HostProber({8080: gateway_timeouts}, payload), inputs)
    invocations = checks["serve.invocations"]
    assert invocations.result == FAIL and "HTTP 504" in invocations.saw
    assert "load the model after fork" in invocations.fix.lower()
    assert "MODEL_SERVER_PRELOAD" in invocations.fix
    assert "client_max_body_size" not in invocations.fix
    large = checks["serve.large_body"]
    assert large.result == SKIPPED and "see serve.invocations" in large.saw
    assert "client_max_body_size" not in large.fix
