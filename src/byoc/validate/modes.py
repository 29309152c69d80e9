"""``byoc validate --mode``: the checks of SageMaker's hosting modes.

Each mode starts ``docker run IMAGE serve`` the way SageMaker starts it for
that mode and probes it as the serving checks do (a sidecar container that
shares the server's network namespace, see :mod:`byoc.validate.sidecar`):

- ``multi-model``: the label, ``SAGEMAKER_MULTI_MODEL=true``, /ping with no
  model, and the model API (load 200 then 409, list, describe, invoke, unload,
  404 for a model that is not loaded; 507 when ``--memory`` lets byoc fill the
  container by loading copies of the model);
- ``pipeline``: the accept-bind-to-port label, /ping and /invocations on the
  ``SAGEMAKER_BIND_TO_PORT`` given, no socket outside that port and
  ``SAGEMAKER_SAFE_PORT_RANGE`` (read from ``/proc/net/tcp*`` in the container);
- ``async``: a 200 MB body with ``SAGEMAKER_MAX_PAYLOAD_IN_MB`` raised, and the
  timeouts of the gunicorn and nginx it runs with ``SAGEMAKER_MODEL_SERVER_TIMEOUT``
  raised (read from their command lines and ``nginx -T``);
- ``serverless``: ``--user 65534 --read-only --tmpfs /tmp --memory 1024m``:
  /ping within 180 s, an invocation, a 4 MB body, and no write outside /tmp
  (``docker diff`` and the server's log).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract, local
from .._docker import explain
from ..backends.docker import model_volume
from ..errors import ConfigError
from . import probe
from .common import FAIL, PASS, SKIPPED, WARN, Check, ImageFacts, Session, last_lines
from .serve import (
    INVOCATION_TIMEOUT,
    Served,
    _ok,
    _stop_quietly,
    _unanswered,
    _wait_until_ready,
)
from .sidecar import HostProber, Prober, describe, open_sidecar

MODES = ("multi-model", "pipeline", "async", "serverless")
ALL = "all"
RULES = {"multi-model": "H1", "pipeline": "H2", "async": "H3", "serverless": "H4"}
PORT = contract.PORT
#: The model name byoc loads (SageMaker derives an opaque one from the archive's path).
MODEL_NAME = "byoc-validate-model"
UNKNOWN_MODEL = "byoc-validate-not-loaded"
#: At most this many copies of the model are loaded to provoke a 507.
MAX_COPIES = 40
#: The port a pipeline's container is given, and its safe range.
PIPELINE_PORT = 9123
SAFE_RANGE = (9200, 9299)
#: The body of the asynchronous check (bytes), and how long it may take.
#: SAGEMAKER_MAX_PAYLOAD_IN_MB for the asynchronous check: the 1 GB an async input may hold.
ASYNC_MAX_PAYLOAD_MB = contract.ASYNC_MAX_INPUT_BYTES // (1024 * 1024)
ASYNC_BODY = 200 * 1024 * 1024
ASYNC_BODY_TIMEOUT = 600.0
SERVERLESS_USER = "65534"
NGINX_DEFAULT_TIMEOUT = 60
GUNICORN_DEFAULT_TIMEOUT = 30
LABEL_FIX = "Add LABEL {label}=true to the Dockerfile."


@dataclass(frozen=True)
class ModeInputs:
    #: The model's files: mounted at /opt/ml/model, or under /opt/ml/models/NAME/model.
    model_dir: Path
    payload: Path
    content_type: str
    startup_timeout: float
    #: ``--memory`` in MB: the serverless container's limit, and the multi-model one's.
    memory_mb: int | None = None


def parse_modes(given: Sequence[str]) -> tuple[str, ...]:
    """The modes named (``all`` for every one), in :data:`MODES` order.

    :raises ConfigError: for a name that is not a mode.
    """
    wanted: set[str] = set()
    for name in given:
        key = name.strip().lower()
        if key == ALL:
            wanted.update(MODES)
        elif key in MODES:
            wanted.add(key)
        else:
            raise ConfigError(f"--mode {name}: not a hosting mode; use one of"
                              f" {', '.join(MODES)} or {ALL}")
    return tuple(mode for mode in MODES if mode in wanted)


def run_checks(session: Session, facts: ImageFacts, inputs: ModeInputs,
               modes: Sequence[str]) -> list[Check]:
    runs = {"multi-model": _multi_model, "pipeline": _pipeline, "async": _async,
            "serverless": _serverless}
    checks: list[Check] = []
    for mode in modes:
        session.say(f"{mode}: docker run IMAGE serve as SageMaker starts it for this mode")
        checks += runs[mode](session, facts, inputs)
    return checks


# --- starting a server -----------------------------------------------------------------------

def _start(session: Session, inputs: ModeInputs, role: str, port: int, create: dict[str, Any],
           timeout: float | None = None) -> Served:
    """Start ``serve`` with *create*'s options (Docker's); wait for /ping 200 on *port*.

    With no Python in the image for the sidecar, it runs on the bridge network with *port*
    published on 127.0.0.1 instead.
    """
    import docker.errors

    timeout = inputs.startup_timeout if timeout is None else timeout
    served = Served("none")
    container = session.create(role, command=["serve"], network_mode="none", **create)
    try:
        served.server = session.start(container, role)
    except docker.errors.APIError as exc:
        served.start_error = explain(exc)
        return served
    try:
        served.prober = open_sidecar(session, served.server, inputs.payload)
    except docker.errors.APIError:
        served.prober = None
    if served.prober is None:
        if served.server.poll() is not None or served.server.wait(1.0) is not None:
            served.exited = served.server.poll()
            served.seconds = time.monotonic() - served.server.started_at
            return served
        served.server.run.kill()  # no Python for a sidecar: again, published on the host
        published = {port: local.free_port()}
        served = Served("bridge")
        create = {**create, "ports": {f"{port}/tcp": ("127.0.0.1", published[port])}}
        container = session.create(role, command=["serve"], network_mode="bridge", **create)
        try:
            served.server = session.start(container, role)
        except docker.errors.APIError as exc:
            served.start_error = explain(exc)
            return served
        served.prober = HostProber(published, inputs.payload)
    served.ok_port = _wait_until_ready(served, port, timeout)
    return served


def _not_ready(served: Served, window: float) -> str:
    """Why *served* is not ready, in a line."""
    if served.start_error:
        return f"Docker could not start it: {served.start_error}"
    if served.exited is not None:
        return (f"exit {served.exited} after {served.seconds:.1f} s"
                f" ({last_lines(served.log(), 3) or 'no output'})")
    return f"GET /ping answered {served.last} until the {window:.0f} s startup window closed"


def _label(name: str, rule: str, facts: ImageFacts, label: str, why: str) -> Check:
    value = facts.labels.get(label)
    if (value or "").lower() == "true":
        return Check(name, rule, PASS, f"LABEL {label}=true")
    saw = f"LABEL {label} is {value!r}" if value is not None else f"no LABEL {label}"
    return Check(name, rule, FAIL, saw, fix=LABEL_FIX.format(label=label) + " " + why)


def _http(prober: Prober, port: int, method: str, path: str, *, json_body: Any = None,
          payload: bool = False, content_type: str = "", timeout: float = INVOCATION_TIMEOUT,
          size: int | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"op": "http", "method": method, "port": port, "path": path,
                               "timeout": timeout}
    if json_body is not None:
        request["body"] = {"text": json.dumps(json_body)}
        request["headers"] = {"Content-Type": "application/json"}
    elif payload:
        request["body"] = {"path": prober.payload_path}
        if size is not None:
            request["body"].update(size=size, fill="stream")
        request["headers"] = {"Content-Type": content_type}
    return prober.call(request)


def _status(answer: dict[str, Any]) -> int:
    return int(answer.get("status", 0))


def _expect(name: str, rule: str, answer: dict[str, Any], wanted: int, what: str,
            fix: str) -> Check:
    saw = f"{what}: {describe(answer)}"
    if _status(answer) == wanted:
        return Check(name, rule, PASS, saw)
    return Check(name, rule, FAIL, f"{saw}, not {wanted}", fix=fix)


def _skip_all(names: Sequence[str], rule: str, why: str) -> list[Check]:
    return [Check(name, rule, SKIPPED, why) for name in names]


# --- multi-model ----------------------------------------------------------------------------

MME_CHECKS = ("multi-model.ping", "multi-model.load", "multi-model.load_again",
              "multi-model.list", "multi-model.describe", "multi-model.invoke",
              "multi-model.not_loaded", "multi-model.unload", "multi-model.memory")


def _multi_model(session: Session, facts: ImageFacts, inputs: ModeInputs) -> list[Check]:
    rule = RULES["multi-model"]
    checks = [_label("multi-model.label", rule, facts, contract.MULTI_MODEL_LABEL,
                     "SageMaker refuses CreateModel with Mode MultiModel without it.")]
    url = f"{contract.MULTI_MODEL_ROOT}/{MODEL_NAME}/model"
    copies = [f"{MODEL_NAME}-{index}" for index in range(1, MAX_COPIES + 1)]
    source = next(iter(model_volume(inputs.model_dir)))  # the model, as a full host path
    # with --memory, the same model under more names too, to fill the memory limit
    mounts = [f"{source}:{contract.MULTI_MODEL_ROOT}/{name}/model:ro"
              for name in (copies if inputs.memory_mb else ())]
    memory: dict[str, Any] = {"mem_limit": f"{inputs.memory_mb}m", "memswap_limit": f"{inputs.memory_mb}m"
              } if inputs.memory_mb else {}
    served = _start(session, inputs, "multi-model", PORT,
                    {"environment": {contract.MULTI_MODEL_ENV: "true"},
                     "volumes": [f"{source}:{url}:ro", *mounts], **memory})
    try:
        if not served.ready or served.prober is None:
            checks.append(Check(
                "multi-model.ping", rule, FAIL,
                f"with {contract.MULTI_MODEL_ENV}=true and no model loaded: "
                + _not_ready(served, inputs.startup_timeout),
                fix="With SAGEMAKER_MULTI_MODEL=true, start with no model and answer /ping 200:"
                    " SageMaker loads models later, through POST /models.",
                detail=served.log()))
            return checks + _skip_all(MME_CHECKS[1:], rule, "the server never became ready")
        checks.append(Check("multi-model.ping", rule, PASS,
                            f"/ping 200 after {served.seconds:.1f} s with no model loaded"))
        checks += _model_api(served.prober, inputs, url)
        checks.append(_memory_check(served, inputs, copies))
    finally:
        _stop_quietly(served)
    return checks


def _model_api(prober: Prober, inputs: ModeInputs, url: str) -> list[Check]:
    rule = RULES["multi-model"]
    load = {"model_name": MODEL_NAME, "url": url}
    checks = []
    first = _http(prober, PORT, "POST", "/models", json_body=load)
    checks.append(_expect("multi-model.load", rule, first, 200,
                          f"POST /models {json.dumps(load)}",
                          fix="Load the model found at url and answer 200."))
    if _status(first) != 200:
        names = [name for name in MME_CHECKS[2:-1] if name != "multi-model.not_loaded"]
        checks += _skip_all(names, rule, "the model did not load; see multi-model.load")
        checks.append(_not_loaded_check(prober, inputs))
        return checks
    again = _http(prober, PORT, "POST", "/models", json_body=load)
    checks.append(_expect("multi-model.load_again", rule, again, 409,
                          "the same POST /models again",
                          fix="Answer 409 Conflict when the model is already loaded."))
    listed = _http(prober, PORT, "GET", "/models")
    checks.append(_list_check(listed, url))
    described = _http(prober, PORT, "GET", f"/models/{MODEL_NAME}")
    checks.append(_expect("multi-model.describe", rule, described, 200,
                          f"GET /models/{MODEL_NAME}",
                          fix="GET /models/NAME describes a loaded model (200)."))
    invoked = _http(prober, PORT, "POST", f"/models/{MODEL_NAME}/invoke", payload=True,
                    content_type=inputs.content_type)
    saw = f"POST /models/{MODEL_NAME}/invoke ({inputs.payload.name}): {describe(invoked)}"
    checks.append(Check("multi-model.invoke", rule, PASS, saw) if _ok(invoked) else
                  Check("multi-model.invoke", rule, FAIL, saw,
                        fix="POST /models/NAME/invoke predicts with model NAME, as /invocations"
                            " does for a single model."))
    checks.append(_not_loaded_check(prober, inputs))
    unloaded = _http(prober, PORT, "DELETE", f"/models/{MODEL_NAME}")
    gone = _http(prober, PORT, "GET", f"/models/{MODEL_NAME}")
    saw = (f"DELETE /models/{MODEL_NAME}: {describe(unloaded)}; then GET /models/{MODEL_NAME}:"
           f" {describe(gone)}")
    good = _status(unloaded) == 200 and _status(gone) == 404
    checks.append(Check("multi-model.unload", rule, PASS if good else FAIL, saw,
                        fix="" if good else "DELETE /models/NAME unloads the model (200); it is"
                            " then unknown (404)."))
    return checks


def _list_check(listed: dict[str, Any], url: str) -> Check:
    rule = RULES["multi-model"]
    fix = ('GET /models answers {"models": [{"modelName": NAME, "modelUrl": URL}, ...]}'
           ' (and "nextPageToken" when there are more).')
    try:
        models = json.loads(listed.get("body", "") or "null").get("models")
        names = [entry.get("modelName") for entry in models]
    except (ValueError, AttributeError, TypeError):
        return Check("multi-model.list", rule, FAIL, f"GET /models: {describe(listed)}", fix=fix)
    if _status(listed) == 200 and MODEL_NAME in names:
        return Check("multi-model.list", rule, PASS, f"GET /models lists {names}")
    return Check("multi-model.list", rule, FAIL,
                 f"GET /models: {describe(listed)}; {MODEL_NAME} is not among {names}", fix=fix)


def _not_loaded_check(prober: Prober, inputs: ModeInputs) -> Check:
    rule = RULES["multi-model"]
    answers = {
        f"POST /models/{UNKNOWN_MODEL}/invoke": _http(
            prober, PORT, "POST", f"/models/{UNKNOWN_MODEL}/invoke", payload=True,
            content_type=inputs.content_type),
        f"GET /models/{UNKNOWN_MODEL}": _http(prober, PORT, "GET", f"/models/{UNKNOWN_MODEL}"),
        f"DELETE /models/{UNKNOWN_MODEL}": _http(prober, PORT, "DELETE",
                                                 f"/models/{UNKNOWN_MODEL}"),
    }
    wrong = {what: answer for what, answer in answers.items() if _status(answer) != 404}
    if not wrong:
        return Check("multi-model.not_loaded", rule, PASS,
                     "404 for invoke, describe and unload of a model that is not loaded")
    saw = "; ".join(f"{what}: {describe(answer)}" for what, answer in wrong.items())
    return Check("multi-model.not_loaded", rule, FAIL, f"{saw} (not 404)",
                 fix="Answer 404 for a model that is not loaded: SageMaker then loads it and"
                     " retries; any other status fails the client's request.")


def _memory_check(served: Served, inputs: ModeInputs, copies: Sequence[str]) -> Check:
    """Load copies of the model under the --memory limit until the server answers 507."""
    rule = RULES["multi-model"]
    if not inputs.memory_mb:
        return Check("multi-model.memory", rule, SKIPPED,
                     "507 not exercised: pass --memory MB to run the server under a memory limit"
                     " and load copies of the model until it answers 507")
    assert served.prober is not None and served.server is not None
    loaded = 0
    for name in copies:
        body = {"model_name": name, "url": f"{contract.MULTI_MODEL_ROOT}/{name}/model"}
        answer = _http(served.prober, PORT, "POST", "/models", json_body=body)
        status = _status(answer)
        if status == 200:
            loaded += 1
            continue
        where = f"after {loaded} copies loaded under --memory {inputs.memory_mb} MB"
        if status == 507:
            return Check("multi-model.memory", rule, PASS, f"507 {where}")
        died = served.server.wait(2.0)
        if died is not None:
            killed = _oom_killed(served.server.container)
            return Check("multi-model.memory", rule, FAIL,
                         f"the server {'was OOM-killed' if killed else f'exited ({died})'} {where}",
                         fix="Answer 507 to POST /models when another model would not fit in"
                             " memory: SageMaker then unloads the least recently used model and"
                             " retries.", detail=served.log())
        return Check("multi-model.memory", rule, FAIL, f"{describe(answer)} {where}",
                     fix="Answer 507 (Insufficient Storage) when a model does not fit in memory.")
    return Check("multi-model.memory", rule, SKIPPED,
                 f"507 not provoked: {loaded} copies of the model fit in {inputs.memory_mb} MB")


def _oom_killed(container: Any) -> bool:
    try:
        container.reload()
    except Exception:  # noqa: BLE001 - gone: unknown
        return False
    return bool((container.attrs.get("State") or {}).get("OOMKilled"))


# --- pipeline -------------------------------------------------------------------------------

def _pipeline(session: Session, facts: ImageFacts, inputs: ModeInputs) -> list[Check]:
    rule = RULES["pipeline"]
    checks = [_label("pipeline.label", rule, facts, contract.BIND_TO_PORT_LABEL,
                     "SageMaker refuses CreateModel with more than one container without it.")]
    safe = f"{SAFE_RANGE[0]}-{SAFE_RANGE[1]}"
    env = {contract.BIND_TO_PORT_ENV: str(PIPELINE_PORT), contract.SAFE_PORT_RANGE_ENV: safe}
    given = f"{contract.BIND_TO_PORT_ENV}={PIPELINE_PORT}"
    served = _start(session, inputs, "bind-port", PIPELINE_PORT,
                    {"environment": env, "volumes": model_volume(inputs.model_dir)})
    try:
        if not served.ready or served.prober is None:
            checks.append(Check("pipeline.port", rule, FAIL,
                                f"{given}: {_not_ready(served, inputs.startup_timeout)}",
                                fix=f"Listen on ${contract.BIND_TO_PORT_ENV} when it is set: each"
                                    " container of a pipeline is given its own port.",
                                detail=served.log()))
            checks += _skip_all(("pipeline.invocations",), rule, "see pipeline.port")
        else:
            how = (" (probed on a published port: the image has no Python for a sidecar)"
                   if isinstance(served.prober, HostProber) else "")
            checks.append(Check("pipeline.port", rule, PASS,
                                f"{given}: /ping 200 on {PIPELINE_PORT} after"
                                f" {served.seconds:.1f} s{how}"))
            answer = _http(served.prober, PIPELINE_PORT, "POST", "/invocations", payload=True,
                           content_type=inputs.content_type)
            saw = f"POST /invocations on {PIPELINE_PORT}: {describe(answer)}"
            checks.append(Check("pipeline.invocations", rule, PASS, saw) if _ok(answer) else
                          Check("pipeline.invocations", rule, FAIL, saw,
                                fix="Serve /invocations on the port given, as on 8080."))
        checks.append(_ports_check(served, safe))
    finally:
        _stop_quietly(served)
    return checks


def _ports_check(served: Served, safe: str) -> Check:
    rule = RULES["pipeline"]
    if served.server is None or served.server.poll() is not None:
        return Check("pipeline.safe_ports", rule, SKIPPED, "the server is not running")
    ports = _listening(served)
    if ports is None:
        return Check("pipeline.safe_ports", rule, SKIPPED,
                     "could not read /proc/net/tcp in the container (no cat, no Python)")
    outside = sorted({port for port, _ in ports if port != PIPELINE_PORT
                      and not SAFE_RANGE[0] <= port <= SAFE_RANGE[1]})
    shown = ", ".join(f"{port}{' (127.0.0.1)' if loopback else ''}" for port, loopback in ports)
    saw = f"listens on {shown or 'nothing'} with {contract.SAFE_PORT_RANGE_ENV}={safe}"
    if not outside:
        return Check("pipeline.safe_ports", rule, PASS, saw)
    return Check("pipeline.safe_ports", rule, FAIL,
                 f"{saw}: {', '.join(map(str, outside))} outside the range",
                 fix=f"The containers of a pipeline share one host's ports: listen on"
                     f" ${contract.BIND_TO_PORT_ENV}, and take any internal port (a model"
                     f" server's behind a proxy) from ${contract.SAFE_PORT_RANGE_ENV}, also on"
                     " 127.0.0.1.")


def _listening(served: Served) -> list[tuple[int, bool]] | None:
    """The listening sockets of the server's network namespace, from /proc/net/tcp{,6}."""
    import docker.errors

    assert served.server is not None
    found = None
    for cat in ("cat", "/bin/cat"):  # also where PATH leaves out /bin
        try:
            result = served.server.container.exec_run([cat, "/proc/net/tcp", "/proc/net/tcp6"])
        except docker.errors.APIError:
            continue
        text = result.output.decode("utf-8", "replace")
        if "local_address" in text:
            found = probe.parse_listening(text)
            break
    if found is None and served.prober is not None and not isinstance(served.prober, HostProber):
        answer = served.prober.call({"op": "listening"})
        found = answer.get("ports")
    if found is None:
        return None
    return [(int(port), bool(loopback)) for port, loopback in found]


