"""Runtime: you should not need to edit this. The Flask app that answers SageMaker's requests.

Its routes are ``/ping``, ``/invocations`` and ``/execution-parameters``; with
``SAGEMAKER_MULTI_MODEL=true``, SageMaker's multi-model API under ``/models``
instead of ``/invocations`` (see multimodel.py).

The two routes SageMaker calls all the time, ``GET /ping`` and ``POST /invocations``,
are answered by :class:`HotPath`, plain WSGI in front of the Flask app, when the
request is an ordinary one (see there): the same answers, byte for byte, without
Flask's request context, routing and response objects, which cost more per request
than parsing a row and predicting it (benchmarks/README.md in byoc).

The model is loaded once per process that serves it: in the gunicorn master
before the workers fork when the model is fork-safe (see server.py), else in
each worker on a background thread, so that ``/ping`` can answer meanwhile
(with gevent workers that thread is a greenlet: a load that computes without
pausing holds ``/ping`` back until it is done).
Until it is loaded ``/ping`` answers 503 with ``X-Model-Load-Status: loading``;
if loading fails the app stays up and ``/ping`` answers 503 with the reason and
``X-Model-Load-Status: failed``, so SageMaker sees an unhealthy container
instead of a crash loop, and a client can stop waiting at once.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import get_content_type

import payloads
from multimodel import Registry
from optml import OptMl
from settings import MODELS_DIR_ENV, Settings

log = logging.getLogger("predictor")

#: Response header saying why /ping is not 200: ``loading`` or ``failed`` (final).
LOAD_STATUS_HEADER = "X-Model-Load-Status"
TEXT = "text/plain"
#: The Content-Type header of each answer's media type, as Flask writes it (charset for text/*).
CONTENT_TYPES = {kind: get_content_type(kind, "utf-8") for kind in (*payloads.SUPPORTED, TEXT)}
#: What Flask answers to a /ping with an empty 200.
PING_HEADERS = (("Content-Type", get_content_type("text/html", "utf-8")), ("Content-Length", "0"))


class Answer(NamedTuple):
    """An answer to /invocations: what either path (Flask or :class:`HotPath`) sends."""

    status: int
    media_type: str
    body: bytes

    def response(self) -> Response:
        return Response(self.body, status=self.status, content_type=CONTENT_TYPES[self.media_type])


@dataclass(frozen=True)
class Loaded:
    """The model module and the fitted model, or why there is none yet."""

    status: str  # "loading", "ready" or "failed"
    module: ModuleType | None = None
    model: Any = None
    n_features: int | None = None
    accepts_missing: bool = False
    error: str = ""


LOADING = Loaded(status="loading")


def load_model(model_dir: Path) -> Loaded:
    """Import model.py and load the model from *model_dir*; never raises."""
    try:
        module = importlib.import_module("model")
        fitted = module.load(model_dir)
        width = module.n_features(fitted) if hasattr(module, "n_features") else None
        return Loaded(status="ready", module=module, model=fitted, n_features=width,
                      accepts_missing=bool(getattr(module, "ACCEPTS_MISSING", False)))
    except Exception as exc:  # a broken model must not crash the server
        return Loaded(status="failed",
                      error=f"cannot load the model from {model_dir}: {type(exc).__name__}: {exc}")


class ModelSlot:
    """The model of this process, loaded now or on a background thread."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.current = LOADING

    def load(self) -> None:
        loaded = load_model(self.model_dir)
        if loaded.error:
            print(f"predictor: {loaded.error}; /ping answers 503", file=sys.stderr, flush=True)
        else:
            print(f"predictor: model loaded from {self.model_dir}", file=sys.stderr, flush=True)
        self.current = loaded  # one assignment: readers see the old or the new state

    def load_in_background(self) -> None:
        threading.Thread(target=self.load, name="load-model", daemon=True).start()


def create_app(environ: Mapping[str, str] | None = None, *, load_in_background: bool = False) -> Flask:
    """Build the app for the /opt/ml root and settings in *environ*.

    The model is loaded before this returns, unless *load_in_background*. With
    ``SAGEMAKER_MULTI_MODEL=true`` there is no model at start: models come and go
    through SageMaker's multi-model API (multimodel.py).
    """
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes

    def predict(loaded: Loaded) -> Response:
        """The predictions for the request's body, by *loaded*."""
        return invoke(loaded, request.headers.get("Content-Type"), request.headers.get("Accept"),
                      lambda: _body(settings.max_payload_bytes)).response()

    if settings.multi_model:
        folder = env.get(MODELS_DIR_ENV)
        _multi_model_routes(app, Registry(Path(folder) if folder else None, settings.workers,
                                          load_model), predict)
    else:
        slot = ModelSlot(OptMl.from_env(env).model_dir)
        if load_in_background:
            slot.load_in_background()
        else:
            slot.load()

        @app.get("/ping")
        def ping() -> Response:
            loaded = slot.current
            if loaded.status != "ready":
                return _not_ready(loaded)
            return Response(b"", status=200)

        @app.post("/invocations")
        def invocations() -> Response:
            loaded = slot.current
            if loaded.status != "ready":
                return _not_ready(loaded)
            return predict(loaded)

        app.wsgi_app = HotPath(app.wsgi_app, slot, settings)  # type: ignore[method-assign]

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        return app.json.response(settings.execution_parameters())

    @app.errorhandler(Exception)
    def failed(exc: Exception) -> Response:
        return error_answer(exc, settings.max_payload_mb).response()

    return app


