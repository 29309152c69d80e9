"""``byoc upgrade``: a project rendered from an older template (a pinned fixture: a copy of
``cookiecutter/`` with a runtime line changed, a file the new template has removed, and a file
it no longer has added) gets the current template, with the user's edits kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import scaffold
from byoc.cli import cli
from byoc.project import Project
from byoc.scaffold import upgrade
from byoc.validate import validate
from byoc.validate.common import PASS, SKIPPED
from helpers import built_image

BYOC = [sys.executable, "-m", "byoc"]
PROGRAM = Path("container") / "iris_classifier"
#: The line the current settings.py has and the older template spelled differently.
NEW_LINE = '    """An environment variable holds a value the server cannot use."""'
OLD_LINE = '    """An environment variable holds a bad value (old wording)."""'


@pytest.fixture(scope="module")
def old_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The current template as an older byoc shipped it."""
    template = tmp_path_factory.mktemp("old") / "cookiecutter"
    shutil.copytree(scaffold.template_dir(), template,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    program = template / "{{cookiecutter.project_slug}}" / "container" / "{{cookiecutter.program}}"
    settings = program / "settings.py"
    text = settings.read_text()
    assert NEW_LINE in text
    settings.write_text(text.replace(NEW_LINE, OLD_LINE))
    (program / "multimodel.py").unlink()  # new in the current template
    (program / "legacy.py").write_text('"""What the older runtime had."""\n')  # gone since
    return template


def _git(project: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          cwd=project, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def old_project(tmp_path: Path, old_template: Path) -> Path:
    """A project made from the older template, committed to git."""
    project = scaffold.new_project("iris-classifier", output_dir=tmp_path, template=old_template)
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "new project")
    return project


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _commit(project: Path) -> None:
    _git(project, "commit", "-q", "-am", "edits")


def test_new_records_the_template_and_its_render(old_project: Path, old_template: Path) -> None:
    record = json.loads((old_project / upgrade.RECORD_FILE).read_text())
    assert record["template_sha256"] == upgrade.template_hash(old_template)
    assert record["context"]["project_slug"] == "iris-classifier"
    assert record["context"]["framework"] == "sklearn"
    assert record["context"]["program"] == "iris_classifier"
    base = upgrade.unpack((old_project / upgrade.BASE_FILE).read_bytes())
    assert base[f"{PROGRAM.as_posix()}/settings.py"][0] == \
        (old_project / PROGRAM / "settings.py").read_bytes()
    assert upgrade.RECORD_FILE not in base and "Makefile" in base
    # committed, not ignored like .byoc/
    tracked = _git(old_project, "ls-files").split()
    assert upgrade.RECORD_FILE in tracked and upgrade.BASE_FILE in tracked


def test_upgrade_brings_the_runtime_and_keeps_both_edits(old_project: Path) -> None:
    settings, model = old_project / PROGRAM / "settings.py", old_project / PROGRAM / "model.py"
    _edit(settings, "import os\n", "import os  # my note on the runtime\n")
    model.write_text(model.read_text() + "\n# my own model tweak\n")
    _commit(old_project)

    done = subprocess.run(["make", "--no-print-directory", f"BYOC={' '.join(BYOC)}", "upgrade"],
                          cwd=old_project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    text = settings.read_text()
    assert NEW_LINE in text and OLD_LINE not in text  # the runtime change arrived
    assert "import os  # my note on the runtime\n" in text  # the runtime edit survived
    assert model.read_text().endswith("# my own model tweak\n")  # the user's file kept
    assert (old_project / PROGRAM / "multimodel.py").read_bytes() == (
        scaffold.template_dir() / "{{cookiecutter.project_slug}}" / "container"
        / "{{cookiecutter.program}}" / "multimodel.py").read_bytes()
    assert not (old_project / PROGRAM / "legacy.py").exists()  # unedited: removed
    for row in ("merged", "added", "removed", "settings.py", "multimodel.py", "legacy.py"):
        assert row in done.stdout
    # the record names the current template now, and the base is the current render
    record = json.loads((old_project / upgrade.RECORD_FILE).read_text())
    assert record["template_sha256"] == upgrade.template_hash(scaffold.template_dir())
    base = upgrade.unpack((old_project / upgrade.BASE_FILE).read_bytes())
    assert NEW_LINE.encode() in base[f"{PROGRAM.as_posix()}/settings.py"][0]
    # a second upgrade has nothing to do
    _git(old_project, "add", "-A")
    _commit(old_project)
    again = CliRunner().invoke(cli, ["upgrade", str(old_project)])
    assert again.exit_code == 0, again.output
    assert "0 updated, 0 merged, 0 conflict, 0 added, 0 removed" in again.output

    # the upgraded project's own tests pass
    tests = subprocess.run(["make", "--no-print-directory", f"PYTHON={sys.executable}", "test"],
                           cwd=old_project, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]


def test_a_conflicting_edit_is_marked_listed_and_exits_1(old_project: Path) -> None:
    settings = old_project / PROGRAM / "settings.py"
    _edit(settings, OLD_LINE, '    """My own wording of it."""')
    legacy = old_project / PROGRAM / "legacy.py"
    legacy.write_text(legacy.read_text() + "KEEP = 1\n")
    _commit(old_project)

    done = CliRunner().invoke(cli, ["upgrade", str(old_project)])
    assert done.exit_code == 1, done.output
    assert "conflict" in done.output and "settings.py" in done.output
    text = settings.read_text()
    assert "<<<<<<< yours" in text and '    """My own wording of it."""' in text
    assert NEW_LINE in text and ">>>>>>> byoc template" in text
    assert legacy.read_text().endswith("KEEP = 1\n")  # edited: not deleted, listed as kept
    assert "removed from the template, but you edited it" in done.output


def test_dry_run_writes_nothing_and_shows_the_diff(old_project: Path) -> None:
    before = {path: path.read_bytes() for path in old_project.rglob("*")
              if path.is_file() and ".git" not in path.parts}
    done = CliRunner().invoke(cli, ["upgrade", "--dry-run", str(old_project)])
    assert done.exit_code == 0, done.output
    assert f"-{OLD_LINE}" in done.output and f"+{NEW_LINE}" in done.output
    assert f"+++ b/{PROGRAM.as_posix()}/multimodel.py" in done.output
    assert "dry run" in done.output
    after = {path: path.read_bytes() for path in old_project.rglob("*")
             if path.is_file() and ".git" not in path.parts}
    assert after == before


def test_uncommitted_changes_are_refused_unless_forced(old_project: Path) -> None:
    model = old_project / PROGRAM / "model.py"
    model.write_text(model.read_text() + "# not committed\n")
    done = CliRunner().invoke(cli, ["upgrade", str(old_project)])
    assert done.exit_code != 0
    assert "Error: " in done.output and "uncommitted changes" in done.output
    assert OLD_LINE in (old_project / PROGRAM / "settings.py").read_text()  # nothing written
    forced = CliRunner().invoke(cli, ["upgrade", "--force", str(old_project)])
    assert forced.exit_code == 0, forced.output
    assert NEW_LINE in (old_project / PROGRAM / "settings.py").read_text()
    assert model.read_text().endswith("# not committed\n")


def test_outside_git_is_refused(tmp_path: Path, old_template: Path) -> None:
    project = scaffold.new_project("plain", output_dir=tmp_path, template=old_template)
    done = CliRunner().invoke(cli, ["upgrade", str(project)])
    assert done.exit_code != 0 and "not in a git repository" in done.output


def test_no_record_is_refused_with_the_hint_and_from_names_the_base(
        old_project: Path, old_template: Path, tmp_path: Path) -> None:
    (old_project / upgrade.RECORD_FILE).unlink()
    (old_project / upgrade.BASE_FILE).unlink()
    model = old_project / PROGRAM / "model.py"
    model.write_text(model.read_text() + "\n# my own model tweak\n")
    _git(old_project, "commit", "-q", "-am", "a project made before the record")
    done = CliRunner().invoke(cli, ["upgrade", str(old_project)])
    assert done.exit_code != 0
    assert "Error: " in done.output and "--from PATH" in done.output
    assert "Traceback" not in done.output

    not_a_template = tmp_path / "empty"
    not_a_template.mkdir()
    bad = CliRunner().invoke(cli, ["upgrade", "--from", str(not_a_template), str(old_project)])
    assert bad.exit_code != 0 and "no byoc template there" in bad.output

    # --from takes an older byoc checkout (cookiecutter/ inside it) or the template itself
    done = CliRunner().invoke(cli, ["upgrade", "--from", str(old_template.parent),
                                    str(old_project)])
    assert done.exit_code == 0, done.output
    assert NEW_LINE in (old_project / PROGRAM / "settings.py").read_text()
    assert model.read_text().endswith("# my own model tweak\n")
    assert (old_project / upgrade.RECORD_FILE).is_file()
    assert (old_project / upgrade.BASE_FILE).is_file()


def test_outside_a_project_is_an_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["upgrade", str(tmp_path)])
    assert done.exit_code != 0 and "not in a byoc project" in done.output


def test_merge_file_is_gits_three_way_merge() -> None:
    base = b"a\nb\nc\nd\ne\n"
    merged, conflicted = upgrade.merge_file(b"A\nb\nc\nd\ne\n", base, b"a\nb\nc\nd\nE\n")
    assert (merged, conflicted) == (b"A\nb\nc\nd\nE\n", False)
    merged, conflicted = upgrade.merge_file(b"a\nX\nc\n", b"a\nb\nc\n", b"a\nY\nc\n")
    assert conflicted and b"<<<<<<< yours\nX\n=======\nY\n>>>>>>> byoc template\n" in merged


def test_a_binary_file_edited_on_both_sides_keeps_yours() -> None:
    changes = upgrade.plan({"w.bin": (b"\0old", 0o644)}, {"w.bin": (b"\0new", 0o644)},
                           {"w.bin": (b"\0mine", 0o644)})
    assert [(c.kind, c.content) for c in changes] == [("conflict", None)]


def test_an_unedited_project_becomes_exactly_a_fresh_render(old_project: Path,
                                                            tmp_path: Path) -> None:
    """So the image the upgraded project builds is the current template's, which byoc
    validate checks on the session's default image (tests/test_validate.py)."""
    done = CliRunner().invoke(cli, ["upgrade", str(old_project)])
    assert done.exit_code == 0, done.output
    fresh = scaffold.new_project("iris-classifier", output_dir=tmp_path / "fresh")

    def tree(root: Path) -> dict[str, tuple[bytes, int]]:
        return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode)
                for p in root.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(root).parts
                and p.name != upgrade.RECORD_FILE}

    assert tree(old_project) == tree(fresh)
    assert json.loads((old_project / upgrade.RECORD_FILE).read_text())["context"] == \
        json.loads((fresh / upgrade.RECORD_FILE).read_text())["context"]