# --- asynchronous inference ------------------------------------------------------------------

def _async(session: Session, facts: ImageFacts, inputs: ModeInputs) -> list[Check]:
    rule = RULES["async"]
    timeout = contract.ASYNC_INVOCATION_TIMEOUT_MAX
    env = {contract.MAX_PAYLOAD_ENV: str(ASYNC_MAX_PAYLOAD_MB),
           contract.MODEL_SERVER_TIMEOUT_ENV: str(timeout)}
    given = " ".join(f"{key}={value}" for key, value in env.items())
    served = _start(session, inputs, "async", PORT,
                    {"environment": env, "volumes": model_volume(inputs.model_dir)})
    try:
        if not served.ready or served.prober is None:
            why = f"with {given}: {_not_ready(served, inputs.startup_timeout)}"
            return [Check("async.large_body", rule, FAIL, why,
                          fix="Start with the asynchronous settings as with the defaults.",
                          detail=served.log()),
                    Check("async.timeout", rule, SKIPPED, "the server never became ready")]
        return [_large_body_check(served, inputs, given), _timeout_check(served, timeout)]
    finally:
        _stop_quietly(served)


def _large_body_check(served: Served, inputs: ModeInputs, given: str) -> Check:
    rule = RULES["async"]
    assert served.prober is not None
    answer = _http(served.prober, PORT, "POST", "/invocations", payload=True,
                   content_type=inputs.content_type, size=ASYNC_BODY, timeout=ASYNC_BODY_TIMEOUT)
    status = _status(answer)
    saw = (f"{describe(answer)} for a {ASYNC_BODY // (1024 * 1024)} MB body ({inputs.payload.name}"
           f" padded with newlines) with {given}")
    fix = (f"With {contract.MAX_PAYLOAD_ENV} set, accept bodies that large on the whole path:"
           " nginx client_max_body_size (and client_body_buffer_size or a temp path under /tmp),"
           " your framework's own limit. Asynchronous inference sends bodies of up to 1 GB.")
    if 200 <= status < 300:
        return Check("async.large_body", rule, PASS, saw)
    if _unanswered(answer) or status == 413 or status >= 500:
        return Check("async.large_body", rule, FAIL, saw, fix=fix, detail=served.log())
    return Check("async.large_body", rule, WARN, saw,
                 fix="Make sure this refusal is about the padded content, not the size. " + fix)


