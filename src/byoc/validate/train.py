"""The training half of ``byoc validate``: ``docker run IMAGE train``, as SageMaker runs it.

Up to four runs of ``train``, each on a fresh /opt/ml tree that byoc's
contract module writes (channels read-only):
1. the main run with ``--network none``, which must exit 0 and fill /opt/ml/model;
2. only if that run failed: the same run on the default bridge network, to tell
   "needs the network" from "fails";
3. a run with one bad hyperparameter value, which must fail with a reason in
   /opt/ml/output/failure;
4. a run stopped with SIGTERM after its first log line, which must exit
   within the grace period (120 s on SageMaker).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .. import contract
from .._docker import explain
from ..backends.docker import training_mounts
from ..job import JobDefinition
from ..local import staging
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
    first_line,
    human_size,
    last_lines,
)

#: The value given to a hyperparameter the image should refuse.
BAD_VALUE = "byoc-validate: not a valid value"
#: SIGTERM goes out this long after the first log line (or after SETTLE_SECONDS of silence).
SETTLE_SECONDS = 10.0
#: Changes ``docker diff`` may show outside /opt/ml that do not matter.
IGNORED_PREFIXES = ("/tmp", "/var/tmp", "/run", "/var/run", "/dev", "/proc", "/sys", "/var/cache",
                    contract.CONTAINER_ROOT)
IGNORED_PARTS = (".cache", "__pycache__")
#: The container's paths, for messages.
ROOT = contract.CONTAINER_ROOT
MODEL = contract.IN_CONTAINER.model_dir.as_posix()
FAILURE = contract.IN_CONTAINER.failure_file.as_posix()
OUTPUT = contract.IN_CONTAINER.output_dir.as_posix()
DATA = contract.IN_CONTAINER.data_dir.as_posix()
OUTPUT_DATA = contract.IN_CONTAINER.output_data_dir.as_posix()


@dataclass(frozen=True)
class TrainInputs:
    """The training checks' job (its channels, content types and hyperparameters, built by
    :func:`byoc.job.from_project`) and how the checks run it."""

    job: JobDefinition
    bad_hyperparameter: tuple[str, str] | None
    grace: float
    timeout: float


@dataclass(frozen=True)
class TrainOutcome:
    checks: list[Check]
    #: The /opt/ml/model the main run filled, when it did.
    model_dir: Path | None


@dataclass
class TrainRun:
    tree: contract.OptMl
    network: str
    status: int | None = None
    start_error: str = ""
    timed_out: bool = False
    seconds: float = 0.0
    log: str = ""
    diff: list[dict[str, Any]] | None = None

    @property
    def failure(self) -> str | None:
        return contract.read_failure(self.tree.root)

    def model_files(self) -> list[Path]:
        return sorted(p for p in self.tree.model_dir.rglob("*") if p.is_file())

    def wrote_anything(self) -> bool:
        config = self.tree.config_dir
        return any(p.is_file() and config not in p.parents for p in self.tree.root.rglob("*"))

    def exit_text(self) -> str:
        if self.timed_out:
            return f"still running after {self.seconds:.0f} s"
        return f"exit {self.status} after {self.seconds:.1f} s"


def run_checks(session: Session, facts: ImageFacts, inputs: TrainInputs) -> TrainOutcome:
    names = ["train.command", "train.no_network", "train.succeeds", "train.model", "train.writes",
             "train.failure", "train.sigterm"]
    session.say("train: docker run --network none IMAGE train")
    main = _run(session, inputs, inputs.job, "none")
    command, ran = _command_check(facts, main)
    checks = [command]
    if not ran:
        return TrainOutcome(checks + _skipped(names[1:], "train did not run (see train.command)"),
                            None)

    if main.status == 0:
        checks.append(Check("train.no_network", "A1", PASS, "trained with --network none"))
    elif main.timed_out:
        checks.append(Check("train.no_network", "A1", SKIPPED,
                            "the run without a network did not finish; see train.succeeds"))
    else:
        session.say("train: it failed without a network; trying again on the bridge network")
        retry = _run(session, inputs, inputs.job, "bridge")
        if retry.status == 0:
            checks.append(Check(
                "train.no_network", "A1", FAIL,
                f"{main.exit_text()} with --network none ({_why(main)}); exit 0 with a network",
                fix="train must not need the network: SageMaker runs jobs with EnableNetworkIsolation"
                    " and in VPCs without internet. Bake dependencies into the image and read data"
                    f" from {DATA}.", detail=main.log))
            main = retry
        else:
            checks.append(Check("train.no_network", "A1", SKIPPED,
                                "train fails with a network too; see train.succeeds"))

    checks.append(_succeeds_check(main))
    checks.append(_model_check(main))
    checks.append(_writes_check(main))
    checks.append(_failure_check(session, inputs, main.network))
    checks.append(_sigterm_check(session, inputs, main.network))
    return TrainOutcome(checks, main.tree.model_dir if main.status == 0 and main.model_files()
                        else None)


def _skipped(names: list[str], why: str) -> list[Check]:
    rules = {"train.no_network": "A1", "train.succeeds": "A6", "train.model": "A2",
             "train.writes": "A2", "train.failure": "A6", "train.sigterm": "A1"}
    return [Check(name, rules[name], SKIPPED, why) for name in names]


def _launch(session: Session, definition: JobDefinition,
            network: str) -> tuple[TrainRun, Started | None]:
    """Stage *definition* as one host's /opt/ml and start ``train`` on it."""
    job = session.tree(session.name("train"))
    sources = {channel.name: Path(channel.source) for channel in definition.channels}
    specs, _ = staging.stage_hosts(job, ["algo-1"], definition.contract_channels(), sources,
                                   definition.hyperparameters)
    host = specs[0]
    job_name = f"byoc-validate-{session.id}"
    env = contract.job_env(job_name)
    container = session.create("train", command=["train"], hostname=host.host, environment=env,
                               mounts=training_mounts(host), network_mode=network)
    run = TrainRun(contract.OptMl(host.root), network)
    import docker.errors

    try:
        return run, session.start(container, "train")
    except docker.errors.APIError as exc:
        run.start_error = explain(exc)
        return run, None