def test_from_takes_the_answers_from_byoc_toml_and_set(tmp_path: Path, old_template: Path) -> None:
    project = scaffold.new_project("churn-model", output_dir=tmp_path, template=old_template,
                                   extra_context={"framework": "xgboost",
                                                  "aws_region": "eu-west-1"})
    (project / upgrade.RECORD_FILE).unlink()
    (project / upgrade.BASE_FILE).unlink()
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "made before the record")
    program = project / "container" / "churn_model"
    model = program / "model.py"
    xgboost_model = model.read_text()
    assert "xgboost" in xgboost_model

    bad = CliRunner().invoke(cli, ["upgrade", "--from", str(old_template), "--set",
                                   "framework=lisp", str(project)])
    assert bad.exit_code != 0 and "Error: framework must be one of" in bad.output
    unknown = CliRunner().invoke(cli, ["upgrade", "--from", str(old_template), "--set",
                                       "colour=red", str(project)])
    assert unknown.exit_code != 0 and "not a template variable" in unknown.output
    alone = CliRunner().invoke(cli, ["upgrade", "--set", "framework=xgboost", str(project)])
    assert alone.exit_code != 0 and "--set gives the answers" in alone.output

    done = CliRunner().invoke(cli, ["upgrade", "--from", str(old_template), "--set",
                                    "framework=xgboost", str(project)])
    assert done.exit_code == 0, done.output
    assert ", 0 conflict," in done.output and ", 0 merged," in done.output
    assert NEW_LINE in (program / "settings.py").read_text()
    assert model.read_text() == xgboost_model  # the xgboost model, not the default one
    record = json.loads((project / upgrade.RECORD_FILE).read_text())["context"]
    assert (record["framework"], record["aws_region"], record["program"]) == (
        "xgboost", "eu-west-1", "churn_model")


