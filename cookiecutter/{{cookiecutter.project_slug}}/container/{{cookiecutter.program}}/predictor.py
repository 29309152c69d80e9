"""The Flask app behind nginx: ``/ping``, ``/invocations``, ``/execution-parameters``.

The model is loaded when the app is created (once, in the gunicorn master,
before workers fork). If loading fails the app still starts: ``/ping``
answers 503 and the log says why, so SageMaker sees an unhealthy container
instead of a crash loop.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

import model
import payloads
from optml import OptMl
from settings import Settings

log = logging.getLogger("predictor")


@dataclass(frozen=True)
class Loaded:
    """The model, or why there is none."""

    model: Any = None
    n_features: int = 0
    error: str = ""


def load_model(model_dir: Path) -> Loaded:
    try:
        fitted = model.load(model_dir)
        return Loaded(model=fitted, n_features=model.n_features(fitted))
    except Exception as exc:  # a broken model must not crash the server
        return Loaded(error=f"cannot load the model from {model_dir}: {type(exc).__name__}: {exc}")


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the app for the /opt/ml root and settings in *environ*."""
    settings = Settings.from_env(environ)
    model_dir = OptMl.from_env(environ).model_dir
    loaded = load_model(model_dir)
    if loaded.error:
        print(f"predictor: {loaded.error}; /ping answers 503", file=sys.stderr, flush=True)
    else:
        print(f"predictor: model loaded from {model_dir}", file=sys.stderr, flush=True)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes

    @app.get("/ping")
    def ping() -> Response:
        if loaded.error:
            return _text(503, loaded.error)
        return Response(b"", status=200)

    @app.post("/invocations")
    def invocations() -> Response:
        if loaded.error:
            return _text(503, loaded.error)
        try:
            kind = payloads.request_type(request.headers.get("Content-Type"))
            answer = payloads.response_type(request.headers.get("Accept"), kind)
            rows = payloads.decode(_body(settings.max_payload_bytes), kind, loaded.n_features)
        except payloads.PayloadError as exc:
            return _text(exc.status, str(exc))
        predictions = model.predict(loaded.model, rows)
        return Response(payloads.encode(predictions, answer), status=200, mimetype=answer)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        return app.json.response(settings.execution_parameters())

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return _text(413, f"the body is larger than {settings.max_payload_mb} MiB")

    return app


def _body(limit: int) -> bytes:
    """The request body; :raises RequestEntityTooLarge: if it is over *limit* bytes."""
    body = request.get_data(cache=False)
    # Werkzeug cuts a chunked body (no Content-Length) off at the limit silently.
    if request.content_length is None and len(body) >= limit:
        raise RequestEntityTooLarge()
    return body


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")