def _timeout_check(served: Served, wanted: int) -> Check:
    """The request timeouts of the gunicorn and nginx the server runs, as configured.

    A request slower than 60 s cannot be made in an arbitrary image, so the
    settings are read instead: gunicorn's ``--timeout`` from its command line,
    nginx's ``proxy_read_timeout`` from ``nginx -T``.
    """
    rule = RULES["async"]
    assert served.server is not None
    processes = _processes(served.server.container)
    found = server_timeouts(processes, _nginx_config(served.server.container, processes))
    given = f"{contract.MODEL_SERVER_TIMEOUT_ENV}={wanted}"
    if not found:
        return Check("async.timeout", rule, SKIPPED,
                     "not exercised: the server runs neither gunicorn nor nginx, whose timeouts"
                     " byoc reads, and no request can be made to last past 60 s in an arbitrary"
                     " image; the limits were checked by body size only")
    shown = ", ".join(f"{what} {seconds} s" for what, seconds in found.items())
    short = {what: seconds for what, seconds in found.items() if seconds < wanted}
    if not short:
        return Check("async.timeout", rule, PASS, f"with {given}: {shown}")
    return Check("async.timeout", rule, FAIL,
                 f"with {given}: {shown}; a request slower than"
                 f" {min(short.values())} s is cut",
                 fix=f"Raise every timeout on the path to ${contract.MODEL_SERVER_TIMEOUT_ENV}"
                     " when it is set: nginx proxy_read_timeout and proxy_send_timeout,"
                     " gunicorn --timeout, your model's own. Asynchronous inference allows up"
                     " to 3600 s per request.")


