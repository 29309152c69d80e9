"""``byoc local predict``: invoke a served model as SageMaker's runtime would."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import contract
from .errors import ConfigError, PredictError

#: InvokeEndpoint's body limit.
MAX_BODY = contract.MAX_PAYLOAD_BYTES
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


def predict(url: str, body: bytes, content_type: str, accept: str | None = None,
            timeout: float = INVOCATION_TIMEOUT) -> Prediction:
    """POST *body* to ``<url>/invocations``.

    :raises PredictError: for a body over 6 MiB (not sent), a non-2xx answer
        (status and body in the message), no answer, or a timeout.
    """
    if len(body) > MAX_BODY:
        raise PredictError(f"the body is {len(body)} bytes; SageMaker accepts at most {MAX_BODY}"
                           " (6 MiB) per invocation")
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
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
