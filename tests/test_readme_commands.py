"""Every ``byoc ...`` command a generated project's README gives works as written.

Each command is parsed by byoc's own command line (unknown options, bad values and missing
arguments fail), and the ones that can run here cheaply are run for real, in the rendered
project: ``byoc local train`` on the process backend, ``byoc local tune`` with the
project's own ``tuning-request.json`` cut to two trials, ``byoc sagemaker ...`` with
``--dry-run`` against moto's server. The others (``--gpus``, ``--backend docker``, a server that runs until
Ctrl-C) are parsed only. The shipped ``tuning-request.json`` is also checked against
botocore's service model, as botocore checks a request before sending it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import botocore.session
import botocore.validate
import click
import pytest
import test_sagemaker

from byoc import scaffold
from byoc.cli import cli
from byoc.tune import config

BYOC = [sys.executable, "-m", "byoc"]
TEMPLATES = ("sklearn", "xgboost", "pytorch", "r")
TORCH_WHEELS = Path(os.environ.get("BYOC_TORCH_WHEEL", "/opt/wheels/torch.whl")).parent
RSCRIPT = shutil.which("Rscript")
#: What SageMaker's side needs and a README leaves to the user's AWS set-up.
SAGEMAKER_EXTRA = ["--dry-run", "--image", test_sagemaker.IMAGE, "--role", test_sagemaker.ROLE]
#: Trials of a tuning job run here: the file's own count, cut to keep the test cheap.
TRIALS = 2

moto_url = test_sagemaker.moto_url
aws = test_sagemaker.aws


def readme_commands(text: str) -> list[str]:
    """The ``byoc ...`` command lines of a README: fenced lines (less their ``# comment``)
    and inline code spans (joined across line breaks), in the README's order."""
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"```[^\n]*\n(.*?)```", text, re.S):
        offset = block.start(1)
        for line in block.group(1).splitlines(keepends=True):
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command.startswith("byoc "):
                found.append((offset, command))
            offset += len(line)
    prose = re.sub(r"```.*?```", lambda m: " " * len(m.group(0)), text, flags=re.S)
    for span in re.finditer(r"`([^`]+)`", prose):
        command = " ".join(span.group(1).split())
        if command.startswith("byoc "):
            found.append((span.start(), command))
    return [command for _, command in sorted(found)]


def parse(args: list[str]) -> click.Command:
    """Parse *args* (after ``byoc``) as byoc's command line does; return the command reached.

    :raises click.ClickException: for what byoc's parser refuses.
    """
    command: click.Command = cli
    ctx = click.Context(cli, info_name="byoc")
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest and not rest[0].startswith("-"), f"no subcommand in {args}"
        name, *rest = rest
        sub = command.get_command(ctx, name)
        if sub is None:
            raise click.UsageError(f"no such command {name!r}", ctx)
        command = sub
        ctx = sub.make_context(name, rest, parent=ctx) if not isinstance(sub, click.Group) \
            else click.Context(sub, info_name=name, parent=ctx)
    return command


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("readme")
    return {name: scaffold.new_project(f"readme-{name}", output_dir=out, framework=name)
            for name in TEMPLATES}