def _processes(container: Any) -> list[str]:
    import docker.errors

    try:
        top = container.top(ps_args="-eo pid,args")  # Docker needs the PID column
    except docker.errors.APIError:
        return []
    titles = top.get("Titles") or []
    column = titles.index("COMMAND") if "COMMAND" in titles else 0
    return [str(row[column]) for row in top.get("Processes") or []]


def _nginx_config(container: Any, processes: Sequence[str]) -> str | None:
    """``nginx -T`` of the running nginx (the configuration it was started with), or None."""
    import docker.errors

    command = nginx_test_command(processes)
    if command is None:
        return None
    try:
        result = container.exec_run(command, stdout=True, stderr=True)
    except docker.errors.APIError:
        return None
    text = result.output.decode("utf-8", "replace")
    return text if result.exit_code == 0 and "http" in text else None


def nginx_test_command(processes: Sequence[str]) -> list[str] | None:
    """``nginx -T`` with the master's own ``-c`` and ``-p``, from its process title
    (``nginx: master process /usr/sbin/nginx -c FILE ...``); None when no nginx runs."""
    for line in processes:
        if not line.startswith("nginx: master process"):
            continue
        words = shlex.split(line[len("nginx: master process"):])
        command = [words[0] if words else "nginx", "-T", "-e", "stderr"]
        for index, word in enumerate(words[:-1]):
            if word in ("-c", "-p"):  # -g (global directives) does not change the http block
                command += [word, words[index + 1]]
        return command
    return None


