"""Runtime: you should not need to edit this. The Flask app that answers SageMaker's requests.

Its routes are ``/ping``, ``/invocations`` and ``/execution-parameters``; with
``SAGEMAKER_MULTI_MODEL=true``, SageMaker's multi-model API under ``/models``
instead of ``/invocations`` (see multimodel.py).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import payloads
from multimodel import Registry
from optml import OptMl
from settings import MODELS_DIR_ENV, Settings

log = logging.getLogger("predictor")

#: Response header saying why /ping is not 200: ``loading`` or ``failed`` (final).
LOAD_STATUS_HEADER = "X-Model-Load-Status"


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
        assert loaded.module is not None
        try:
            kind = payloads.request_type(request.headers.get("Content-Type"))
            answer = payloads.response_type(request.headers.get("Accept"), kind)
            rows = payloads.decode(_body(settings.max_payload_bytes), kind, loaded.n_features,
                                   accepts_missing=loaded.accepts_missing)
        except payloads.PayloadError as exc:
            return _text(exc.status, str(exc))
        predictions = loaded.module.predict(loaded.model, rows)
        return Response(payloads.encode(predictions, answer), status=200, mimetype=answer)

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

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        return app.json.response(settings.execution_parameters())

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return _text(413, f"the body is larger than {settings.max_payload_mb} MiB")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _text(exc.code or 500, f"{exc.code} {exc.name}")

    @app.errorhandler(Exception)
    def failed(exc: Exception) -> Response:
        traceback.print_exc()
        return _text(500, f"prediction failed: {type(exc).__name__}: {exc}")

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


def _text(status: int, message: str) -> Response:
    line = " ".join(message.split())[:1000]  # one line, whatever the exception said
    return Response(line + "\n", status=status, mimetype="text/plain")
