"""``byoc validate``: put any BYOC image through SageMaker's container contract, check by check.

:func:`validate` runs the image as SageMaker would (``docker run IMAGE train``
with no network, then ``docker run IMAGE serve`` with the model it made) and
returns a :class:`Report` of :class:`Check` results. Each check cites its
section of SageMaker's container contract (A1, B2, ... as the README lists
them). A failed check means the image breaks a rule, a warning flags a pitfall, and a skipped check could not
be judged. Every container and temp directory is removed afterwards, also on
failure and Ctrl-C.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .. import archive, contract, invoke, job
from .. import local as harness
from .._docker import docker_client, explain
from ..backends.base import LogSink
from ..errors import (
    ArchiveError,
    CannotValidateError,
    ConfigError,
    DockerUnavailableError,
)
from ..project import Project
from ..say import Say, quiet
from . import modes as mode_checks
from . import pipe as pipe_checks
from . import serve as serve_checks
from . import train as train_checks
from .common import (
    FAIL,
    PASS,
    RESULTS,
    SKIPPED,
    WARN,
    Check,
    ImageFacts,
    Session,
    human_size,
)
from .modes import MODES, ModeInputs
from .serve import ServeInputs
from .train import TrainInputs

__all__ = ["Check", "Report", "validate", "FAIL", "PASS", "SKIPPED", "WARN", "RESULTS", "MODES"]

TRAIN_GRACE = harness.TRAIN_GRACE
SERVE_GRACE = harness.SERVE_GRACE
STARTUP_TIMEOUT = harness.DEFAULT_STARTUP_TIMEOUT
TRAIN_TIMEOUT = 1800.0
PLATFORM = contract.PLATFORM
ROOT_USERS = ("", "root", "0", "0:0", "root:root")
RESULT_SHOWN = {PASS: "pass", FAIL: "FAIL", WARN: "warn", SKIPPED: "skipped"}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Report:
    """Every check's outcome for one image."""

    image: str
    checks: tuple[Check, ...]
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(check.result for check in self.checks)
        return {result: found.get(result, 0) for result in RESULTS}

    @property
    def failed(self) -> bool:
        return any(check.result == FAIL for check in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 1 when a check failed."""
        return 1 if self.failed else 0

    def check(self, name: str) -> Check:
        """The check called *name*. :raises KeyError: when there is none."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_text(self, width: int = 120) -> str:
        """The checks as a table *width* columns wide: check, result, rule, what it saw; a fix
        under each failure and warning; the counts last."""
        name_width = max(len("CHECK"), *(len(check.name) for check in self.checks))
        lead = name_width + 2 + 7 + 2 + 4 + 2
        wrap = max(40, width - lead)
        lines = [f"{'CHECK':<{name_width}}  {'RESULT':<7}  {'RULE':<4}  SAW"]
        for check in self.checks:
            saw = textwrap.wrap(check.saw, wrap) or [""]
            lines.append(f"{check.name:<{name_width}}  {RESULT_SHOWN[check.result]:<7}  "
                         f"{check.rule or '-':<4}  {saw[0]}")
            lines += [" " * lead + more for more in saw[1:]]
            if check.fix and check.result in (FAIL, WARN):
                lines += [" " * lead + part for part in textwrap.wrap(f"fix: {check.fix}", wrap)]
        counts = self.counts
        lines.append("")
        lines.append(f"{self.image}: {counts[PASS]} passed, {counts[FAIL]} failed,"
                     f" {counts[WARN]} warned, {counts[SKIPPED]} skipped in {self.seconds:.0f} s")
        return "\n".join(lines)

    def to_json(self) -> str:
        data = {"image": self.image, "result": FAIL if self.failed else PASS,
                "counts": self.counts, "seconds": round(self.seconds, 1),
                "checks": [asdict(check) for check in self.checks]}
        return json.dumps(data, indent=2) + "\n"

    def to_junit(self) -> str:
        """JUnit XML: one test case per check; warnings pass with a note in system-out."""
        counts = self.counts
        totals = {"tests": str(len(self.checks)), "failures": str(counts[FAIL]), "errors": "0",
                  "skipped": str(counts[SKIPPED]), "time": f"{self.seconds:.1f}"}
        suites = ET.Element("testsuites", {"name": "byoc validate", **totals})
        suite = ET.SubElement(suites, "testsuite", {"name": f"byoc validate {self.image}", **totals})
        for check in self.checks:
            case = ET.SubElement(suite, "testcase", name=f"{check.name} ({check.rule or '-'})",
                                 classname=f"byoc.validate.{check.name.split('.')[0]}")
            text = "\n".join(part for part in (check.saw, _fix_line(check), check.detail) if part)
            if check.result == FAIL:
                failure = ET.SubElement(case, "failure", message=_xml(check.saw),
                                        type=check.rule or "check")
                failure.text = _xml(text)
            elif check.result == SKIPPED:
                ET.SubElement(case, "skipped", message=_xml(check.saw))
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _xml(("warning: " if check.result == WARN else "") + text)
        ET.indent(suites)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _fix_line(check: Check) -> str:
    return f"fix: {check.fix}" if check.fix else ""


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class Defaults:
    """What a byoc project's ``local_test`` offers as inputs."""

    channels: dict[str, Path]
    hyperparameters: dict[str, Any]
    content_types: dict[str, str]
    payload: Path | None
    model: Path | None

    @classmethod
    def of(cls, project: Project | None) -> Defaults:
        if project is None:
            return cls({}, {}, {}, None, None)
        inputs = project.local_inputs()
        return cls(inputs.channels, inputs.hyperparameters, inputs.content_types, project.payload,
                   project.latest_model)


def validate(image: str | None, *, project: Project | None = None,
             channels: Mapping[str, Path] | None = None,
             hyperparameters: Mapping[str, Any] | None = None,
             content_types: Mapping[str, str] | None = None,
             payload: Path | None = None, content_type: str | None = None,
             model: Path | None = None, train: bool = True, serve: bool = True,
             bad_hyperparameter: tuple[str, str] | None = None,
             train_grace: float = TRAIN_GRACE, serve_grace: float = SERVE_GRACE,
             startup_timeout: float = STARTUP_TIMEOUT, train_timeout: float = TRAIN_TIMEOUT,
             say: Say = quiet, container_log: LogSink | None = None,
             environ: Mapping[str, str] | None = None, modes: Sequence[str] = (),
             memory: int | None = None) -> Report:
    """Run *image* through the contract's checks and report each one (None: a missing IMAGE,
    named in the same error as any other missing input).

    Channels, hyperparameters (merged under *hyperparameters*), content types
    and the payload default to *project*'s ``local_test``. Serving uses the
    model the training run wrote, or *model* (a directory or model.tar.gz),
    or with ``train=False`` the project's last local job's model.

    :param train_grace: seconds from SIGTERM to SIGKILL for train (SageMaker: 120).
    :param serve_grace: the same for serve (SageMaker: 30).
    :param startup_timeout: how long /ping may take to answer 200.
    :param train_timeout: how long one training run may take.
    :param modes: hosting modes to check (:data:`MODES`, or ``all``) instead of training and
        serving; they serve *model* (or the project's last local job's model).
    :param memory: MB of memory for the serverless check (default 1024) and, given, the limit
        under which the multi-model check loads copies of the model until it answers 507.
    :raises ConfigError: for a missing or unusable input; nothing was started.
    :raises CannotValidateError: when no engine answers or the image is not there.
    :raises Interrupted: on Ctrl-C or SIGTERM, after everything was removed.
    """
    if modes:
        return _validate_modes(image, project=project, payload=payload,
                               content_type=content_type, model=model, modes=modes,
                               memory=memory, startup_timeout=startup_timeout, say=say,
                               container_log=container_log, environ=environ)
    if memory is not None:
        raise ConfigError("--memory goes with --mode serverless or multi-model")
    if not train and not serve:
        raise ConfigError("nothing to check: --train-only and --serve-only exclude each other")
    defaults = Defaults.of(project)
    image = _check_given(image, defaults, train=train, serve=serve, channels=channels,
                         payload=payload, model=model)
    train_inputs = _train_inputs(defaults, channels, hyperparameters, content_types,
                                 bad_hyperparameter, train_grace, train_timeout) if train else None
    serve_inputs: ServeInputs | None = None
    if serve:
        sample, kind = _payload(defaults, payload, content_type)
        if not train:
            model = model or defaults.model
            if model is None:
                raise ConfigError("serving alone needs a model: pass --model (a model.tar.gz or a"
                                  " directory), or check training too")
        if model is not None and not model.exists():
            raise ConfigError(f"--model {model} does not exist")
        model = model.resolve() if model is not None else None  # a bind mount needs a full path
        serve_inputs = ServeInputs(model_dir=model, payload=sample, content_type=kind,
                                   grace=serve_grace, startup_timeout=startup_timeout)
    return _checked(image, say, container_log, environ,
                    lambda session, facts: _run(session, facts, train_inputs, serve_inputs))


def _checked(image: str, say: Say, container_log: LogSink | None,
             environ: Mapping[str, str] | None,
             run: Callable[[Session, ImageFacts], list[Check]]) -> Report:
    """*run*'s checks of *image* in a session whose containers are all removed afterwards."""
    import docker.errors

    try:
        client = docker_client(environ)
    except DockerUnavailableError as exc:
        raise CannotValidateError(f"cannot validate {image}: no Docker engine answers; start one",
                                  detail=exc.detail) from exc
    try:
        facts = _inspect(client, image)
        started = time.monotonic()
        session = Session(client, image, say, container_log)
        try:
            with harness.sigterm_interrupts():
                checks = run(session, facts)
        except KeyboardInterrupt as exc:
            raise harness.interrupted("validation interrupted: every container it started was"
                                      " removed", exc) from None
        except docker.errors.APIError as exc:
            raise CannotValidateError(f"Docker failed during the checks: {explain(exc)}"
                                      ) from exc
        finally:
            session.close()
    finally:
        client.close()
    return Report(image, tuple(checks), time.monotonic() - started)


def _validate_modes(image: str | None, *, project: Project | None, payload: Path | None,
                    content_type: str | None, model: Path | None, modes: Sequence[str],
                    memory: int | None, startup_timeout: float, say: Say,
                    container_log: LogSink | None, environ: Mapping[str, str] | None) -> Report:
    """The hosting modes' checks (see :mod:`byoc.validate.modes`)."""
    wanted = mode_checks.parse_modes(modes)
    defaults = Defaults.of(project)
    image = _check_given(image, defaults, train=False, serve=True, channels=None,
                         payload=payload, model=model)
    sample, kind = _payload(defaults, payload, content_type)
    model = model or defaults.model
    if model is None:  # not reached: _check_given names a missing model
        raise ConfigError("--mode needs a model: pass --model (a model.tar.gz or a directory)")
    if not model.exists():
        raise ConfigError(f"--model {model} does not exist")
    if memory is not None and not {"serverless", "multi-model"} & set(wanted):
        raise ConfigError("--memory goes with --mode serverless or multi-model")
    if memory is not None:
        sizes = contract.SERVERLESS_MEMORY_MB
        if "serverless" in wanted and memory not in sizes:
            raise ConfigError(f"--memory {memory}: a serverless endpoint has"
                              f" {', '.join(map(str, sizes))} MB (MemorySizeInMB)")
        if memory < 6:
            raise ConfigError(f"--memory {memory}: Docker needs at least 6 MB")
    model = model.resolve()

    def run(session: Session, facts: ImageFacts) -> list[Check]:
        model_dir = _extract(session, model) if model.is_file() else model
        inputs = ModeInputs(model_dir=model_dir, payload=sample, content_type=kind,
                            startup_timeout=startup_timeout, memory_mb=memory)
        return _image_checks(facts) + mode_checks.run_checks(session, facts, inputs, wanted)

    return _checked(image, say, container_log, environ, run)


def _run(session: Session, facts: ImageFacts, train_inputs: TrainInputs | None,
         serve_inputs: ServeInputs | None) -> list[Check]:
    checks = _image_checks(facts)
    if train_inputs is not None:
        outcome = train_checks.run_checks(session, facts, train_inputs)
        checks += outcome.checks
        if outcome.model_dir is not None:  # training works in File mode: try Pipe mode too
            checks.append(pipe_checks.run_check(session, train_inputs))
        if serve_inputs is not None and serve_inputs.model_dir is None:
            no_model = "training wrote no model to serve; fix training or pass --model"
            serve_inputs = replace(serve_inputs, model_dir=outcome.model_dir, no_model=no_model)
    if serve_inputs is not None:
        if serve_inputs.model_dir is not None and serve_inputs.model_dir.is_file():
            serve_inputs = replace(serve_inputs,
                                   model_dir=_extract(session, serve_inputs.model_dir))
        checks += serve_checks.run_checks(session, facts, serve_inputs)
    return checks


def _extract(session: Session, model: Path) -> Path:
    target = session.scratch / "model"
    try:
        archive.extract(model, target)
    except ArchiveError as exc:
        raise ConfigError(f"--model {model}: {exc.message}") from exc
    return target


def _inspect(client: Any, image: str) -> ImageFacts:
    import docker.errors

    try:
        return ImageFacts.inspect(client.images.get(image), image)
    except docker.errors.ImageNotFound:
        raise CannotValidateError(f"image {image} is not in the local Docker engine; build it (byoc"
                                  " build) or pull it first") from None
    except docker.errors.APIError as exc:
        raise CannotValidateError(f"cannot inspect {image}: {explain(exc)}") from exc


def _check_given(image: str | None, defaults: Defaults, *, train: bool, serve: bool,
                 channels: Mapping[str, Path] | None, payload: Path | None,
                 model: Path | None) -> str:
    """Name every input that is missing in one error, when more than one is or IMAGE is (a
    single missing option gets its own message where it is read).

    :returns: *image*, known to be given.
    :raises ConfigError:
    """
    missing = [] if image is not None else ["IMAGE (the image to check)"]
    if train and not channels and not defaults.channels:
        missing.append("--channel NAME=PATH (training's input)")
    if serve and payload is None and defaults.payload is None:
        missing.append("--payload FILE (a sample request for serving)")
    if serve and not train and model is None and defaults.model is None:
        missing.append("--model (the model to serve)")
    if image is None and len(missing) == 1:
        raise ConfigError("missing IMAGE (the image to check): pass it, e.g. byoc validate"
                          " <name>:latest after byoc build")
    if len(missing) > 1:
        halves = ", or check one half with --train-only or --serve-only" if train and serve else ""
        where = (" (a byoc project has all but IMAGE: local_test, its last local job)"
                 if image is None else
                 ", or run inside a byoc project, which has them (local_test, its last local job)")
        raise ConfigError(f"missing {', '.join(missing[:-1])} and {missing[-1]}: pass them{where}"
                          + halves)
    if image is None:  # not reached: a missing IMAGE is always in *missing*
        raise ConfigError("missing IMAGE (the image to check)")
    return image


def _train_inputs(defaults: Defaults, channels: Mapping[str, Path] | None,
                  hyperparameters: Mapping[str, Any] | None, content_types: Mapping[str, str] | None,
                  bad: tuple[str, str] | None, grace: float, timeout: float) -> TrainInputs:
    sources = dict(channels) if channels else dict(defaults.channels)
    if not sources:
        raise ConfigError("checking training needs channels: pass --channel NAME=PATH (or run inside"
                          " a byoc project, whose local_test/test_dir/input/data has them), or"
                          " --serve-only")
    merged = {**defaults.hyperparameters, **(hyperparameters or {})}
    # the job every training check runs: built and checked as any training job is
    definition, _ = job.from_project(
        None, channels={name: str(path) for name, path in sources.items()}, hyperparameters=merged,
        content_types={**defaults.content_types, **(content_types or {})},
        base_name="byoc-validate")
    if bad is not None:
        if not bad[0]:
            raise ConfigError("--bad-hyperparameter takes KEY=VALUE")
        definition.with_hyperparameters(dict([bad]))  # a value the job may be given at all
    return TrainInputs(definition, bad_hyperparameter=bad, grace=grace, timeout=timeout)


def _payload(defaults: Defaults, payload: Path | None, content_type: str | None) -> tuple[Path, str]:
    sample = payload or defaults.payload
    if sample is None:
        raise ConfigError("checking serving needs a sample request: pass --payload FILE"
                          " --content-type TYPE (or run inside a byoc project with"
                          " local_test/payload.*), or --train-only")
    if not sample.is_file():
        raise ConfigError(f"--payload {sample} is not a file")
    if sample.stat().st_size > contract.MAX_PAYLOAD_BYTES:
        raise ConfigError(f"--payload {sample} is over 6 MiB, more than SageMaker sends")
    return sample, content_type or invoke.guess_content_type(sample)


def _image_checks(facts: ImageFacts) -> list[Check]:
    platform = f"{facts.os}/{facts.architecture}"
    checks = [
        Check("image.platform", "D", PASS, platform) if platform == PLATFORM else
        Check("image.platform", "D", FAIL, platform,
              fix=f"Build for {PLATFORM} (docker build --platform {PLATFORM}): SageMaker's training"
                  " and most hosting instances are x86_64."),
        Check("image.size", "", PASS, f"{human_size(facts.size)} uncompressed"),
    ]
    if facts.user in ROOT_USERS:
        checks.append(Check("image.user", "A1", PASS, "runs as root"))
    else:
        checks.append(Check(
            "image.user", "A1", WARN, f"runs as USER {facts.user}",
            fix="SageMaker expects containers to run as root; a non-root user often meets"
                f" 'Permission denied' on {contract.CONTAINER_ROOT} (model, output, checkpoints) or on train"
                " itself."))
    return checks