_GUNICORN_TIMEOUT = re.compile(r"^(?:--timeout(?:=(\d+))?|-t(\d+)?)$")
_NGINX_TIMEOUT = re.compile(r"^\s*proxy_read_timeout\s+(\d+)(s|m|h)?\s*;", re.MULTILINE)


def server_timeouts(processes: Sequence[str], nginx: str | None) -> dict[str, int]:
    """The request timeouts (seconds) that *processes* (command lines) and *nginx*'s full
    configuration (``nginx -T``) set: ``{"gunicorn --timeout": 60, "nginx proxy_read_timeout":
    60}``, with each program's default where it runs without the setting."""
    found: dict[str, int] = {}
    for line in processes:
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if not any("gunicorn" in word for word in words[:3]):
            continue
        seconds = GUNICORN_DEFAULT_TIMEOUT
        for index, word in enumerate(words):
            match = _GUNICORN_TIMEOUT.match(word)
            if not match:
                continue
            value = match.group(1) or match.group(2) or (
                words[index + 1] if index + 1 < len(words) else "")
            if value.isdigit():
                seconds = int(value)
        key = "gunicorn --timeout"
        found[key] = min(found.get(key, seconds), seconds)
    if nginx is not None:
        scale = {"s": 1, "m": 60, "h": 3600, None: 1}
        values = [int(number) * scale[unit] for number, unit in _NGINX_TIMEOUT.findall(nginx)
                  for unit in [unit or None]]
        found["nginx proxy_read_timeout"] = min(values) if values else NGINX_DEFAULT_TIMEOUT
    return found


