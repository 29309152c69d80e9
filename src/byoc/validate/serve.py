"""The serving half of ``byoc validate``: ``docker run IMAGE serve``, as SageMaker runs it.

The model is mounted read-only at /opt/ml/model. The server runs with
``--network none`` and is probed from a container that shares its network
namespace (see :mod:`byoc.validate.sidecar`). If it exits without a network, it
is started once more on the bridge network, to tell "needs the network" from
"fails". A second server, started with ``SAGEMAKER_BIND_TO_PORT``, checks
that the variable is honoured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract, local
from .._docker import explain
from ..backends.docker import model_volume
from .common import (
    FAIL,
    NOT_FOUND_STATUSES,
    PASS,
    SKIPPED,
    WARN,
    Check,
    ImageFacts,
    Session,
    Started,
    last_lines,
)
from .sidecar import HostProber, Prober, describe, open_sidecar

PORT = contract.PORT
#: The port given in SAGEMAKER_BIND_TO_PORT by the bind-to-port check.
BIND_PORT = 8180
PING_TIMEOUT = contract.PING_TIMEOUT
INVOCATION_TIMEOUT = contract.INVOCATION_TIMEOUT
MAX_BODY = contract.MAX_PAYLOAD_BYTES
IDLE_PINGS = 5
LOAD = {"workers": 4, "seconds": 4.0, "warmup": 0.5, "interval": 0.25}
UNKNOWN_CONTENT_TYPE = "application/x-byoc-validate-unsupported"
SAGEMAKER_HEADERS = {
    "Accept": "*/*",
    "X-Amzn-SageMaker-Custom-Attributes": "byoc-validate=1",
    "X-Amzn-SageMaker-Inference-Id": "byoc-validate-1",
    "X-Amzn-SageMaker-Target-Variant": "AllTraffic",
    "X-Amzn-SageMaker-Enable-Explanations": "`false`",
    "X-Amzn-SageMaker-Byoc-Unknown-Header": "ignore me",
}
NOT_READY = ("serve.invocations", "serve.headers", "serve.content_type", "serve.large_body",
             "serve.ping_under_load", "serve.bind_to_port")
COMMAND_FIX = ("Use no ENTRYPOINT and an executable `serve` on PATH, or an exec-form ENTRYPOINT"
               " that takes `serve` as its first argument; serve must keep running. No tini.")
RULES = {"serve.command": "B1", "serve.no_network": "B1", "serve.port": "B2", "serve.ping": "B2",
         "serve.invocations": "B2", "serve.headers": "B2", "serve.content_type": "B2",
         "serve.large_body": "B2", "serve.ping_under_load": "B2", "serve.bind_to_port": "B2",
         "serve.sigterm": "B1"}


@dataclass(frozen=True)
class ServeInputs:
    #: The directory mounted read-only at /opt/ml/model; None skips every serving check.
    model_dir: Path | None
    payload: Path
    content_type: str
    grace: float
    startup_timeout: float
    #: Why there is no model, when there is none.
    no_model: str = ""


@dataclass
class Served:
    """One start of ``serve`` and what waiting for /ping saw."""

    network: str
    server: Started | None = None
    prober: Prober | None = None
    start_error: str = ""
    exited: int | None = None
    ready: bool = False
    answered: bool = False
    seconds: float = 0.0
    last: str = "no answer yet"
    ok_port: int | None = None
    listening: list[list[Any]] | None = None

    def log(self) -> str:
        return self.server.log_tail() if self.server else ""


def run_checks(session: Session, facts: ImageFacts, inputs: ServeInputs) -> list[Check]:
    if inputs.model_dir is None:
        skipped = [Check(name, rule, SKIPPED, inputs.no_model) for name, rule in RULES.items()]
        problem = facts.entrypoint_problem("serve")
        if problem:  # no need to run serve to see this
            skipped[0] = Check("serve.command", "B1", FAIL, problem, fix=COMMAND_FIX)
        return skipped
    session.say("serve: docker run --network none IMAGE serve (model mounted read-only)")
    served = _serve(session, inputs, "none", {})
    checks: dict[str, Check] = {}
    if served.start_error or served.exited in NOT_FOUND_STATUSES:
        checks["serve.no_network"] = Check("serve.no_network", "B1", SKIPPED,
                                           "serve did not start; see serve.command")
    elif served.prober is None and served.exited is None:
        checks["serve.no_network"] = Check(
            "serve.no_network", "B1", SKIPPED, "the image has no Python >= 3.7 to probe a server"
            " without a network from; checked on the bridge network with ports published instead")
        _stop_quietly(served)
        served = _serve(session, inputs, "bridge", {}, publish=True)
    elif served.exited is not None:
        session.say("serve: it exited without a network; trying again on the bridge network")
        retry = _serve(session, inputs, "bridge", {})
        if retry.ready:
            checks["serve.no_network"] = Check(
                "serve.no_network", "B1", FAIL,
                f"exit {served.exited} with --network none ({last_lines(served.log(), 2)});"
                " ready with a network",
                fix="serve must start without a network: endpoints with EnableNetworkIsolation or"
                    " in a VPC have none. Bake dependencies and the model loader into the image.",
                detail=served.log())
            served = retry
        else:
            checks["serve.no_network"] = Check("serve.no_network", "B1", SKIPPED,
                                               "serve fails with a network too; see serve.command")
            _stop_quietly(retry)
    elif served.ready:
        checks["serve.no_network"] = Check(
            "serve.no_network", "B1", PASS,
            "served with --network none (probed from a container sharing its network namespace)")
    else:
        checks["serve.no_network"] = Check("serve.no_network", "B1", SKIPPED,
                                           "it never became ready; see serve.port and serve.ping")

    checks["serve.command"] = _command_check(facts, served)
    checks.update(_readiness_checks(served, inputs))
    if served.ready and served.prober is not None:
        checks.update(_http_checks(served.prober, inputs))
    else:
        why = ("serve did not start" if served.exited is not None or served.start_error
               else "the server never became ready")
        for name in NOT_READY:
            checks[name] = Check(name, RULES[name], SKIPPED, why)
    checks["serve.sigterm"] = _sigterm_check(served, inputs.grace)
    if served.ready:
        checks["serve.bind_to_port"] = _bind_to_port_check(
            session, facts, inputs, served.network, publish=isinstance(served.prober, HostProber))
    return [checks[name] for name in RULES]


def _serve(session: Session, inputs: ServeInputs, network: str, env: dict[str, str],
           publish: bool = False, port: int = PORT, other_port: int | None = None) -> Served:
    import docker.errors

    served = Served(network)
    published = {PORT: local.free_port(), BIND_PORT: local.free_port()} if publish else {}
    assert inputs.model_dir is not None
    container = session.create(
        "serve", command=["serve"], environment=env, network_mode=network,
        volumes=model_volume(inputs.model_dir),
        ports={f"{inner}/tcp": ("127.0.0.1", outer) for inner, outer in published.items()})
    try:
        served.server = session.start(container, "serve")
    except docker.errors.APIError as exc:
        served.start_error = explain(exc)
        return served
    if publish:
        served.prober = HostProber(published, inputs.payload)
    else:
        try:
            served.prober = open_sidecar(session, served.server, inputs.payload)
        except docker.errors.APIError:
            served.prober = None  # the server exited before the sidecar could join it
        if served.prober is None:
            served.exited = served.server.wait(1.0)
            return served
    served.ok_port = _wait_until_ready(served, port, inputs.startup_timeout, other_port)
    return served


def _wait_until_ready(served: Served, port: int, timeout: float,
                      other_port: int | None = None) -> int | None:
    """Poll /ping on *port* (2 s each) until 200, exit or *timeout*.

    With *other_port*, a 200 there ends the wait too; returns the port that answered 200.
    """
    assert served.server is not None and served.prober is not None
    deadline = time.monotonic() + timeout
    while True:
        status = served.server.poll()
        if status is not None:
            served.exited = status
            served.seconds = time.monotonic() - served.server.started_at
            return None
        for candidate in (port, other_port):
            if candidate is None:
                continue
            answer = served.prober.call({"op": "http", "port": candidate, "path": "/ping",
                                         "timeout": PING_TIMEOUT})
            if candidate == port:
                served.last = describe(answer)
                served.answered = served.answered or "status" in answer
            if answer.get("status") == 200:
                served.ready = candidate == port
                served.seconds = time.monotonic() - served.server.started_at
                return candidate
        if time.monotonic() > deadline:
            served.seconds = time.monotonic() - served.server.started_at
            served.listening = served.prober.call({"op": "listening"}).get("ports")
            return None
        time.sleep(0.5)


def _stop_quietly(served: Served) -> None:
    if served.server is not None and served.server.poll() is None:
        served.server.run.kill()


def _command_check(facts: ImageFacts, served: Served) -> Check:
    how = facts.describe_start("serve")
    problem = facts.entrypoint_problem("serve")
    fix = COMMAND_FIX
    if served.start_error:
        return Check("serve.command", "B1", FAIL, f"{how}: Docker could not start it:"
                     f" {served.start_error}", fix=fix)
    if served.exited is not None:
        log = served.log()
        if "Read-only file system" in log:
            fix += f" {contract.IN_CONTAINER.model_dir} is mounted read-only: write anything else to /tmp."
        return Check("serve.command", "B1", FAIL,
                     f"{how}: exit {served.exited} after {served.seconds:.1f} s, before /ping answered"
                     f" 200 ({last_lines(log)})", fix=fix, detail=log)
    if problem:
        return Check("serve.command", "B1", FAIL, f"{how}: {problem}", fix=fix)
    return Check("serve.command", "B1", PASS, f"{how}; it kept running")


def _readiness_checks(served: Served, inputs: ServeInputs) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    if served.exited is not None or served.start_error or served.prober is None:
        for name in ("serve.port", "serve.ping"):
            checks[name] = Check(name, "B2", SKIPPED, "serve did not start; see serve.command")
        return checks
    window = f"the {inputs.startup_timeout:.0f} s startup window"
    listening = served.listening or []
    on_port = [entry for entry in listening if entry[0] == PORT]
    if served.answered or (on_port and not all(loopback for _, loopback in on_port)):
        checks["serve.port"] = Check("serve.port", "B2", PASS, f"answers HTTP on port {PORT}")
    else:
        if on_port:
            saw = f"listens on 127.0.0.1:{PORT} only, where SageMaker cannot reach it"
        elif served.listening is None:  # probed from the host: the container's sockets are unseen
            saw = f"nothing answered on port {PORT} within {window}"
        else:
            ports = ", ".join(str(port) for port, _ in listening) or "no port at all"
            saw = f"nothing listened on port {PORT} within {window}; it listens on {ports}"
        checks["serve.port"] = Check(
            "serve.port", "B2", FAIL, saw,
            fix=f"Listen on 0.0.0.0:{PORT} (or on $SAGEMAKER_BIND_TO_PORT when it is set).",
            detail=served.log())
        checks["serve.ping"] = Check("serve.ping", "B2", SKIPPED, "see serve.port")
        return checks
    fix = ("GET /ping must answer 200 (an empty body will do) once the model is loaded, within the"
           " startup window (ContainerStartupHealthCheckTimeoutInSeconds) and within 2 s each time.")
    if not served.ready:
        checks["serve.ping"] = Check("serve.ping", "B2", FAIL,
                                     f"GET /ping answered {served.last} until {window} closed",
                                     fix=fix, detail=served.log())
        return checks
    assert served.prober is not None
    answers = [served.prober.call({"op": "http", "port": PORT, "path": "/ping",
                                   "timeout": PING_TIMEOUT}) for _ in range(IDLE_PINGS)]
    bad = [answer for answer in answers if not _ping_ok(answer)]
    if bad:
        checks["serve.ping"] = Check("serve.ping", "B2", FAIL,
                                     f"ready after {served.seconds:.1f} s, then {len(bad)} of"
                                     f" {IDLE_PINGS} pings failed: {describe(bad[0])}", fix=fix)
    else:
        slowest = max(float(answer["elapsed"]) for answer in answers)
        checks["serve.ping"] = Check("serve.ping", "B2", PASS,
                                     f"200 after {served.seconds:.1f} s; {IDLE_PINGS} more pings,"
                                     f" slowest {slowest:.3f} s")
    return checks


def _ping_ok(answer: dict[str, Any]) -> bool:
    return answer.get("status") == 200 and float(answer.get("elapsed", 99)) <= PING_TIMEOUT


def _invoke(prober: Prober, inputs: ServeInputs, content_type: str,
            headers: dict[str, str] | None = None, size: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"path": prober.payload_path}
    if size is not None:
        line_based = content_type.split(";")[0].strip() in ("text/csv", "application/jsonlines")
        body.update(size=size, fill="repeat" if line_based else "newlines")
    return prober.call({"op": "http", "method": "POST", "port": PORT, "path": "/invocations",
                        "headers": {"Content-Type": content_type, **(headers or {})},
                        "body": body, "timeout": INVOCATION_TIMEOUT})


#: What to change when an invocation never answers: the usual cause is a model loaded before the
#: server forks its workers, whose library started threads (they do not survive fork).
NO_ANSWER_FIX = (
    "An invocation that never answers (or a proxy's 504) is most often a model loaded in the server's"
    " master process before it forks its workers (gunicorn --preload; the template's"
    " MODEL_SERVER_PRELOAD setting): libraries that start threads when they load (XGBoost, OpenMP in"
    " PyTorch, ...) deadlock in the forked workers. Load the model after fork, in each worker, unless"
    " the model is known to be fork-safe.")


def _unanswered(answer: dict[str, Any]) -> bool:
    """No HTTP answer at all, or a gateway timeout from a proxy in front of the model."""
    return "status" not in answer or int(answer.get("status", 0)) in (0, 504)


def _ok(answer: dict[str, Any]) -> bool:
    return 200 <= int(answer.get("status", 0)) < 300


def _http_checks(prober: Prober, inputs: ServeInputs) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    kind = inputs.content_type
    plain = _invoke(prober, inputs, kind)
    if _ok(plain):
        checks["serve.invocations"] = Check(
            "serve.invocations", "B2", PASS,
            f"{describe(plain)} ({plain.get('content_type') or 'no Content-Type'}) in"
            f" {plain['elapsed']:.2f} s for {inputs.payload.name} as {kind}")
    else:
        checks["serve.invocations"] = Check(
            "serve.invocations", "B2", FAIL, f"{describe(plain)} for {inputs.payload.name} as {kind}",
            fix=NO_ANSWER_FIX if _unanswered(plain) else
            "POST /invocations must answer the sample payload with 2xx within 60 s (check"
            " --payload and --content-type).")

    if not _ok(plain):
        checks["serve.headers"] = Check("serve.headers", "B2", SKIPPED,
                                        "the plain invocation failed; see serve.invocations")
    else:
        answer = _invoke(prober, inputs, kind, SAGEMAKER_HEADERS)
        checks["serve.headers"] = Check(
            "serve.headers", "B2", PASS if _ok(answer) else FAIL,
            f"{describe(answer)} with X-Amzn-SageMaker-* headers (one of them unknown)",
            fix="" if _ok(answer) else "Ignore headers you do not know: SageMaker adds its own and"
                " passes X-Amzn-SageMaker-Custom-Attributes, -Inference-Id, -Target-Variant...")

    wrong = _invoke(prober, inputs, UNKNOWN_CONTENT_TYPE)
    status = int(wrong.get("status", 0))
    saw = f"{describe(wrong)} for Content-Type {UNKNOWN_CONTENT_TYPE}"
    if 400 <= status < 500:
        checks["serve.content_type"] = Check("serve.content_type", "B2", PASS, saw)
    elif 200 <= status < 300:
        checks["serve.content_type"] = Check(
            "serve.content_type", "B2", WARN, saw,
            fix="Refuse content types you cannot read with 415 (a 4xx), rather than guessing.")
    else:
        checks["serve.content_type"] = Check(
            "serve.content_type", "B2", FAIL, saw,
            fix="Answer a content type you cannot read with a 4xx (415), not a 5xx: a 5xx says the"
                " model is broken, a 4xx that the request is.")

    if _unanswered(plain):
        checks["serve.large_body"] = Check(
            "serve.large_body", "B2", SKIPPED,
            "the sample invocation got no answer, so the body size cannot be told apart; see"
            " serve.invocations")
        checks["serve.ping_under_load"] = _load_check(prober, inputs)
        return checks
    big = _invoke(prober, inputs, kind, size=MAX_BODY)
    status = int(big.get("status", 0))
    saw = f"{describe(big)} for a {MAX_BODY}-byte (6 MiB) body"
    limit_fix = ("Accept bodies up to 6 MiB, InvokeEndpoint's limit: raise nginx client_max_body_size"
                 " (the SageMaker example's 5m is too small) and your framework's limit.")
    if _unanswered(big):
        checks["serve.large_body"] = Check("serve.large_body", "B2", FAIL, saw, fix=NO_ANSWER_FIX)
    elif 200 <= status < 300:
        checks["serve.large_body"] = Check("serve.large_body", "B2", PASS, saw)
    elif status == 413 or not status or status >= 500:
        checks["serve.large_body"] = Check("serve.large_body", "B2", FAIL, saw, fix=limit_fix)
    else:
        checks["serve.large_body"] = Check(
            "serve.large_body", "B2", WARN, saw + " (the payload, padded)",
            fix="Make sure this refusal is about the padded content, not the size. " + limit_fix)

    checks["serve.ping_under_load"] = _load_check(prober, inputs)
    return checks


def _load_check(prober: Prober, inputs: ServeInputs) -> Check:
    ping = {"op": "http", "port": PORT, "path": "/ping", "timeout": PING_TIMEOUT}
    invoke = {"op": "http", "method": "POST", "port": PORT, "path": "/invocations",
              "headers": {"Content-Type": inputs.content_type},
              "body": {"path": prober.payload_path}, "timeout": INVOCATION_TIMEOUT}
    result = prober.call({"op": "load", "ping": ping, "invoke": invoke, **LOAD})
    if "error" in result:
        return Check("serve.ping_under_load", "B2", FAIL, str(result["error"]))
    pings: list[dict[str, Any]] = result.get("pings", [])
    invocations = ", ".join(f"{key}×{count}" for key, count in
                            sorted(result.get("invocations", {}).items()))
    bad = [answer for answer in pings if not _ping_ok(answer)]
    load = f"{LOAD['workers']} invocations kept in flight (answers: {invocations or 'none'})"
    if not pings or bad:
        first = describe(bad[0]) if bad else "no ping was sent"
        return Check("serve.ping_under_load", "B2", FAIL,
                     f"{len(bad)} of {len(pings)} pings failed with {load}: {first}",
                     fix="/ping must answer within 2 s while predictions run: do not share a lock or"
                         " a single worker with /invocations (more workers or threads).")
    slowest = max(float(answer["elapsed"]) for answer in pings)
    return Check("serve.ping_under_load", "B2", PASS,
                 f"{len(pings)} pings all 200 with {load}; slowest {slowest:.3f} s")


def _sigterm_check(served: Served, grace: float) -> Check:
    if served.server is None or served.server.poll() is not None:
        return Check("serve.sigterm", "B1", SKIPPED, "the server is not running")
    stopped, seconds, status = served.server.stop(grace)
    if not served.server.term_delivered:
        return Check("serve.sigterm", "B1", SKIPPED,
                     f"the server exited (status {status}) before SIGTERM reached it")
    if stopped:
        return Check("serve.sigterm", "B1", PASS, f"exit {status} {seconds:.1f} s after SIGTERM")
    return Check("serve.sigterm", "B1", FAIL,
                 f"still running {grace:.0f} s after SIGTERM; it needed SIGKILL",
                 fix="SageMaker sends SIGTERM and kills 30 s later: let PID 1 handle SIGTERM (exec"
                     " form, `exec` in scripts), stop accepting, drain, exit.",
                 detail=served.log())


def _bind_to_port_check(session: Session, facts: ImageFacts, inputs: ServeInputs,
                        network: str, publish: bool) -> Check:
    session.say(f"serve: again with SAGEMAKER_BIND_TO_PORT={BIND_PORT}")
    labelled = facts.labels.get(contract.BIND_TO_PORT_LABEL, "").lower() == "true"
    label = f"LABEL {contract.BIND_TO_PORT_LABEL}=true"
    served = _serve(session, inputs, network, {contract.BIND_TO_PORT_ENV: str(BIND_PORT)},
                    publish=publish, port=BIND_PORT, other_port=PORT)
    _stop_quietly(served)
    honoured = served.ready
    if honoured:
        where = f"/ping 200 on {BIND_PORT}"
    elif served.exited is not None or served.start_error:
        where = f"it exited ({last_lines(served.log(), 2)})"
    elif served.ok_port == PORT:
        where = f"it answered /ping on {PORT} instead"
    else:
        where = f"no 200 on {BIND_PORT} within {inputs.startup_timeout:.0f} s ({served.last})"
    saw = f"SAGEMAKER_BIND_TO_PORT={BIND_PORT}: {where}; label {'set' if labelled else 'missing'}"
    if honoured and labelled:
        return Check("serve.bind_to_port", "B2", PASS, saw)
    if labelled:
        return Check("serve.bind_to_port", "B2", FAIL, saw,
                     fix=f"The image says it accepts SAGEMAKER_BIND_TO_PORT ({label}): listen on"
                         " that port when it is set.", detail=served.log())
    if honoured:
        return Check("serve.bind_to_port", "B2", WARN, saw,
                     fix=f"Add {label} so SageMaker may use it in multi-container endpoints and"
                         " inference pipelines.")
    return Check("serve.bind_to_port", "B2", WARN, saw,
                 fix=f"Only single-container endpoints can use this image. To allow more, listen on"
                     f" $SAGEMAKER_BIND_TO_PORT when it is set and add {label}.")