def _multi_model_routes(app: Flask, registry: Registry, predict: Callable[[Loaded], Response]) -> None:
    """SageMaker's multi-model API (see multimodel.py); /ping is 200 with no model loaded."""

    @app.before_request
    def prune() -> None:
        registry.prune()  # drop this worker's copies of models another worker unloaded

    @app.get("/ping")
    def ping() -> Response:
        return Response(b"", status=200)

    @app.post("/invocations")
    def invocations() -> Response:
        return _text(404, "this is a multi-model endpoint: invoke POST /models/NAME/invoke")

    @app.post("/models")
    def load() -> Response:
        try:
            described = registry.add(request.get_json(force=True, silent=True))
        except payloads.PayloadError as exc:
            return _text(exc.status, str(exc))
        print(f"predictor: model {described['modelName']} loaded from {described['modelUrl']}",
              file=sys.stderr, flush=True)
        return app.json.response({"status": f"model {described['modelName']} loaded"})

    @app.get("/models")
    def models() -> Response:
        try:
            return app.json.response(registry.page(request.args.get("max_results"),
                                                   request.args.get("next_page_token")))
        except payloads.PayloadError as exc:
            return _text(exc.status, str(exc))

    @app.get("/models/<name>")
    def describe(name: str) -> Response:
        described = registry.describe(name)
        if described is None:
            return _text(404, f"model {name} is not loaded")
        return app.json.response(described)

    @app.delete("/models/<name>")
    def unload(name: str) -> Response:
        if not registry.remove(name):
            return _text(404, f"model {name} is not loaded")
        print(f"predictor: model {name} unloaded", file=sys.stderr, flush=True)
        return app.json.response({"status": f"model {name} unloaded"})

    @app.post("/models/<name>/invoke")
    def invoke(name: str) -> Response:
        loaded = registry.model(name)
        if loaded is None:
            return _text(404, f"model {name} is not loaded")
        if loaded.status != "ready":
            return _text(500, loaded.error)
        return predict(loaded)


def invoke(loaded: Loaded, content_type: str | None, accept: str | None,
           read_body: Callable[[], bytes]) -> Answer:
    """The answer of *loaded* to a request with these headers; the body is read only if they pass.

    :raises Exception: whatever the model raised (each path answers it with a 500).
    """
    assert loaded.module is not None
    try:
        kind = payloads.request_type(content_type)
        answer = payloads.response_type(accept, kind)
        rows = payloads.decode(read_body(), kind, loaded.n_features,
                               accepts_missing=loaded.accepts_missing)
    except payloads.PayloadError as exc:
        return _line(exc.status, str(exc))
    predictions = loaded.module.predict(loaded.model, rows)
    return Answer(200, answer, payloads.encode(predictions, answer))


class HotPath:
    """``GET /ping`` and ``POST /invocations`` as plain WSGI, the rest by the Flask app.

    Flask's app.wsgi_app middleware: it answers only what it answers exactly as the Flask
    routes would (same status, headers and body); anything else goes to Flask untouched,
    body unread: HEAD and other methods, a model not ready, a body without Content-Length
    (chunked) or over the limit (Flask answers 413), a client that sent less than its
    Content-Length (400, as Flask).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], slot: ModelSlot, settings: Settings) -> None:
        self.app = app
        self.slot = slot
        self.limit = settings.max_payload_bytes
        self.limit_mb = settings.max_payload_mb

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        loaded = self.slot.current
        if loaded.status == "ready":
            path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
            if path == "/ping" and method == "GET":
                start_response("200 OK", list(PING_HEADERS))
                return [b""]
            if path == "/invocations" and method == "POST":
                length = environ.get("CONTENT_LENGTH") or ""
                if length.isdigit() and int(length) <= self.limit:
                    return self.invocation(loaded, environ, start_response, int(length))
        return self.app(environ, start_response)

    def invocation(self, loaded: Loaded, environ: dict[str, Any], start_response: Callable[..., Any],
                   length: int) -> Iterable[bytes]:
        def read_body() -> bytes:
            body: bytes = environ["wsgi.input"].read(length) if length else b""
            if len(body) < length:
                raise payloads.PayloadError(400, "400 Bad Request")  # as Flask: the client left
            return body

        try:
            answer = invoke(loaded, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"), read_body)
        except Exception as exc:  # as the Flask app's error handler answers it
            answer = error_answer(exc, self.limit_mb)
        if answer.status != 200:
            return answer.response()(environ, start_response)
        start_response("200 OK", [("Content-Type", CONTENT_TYPES[answer.media_type]),
                                  ("Content-Length", str(len(answer.body)))])
        return [answer.body]


def _not_ready(loaded: Loaded) -> Response:
    message = loaded.error or "the model is loading"
    answer = _text(503, message)
    answer.headers[LOAD_STATUS_HEADER] = loaded.status
    return answer


def _body(limit: int) -> bytes:
    """The request body; :raises RequestEntityTooLarge: if it is over *limit* bytes."""
    body = request.get_data(cache=False)
    # Werkzeug cuts a chunked body (no Content-Length) off at the limit silently.
    if request.content_length is None and len(body) >= limit:
        raise RequestEntityTooLarge()
    return body


def error_answer(exc: Exception, max_payload_mb: int) -> Answer:
    """The answer to an exception a request raised (printed with its traceback if not HTTP's)."""
    if isinstance(exc, RequestEntityTooLarge):
        return _line(413, f"the body is larger than {max_payload_mb} MiB")
    if isinstance(exc, HTTPException):
        return _line(exc.code or 500, f"{exc.code} {exc.name}")
    traceback.print_exc()
    return _line(500, f"prediction failed: {type(exc).__name__}: {exc}")


def _line(status: int, message: str) -> Answer:
    line = " ".join(message.split())[:1000]  # one line, whatever the exception said
    return Answer(status, TEXT, (line + "\n").encode())


def _text(status: int, message: str) -> Response:
    return _line(status, message).response()
