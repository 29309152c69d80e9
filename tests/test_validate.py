"""byoc validate: good images pass every check, and each broken image fails exactly its own.

The broken images come from tests/fixtures/validate/: ``common/`` is a hand-written
image (stdlib Python, real nginx) that behaves well, and each case directory is a
two-line Dockerfile FROM it that sets BYOC_CASE, the one thing it breaks. They are
built once per session and removed afterwards. Grace periods and the startup window
are short here. The defaults (120 s, 30 s and 240 s) are the contract's.
"""

from __future__ import annotations

import json
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import images
from byoc.cli import cli
from byoc.errors import ConfigError, Interrupted
from byoc.project import Project
from byoc.validate import Report, validate
from byoc.validate.common import FAIL, PASS, SKIPPED, WARN, Check, ImageFacts
from byoc.validate.train import _outside
from helpers import FIXTURES, build_project

HERE = FIXTURES / "validate"
CHANNELS = {"training": HERE / "data" / "training"}
PAYLOAD = HERE / "data" / "payload.csv"
MODEL = HERE / "model"
FAST = {"train_grace": 3.0, "serve_grace": 5.0, "startup_timeout": 10.0, "train_timeout": 30.0}
ALL_CHECKS = {
    "image.platform", "image.size", "image.user",
    "train.command", "train.no_network", "train.succeeds", "train.model", "train.writes",
    "train.failure", "train.sigterm", "train.pipe",
    "serve.command", "serve.no_network", "serve.port", "serve.ping", "serve.invocations",
    "serve.headers", "serve.content_type", "serve.large_body", "serve.ping_under_load",
    "serve.bind_to_port", "serve.sigterm",
}
#: case: (check training, check serving, {failing check: (rule, words in what it saw)})
BROKEN = {
    "tini_entrypoint": (True, True, {"train.command": ("A1", "runs tini"),
                                     "serve.command": ("B1", "runs tini")}),
    "needs_network": (True, True, {"train.no_network": ("A1", "Network is unreachable"),
                                   "serve.no_network": ("B1", "Network is unreachable")}),
    "failure_wrong_path": (True, False, {"train.failure": ("A6", "found /opt/ml/failure")}),
    "ignores_sigterm": (True, False, {"train.sigterm": ("A1", "needed SIGKILL")}),
    "port_5000": (False, True, {"serve.port": ("B2", "it listens on 5000")}),
    "ping_404": (False, True, {"serve.ping": ("B2", "HTTP 404")}),
    "ping_blocks": (False, True, {"serve.ping_under_load": ("B2", "no answer within 2 s")}),
    "body_limit_5m": (False, True, {"serve.large_body": ("B2", "HTTP 413")}),
}


@pytest.fixture(scope="session")
def validate_images(docker_client: Any, base_image: str) -> Iterator[dict[str, str]]:
    """The common fixture image, every broken case on top of it, and the hand-written image."""
    run = uuid.uuid4().hex[:8]
    built: list[str] = []

    def build(context: Path, name: str, args: dict[str, str]) -> str:
        tag = f"byoc-test-validate-{name.replace('_', '-')}:{run}"
        images.build(context, tag=tag, build_args=args, network="host", log=lambda line: None)
        built.append(tag)
        return tag

    try:
        common = build(HERE / "common", "common", {"BASE_IMAGE": base_image})
        tags = {case: build(HERE / case, case, {"FIXTURE_BASE": common})
                for case in [*BROKEN, "python_off_path"]}
        tags["common"] = common
        tags["handwritten"] = build_project(HERE / "handwritten", f"byoc-test-validate-hw:{run}",
                                            base_image)
        built.append(tags["handwritten"])
        yield tags
    finally:
        for tag in reversed(built):
            docker_client.images.remove(tag, force=True)


@pytest.fixture
def nothing_left_behind(docker_client: Any) -> Iterator[None]:
    """After the test: no container a check started, no scratch directory."""
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("byoc-validate-*"))
    yield
    left = docker_client.containers.list(all=True, ignore_removed=True,
                                         filters={"label": "com.byoc.validate"})
    assert [container.name for container in left] == []
    assert set(scratch.glob("byoc-validate-*")) - before == set()