# --- serverless -----------------------------------------------------------------------------

def _serverless(session: Session, facts: ImageFacts, inputs: ModeInputs) -> list[Check]:
    rule = RULES["serverless"]
    memory = inputs.memory_mb or contract.SERVERLESS_MEMORY_MB[0]
    how = (f"--user {SERVERLESS_USER} --read-only --tmpfs {contract.SERVERLESS_WRITABLE}"
           f" --memory {memory}m")
    window = contract.SERVERLESS_STARTUP_TIMEOUT
    served = _start(session, inputs, "serverless", PORT,
                    {"user": SERVERLESS_USER, "read_only": True,
                     "tmpfs": {contract.SERVERLESS_WRITABLE: "rw,exec,mode=1777"},
                     "mem_limit": f"{memory}m", "memswap_limit": f"{memory}m",
                     "volumes": model_volume(inputs.model_dir)}, timeout=window)
    checks: list[Check] = []
    try:
        if not served.ready or served.prober is None:
            killed = served.server is not None and _oom_killed(served.server.container)
            saw = f"{how}: " + ("OOM-killed" if killed else _not_ready(served, window))
            checks.append(Check(
                "serverless.ping", rule, FAIL, saw,
                fix="Serverless endpoints run the image as a non-root user with a read-only root"
                    f" file system: write only under {contract.SERVERLESS_WRITABLE} (pid files,"
                    " sockets, caches, temp files), and answer /ping within 180 s.",
                detail=served.log()))
            checks += _skip_all(("serverless.invocations", "serverless.payload"), rule,
                                "the server never became ready")
        else:
            checks.append(Check("serverless.ping", rule, PASS,
                                f"{how}: /ping 200 after {served.seconds:.1f} s"))
            checks += _serverless_invocations(served.prober, inputs)
        checks.append(_writes_check(served))
    finally:
        _stop_quietly(served)
    return checks


