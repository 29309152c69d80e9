"""``byoc local predict``: invoke a served model as SageMaker's runtime would."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import contract
from .errors import ConfigError, PredictError

#: InvokeEndpoint's body limit (BodyBlob max 6291456 bytes).
MAX_BODY = contract.MAX_PAYLOAD_BYTES
#: The serving container's own body limit, in MiB, when set (the generated nginx follows it).
MAX_PAYLOAD_ENV = contract.MAX_PAYLOAD_ENV
INVOCATION_TIMEOUT = contract.INVOCATION_TIMEOUT
CONTENT_TYPES = {".csv": "text/csv", ".json": "application/json", ".jsonl": "application/jsonlines",
                 ".jsonlines": "application/jsonlines", ".npy": "application/x-npy"}


@dataclass(frozen=True)
class Prediction:
    status: int
    content_type: str
    body: bytes


def guess_content_type(path: Path | None) -> str:
    kind = CONTENT_TYPES.get(path.suffix.lower()) if path else None
    if kind is None:
        raise ConfigError("cannot tell the content type; pass --content-type")
    return kind


def max_body(megabytes: float | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The body limit in bytes: *megabytes* MiB when given, else the server's own setting
    ``SAGEMAKER_MAX_PAYLOAD_IN_MB`` when set, else InvokeEndpoint's 6 MiB.

    :raises ConfigError: for a limit that is not a positive number of MiB.
    """
    env = os.environ if environ is None else environ
    source = "--max-payload"
    if megabytes is None and env.get(MAX_PAYLOAD_ENV, "").strip():
        source = MAX_PAYLOAD_ENV
        try:
            megabytes = float(env[MAX_PAYLOAD_ENV])
        except ValueError:
            raise ConfigError(f"{MAX_PAYLOAD_ENV}={env[MAX_PAYLOAD_ENV]!r} is not a number of MiB"
                              ) from None
    if megabytes is None:
        return MAX_BODY
    if not megabytes > 0:
        raise ConfigError(f"{source} must be a positive number of MiB, got {megabytes:g}")
    return int(megabytes * 1024 * 1024)


def predict(url: str, body: bytes, content_type: str, accept: str | None = None,
            timeout: float = INVOCATION_TIMEOUT, limit: int = MAX_BODY,
            target_model: str | None = None, target_container: str | None = None) -> Prediction:
    """POST *body* to ``<url>/invocations``.

    :param limit: the largest body sent, in bytes (see :func:`max_body`).
    :param target_model: InvokeEndpoint's TargetModel (a multi-model endpoint's archive path).
    :param target_container: TargetContainerHostname (a Direct multi-container endpoint).
    :raises PredictError: for a body over *limit* (not sent), a non-2xx answer
        (status and body in the message), no answer, or a timeout.
    """
    if len(body) > limit:
        if limit == MAX_BODY:
            raise PredictError(f"the body is {len(body)} bytes; SageMaker accepts at most {MAX_BODY}"
                               " (6 MiB) per invocation (for a local server with a higher"
                               f" {MAX_PAYLOAD_ENV}, pass --max-payload MB)")
        raise PredictError(f"the body is {len(body)} bytes, over the limit of {limit} bytes"
                           f" ({limit / 1024 / 1024:g} MiB, from --max-payload or {MAX_PAYLOAD_ENV})")
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    if target_model:
        headers[contract.TARGET_MODEL_HEADER] = target_model
    if target_container:
        headers[contract.TARGET_CONTAINER_HEADER] = target_container
    request = urllib.request.Request(f"{url.rstrip('/')}/invocations", data=body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Prediction(response.status, response.headers.get("Content-Type", ""),
                              response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # close its socket now: the exception outlives this frame as __context__
            text = exc.read(2000).decode("utf-8", errors="replace").strip()
        raise PredictError(f"HTTP {exc.code} from {url}: {text}") from None
    except TimeoutError:
        raise PredictError(f"no answer from {url} within {timeout:.0f} s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PredictError(f"cannot reach {url}: {reason} (is `byoc local serve` running?)") from None


@dataclass(frozen=True)
class AsyncInvocation:
    inference_id: str
    output_location: str
    failure_location: str


def predict_async(url: str, path: Path, content_type: str | None = None, accept: str | None = None,
                  inference_id: str | None = None, timeout: int | None = None) -> AsyncInvocation:
    """InvokeEndpointAsync on a local asynchronous endpoint: queue the file at *path* (its
    InputLocation, read by the endpoint) and return where the answer will be written.

    :raises PredictError: for a file over 1 GB (not sent), a refusal or no answer.
    """
    import json

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PredictError(f"cannot read {path}: {exc.strerror}") from None
    if size > contract.ASYNC_MAX_INPUT_BYTES:
        raise PredictError(f"{path} is {size} bytes; an asynchronous request's input is at most"
                           f" {contract.ASYNC_MAX_INPUT_BYTES} bytes (1 GB)")
    headers = {contract.INPUT_LOCATION_HEADER: path.resolve().as_uri()}
    for name, value in (("X-Amzn-SageMaker-Content-Type", content_type),
                        ("X-Amzn-SageMaker-Accept", accept),
                        (contract.INFERENCE_ID_HEADER, inference_id),
                        (contract.INVOCATION_TIMEOUT_HEADER, str(timeout) if timeout else None)):
        if value:
            headers[name] = value
    request = urllib.request.Request(f"{url.rstrip('/')}/async-invocations", data=b"",
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=INVOCATION_TIMEOUT) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read(2000).decode("utf-8", errors="replace").strip()
        raise PredictError(f"HTTP {exc.code} from {url}: {text}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PredictError(f"cannot reach {url}: {reason} (is `byoc local serve --async`"
                           " running?)") from None
    return AsyncInvocation(answer["InferenceId"], answer["OutputLocation"],
                           answer["FailureLocation"])
