"""How ``byoc validate`` reaches a server that runs with ``--network none``.

A server without a network cannot publish a port. byoc starts a second
container from the image under test, which shares the server's network
namespace (``network_mode="container:<server>"``), and runs
:mod:`byoc.validate.probe` in it with ``docker exec <python> -c SOURCE REQUEST``. The
probe measures every request next to the server. The image needs a Python >=
3.7 for this. The sidecar never writes to the server's filesystem, and the
server's process table does not change.

An image without Python is served on the bridge network with its ports
published on 127.0.0.1, and byoc runs the same probe code in-process (see
:class:`HostProber`). Such an image is not checked without a network.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, Protocol

from .._docker import explain
from . import probe
from .common import Session, Started

PROBE_DIR = "byoc-validate"
HOLDER = ("import sys, time\nif sys.version_info < (3, 7):\n    sys.exit(3)\n"
          "while True:\n    time.sleep(3600)\n")


class Prober(Protocol):
    #: Where the sample payload is, as the probe sees it.
    payload_path: str

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one probe request (see :func:`byoc.validate.probe.run`)."""


class SidecarProber:
    """Runs the probe in a container that shares the server's network namespace."""

    def __init__(self, container: Any, python: str) -> None:
        self.container = container
        self.python = python
        self.payload_path = f"/{PROBE_DIR}/payload"
        self._source = Path(probe.__file__).read_text(encoding="utf-8")

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        import docker.errors

        try:
            result = self.container.exec_run([self.python, "-c", self._source, json.dumps(request)],
                                             stdout=True, stderr=True)
        except docker.errors.APIError as exc:
            return {"error": f"the probe could not run: {explain(exc)}"}
        text = result.output.decode("utf-8", errors="replace").strip()
        try:
            answer = json.loads(text.splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"error": f"the probe failed (exit {result.exit_code}): {text[-300:]}"}
        return answer if isinstance(answer, dict) else {"error": f"the probe said {text[-300:]}"}


class HostProber:
    """Runs the probe in-process against container ports published on 127.0.0.1."""

    def __init__(self, published: dict[int, int], payload: Path) -> None:
        self.published = published
        self.payload_path = str(payload)

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") == "listening":  # this host's sockets say nothing of the container's
            return {"error": "cannot list the container's sockets from the host"}
        return probe.run(self._map(request))

    def _map(self, request: dict[str, Any]) -> dict[str, Any]:
        mapped = dict(request)
        if "port" in mapped:
            port = int(mapped["port"])
            if port not in self.published:
                return {**mapped, "port": 1}  # not published: nothing can answer
            mapped["port"] = self.published[port]
        for key in ("ping", "invoke"):
            if key in mapped:
                mapped[key] = self._map(mapped[key])
        return mapped


def open_sidecar(session: Session, server: Started, payload: Path) -> SidecarProber | None:
    """A prober next to *server*, or None when the image has no usable Python.

    :raises docker.errors.APIError: for errors other than a missing interpreter.
    """
    import docker.errors

    for python in ("python3", "python"):
        container = session.create("probe", entrypoint=[python, "-c", HOLDER], command=[],
                                   network_mode=f"container:{server.container.id}")
        try:
            container.start()
        except docker.errors.APIError as exc:
            text = explain(exc)
            if "not found" in text or "no such file" in text.lower():
                continue
            raise
        check = container.exec_run([python, "-c", "import sys; print(sys.version_info >= (3, 7))"])
        if check.exit_code != 0 or check.output.strip() != b"True":
            container.kill()
            continue
        container.put_archive("/", _payload_tar(payload))
        return SidecarProber(container, python)
    return None


def _payload_tar(payload: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(PROBE_DIR)
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        data = payload.read_bytes()
        entry = tarfile.TarInfo(f"{PROBE_DIR}/payload")
        entry.size = len(data)
        entry.mode = 0o644
        tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def describe(answer: dict[str, Any]) -> str:
    """``HTTP 404 'not found'`` or the error, for a ``saw``."""
    if "status" in answer:
        body = " ".join(str(answer.get("body", "")).split())
        body = body if len(body) <= 60 else body[:57] + "..."
        return f"HTTP {answer['status']}" + (f" {body!r}" if body else "")
    return str(answer.get("error", "no answer"))
