"""byoc new: rendering, name checks, refusal to overwrite."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from byoc import scaffold
from byoc.cli import cli
from byoc.errors import ConfigError, ProjectExistsError
from byoc.project import Project
from byoc.scaffold.upgrade import BASE_FILE, RECORD_FILE


def test_default_render_is_a_complete_project(tmp_path: Path) -> None:
    root = scaffold.new_project("churn-model", output_dir=tmp_path)
    assert root == tmp_path / "churn-model"
    program = root / "container" / "churn_model"
    for name in ("train", "serve", "evaluate", "evaluation.py", "predictor.py", "wsgi.py",
                 "nginx.conf", "model.py"):
        assert (program / name).is_file(), name
    for name in ("train", "serve", "evaluate"):
        assert (program / name).stat().st_mode & stat.S_IXUSR, f"{name} is not executable"
    config = root / "local_test" / "test_dir" / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text())["epochs"] == "30"
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"training"}
    # the held-out test set: outside input/data (no channel of byoc local train), none of its
    # rows among the training ones
    training = (config.parent / "data" / "training" / "iris.csv").read_text().splitlines()
    test = (root / "local_test" / "test" / "iris.csv").read_text().splitlines()
    assert len(training) == 120 and len(test) == 30
    assert not set(test) & set(training)
    assert sorted({row.split(",")[0] for row in test}) == ["setosa", "versicolor", "virginica"]
    project = Project.load(root)
    assert (project.name, project.program, project.image) == ("churn-model", "churn_model",
                                                              "churn-model")
    assert project.repository == "churn-model" and project.region == "us-east-1"
    dockerfile = (root / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in dockerfile
    assert "accept-bind-to-port=true" in dockerfile
    instructions = [line.split()[0] for line in dockerfile.splitlines()
                    if line.strip() and not line.startswith(("#", " "))]
    assert "ENTRYPOINT" not in instructions and "tini" not in dockerfile.replace("no tini", "")
    assert "COPY container/churn_model /opt/program" in dockerfile
    assert "chmod 755 /opt/program/train /opt/program/serve /opt/program/evaluate" in dockerfile
    makefile = (root / "Makefile").read_text()
    assert "\nevaluate: check-byoc\n\t$(BYOC) local evaluate --backend $(BACKEND)\n" in makefile
    assert "make evaluate" in makefile and " evaluate " in makefile.split(".PHONY:")[1].splitlines()[0] + " "
    assert [p.name for p in tmp_path.iterdir()] == ["churn-model"]


def test_set_changes_template_variables(tmp_path: Path) -> None:
    root = scaffold.new_project("churn-model", output_dir=tmp_path,
                                extra_context={"program": "churn", "aws_region": "eu-west-1",
                                               "ecr_repository": "team/churn"})
    project = Project.load(root)
    assert project.program == "churn" and (root / "container" / "churn" / "train").is_file()
    assert (project.region, project.repository) == ("eu-west-1", "team/churn")


@pytest.mark.parametrize("name", ["Churn", "1model", "churn_model", "churn-", "a--b", "a" * 64, ""])
def test_invalid_names_are_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid project name"):
        scaffold.new_project(name, output_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_longest_valid_name_is_accepted(tmp_path: Path) -> None:
    assert scaffold.check_name("a" * 63) == "a" * 63


def test_existing_directory_is_never_touched(tmp_path: Path) -> None:
    (tmp_path / "churn-model").mkdir()
    (tmp_path / "churn-model" / "mine.txt").write_text("keep me")
    with pytest.raises(ProjectExistsError, match="already exists"):
        scaffold.new_project("churn-model", output_dir=tmp_path)
    assert [p.name for p in (tmp_path / "churn-model").iterdir()] == ["mine.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["churn-model"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"nope": "1"}, "unknown template variable 'nope'"),
    ({"framework": "tensorflow"}, "framework must be one of sklearn"),
    ({"program": "not-an-identifier"}, "program must be a Python identifier"),
])
def test_bad_template_variables_are_refused(tmp_path: Path, settings: dict[str, str],
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        scaffold.new_project("churn-model", output_dir=tmp_path, extra_context=settings)
    assert list(tmp_path.iterdir()) == []


def test_cli_new_reports_errors_on_stderr_with_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["new", "churn-model", "-o", str(tmp_path), "--no-input"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == str(tmp_path / "churn-model")
    again = runner.invoke(cli, ["new", "churn-model", "-o", str(tmp_path), "--no-input"])
    assert again.exit_code == 1
    assert again.stderr.startswith(f"Error: {tmp_path / 'churn-model'} already exists")
    bad = runner.invoke(cli, ["new", "Churn", "-o", str(tmp_path)])
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: invalid project name 'Churn'")
    unset = runner.invoke(cli, ["new", "x", "--set", "novalue", "-o", str(tmp_path)])
    assert unset.exit_code == 2 and "--set takes KEY=VALUE" in unset.stderr


def test_prompts_take_answers_and_never_ask_the_name(tmp_path: Path) -> None:
    runner = CliRunner()
    # description, program, framework, multi_model, region, repository; the name comes from NAME
    answers = "\n".join(["", "my_prog", "", "", "eu-central-1", ""]) + "\n"
    result = runner.invoke(cli, ["new", "churn-model", "-o", str(tmp_path)], input=answers)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "churn-model" / "container" / "my_prog" / "train").is_file()
    asked = [line.split(" [")[0].split(" (")[0] for line in result.stdout.splitlines()
             if line.endswith(": ") or "]: " in line]
    assert asked == ["Description", "Program directory", "Framework", "multi_model",
                     "AWS region", "ECR repository"]
    assert "iris-classifier" not in result.output and "project_slug" not in result.output
    assert 'region = "eu-central-1"' in (tmp_path / "churn-model" / "byoc.toml").read_text()


def test_prompts_skip_what_set_gives(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", "churn-model", "-o", str(tmp_path), "--set",
                                      "program=given", "--set", "aws_region=eu-west-1"],
                                input="\n\n\n\n")
    assert result.exit_code == 0, result.output
    assert "Program directory" not in result.output and "AWS region" not in result.output
    assert (tmp_path / "churn-model" / "container" / "given").is_dir()


@pytest.mark.parametrize(("answers", "message"), [
    (["", "not-valid"], "Error: program must be a Python identifier, got 'not-valid'"),
    (["", "", "tensorflow"], "Error: framework must be one of sklearn, "),
    (["", "", "", "", "mars-1"], "Error: aws_region must be an AWS region name"),
    (["", "", "", "", "", "Bad Repo"], "Error: ecr_repository must be a valid ECR repository name"),
])
def test_a_bad_answer_stops_at_once_with_exit_2(tmp_path: Path, answers: list[str],
                                                message: str) -> None:
    # the answer after the bad one would be valid: it must not be read
    result = CliRunner().invoke(cli, ["new", "churn-model", "-o", str(tmp_path / "out")],
                                input="\n".join([*answers, "", "", "", "", "", ""]) + "\n")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stdout.count(": ") == len(answers)  # the prompts up to the bad answer only
    assert not (tmp_path / "out").exists()


def test_a_bad_answer_on_a_terminal_is_asked_again() -> None:
    variables = scaffold.template_variables()
    with CliRunner().isolation(input="\nnot-valid\nfine_name\n\n\n\n\n") as streams:
        answers = scaffold.ask("churn-model", {}, variables, interactive=True)
    shown = streams[0].getvalue().decode() + streams[1].getvalue().decode()
    assert answers["program"] == "fine_name"
    assert "Error: program must be a Python identifier, got 'not-valid'" in shown
    assert shown.count("Program directory (a Python identifier)") == 2


def test_plain_cookiecutter_renders_the_same_tree(tmp_path: Path) -> None:
    via_byoc = scaffold.new_project("iris-classifier", output_dir=tmp_path / "a")
    subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path / "b"),
                    str(scaffold.template_dir())], check=True, capture_output=True)
    via_plain = tmp_path / "b" / "iris-classifier"
    # byoc new adds only its record of the render (the base of a later byoc upgrade)
    record = {RECORD_FILE, BASE_FILE}
    files_a = sorted(str(p.relative_to(via_byoc)) for p in via_byoc.rglob("*")
                     if p.name not in record)
    assert all((via_byoc / name).is_file() for name in record)
    files_b = sorted(str(p.relative_to(via_plain)) for p in via_plain.rglob("*"))
    assert files_a == files_b
    for name in files_a:
        a, b = via_byoc / name, via_plain / name
        if a.is_file():
            assert a.read_bytes() == b.read_bytes(), name


def test_generated_project_tests_pass(tmp_path: Path) -> None:
    root = scaffold.new_project("churn-model", output_dir=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests"], cwd=root, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_byte_code_in_the_template_stays_out_of_new_projects(tmp_path: Path) -> None:
    # pip byte-compiles an installed template's .py files: __pycache__ beside them
    template = Path(shutil.copytree(scaffold.template_dir(), tmp_path / "template"))
    project = template / "{{cookiecutter.project_slug}}"
    for folder in (project / "container" / "{{cookiecutter.program}}", project / "tests",
                   template / "templates" / "sklearn"):
        cache = folder / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / "model.cpython-311.pyc").write_bytes(b"\xa7\r\r\n\x00\x00\x00\x00stale")
    (project / "stray.pyc").write_bytes(b"\xa7\r\r\n")
    root = scaffold.new_project("churn-model", output_dir=tmp_path / "out", template=template)
    assert (root / "container" / "churn_model" / "model.py").is_file()
    assert [p for p in root.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"] == []


def test_a_project_inside_another_is_refused_unless_nested(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    outer = scaffold.new_project("outer-model", output_dir=tmp_path)
    before = sorted(str(p.relative_to(outer)) for p in outer.rglob("*"))
    runner = CliRunner()
    for args, where in ((["-o", str(outer / "sub")], outer / "sub"), ([], outer / "container")):
        monkeypatch.chdir(outer / "container")
        refused = runner.invoke(cli, ["new", "inner-model", "--no-input", *args])
        assert refused.exit_code == 2, refused.output
        assert refused.stderr == (f"Error: {where} is inside the byoc project {outer} (its"
                                  " byoc.toml): a project in it would be part of that one's"
                                  " directory; create it elsewhere with --output-dir DIR, or add"
                                  " --nested to put it there anyway\n")
        assert sorted(str(p.relative_to(outer)) for p in outer.rglob("*")) == before
    monkeypatch.chdir(tmp_path)
    nested = runner.invoke(cli, ["new", "inner-model", "--no-input", "--nested", "-o",
                                 str(outer / "sub")])
    assert nested.exit_code == 0, nested.output
    assert Project.load(outer / "sub" / "inner-model").name == "inner-model"
    beside = runner.invoke(cli, ["new", "other-model", "--no-input"])
    assert beside.exit_code == 0 and (tmp_path / "other-model" / "byoc.toml").is_file()


def test_byoc_new_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    # cookiecutter writes its hook scripts to temporary files it never removes
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    done = subprocess.run([sys.executable, "-m", "byoc", "new", "t-follow-tmp", "--no-input",
                           "--output-dir", str(tmp_path / "out")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "t-follow-tmp" / "byoc.toml").is_file()
    assert sorted(p.name for p in scratch.iterdir()) == []
    before = tempfile.tempdir  # and the library leaves the caller's setting as it was
    scaffold.new_project("t-follow-tmp2", output_dir=tmp_path / "out")
    assert tempfile.tempdir == before
