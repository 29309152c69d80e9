"""Runtime: you should not need to edit this. Serving knobs, read from the environment.

=======================================  ============================================
``SAGEMAKER_BIND_TO_PORT``               port to listen on (8080)
``SAGEMAKER_SAFE_PORT_RANGE``            ports a second listener may use
                                         (``XXXX-YYYY``): checked, never needed, since
                                         nginx reaches gunicorn on a unix socket
``SAGEMAKER_MULTI_MODEL``                ``true``: answer SageMaker's multi-model API
                                         (/models, see multimodel.py) instead of
                                         loading /opt/ml/model
``MODEL_SERVER_WORKERS``                 gunicorn workers (the CPU count)
``MODEL_SERVER_WORKER_CLASS``            ``gevent`` (default), ``gthread`` or
                                         ``sync``
``MODEL_SERVER_THREADS``                 threads per gthread worker (4)
``MODEL_SERVER_TIMEOUT``                 seconds per request (60, up to 3600
                                         for asynchronous inference)
``MODEL_SERVER_PRELOAD``                 ``true``: load the model once, before the
                                         workers fork (they share its memory);
                                         ``false``: in each worker. Default:
                                         ``FORK_SAFE`` in model.py, else ``false``
``SAGEMAKER_MAX_PAYLOAD_IN_MB``          body limit in MiB (6, raised up to 1024
                                         for asynchronous inference)
``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``  batch transform's parallel requests, as
                                         /execution-parameters answers (default: the
                                         workers, within MaxConcurrentTransforms x
                                         MaxPayloadInMB <= 100)
``SAGEMAKER_BATCH_STRATEGY``             ``MULTI_RECORD`` (default) or
                                         ``SINGLE_RECORD``
``SAGEMAKER_USE_NGINX``                  ``false`` serves gunicorn on the port
                                         directly
``SERVE_BIND_ADDRESS``                   address to listen on (0.0.0.0)
=======================================  ============================================

Preloading saves memory (one copy of the model, shared copy-on-write) but is
only safe for a model whose loading starts no threads: a forked worker has
none of its parent's threads, so XGBoost, OpenMP or PyTorch models can hang.

``SAGEMAKER_MODEL_SERVER_WORKERS`` and ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` are
accepted too, the names the SageMaker containers use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
DEFAULT_THREADS = 4
DEFAULT_PAYLOAD_MB = 6
#: gevent first: a worker keeps answering /ping while requests wait on I/O or sleep.
WORKER_CLASSES = ("gevent", "gthread", "sync")
#: Asynchronous inference reads a request body of up to 1 GB from S3.
MAX_PAYLOAD_MB = 1024
#: SageMaker batch transform: MaxConcurrentTransforms * MaxPayloadInMB <= 100.
BATCH_BUDGET_MB = 100
BATCH_STRATEGIES = ("MULTI_RECORD", "SINGLE_RECORD")
PRELOAD_ENV = "MODEL_SERVER_PRELOAD"
#: Set by serve for wsgi.py: what asked for preloading, named in its warning.
PRELOAD_REASON_ENV = "SERVE_PRELOAD_REASON"
#: Set by serve for the workers: the folder listing the models loaded through /models.
MODELS_DIR_ENV = "SERVE_MODELS_DIR"


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    port: int
    address: str
    workers: int
    worker_class: str
    threads: int
    timeout: int
    max_payload_mb: int
    use_nginx: bool | None
    #: None: as model.py declares (see server.py).
    preload: bool | None = None
    #: Batch transform: set by the job, else chosen by execution_parameters.
    max_concurrent_transforms: int | None = None
    batch_strategy: str = BATCH_STRATEGIES[0]
    #: SageMaker's multi-model endpoints: models come and go through /models.
    multi_model: bool = False
    #: SAGEMAKER_SAFE_PORT_RANGE, inclusive; None when unset.
    safe_ports: tuple[int, int] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; :raises SettingsError: naming the bad variable."""
        env = os.environ if environ is None else environ
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        payload = _integer(env, ("SAGEMAKER_MAX_PAYLOAD_IN_MB",), DEFAULT_PAYLOAD_MB, 1, 10**6)
        return cls(
            port=_integer(env, ("SAGEMAKER_BIND_TO_PORT",), DEFAULT_PORT, 1, 65535),
            address=env.get("SERVE_BIND_ADDRESS") or "0.0.0.0",
            workers=_integer(env, ("MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS"),
                             cpus or 1, 1, 1024),
            worker_class=_choice(env, "MODEL_SERVER_WORKER_CLASS", WORKER_CLASSES),
            threads=_integer(env, ("MODEL_SERVER_THREADS",), DEFAULT_THREADS, 1, 1024),
            timeout=_integer(env, ("MODEL_SERVER_TIMEOUT", "SAGEMAKER_MODEL_SERVER_TIMEOUT"),
                             DEFAULT_TIMEOUT, 1, 3600),
            max_payload_mb=min(max(payload, DEFAULT_PAYLOAD_MB), MAX_PAYLOAD_MB),
            use_nginx=_flag(env, "SAGEMAKER_USE_NGINX"),
            preload=_flag(env, PRELOAD_ENV),
            max_concurrent_transforms=_integer(env, ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",), 0, 1,
                                               BATCH_BUDGET_MB) or None,
            batch_strategy=_batch_strategy(env, "SAGEMAKER_BATCH_STRATEGY"),
            multi_model=bool(_flag(env, "SAGEMAKER_MULTI_MODEL")),
            safe_ports=_port_range(env, "SAGEMAKER_SAFE_PORT_RANGE"),
        )

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024

    def execution_parameters(self) -> dict[str, object]:
        """What ``GET /execution-parameters`` answers for batch transform.

        One request per worker at most, and within SageMaker's budget of
        MaxConcurrentTransforms x MaxPayloadInMB <= 100; MULTI_RECORD, since
        /invocations answers a batch of rows in order.
        """
        payload = min(self.max_payload_mb, BATCH_BUDGET_MB)  # above 100: asynchronous only
        budget = max(1, BATCH_BUDGET_MB // payload)
        return {
            "MaxConcurrentTransforms": min(self.max_concurrent_transforms or self.workers, budget),
            "BatchStrategy": self.batch_strategy,
            "MaxPayloadInMB": payload,
        }


def _integer(env: Mapping[str, str], names: tuple[str, ...], default: int, low: int, high: int) -> int:
    for name in names:
        text = env.get(name, "").strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value
    return default


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    text = env.get(name, "").strip().lower() or choices[0]
    if text not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {text!r}")
    return text


def _batch_strategy(env: Mapping[str, str], name: str) -> str:
    """``MULTI_RECORD`` or ``SINGLE_RECORD``; the API's ``MultiRecord`` spelling is accepted too."""
    text = env.get(name, "").strip()
    if not text:
        return BATCH_STRATEGIES[0]
    spelled = {"MULTIRECORD": "MULTI_RECORD", "SINGLERECORD": "SINGLE_RECORD"}
    value = spelled.get(text.upper().replace("_", ""), "")
    if not value:
        raise SettingsError(f"{name} must be one of {', '.join(BATCH_STRATEGIES)}, got {text!r}")
    return value


def _port_range(env: Mapping[str, str], name: str) -> tuple[int, int] | None:
    """``"XXXX-YYYY"`` (inclusive, as SageMaker writes it) as a pair; None when unset."""
    text = env.get(name, "").strip()
    if not text:
        return None
    low, dash, high = text.partition("-")
    if dash and low.strip().isdigit() and high.strip().isdigit():
        first, last = int(low), int(high)
        if 1 <= first <= last <= 65535:
            return first, last
    raise SettingsError(f"{name} must be two ports as XXXX-YYYY, the first not above the second,"
                        f" got {text!r}")


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    text = env.get(name, "").strip().lower()
    if not text:
        return None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {text!r}")
