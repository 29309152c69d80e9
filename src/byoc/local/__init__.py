"""``byoc local``: run a training job (a :class:`~byoc.job.JobDefinition`) or a model on this
machine, exactly as SageMaker would.

Everything a local run needs lives here: :mod:`.train` (one training job: its hosts, input
modes, checkpoints, spot reclaims, time limits), :mod:`.process` (one processing job),
:mod:`.serve`, :mod:`.hosting` (the platform's side of each hosting mode),
:mod:`.backend` (Docker or processes),
:mod:`.staging` (the job's directory), :mod:`.record` (its ``job.json``), :mod:`.stopping`,
:mod:`.checkpoints`, :mod:`.scanner` (metrics from the log), :mod:`.plots` and :mod:`.reap`.
"""

from __future__ import annotations

from ..say import Say as Say
from .backend import BACKENDS, SigTerm, choose_backend, interrupted, sigterm_interrupts
from .process import ProcessResult, check_local_processing, has_program, process
from .reap import reap_orphans, stop_job
from .serve import (
    DEFAULT_PORT,
    DEFAULT_STARTUP_TIMEOUT,
    LOAD_FAILED,
    LOAD_STATUS_HEADER,
    PING_TIMEOUT,
    SERVE_GRACE,
    RunningServer,
    check_port_free,
    free_port,
    resolve_model,
    serve,
    wait_until_ready,
)
from .train import (
    TRAIN_GRACE,
    LocalRun,
    TrainResult,
    check_local,
    left_model,
    resolve_incremental,
    train,
)

__all__ = ["BACKENDS", "DEFAULT_PORT", "DEFAULT_STARTUP_TIMEOUT", "LOAD_FAILED",
           "LOAD_STATUS_HEADER", "LocalRun", "PING_TIMEOUT", "ProcessResult", "RunningServer",
           "SERVE_GRACE", "Say", "SigTerm", "TRAIN_GRACE", "TrainResult", "check_local",
           "check_local_processing", "check_port_free", "choose_backend", "free_port",
           "has_program", "interrupted", "left_model", "process", "reap_orphans",
           "resolve_incremental", "resolve_model", "serve", "sigterm_interrupts", "stop_job",
           "train", "wait_until_ready"]