def _serverless_invocations(prober: Prober, inputs: ModeInputs) -> list[Check]:
    rule = RULES["serverless"]
    plain = _http(prober, PORT, "POST", "/invocations", payload=True,
                  content_type=inputs.content_type)
    saw = f"POST /invocations ({inputs.payload.name}): {describe(plain)}"
    checks = [Check("serverless.invocations", rule, PASS, saw) if _ok(plain) else
              Check("serverless.invocations", rule, FAIL, saw,
                    fix="Answer the sample payload as without the serverless restrictions;"
                        " see the server's log for a write outside /tmp.")]
    size = contract.SERVERLESS_MAX_PAYLOAD_BYTES
    big = _http(prober, PORT, "POST", "/invocations", payload=True,
                content_type=inputs.content_type, size=size)
    status = _status(big)
    saw = f"{describe(big)} for a 4 MB body (the payload padded with newlines)"
    if 200 <= status < 300:
        checks.append(Check("serverless.payload", rule, PASS, saw))
    elif _unanswered(big) or status == 413 or status >= 500:
        checks.append(Check("serverless.payload", rule, FAIL, saw,
                            fix="Accept bodies of up to 4 MB, a serverless endpoint's limit;"
                                " a large body buffered to disk must go under /tmp."))
    else:
        checks.append(Check("serverless.payload", rule, WARN, saw,
                            fix="Make sure this refusal is about the padded content, not the"
                                " size."))
    return checks


