"""Runtime: you should not need to edit this. gunicorn's server hooks (its ``--config`` file).

A worker is forked with the master's signal handlers, which only queue a signal for the
master's loop, and installs its own only after booting (a gevent worker patches the standard
library first, which takes a while). A SIGTERM in between, as when the server is stopped
while it starts, would be queued in the worker's copy of the master's queue and lost, and
stopping would wait out the whole graceful timeout before gunicorn kills the worker. So a
new worker starts with the default actions: until it has its own handlers, SIGTERM, SIGINT
and SIGQUIT end it at once (it serves nothing yet).
"""

from __future__ import annotations

import signal
from typing import Any

#: The signals a booting worker takes with the default action.
DEFAULTED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker, before it boots: the default action for :data:`DEFAULTED`."""
    for signum in DEFAULTED:
        signal.signal(signum, signal.SIG_DFL)
