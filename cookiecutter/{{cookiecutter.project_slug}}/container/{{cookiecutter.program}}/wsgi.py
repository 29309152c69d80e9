"""Runtime: you should not need to edit this. The WSGI entry point gunicorn loads as ``wsgi:app``.

Preloading (``MODEL_SERVER_PRELOAD=true``, which serve sets when model.py says
``FORK_SAFE = True``): the gunicorn master imports this before forking its
workers and loads the model once. A load that starts threads is not fork-safe
(a forked worker has none of them and a prediction waiting on one hangs), so
the master counts its threads around the load, native ones included, and if
there are more afterwards it warns once and starts gunicorn over without
preloading: a fresh process, so nothing of the parent's load (its threads, the
libraries' state) is left for the workers to inherit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from predictor import create_app
from settings import PRELOAD_ENV, PRELOAD_REASON_ENV, Settings

TASKS = Path("/proc/self/task")


def thread_count() -> int | None:
    """This process's threads, native ones too (None where /proc is not there)."""
    try:
        return sum(1 for _ in TASKS.iterdir())
    except OSError:
        return None


def load_per_worker_instead(started: int) -> None:
    """Warn once, then replace this gunicorn master by one that does not preload."""
    reason = os.environ.get(PRELOAD_REASON_ENV) or f"{PRELOAD_ENV}=true"
    print(f"serve: warning: loading the model started {started} thread(s), so it is not fork-safe"
          f" despite {reason}: each worker loads the model itself instead"
          f" (set FORK_SAFE = False in model.py)", file=sys.stderr, flush=True)
    os.environ[PRELOAD_ENV] = "false"
    argv = [arg for arg in sys.orig_argv if arg != "--preload"]
    os.execv(sys.executable, argv)


if Settings.from_env().preload:
    # Here in the gunicorn master, before the fork: load now, once.
    before = thread_count()
    app = create_app()
    after = thread_count()
    if before is not None and after is not None and after > before:
        load_per_worker_instead(after - before)
else:
    # In each worker: load on a thread so /ping answers meanwhile.
    app = create_app(load_in_background=True)
