"""Runtime: you should not need to edit this. ``serve``: nginx in front of gunicorn, supervised.

nginx listens on the port and proxies to gunicorn on a unix socket. Where
nginx is not installed (or ``SAGEMAKER_USE_NGINX=false``) gunicorn listens
on the port itself. SIGTERM (or SIGINT) drains in-flight requests and exits
0; if either process dies on its own, the other is stopped and serve exits
non-zero. Workers orphaned by a dying master (nginx workers outlive theirs)
are adopted and killed, as they would be when serve is a container's PID 1.

Each gunicorn worker loads the model itself, after the fork, unless model.py
declares ``FORK_SAFE = True`` (or ``MODEL_SERVER_PRELOAD=true``): then the
gunicorn master loads it once and the workers share it copy-on-write. If that
load started threads (a forked worker would hang on them), the master warns
once and starts over without preloading: each worker loads its own copy (see
wsgi.py). With ``SAGEMAKER_MULTI_MODEL=true`` there is no model at start: models
come through SageMaker's multi-model API, each worker loading its own copies
(see multimodel.py).

Everything serve and its children write is under one runtime dir in /tmp (or
``$TMPDIR``), so the image runs as any user on a read-only root file system.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import importlib.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from settings import MODELS_DIR_ENV, PRELOAD_ENV, PRELOAD_REASON_ENV, Settings, SettingsError

PROGRAM_DIR = Path(__file__).resolve().parent
#: SageMaker kills a serving container 30 s after SIGTERM: drain within that.
GRACEFUL_SECONDS = 25
KEEP_ALIVE_SECONDS = 5
STOP_SECONDS = 28
#: prctl(2) option: orphaned descendants are re-parented to this process.
PR_SET_CHILD_SUBREAPER = 36
#: nginx's worker_connections and file limit (worker_rlimit_nofile): room for thousands
#: of slow clients, so that they cannot take /ping offline (see nginx.conf).
NGINX_CONNECTIONS = 8192
NGINX_FILES = 20000
#: nginx keeps a request body up to this size in memory, a larger one in a temporary file.
BODY_BUFFER_MB = 16
#: The paths nginx passes to gunicorn (regular expressions); the rest are 404.
ROUTES = ("ping", "invocations", "execution-parameters")
MULTI_MODEL_ROUTES = ("models", "models/.+")


def main(environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    nginx = shutil.which("nginx") if settings.use_nginx is not False else None
    if settings.use_nginx and not nginx:
        print("serve: SAGEMAKER_USE_NGINX is set but nginx is not installed", file=sys.stderr)
        return 2

    runtime = Path(tempfile.mkdtemp(prefix="serve-"))
    runtime.chmod(0o755)  # nginx workers must reach the gunicorn socket
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _adopt_orphans()

    bind = f"unix:{runtime}/gunicorn.sock" if nginx else f"{settings.address}:{settings.port}"
    if settings.multi_model:
        # no model at start, so nothing to load before the fork: each worker loads the models
        # it serves itself (see multimodel.py)
        preload = False
    elif settings.preload is not None:
        preload = settings.preload
    else:
        preload = declares_fork_safe(PROGRAM_DIR / "model.py")
    env[MODELS_DIR_ENV] = str(runtime / "models")  # the workers' shared list of loaded models
    (runtime / "models").mkdir()
    env[PRELOAD_ENV] = "true" if preload else "false"  # what wsgi.py acts on
    # what wsgi.py names if loading turns out to start threads (then it loads per worker)
    env[PRELOAD_REASON_ENV] = (f"{PRELOAD_ENV}=true" if settings.preload
                               else "FORK_SAFE = True in model.py")
    children: dict[str, subprocess.Popen[bytes]] = {
        "gunicorn": subprocess.Popen(_gunicorn_command(settings, bind, preload, runtime), env=env)
    }
    if nginx:
        config = _write_nginx_config(settings, runtime)
        children["nginx"] = subprocess.Popen([nginx, "-c", str(config), "-p", str(runtime), "-e", "stderr"],
                                             stderr=subprocess.PIPE)
        _relay_nginx_log(children["nginx"], runtime / "gunicorn.sock")
    where = "nginx" if nginx else "gunicorn"
    loading = ("multi-model: models loaded through /models, by each worker that serves them"
               if settings.multi_model
               else f"model loaded once before the workers fork ({PRELOAD_ENV}=true)" if preload
               else f"model loaded by each worker ({PRELOAD_ENV}=false)")
    print(f"serve: {where} on {settings.address}:{settings.port}, {settings.workers} worker(s),"
          f" {loading}", file=sys.stderr, flush=True)
    try:
        return _supervise(children, lambda: stopping)
    finally:
        _kill_orphans()
        shutil.rmtree(runtime, ignore_errors=True)


def declares_fork_safe(model_file: Path) -> bool:
    """Whether *model_file* sets ``FORK_SAFE = True`` at its top level.

    Read from the source rather than imported, so that serve itself never loads
    the model's libraries. Anything else (no such line, unreadable file) is False.
    """
    try:
        tree = ast.parse(model_file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return False
    declared = False
    for node in tree.body:  # the last assignment wins, as it does when Python runs the file
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == "FORK_SAFE" for target in targets):
            declared = isinstance(value, ast.Constant) and value.value is True
    return declared


def _gunicorn_command(settings: Settings, bind: str, preload: bool, runtime: Path) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        # post_fork: a worker stopped while it boots ends at once (see gunicorn_hooks.py)
        "--config", str(PROGRAM_DIR / "gunicorn_hooks.py"),
        "--chdir", str(PROGRAM_DIR),
        "--bind", bind,
        # its workers' heartbeat files, in the runtime dir (under /tmp): the rest of the file
        # system may be read-only (serverless inference)
        "--worker-tmp-dir", str(runtime),
        "--workers", str(settings.workers),
        *_worker_flags(settings),
        "--timeout", str(settings.timeout),
        "--graceful-timeout", str(GRACEFUL_SECONDS),
        # idle upstream connections close after 5 s (nginx lets them go after 4 s, so it
        # never reuses one gunicorn is closing), and so cannot hold up a drain
        "--keep-alive", str(KEEP_ALIVE_SECONDS),
        *(["--preload"] if preload else []),
        "--error-logfile", "-",
        *_optional_flags(),
        "wsgi:app",
    ]


def _worker_flags(settings: Settings) -> list[str]:
    worker_class = settings.worker_class
    if worker_class == "gevent" and importlib.util.find_spec("gevent") is None:
        print("serve: gevent is not installed; using gthread workers", file=sys.stderr)
        worker_class = "gthread"
    if worker_class == "gthread":
        return ["--worker-class", "gthread", "--threads", str(settings.threads)]
    return ["--worker-class", worker_class]


def _optional_flags() -> list[str]:
    """Flags only newer gunicorns know: no control socket left in $HOME."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in known else []


