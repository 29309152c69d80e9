"""Multi-model endpoints (Mode MultiModel): a directory of ``.tar.gz`` archives plays the S3
prefix. On an invocation naming ``X-Amzn-SageMaker-Target-Model: REL.tar.gz`` the front, as
the platform does, extracts that archive under ``/opt/ml/models/<name>/model`` (a volume the
container reads), ``POST /models`` on first use, invokes ``/models/<name>/invoke`` and unloads
the least recently used model (``DELETE /models/<name>``) when the container answers 507 or
the extracted models would pass the ``--memory`` budget. Each unload is reported."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ... import archive, contract
from ...backends.base import Backend, LogSink
from ...backends.docker import ContainerOptions
from ...errors import ArchiveError, ConfigError, PlatformRefusal, UpstreamError
from ...say import Say, quiet
from .common import (
    Endpoint,
    docker_backend,
    endpoint,
    inner_port,
    label_is_true,
    passed_headers,
    ping,
    relay,
    upstream_failure,
)
from .front import Handle, Reply, Request, Upstream


def check_dir(models: Path | None) -> Path:
    """:raises ConfigError: when the directory playing the S3 prefix is missing."""
    if models is None or not models.is_dir():
        raise ConfigError(f"--multi-model {models}: no such directory (it plays the S3 prefix"
                          " that holds the model archives)")
    return models


def refusal(image: str) -> str:
    """CreateModel's message for a multi-model image without the multi-models label."""
    return (f"CreateModel would refuse this model: ValidationException: Your Ecr Image {image} does"
            f" not contain required {contract.MULTI_MODEL_LABEL}=true Docker label(s).")


def model_name(relative: str) -> str:
    """The opaque name the container knows a model by: readable, and unique per path."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", relative.removesuffix(".tar.gz")).strip("-")[-40:]
    return f"{stem or 'model'}-{hashlib.sha256(relative.encode()).hexdigest()[:10]}"


@dataclass
class Loaded:
    name: str
    size: int


class Cache:
    """The platform's model cache on the instance: what is loaded, least recently used first."""

    def __init__(self, upstream: Upstream, models: Path, root: Path, budget: int | None,
                 say: Say) -> None:
        self.upstream = upstream
        self.models = models
        self.root = root
        self.budget = budget
        self.say = say
        self.loaded: OrderedDict[str, Loaded] = OrderedDict()
        self.evictions: list[tuple[str, str]] = []
        self.loads = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return sum(entry.size for entry in self.loaded.values())

    def source(self, relative: str) -> Path:
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts or not relative.endswith(".tar.gz"):
            raise PlatformRefusal(400, f"ValidationError: TargetModel {relative!r} must be a relative"
                               " path of a .tar.gz under the endpoint's prefix")
        found = self.models / relative
        if not found.is_file():
            raise PlatformRefusal(400, f"ValidationError: Failed to download model data for TargetModel"
                               f" {relative!r}: it is not in {self.models}")
        return found

    def ensure(self, relative: str) -> str:
        """The loaded model's name, loading it (and unloading others) first when needed."""
        with self._lock:
            entry = self.loaded.get(relative)
            if entry is not None:
                self.loaded.move_to_end(relative)
                return entry.name
            source = self.source(relative)
            name = model_name(relative)
            target = self.root / name
            shutil.rmtree(target, ignore_errors=True)
            try:
                size = archive.extract(source, target / "model").bytes
            except ArchiveError as exc:
                shutil.rmtree(target, ignore_errors=True)
                raise PlatformRefusal(400, f"ValidationError: TargetModel {relative!r}: {exc.message}"
                              ) from None
            if self.budget is not None and size > self.budget:
                shutil.rmtree(target, ignore_errors=True)
                raise PlatformRefusal(507, f"TargetModel {relative!r} needs {size} bytes extracted, more"
                                   f" than the whole --memory budget ({self.budget} bytes)")
            while self.budget is not None and self.loaded and self.used + size > self.budget:
                self._evict(relative, f"the models would pass --memory ({self.budget} bytes)")
            self._load(relative, name, target)
            self.loaded[relative] = Loaded(name, size)
            self.loads += 1
            return name

    def _load(self, relative: str, name: str, target: Path) -> None:
        url = f"{contract.MULTI_MODEL_ROOT}/{name}/model"
        request = json.dumps({"model_name": name, "url": url}).encode()
        while True:
            try:
                answer = self.upstream.call("POST", "/models", request,
                                            {"Content-Type": "application/json"})
            except UpstreamError as exc:
                shutil.rmtree(target, ignore_errors=True)
                raise PlatformRefusal(*upstream_failure(exc, "primary")) from None
            if answer.status in (200, 409):  # 409: the container has it already
                return
            if answer.status == 507 and self.loaded:
                self._evict(relative, "the container answered 507 (not enough memory)")
                continue
            shutil.rmtree(target, ignore_errors=True)
            text = answer.body[:2000].decode("utf-8", "replace").strip()
            raise PlatformRefusal(answer.status, f"ModelError: loading TargetModel {relative!r}"
                                         f" (POST /models) failed with {answer.status}: {text}")

    def _evict(self, for_relative: str, why: str) -> None:
        relative, entry = self.loaded.popitem(last=False)
        with contextlib.suppress(UpstreamError):
            self.upstream.call("DELETE", f"/models/{entry.name}")
        shutil.rmtree(self.root / entry.name, ignore_errors=True)
        self.evictions.append((relative, why))
        self.say(f"multi-model: unloaded {relative} (least recently used) to load {for_relative}:"
                 f" {why}")

    def forget(self, relative: str) -> None:
        with self._lock:
            self.loaded.pop(relative, None)