def _not_passed(report: Report) -> dict[str, str]:
    return {check.name: check.result for check in report.checks if check.result != PASS}


def _failed(report: Report) -> set[str]:
    return {check.name for check in report.checks if check.result == FAIL}


@pytest.mark.docker
def test_the_default_template_passes_every_check(default_image: str, default_project: Path,
                                                 nothing_left_behind: None) -> None:
    report = validate(default_image, project=Project.load(default_project),
                      **{**FAST, "startup_timeout": 120.0})
    assert {check.name for check in report.checks} == ALL_CHECKS
    not_passed = _not_passed(report)
    # train.sigterm is skipped when the template's tiny job ends before SIGTERM could be sent
    assert not_passed in ({}, {"train.sigterm": SKIPPED}), report.to_text()
    assert report.exit_code == 0
    assert "FailureReason" in report.check("train.failure").saw
    assert "--network none" in report.check("serve.no_network").saw


@pytest.mark.docker
def test_the_fixture_base_passes_every_check(validate_images: dict[str, str],
                                             nothing_left_behind: None) -> None:
    """The control for the broken cases: what they break works here."""
    report = validate(validate_images["common"], channels=CHANNELS,
                      hyperparameters={"epochs": "2"}, payload=PAYLOAD, **FAST)
    assert _not_passed(report) == {}, report.to_text()
    assert report.check("train.sigterm").saw.startswith("exit 143")
    assert "FailureReason 'stopped by SIGTERM'" in report.check("train.sigterm").saw


@pytest.mark.docker
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_image_fails_exactly_its_check(case: str, validate_images: dict[str, str],
                                                nothing_left_behind: None) -> None:
    train, serve, expected = BROKEN[case]
    report = validate(validate_images[case], channels=CHANNELS, hyperparameters={"epochs": "2"},
                      payload=PAYLOAD, model=MODEL if serve else None, train=train, serve=serve,
                      **FAST)
    assert _failed(report) == set(expected), report.to_text()
    assert report.exit_code == 1
    for name, (rule, words) in expected.items():
        check = report.check(name)
        assert check.rule == rule
        assert words in check.saw, check
        assert check.fix


@pytest.mark.docker
def test_without_python_the_server_is_probed_over_a_published_port(
        validate_images: dict[str, str], nothing_left_behind: None) -> None:
    report = validate(validate_images["python_off_path"], payload=PAYLOAD, model=MODEL, train=False,
                      **FAST)
    assert _not_passed(report) == {"serve.no_network": SKIPPED}, report.to_text()
    assert "no Python" in report.check("serve.no_network").saw
    assert report.check("serve.bind_to_port").saw.startswith("SAGEMAKER_BIND_TO_PORT=8180: /ping 200")


@pytest.mark.docker
def test_a_hand_written_image_passes_through_the_cli(validate_images: dict[str, str],
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     nothing_left_behind: None) -> None:
    monkeypatch.chdir(tmp_path)  # no byoc project around: every input is given
    result = CliRunner().invoke(cli, [
        "validate", validate_images["handwritten"], "--channel", f"training={CHANNELS['training']}",
        "--hyperparameter", "scale=2", "--payload", str(PAYLOAD), "--content-type", "text/csv",
        "--json", "report.json", "--junit", "report.xml", "--train-grace", "3",
        "--serve-grace", "5", "--startup-timeout", "10"])
    assert result.exit_code == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()
            if line.startswith(("image.", "train.", "serve."))}
    assert set(rows) == ALL_CHECKS
    assert {name: shown for name, shown in rows.items() if shown != "pass"} == {
        "serve.bind_to_port": "warn", "train.pipe": "warn"}
    assert "this image supports File mode only" in result.stdout
    assert "fix: Add LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" \
        in " ".join(result.stdout.split())

    data = json.loads((tmp_path / "report.json").read_text())
    assert data["result"] == "pass" and data["counts"] == {"pass": 20, "fail": 0, "warn": 2,
                                                           "skipped": 0}
    checks = {check["name"]: check for check in data["checks"]}
    assert checks["train.command"]["saw"].startswith("ENTRYPOINT ['python3', '/opt/app/main.py']")
    assert checks["serve.bind_to_port"]["result"] == "warn"

    suite = ET.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("22", "0", "0")
    warned = [case for case in suite.iter("testcase") if case.get("name", "").startswith(
        "serve.bind_to_port")]
    assert warned[0].findtext("system-out", "").startswith("warning: ")