def _run(session: Session, inputs: TrainInputs, definition: JobDefinition,
         network: str) -> TrainRun:
    run, started = _launch(session, definition, network)
    if started is None:
        return run
    run.status = started.wait(inputs.timeout)
    run.seconds = time.monotonic() - started.started_at
    if run.status is None:
        run.timed_out = True
        started.stop(inputs.grace)
    run.log = started.log_tail()
    run.diff = started.diff()
    return run


def _command_check(facts: ImageFacts, run: TrainRun) -> tuple[Check, bool]:
    """train.command, and whether ``train`` ran at all."""
    how = facts.describe_start("train")
    problem = facts.entrypoint_problem("train")
    fix = ("Use no ENTRYPOINT and an executable file named `train` on PATH (chmod +x, with a #! line),"
           " or an exec-form ENTRYPOINT [\"prog\"] that takes `train` as its first argument. Do not"
           " use tini or a shell-form ENTRYPOINT.")
    if run.start_error:
        return Check("train.command", "A1", FAIL, f"{how}: Docker could not start it:"
                     f" {run.start_error}", fix=fix), False
    if run.status in NOT_FOUND_STATUSES:
        return Check("train.command", "A1", FAIL, f"{how}: exit {run.status} ({last_lines(run.log)})",
                     fix=fix, detail=run.log), False
    silent = not run.wrote_anything() and (run.timed_out or run.status != 0)
    if facts.entrypoint and silent:
        saw = (f"{how}: {run.exit_text()} without writing anything under {ROOT}: `train` did not"
               " run, or died before it could say why" + (f"; {problem}" if problem else ""))
        return Check("train.command", "A1", FAIL, saw, fix=fix, detail=run.log), False
    if problem:
        return Check("train.command", "A1", FAIL, f"{how}: {problem} (this run: {run.exit_text()})",
                     fix=fix, detail=run.log), True
    return Check("train.command", "A1", PASS, f"{how}; it ran ({run.exit_text()})"), True