def handler(cache: Cache, upstream: Upstream, limit: int = contract.MAX_PAYLOAD_BYTES) -> Handle:
    def handle(request: Request) -> Reply:
        if request.method == "GET" and request.path == "/ping":
            return ping(upstream)
        if request.path != "/invocations" or request.method != "POST":
            return Reply.text(404, f"no route {request.method} {request.path}: POST /invocations")
        relative = request.header(contract.TARGET_MODEL_HEADER)
        if not relative:
            return Reply.text(400, "ValidationError: a multi-model endpoint needs TargetModel"
                                   " (byoc local predict --target-model REL.tar.gz)")
        if request.length > limit:
            return Reply.text(413, f"ValidationError: the request body is {request.length} bytes;"
                                   f" InvokeEndpoint accepts at most {limit} (6 MB)")
        body = request.read()
        headers = passed_headers(request.headers)
        for attempt in (0, 1):
            try:
                name = cache.ensure(relative)
                answer = upstream.call("POST", f"/models/{name}/invoke", body, headers)
            except PlatformRefusal as exc:
                return Reply.text(exc.status, exc.message)
            except UpstreamError as exc:
                return Reply.text(*upstream_failure(exc, "primary"))
            if answer.status == 404 and attempt == 0:  # unloaded meanwhile: load it again
                cache.forget(relative)
                continue
            return relay(answer)
        raise AssertionError("unreachable")

    return handle


@contextlib.contextmanager
def serve(*, backend: Backend, models: Path, memory_mb: int | None = None, port: int,
          env: Mapping[str, str] | None = None, startup_timeout: float = contract.STARTUP_TIMEOUT,
          grace_seconds: float = contract.SERVE_STOP_GRACE, log: LogSink | None = None,
          say: Say = quiet) -> Iterator[Endpoint]:
    """Serve the archives under *models* as a multi-model endpoint; yield once ``/ping``
    answers 200 (with no model loaded). ``served.state`` is the :class:`Cache`.

    :raises ConfigError: for a missing directory or an image without the multi-models label.
    """
    check_dir(models)
    docker = docker_backend(backend, "multi-model")
    if not label_is_true(docker.image_labels(), contract.MULTI_MODEL_LABEL):
        raise ConfigError(refusal(docker.image))
    container_env = {**(env or {}), contract.MULTI_MODEL_ENV: "true"}
    with endpoint(docker, port, grace_seconds, log, say) as served:
        root = served.scratch / "models"
        root.mkdir()
        inside = inner_port()
        served.start("primary", ContainerOptions(
            name=served.name("mme"), env=container_env, publish={contract.PORT: inside},
            mounts=[(root, contract.MULTI_MODEL_ROOT, True)]), url=f"http://127.0.0.1:{inside}")
        say(f"waiting for /ping with no model loaded (up to {startup_timeout:.0f} s)")
        served.wait(startup_timeout)
        upstream = Upstream(served.address("primary", contract.PORT, inside),
                            contract.INVOCATION_TIMEOUT)
        cache = Cache(upstream, models.resolve(), root,
                      memory_mb * 1024 * 1024 if memory_mb is not None else None, say)
        served.state = cache
        served.serve(handler(cache, upstream))
        say(f"multi-model: TargetModel is a path under {models.resolve()}")
        yield served