def _relay_nginx_log(nginx: subprocess.Popen[bytes], socket_path: Path) -> None:
    """Copy nginx's log to stderr, less its complaints that gunicorn is not up yet.

    Until gunicorn has loaded the model its socket does not exist; nginx then
    answers /ping with 503 (as it should) but also logs each failed connect.
    """
    def relay() -> None:
        assert nginx.stderr is not None
        for line in nginx.stderr:
            if b"No such file or directory" in line and not socket_path.exists():
                continue
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()

    threading.Thread(target=relay, daemon=True).start()


def _write_nginx_config(settings: Settings, runtime: Path) -> Path:
    text = (PROGRAM_DIR / "nginx.conf").read_text(encoding="utf-8")
    for name, value in {
        "RUNTIME": str(runtime),
        "ADDRESS": settings.address,
        "PORT": str(settings.port),
        "MAX_BODY_MB": str(settings.max_payload_mb),
        # a larger body waits in a file under the runtime dir (asynchronous inference's
        # bodies reach 1 GB), not in memory
        "BODY_BUFFER_MB": str(min(settings.max_payload_mb, BODY_BUFFER_MB)),
        "ROUTES": "|".join(ROUTES + (MULTI_MODEL_ROUTES if settings.multi_model else ())),
        "TIMEOUT": str(settings.timeout),
        **_nginx_connections(),
    }.items():
        text = text.replace(f"@{name}@", value)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (runtime / name).mkdir(mode=0o777)
        (runtime / name).chmod(0o777)
    (runtime / "errors").mkdir()
    for code, line in _nginx_errors(settings).items():
        (runtime / "errors" / f"{code}.txt").write_text(line + "\n", encoding="utf-8")
    path = runtime / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


def _nginx_connections() -> dict[str, str]:
    """nginx's file limit and connections: NGINX_FILES, or what the hard limit allows."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    files = NGINX_FILES if hard == resource.RLIM_INFINITY else min(NGINX_FILES, hard)
    # a proxied request holds two connections (client and gunicorn), each one file
    return {"NOFILE": str(files), "CONNECTIONS": str(max(256, min(NGINX_CONNECTIONS, files - 64)))}


def _nginx_errors(settings: Settings) -> dict[int, str]:
    """The line nginx answers for each error it makes itself (see nginx.conf)."""
    return {
        400: "bad request: not valid HTTP",
        405: "method not allowed: use GET /ping or POST /invocations",
        408: "the request was not received in time",
        411: "a Content-Length header is required",
        413: f"the body is larger than {settings.max_payload_mb} MiB",
        414: "the request line is too long",
        494: "bad request: a header is too large",
        500: "the proxy failed: see the server log",
        501: "not implemented: unsupported Transfer-Encoding",
        503: "the model server is not ready",
        504: f"the model server did not answer within {settings.timeout} s (MODEL_SERVER_TIMEOUT)",
        505: "HTTP version not supported: use HTTP/1.1",
    }


def _supervise(children: dict[str, subprocess.Popen[bytes]], stopping: Callable[[], bool]) -> int:
    """Wait until every child has exited; return serve's exit status."""
    failed = False
    deadline = 0.0
    while True:
        exited = {name: child.returncode for name, child in children.items()
                  if child.poll() is not None}
        if exited and not stopping():
            # A signal sent to the whole process group (a terminal's Ctrl-C, `timeout`)
            # can end a child a moment before serve's own handler has run.
            time.sleep(0.2)
        if not deadline and (stopping() or exited):
            if not stopping():
                for name, code in exited.items():
                    print(f"serve: {name} exited with status {code}; stopping", file=sys.stderr)
                failed = True
            _drain(children)
            deadline = time.monotonic() + STOP_SECONDS
        if len(exited) == len(children):
            break
        if deadline and time.monotonic() > deadline:
            for child in children.values():
                if child.poll() is None:
                    child.kill()
        time.sleep(0.05)
    statuses = [child.wait() for child in children.values()]
    return 1 if failed or any(statuses) else 0


def _adopt_orphans() -> None:
    """Become the parent of descendants whose parent dies (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _kill_orphans() -> None:
    """Kill and reap the adopted orphans still around once nginx and gunicorn exited."""
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in map(int, children.read_text().split()):
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def _drain(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Ask each child to finish in-flight requests and exit."""
    graceful = {"nginx": signal.SIGQUIT, "gunicorn": signal.SIGTERM}
    for name, child in children.items():
        if child.poll() is None:
            child.send_signal(graceful[name])