def test_a_damaged_record_is_one_error_line(old_project: Path) -> None:
    (old_project / upgrade.RECORD_FILE).write_text("{not json")
    done = CliRunner().invoke(cli, ["upgrade", "--dry-run", str(old_project)])
    assert done.exit_code != 0 and "Error: " in done.output
    assert "is not a byoc template record" in done.output and "Traceback" not in done.output


def test_plan_sorts_each_kind_of_file() -> None:
    f = 0o644
    base = {"same": (b"s\n", f), "mine": (b"m\n", f), "up": (b"u\n", f), "gone": (b"g\n", f),
            "gone-edited": (b"e\n", f), "done": (b"d\n", f), "deleted": (b"x\n", f)}
    theirs = {"same": (b"s\n", f), "mine": (b"m\n", f), "up": (b"U\n", f), "new": (b"n\n", f),
              "done": (b"D\n", f), "deleted": (b"X\n", f)}
    ours = {"same": (b"s\n", f), "mine": (b"M\n", f), "up": (b"u\n", f), "gone": (b"g\n", f),
            "gone-edited": (b"E\n", f), "done": (b"D\n", f)}
    kinds = {c.path: c.kind for c in upgrade.plan(base, theirs, ours)}
    assert kinds == {"mine": "kept", "up": "updated", "new": "added", "gone": "removed",
                     "gone-edited": "kept", "deleted": "kept"}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "outside"])