def test_the_extractor_finds_fenced_and_inline_commands() -> None:
    text = ("Run `byoc local train --spot\n--max-wait 2h` or `byoc.toml`.\n```\n"
            "make build   # byoc build\nbyoc local serve --gpus all   # a comment\n```\n")
    assert readme_commands(text) == ["byoc local train --spot --max-wait 2h",
                                     "byoc local serve --gpus all"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_readme_says_what_its_commands_need_first(projects: dict[str, Path],
                                                      template: str) -> None:
    project = projects[template]
    readme = (project / "README.md").read_text()
    strategy = json.loads((project / "tuning-request.json").read_text())[
        "HyperParameterTuningJobConfig"]["Strategy"]
    if strategy in ("Bayesian", "Hyperband"):  # the strategies byoc runs with optuna
        assert "pip install 'byoc[tune]'" in readme
        assert readme.index("pip install 'byoc[tune]'") < readme.index("byoc local tune --config")
    # a machine without Docker Hub: how to build, next to make build
    build = readme.index("`make build` and `make push`")
    assert 'BUILD_ARGS="--build-arg BASE_IMAGE=<local image> --network host"' in \
        readme[build:build + 600]
    # the process backend takes wheels/ by itself: no stale UV_FIND_LINKS step
    assert "UV_FIND_LINKS=$PWD" not in readme


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_readme_command_parses(projects: dict[str, Path], template: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(projects[template])  # where the README's commands run
    commands = readme_commands((projects[template] / "README.md").read_text())
    assert any(c.startswith("byoc local tune --config tuning-request.json") for c in commands)
    assert any(c.startswith("byoc sagemaker tune --config tuning-request.json") for c in commands)
    for command in commands:
        try:
            parse(shlex.split(command)[1:])
        except click.ClickException as exc:
            pytest.fail(f"{template} README: {command!r} is refused: {exc.format_message()}")


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_tuning_request_is_one_the_service_takes(projects: dict[str, Path],
                                                     template: str) -> None:
    body = json.loads((projects[template] / "tuning-request.json").read_text())
    model = botocore.session.get_session().get_service_model("sagemaker")
    botocore.validate.validate_parameters(
        body, model.operation_model("CreateHyperParameterTuningJob").input_shape)
    parsed = config.parse(body)
    assert parsed.objective_metric.startswith("validation:")
    # it tunes the template's own hyperparameters
    program = next(p for p in (projects[template] / "container").iterdir() if p.is_dir())
    source = "".join(p.read_text() for p in sorted(program.glob("model.*")))
    for name in [r.name for r in parsed.ranges] + list(parsed.static):
        assert re.search(rf"\b{name}\b", source), f"{template}: {name} is no hyperparameter"


def _run_env(template: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    if template == "pytorch":  # the CPU wheel, as the README's pip download puts it in wheels/
        env["UV_FIND_LINKS"] = str(TORCH_WHEELS)
    return env


def _skip_unless_runnable(template: str) -> None:
    if template == "pytorch" and not any(TORCH_WHEELS.glob("torch-*.whl")):
        pytest.skip(f"no torch CPU wheel in {TORCH_WHEELS}")
    if template == "r" and RSCRIPT is None:
        pytest.skip("no Rscript here")


def _small_request(project: Path, into: Path) -> Path:
    body = json.loads((project / "tuning-request.json").read_text())
    body["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] = TRIALS
    small = into / "tuning-request.json"
    small.write_text(json.dumps(body))
    return small


def _latest_job(project: Path) -> str:
    jobs = sorted((p for p in (project / ".byoc" / "jobs").iterdir()
                   if not p.is_symlink() and (p / "job.json").is_file()
                   and "TrainingJobName" in json.loads((p / "job.json").read_text())),
                  key=lambda p: p.stat().st_mtime)  # training jobs: JOB is one in every README
    return jobs[-1].name


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_readme_commands_run_as_written(projects: dict[str, Path], template: str,
                                            aws: str,
                                            tmp_path: Path) -> None:
    _skip_unless_runnable(template)
    project = projects[template]
    env = _run_env(template)  # with the aws fixture's AWS_* (moto's server)
    ran = []
    for command in readme_commands((project / "README.md").read_text()):
        args = shlex.split(command)[1:]
        if "--gpus" in args or args[:2] == ["local", "serve"] or "docker" in args:
            continue  # GPUs, a server until Ctrl-C or an image build: parsed by the test above
        if "JOB" in args:
            args[args.index("JOB")] = _latest_job(project)
        if args[:2] in (["local", "train"], ["local", "evaluate"]):
            args += ["--backend", "process"]
        elif args[:2] == ["local", "tune"]:
            args[args.index("tuning-request.json")] = str(_small_request(project, tmp_path))
            args += ["--backend", "process", "--output-dir", str(tmp_path / "tuning")]
        elif args[0] == "sagemaker":
            args += SAGEMAKER_EXTRA
        done = subprocess.run([*BYOC, *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{command!r} ({args}): {done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr
        if "--interrupt-after" in args:  # the spot rehearsal: interrupted, resumed each time
            planned = len(args[args.index("--interrupt-after") + 1].split(","))
            assert done.stderr.count("simulated spot interruption") == planned, done.stderr
            # each restart resumes from the checkpoints the attempt before it left; on a loaded
            # machine an attempt may be interrupted before its program wrote its first one
            restored = done.stderr.count("checkpoint file(s) into")
            assert done.stderr.count("resuming from checkpoint") == restored, done.stderr
        if args[:2] == ["local", "tune"]:
            assert done.stdout.strip().endswith("model.tar.gz")
            shipped = json.loads((project / "tuning-request.json").read_text())
            metric = shipped["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"][
                "MetricName"]
            assert re.search(rf"^best: \S+ {metric}=[0-9.]+ ", done.stderr, re.M), done.stderr
        if args[:2] == ["sagemaker", "tune"]:
            request = json.loads(done.stdout)
            test_sagemaker.validate("CreateHyperParameterTuningJob", request)
            shipped = json.loads((project / "tuning-request.json").read_text())
            assert request["HyperParameterTuningJobConfig"] == \
                shipped["HyperParameterTuningJobConfig"]
        ran.append(command)
    assert any("local tune" in c for c in ran) and any("sagemaker tune" in c for c in ran)
    assert any("local evaluate" in c for c in ran)  # the template's evaluate on its test set


def test_the_spot_example_needs_max_wait_as_sagemaker_does(projects: dict[str, Path]) -> None:
    # why the README's spot example gives --max-wait: the default --max-run is one day
    project = projects["sklearn"]
    bare = subprocess.run([*BYOC, "local", "train", "--spot", "--backend", "process"],
                          cwd=project, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and bare.stderr.startswith("Error: --spot needs --max-wait")
    short = subprocess.run([*BYOC, "local", "train", "--spot", "--max-wait", "1h", "--backend",
                            "process"], cwd=project, capture_output=True, text=True, timeout=120)
    assert short.returncode == 2 and "must be at least --max-run 86400" in short.stderr
    readme = readme_commands((project / "README.md").read_text())
    spot = next(c for c in readme if "--spot" in c)
    assert "--max-wait" in spot