_WRITE_ERRORS = re.compile(r"read-only file system|permission denied|EROFS|EACCES", re.IGNORECASE)


def _writes_check(served: Served) -> Check:
    rule = RULES["serverless"]
    if served.server is None:
        return Check("serverless.writes", rule, SKIPPED, "the server did not start")
    try:
        changes = served.server.diff()
    except Exception:  # noqa: BLE001 - a container gone already has no diff to read
        changes = []
    writable = contract.SERVERLESS_WRITABLE
    mounts = _mount_points(served.server.container)
    outside = sorted({path for change in changes for path in [str(change.get("Path", ""))]
                      if not _within(path, writable)  # Docker's own mount points are no write
                      and not any(_within(mount, path) for mount in mounts)})
    refused = [line.strip() for line in served.log().splitlines() if _WRITE_ERRORS.search(line)]
    fix = (f"Write only under {writable}: point pid files, sockets, caches (PYTHONPYCACHEPREFIX,"
           " MPLCONFIGDIR, HOME), nginx's temp paths and gunicorn's --worker-tmp-dir there, or"
           " chmod o+rwX what must be written at build time.")
    if refused:
        return Check("serverless.writes", rule, FAIL,
                     f"the server's log shows refused writes: {' / '.join(refused[-3:])[:300]}",
                     fix=fix, detail=served.log())
    if outside:
        return Check("serverless.writes", rule, FAIL,
                     f"docker diff shows writes outside {writable}: {', '.join(outside[:8])}",
                     fix=fix)
    return Check("serverless.writes", rule, PASS,
                 f"no write outside {writable}: docker diff shows none, and the log no refused"
                 " write")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _mount_points(container: Any) -> list[str]:
    try:
        container.reload()
    except Exception:  # noqa: BLE001 - gone: none known
        return []
    return [str(mount.get("Destination", "")) for mount in container.attrs.get("Mounts") or []]