def _why(run: TrainRun) -> str:
    reason = first_line(run.failure)
    return f"FailureReason {reason!r}" if reason else (last_lines(run.log, 1) or "no log")


def _succeeds_check(run: TrainRun) -> Check:
    if run.status == 0:
        return Check("train.succeeds", "A6", PASS,
                     f"exit 0 after {run.seconds:.1f} s on channels {', '.join(_channels(run))}")
    fix = "Make train succeed on these channels (its log is below)."
    if "Read-only file system" in run.log:
        fix += (" The channels are mounted read-only (as in FastFile mode): write to /tmp or"
                f" {OUTPUT_DATA} instead.")
    if run.timed_out:
        fix = ("Training must end by itself; validate it on small channels, or raise"
               " --train-timeout.")
    return Check("train.succeeds", "A6", FAIL, f"{run.exit_text()}; {_why(run)}", fix=fix,
                 detail=run.log)


def _channels(run: TrainRun) -> list[str]:
    return sorted(p.name for p in run.tree.data_dir.iterdir()) if run.tree.data_dir.is_dir() else []


def _model_check(run: TrainRun) -> Check:
    if run.status != 0:
        return Check("train.model", "A2", SKIPPED, "training did not succeed")
    files = run.model_files()
    if files:
        shown = ", ".join(f"{p.relative_to(run.tree.model_dir)} ({human_size(p.stat().st_size)})"
                          for p in files[:3])
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        return Check("train.model", "A2", PASS, f"{MODEL} holds {shown}{more}")
    elsewhere = _outside(run.diff or [])
    where = f"; it wrote {', '.join(elsewhere[:3])}" if elsewhere else ""
    return Check("train.model", "A2", FAIL, f"exit 0 but {MODEL} is empty{where}",
                 fix=f"Save the trained model under {MODEL}: SageMaker uploads only that"
                     " directory, as model.tar.gz, and serving finds it there.")


def _writes_check(run: TrainRun) -> Check:
    paths = _outside(run.diff or [])
    if not paths:
        return Check("train.writes", "A2", PASS,
                     f"nothing written outside {ROOT} (docker diff, ignoring /tmp and caches)")
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return Check("train.writes", "A2", WARN, f"wrote outside {ROOT}: {shown}",
                 fix=f"Files outside {MODEL} and {OUTPUT} are lost when the job ends:"
                     f" write artifacts to {MODEL}, other output to {OUTPUT_DATA}.")


def _outside(diff: list[dict[str, Any]]) -> list[str]:
    """Leaf paths ``docker diff`` reports outside /opt/ml, temp dirs and caches."""
    paths = sorted(str(change.get("Path", "")) for change in diff)
    kept = []
    for index, path in enumerate(paths):
        pure = PurePosixPath(path)
        if any(path == prefix or path.startswith(prefix + "/") for prefix in IGNORED_PREFIXES):
            continue
        if any(part in IGNORED_PARTS for part in pure.parts) or pure.suffix == ".pyc":
            continue
        if ROOT.startswith(path + "/") or path == "/":
            continue  # a parent of the /opt/ml mount point
        following = paths[index + 1] if index + 1 < len(paths) else ""
        if following.startswith(path + "/"):
            continue  # a directory whose contents changed: report those instead
        kept.append(path)
    return kept


def _bad_hyperparameter(inputs: TrainInputs) -> tuple[str, str] | None:
    if inputs.bad_hyperparameter is not None:
        return inputs.bad_hyperparameter
    for key in sorted(inputs.job.hyperparameters):
        if not key.startswith("sagemaker_"):
            return key, BAD_VALUE
    return None