def test_a_damaged_base_render_is_one_error_line(old_project: Path, damage: str) -> None:
    base = old_project / upgrade.BASE_FILE
    data = base.read_bytes()
    if damage == "garbage":
        base.write_bytes(b"not a tarball\n")
    elif damage == "truncated":
        base.write_bytes(data[: len(data) // 2])
    else:  # a render naming a file outside the project must not make the upgrade touch it
        outside = old_project.parent / "outside.txt"
        outside.write_text("the user's\n")
        base.write_bytes(upgrade.pack({"../outside.txt": (b"the user's\n", 0o644)}))
    settings = (old_project / PROGRAM / "settings.py").read_text()
    done = CliRunner().invoke(cli, ["upgrade", "--force", str(old_project)])
    assert done.exit_code == 2, done.output
    assert "Error: " in done.output and "is not a byoc template render" in done.output
    assert "Traceback" not in done.output and "Aborted" not in done.output
    assert (old_project / PROGRAM / "settings.py").read_text() == settings  # nothing written
    if damage == "outside":
        assert (old_project.parent / "outside.txt").read_text() == "the user's\n"


@pytest.mark.parametrize("framework", ["xgboost", "r"])
def test_from_without_set_finds_the_framework_the_project_was_made_with(
        tmp_path: Path, old_template: Path, framework: str) -> None:
    project = scaffold.new_project("churn-model", output_dir=tmp_path, template=old_template,
                                   framework=framework)
    (project / upgrade.RECORD_FILE).unlink()
    (project / upgrade.BASE_FILE).unlink()
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "made before the record")
    before = {p: p.read_bytes() for p in (project / "container").rglob("*") if p.is_file()}
    done = CliRunner().invoke(cli, ["upgrade", "--from", str(old_template), str(project)])
    assert done.exit_code == 0, done.output
    assert ", 0 conflict," in done.output and ", 0 merged," in done.output
    record = json.loads((project / upgrade.RECORD_FILE).read_text())["context"]
    assert record["framework"] == framework
    fresh = scaffold.new_project("churn-model", output_dir=tmp_path / "fresh",
                                 framework=framework)
    for path in before:  # every runtime and model file is now the current template's own
        relative = path.relative_to(project)
        if (fresh / relative).is_file():
            assert path.read_bytes() == (fresh / relative).read_bytes(), relative


def test_a_dry_run_with_conflicts_says_nothing_was_written(old_project: Path) -> None:
    settings = old_project / PROGRAM / "settings.py"
    _edit(settings, OLD_LINE, '    """My own wording of it."""')
    _commit(old_project)
    before = settings.read_text()
    done = CliRunner().invoke(cli, ["upgrade", "--dry-run", str(old_project)])
    assert done.exit_code == 1, done.output
    assert "would leave to resolve by hand (nothing written)" in done.output
    assert "settings.py" in done.output and "written)" in done.output
    assert "markers written" not in done.output and "look for <<<<<<<" not in done.output
    assert settings.read_text() == before


def test_a_second_upgrade_with_nothing_new_says_so(old_project: Path) -> None:
    assert CliRunner().invoke(cli, ["upgrade", str(old_project)]).exit_code == 0
    _git(old_project, "add", "-A")
    _commit(old_project)
    again = CliRunner().invoke(cli, ["upgrade", str(old_project)])
    assert again.exit_code == 0, again.output
    assert "Already up to date" in again.output and "Upgraded." not in again.output
    assert _git(old_project, "status", "--porcelain") == ""


@pytest.mark.parametrize("context, message", [
    ({}, "its context has no project_slug or program"),
    ({"framework": "lisp"}, "lisp provided for choice variable framework"),
    ({"program": "other_program"}, "was rendered for the program 'other_program'"),
])
def test_a_record_with_a_bad_context_is_one_error_line_and_writes_nothing(
        old_project: Path, context: dict[str, str], message: str) -> None:
    path = old_project / upgrade.RECORD_FILE
    data = json.loads(path.read_text())
    data["context"] = {**data["context"], **context} if context else {}
    path.write_text(json.dumps(data))
    before = {p: p.read_bytes() for p in old_project.rglob("*")
              if p.is_file() and ".git" not in p.parts}
    done = CliRunner().invoke(cli, ["upgrade", "--force", str(old_project)])
    assert done.exit_code != 0, done.output
    assert "Error: " in done.output and message in done.output
    assert "Traceback" not in done.output and isinstance(done.exception, SystemExit)
    after = {p: p.read_bytes() for p in old_project.rglob("*")
             if p.is_file() and ".git" not in p.parts}
    assert after == before


@pytest.mark.parametrize("json_text", ["{not json", '{"colour": "red"}'])
def test_from_a_directory_that_is_not_a_byoc_template_is_one_error_line(
        tmp_path: Path, old_project: Path, json_text: str) -> None:
    (old_project / upgrade.RECORD_FILE).unlink()
    (old_project / upgrade.BASE_FILE).unlink()
    _git(old_project, "commit", "-q", "-am", "no record")
    other = tmp_path / "other"
    other.mkdir()
    (other / "cookiecutter.json").write_text(json_text)
    done = CliRunner().invoke(cli, ["upgrade", "--from", str(other), str(old_project)])
    assert done.exit_code == 2, done.output
    assert f"Error: --from {other}: " in done.output
    assert "Traceback" not in done.output and isinstance(done.exception, SystemExit)
    assert _git(old_project, "status", "--porcelain") == ""


def test_an_updated_file_keeps_the_mode_you_gave_it_unless_the_template_changed_it() -> None:
    base = {"mine": (b"m\n", 0o644), "theirs": (b"t\n", 0o644), "both": (b"b\n", 0o644)}
    theirs = {"mine": (b"M\n", 0o644), "theirs": (b"T\n", 0o755), "both": (b"B\n", 0o755)}
    ours = {"mine": (b"m\n", 0o755), "theirs": (b"t\n", 0o644), "both": (b"b\n", 0o700)}
    modes = {c.path: (c.kind, c.mode) for c in upgrade.plan(base, theirs, ours)}
    assert modes == {"mine": ("updated", 0o755), "theirs": ("updated", 0o755),
                     "both": ("updated", 0o755)}


NEWER_LINE = '    """An environment variable holds a value this newer server cannot use."""'


def test_to_names_the_template_to_upgrade_to(old_project: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "newer-byoc"  # a byoc checkout: its version read from pyproject.toml
    template = checkout / "cookiecutter"
    shutil.copytree(scaffold.template_dir(), template,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (checkout / "pyproject.toml").write_text('[project]\nname = "byoc"\nversion = "9.8.7"\n')
    settings = template / "{{cookiecutter.project_slug}}" / "container" / "{{cookiecutter.program}}" \
        / "settings.py"
    settings.write_text(settings.read_text().replace(NEW_LINE, NEWER_LINE))

    done = CliRunner().invoke(cli, ["upgrade", str(old_project), "--to", str(checkout)])
    assert done.exit_code == 0, done.output
    text = (old_project / PROGRAM / "settings.py").read_text()
    assert NEWER_LINE in text and OLD_LINE not in text and NEW_LINE not in text
    assert "-> 9.8.7" in done.output
    record = json.loads((old_project / upgrade.RECORD_FILE).read_text())
    assert record["byoc_version"] == "9.8.7"
    assert record["template_sha256"] == upgrade.template_hash(template)
    base = upgrade.unpack((old_project / upgrade.BASE_FILE).read_bytes())
    assert NEWER_LINE.encode() in base[f"{PROGRAM.as_posix()}/settings.py"][0]


def test_a_bad_to_is_one_error_line_and_writes_nothing(old_project: Path, tmp_path: Path) -> None:
    for bad in (tmp_path / "empty", tmp_path / "notjson"):
        bad.mkdir()
    (tmp_path / "notjson" / "cookiecutter.json").write_text("{nope")
    for bad, said in ((tmp_path / "empty", "no byoc template there"),
                      (tmp_path / "notjson", "is not JSON")):
        done = subprocess.run([*BYOC, "upgrade", str(old_project), "--to", str(bad)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]
        assert done.stderr.startswith(f"Error: --to {bad}") and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert _git(old_project, "status", "--porcelain") == ""


def test_the_to_templates_version_is_read_from_a_wheel_or_checkout(tmp_path: Path) -> None:
    wheel = tmp_path / "wheel"
    template = wheel / "byoc" / "template"
    shutil.copytree(scaffold.template_dir(), template,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (wheel / "byoc-1.2.3.dist-info").mkdir()
    (wheel / "byoc-1.2.3.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: byoc\nVersion: 1.2.3\n")
    assert upgrade.older_template(wheel, "--to") == template
    assert upgrade.template_version(template) == "1.2.3"
    bare = tmp_path / "bare"  # a template directory alone: no version to read
    shutil.copytree(template, bare)
    assert upgrade.template_version(bare) is None
    other = tmp_path / "other"  # a checkout of some other project is not byoc's version
    shutil.copytree(template, other / "cookiecutter")
    (other / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "5.0"\n')
    assert upgrade.template_version(other / "cookiecutter") is None


def test_a_directory_in_the_way_is_one_error_line_and_writes_nothing(old_project: Path) -> None:
    # multimodel.py is new in the current template: the upgrade must write it (root too
    # cannot write a file where a directory is, unlike a chmod'ed file)
    blocker = old_project / PROGRAM / "multimodel.py"
    blocker.mkdir()
    (blocker / "keep.txt").write_text("mine\n")
    _git(old_project, "add", "-A")
    _commit(old_project)
    before = {p: p.read_bytes() for p in old_project.rglob("*") if p.is_file() and ".git" not in p.parts}

    done = subprocess.run([*BYOC, "upgrade", str(old_project)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"Error: cannot write {blocker}: a directory is in the way")
    assert "nothing was written" in done.stderr and "Traceback" not in done.stderr
    assert _git(old_project, "status", "--porcelain", "--untracked-files=all") == ""
    after = {p: p.read_bytes() for p in old_project.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before  # the record, the base, settings.py and legacy.py as they were


def test_a_write_that_fails_midway_is_undone(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old a\n")
    (tmp_path / "a.txt").chmod(0o755)
    (tmp_path / "gone.txt").write_text("old gone\n")
    (tmp_path / "blocked").mkdir()  # the write that fails, after the others (root too)
    writes: list[tuple[str, bytes | None, int | None]] = [
        ("a.txt", b"new a\n", 0o644), ("gone.txt", None, None),
        ("new/deep/file.txt", b"new\n", None), ("blocked", b"cannot\n", None)]
    with pytest.raises(upgrade.ByocError) as caught:
        upgrade._apply(tmp_path, writes)
    message = str(caught.value)
    assert f"cannot write {tmp_path / 'blocked'}" in message and "nothing changed" in message
    assert (tmp_path / "a.txt").read_text() == "old a\n"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "gone.txt").read_text() == "old gone\n"
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "blocked", "gone.txt"]


@pytest.mark.docker
def test_the_upgraded_projects_image_passes_validate(old_project: Path, base_image: str,
                                                     docker_client: Any) -> None:
    """An upgraded project, with an edit of the runtime and of model.py kept, builds into an
    image that passes every check of ``byoc validate`` (the layers below the program's are
    the default image's, so the build is mostly cached)."""
    settings, model = old_project / PROGRAM / "settings.py", old_project / PROGRAM / "model.py"
    _edit(settings, "import os\n", "import os  # my note on the runtime\n")
    model.write_text(model.read_text() + "\n# my own model tweak\n")
    _commit(old_project)
    done = CliRunner().invoke(cli, ["upgrade", str(old_project)])
    assert done.exit_code == 0, done.output
    with built_image(docker_client, old_project, f"byoc-test-upgraded:{uuid.uuid4().hex[:8]}",
                     base_image) as image:
        report = validate(image, project=Project.load(old_project), train_grace=3.0,
                          serve_grace=5.0, startup_timeout=120.0, train_timeout=60.0)
    not_passed = {check.name: check.result for check in report.checks if check.result != PASS}
    # train.sigterm is skipped when the template's tiny job ends before SIGTERM could be sent
    assert not_passed in ({}, {"train.sigterm": SKIPPED}), report.to_text()
    assert report.exit_code == 0