@pytest.mark.docker
def test_a_failing_check_exits_1_and_lands_in_junit(validate_images: dict[str, str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    nothing_left_behind: None) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [
        "validate", validate_images["body_limit_5m"], "--serve-only", "--model", str(MODEL),
        "--payload", str(PAYLOAD), "--junit", "report.xml", "--serve-grace", "5",
        "--startup-timeout", "10"])
    assert result.exit_code == 1, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("serve.large_body"))
    assert row.split()[1:3] == ["FAIL", "B2"]
    suite = ET.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failure = next(case for case in suite.iter("testcase")
                   if case.get("name", "").startswith("serve.large_body")).find("failure")
    assert failure is not None and "HTTP 413" in failure.get("message", "")
    assert "client_max_body_size" in (failure.text or "")


@pytest.mark.docker
def test_ctrl_c_removes_everything(validate_images: dict[str, str],
                                   nothing_left_behind: None) -> None:
    """Interrupted while the probe container of a finished server still runs."""
    def say(message: str) -> None:
        if "SAGEMAKER_BIND_TO_PORT" in message:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="every container it started was removed"):
        validate(validate_images["common"], payload=PAYLOAD, model=MODEL, train=False, say=say,
                 **FAST)


@pytest.mark.docker
def test_a_missing_image_cannot_be_validated(docker_client: Any, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "byoc-test-no-such-image:missing", "--channel",
                                      f"training={CHANNELS['training']}", "--payload", str(PAYLOAD)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: image byoc-test-no-such-image:missing is not in the local")


def test_no_engine_means_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = CliRunner().invoke(cli, ["validate", "any:image", "--channel",
                                      f"training={CHANNELS['training']}", "--payload", str(PAYLOAD)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: cannot validate any:image: no Docker engine answers")


@pytest.mark.parametrize(("args", "message"), [
    # every missing option in one line, not one per run
    ([], "missing --channel NAME=PATH (training's input) and --payload FILE (a sample request for"
         " serving): pass them"),
    (["--serve-only"], "missing --payload FILE (a sample request for serving) and --model (the"
                       " model to serve)"),
    (["--payload", str(PAYLOAD)], "checking training needs channels: pass --channel NAME=PATH"),
    (["--train-only", "--serve-only"], "--train-only and --serve-only exclude each other"),
    (["--channel", f"training={CHANNELS['training']}"], "checking serving needs a sample request"),
    (["--serve-only", "--payload", str(PAYLOAD)], "serving alone needs a model: pass --model"),
    (["--bad-hyperparameter", "oops"], "--bad-hyperparameter takes KEY=VALUE"),
    (["--channel", f"bad name={CHANNELS['training']}"], "invalid channel name 'bad name'"),
    (["--serve-only", "--model", str(MODEL), "--payload", str(HERE / "common" / "Dockerfile")],
     "cannot tell the content type; pass --content-type"),
])
def test_missing_or_bad_input_is_exit_2_before_anything_runs(
        args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside any byoc project, so nothing defaults
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")  # must not get that far
    result = CliRunner().invoke(cli, ["validate", "any:image", *args])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize(("args", "message"), [
    # IMAGE is named in the same one line as every other missing input, not by click's usage
    ([], "Error: missing IMAGE (the image to check), --channel NAME=PATH (training's input) and"
         " --payload FILE (a sample request for serving): pass them"),
    (["--serve-only", "--payload", str(PAYLOAD)], "Error: missing IMAGE (the image to check) and"
                                                  " --model (the model to serve): pass them"),
    (["--channel", f"training={CHANNELS['training']}", "--payload", str(PAYLOAD)],
     "Error: missing IMAGE (the image to check): pass it"),
])
def test_a_missing_image_is_listed_with_the_other_missing_inputs(
        args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside any byoc project, so nothing defaults
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")  # must not get that far
    result = CliRunner().invoke(cli, ["validate", *args])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Usage:" not in result.stderr


def test_inputs_default_from_the_project_around(default_project: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a project nothing is missing, so validate gets as far as the engine."""
    monkeypatch.chdir(default_project / "container")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{default_project}/no-docker.sock")
    result = CliRunner().invoke(cli, ["validate", "any:image"])
    assert result.exit_code == 2
    assert "no Docker engine answers" in result.stderr
    with pytest.raises(ConfigError, match="serving alone needs a model"):
        validate("any:image", project=Project.load(default_project), train=False)


def test_report_renders_as_json_junit_and_a_table() -> None:
    report = Report("img:1", (
        Check("image.platform", "D", PASS, "linux/amd64"),
        Check("train.failure", "A6", FAIL, "exit 1, but no /opt/ml/output/failure",
              fix="write it", detail="log \x1b[31mred\x1b[0m <tail> & more"),
        Check("serve.bind_to_port", "B2", WARN, "label missing", fix="add the label"),
        Check("serve.ping", "B2", SKIPPED, "see serve.port"),
    ), seconds=12.3)
    assert report.failed and report.exit_code == 1
    data = json.loads(report.to_json())
    assert data["counts"] == {"pass": 1, "fail": 1, "warn": 1, "skipped": 1}
    assert data["checks"][1] == {"name": "train.failure", "rule": "A6", "result": "fail",
                                 "saw": "exit 1, but no /opt/ml/output/failure", "fix": "write it",
                                 "detail": "log \x1b[31mred\x1b[0m <tail> & more"}
    root = ET.fromstring(report.to_junit())  # control characters are dropped: still valid XML
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    failure = suite.find("testcase/failure")
    assert failure is not None and failure.get("type") == "A6"
    assert failure.text == "exit 1, but no /opt/ml/output/failure\nfix: write it\nlog [31mred[0m" \
                           " <tail> & more"
    table = report.to_text(width=80)
    assert "train.failure       FAIL     A6    exit 1, but no /opt/ml/output/failure" in table
    assert "fix: add the label" in table
    assert table.endswith("img:1: 1 passed, 1 failed, 1 warned, 1 skipped in 12 s")


def test_docker_diff_ignores_opt_ml_temp_dirs_and_caches() -> None:
    diff = [{"Path": path, "Kind": kind} for path, kind in [
        ("/opt", 0), ("/opt/ml", 1), ("/tmp", 0), ("/tmp/x", 1), ("/root", 0), ("/root/.cache", 1),
        ("/root/.cache/pip", 1), ("/app", 0), ("/app/__pycache__", 1), ("/app/model.pkl", 1),
        ("/etc", 0), ("/etc/passwd", 0), ("/var", 0), ("/var/cache/apt", 1)]]
    assert _outside(diff) == ["/app/model.pkl", "/etc/passwd"]


@pytest.mark.parametrize(("entrypoint", "problem"), [
    ([], None),
    (["python3", "/opt/app/main.py"], None),
    (["/usr/bin/tini", "--"], "runs tini"),
    (["tini-static", "-g", "--", "serve"], "runs tini-static"),
    (["/bin/sh", "-c", "python3 app.py"], "shell form"),
])
def test_entrypoints_that_keep_train_from_running(entrypoint: list[str], problem: str | None) -> None:
    facts = ImageFacts("img", entrypoint, [], "", {}, "linux", "amd64", 0)
    found = facts.entrypoint_problem("train")
    assert found is None if problem is None else problem in (found or "")