def _failure_check(session: Session, inputs: TrainInputs, network: str) -> Check:
    bad = _bad_hyperparameter(inputs)
    if bad is None:
        return Check("train.failure", "A6", SKIPPED,
                     "no hyperparameter to give a bad value to; pass --hyperparameter K=V or"
                     " --bad-hyperparameter K=V")
    key, value = bad
    session.say(f"train: with the bad hyperparameter {key}={value!r}")
    run = _run(session, inputs, inputs.job.with_hyperparameters({key: value}), network)
    given = f"{key}={value!r}"
    if run.status == 0 or run.timed_out:
        return Check("train.failure", "A6", WARN, f"with {given}: {run.exit_text()}: it was accepted",
                     fix="Check hyperparameters first and fail with a reason, or name a value it"
                         " must refuse with --bad-hyperparameter K=V.")
    reason = run.failure
    if reason is None:
        misplaced = _misplaced_failure_files(run)
        found = f"; found {', '.join(misplaced)}" if misplaced else ""
        return Check("train.failure", "A6", FAIL,
                     f"with {given}: exit {run.status}, but no {FAILURE}{found}",
                     fix=f"On failure write the reason, key line first, to {FAILURE}"
                         " (its first 1024 characters become FailureReason), then exit non-zero.",
                     detail=run.log)
    line = reason.splitlines()[0].strip() if reason.strip() else ""
    if not line or line.startswith("Traceback"):
        shown = "the failure file is empty" if not reason.strip() else f"its first line is {line!r}"
        return Check("train.failure", "A6", WARN, f"with {given}: exit {run.status}; {shown}",
                     fix=f"Put the reason on the first line of {FAILURE} (a traceback"
                         " may follow): only the first 1024 characters reach FailureReason.",
                     detail=reason)
    return Check("train.failure", "A6", PASS, f"with {given}: exit {run.status}; FailureReason"
                 f" {first_line(line)!r}")


def _misplaced_failure_files(run: TrainRun) -> list[str]:
    found = [f"{ROOT}/{p.relative_to(run.tree.root).as_posix()}"
             for p in run.tree.root.rglob("*failure*") if p.is_file()]
    found += [path for path in _outside(run.diff or []) if "failure" in PurePosixPath(path).name]
    # /opt/ml/<x> outside SageMaker's mounts lands in the container's own layer
    found += [path for path in (str(change.get("Path", "")) for change in run.diff or [])
              if path.startswith(contract.CONTAINER_ROOT + "/") and "failure" in PurePosixPath(path).name]
    return sorted(set(found))


def _sigterm_check(session: Session, inputs: TrainInputs, network: str) -> Check:
    session.say("train: stopping a run with SIGTERM")
    run, started = _launch(session, inputs.job, network)
    if started is None:
        return Check("train.sigterm", "A1", SKIPPED, f"train did not start: {run.start_error}")
    deadline = time.monotonic() + SETTLE_SECONDS
    while started.poll() is None and not started.has_logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    status = started.poll()
    if status is not None:
        return Check("train.sigterm", "A1", SKIPPED,
                     f"train finished (exit {status}) before SIGTERM could be sent; give it"
                     " channels that take longer to check this")
    stopped, seconds, status = started.stop(inputs.grace)
    if not started.term_delivered:
        return Check("train.sigterm", "A1", SKIPPED,
                     f"train finished (exit {status}) before SIGTERM reached it; give it"
                     " channels that take longer to check this")
    if stopped:
        reason = first_line(run.failure)
        noted = f"; FailureReason {reason!r}" if reason else ""
        return Check("train.sigterm", "A1", PASS,
                     f"exit {status} {seconds:.1f} s after SIGTERM{noted}")
    return Check("train.sigterm", "A1", FAIL,
                 f"still running {inputs.grace:.0f} s after SIGTERM (sent after its first log line);"
                 " it needed SIGKILL",
                 fix="SageMaker stops a job with SIGTERM and kills it 120 s later. Let PID 1 be your"
                     " program (exec form, `exec` in scripts) and handle SIGTERM: save what you can,"
                     f" write {FAILURE}, exit. A PID 1 without a handler ignores it.",
                 detail=started.log_tail())
